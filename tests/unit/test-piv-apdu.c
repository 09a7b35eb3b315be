/* Unit tests for the PIV APDU builders and response parsers (auth/piv-apdu.c), byte-exact. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "../../auth/piv-apdu.h"
#include "mamori/card.h"
#include "mamori/macro.h"

#define assert_bytes(buf, n, ...)                                 \
        do {                                                      \
                static const uint8_t _want[] = {__VA_ARGS__};     \
                assert_int_equal((n), sizeof(_want));             \
                assert_memory_equal((buf), _want, sizeof(_want)); \
        } while (0)

static void test_builders(void **state)
{
        uint8_t b[APDU_MAX_COMMAND];
        int n;

        n = piv_build_select(b, sizeof(b), piv_aid, sizeof(piv_aid));
        assert_bytes(b, n, 0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10,
                     0x00, 0x00);
        n = piv_build_get_data(b, sizeof(b), piv_tag_cert_auth, sizeof(piv_tag_cert_auth));
        assert_bytes(b, n, 0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00);
        n = piv_build_get_response(b, sizeof(b), 0x00);
        assert_bytes(b, n, 0x00, 0xC0, 0x00, 0x00, 0x00);
        n = piv_build_get_response(b, sizeof(b), 0x1F);
        assert_bytes(b, n, 0x00, 0xC0, 0x00, 0x00, 0x1F);
        n = piv_build_verify_status(b, sizeof(b), PIV_PIN_REF);
        assert_bytes(b, n, 0x00, 0x20, 0x00, 0x80);
        n = piv_build_verify_pin(b, sizeof(b), PIV_PIN_REF, "123456");
        assert_bytes(b, n, 0x00, 0x20, 0x00, 0x80, 0x08, '1', '2', '3', '4', '5', '6', 0xFF, 0xFF);
        n = piv_build_verify_pin(b, sizeof(b), PIV_PIN_REF, "12345678");
        assert_bytes(b, n, 0x00, 0x20, 0x00, 0x80, 0x08, '1', '2', '3', '4', '5', '6', '7', '8');
        n = piv_build_change_pin(b, sizeof(b), PIV_PIN_REF, "123456", "7654321");
        assert_bytes(b, n, 0x00, 0x24, 0x00, 0x80, 0x10, '1', '2', '3', '4', '5', '6', 0xFF, 0xFF, '7', '6',
                     '5', '4', '3', '2', '1', 0xFF);
        /* Too small a buffer is refused, not overrun. */
        assert_int_equal(piv_build_select(b, 14, piv_aid, sizeof(piv_aid)), -ENOBUFS);
}

static void test_pin_rejected(void **state)
{
        static const char *const bad[] = {"",       "12345",  "123456789",    "12345a",
                                          "12 456", "-12345", "１２３４５６", "123456\n"};
        uint8_t b[APDU_MAX_COMMAND];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                memset(b, 0xAA, sizeof(b));
                assert_int_equal(piv_build_verify_pin(b, sizeof(b), PIV_PIN_REF, bad[i]), -EINVAL);
                assert_int_equal(b[0], 0xAA); /* nothing written */
                assert_int_equal(piv_build_change_pin(b, sizeof(b), PIV_PIN_REF, "123456", bad[i]), -EINVAL);
                assert_int_equal(piv_build_change_pin(b, sizeof(b), PIV_PIN_REF, bad[i], "123456"), -EINVAL);
        }
        assert_int_equal(piv_build_verify_pin(b, sizeof(b), PIV_PIN_REF, NULL), -EINVAL);
}

static void test_auth_template(void **state)
{
        uint8_t d[48], t[300];
        int n;

        for (size_t i = 0; i < sizeof(d); i++)
                d[i] = (uint8_t)i;
        n = piv_build_auth_template(t, sizeof(t), d, 32);
        assert_int_equal(n, 2 + 2 + 2 + 32);
        assert_bytes(t, 6, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20);
        assert_memory_equal(t + 6, d, 32);

        n = piv_build_auth_template(t, sizeof(t), d, 48);
        assert_bytes(t, 6, 0x7C, 0x34, 0x82, 0x00, 0x81, 0x30);
        assert_int_equal(n, 54);

        uint8_t blk[PIV_RSA2048_BYTES];
        memset(blk, 0x5A, sizeof(blk));
        n = piv_build_auth_template(t, sizeof(t), blk, sizeof(blk));
        assert_int_equal(n, 4 + 2 + 4 + 256);
        assert_bytes(t, 10, 0x7C, 0x82, 0x01, 0x06, 0x82, 0x00, 0x81, 0x82, 0x01, 0x00);
        assert_int_equal(piv_build_auth_template(t, 100, blk, sizeof(blk)), -ENOBUFS);
}

