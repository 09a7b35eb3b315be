/* Unit tests for the certificate cache of the card login flow: hits, misses, damaged entries. */
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

#include "mamori/cert-cache.h"
#include "mamori/card.h"
#include "mamori/crypto-util.h"
#include "mamori/macro.h"

/* The cache hashes the DER but does not parse it (the login checks it every time), so any bytes do. */
static const uint8_t der_a[] = "certificate A: 30 82 01 d3 ...";
static const uint8_t der_b[] = "certificate B: 30 82 02 0a ...";
static const uint8_t head_a[] = {0x53, 0x82, 0x01, 0xdb, 0x70, 0x82, 0x01,
                                 0xd3, 0x30, 0x82, 0x01, 0xcf, 0xa0};
static const uint8_t head_b[] = {0x53, 0x82, 0x02, 0x12, 0x70, 0x82, 0x02,
                                 0x0a, 0x30, 0x82, 0x02, 0x06, 0xa0};

static char dir[] = "/tmp/mamori-test-cert-cache-XXXXXX";
static char cache[sizeof(dir) + 32];

static int setup(void **state)
{
        if (!mkdtemp(dir))
                return -1;
        /* A directory below one that does not exist yet: store creates both. */
        snprintf(cache, sizeof(cache), "%s/cache/certs", dir);
        return 0;
}

static int teardown(void **state)
{
        char cmd[sizeof(dir) + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *name, const void *data, size_t len)
{
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", cache, name);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
}

static void test_store_and_lookup(void **state)
{
        char id[CARD_ID_LEN + 1], want[CARD_ID_LEN + 1];
        uint8_t *der = NULL;
        size_t len = 0;

        assert_int_equal(cert_cache_lookup(cache, head_a, sizeof(head_a), &der, &len, id), -ENOENT);
        assert_int_equal(cert_cache_store(cache, head_a, sizeof(head_a), der_a, sizeof(der_a)), 0);
        assert_int_equal(cert_cache_store(cache, head_b, sizeof(head_b), der_b, sizeof(der_b)), 0);

        assert_int_equal(cert_cache_lookup(cache, head_a, sizeof(head_a), &der, &len, id), 0);
        assert_int_equal(card_id_from_cert(der_a, sizeof(der_a), want), 0);
        assert_string_equal(id, want);
        assert_int_equal(len, sizeof(der_a));
        assert_memory_equal(der, der_a, len);
        free(der);

        assert_int_equal(cert_cache_lookup(cache, head_b, sizeof(head_b), &der, &len, id), 0);
        assert_memory_equal(der, der_b, sizeof(der_b));
        free(der);

        /* One byte more or less of head is another card. */
        assert_int_equal(cert_cache_lookup(cache, head_a, sizeof(head_a) - 1, &der, &len, id), -ENOENT);
}

static void test_damaged_entries_are_misses(void **state)
{
        char id_a[CARD_ID_LEN + 1], id_b[CARD_ID_LEN + 1], name[CARD_ID_LEN + 8], id[CARD_ID_LEN + 1];
        uint8_t *der = NULL;
        size_t len = 0;

        assert_int_equal(cert_cache_store(cache, head_a, sizeof(head_a), der_a, sizeof(der_a)), 0);
        assert_int_equal(card_id_from_cert(der_a, sizeof(der_a), id_a), 0);
        assert_int_equal(card_id_from_cert(der_b, sizeof(der_b), id_b), 0);

        /* A certificate file whose content is not what its name (the card id) says. */
        snprintf(name, sizeof(name), "%s.der", id_a);
        write_text(name, der_b, sizeof(der_b));
        assert_int_equal(cert_cache_lookup(cache, head_a, sizeof(head_a), &der, &len, id), -ENOENT);

        /* Storing again repairs it. */
        assert_int_equal(cert_cache_store(cache, head_a, sizeof(head_a), der_a, sizeof(der_a)), 0);
        assert_int_equal(cert_cache_lookup(cache, head_a, sizeof(head_a), &der, &len, id), 0);
        free(der);

        /* Empty or truncated certificate files, absent targets. */
        write_text(name, "", 0);
        assert_int_equal(cert_cache_lookup(cache, head_a, sizeof(head_a), &der, &len, id), -ENOENT);
        assert_int_equal(cert_cache_store(cache, head_b, sizeof(head_b), der_b, sizeof(der_b)), 0);
        snprintf(name, sizeof(name), "%s.der", id_b);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", cache, name);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(cert_cache_lookup(cache, head_b, sizeof(head_b), &der, &len, id), -ENOENT);
}

static void test_bad_head_files(void **state)
{
        char hh[65], name[80], id[CARD_ID_LEN + 1];
        uint8_t *der = NULL;
        size_t len = 0;
        static const uint8_t head_c[] = {0x53, 0x01, 0x00};

        assert_int_equal(cert_cache_store(cache, head_a, sizeof(head_a), der_a, sizeof(der_a)), 0);
        /* Point head_c at junk: not a card id, a path, too long. */
        assert_int_equal(sha256_hex(head_c, sizeof(head_c), hh), 0);
        snprintf(name, sizeof(name), "%s.head", hh);
        static const char *const junk[] = {
                "../../../../etc/passwd\n",
                "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\n",
                "0123\n",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(junk); i++) {
                write_text(name, junk[i], strlen(junk[i]));
                assert_int_equal(cert_cache_lookup(cache, head_c, sizeof(head_c), &der, &len, id), -ENOENT);
        }

        /* Heads are bounded; no cache directory given. */
        static uint8_t big[CERT_CACHE_HEAD_MAX + 1];
        assert_int_equal(cert_cache_lookup(cache, big, sizeof(big), &der, &len, id), -EINVAL);
        assert_int_equal(cert_cache_store(cache, big, sizeof(big), der_a, sizeof(der_a)), -EINVAL);
        assert_int_equal(cert_cache_lookup(NULL, head_a, sizeof(head_a), &der, &len, id), -EINVAL);
        assert_int_equal(cert_cache_store(cache, head_a, sizeof(head_a), der_a, 0), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_store_and_lookup),
                cmocka_unit_test(test_damaged_entries_are_misses),
                cmocka_unit_test(test_bad_head_files),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
