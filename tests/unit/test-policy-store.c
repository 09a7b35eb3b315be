/* Unit tests for the terminal's policy store: accept, unchanged, rollback, tampering, restart. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <openssl/pem.h>

#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/policy-store.h"
#include "mamori/signed-json.h"

#define CARD_A "1111111111111111111111111111111111111111111111111111111111111111"

struct fixture {
        char dir[64];
        char policy_dir[128], bundle[192], signer_path[128], identity[128];
        EVP_PKEY *signer, *other;
        struct agent_config config;
};

static char *signed_bundle(EVP_PKEY *key, int64_t serial, const char *op_status, size_t *ret_len)
{
        char text[1024];
        _cleanup_json_ JsonValue *v = NULL;
        char *out = NULL;

        snprintf(text, sizeof(text),
                 "{\"v\":1,\"serial\":%lld,\"issued\":1,\"expires\":9000000000000000,\"emergency\":false,"
                 "\"offices\":[{\"id\":\"chuo\"}],\"terminals\":[{\"id\":\"T-0001\",\"office\":\"chuo\"}],"
                 "\"operators\":[{\"id\":\"OP0001\",\"offices\":[\"chuo\"],\"status\":\"%s\"}],"
                 "\"groups\":[],\"cards\":[{\"id\":\"" CARD_A
                 "\",\"kind\":\"individual\",\"operator\":\"OP0001\",\"status\":\"active\"}]}",
                 (long long)serial, op_status);
        assert_int_equal(json_parse(text, strlen(text), NULL, 0, &v, NULL), 0);
        assert_int_equal(signed_json_sign(v, key, NULL), 0);
        assert_int_equal(jcs_serialize(v, NULL, &out, ret_len), 0);
        return out;
}

static void put_bundle(struct fixture *f, EVP_PKEY *key, int64_t serial, const char *op_status)
{
        size_t len;
        char *b = signed_bundle(key, serial, op_status, &len);
        assert_int_equal(write_file_atomic(f->bundle, b, len, 0644), 0);
        free(b);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        FILE *out;

        strcpy(f->dir, "/tmp/mamori-pstore-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->policy_dir, sizeof(f->policy_dir), "%s/policy", f->dir);
        snprintf(f->bundle, sizeof(f->bundle), "%s/policy.json", f->policy_dir);
        snprintf(f->signer_path, sizeof(f->signer_path), "%s/signer.pub", f->dir);
        snprintf(f->identity, sizeof(f->identity), "%s/keys/identity.pem", f->dir);
        assert_int_equal(mkdir(f->policy_dir, 0755), 0);
        assert_int_equal(ed25519_generate(&f->signer), 0);
        assert_int_equal(ed25519_generate(&f->other), 0);
        out = fopen(f->signer_path, "we");
        assert_non_null(out);
        assert_int_equal(PEM_write_PUBKEY(out, f->signer), 1);
        fclose(out);
        assert_int_equal(agent_config_defaults(&f->config), 0);
        free(f->config.policy_directory);
        free(f->config.policy_signer_key);
        free(f->config.identity_key);
        f->config.policy_directory = strdup(f->policy_dir);
        f->config.policy_signer_key = strdup(f->signer_path);
        f->config.identity_key = strdup(f->identity);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        EVP_PKEY_free(f->signer);
        EVP_PKEY_free(f->other);
        agent_config_free(&f->config);
        free(f);
        return 0;
}

static void expect(PolicyStore *s, int outcome, const char *reason, int64_t current_serial)
{
        struct policy_load_result res;
        assert_int_equal(policy_store_reload(s, &res), 0);
        assert_int_equal(res.outcome, outcome);
        if (reason)
                assert_string_equal(res.reason, reason);
        if (current_serial < 0)
                assert_null(policy_store_current(s));
        else {
                assert_non_null(policy_store_current(s));
                assert_int_equal(policy_store_current(s)->serial, current_serial);
        }
}

static void test_lifecycle(void **state)
{
        struct fixture *f = *state;
        _cleanup_(policy_store_freep) PolicyStore *s = NULL;

        assert_int_equal(policy_store_open(&f->config, &s), 0);
        expect(s, POLICY_LOAD_MISSING, "missing", -1);

        put_bundle(f, f->signer, 42, "active");
        expect(s, POLICY_LOAD_ACCEPTED, NULL, 42);
        expect(s, POLICY_LOAD_UNCHANGED, NULL, 42);

        /* An older bundle, validly signed: a replay. The current one stays. */
        put_bundle(f, f->signer, 41, "active");
        expect(s, POLICY_LOAD_REJECTED, "rollback", 42);

        /* Signed by another key. */
        put_bundle(f, f->other, 50, "active");
        expect(s, POLICY_LOAD_REJECTED, "bad-signature", 42);

        /* Garbage and a half-written file. */
        assert_int_equal(write_file_atomic(f->bundle, "{\"v\":1,\"ser", 11, 0644), 0);
        expect(s, POLICY_LOAD_REJECTED, "malformed", 42);

        /* The same serial with other content. */
        put_bundle(f, f->signer, 42, "suspended");
        expect(s, POLICY_LOAD_REJECTED, "serial-reused", 42);

        /* A newer one, with a retired operator. */
        put_bundle(f, f->signer, 43, "retired");
        expect(s, POLICY_LOAD_ACCEPTED, NULL, 43);
        assert_int_equal(policy_find_operator(policy_store_current(s), "OP0001")->status,
                         POLICY_STATUS_RETIRED);
}

