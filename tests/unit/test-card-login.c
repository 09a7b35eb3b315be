/* Unit tests for the card-login engine (auth/card-login.c) on the software PIV card: both step orders,
 * exchanges after the PIN, refusals that never cost a PIN try, the signature never skipped, the cache. */
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
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "mamori/card-login.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "piv-sim.h"

/* ---------- a CA, an operator certificate on the card, a policy naming it ---------- */

struct bench {
        struct sim s;
        struct card_transport t;
        EVP_PKEY *ca_key;
        CertCheck *anchors;
        char card_id[CARD_ID_LEN + 1];
        PolicyCard card;
        PolicyOperator op;
        PolicyOffice office;
        PolicyTerminal terminal;
        Policy policy;
        struct auth_context ctx;
};

static char *chuo[] = {"chuo"};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
        assert_non_null(e);
        assert_int_equal(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, long serial)
{
        X509 *x = X509_new();
        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                   -1, -1, 0);
        X509_set_pubkey(x, key);
        return x;
}

static void bench_init(struct bench *b, const char *kind)
{
        memset(b, 0, sizeof(*b));
        sim_init(&b->s, kind);

        /* The card's certificate, issued by a test CA with digitalSignature usage. */
        b->ca_key = gen_key("P-256");
        X509 *ca = new_cert(b->ca_key, "test operator CA", 1);
        X509_set_issuer_name(ca, X509_get_subject_name(ca));
        add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
        assert_true(X509_sign(ca, b->ca_key, EVP_sha256()) > 0);
        X509 *leaf = new_cert(b->s.key, "OP0001", 7);
        X509_set_issuer_name(leaf, X509_get_subject_name(ca));
        add_ext(leaf, ca, NID_key_usage, "critical,digitalSignature");
        assert_true(X509_sign(leaf, b->ca_key, EVP_sha256()) > 0);
        OPENSSL_free(b->s.der);
        b->s.der = NULL;
        int l = i2d_X509(leaf, &b->s.der);
        assert_true(l > 0);
        b->s.der_len = (size_t)l;
        b->s.obj_len = build_obj(b->s.obj, sizeof(b->s.obj), b->s.der, b->s.der_len, 0x00);

        BIO *bio = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_X509(bio, ca), 1);
        char *pem = NULL;
        long pem_len = BIO_get_mem_data(bio, &pem);
        assert_int_equal(cert_check_new(&b->anchors), 0);
        assert_true(cert_check_add_anchors_pem(b->anchors, pem, (size_t)pem_len) > 0);
        BIO_free(bio);
        X509_free(leaf);
        X509_free(ca);

        assert_int_equal(card_id_from_cert(b->s.der, b->s.der_len, b->card_id), 0);
        memcpy(b->card.id, b->card_id, sizeof(b->card_id));
        b->card.kind = POLICY_CARD_INDIVIDUAL;
        b->card.operator= "OP0001";
        b->card.status = POLICY_STATUS_ACTIVE;
        b->op = (PolicyOperator){
                .id = "OP0001", .offices = chuo, .n_offices = 1, .status = POLICY_STATUS_ACTIVE};
        b->office = (PolicyOffice){.id = "chuo"};
        b->terminal = (PolicyTerminal){.id = "T-0001", .office = "chuo"};
        int64_t now = now_realtime_usec();
        b->policy = (Policy){
                .serial = 1,
                .issued = now - INT64_C(3600000000),
                .expires = now + INT64_C(3600000000),
                .offices = &b->office,
                .n_offices = 1,
                .terminals = &b->terminal,
                .n_terminals = 1,
                .operators = &b->op,
                .n_operators = 1,
                .cards = &b->card,
                .n_cards = 1,
        };
        b->ctx = (struct auth_context){
                .policy = &b->policy,
                .terminal_id = "T-0001",
                .office = "chuo",
                .now_usec = now,
                .stale_policy = STALE_POLICY_DENY,
        };
        b->t = (struct card_transport){.transmit = sim_transmit, .userdata = &b->s};
}

static void bench_done(struct bench *b)
{
        cert_check_free(b->anchors);
        EVP_PKEY_free(b->ca_key);
        sim_done(&b->s);
}

/* ---------- the two step orders ---------- */

static void test_ctl_order_reads_certificate_first(void **state)
{
        /* mamorictl auth-test: prepare (SELECT + certificate) → precheck → PIN → decide. */
        struct bench b;
        CardLogin *l = NULL;

        bench_init(&b, "P-256");
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
        assert_string_equal(card_login_info(l)->card_id, b.card_id);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
        unsigned before_pin = card_login_info(l)->exchanges;
        assert_int_equal(card_login_verify(l, "123456"), 0);
        card_login_detach(l);
        struct auth_decision d = card_login_decide(l, NULL, &b.ctx);
        assert_int_equal(d.reason, AUTH_ALLOW);
        assert_string_equal(d.operator_id, "OP0001");
        const struct card_login_info *i = card_login_info(l);
        assert_int_equal(i->exchanges_after_pin, 2); /* VERIFY + GENERAL AUTHENTICATE */
        assert_int_equal(i->exchanges, before_pin + 2);
        assert_int_equal(i->exchanges, b.s.exchanges);
        assert_true(i->pin_sent);
        assert_false(i->cert_from_cache);
        card_login_free(l);
        bench_done(&b);
}