/* The PKCS#1 block, put through a raw RSA private operation, must verify as an ordinary
 * RSASSA-PKCS1-v1_5 SHA-256 signature: that is what the card does with it. */
static void test_rsa_block(void **state)
{
        uint8_t msg[32], md[32], blk[PIV_RSA2048_BYTES], sig[PIV_RSA2048_BYTES];
        unsigned mdlen = 0;
        size_t siglen = sizeof(sig);

        memset(msg, 0x42, sizeof(msg));
        assert_int_equal(EVP_Digest(msg, sizeof(msg), md, &mdlen, EVP_sha256(), NULL), 1);
        assert_int_equal(piv_build_rsa2048_pkcs1_sha256(blk, md), PIV_RSA2048_BYTES);
        assert_int_equal(blk[0], 0x00);
        assert_int_equal(blk[1], 0x01);

        EVP_PKEY *pkey = EVP_RSA_gen(2048);
        assert_non_null(pkey);
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
        assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
        assert_int_equal(EVP_PKEY_sign(ctx, sig, &siglen, blk, sizeof(blk)), 1);
        EVP_PKEY_CTX_free(ctx);

        EVP_MD_CTX *m = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pkey), 1);
        assert_int_equal(EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg)), 1);
        EVP_MD_CTX_free(m);
        EVP_PKEY_free(pkey);
}

struct obj_case {
        const char *name;
        uint8_t in[24];
        size_t len;
        int result;
        size_t cert_off, cert_len;
        bool gzip;
};

static const struct obj_case obj_cases[] = {
        {"plain", {0x53, 0x09, 0x70, 0x02, 0x30, 0x00, 0x71, 0x01, 0x00, 0xFE, 0x00}, 11, 0, 4, 2, false},
        {"gzip bit", {0x53, 0x07, 0x70, 0x02, 0x1F, 0x8B, 0x71, 0x01, 0x01}, 9, 0, 4, 2, true},
        {"other info bits", {0x53, 0x06, 0x70, 0x01, 0x30, 0x71, 0x01, 0x02}, 8, 0, 4, 1, false},
        {"no 71, no FE", {0x53, 0x03, 0x70, 0x01, 0x30}, 5, 0, 4, 1, false},
        {"81 lengths", {0x53, 0x81, 0x04, 0x70, 0x81, 0x01, 0x30}, 7, 0, 6, 1, false},
        {"no 70", {0x53, 0x03, 0x71, 0x01, 0x00}, 5, -ENOENT, 0, 0, false},
        {"empty 70", {0x53, 0x02, 0x70, 0x00}, 4, -EBADMSG, 0, 0, false},
        {"two 70", {0x53, 0x06, 0x70, 0x01, 0x30, 0x70, 0x01, 0x30}, 8, -EBADMSG, 0, 0, false},
        {"71 too long", {0x53, 0x07, 0x70, 0x01, 0x30, 0x71, 0x02, 0x00, 0x00}, 9, -EBADMSG, 0, 0, false},
        {"wrong outer tag", {0x54, 0x03, 0x70, 0x01, 0x30}, 5, -EBADMSG, 0, 0, false},
        {"trailing bytes", {0x53, 0x03, 0x70, 0x01, 0x30, 0x00}, 6, -EBADMSG, 0, 0, false},
        {"inner past outer", {0x53, 0x03, 0x70, 0x05, 0x30, 0x00, 0x00, 0x00}, 8, -EBADMSG, 0, 0, false},
        {"truncated", {0x53, 0x09, 0x70, 0x02}, 4, -EBADMSG, 0, 0, false},
        {"empty", {0}, 0, -EBADMSG, 0, 0, false},
};

