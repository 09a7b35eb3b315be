/* Unit tests for the policy bundle: a bundle signed in the test, tampering, wrong key, missing sig, strict
 * fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/policy.h"
#include "mamori/signed-json.h"

#define CARD_A "1111111111111111111111111111111111111111111111111111111111111111"
#define CARD_B "2222222222222222222222222222222222222222222222222222222222222222"
#define CARD_C "0000000000000000000000000000000000000000000000000000000000000abc"

/* DESIGN.md §8's example, with real card ids and one more of everything. */
static const char bundle[] =
        "{\"v\":1,\"serial\":42,\"issued\":1763880000000000,\"expires\":1763966400000000,\"emergency\":"
        "false,\n"
        " \"offices\":[{\"id\":\"chuo-passport\",\"hours\":\"08:30-17:15\"},{\"id\":\"funabashi-tax\"}],\n"
        " \"terminals\":[{\"id\":\"T-0002\",\"office\":\"funabashi-tax\"},{\"id\":\"T-0001\",\"office\":"
        "\"chuo-passport\"}],\n"
        " \"operators\":[{\"id\":\"OP0001\",\"name\":\"\xe5\xae\x88\xe6\xa3\xae \xe8\x8a\xb1\xe5\xad\x90\","
        "\"offices\":[\"chuo-passport\"],\"status\":\"active\",\"roles\":[\"counter\"],\"pin_changed\":"
        "1750000000000000},\n"
        "   {\"id\":\"OP0003\",\"offices\":[\"funabashi-tax\"],\"status\":\"suspended\"},\n"
        "   {\"id\":\"OP0002\",\"offices\":[\"funabashi-tax\"],\"status\":\"active\"}],\n"
        " \"groups\":[{\"id\":\"G-tax-1\",\"offices\":[\"funabashi-tax\"],\"members\":[\"OP0002\","
        "\"OP0003\"]}],\n"
        " \"cards\":[{\"id\":\"" CARD_B
        "\",\"kind\":\"group\",\"group\":\"G-tax-1\",\"status\":\"suspended\"},\n"
        "   {\"id\":\"" CARD_A "\",\"kind\":\"individual\",\"operator\":\"OP0001\",\"status\":\"active\"},\n"
        "   {\"id\":\"" CARD_C
        "\",\"kind\":\"individual\",\"operator\":\"OP0002\",\"status\":\"returned\"}]}\n";

static EVP_PKEY *signer;

static int setup(void **state)
{
        return ed25519_generate(&signer);
}

static int teardown(void **state)
{
        EVP_PKEY_free(signer);
        return 0;
}

/* Parse text, sign it with key, return the JCS line. */
static char *sign_text(const char *text, EVP_PKEY *key, size_t *ret_len)
{
        _cleanup_json_ JsonValue *v = NULL;
        char *out = NULL;

        assert_int_equal(json_parse(text, strlen(text), NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL), 0);
        assert_int_equal(signed_json_sign(v, key, NULL), 0);
        assert_int_equal(jcs_serialize(v, NULL, &out, ret_len), 0);
        return out;
}

/* Replace the first occurrence of from by to in bundle, then sign. */
static int parse_variant(const char *from, const char *to)
{
        char text[sizeof(bundle) + 512];
        const char *at = strstr(bundle, from);
        _cleanup_policy_ Policy *p = NULL;
        _cleanup_free_ char *signed_text = NULL;
        size_t len;

        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - bundle), bundle, to, at + strlen(from));
        signed_text = sign_text(text, signer, &len);
        int r = policy_parse(signed_text, len, signer, &p);
        assert_true(r < 0 ? p == NULL : p != NULL);
        return r;
}

