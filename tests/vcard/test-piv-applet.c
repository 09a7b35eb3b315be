/* Unit tests for the virtual card's PIV applet: APDU framing, chaining, PIN counter, signatures. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "piv-applet.h"

typedef struct Fixture {
        EVP_PKEY *key;
        uint8_t *cert;
        size_t cert_len;
        PivApplet *a;
} Fixture;

static uint8_t rbuf[PIV_RAPDU_MAX];

static EVP_PKEY *make_key(const char *kind)
{
        if (strcmp(kind, "RSA") == 0)
                return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", kind);
}

static void make_cert(Fixture *f)
{
        X509 *x = X509_new();
        unsigned char *der = NULL;
        int len;

        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)"OP0001", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_set_pubkey(x, f->key);
        assert_true(X509_sign(x, f->key, EVP_sha256()) > 0);
        len = i2d_X509(x, &der);
        assert_true(len > 0);
        f->cert = der;
        f->cert_len = (size_t)len;
        X509_free(x);
}

static int setup_kind(void **state, const char *kind)
{
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->key = make_key(kind);
        assert_non_null(f->key);
        make_cert(f);
        assert_int_equal(piv_applet_new(f->key, f->cert, f->cert_len, "123456", 3, &f->a), 0);
        *state = f;
        return 0;
}

static int setup_p256(void **state)
{
        return setup_kind(state, "P-256");
}
static int setup_p384(void **state)
{
        return setup_kind(state, "P-384");
}
static int setup_rsa(void **state)
{
        return setup_kind(state, "RSA");
}

static int teardown(void **state)
{
        Fixture *f = *state;

        piv_applet_free(f->a);
        EVP_PKEY_free(f->key);
        OPENSSL_free(f->cert);
        free(f);
        return 0;
}

/* Sends hex-free raw bytes; returns the status word, response data in rbuf[0..*ret_len). */
static unsigned xmit(PivApplet *a, const uint8_t *c, size_t n, size_t *ret_len)
{
        size_t r = piv_applet_process(a, c, n, rbuf);

        assert_true(r >= 2 && r <= PIV_RAPDU_MAX);
        if (ret_len)
                *ret_len = r - 2;
        return ((unsigned)rbuf[r - 2] << 8) | rbuf[r - 1];
}

#define XMIT(a, len, ...) xmit((a), (const uint8_t[]){__VA_ARGS__}, (size_t)(len), NULL)

/* Sends a command and follows 61 xx with GET RESPONSE, collecting the data. */
static unsigned xmit_all(PivApplet *a, const uint8_t *c, size_t n, uint8_t *out, size_t cap, size_t *ret_len)
{
        size_t len, total = 0;
        unsigned sw = xmit(a, c, n, &len);

        for (;;) {
                assert_true(total + len <= cap);
                memcpy(out + total, rbuf, len);
                total += len;
                if ((sw >> 8) != 0x61)
                        break;
                sw = xmit(a, (const uint8_t[]){0x00, 0xC0, 0x00, 0x00, (uint8_t)(sw & 0xFF)}, 5, &len);
        }
        *ret_len = total;
        return sw;
}

static void verify_pin(PivApplet *a, const char *pin, unsigned expect)
{
        uint8_t c[13] = {0x00, 0x20, 0x00, 0x80, 0x08};

        memset(c + 5, 0xFF, 8);
        memcpy(c + 5, pin, strlen(pin));
        assert_int_equal(xmit(a, c, sizeof(c), NULL), expect);
}

static void test_atr(void **state)
{
        Fixture *f = *state;
        const uint8_t *atr;
        size_t n = piv_applet_atr(f->a, &atr);
        uint8_t x = 0;

        assert_true(n >= 4 && n <= PIV_ATR_MAX);
        assert_int_equal(atr[0], 0x3B);
        for (size_t i = 1; i < n; i++)
                x ^= atr[i];
        assert_int_equal(x, 0); /* TCK makes the XOR of T0..TCK zero */
}

static void test_select(void **state)
{
        Fixture *f = *state;
        size_t len;
        static const uint8_t pix[] = {0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};
        static const struct {
                uint8_t lc;
                unsigned sw;
        } cases[] = {{11, 0x9000}, {9, 0x9000}, {5, 0x9000}, {4, 0x6A82}};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint8_t c[17] = {0x00, 0xA4, 0x04, 0x00, cases[i].lc, 0xA0, 0x00, 0x00,
                                 0x03, 0x08, 0x00, 0x00, 0x10,        0x00, 0x01, 0x00};

                c[5 + cases[i].lc] = 0x00; /* Le */
                assert_int_equal(xmit(f->a, c, 6 + cases[i].lc, &len), cases[i].sw);
                if (cases[i].sw == 0x9000) {
                        assert_int_equal(rbuf[0], 0x61);
                        assert_int_equal(rbuf[1], len - 2);
                        assert_memory_equal(rbuf + 2, pix, sizeof(pix));
                }
        }
        /* other AID */
        assert_int_equal(XMIT(f->a, 10, 0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x09), 0x6A82);
        /* DESIGN.md's select has no Le: the template comes anyway */
        assert_int_equal(xmit(f->a,
                              (const uint8_t[]){0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08,
                                                0x00, 0x00, 0x10, 0x00},
                              14, &len),
                         0x9000);
        assert_true(len > 10);
}

