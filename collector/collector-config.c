/* collector.conf reader: [Collector] keys as a table (key → parser → field), defaults, Listen= split. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector-config.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "store.h"

#define SEC(n) ((uint64_t)(n)*USEC_PER_SEC)

static int parse_listen(const char *v, void *data, const char **why)
{
        _cleanup_free_ char *addr = NULL;
        uint16_t port;
        char *s;

        if (collector_parse_listen(v, &addr, &port) < 0) {
                *why = "expected ADDR:PORT with a numeric address, e.g. 127.0.0.1:8443";
                return -EINVAL;
        }
        s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*(char **)data);
        *(char **)data = s;
        return 0;
}

/* The collector's name in its receipts: an id as DESIGN §6 allows them. */
static int parse_name(const char *v, void *data, const char **why)
{
        size_t n = strlen(v);
        char *s;

        if (n == 0 || n > 64 ||
            strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") != n) {
                *why = "expected 1..64 of A-Z a-z 0-9 . _ : @ -";
                return -EINVAL;
        }
        s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*(char **)data);
        *(char **)data = s;
        return 0;
}

/* "auto", or an integer in [min, max]; auto stores auto_value. */
static int parse_count(const char *v, void *data, const char **why, uint32_t min, uint32_t max,
                       uint32_t auto_value, const char *expected)
{
        uint32_t n;

        if (streq(v, "auto")) {
                *(uint32_t *)data = auto_value;
                return 0;
        }
        if (conf_parse_uint32(v, &n, why) < 0 || n < min || n > max) {
                *why = expected;
                return -EINVAL;
        }
        *(uint32_t *)data = n;
        return 0;
}

static int parse_workers(const char *v, void *data, const char **why)
{
        return parse_count(v, data, why, 1, 1024, 0, "expected auto (2 per core) or 1..1024");
}

static int parse_verify_threads(const char *v, void *data, const char **why)
{
        return parse_count(
                v, data, why, 0, 255, COLLECTOR_VERIFY_THREADS_AUTO,
                "expected auto (one per core but one) or 0..255 (0: each request checks its own)");
}

/* [Store] URL=: "sqlite:/ABS/PATH", "postgresql://…" or a libpq conninfo (store_open()). */
static int parse_store_url(const char *v, void *data, const char **why)
{
        const char *backend, *target;

        if (strlen(v) >= 4096 || strpbrk(v, "\t\r\n") || store_url_backend(v, &backend, &target) < 0 ||
            (streq(backend, "sqlite") && target[0] != '/')) {
                *why = "expected sqlite:/ABSOLUTE/PATH, postgresql://HOST/DB or a libpq conninfo such as "
                       "'host=/run/postgresql dbname=mamori'";
                return -EINVAL;
        }
        return conf_parse_string(v, data, why);
}

#define F(field) offsetof(struct collector_config, field)

static const struct conf_item collector_items[] = {
        {"Collector", "Listen", parse_listen, F(listen)},
        {"Collector", "Database", conf_parse_path, F(database)}, /* before [Store] URL=: a SQLite path */
        {"Store", "URL", parse_store_url, F(database)},
        {"Collector", "StateDirectory", conf_parse_path, F(state_directory)},
        {"Collector", "Name", parse_name, F(name)},
        {"Collector", "MaxBodyBytes", conf_parse_positive_uint32, F(max_body_bytes)},
        {"Collector", "MaxBatchRecords", conf_parse_positive_uint32, F(max_batch_records)},
        {"Collector", "IdleTimeoutSec", conf_parse_positive_seconds, F(idle_timeout_usec)},
        {"Collector", "RequestTimeoutSec", conf_parse_positive_seconds, F(request_timeout_usec)},
        {"Collector", "Workers", parse_workers, F(workers)},
        {"Collector", "VerifyThreads", parse_verify_threads, F(verify_threads)},
        {"Collector", "MaxConnections", conf_parse_positive_uint32, F(max_connections)},
        {"Collector", "MaxConnectionsPerIP", conf_parse_positive_uint32, F(max_connections_per_ip)},
        {"Collector", "MaxUnauthenticated", conf_parse_positive_uint32, F(max_unauthenticated)},
        {"Collector", "SilentSec", conf_parse_positive_seconds, F(silent_usec)},
        {"Collector", "SilentCheckSec", conf_parse_positive_seconds, F(silent_check_usec)},
        {"Policy", "ValiditySec", conf_parse_positive_seconds, F(policy_validity_usec)},
        {"Cards", "OperatorCA", conf_parse_path, F(operator_ca)},
        {"Admin", "Directory", conf_parse_path, F(admin_directory)},
};