static void test_valid(void **state)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_policy_ Policy *p = NULL;
        size_t len;

        text = sign_text(bundle, signer, &len);
        assert_int_equal(policy_parse(text, len, signer, &p), 0);
        assert_int_equal(p->serial, 42);
        assert_true(p->issued == INT64_C(1763880000000000));
        assert_true(p->expires == INT64_C(1763966400000000));
        assert_false(p->emergency);
        assert_int_equal(p->n_offices, 2);
        assert_int_equal(p->n_terminals, 2);
        assert_int_equal(p->n_operators, 3);
        assert_int_equal(p->n_groups, 1);
        assert_int_equal(p->n_cards, 3);

        const PolicyCard *a = policy_find_card(p, CARD_A), *b = policy_find_card(p, CARD_B),
                         *c = policy_find_card(p, CARD_C);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_int_equal(a->kind, POLICY_CARD_INDIVIDUAL);
        assert_string_equal(a->operator, "OP0001");
        assert_null(a->group);
        assert_int_equal(a->status, POLICY_STATUS_ACTIVE);
        assert_int_equal(b->kind, POLICY_CARD_GROUP);
        assert_string_equal(b->group, "G-tax-1");
        assert_int_equal(b->status, POLICY_STATUS_SUSPENDED);
        assert_int_equal(c->status, POLICY_STATUS_RETURNED);
        assert_null(policy_find_card(p, "3333333333333333333333333333333333333333333333333333333333333333"));
        assert_null(policy_find_card(p, NULL));

        const PolicyOperator *op = policy_find_operator(p, "OP0001");
        assert_non_null(op);
        assert_string_equal(op->name, "\xe5\xae\x88\xe6\xa3\xae \xe8\x8a\xb1\xe5\xad\x90");
        assert_int_equal(op->n_roles, 1);
        assert_string_equal(op->roles[0], "counter");
        assert_true(op->pin_changed == INT64_C(1750000000000000));
        assert_true(policy_operator_in_office(op, "chuo-passport"));
        assert_false(policy_operator_in_office(op, "funabashi-tax"));
        const PolicyOperator *op3 = policy_find_operator(p, "OP0003");
        assert_int_equal(op3->status, POLICY_STATUS_SUSPENDED);
        assert_null(op3->name);
        assert_int_equal(op3->n_roles, 0);
        assert_true(op3->pin_changed == -1);
        assert_null(policy_find_operator(p, "OP0004"));

        const PolicyGroup *g = policy_find_group(p, "G-tax-1");
        assert_non_null(g);
        assert_true(policy_group_has_member(g, "OP0003"));
        assert_false(policy_group_has_member(g, "OP0001"));
        assert_true(policy_group_in_office(g, "funabashi-tax"));

        const PolicyTerminal *t = policy_find_terminal(p, "T-0001");
        assert_non_null(t);
        assert_string_equal(t->office, "chuo-passport");
        assert_string_equal(policy_find_office(p, t->office)->hours, "08:30-17:15");
        assert_null(policy_find_office(p, "funabashi-tax")->hours);
        assert_null(policy_find_terminal(p, "T-0003"));

        assert_false(policy_is_stale(p, INT64_C(1763966400000000)));
        assert_true(policy_is_stale(p, INT64_C(1763966400000001)));
}

static void test_signature_failures(void **state)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_pkey_ EVP_PKEY *other = NULL;
        Policy *p = NULL;
        size_t len;
        char *at;

        text = sign_text(bundle, signer, &len);

        /* tampered: serial 42 → 43, a suspended card made active */
        at = strstr(text, "\"serial\":42");
        assert_non_null(at);
        at[10] = '3';
        assert_int_equal(policy_parse(text, len, signer, &p), -EKEYREJECTED);
        at[10] = '2';
        at = strstr(text, "\"status\":\"suspended\"");
        assert_non_null(at);
        memcpy(at + 10, "SUSPENDED", 9); /* still valid JSON: the signature is what refuses it */
        assert_int_equal(policy_parse(text, len, signer, &p), -EKEYREJECTED);
        free(text);
        text = sign_text(bundle, signer, &len);

        /* every single-bit flip in the signed text is refused one way or another */
        size_t accepted = 0;
        for (size_t i = 0; i < len; i += 7) {
                text[i] ^= 0x01;
                if (policy_parse(text, len, signer, &p) == 0) {
                        accepted++;
                        p = policy_free(p);
                }
                text[i] ^= 0x01;
        }
        assert_int_equal(accepted, 0);

        /* wrong key */
        assert_int_equal(ed25519_generate(&other), 0);
        assert_int_equal(policy_parse(text, len, other, &p), -EKEYREJECTED);
        assert_string_equal(policy_error_reason(-EKEYREJECTED), "bad-signature");

        /* missing sig */
        assert_int_equal(policy_parse(bundle, strlen(bundle), signer, &p), -ENOKEY);
        assert_string_equal(policy_error_reason(-ENOKEY), "unsigned");

        /* sig that is not 64 bytes of canonical base64 */
        at = strstr(text, "\"sig\":\"");
        at[7] = '*';
        assert_int_equal(policy_parse(text, len, signer, &p), -EBADMSG);
        assert_string_equal(policy_error_reason(-EBADMSG), "malformed");
        assert_null(p);

        /* the same signed content, pretty-printed, still verifies (sig is over JCS of the content) */
        _cleanup_free_ char *pretty = NULL;
        _cleanup_json_ JsonValue *v = NULL;
        _cleanup_free_ char *line = sign_text(bundle, signer, &len);
        assert_int_equal(json_parse(line, len, NULL, 0, &v, NULL), 0);
        const char *sig;
        assert_int_equal(json_object_get_string(v, "sig", &sig), 0);
        assert_true(asprintf(&pretty, "%.*s,\n  \"sig\": \"%s\"\n}\n", (int)(strrchr(bundle, '}') - bundle),
                             bundle, sig) > 0);
        assert_int_equal(policy_parse(pretty, strlen(pretty), signer, &p), 0);
        p = policy_free(p);
}

static void test_duplicate_json_keys(void **state)
{
        /* Duplicate keys are refused by the JSON layer before any signature question. */
        const char *dup = "{\"v\":1,\"serial\":1,\"serial\":2,\"sig\":\"x\"}";
        Policy *p = NULL;
        assert_int_equal(policy_parse(dup, strlen(dup), signer, &p), -EBADMSG);
}

