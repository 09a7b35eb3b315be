/* Unit tests for the card operations (auth/card.c, card-piv.c) against a simulated PIV card and
 * scripted transports: good flows, exchange counts, and tables of malformed responses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include "../../auth/piv-apdu.h"
#include "../../auth/tlv.h"
#include "mamori/card.h"
#include "mamori/macro.h"
#include "piv-sim.h"

/* ---------- tests against the simulated card ---------- */

static void test_read_certificate_and_id(void **state)
{
        static const size_t chunks[] = {256, 200, 0x80, 17};
        for (size_t i = 0; i < ELEMENTSOF(chunks); i++) {
                struct sim s;
                struct card_transport t;
                uint8_t *der = NULL;
                size_t len = 0;
                char id[CARD_ID_LEN + 1], want[CARD_ID_LEN + 1];
                uint8_t md[32];
                unsigned mdlen;

                sim_init(&s, "P-256");
                s.chunk = chunks[i];
                Card *c = sim_card(&s, &t);
                assert_int_equal(card_select(c), 0);
                assert_int_equal(card_read_certificate(c, &der, &len), 0);
                assert_int_equal(len, s.der_len);
                assert_memory_equal(der, s.der, len);
                /* 1 select + 1 GET DATA + one GET RESPONSE per further chunk. */
                size_t chunks_needed = (s.obj_len + s.chunk - 1) / s.chunk;
                assert_int_equal(card_exchanges(c), 1 + chunks_needed);
                assert_int_equal(card_exchanges(c), s.exchanges);

                assert_int_equal(card_id_from_cert(der, len, id), 0);
                EVP_Digest(s.der, s.der_len, md, &mdlen, EVP_sha256(), NULL);
                for (size_t k = 0; k < 32; k++)
                        snprintf(want + 2 * k, 3, "%02x", md[k]);
                assert_string_equal(id, want);
                free(der);
                card_free(c);
                sim_done(&s);
        }
}

static void test_login_flow(const char *kind, unsigned want_exchanges)
{
        struct sim s;
        struct card_transport t;
        unsigned tries = 0;

        sim_init(&s, kind);
        Card *c = sim_card(&s, &t);

        /* Full login with a cached certificate: select, verify PIN, authenticate. */
        assert_int_equal(card_select(c), 0);
        assert_int_equal(card_verify_pin(c, "123456"), 0);
        assert_int_equal(card_authenticate(c, s.der, s.der_len), 0);
        if (card_exchanges(c) != want_exchanges)
                fail_msg("%s: login took %u exchanges, want %u", kind, card_exchanges(c), want_exchanges);
        assert_int_equal(s.exchanges, card_exchanges(c));
        assert_int_equal(card_pin_tries(c, &tries), 1); /* verified */

        /* A corrupted signature is signature-invalid, not a card error. */
        s.corrupt_sig = true;
        assert_int_equal(card_authenticate(c, s.der, s.der_len), CARD_E_SIG_INVALID);
        s.corrupt_sig = false;

        /* The certificate of another key: the card's signature doesn't verify with it. */
        EVP_PKEY *other = gen_key(kind);
        size_t olen;
        uint8_t *oder = make_cert(other, &olen);
        assert_int_equal(card_authenticate(c, oder, olen), CARD_E_SIG_INVALID);
        OPENSSL_free(oder);
        EVP_PKEY_free(other);

        /* Without a verified PIN the card refuses to sign. */
        assert_int_equal(card_select(c), 0);
        assert_int_equal(card_authenticate(c, s.der, s.der_len), CARD_E_NOT_VERIFIED);

        card_free(c);
        sim_done(&s);
}

static void test_login_p256(void **state)
{
        test_login_flow("P-256", 3);
}

static void test_login_p384(void **state)
{
        test_login_flow("P-384", 3);
}

static void test_login_rsa2048(void **state)
{
        /* RSA: the 266-byte template needs two chained commands, and the 264-byte answer one GET
         * RESPONSE: 5 exchanges (short APDUs; DESIGN.md §3 mandates chaining). */
        test_login_flow("rsa", 5);
}

