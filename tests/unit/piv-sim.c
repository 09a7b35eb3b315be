/* A software PIV card (SELECT, GET DATA, VERIFY, CHANGE REFERENCE DATA, GENERAL AUTHENTICATE) for unit
 * tests. */
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

#include "../../auth/piv-apdu.h"
#include "../../auth/tlv.h"
#include "mamori/macro.h"
#include "piv-sim.h"

static void put_sw(uint8_t *r, size_t *rlen, size_t off, uint16_t sw)
{
        r[off] = sw >> 8;
        r[off + 1] = sw & 0xFF;
        *rlen = off + 2;
}

static void sim_send_pending(struct sim *s, uint8_t *r, size_t *rlen, uint8_t le)
{
        size_t rem = s->pending_len - s->pending_off;
        size_t n = rem < s->chunk ? rem : s->chunk;
        size_t want = le == 0 ? 256 : le;

        if (n > want)
                n = want;
        memcpy(r, s->pending + s->pending_off, n);
        s->pending_off += n;
        rem -= n;
        put_sw(r, rlen, n, rem == 0 ? 0x9000 : (uint16_t)(0x6100 | (rem > 255 ? 0 : rem)));
}

static void sim_set_pending(struct sim *s, const uint8_t *d, size_t n)
{
        assert_true(n <= sizeof(s->pending));
        memcpy(s->pending, d, n);
        s->pending_len = n;
        s->pending_off = 0;
}

static uint16_t sim_pin(struct sim *s, const uint8_t *d, bool *match)
{
        uint8_t want[8];
        memset(want, 0xFF, 8);
        memcpy(want, s->pin, strlen(s->pin));
        *match = false;
        if (s->tries == 0)
                return 0x6983;
        if (memcmp(d, want, 8) == 0) {
                s->tries = s->max_tries;
                *match = true;
                return 0x9000;
        }
        s->tries--;
        s->verified = false;
        return s->tries == 0 ? 0x6983 : (uint16_t)(0x63C0 | s->tries);
}

static uint16_t sim_sign(struct sim *s, uint8_t alg, const uint8_t *d, size_t n)
{
        struct tlv t7c, t81, t82;
        uint8_t sig[512], out[600];
        size_t siglen = sizeof(sig);

        if (!s->verified)
                return 0x6982;
        if (tlv_find(d, n, 0x7C, &t7c) < 0 || tlv_find(t7c.value, t7c.length, 0x81, &t81) < 0 ||
            tlv_find(t7c.value, t7c.length, 0x82, &t82) < 0 || t82.length != 0)
                return 0x6A80;
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(s->key, NULL);
        assert_non_null(ctx);
        assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
        if (EVP_PKEY_is_a(s->key, "RSA")) {
                if (alg != PIV_ALG_RSA2048 || t81.length != 256) {
                        EVP_PKEY_CTX_free(ctx);
                        return 0x6A80;
                }
                assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
        } else {
                size_t want = EVP_PKEY_get_bits(s->key) == 256 ? 32 : 48;
                uint8_t walg = want == 32 ? PIV_ALG_ECC_P256 : PIV_ALG_ECC_P384;
                if (alg != walg || t81.length != want) {
                        EVP_PKEY_CTX_free(ctx);
                        return 0x6A80;
                }
        }
        assert_int_equal(EVP_PKEY_sign(ctx, sig, &siglen, t81.value, t81.length), 1);
        EVP_PKEY_CTX_free(ctx);
        if (s->corrupt_sig)
                sig[siglen - 1] ^= 0x01;
        uint8_t inner[560];
        int ih = tlv_put_header(inner, sizeof(inner), 0x82, siglen);
        memcpy(inner + ih, sig, siglen);
        size_t il = (size_t)ih + siglen;
        int oh = tlv_put_header(out, sizeof(out), 0x7C, il);
        memcpy(out + oh, inner, il);
        sim_set_pending(s, out, (size_t)oh + il);
        return 0;
}