static void test_get_cert_chained(void **state)
{
        Fixture *f = *state;
        static const uint8_t cmd[] = {0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00};
        uint8_t obj[5000];
        size_t len, first;
        const uint8_t *p;
        size_t clen;

        /* The first answer carries 256 bytes and says more follows. */
        assert_int_equal(xmit(f->a, cmd, sizeof(cmd), &first) >> 8, 0x61);
        assert_int_equal(first, 256);

        assert_int_equal(xmit_all(f->a, cmd, sizeof(cmd), obj, sizeof(obj), &len), 0x9000);
        assert_int_equal(obj[0], 0x53);
        assert_int_equal(obj[1], 0x82);
        assert_int_equal(((size_t)obj[2] << 8 | obj[3]) + 4, len);
        assert_int_equal(obj[4], 0x70);
        assert_int_equal(obj[5], 0x82);
        clen = (size_t)obj[6] << 8 | obj[7];
        assert_int_equal(clen, f->cert_len);
        assert_memory_equal(obj + 8, f->cert, f->cert_len);
        p = obj + 8 + clen;
        assert_memory_equal(p, ((const uint8_t[]){0x71, 0x01, 0x00, 0xFE, 0x00}), 5);

        /* A small Le returns Le bytes then 61 xx for the rest. */
        {
                uint8_t c[11];

                memcpy(c, cmd, sizeof(c));
                c[10] = 8;
                assert_int_equal(xmit(f->a, c, sizeof(c), &len) >> 8, 0x61);
                assert_int_equal(len, 8);
        }
        /* any other command drops pending data */
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x63C3);
        assert_int_equal(XMIT(f->a, 5, 0x00, 0xC0, 0x00, 0x00, 0x00), 0x6985);
}

static void test_get_data_objects(void **state)
{
        Fixture *f = *state;
        size_t len;

        assert_int_equal(
                xmit(f->a, (const uint8_t[]){0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00}, 9, &len),
                0x9000);
        assert_int_equal(rbuf[0], 0x7E);
        assert_int_equal(
                xmit(f->a,
                     (const uint8_t[]){0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00}, 11,
                     &len),
                0x9000);
        assert_int_equal(rbuf[0], 0x53);
        /* 9C signature certificate, key history: absent */
        assert_int_equal(XMIT(f->a, 11, 0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0A, 0x00),
                         0x6A82);
        assert_int_equal(XMIT(f->a, 11, 0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0C, 0x00),
                         0x6A82);
        /* bad P1P2, bad tag list */
        assert_int_equal(XMIT(f->a, 11, 0x00, 0xCB, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00),
                         0x6A86);
        assert_int_equal(XMIT(f->a, 11, 0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5D, 0x03, 0x5F, 0xC1, 0x05, 0x00),
                         0x6A80);
        assert_int_equal(XMIT(f->a, 11, 0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x09, 0x5F, 0xC1, 0x05, 0x00),
                         0x6A80);
}

static void test_malformed(void **state)
{
        Fixture *f = *state;
        static const struct {
                size_t len;
                uint8_t c[8];
                unsigned sw;
        } cases[] = {
                {0, {0}, 0x6700},
                {3, {0x00, 0xA4, 0x04}, 0x6700},
                {7, {0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00}, 0x6700},       /* Lc says 5, 2 present */
                {8, {0x00, 0xA4, 0x04, 0x00, 0x01, 0xA0, 0x00, 0x00}, 0x6700}, /* trailing junk */
                {7, {0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x01}, 0x6700},       /* extended length */
                {4, {0x80, 0xA4, 0x04, 0x00}, 0x6E00},
                {4, {0x0C, 0xCB, 0x3F, 0xFF}, 0x6E00},
                {4, {0x00, 0x50, 0x00, 0x00}, 0x6D00},
                {4, {0x10, 0xA4, 0x04, 0x00}, 0x6884}, /* chaining only for GENERAL AUTHENTICATE */
                {5, {0x00, 0xC0, 0x00, 0x00, 0x10}, 0x6985},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                assert_int_equal(xmit(f->a, cases[i].c, cases[i].len, NULL), cases[i].sw);
}

static void test_pin_counter(void **state)
{
        Fixture *f = *state;

        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x63C3);
        verify_pin(f->a, "654321", 0x63C2);
        verify_pin(f->a, "123456", 0x9000);
        assert_int_equal(piv_applet_tries_left(f->a), 3);
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x9000);
        /* power cycle forgets the verification, not the counter */
        piv_applet_reset(f->a);
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x63C3);
        verify_pin(f->a, "1234567", 0x63C2);
        verify_pin(f->a, "12345", 0x63C1);
        piv_applet_reset(f->a);
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x63C1);
        verify_pin(f->a, "000000", 0x6983);
        verify_pin(f->a, "123456", 0x6983); /* blocked: even the right PIN fails */
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x6983);
        assert_false(piv_applet_verified(f->a));
        /* wrong key reference, wrong length */
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x81), 0x6A88);
        assert_int_equal(XMIT(f->a, 8, 0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32, 0x00), 0x6A80);
}