static void test_pin(void **state)
{
        struct sim s;
        struct card_transport t;
        unsigned tries = 0;

        sim_init(&s, "P-256");
        Card *c = sim_card(&s, &t);
        assert_int_equal(card_select(c), 0);
        assert_int_equal(card_tries_left(c), -1);
        assert_int_equal(card_pin_tries(c, &tries), 0);
        assert_int_equal(tries, 3);

        /* Malformed PINs never reach the card. */
        unsigned before = card_exchanges(c);
        static const char *const bad[] = {"12345", "123456789", "abcdef", "12345 ", ""};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(card_verify_pin(c, bad[i]), CARD_E_BAD_PIN);
                assert_int_equal(card_change_pin(c, "123456", bad[i]), CARD_E_BAD_PIN);
        }
        assert_int_equal(card_verify_pin(c, NULL), CARD_E_BAD_PIN);
        assert_int_equal(card_exchanges(c), before);
        assert_int_equal(s.tries, 3);

        assert_int_equal(card_verify_pin(c, "654321"), CARD_E_PIN_WRONG);
        assert_int_equal(card_tries_left(c), 2);
        assert_int_equal(card_verify_pin(c, "123456"), 0);
        assert_int_equal(card_pin_tries(c, &tries), 1);

        /* Change, then only the new PIN works. */
        assert_int_equal(card_change_pin(c, "000000", "24681357"), CARD_E_PIN_WRONG);
        assert_int_equal(card_tries_left(c), 2);
        assert_int_equal(card_change_pin(c, "123456", "24681357"), 0);
        assert_string_equal(s.pin, "24681357");
        assert_int_equal(card_verify_pin(c, "123456"), CARD_E_PIN_WRONG);
        assert_int_equal(card_verify_pin(c, "24681357"), 0);

        /* Three wrong: blocked, and then even the right PIN is refused as blocked. */
        assert_int_equal(card_verify_pin(c, "111111"), CARD_E_PIN_WRONG);
        assert_int_equal(card_tries_left(c), 2);
        assert_int_equal(card_verify_pin(c, "111111"), CARD_E_PIN_WRONG);
        assert_int_equal(card_tries_left(c), 1);
        assert_int_equal(card_verify_pin(c, "111111"), CARD_E_PIN_BLOCKED);
        assert_int_equal(card_tries_left(c), 0);
        assert_int_equal(card_verify_pin(c, "24681357"), CARD_E_PIN_BLOCKED);
        assert_int_equal(card_pin_tries(c, &tries), CARD_E_PIN_BLOCKED);
        assert_string_equal(card_strerror(CARD_E_PIN_BLOCKED), "pin-blocked");
        card_free(c);
        sim_done(&s);
}

static size_t gzip_bytes(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
        z_stream z = {};
        assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        size_t r = cap - z.avail_out;
        deflateEnd(&z);
        return r;
}

static void test_gzip_certificate(void **state)
{
        struct sim s;
        struct card_transport t;
        uint8_t gz[8192], *der = NULL;
        size_t len = 0;

        sim_init(&s, "P-384");
        size_t gl = gzip_bytes(s.der, s.der_len, gz, sizeof(gz));
        s.obj_len = build_obj(s.obj, sizeof(s.obj), gz, gl, 0x01);
        Card *c = sim_card(&s, &t);
        assert_int_equal(card_select(c), 0);
        assert_int_equal(card_read_certificate(c, &der, &len), 0);
        assert_int_equal(len, s.der_len);
        assert_memory_equal(der, s.der, len);
        free(der);

        /* A gzip bomb (64 KiB of zeros) is refused, bounded. */
        uint8_t *zeros = calloc(1, 65536);
        assert_non_null(zeros);
        gl = gzip_bytes(zeros, 65536, gz, sizeof(gz));
        free(zeros);
        s.obj_len = build_obj(s.obj, sizeof(s.obj), gz, gl, 0x01);
        der = NULL;
        assert_int_equal(card_read_certificate(c, &der, &len), CARD_E_TOO_BIG);
        assert_null(der);

        /* gzip flag set on a plain DER certificate: malformed, not silently accepted. */
        s.obj_len = build_obj(s.obj, sizeof(s.obj), s.der, s.der_len, 0x01);
        assert_int_equal(card_read_certificate(c, &der, &len), CARD_E_MALFORMED);
        card_free(c);
        sim_done(&s);
}

static void test_wrong_le(void **state)
{
        struct sim s;
        struct card_transport t;
        uint8_t *der = NULL;
        size_t len = 0;

        sim_init(&s, "P-256");
        s.wrong_le_once = true;
        Card *c = sim_card(&s, &t);
        assert_int_equal(card_read_certificate(c, &der, &len), 0);
        assert_memory_equal(der, s.der, len);
        free(der);
        card_free(c);
        sim_done(&s);
}

static void test_unsupported_key(void **state)
{
        static const char *const kinds[] = {"ed25519", "P-521"};
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                struct sim s;
                struct card_transport t;
                sim_init(&s, kinds[i]);
                Card *c = sim_card(&s, &t);
                assert_int_equal(card_authenticate(c, s.der, s.der_len), CARD_E_UNSUPPORTED);
                assert_int_equal(card_exchanges(c), 0);
                /* And a certificate that is not DER at all. */
                assert_int_equal(card_authenticate(c, (const uint8_t *)"junk", 4), CARD_E_MALFORMED);
                card_free(c);
                sim_done(&s);
        }
}

