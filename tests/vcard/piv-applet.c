/* The virtual card's PIV application: APDU parsing, PIN state, data objects and key-9A signing. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "mamori/macro.h"
#include "piv-applet.h"

/* ISO 7816-4 status words used here. */
#define SW_OK                0x9000
#define SW_WRONG_LENGTH      0x6700
#define SW_LAST_CMD_EXPECTED 0x6883
#define SW_CHAINING_UNSUPP   0x6884
#define SW_SECURITY_NOT_SAT  0x6982
#define SW_AUTH_BLOCKED      0x6983
#define SW_NO_DATA_PENDING   0x6985
#define SW_WRONG_DATA        0x6A80
#define SW_NOT_FOUND         0x6A82
#define SW_WRONG_P1P2        0x6A86
#define SW_REF_NOT_FOUND     0x6A88
#define SW_INS_UNSUPPORTED   0x6D00
#define SW_CLA_UNSUPPORTED   0x6E00
#define SW_UNKNOWN           0x6F00
#define SW_TRIES_LEFT(n)     (0x63C0 | ((n)&0x0F))

#define INS_SELECT       0xA4
#define INS_GET_DATA     0xCB
#define INS_VERIFY       0x20
#define INS_CHANGE_REF   0x24
#define INS_GENERAL_AUTH 0x87
#define INS_GET_RESPONSE 0xC0

#define ALG_RSA_2048    0x07
#define ALG_ECC_P256    0x11
#define ALG_ECC_P384    0x14
#define KEY_PIV_AUTH    0x9A
#define PIN_APPLICATION 0x80

/* Largest certificate the card stores (real PIV cards hold a few kB per container). */
#define CERT_MAX 4000
/* Largest command-chained data (an RSA-2048 GENERAL AUTHENTICATE is 266 bytes). */
#define CHAIN_MAX 1024

/* Full PIV AID: RID A0 00 00 03 08, PIX 00 00 10 00 01 00 (application + version). */
static const uint8_t piv_aid[] = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};
#define PIV_AID_SHORT 5

/* FASC-N of a non-federal ("9999" agency code) card; with a GUID it tells OpenSC to use the GUID. */
static const uint8_t fascn_9999[25] = {0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE,
                                       0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08, 0x42, 0x10,
                                       0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB};

typedef struct Apdu {
        uint8_t cla, ins, p1, p2;
        const uint8_t *data;
        size_t lc;
        size_t le; /* 1..256; 0 when the command carried no Le */
} Apdu;

struct PivApplet {
        EVP_PKEY *key;
        uint8_t alg;
        size_t ec_field_len; /* 0 for RSA */

        uint8_t *cert_obj; /* 53 { 70 cert, 71 00, FE 00 } */
        size_t cert_obj_len;
        uint8_t chuid[64];
        size_t chuid_len;
        uint8_t ccc[64];
        size_t ccc_len;

        uint8_t pin[PIV_PIN_MAX_LEN]; /* FF-padded */
        unsigned max_tries;
        unsigned tries;
        bool verified;

        uint8_t atr[PIV_ATR_MAX];
        size_t atr_len;

        /* Response chaining: data not yet fetched with GET RESPONSE. */
        uint8_t *resp;
        size_t resp_cap, resp_len, resp_off;

        /* Command chaining (CLA 10). */
        bool chaining;
        uint8_t chain_ins, chain_p1, chain_p2;
        uint8_t chain[CHAIN_MAX];
        size_t chain_len;
};

/* BER-TLV header for tag (1–3 bytes) and length; returns its size (<= 7). */
static size_t tlv_header(uint8_t *out, uint32_t tag, size_t len)
{
        size_t n = 0;

        if (tag > 0xFFFF)
                out[n++] = tag >> 16;
        if (tag > 0xFF)
                out[n++] = (tag >> 8) & 0xFF;
        out[n++] = tag & 0xFF;

        if (len < 0x80)
                out[n++] = len;
        else if (len <= 0xFF) {
                out[n++] = 0x81;
                out[n++] = len;
        } else {
                assert(len <= 0xFFFF);
                out[n++] = 0x82;
                out[n++] = len >> 8;
                out[n++] = len & 0xFF;
        }
        return n;
}