static void test_change_pin(void **state)
{
        Fixture *f = *state;
        uint8_t c[21] = {0x00, 0x24, 0x00, 0x80, 0x10};

        memset(c + 5, 0xFF, 16);
        memcpy(c + 5, "123456", 6);
        memcpy(c + 13, "13579", 5); /* too short */
        assert_int_equal(xmit(f->a, c, sizeof(c), NULL), 0x6A80);
        memcpy(c + 13, "24680135", 8);
        assert_int_equal(xmit(f->a, c, sizeof(c), NULL), 0x9000);
        piv_applet_reset(f->a);
        verify_pin(f->a, "123456", 0x63C2);
        verify_pin(f->a, "24680135", 0x9000);
        /* wrong old PIN counts as a failure */
        memcpy(c + 5, "99999999", 8);
        assert_int_equal(xmit(f->a, c, sizeof(c), NULL), 0x63C2);
}

/* GENERAL AUTHENTICATE for the fixture's key; returns the SW and the signature (7C{82 sig}) body. */
static unsigned general_auth(Fixture *f, uint8_t alg, const uint8_t *in, size_t in_len, uint8_t *sig,
                             size_t *sig_len)
{
        uint8_t cmd[600], out[600];
        size_t n = 0, len;
        unsigned sw;
        size_t body = 2 + (in_len < 128 ? 2 : in_len < 256 ? 3 : 4) + in_len;

        /* 7C L { 82 00, 81 L in } */
        cmd[n++] = 0x7C;
        if (body < 128)
                cmd[n++] = body;
        else if (body < 256)
                cmd[n++] = 0x81, cmd[n++] = body;
        else
                cmd[n++] = 0x82, cmd[n++] = body >> 8, cmd[n++] = body & 0xFF;
        cmd[n++] = 0x82, cmd[n++] = 0x00;
        cmd[n++] = 0x81;
        if (in_len < 128)
                cmd[n++] = in_len;
        else if (in_len < 256)
                cmd[n++] = 0x81, cmd[n++] = in_len;
        else
                cmd[n++] = 0x82, cmd[n++] = in_len >> 8, cmd[n++] = in_len & 0xFF;
        memcpy(cmd + n, in, in_len);
        n += in_len;

        /* command chaining in 255-byte pieces, as OpenSC does */
        for (size_t off = 0;;) {
                uint8_t apdu[261];
                size_t chunk = n - off > 255 ? 255 : n - off;
                bool last = off + chunk == n;

                apdu[0] = last ? 0x00 : 0x10;
                apdu[1] = 0x87, apdu[2] = alg, apdu[3] = 0x9A, apdu[4] = chunk;
                memcpy(apdu + 5, cmd + off, chunk);
                apdu[5 + chunk] = 0x00;
                off += chunk;
                if (!last) {
                        assert_int_equal(xmit(f->a, apdu, 5 + chunk, NULL), 0x9000);
                        continue;
                }
                sw = xmit_all(f->a, apdu, 6 + chunk, out, sizeof(out), &len);
                break;
        }
        if (sw != 0x9000)
                return sw;
        /* parse 7C L1 { 82 L2 sig } */
        {
                const uint8_t *p = out;
                size_t l;

                assert_int_equal(*p++, 0x7C);
                if (*p == 0x82)
                        p += 3;
                else if (*p == 0x81)
                        p += 2;
                else
                        p += 1;
                assert_int_equal(*p++, 0x82);
                if (*p == 0x82)
                        l = (size_t)p[1] << 8 | p[2], p += 3;
                else if (*p == 0x81)
                        l = p[1], p += 2;
                else
                        l = *p++;
                assert_int_equal((size_t)(p - out) + l, len);
                memcpy(sig, p, l);
                *sig_len = l;
        }
        return sw;
}