static void test_daemon_order_selects_only(void **state)
{
        /* mamorid: certificate known from insertion → precheck on the loop → SELECT while the PIN
         * is typed → VERIFY + GENERAL AUTHENTICATE → decide with the policy as it is then. */
        static const char *const kinds[] = {"P-256", "P-384", "rsa"};
        for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                struct bench b;
                CardLogin *l = NULL;

                bench_init(&b, kinds[k]);
                assert_int_equal(card_login_new(&l), 0);
                assert_int_equal(card_login_set_card(l, true, 0, b.s.der, b.s.der_len), 0);
                assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
                assert_int_equal(b.s.exchanges, 0); /* decided without touching the card */
                assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
                assert_int_equal(b.s.exchanges, 1); /* SELECT only: the certificate is known */
                assert_int_equal(card_login_verify(l, "123456"), 0);
                card_login_detach(l);
                assert_int_equal(card_login_decide(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
                /* RSA-2048: chaining + GET RESPONSE (DESIGN.md §3). */
                assert_int_equal(card_login_info(l)->exchanges_after_pin, streq(kinds[k], "rsa") ? 4 : 2);
                card_login_free(l);
                bench_done(&b);
        }
}

static void test_exchange_budget(void **state)
{
        /* The DESIGN.md budget: ≤ 4 exchanges with a cached certificate, also against a T=0-style
         * card that answers SELECT with 61 xx. (Was test-card's card_login() budget test.) */
        static const char *const kinds[] = {"P-256", "P-384"};
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                struct bench b;
                CardLogin *l = NULL;

                bench_init(&b, kinds[i]);
                b.s.select_61 = true;
                static const struct {
                        const char *pin;
                        int want;
                } logins[] = {{"123456", 0}, {"12345", CARD_E_BAD_PIN}, {"123457", CARD_E_PIN_WRONG}};
                for (size_t n = 0; n < ELEMENTSOF(logins); n++) {
                        assert_int_equal(card_login_new(&l), 0);
                        assert_int_equal(card_login_set_card(l, true, 0, b.s.der, b.s.der_len), 0);
                        assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
                        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
                        assert_int_equal(card_login_verify(l, logins[n].pin), logins[n].want);
                        if (n == 0)
                                assert_true(card_login_info(l)->exchanges <= 4);
                        if (logins[n].want == CARD_E_PIN_WRONG) {
                                assert_int_equal(card_login_info(l)->tries_left, 2);
                                struct auth_decision d = card_login_decide(l, NULL, &b.ctx);
                                assert_int_equal(d.reason, AUTH_PIN_WRONG);
                                assert_int_equal(d.tries_left, 2);
                        }
                        l = card_login_free(l);
                }
                bench_done(&b);
        }
}

/* ---------- what the engine refuses to do ---------- */

static void test_refused_card_costs_no_pin_try(void **state)
{
        static const PolicyStatus statuses[] = {POLICY_STATUS_SUSPENDED, POLICY_STATUS_RETURNED};
        static const enum auth_reason want[] = {AUTH_CARD_SUSPENDED, AUTH_CARD_RETURNED};
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++) {
                struct bench b;
                CardLogin *l = NULL;

                bench_init(&b, "P-256");
                b.card.status = statuses[i];
                assert_int_equal(card_login_new(&l), 0);
                assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
                assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, want[i]);
                unsigned before = b.s.exchanges;
                assert_int_equal(card_login_verify(l, "654321"), -EPERM);
                assert_int_equal(b.s.exchanges, before);
                assert_int_equal(b.s.tries, 3);
                assert_false(card_login_info(l)->pin_sent);
                assert_int_equal(card_login_decide(l, NULL, &b.ctx).reason, want[i]);
                card_login_free(l);
                bench_done(&b);
        }
}

static void test_no_verify_without_precheck(void **state)
{
        struct bench b;
        CardLogin *l = NULL;

        bench_init(&b, "P-256");
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
        assert_int_equal(card_login_verify(l, "123456"), -EPERM);
        /* No anchors: every certificate is untrusted, the PIN never goes out. */
        assert_int_equal(card_login_precheck(l, NULL, &b.ctx).reason, AUTH_CERT_UNTRUSTED);
        assert_int_equal(card_login_verify(l, "123456"), -EPERM);
        /* A decision with steps never taken does not allow. */
        assert_int_not_equal(card_login_decide(l, NULL, &b.ctx).reason, AUTH_ALLOW);
        assert_int_equal(b.s.tries, 3);
        card_login_free(l);
        bench_done(&b);
}