static size_t tlv_size(uint32_t tag, size_t len)
{
        uint8_t hdr[8];

        return tlv_header(hdr, tag, len) + len;
}

/* Appends a TLV to buf (capacity cap) at *off. Callers size buffers first: overflow is a bug. */
static void tlv_put(uint8_t *buf, size_t cap, size_t *off, uint32_t tag, const void *val, size_t len)
{
        assert(tlv_size(tag, len) <= cap - *off);
        *off += tlv_header(buf + *off, tag, len);
        if (len > 0)
                memcpy(buf + *off, val, len);
        *off += len;
}

/* Reads one BER-TLV (tag up to 3 bytes, length up to 82 xx xx) from *p, *left. */
static int tlv_read(const uint8_t **p, size_t *left, uint32_t *ret_tag, const uint8_t **ret_val,
                    size_t *ret_len)
{
        const uint8_t *q = *p;
        size_t n = *left, len;
        uint32_t tag;

        if (n < 2)
                return -EBADMSG;
        tag = *q++, n--;
        if ((tag & 0x1F) == 0x1F) {
                for (unsigned i = 0;; i++) {
                        if (n < 1 || i >= 2)
                                return -EBADMSG;
                        tag = (tag << 8) | *q;
                        n--;
                        if (!(*q++ & 0x80))
                                break;
                }
        }
        if (n < 1)
                return -EBADMSG;
        len = *q++, n--;
        if (len == 0x81) {
                if (n < 1)
                        return -EBADMSG;
                len = *q++, n--;
        } else if (len == 0x82) {
                if (n < 2)
                        return -EBADMSG;
                len = ((size_t)q[0] << 8) | q[1];
                q += 2, n -= 2;
        } else if (len >= 0x80)
                return -EBADMSG;
        if (len > n)
                return -EBADMSG;

        *ret_tag = tag;
        *ret_val = q;
        *ret_len = len;
        *p = q + len;
        *left = n - len;
        return 0;
}

static void clear_response(PivApplet *a)
{
        a->resp_len = a->resp_off = 0;
}

static void clear_chain(PivApplet *a)
{
        a->chaining = false;
        a->chain_len = 0;
        OPENSSL_cleanse(a->chain, sizeof(a->chain));
}

void piv_applet_reset(PivApplet *a)
{
        if (!a)
                return;
        a->verified = false;
        clear_response(a);
        clear_chain(a);
}

static void build_atr(PivApplet *a)
{
        /* T=1 card; historical bytes in compact-TLV: category 80, tag F (application
         * identifier) carrying the short PIV AID, which lets OpenSC identify the card as PIV. */
        static const uint8_t hist[] = {0x80, 0xF9, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00};
        uint8_t tck = 0;
        size_t n = 0;

        a->atr[n++] = 0x3B;                /* TS: direct convention */
        a->atr[n++] = 0x80 | sizeof(hist); /* T0: TD1 present, K historical bytes */
        a->atr[n++] = 0x80;                /* TD1: TD2 present, T=0 */
        a->atr[n++] = 0x01;                /* TD2: T=1 */
        memcpy(a->atr + n, hist, sizeof(hist));
        n += sizeof(hist);
        for (size_t i = 1; i < n; i++)
                tck ^= a->atr[i];
        a->atr[n++] = tck;
        a->atr_len = n;
}

