/* Unit tests of enrolment by request: the file codec (common/enrolment.c) and the terminal lifecycle in
 * the centre's store (store_terminal_enrol/rekey/retire/access). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mamori/enrolment.h"
#include "mamori/macro.h"
#include "store.h"

#define PUB                                                                                        \
        "-----BEGIN PUBLIC "                                                                       \
        "KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC " \
        "KEY-----\n"
#define CSR  "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
#define CERT "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
#define PRIV "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"

static void request_round_trip(void **state)
{
        struct enrolment_request r = {.identity_pem = (char *)PUB, .csr_pem = (char *)CSR}, back = {};
        _cleanup_free_ char *text = NULL;
        size_t len;

        strcpy(r.terminal, "T-0001");
        assert_int_equal(enrolment_request_format(&r, &text, &len), 0);
        assert_int_equal(text[len - 1], '\n');
        assert_int_equal(enrolment_request_parse(text, len, &back), 0);
        assert_string_equal(back.terminal, "T-0001");
        assert_string_equal(back.identity_pem, PUB);
        assert_string_equal(back.csr_pem, CSR);
        enrolment_request_done(&back);
        /* A private key is never formatted, under any name. */
        r.identity_pem = (char *)PRIV;
        assert_int_equal(enrolment_request_format(&r, &text, &len), -EINVAL);
}

static void enrolment_round_trip(void **state)
{
        struct enrolment e = {.url = (char *)"https://collector.example:8443",
                              .certificate_pem = (char *)CERT,
                              .collector_ca_pem = (char *)CERT,
                              .receipt_key_pem = (char *)PUB,
                              .policy_signer_pem = (char *)PUB},
                         back = {};
        _cleanup_free_ char *text = NULL;
        size_t len;

        strcpy(e.terminal, "T-0001");
        strcpy(e.office, "chuo");
        assert_int_equal(enrolment_format(&e, &text, &len), 0);
        assert_int_equal(enrolment_parse(text, len, &back), 0);
        assert_string_equal(back.url, e.url);
        assert_string_equal(back.office, "chuo");
        assert_string_equal(back.policy_signer_pem, PUB);
        enrolment_done(&back);
        e.url = (char *)"http://plain.example"; /* never without TLS */
        assert_int_equal(enrolment_format(&e, &text, &len), -EINVAL);
}

/* Requests the strict parser refuses, each with -EBADMSG. */
static void request_refusals(void **state)
{
        static const char *const bad[] = {
                "",
                "[]",
                "{\"v\":1,\"type\":\"mamori-enrolment-request\",\"terminal\":\"T-0001\",\"identity\":\"" PUB
                "\"}", /* no csr */
                "{\"v\":2,\"type\":\"mamori-enrolment-request\",\"terminal\":\"T-0001\",\"identity\":\"x\","
                "\"csr\":\"y\"}",
                "{\"v\":1,\"type\":\"mamori-enrolment\",\"terminal\":\"T-0001\",\"identity\":\"x\",\"csr\":"
                "\"y\"}",
        };
        struct enrolment_request r;
        char buf[1024];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(enrolment_request_parse(bad[i], strlen(bad[i]), &r), -EBADMSG);
        /* JSON escapes of the PEM newlines, then: a private key, an extra key, a bad id. */
        static const struct {
                const char *terminal, *identity, *extra;
        } cases[] = {
                {"T-0001", "-----BEGIN PRIVATE KEY-----\\nAA\\n-----END PRIVATE KEY-----\\n", ""},
                {"T-0001", "-----BEGIN PUBLIC KEY-----\\nAA\\n-----END PUBLIC KEY-----\\n",
                 ",\"key\":\"x\""},
                {"T 0001", "-----BEGIN PUBLIC KEY-----\\nAA\\n-----END PUBLIC KEY-----\\n", ""},
                {"", "-----BEGIN PUBLIC KEY-----\\nAA\\n-----END PUBLIC KEY-----\\n", ""},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int n = snprintf(
                        buf, sizeof(buf),
                        "{\"v\":1,\"type\":\"mamori-enrolment-request\",\"terminal\":\"%s\",\"identity\":"
                        "\"%s\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----\\nAA\\n-----END "
                        "CERTIFICATE REQUEST-----\\n\"%s}",
                        cases[i].terminal, cases[i].identity, cases[i].extra);
                assert_int_equal(enrolment_request_parse(buf, (size_t)n, &r), -EBADMSG);
        }
}

static void terminal_lifecycle(void **state)
{
        Store *s = NULL;
        bool retired = true;

        assert_int_equal(store_open(":memory:", &s), 0);
        /* Enrolled before certificates were pinned (no row): any certificate of the CA. */
        assert_int_equal(store_terminal_add(s, 1, "T-OLD", "chuo", PUB), 0);
        assert_int_equal(store_terminal_access(s, "T-OLD", "aa"), 0);
        assert_int_equal(store_terminal_enrol(s, 2, "T-0001", "chuo", PUB, "c1"), 0);
        assert_int_equal(store_terminal_enrol(s, 2, "T-0001", "chuo", PUB, "c9"), -EEXIST);
        assert_int_equal(store_terminal_access(s, "T-0001", "c1"), 0);
        assert_int_equal(store_terminal_access(s, "T-0001", "c2"), -EKEYREJECTED);
        assert_int_equal(store_terminal_rekey(s, 3, "T-0001", "c2"), 0);
        assert_int_equal(store_terminal_access(s, "T-0001", "c1"), -EKEYREJECTED);
        assert_int_equal(store_terminal_access(s, "T-0001", "c2"), 0);
        assert_int_equal(store_terminal_get(s, "T-0001", NULL, NULL, &retired), 0);
        assert_false(retired);
        assert_int_equal(store_terminal_retire(s, 4, "T-0001", "stolen"), 0);
        assert_int_equal(store_terminal_retire(s, 5, "T-0001", "again"), -EALREADY);
        assert_int_equal(store_terminal_access(s, "T-0001", "c2"), -EKEYREVOKED);
        assert_int_equal(store_terminal_rekey(s, 6, "T-0001", "c3"), -EKEYREVOKED);
        assert_int_equal(store_terminal_get(s, "T-0001", NULL, NULL, &retired), 0);
        assert_true(retired);
        assert_int_equal(store_terminal_retire(s, 7, "T-NONE", "x"), -ENOENT);
        assert_int_equal(store_terminal_rekey(s, 7, "T-NONE", "x"), -ENOENT);
        store_close(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(request_round_trip),
                cmocka_unit_test(enrolment_round_trip),
                cmocka_unit_test(request_refusals),
                cmocka_unit_test(terminal_lifecycle),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
