/* Unit tests of the store URL: which backend it names, how it is shown, and [Store] URL= in collector.conf.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector-config.h"
#include "store.h"

static void test_backend_of_url(void **state)
{
        static const struct {
                const char *url, *backend, *target;
        } ok[] = {
                {"sqlite:/var/lib/m/collector.db", "sqlite", "/var/lib/m/collector.db"},
                {"/var/lib/m/collector.db", "sqlite", "/var/lib/m/collector.db"},
                {":memory:", "sqlite", ":memory:"},
                {"./rel.db", "sqlite", "./rel.db"},
                {"postgresql://mamori@db/mamori", "postgresql", "postgresql://mamori@db/mamori"},
                {"postgres://db/mamori", "postgresql", "postgres://db/mamori"},
                {"host=/run/postgresql dbname=mamori", "postgresql", "host=/run/postgresql dbname=mamori"},
        };
        const char *b, *t;

        (void)state;
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                assert_int_equal(store_url_backend(ok[i].url, &b, &t), 0);
                assert_string_equal(b, ok[i].backend);
                assert_string_equal(t, ok[i].target);
        }
        assert_int_equal(store_url_backend("", &b, &t), -EINVAL);
        assert_int_equal(store_url_backend("sqlite:", &b, &t), -EINVAL);
        assert_int_equal(store_url_backend(NULL, &b, &t), -EINVAL);
}

static void test_display_hides_passwords(void **state)
{
        static const struct {
                const char *url, *shown;
        } v[] = {
                {"postgresql://mamori:s3cret@db/mamori", "postgresql://mamori:******@db/mamori"},
                {"postgresql://mamori@db/mamori?password=pw&sslmode=require",
                 "postgresql://mamori@db/mamori?password=**&sslmode=require"},
                {"host=db dbname=mamori password=topsecret user=m",
                 "host=db dbname=mamori password=********* user=m"},
                {"sqlite:/var/lib/m/c.db", "sqlite:/var/lib/m/c.db"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char *d = store_url_display(v[i].url);
                assert_non_null(d);
                assert_string_equal(d, v[i].shown);
                free(d);
        }
}

static int load(const char *text, struct collector_config *ret)
{
        char path[] = "/tmp/mamori-store-url-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        int r = collector_config_load(path, NULL, NULL, ret);
        unlink(path);
        return r;
}

static void test_config_store_url(void **state)
{
        struct collector_config c;

        (void)state;
        assert_int_equal(load("", &c), 0);
        assert_string_equal(c.database, "/var/lib/mamori-collector/collector.db");
        collector_config_free(&c);
        assert_int_equal(load("[Store]\nURL=postgresql://mamori@db/mamori\n", &c), 0);
        assert_string_equal(c.database, "postgresql://mamori@db/mamori");
        collector_config_free(&c);
        assert_int_equal(load("[Store]\nURL=host=/run/postgresql dbname=mamori\n", &c), 0);
        assert_string_equal(c.database, "host=/run/postgresql dbname=mamori");
        collector_config_free(&c);
        /* The older key still works; the later line wins. */
        assert_int_equal(load("[Store]\nURL=postgresql://db/m\n[Collector]\nDatabase=/srv/c.db\n", &c), 0);
        assert_string_equal(c.database, "/srv/c.db");
        collector_config_free(&c);
        /* A relative SQLite path or an empty URL is an error, not a file in the working directory. */
        assert_int_equal(load("[Store]\nURL=sqlite:rel.db\n", &c), -EINVAL);
        assert_int_equal(load("[Store]\nURL=\n", &c), -EINVAL);
        assert_int_equal(load("[Store]\nURL=sqlite:\n", &c), -EINVAL);
}

/* Workers= and VerifyThreads=: automatic by default and with "auto", bounded otherwise. */
static void test_config_threads(void **state)
{
        struct collector_config c;

        (void)state;
        assert_int_equal(load("", &c), 0);
        assert_int_equal(c.workers, 0);
        assert_int_equal(c.verify_threads, COLLECTOR_VERIFY_THREADS_AUTO);
        collector_config_free(&c);
        assert_int_equal(load("[Collector]\nWorkers=6\nVerifyThreads=0\n", &c), 0);
        assert_int_equal(c.workers, 6);
        assert_int_equal(c.verify_threads, 0);
        collector_config_free(&c);
        assert_int_equal(
                load("[Collector]\nWorkers=6\nWorkers=auto\nVerifyThreads=3\nVerifyThreads=auto\n", &c), 0);
        assert_int_equal(c.workers, 0);
        assert_int_equal(c.verify_threads, COLLECTOR_VERIFY_THREADS_AUTO);
        collector_config_free(&c);
        assert_int_equal(load("[Collector]\nWorkers=0\n", &c), -EINVAL);
        assert_int_equal(load("[Collector]\nWorkers=1025\n", &c), -EINVAL);
        assert_int_equal(load("[Collector]\nVerifyThreads=256\n", &c), -EINVAL);
        assert_int_equal(load("[Collector]\nVerifyThreads=-1\n", &c), -EINVAL);
}

/* Opening names the backend; a PostgreSQL server that is not there is refused, not waited for. */
static void test_open(void **state)
{
        Store *s = NULL;
        uint64_t n;

        (void)state;
        assert_int_equal(store_open("sqlite::memory:", &s), 0);
        assert_string_equal(store_backend_name(s), "sqlite");
        assert_int_equal(store_size(s, &n), -EOPNOTSUPP);
        store_close(s);
        assert_int_equal(store_open("host=/nonexistent-mamori dbname=x connect_timeout=2", &s),
                         -ECONNREFUSED);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backend_of_url),
                cmocka_unit_test(test_display_hides_passwords),
                cmocka_unit_test(test_config_store_url),
                cmocka_unit_test(test_config_threads),
                cmocka_unit_test(test_open),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