static void build_chuid_ccc(PivApplet *a, const uint8_t *cert_der, size_t cert_len)
{
        uint8_t digest[SHA256_DIGEST_LENGTH], guid[16], body[64], cardid[21];
        size_t n = 0;

        /* GUID derived from the certificate: stable for a card, distinct between cards. */
        SHA256(cert_der, cert_len, digest);
        memcpy(guid, digest, sizeof(guid));
        guid[6] = (guid[6] & 0x0F) | 0x40; /* RFC 4122 version 4 layout */
        guid[8] = (guid[8] & 0x3F) | 0x80;

        tlv_put(body, sizeof(body), &n, 0x30, fascn_9999, sizeof(fascn_9999));
        tlv_put(body, sizeof(body), &n, 0x34, guid, sizeof(guid));
        tlv_put(body, sizeof(body), &n, 0x35, "20991231", 8);
        tlv_put(body, sizeof(body), &n, 0x3E, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xFE, NULL, 0);
        a->chuid_len = 0;
        tlv_put(a->chuid, sizeof(a->chuid), &a->chuid_len, 0x53, body, n);

        /* Card Capability Container: GSC-RID card identifier, version 21, no extensions. */
        memcpy(cardid, (const uint8_t[]){0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x01}, 7);
        memcpy(cardid + 7, digest + 16, 14);
        n = 0;
        tlv_put(body, sizeof(body), &n, 0xF0, cardid, sizeof(cardid));
        tlv_put(body, sizeof(body), &n, 0xF1, "\x21", 1);
        tlv_put(body, sizeof(body), &n, 0xF2, "\x21", 1);
        tlv_put(body, sizeof(body), &n, 0xF3, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xF4, "\x00", 1);
        tlv_put(body, sizeof(body), &n, 0xF5, "\x10", 1);
        tlv_put(body, sizeof(body), &n, 0xF6, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xF7, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xFA, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xFB, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xFC, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xFD, NULL, 0);
        tlv_put(body, sizeof(body), &n, 0xFE, NULL, 0);
        a->ccc_len = 0;
        tlv_put(a->ccc, sizeof(a->ccc), &a->ccc_len, 0x53, body, n);
}

/* Checks a PIN as the card stores it: 6–8 ASCII digits, then FF padding up to 8 bytes. */
static bool pin_block_valid(const uint8_t pin[PIV_PIN_MAX_LEN])
{
        size_t len = 0;

        while (len < PIV_PIN_MAX_LEN && pin[len] != 0xFF) {
                if (pin[len] < '0' || pin[len] > '9')
                        return false;
                len++;
        }
        for (size_t i = len; i < PIV_PIN_MAX_LEN; i++)
                if (pin[i] != 0xFF)
                        return false;
        return len >= PIV_PIN_MIN_LEN;
}

static int key_alg(EVP_PKEY *key, uint8_t *ret_alg, size_t *ret_field_len)
{
        char group[64];

        switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_RSA:
                if (EVP_PKEY_get_bits(key) != 2048)
                        return -EINVAL;
                *ret_alg = ALG_RSA_2048;
                *ret_field_len = 0;
                return 0;
        case EVP_PKEY_EC:
                if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                                   NULL) != 1)
                        return -EINVAL;
                if (streq(group, "prime256v1")) {
                        *ret_alg = ALG_ECC_P256;
                        *ret_field_len = 32;
                } else if (streq(group, "secp384r1")) {
                        *ret_alg = ALG_ECC_P384;
                        *ret_field_len = 48;
                } else
                        return -EINVAL;
                return 0;
        default:
                return -EINVAL;
        }
}

PivApplet *piv_applet_free(PivApplet *a)
{
        if (!a)
                return NULL;
        EVP_PKEY_free(a->key);
        free(a->cert_obj);
        if (a->resp)
                OPENSSL_cleanse(a->resp, a->resp_cap);
        free(a->resp);
        OPENSSL_cleanse(a, sizeof(*a));
        free(a);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PivApplet *, piv_applet_free);