/* After a restart the highest serial ever accepted still guards against a replayed bundle. */
static void test_rollback_across_restart(void **state)
{
        struct fixture *f = *state;
        _cleanup_(policy_store_freep) PolicyStore *s = NULL;
        _cleanup_free_ char *saved = NULL;
        size_t n;

        assert_int_equal(policy_store_open(&f->config, &s), 0);
        put_bundle(f, f->signer, 7, "active");
        expect(s, POLICY_LOAD_ACCEPTED, NULL, 7);
        s = policy_store_free(s);

        char path[192];
        snprintf(path, sizeof(path), "%s/keys/" POLICY_STORE_SERIAL_FILE, f->dir);
        assert_int_equal(read_file_bounded(path, 64, &saved, &n), 0);
        assert_string_equal(saved, "7\n");

        /* A replayed older bundle: the saved copy of serial 7 stays in force across the restart. */
        put_bundle(f, f->signer, 6, "active");
        assert_int_equal(policy_store_open(&f->config, &s), 0);
        assert_non_null(policy_store_current(s));
        assert_int_equal(policy_store_current(s)->serial, 7);
        expect(s, POLICY_LOAD_REJECTED, "rollback", 7);
        put_bundle(f, f->signer, 8, "active");
        expect(s, POLICY_LOAD_ACCEPTED, NULL, 8);
        s = policy_store_free(s);

        /* A damaged copy is ignored, never trusted: no current bundle until a good one arrives. */
        snprintf(path, sizeof(path), "%s/keys/" POLICY_STORE_COPY_FILE, f->dir);
        assert_int_equal(write_file_atomic(path, "{\"v\":1}", 7, 0600), 0);
        assert_int_equal(policy_store_open(&f->config, &s), 0);
        assert_null(policy_store_current(s));
        expect(s, POLICY_LOAD_ACCEPTED, NULL, 8);
}

static void test_missing_signer_fails(void **state)
{
        struct fixture *f = *state;
        PolicyStore *s = NULL;

        free(f->config.policy_signer_key);
        f->config.policy_signer_key = strdup("/nonexistent/signer.pub");
        assert_int_equal(policy_store_open(&f->config, &s), -ENOENT);
        assert_null(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollback_across_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_signer_fails, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