/* ---------- scripted responses: malformed and error cases ---------- */

struct step {
        uint8_t b[24];
        size_t len;
        int err; /* transport error instead of a response */
};

#define R(...)                                                                    \
        {                                                                         \
                .b = {__VA_ARGS__}, .len = sizeof((const uint8_t[]){__VA_ARGS__}) \
        }
#define E(e)               \
        {                  \
                .err = (e) \
        }

struct script {
        const struct step *steps;
        size_t n, i;
        bool repeat_last;
        uint8_t last_cmd[APDU_MAX_COMMAND];
        size_t last_len;
};

static int script_transmit(void *ud, const uint8_t *c, size_t clen, uint8_t *r, size_t *rlen)
{
        struct script *s = ud;
        memcpy(s->last_cmd, c, clen);
        s->last_len = clen;
        if (s->i >= s->n) {
                if (!s->repeat_last || s->n == 0)
                        return CARD_E_REMOVED;
                s->i = s->n - 1;
        }
        const struct step *st = &s->steps[s->i++];
        if (st->err)
                return st->err;
        memcpy(r, st->b, st->len);
        *rlen = st->len;
        return 0;
}

enum op { OP_SELECT, OP_READ, OP_TRIES, OP_VERIFY, OP_AUTH };

struct script_case {
        const char *name;
        enum op op;
        struct step steps[4];
        size_t n;
        bool repeat_last;
        int result;
};

static const struct script_case script_cases[] = {
        {"select ok", OP_SELECT, {R(0x90, 0x00)}, 1, false, 0},
        {"select 61xx ok", OP_SELECT, {R(0x61, 0x15)}, 1, false, 0},
        {"select not found", OP_SELECT, {R(0x6A, 0x82)}, 1, false, CARD_E_NOT_FOUND},
        {"select 1-byte answer", OP_SELECT, {R(0x90)}, 1, false, CARD_E_MALFORMED},
        {"select empty answer", OP_SELECT, {{.len = 0}}, 1, false, CARD_E_MALFORMED},
        {"select card removed", OP_SELECT, {E(CARD_E_REMOVED)}, 1, false, CARD_E_REMOVED},
        {"select pcscd gone", OP_SELECT, {E(CARD_E_NO_SERVICE)}, 1, false, CARD_E_NO_SERVICE},
        {"read not found", OP_READ, {R(0x6A, 0x82)}, 1, false, CARD_E_NOT_FOUND},
        {"read empty object", OP_READ, {R(0x53, 0x00, 0x90, 0x00)}, 1, false, CARD_E_NOT_FOUND},
        {"read garbage cert",
         OP_READ,
         {R(0x53, 0x04, 0x70, 0x02, 0x30, 0x00, 0x90, 0x00)},
         1,
         false,
         CARD_E_MALFORMED},
        {"read truncated TLV",
         OP_READ,
         {R(0x53, 0x82, 0x04, 0x00, 0x70, 0x90, 0x00)},
         1,
         false,
         CARD_E_MALFORMED},
        {"read endless 61 00", OP_READ, {R(0x61, 0x00)}, 1, true, CARD_E_TOO_BIG},
        {"read endless 61 xx with data",
         OP_READ,
         {R(1, 2, 3, 4, 5, 6, 7, 8, 0x61, 0x08)},
         1,
         true,
         CARD_E_TOO_BIG},
        {"read removed mid-way",
         OP_READ,
         {R(0x53, 0x04, 0x61, 0x10), E(CARD_E_REMOVED)},
         2,
         false,
         CARD_E_REMOVED},
        {"read 6C twice", OP_READ, {R(0x6C, 0x10), R(0x6C, 0x10)}, 2, false, CARD_E_CARD_ERROR},
        {"tries 63C2", OP_TRIES, {R(0x63, 0xC2)}, 1, false, 0},
        {"tries verified", OP_TRIES, {R(0x90, 0x00)}, 1, false, 1},
        {"tries blocked", OP_TRIES, {R(0x69, 0x83)}, 1, false, CARD_E_PIN_BLOCKED},
        {"tries odd SW", OP_TRIES, {R(0x6F, 0x00)}, 1, false, CARD_E_CARD_ERROR},
        {"verify 63C1", OP_VERIFY, {R(0x63, 0xC1)}, 1, false, CARD_E_PIN_WRONG},
        {"verify blocked", OP_VERIFY, {R(0x69, 0x83)}, 1, false, CARD_E_PIN_BLOCKED},
        {"verify with data", OP_VERIFY, {R(0x01, 0x90, 0x00)}, 1, false, 0},
        {"auth not verified", OP_AUTH, {R(0x69, 0x82)}, 1, false, CARD_E_NOT_VERIFIED},
        {"auth no 7C", OP_AUTH, {R(0x30, 0x00, 0x90, 0x00)}, 1, false, CARD_E_MALFORMED},
        {"auth 7C without 82", OP_AUTH, {R(0x7C, 0x02, 0x81, 0x00, 0x90, 0x00)}, 1, false, CARD_E_MALFORMED},
        {"auth 82 junk",
         OP_AUTH,
         {R(0x7C, 0x04, 0x82, 0x02, 0x30, 0x00, 0x90, 0x00)},
         1,
         false,
         CARD_E_SIG_INVALID},
        {"auth empty ok", OP_AUTH, {R(0x90, 0x00)}, 1, false, CARD_E_MALFORMED},
        {"auth alg unsupported", OP_AUTH, {R(0x6A, 0x80)}, 1, false, CARD_E_REJECTED},
};