int piv_applet_new(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len, const char *pin,
                   unsigned max_tries, PivApplet **ret)
{
        _cleanup_(piv_applet_freep) PivApplet *a = NULL;
        size_t pin_len, inner, n = 0;
        int r;

        if (!key || !cert_der || cert_len == 0 || cert_len > CERT_MAX || !pin || !ret)
                return -EINVAL;
        if (max_tries < 1 || max_tries > PIV_TRIES_MAX)
                return -EINVAL;
        pin_len = strnlen(pin, PIV_PIN_MAX_LEN + 1);
        if (pin_len < PIV_PIN_MIN_LEN || pin_len > PIV_PIN_MAX_LEN)
                return -EINVAL;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;

        r = key_alg(key, &a->alg, &a->ec_field_len);
        if (r < 0)
                return r;
        if (EVP_PKEY_up_ref(key) != 1)
                return -ENOMEM;
        a->key = key;

        memset(a->pin, 0xFF, sizeof(a->pin));
        memcpy(a->pin, pin, pin_len);
        if (!pin_block_valid(a->pin))
                return -EINVAL;
        a->max_tries = a->tries = max_tries;

        /* 53 { 70 <cert>, 71 01 00 (not compressed), FE 00 (no error detection code) } */
        inner = tlv_size(0x70, cert_len) + tlv_size(0x71, 1) + tlv_size(0xFE, 0);
        a->cert_obj_len = tlv_size(0x53, inner);
        a->cert_obj = malloc(a->cert_obj_len);
        if (!a->cert_obj)
                return -ENOMEM;
        n = tlv_header(a->cert_obj, 0x53, inner);
        tlv_put(a->cert_obj, a->cert_obj_len, &n, 0x70, cert_der, cert_len);
        tlv_put(a->cert_obj, a->cert_obj_len, &n, 0x71, "\x00", 1);
        tlv_put(a->cert_obj, a->cert_obj_len, &n, 0xFE, NULL, 0);
        assert(n == a->cert_obj_len);

        build_chuid_ccc(a, cert_der, cert_len);
        build_atr(a);

        /* Large enough for the certificate object and for any other answer (<= 600 bytes). */
        a->resp_cap = a->cert_obj_len + 600;
        a->resp = malloc(a->resp_cap);
        if (!a->resp)
                return -ENOMEM;

        *ret = TAKE_PTR(a);
        return 0;
}

size_t piv_applet_atr(const PivApplet *a, const uint8_t **ret_atr)
{
        *ret_atr = a->atr;
        return a->atr_len;
}

unsigned piv_applet_tries_left(const PivApplet *a)
{
        return a->tries;
}

int piv_applet_verified(const PivApplet *a)
{
        return a->verified;
}

/* Splits a short C-APDU. Extended lengths (Lc byte 00 followed by data) are refused. */
static int parse_apdu(const uint8_t *b, size_t n, Apdu *ret)
{
        Apdu c = {};

        if (n < 4)
                return -EBADMSG;
        c.cla = b[0], c.ins = b[1], c.p1 = b[2], c.p2 = b[3];
        if (n == 4) {
                *ret = c;
                return 0;
        }
        if (n == 5) {
                c.le = b[4] == 0 ? 256 : b[4];
                *ret = c;
                return 0;
        }
        c.lc = b[4];
        if (c.lc == 0)
                return -EBADMSG;
        if (n == 5 + c.lc)
                c.le = 0;
        else if (n == 6 + c.lc)
                c.le = b[5 + c.lc] == 0 ? 256 : b[5 + c.lc];
        else
                return -EBADMSG;
        c.data = b + 5;
        *ret = c;
        return 0;
}

static uint16_t set_response(PivApplet *a, const uint8_t *data, size_t len)
{
        if (len > a->resp_cap)
                return SW_UNKNOWN;
        memcpy(a->resp, data, len);
        a->resp_len = len;
        a->resp_off = 0;
        return SW_OK;
}