static void check_ec_sign(void **state, uint8_t alg, uint8_t wrong_alg, size_t dlen)
{
        Fixture *f = *state;
        uint8_t digest[48], sig[600];
        size_t sig_len;
        EVP_PKEY_CTX *ctx;

        memset(digest, 0xA5, sizeof(digest));
        assert_int_equal(general_auth(f, alg, digest, dlen, sig, &sig_len), 0x6982); /* PIN first */
        verify_pin(f->a, "123456", 0x9000);
        assert_int_equal(general_auth(f, wrong_alg, digest, dlen, sig, &sig_len), 0x6A80);
        assert_int_equal(general_auth(f, alg, digest, dlen - 1, sig, &sig_len), 0x6A80);
        assert_int_equal(general_auth(f, alg, digest, dlen, sig, &sig_len), 0x9000);

        ctx = EVP_PKEY_CTX_new(f->key, NULL);
        assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
        assert_int_equal(EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen), 1);
        digest[0] ^= 1;
        assert_int_not_equal(EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen), 1);
        EVP_PKEY_CTX_free(ctx);

        /* other key references are absent */
        assert_int_equal(
                XMIT(f->a, 13, 0x00, 0x87, alg, 0x9C, 0x07, 0x7C, 0x05, 0x82, 0x00, 0x81, 0x01, 0x00, 0x00),
                0x6A88);
        /* pulling the card forgets the PIN */
        piv_applet_reset(f->a);
        assert_int_equal(general_auth(f, alg, digest, dlen, sig, &sig_len), 0x6982);
}

static void test_sign_p256(void **state)
{
        check_ec_sign(state, 0x11, 0x14, 32);
}

static void test_sign_p384(void **state)
{
        check_ec_sign(state, 0x14, 0x11, 48);
}

static void test_sign_rsa(void **state)
{
        Fixture *f = *state;
        uint8_t block[256], sig[600], rec[256];
        size_t sig_len, rec_len = sizeof(rec);
        EVP_PKEY_CTX *ctx;

        /* PKCS#1 v1.5 type-1 block around a fake DigestInfo */
        memset(block, 0xFF, sizeof(block));
        block[0] = 0x00, block[1] = 0x01;
        block[256 - 52] = 0x00;
        memset(block + 256 - 51, 0x3C, 51);

        verify_pin(f->a, "123456", 0x9000);
        assert_int_equal(general_auth(f, 0x11, block, 32, sig, &sig_len), 0x6A80);
        assert_int_equal(general_auth(f, 0x07, block, 255, sig, &sig_len), 0x6A80);
        assert_int_equal(general_auth(f, 0x07, block, sizeof(block), sig, &sig_len), 0x9000);
        assert_int_equal(sig_len, 256);

        /* the public operation gives the block back */
        ctx = EVP_PKEY_CTX_new(f->key, NULL);
        assert_int_equal(EVP_PKEY_verify_recover_init(ctx), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
        assert_int_equal(EVP_PKEY_verify_recover(ctx, rec, &rec_len, sig, sig_len), 1);
        assert_int_equal(rec_len, 256);
        assert_memory_equal(rec, block, 256);
        EVP_PKEY_CTX_free(ctx);

        /* a chain interrupted by another command is abandoned */
        assert_int_equal(XMIT(f->a, 8, 0x10, 0x87, 0x07, 0x9A, 0x02, 0x7C, 0x82, 0x01), 0x9000);
        assert_int_equal(XMIT(f->a, 4, 0x00, 0x20, 0x00, 0x80), 0x6883);
}

static void test_bad_params(void **state)
{
        EVP_PKEY *k = make_key("P-256");
        PivApplet *a = NULL;
        uint8_t der[4] = {0x30, 0x02, 0x05, 0x00};

        assert_non_null(k);
        assert_int_equal(piv_applet_new(k, der, sizeof(der), "12345", 3, &a), -EINVAL);
        assert_int_equal(piv_applet_new(k, der, sizeof(der), "123456789", 3, &a), -EINVAL);
        assert_int_equal(piv_applet_new(k, der, sizeof(der), "12345a", 3, &a), -EINVAL);
        assert_int_equal(piv_applet_new(k, der, sizeof(der), "123456", 0, &a), -EINVAL);
        assert_int_equal(piv_applet_new(k, der, sizeof(der), "123456", 16, &a), -EINVAL);
        assert_null(a);
        EVP_PKEY_free(k);
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
        assert_non_null(k);
        assert_int_equal(piv_applet_new(k, der, sizeof(der), "123456", 3, &a), -EINVAL);
        EVP_PKEY_free(k);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_atr, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_select, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_get_cert_chained, setup_rsa, teardown),
                cmocka_unit_test_setup_teardown(test_get_data_objects, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_malformed, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_pin_counter, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_change_pin, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_sign_p256, setup_p256, teardown),
                cmocka_unit_test_setup_teardown(test_sign_p384, setup_p384, teardown),
                cmocka_unit_test_setup_teardown(test_sign_rsa, setup_rsa, teardown),
                cmocka_unit_test(test_bad_params),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