void collector_config_free(struct collector_config *c)
{
        if (!c)
                return;
        free(c->listen);
        free(c->database);
        free(c->state_directory);
        free(c->name);
        free(c->operator_ca);
        free(c->admin_directory);
        c->listen = c->database = c->state_directory = c->name = c->operator_ca = c->admin_directory = NULL;
}

static int defaults(struct collector_config *c)
{
        *c = (struct collector_config){
                .listen = strdup("127.0.0.1:8443"),
                .database = strdup("/var/lib/mamori-collector/collector.db"),
                .state_directory = strdup("/var/lib/mamori-collector"),
                .admin_directory = strdup(COLLECTOR_ADMIN_DIRECTORY),
                .max_body_bytes = 8u * 1024u * 1024u,
                .max_batch_records = 20000,
                .workers = 0,
                .verify_threads = COLLECTOR_VERIFY_THREADS_AUTO,
                .idle_timeout_usec = SEC(30),
                .request_timeout_usec = SEC(120),
                .max_connections = 1000,
                .max_connections_per_ip = 16,
                .max_unauthenticated = 256,
                .silent_usec = SEC(3600),
                .silent_check_usec = SEC(60),
                .policy_validity_usec = SEC(7 * 24 * 3600),
                .operator_ca = strdup("/etc/mamori/operator-ca.pem"),
        };
        if (!c->listen || !c->database || !c->state_directory || !c->operator_ca || !c->admin_directory) {
                collector_config_free(c);
                return -ENOMEM;
        }
        return 0;
}

int collector_config_load(const char *path, conf_diag_fn diag, void *userdata, struct collector_config *ret)
{
        struct collector_config c;
        char dropins[4096];
        int r;

        if ((size_t)snprintf(dropins, sizeof(dropins), "%s.d", path) >= sizeof(dropins))
                return -ENAMETOOLONG;
        r = defaults(&c);
        if (r < 0)
                return r;
        struct conf_context ctx = {
                .items = collector_items,
                .n_items = ELEMENTSOF(collector_items),
                .target = &c,
                .diag = diag,
                .userdata = userdata,
        };
        r = conf_parse_with_dropins(&ctx, path, dropins);
        if (r >= 0 && ctx.n_errors > 0)
                r = -EINVAL;
        if (r < 0) {
                collector_config_free(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int collector_parse_listen(const char *listen, char **ret_address, uint16_t *ret_port)
{
        const char *colon, *a, *a_end;
        uint64_t port;
        char *addr;

        if (!listen)
                return -EINVAL;
        if (listen[0] == '[') {
                a = listen + 1;
                a_end = strchr(a, ']');
                if (!a_end || a_end[1] != ':')
                        return -EINVAL;
                colon = a_end + 1;
        } else {
                a = listen;
                colon = strrchr(listen, ':');
                if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
                        return -EINVAL;
                a_end = colon;
        }
        if (a_end == a || parse_uint64(colon + 1, 65535, &port) < 0)
                return -EINVAL;
        addr = strndup(a, (size_t)(a_end - a));
        if (!addr)
                return -ENOMEM;
        *ret_address = addr;
        *ret_port = (uint16_t)port;
        return 0;
}

char *collector_state_path(const struct collector_config *c, const char *name)
{
        char *p;
        if (asprintf(&p, "%s/%s", c->state_directory, name) < 0)
                return NULL;
        return p;
}

char *collector_admin_path(const struct collector_config *c, const char *name)
{
        char *p;
        if (asprintf(&p, "%s/%s", c->admin_directory, name) < 0)
                return NULL;
        return p;
}