static uint16_t do_select(PivApplet *a, const Apdu *c)
{
        uint8_t apt[64], body[60], alg[16];
        size_t n = 0, na = 0;

        if (c->p1 != 0x04)
                return SW_NOT_FOUND; /* only selection by DF name (AID) exists on this card */
        if (c->p2 != 0x00)
                return SW_WRONG_P1P2;
        /* Any prefix of the full AID from the RID on selects PIV (OpenSC sends 9 bytes). */
        if (c->lc < PIV_AID_SHORT || c->lc > sizeof(piv_aid) || memcmp(c->data, piv_aid, c->lc) != 0)
                return SW_NOT_FOUND;

        /* Application Property Template, SP 800-73-4 Part 2 table 3. */
        tlv_put(body, sizeof(body), &n, 0x4F, piv_aid + PIV_AID_SHORT, sizeof(piv_aid) - PIV_AID_SHORT);
        {
                uint8_t auth[8];
                size_t m = 0;

                tlv_put(auth, sizeof(auth), &m, 0x4F, piv_aid, PIV_AID_SHORT);
                tlv_put(body, sizeof(body), &n, 0x79, auth, m);
        }
        tlv_put(body, sizeof(body), &n, 0x50, "mamori vcard", 12);
        tlv_put(alg, sizeof(alg), &na, 0x80, &a->alg, 1);
        tlv_put(alg, sizeof(alg), &na, 0x06, "\x00", 1);
        tlv_put(body, sizeof(body), &n, 0xAC, alg, na);
        na = 0;
        tlv_put(apt, sizeof(apt), &na, 0x61, body, n);
        return set_response(a, apt, na);
}

static uint16_t do_get_data(PivApplet *a, const Apdu *c)
{
        /* Discovery object: PIV AID, PIN usage policy "application PIN only". */
        static const uint8_t discovery[] = {0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00,
                                            0x00, 0x10, 0x00, 0x01, 0x00, 0x5F, 0x2F, 0x02, 0x40, 0x00};
        const uint8_t *p = c->data, *val;
        size_t left = c->lc, len;
        uint32_t tag, obj = 0;

        if (c->p1 != 0x3F || c->p2 != 0xFF)
                return SW_WRONG_P1P2;
        if (!p || tlv_read(&p, &left, &tag, &val, &len) < 0 || tag != 0x5C || left != 0 || len < 1 ||
            len > 3)
                return SW_WRONG_DATA;
        for (size_t i = 0; i < len; i++)
                obj = (obj << 8) | val[i];

        switch (obj) {
        case 0x7E:
                return set_response(a, discovery, sizeof(discovery));
        case 0x5FC102: /* CHUID */
                return set_response(a, a->chuid, a->chuid_len);
        case 0x5FC105: /* X.509 certificate for PIV Authentication (key 9A) */
                return set_response(a, a->cert_obj, a->cert_obj_len);
        case 0x5FC107: /* Card Capability Container */
                return set_response(a, a->ccc, a->ccc_len);
        default: /* other certificates, key history, biometrics, printed info: not on this card */
                return SW_NOT_FOUND;
        }
}

static uint16_t tries_sw(const PivApplet *a)
{
        return a->tries == 0 ? SW_AUTH_BLOCKED : SW_TRIES_LEFT(a->tries);
}

/* Compares a presented PIN block against the card's, counting a failure. */
static uint16_t check_pin(PivApplet *a, const uint8_t presented[PIV_PIN_MAX_LEN])
{
        if (a->tries == 0)
                return SW_AUTH_BLOCKED;
        if (CRYPTO_memcmp(presented, a->pin, PIV_PIN_MAX_LEN) != 0) {
                a->tries--;
                a->verified = false;
                return tries_sw(a);
        }
        a->tries = a->max_tries;
        a->verified = true;
        return SW_OK;
}

static uint16_t do_verify(PivApplet *a, const Apdu *c)
{
        if (c->p1 == 0xFF && c->lc == 0) { /* SP 800-73-4: reset the security status */
                if (c->p2 != PIN_APPLICATION)
                        return SW_REF_NOT_FOUND;
                a->verified = false;
                return SW_OK;
        }
        if (c->p1 != 0x00)
                return SW_WRONG_P1P2;
        if (c->p2 != PIN_APPLICATION)
                return SW_REF_NOT_FOUND;
        if (c->lc == 0) {
                if (a->tries == 0)
                        return SW_AUTH_BLOCKED;
                return a->verified ? SW_OK : SW_TRIES_LEFT(a->tries);
        }
        if (c->lc != PIV_PIN_MAX_LEN)
                return SW_WRONG_DATA;
        return check_pin(a, c->data);
}