static void test_malformed_but_signed(void **state)
{
        static const struct {
                const char *from, *to;
                int err;
        } table[] = {
                {"\"v\":1", "\"v\":2", -EBADMSG},
                {"\"serial\":42", "\"serial\":-1", -EBADMSG},
                {"\"serial\":42", "\"serial\":\"42\"", -EBADMSG},
                {"\"expires\":1763966400000000", "\"expires\":1", -EBADMSG}, /* before issued */
                {"\"emergency\":false", "\"emergency\":0", -EBADMSG},
                {"\"emergency\":false", "\"emergency\":false,\"extra\":1", -EBADMSG},
                {"\"hours\":\"08:30-17:15\"", "\"hours\":\"8:30-17:15\"", -EBADMSG},
                {"\"hours\":\"08:30-17:15\"", "\"hours\":\"17:15-08:30\"", -EBADMSG},
                {"\"hours\":\"08:30-17:15\"", "\"hours\":\"08:30-24:01\"", -EBADMSG},
                {"\"office\":\"funabashi-tax\"", "\"office\":\"nowhere\"", -EBADMSG},
                {"\"id\":\"T-0002\"", "\"id\":\"T-0001\"", -EBADMSG}, /* duplicate terminal id */
                {"\"id\":\"T-0002\"", "\"id\":\"T 0002\"", -EBADMSG},
                {"\"id\":\"T-0002\"", "\"id\":\"\"", -EBADMSG},
                {"\"status\":\"active\",\"roles\"", "\"status\":\"returned\",\"roles\"", -EBADMSG},
                {"\"status\":\"active\",\"roles\"", "\"status\":\"Active\",\"roles\"", -EBADMSG},
                {"\"roles\":[\"counter\"]", "\"roles\":[\"counter\",\"counter\"]", -EBADMSG},
                {"\"roles\":[\"counter\"]", "\"roles\":\"counter\"", -EBADMSG},
                {"\"pin_changed\":1750000000000000", "\"pin_changed\":-5", -EBADMSG},
                {"\"offices\":[\"chuo-passport\"]", "\"offices\":[\"atlantis\"]", -EBADMSG},
                {"\"name\":\"", "\"name\":\"\\n", -EBADMSG},
                {"\"members\":[\"OP0002\",\"OP0003\"]", "\"members\":[\"OP0002\",\"OP0009\"]", -EBADMSG},
                {"\"kind\":\"group\",\"group\"", "\"kind\":\"individual\",\"group\"", -EBADMSG},
                {"\"kind\":\"group\",\"group\":\"G-tax-1\"", "\"kind\":\"group\",\"group\":\"G-x\"",
                 -EBADMSG},
                {"\"kind\":\"group\"", "\"kind\":\"shared\"", -EBADMSG},
                {"\"kind\":\"individual\",\"operator\":\"OP0001\"",
                 "\"kind\":\"individual\",\"operator\":\"OP0001\",\"group\":\"G-tax-1\"", -EBADMSG},
                {"\"status\":\"returned\"", "\"status\":\"lost\"", -EBADMSG},
                {CARD_A, "1111111111111111111111111111111111111111111111111111111111111111a", -EBADMSG},
                {CARD_A, "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB", -EBADMSG},
                {CARD_A, CARD_B, -EBADMSG}, /* duplicate card id */
                {"\"cards\":[", "\"cards\":{},\"x\":[", -EBADMSG},
                {" \"groups\":[{\"id\":\"G-tax-1\",\"offices\":[\"funabashi-tax\"],\"members\":[\"OP0002\","
                 "\"OP0003\"]}],\n",
                 "", -EBADMSG}, /* missing list */
        };

        assert_int_equal(parse_variant("\"serial\":42", "\"serial\":42"), 0);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                int r = parse_variant(table[i].from, table[i].to);
                if (r != table[i].err)
                        print_error("variant %zu (%s → %s): %d\n", i, table[i].from, table[i].to, r);
                assert_int_equal(r, table[i].err);
        }
}

static void test_load_file_and_serial(void **state)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_policy_ Policy *old = NULL, *cur = NULL;
        char path[] = "/tmp/mamori-test-policy-XXXXXX";
        Policy *p = NULL;
        size_t len;
        int fd;

        text = sign_text(bundle, signer, &len);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        assert_int_equal(write(fd, "\n", 1), 1);
        close(fd);
        assert_int_equal(policy_load_file(path, signer, &cur), 0);
        unlink(path);
        assert_int_equal(policy_load_file(path, signer, &p), -ENOENT);

        free(text);
        char older[sizeof(bundle)];
        memcpy(older, bundle, sizeof(bundle));
        memcpy(strstr(older, "\"serial\":42"), "\"serial\":41", 11);
        text = sign_text(older, signer, &len);
        assert_int_equal(policy_parse(text, len, signer, &old), 0);
        assert_int_equal(policy_check_serial(cur, old), -ESTALE);
        assert_int_equal(policy_check_serial(old, cur), 0);
        assert_int_equal(policy_check_serial(cur, cur), 0);
        assert_int_equal(policy_check_serial(NULL, old), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_signature_failures),
                cmocka_unit_test(test_duplicate_json_keys),
                cmocka_unit_test(test_malformed_but_signed),
                cmocka_unit_test(test_load_file_and_serial),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