static void test_signature_never_skipped(void **state)
{
        struct bench b;
        CardLogin *l = NULL;

        bench_init(&b, "P-256");
        b.s.corrupt_sig = true;
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_set_card(l, true, 0, b.s.der, b.s.der_len), 0);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
        assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
        assert_int_equal(card_login_verify(l, "123456"), CARD_E_SIG_INVALID);
        card_login_detach(l);
        assert_int_equal(card_login_decide(l, b.anchors, &b.ctx).reason, AUTH_SIGNATURE_INVALID);
        card_login_free(l);
        bench_done(&b);
}

static void test_policy_changed_while_typing(void **state)
{
        /* mamorid decides again after the PIN: a card suspended meanwhile loses. */
        struct bench b;
        CardLogin *l = NULL;

        bench_init(&b, "P-256");
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_set_card(l, true, 0, b.s.der, b.s.der_len), 0);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
        assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
        assert_int_equal(card_login_verify(l, "123456"), 0);
        b.card.status = POLICY_STATUS_SUSPENDED;
        assert_int_equal(card_login_decide(l, b.anchors, &b.ctx).reason, AUTH_CARD_SUSPENDED);
        card_login_free(l);
        bench_done(&b);
}

static void test_card_absent_or_unreadable(void **state)
{
        struct bench b;
        CardLogin *l = NULL;

        bench_init(&b, "P-256");
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_set_card(l, false, 0, NULL, 0), 0);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_NO_CARD);
        l = card_login_free(l);

        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_set_card(l, true, CARD_E_MALFORMED, NULL, 0), 0);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_CARD_ERROR);
        l = card_login_free(l);

        /* A blocked PIN: pin-blocked, not a card error. */
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_set_card(l, true, 0, b.s.der, b.s.der_len), 0);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
        b.s.tries = 0; /* the simulated card then answers VERIFY with 69 83 */
        assert_int_equal(card_login_prepare(l, &b.t, NULL), 0);
        assert_int_equal(card_login_verify(l, "123456"), CARD_E_PIN_BLOCKED);
        assert_int_equal(card_login_decide(l, NULL, &b.ctx).reason, AUTH_PIN_BLOCKED);
        card_login_free(l);
        bench_done(&b);
}

static int fail_select(void *ud, const uint8_t *c, size_t clen, uint8_t *r, size_t *rlen)
{
        if (c[1] == 0xA4) {
                r[0] = 0x6A;
                r[1] = 0x82;
                *rlen = 2;
                return 0;
        }
        return sim_transmit(ud, c, clen, r, rlen);
}

static void test_prepare_failure_is_card_error(void **state)
{
        struct bench b;
        CardLogin *l = NULL;

        bench_init(&b, "P-256");
        struct card_transport t = {.transmit = fail_select, .userdata = &b.s};
        assert_int_equal(card_login_new(&l), 0);
        assert_int_equal(card_login_set_card(l, true, 0, b.s.der, b.s.der_len), 0);
        assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
        assert_int_equal(card_login_prepare(l, &t, NULL), CARD_E_NOT_FOUND);
        assert_int_equal(card_login_verify(l, "123456"), CARD_E_NOT_FOUND);
        assert_int_equal(b.s.tries, 3);
        card_login_detach(l);
        assert_int_equal(card_login_decide(l, NULL, &b.ctx).reason, AUTH_CARD_ERROR);
        assert_string_equal(card_login_info(l)->failed_step, "select");
        card_login_free(l);
        bench_done(&b);
}

static void test_certificate_cache(void **state)
{
        char dir[] = "/tmp/mamori-test-card-login-XXXXXX";
        struct bench b;
        CardLogin *l = NULL;

        assert_non_null(mkdtemp(dir));
        bench_init(&b, "P-256");
        for (int round = 0; round < 2; round++) {
                unsigned before = b.s.exchanges;
                assert_int_equal(card_login_new(&l), 0);
                assert_int_equal(card_login_prepare(l, &b.t, dir), 0);
                assert_int_equal(card_login_precheck(l, b.anchors, &b.ctx).reason, AUTH_ALLOW);
                assert_int_equal(card_login_verify(l, "123456"), 0);
                assert_int_equal(card_login_decide(l, NULL, &b.ctx).reason, AUTH_ALLOW);
                const struct card_login_info *i = card_login_info(l);
                assert_int_equal(i->cert_from_cache, round == 1);
                assert_string_equal(i->card_id, b.card_id);
                if (round == 1) /* SELECT, one GET DATA for the head, VERIFY, GENERAL AUTHENTICATE */
                        assert_int_equal(b.s.exchanges - before, 4);
                l = card_login_free(l);
        }
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        bench_done(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ctl_order_reads_certificate_first),
                cmocka_unit_test(test_daemon_order_selects_only),
                cmocka_unit_test(test_exchange_budget),
                cmocka_unit_test(test_refused_card_costs_no_pin_try),
                cmocka_unit_test(test_no_verify_without_precheck),
                cmocka_unit_test(test_signature_never_skipped),
                cmocka_unit_test(test_policy_changed_while_typing),
                cmocka_unit_test(test_card_absent_or_unreadable),
                cmocka_unit_test(test_prepare_failure_is_card_error),
                cmocka_unit_test(test_certificate_cache),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