static uint16_t do_change_reference(PivApplet *a, const Apdu *c)
{
        uint16_t sw;

        if (c->p1 != 0x00)
                return SW_WRONG_P1P2;
        if (c->p2 != PIN_APPLICATION)
                return SW_REF_NOT_FOUND;
        if (c->lc != 2 * PIV_PIN_MAX_LEN)
                return SW_WRONG_DATA;
        if (!pin_block_valid(c->data + PIV_PIN_MAX_LEN))
                return SW_WRONG_DATA;
        sw = check_pin(a, c->data);
        if (sw != SW_OK)
                return sw;
        memcpy(a->pin, c->data + PIV_PIN_MAX_LEN, PIV_PIN_MAX_LEN);
        return SW_OK;
}

static int sign(PivApplet *a, const uint8_t *in, size_t in_len, uint8_t *sig, size_t *sig_len)
{
        EVP_PKEY_CTX *ctx;
        int r = -EIO;

        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, a->key, NULL);
        if (!ctx)
                return -ENOMEM;
        if (EVP_PKEY_sign_init(ctx) != 1)
                goto finish;
        /* The host did the padding (PKCS#1 v1.5 block): the card applies the bare private key. */
        if (a->alg == ALG_RSA_2048 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) != 1)
                goto finish;
        if (EVP_PKEY_sign(ctx, sig, sig_len, in, in_len) != 1) {
                r = -EINVAL; /* e.g. an RSA block not smaller than the modulus */
                goto finish;
        }
        r = 0;
finish:
        EVP_PKEY_CTX_free(ctx);
        return r;
}

static uint16_t do_general_authenticate(PivApplet *a, const Apdu *c)
{
        const uint8_t *p = c->data, *tmpl, *val, *challenge = NULL;
        size_t left = c->lc, tmpl_len, len, challenge_len = 0, sig_len, n = 0;
        uint8_t sig[512], out[540];
        bool want_response = false;
        uint32_t tag;

        if (c->p2 != KEY_PIV_AUTH)
                return SW_REF_NOT_FOUND;
        if (c->p1 != a->alg)
                return SW_WRONG_DATA;
        if (!a->verified)
                return SW_SECURITY_NOT_SAT;

        /* 7C { 82 00 (response wanted), 81 <challenge> } in either order, nothing else. */
        if (!p || tlv_read(&p, &left, &tag, &tmpl, &tmpl_len) < 0 || tag != 0x7C || left != 0)
                return SW_WRONG_DATA;
        while (tmpl_len > 0) {
                if (tlv_read(&tmpl, &tmpl_len, &tag, &val, &len) < 0)
                        return SW_WRONG_DATA;
                if (tag == 0x82 && len == 0 && !want_response)
                        want_response = true;
                else if (tag == 0x81 && !challenge) {
                        challenge = val;
                        challenge_len = len;
                } else
                        return SW_WRONG_DATA;
        }
        if (!want_response || !challenge)
                return SW_WRONG_DATA;
        if (a->alg == ALG_RSA_2048 ? challenge_len != 256 : challenge_len != a->ec_field_len)
                return SW_WRONG_DATA;

        sig_len = sizeof(sig);
        if (sign(a, challenge, challenge_len, sig, &sig_len) < 0)
                return SW_WRONG_DATA;

        n = tlv_header(out, 0x7C, tlv_size(0x82, sig_len));
        tlv_put(out, sizeof(out), &n, 0x82, sig, sig_len);
        OPENSSL_cleanse(sig, sizeof(sig));
        return set_response(a, out, n);
}