int sim_transmit(void *ud, const uint8_t *c, size_t clen, uint8_t *r, size_t *rlen)
{
        struct sim *s = ud;
        const uint8_t *data = NULL;
        size_t lc = 0;
        uint8_t le = 0;

        s->exchanges++;
        assert_true(*rlen >= APDU_MAX_RESPONSE);
        assert_true(clen >= 4 && clen <= APDU_MAX_COMMAND);
        if (clen == 5)
                le = c[4];
        else if (clen > 5) {
                lc = c[4];
                data = c + 5;
                assert_true(clen == 5 + lc || clen == 6 + lc);
                if (clen == 6 + lc)
                        le = c[clen - 1];
        }

        switch (c[1]) {
        case 0xA4:
                if (lc != sizeof(piv_aid) || memcmp(data, piv_aid, lc) != 0) {
                        put_sw(r, rlen, 0, 0x6A82);
                        return 0;
                }
                s->verified = false;
                static const uint8_t apt[] = {0x61, 0x11, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
                                              0x79, 0x07, 0x4F, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08};
                sim_set_pending(s, apt, sizeof(apt));
                if (s->select_61) {
                        put_sw(r, rlen, 0, 0x6100 | sizeof(apt));
                        return 0;
                }
                sim_send_pending(s, r, rlen, le);
                return 0;
        case 0xCB: {
                static const uint8_t want[] = {0x5C, 0x03, 0x5F, 0xC1, 0x05};
                if (lc != sizeof(want) || memcmp(data, want, lc) != 0) {
                        put_sw(r, rlen, 0, 0x6A80);
                        return 0;
                }
                if (s->wrong_le_once && le != 0x20) {
                        s->wrong_le_once = false;
                        put_sw(r, rlen, 0, 0x6C20);
                        return 0;
                }
                sim_set_pending(s, s->obj, s->obj_len);
                sim_send_pending(s, r, rlen, le);
                return 0;
        }
        case 0xC0:
                sim_send_pending(s, r, rlen, le);
                return 0;
        case 0x20: {
                bool m;
                if (lc == 0) {
                        put_sw(r, rlen, 0,
                               s->verified     ? 0x9000
                               : s->tries == 0 ? 0x6983
                                               : (uint16_t)(0x63C0 | s->tries));
                        return 0;
                }
                assert_int_equal(lc, 8);
                uint16_t sw = sim_pin(s, data, &m);
                s->verified = m;
                put_sw(r, rlen, 0, sw);
                return 0;
        }
        case 0x24: {
                bool m;
                assert_int_equal(lc, 16);
                uint16_t sw = sim_pin(s, data, &m);
                if (m) {
                        size_t i;
                        for (i = 0; i < 8 && data[8 + i] != 0xFF; i++)
                                s->pin[i] = (char)data[8 + i];
                        s->pin[i] = 0;
                }
                put_sw(r, rlen, 0, sw);
                return 0;
        }
        case 0x87: {
                assert_int_equal(c[3], 0x9A);
                assert_true(s->chain_len + lc <= sizeof(s->chain));
                memcpy(s->chain + s->chain_len, data, lc);
                s->chain_len += lc;
                if (c[0] & 0x10) {
                        put_sw(r, rlen, 0, 0x9000);
                        return 0;
                }
                uint16_t sw = sim_sign(s, c[2], s->chain, s->chain_len);
                s->chain_len = 0;
                if (sw) {
                        put_sw(r, rlen, 0, sw);
                        return 0;
                }
                sim_send_pending(s, r, rlen, le);
                return 0;
        }
        default:
                put_sw(r, rlen, 0, 0x6D00);
                return 0;
        }
}

/* ---------- keys and certificates ---------- */

EVP_PKEY *gen_key(const char *kind)
{
        if (streq(kind, "rsa"))
                return EVP_RSA_gen(2048);
        if (streq(kind, "ed25519"))
                return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", kind);
}

uint8_t *make_cert(EVP_PKEY *key, size_t *ret_len)
{
        X509 *x = X509_new();
        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
        X509_NAME *n = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"OP0001", -1, -1, 0);
        X509_set_issuer_name(x, n);
        X509_set_pubkey(x, key);
        const EVP_MD *md = EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
        assert_true(X509_sign(x, key, md) > 0);
        uint8_t *der = NULL;
        int l = i2d_X509(x, &der);
        assert_true(l > 0);
        X509_free(x);
        *ret_len = (size_t)l;
        return der;
}

size_t build_obj(uint8_t *out, size_t cap, const uint8_t *cert, size_t n, uint8_t info)
{
        uint8_t inner[8192];
        size_t il = 0;
        int h = tlv_put_header(inner, sizeof(inner), 0x70, n);
        assert_true(h > 0 && (size_t)h + n + 5 <= sizeof(inner));
        il = (size_t)h;
        memcpy(inner + il, cert, n);
        il += n;
        inner[il++] = 0x71;
        inner[il++] = 0x01;
        inner[il++] = info;
        inner[il++] = 0xFE;
        inner[il++] = 0x00;
        h = tlv_put_header(out, cap, 0x53, il);
        assert_true(h > 0 && (size_t)h + il <= cap);
        memcpy(out + h, inner, il);
        return (size_t)h + il;
}

void sim_init(struct sim *s, const char *kind)
{
        memset(s, 0, sizeof(*s));
        s->key = gen_key(kind);
        assert_non_null(s->key);
        s->der = make_cert(s->key, &s->der_len);
        s->obj_len = build_obj(s->obj, sizeof(s->obj), s->der, s->der_len, 0x00);
        strcpy(s->pin, "123456");
        s->tries = s->max_tries = 3;
        s->chunk = 256;
}

void sim_done(struct sim *s)
{
        EVP_PKEY_free(s->key);
        OPENSSL_free(s->der);
}

Card *sim_card(struct sim *s, struct card_transport *t)
{
        Card *c = NULL;
        t->transmit = sim_transmit;
        t->userdata = s;
        assert_int_equal(card_new(t, NULL, &c), 0);
        return c;
}