static void test_cert_object(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(obj_cases); i++) {
                const struct obj_case *c = &obj_cases[i];
                const uint8_t *cert = NULL;
                size_t len = 0;
                bool gz = false;
                uint8_t *buf = malloc(c->len ? c->len : 1);
                assert_non_null(buf);
                memcpy(buf, c->in, c->len);

                int r = piv_parse_cert_object(buf, c->len, &cert, &len, &gz);
                if (r != c->result)
                        fail_msg("%s: got %d, want %d", c->name, r, c->result);
                if (r == 0) {
                        assert_ptr_equal(cert, buf + c->cert_off);
                        assert_int_equal(len, c->cert_len);
                        assert_int_equal(gz, c->gzip);
                } else
                        assert_null(cert);
                free(buf);
        }
}

static void test_auth_response(void **state)
{
        static const uint8_t good[] = {0x7C, 0x05, 0x82, 0x03, 0x30, 0x01, 0x00};
        static const uint8_t no82[] = {0x7C, 0x03, 0x81, 0x01, 0x00};
        static const uint8_t empty82[] = {0x7C, 0x02, 0x82, 0x00};
        static const uint8_t outer[] = {0x7D, 0x03, 0x82, 0x01, 0x00};
        static const uint8_t trunc[] = {0x7C, 0x05, 0x82, 0x03, 0x30};
        static const uint8_t trailing[] = {0x7C, 0x03, 0x82, 0x01, 0x00, 0x90};
        const uint8_t *s = NULL;
        size_t n = 0;

        assert_int_equal(piv_parse_auth_response(good, sizeof(good), &s, &n), 0);
        assert_ptr_equal(s, good + 4);
        assert_int_equal(n, 3);
        assert_int_equal(piv_parse_auth_response(no82, sizeof(no82), &s, &n), -EBADMSG);
        assert_int_equal(piv_parse_auth_response(empty82, sizeof(empty82), &s, &n), -EBADMSG);
        assert_int_equal(piv_parse_auth_response(outer, sizeof(outer), &s, &n), -EBADMSG);
        assert_int_equal(piv_parse_auth_response(trunc, sizeof(trunc), &s, &n), -EBADMSG);
        assert_int_equal(piv_parse_auth_response(trailing, sizeof(trailing), &s, &n), -EBADMSG);
        assert_int_equal(piv_parse_auth_response(NULL, 0, &s, &n), -EBADMSG);
}

static void test_status_words(void **state)
{
        static const struct {
                uint16_t sw;
                int r;
                int tries;
        } t[] = {
                {0x9000, 0, -1},
                {0x63C3, CARD_E_PIN_WRONG, 3},
                {0x63C1, CARD_E_PIN_WRONG, 1},
                {0x63CF, CARD_E_PIN_WRONG, 15},
                {0x63C0, CARD_E_PIN_BLOCKED, 0},
                {0x6983, CARD_E_PIN_BLOCKED, -1},
                {0x6982, CARD_E_NOT_VERIFIED, -1},
                {0x6A82, CARD_E_NOT_FOUND, -1},
                {0x6A88, CARD_E_NOT_FOUND, -1},
                {0x6A80, CARD_E_REJECTED, -1},
                {0x6700, CARD_E_REJECTED, -1},
                {0x6D00, CARD_E_UNSUPPORTED, -1},
                {0x6E00, CARD_E_UNSUPPORTED, -1},
                {0x6A81, CARD_E_UNSUPPORTED, -1},
                {0x6300, CARD_E_CARD_ERROR, -1},
                {0x6F00, CARD_E_CARD_ERROR, -1},
                {0x6581, CARD_E_CARD_ERROR, -1},
                {0x0000, CARD_E_CARD_ERROR, -1},
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                unsigned tries = 99;
                int r = piv_status_to_errno(t[i].sw, &tries);
                if (r != t[i].r)
                        fail_msg("SW %04X: got %d, want %d", t[i].sw, r, t[i].r);
                if (t[i].tries >= 0)
                        assert_int_equal(tries, t[i].tries);
                else
                        assert_int_equal(tries, 99);
                assert_string_not_equal(card_strerror(r), "error");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builders),      cmocka_unit_test(test_pin_rejected),
                cmocka_unit_test(test_auth_template), cmocka_unit_test(test_rsa_block),
                cmocka_unit_test(test_cert_object),   cmocka_unit_test(test_auth_response),
                cmocka_unit_test(test_status_words),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