/* Emits up to le bytes of pending response data with 61 xx while more remains. */
static size_t emit(PivApplet *a, size_t le, uint8_t *rapdu)
{
        size_t avail = a->resp_len - a->resp_off, n = avail < le ? avail : le, rest;

        memcpy(rapdu, a->resp + a->resp_off, n);
        a->resp_off += n;
        rest = a->resp_len - a->resp_off;
        if (rest == 0) {
                clear_response(a);
                rapdu[n] = 0x90;
                rapdu[n + 1] = 0x00;
        } else {
                rapdu[n] = 0x61;
                rapdu[n + 1] = rest >= 256 ? 0x00 : rest;
        }
        return n + 2;
}

static size_t status(uint8_t *rapdu, uint16_t sw)
{
        rapdu[0] = sw >> 8;
        rapdu[1] = sw & 0xFF;
        return 2;
}

static uint16_t dispatch(PivApplet *a, const Apdu *c)
{
        switch (c->ins) {
        case INS_SELECT:
                return do_select(a, c);
        case INS_GET_DATA:
                return do_get_data(a, c);
        case INS_VERIFY:
                return do_verify(a, c);
        case INS_CHANGE_REF:
                return do_change_reference(a, c);
        case INS_GENERAL_AUTH:
                return do_general_authenticate(a, c);
        default:
                return SW_INS_UNSUPPORTED;
        }
}

size_t piv_applet_process(PivApplet *a, const uint8_t *capdu, size_t capdu_len, uint8_t *rapdu)
{
        Apdu c;
        uint16_t sw;

        if (parse_apdu(capdu, capdu_len, &c) < 0) {
                clear_chain(a);
                return status(rapdu, SW_WRONG_LENGTH);
        }
        if (c.cla != 0x00 && c.cla != 0x10) {
                clear_chain(a);
                return status(rapdu, SW_CLA_UNSUPPORTED);
        }

        if (c.ins == INS_GET_RESPONSE && c.cla == 0x00) {
                if (c.p1 != 0 || c.p2 != 0)
                        return status(rapdu, SW_WRONG_P1P2);
                if (c.lc != 0)
                        return status(rapdu, SW_WRONG_LENGTH);
                if (a->resp_len == 0)
                        return status(rapdu, SW_NO_DATA_PENDING);
                return emit(a, c.le == 0 ? 256 : c.le, rapdu);
        }
        clear_response(a);

        if (c.cla == 0x10) {
                if (c.ins != INS_GENERAL_AUTH) {
                        clear_chain(a);
                        return status(rapdu, SW_CHAINING_UNSUPP);
                }
                if (a->chaining && (c.ins != a->chain_ins || c.p1 != a->chain_p1 || c.p2 != a->chain_p2))
                        clear_chain(a); /* a new chain replaces an abandoned one */
                if (c.lc > CHAIN_MAX - a->chain_len) {
                        clear_chain(a);
                        return status(rapdu, SW_WRONG_LENGTH);
                }
                if (c.lc > 0)
                        memcpy(a->chain + a->chain_len, c.data, c.lc);
                a->chain_len += c.lc;
                a->chaining = true;
                a->chain_ins = c.ins, a->chain_p1 = c.p1, a->chain_p2 = c.p2;
                return status(rapdu, SW_OK);
        }

        if (a->chaining) {
                if (c.ins != a->chain_ins || c.p1 != a->chain_p1 || c.p2 != a->chain_p2) {
                        clear_chain(a);
                        return status(rapdu, SW_LAST_CMD_EXPECTED);
                }
                if (c.lc > CHAIN_MAX - a->chain_len) {
                        clear_chain(a);
                        return status(rapdu, SW_WRONG_LENGTH);
                }
                if (c.lc > 0)
                        memcpy(a->chain + a->chain_len, c.data, c.lc);
                a->chain_len += c.lc;
                c.data = a->chain;
                c.lc = a->chain_len;
        }

        sw = dispatch(a, &c);
        clear_chain(a);
        if (sw != SW_OK || a->resp_len == 0) {
                clear_response(a);
                return status(rapdu, sw);
        }
        /* A command without Le still gets its data (T=1 cards answer what they have). */
        return emit(a, c.le == 0 ? 256 : c.le, rapdu);
}