static void test_script_table(void **state)
{
        EVP_PKEY *key = gen_key("P-256");
        size_t der_len;
        uint8_t *der = make_cert(key, &der_len);

        for (size_t i = 0; i < ELEMENTSOF(script_cases); i++) {
                const struct script_case *sc = &script_cases[i];
                struct script s = {.steps = sc->steps, .n = sc->n, .repeat_last = sc->repeat_last};
                struct card_transport t = {.transmit = script_transmit, .userdata = &s};
                Card *c = NULL;
                uint8_t *out = NULL;
                size_t out_len = 0;
                unsigned tries = 77;
                int r = 0;

                assert_int_equal(card_new(&t, "piv", &c), 0);
                switch (sc->op) {
                case OP_SELECT:
                        r = card_select(c);
                        break;
                case OP_READ:
                        r = card_read_certificate(c, &out, &out_len);
                        if (r < 0)
                                assert_null(out);
                        free(out);
                        break;
                case OP_TRIES:
                        r = card_pin_tries(c, &tries);
                        if (r == 0)
                                assert_int_equal(tries, 2);
                        else
                                assert_int_equal(tries, 77);
                        break;
                case OP_VERIFY:
                        r = card_verify_pin(c, "123456");
                        if (r == CARD_E_PIN_WRONG)
                                assert_int_equal(card_tries_left(c), 1);
                        break;
                case OP_AUTH:
                        r = card_authenticate(c, der, der_len);
                        break;
                }
                if (r != sc->result)
                        fail_msg("%s: got %d (%s), want %d (%s)", sc->name, r, card_strerror(r), sc->result,
                                 card_strerror(sc->result));
                /* The GET RESPONSE loop is bounded in rounds as well as bytes. */
                assert_true(card_exchanges(c) <= APDU_MAX_ROUNDS + 1);
                card_free(c);
        }
        OPENSSL_free(der);
        EVP_PKEY_free(key);
}

static void test_get_response_bytes(void **state)
{
        /* 6C xx: the command is re-sent with Le = xx; 61 xx: GET RESPONSE with Le = xx. */
        static const struct step steps[] = {
                R(0x6C, 0x42),
                R(0x53, 0x61, 0x05),
        };
        struct script s = {.steps = steps, .n = 2};
        struct card_transport t = {.transmit = script_transmit, .userdata = &s};
        Card *c = NULL;
        uint8_t *der = NULL;
        size_t n;

        assert_int_equal(card_new(&t, NULL, &c), 0);
        assert_int_equal(card_read_certificate(c, &der, &n), CARD_E_REMOVED); /* script ran out */
        static const uint8_t want_gr[] = {0x00, 0xC0, 0x00, 0x00, 0x05};
        assert_int_equal(s.last_len, sizeof(want_gr));
        assert_memory_equal(s.last_cmd, want_gr, sizeof(want_gr));
        assert_int_equal(card_exchanges(c), 3);
        card_free(c);

        s = (struct script){.steps = steps, .n = 1};
        assert_int_equal(card_new(&t, NULL, &c), 0);
        assert_int_equal(card_read_certificate(c, &der, &n), CARD_E_REMOVED);
        static const uint8_t want_resend[] = {0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C,
                                              0x03, 0x5F, 0xC1, 0x05, 0x42};
        assert_int_equal(s.last_len, sizeof(want_resend));
        assert_memory_equal(s.last_cmd, want_resend, sizeof(want_resend));
        card_free(c);

        assert_int_equal(card_new(&t, "jpki-not-yet", &c), -ENOENT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_certificate_and_id),
                cmocka_unit_test(test_login_p256),
                cmocka_unit_test(test_login_p384),
                cmocka_unit_test(test_login_rsa2048),
                cmocka_unit_test(test_pin),
                cmocka_unit_test(test_gzip_certificate),
                cmocka_unit_test(test_wrong_le),
                cmocka_unit_test(test_unsupported_key),
                cmocka_unit_test(test_script_table),
                cmocka_unit_test(test_get_response_bytes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
