/* The PIV card profile (SP 800-73-4, DESIGN.md §3): select, certificate, PIN, GENERAL AUTHENTICATE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <zlib.h>

#include "card-internal.h"
#include "mamori/macro.h"
#include "piv-apdu.h"

static int piv_select(Card *c)
{
        uint8_t cmd[APDU_MAX_COMMAND];
        uint16_t sw;
        int l, r;

        l = piv_build_select(cmd, sizeof(cmd), c->profile->aid, c->profile->aid_len);
        if (l < 0)
                return l;
        /* The application property template is not needed: don't fetch it. */
        r = card_transceive(c, cmd, (size_t)l, NULL, 0, NULL, &sw);
        if (r < 0)
                return r;
        return piv_status_to_errno(sw, NULL);
}

/* Inflates a gzip stream into at most PIV_CERT_MAX_DER bytes. */
static int piv_gunzip(const uint8_t *in, size_t in_len, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ uint8_t *out = NULL;
        z_stream zs = {};
        int zr;

        if (in_len > UINT_MAX)
                return CARD_E_MALFORMED;
        out = malloc(PIV_CERT_MAX_DER);
        if (!out)
                return -ENOMEM;
        if (inflateInit2(&zs, 15 + 16) != Z_OK) /* gzip wrapper only */
                return -ENOMEM;
        zs.next_in = (Bytef *)in;
        zs.avail_in = (uInt)in_len;
        zs.next_out = out;
        zs.avail_out = PIV_CERT_MAX_DER;
        zr = inflate(&zs, Z_FINISH);
        size_t n = PIV_CERT_MAX_DER - zs.avail_out;
        inflateEnd(&zs);
        if (zr == Z_BUF_ERROR && zs.avail_out == 0)
                return CARD_E_TOO_BIG;
        if (zr != Z_STREAM_END || n == 0)
                return CARD_E_MALFORMED;
        *ret = TAKE_PTR(out);
        *ret_len = n;
        return 0;
}

static int piv_read_certificate(Card *c, uint8_t **ret_der, size_t *ret_der_len)
{
        _cleanup_free_ uint8_t *buf = NULL, *inflated = NULL, *der = NULL;
        uint8_t cmd[APDU_MAX_COMMAND];
        const uint8_t *cert, *p;
        size_t n = 0, cert_len;
        uint16_t sw;
        bool gzip;
        int l, r;

        l = piv_build_get_data(cmd, sizeof(cmd), piv_tag_cert_auth, sizeof(piv_tag_cert_auth));
        if (l < 0)
                return l;
        buf = malloc(APDU_MAX_ASSEMBLED);
        if (!buf)
                return -ENOMEM;
        r = card_transceive(c, cmd, (size_t)l, buf, APDU_MAX_ASSEMBLED, &n, &sw);
        if (r < 0)
                return r;
        r = piv_status_to_errno(sw, NULL);
        if (r < 0)
                return r;
        r = piv_parse_cert_object(buf, n, &cert, &cert_len, &gzip);
        if (r == -ENOENT)
                return CARD_E_NOT_FOUND;
        if (r < 0)
                return CARD_E_MALFORMED;
        if (gzip) {
                r = piv_gunzip(cert, cert_len, &inflated, &cert_len);
                if (r < 0)
                        return r;
                cert = inflated;
        }
        if (cert_len > PIV_CERT_MAX_DER)
                return CARD_E_TOO_BIG;

        /* Only hand out something that is one whole DER certificate. */
        p = cert;
        X509 *x = d2i_X509(NULL, &p, (long)cert_len);
        bool whole = x && p == cert + cert_len;
        X509_free(x);
        if (!whole) {
                ERR_clear_error();
                return CARD_E_MALFORMED;
        }

        der = malloc(cert_len);
        if (!der)
                return -ENOMEM;
        memcpy(der, cert, cert_len);
        *ret_der = TAKE_PTR(der);
        *ret_der_len = cert_len;
        return 0;
}

static int piv_pin_tries(Card *c, unsigned *ret_tries)
{
        uint8_t cmd[APDU_MAX_COMMAND];
        unsigned tries = 0;
        uint16_t sw;
        int l, r;

        l = piv_build_verify_status(cmd, sizeof(cmd), PIV_PIN_REF);
        if (l < 0)
                return l;
        r = card_transceive(c, cmd, (size_t)l, NULL, 0, NULL, &sw);
        if (r < 0)
                return r;
        r = piv_status_to_errno(sw, &tries);
        if (r == 0)
                return 1;
        if (r == CARD_E_PIN_WRONG) {
                c->tries_left = (int)tries;
                if (ret_tries)
                        *ret_tries = tries;
                return 0;
        }
        if (r == CARD_E_PIN_BLOCKED)
                c->tries_left = 0;
        /* Cards without a retry counter answer 69 82 here: not verified, count unknown. */
        if (r == CARD_E_NOT_VERIFIED)
                return 0;
        return r;
}

static int piv_send_pin_command(Card *c, uint8_t cmd[APDU_MAX_COMMAND], int l)
{
        unsigned tries = 0;
        uint16_t sw;
        int r;

        if (l < 0)
                return l == -EINVAL ? CARD_E_BAD_PIN : l;
        r = card_transceive(c, cmd, (size_t)l, NULL, 0, NULL, &sw);
        OPENSSL_cleanse(cmd, APDU_MAX_COMMAND);
        if (r < 0)
                return r;
        r = piv_status_to_errno(sw, &tries);
        if (r == CARD_E_PIN_WRONG)
                c->tries_left = (int)tries;
        else if (r == CARD_E_PIN_BLOCKED)
                c->tries_left = 0;
        return r;
}

static int piv_verify_pin(Card *c, const char *pin)
{
        uint8_t cmd[APDU_MAX_COMMAND];

        return piv_send_pin_command(c, cmd, piv_build_verify_pin(cmd, sizeof(cmd), PIV_PIN_REF, pin));
}

static int piv_change_pin(Card *c, const char *old_pin, const char *new_pin)
{
        uint8_t cmd[APDU_MAX_COMMAND];

        return piv_send_pin_command(c, cmd,
                                    piv_build_change_pin(cmd, sizeof(cmd), PIV_PIN_REF, old_pin, new_pin));
}

static int piv_sign(Card *c, enum card_key_type type, const uint8_t *digest, size_t digest_len,
                    uint8_t **ret_sig, size_t *ret_sig_len)
{
        uint8_t payload[PIV_RSA2048_BYTES], tmpl[PIV_RSA2048_BYTES + 16], cmd[APDU_MAX_COMMAND];
        uint8_t resp[1024];
        const uint8_t *sig;
        size_t plen, off = 0, n = 0, siglen;
        uint16_t sw;
        uint8_t alg;
        int tl, r;

        switch (type) {
        case CARD_KEY_P256:
                if (digest_len != 32)
                        return -EINVAL;
                alg = PIV_ALG_ECC_P256;
                memcpy(payload, digest, 32);
                plen = 32;
                break;
        case CARD_KEY_P384:
                if (digest_len != 48)
                        return -EINVAL;
                alg = PIV_ALG_ECC_P384;
                memcpy(payload, digest, 48);
                plen = 48;
                break;
        case CARD_KEY_RSA2048:
                if (digest_len != 32)
                        return -EINVAL;
                alg = PIV_ALG_RSA2048;
                plen = (size_t)piv_build_rsa2048_pkcs1_sha256(payload, digest);
                break;
        default:
                return CARD_E_UNSUPPORTED;
        }

        tl = piv_build_auth_template(tmpl, sizeof(tmpl), payload, plen);
        if (tl < 0)
                return tl;

        /* Command chaining (CLA 10) for every chunk but the last, 255 data bytes each. */
        for (;;) {
                size_t chunk = (size_t)tl - off;
                bool last = chunk <= 255;
                if (!last)
                        chunk = 255;
                int l = apdu_build(cmd, sizeof(cmd), last ? 0x00 : 0x10, 0x87, alg, PIV_KEY_AUTH, tmpl + off,
                                   chunk, last);
                if (l < 0)
                        return l;
                off += chunk;
                if (!last) {
                        r = card_transceive(c, cmd, (size_t)l, NULL, 0, NULL, &sw);
                        if (r < 0)
                                return r;
                        r = piv_status_to_errno(sw, NULL);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = card_transceive(c, cmd, (size_t)l, resp, sizeof(resp), &n, &sw);
                if (r < 0)
                        return r;
                break;
        }
        r = piv_status_to_errno(sw, NULL);
        if (r < 0)
                return r;
        r = piv_parse_auth_response(resp, n, &sig, &siglen);
        if (r < 0)
                return CARD_E_MALFORMED;

        uint8_t *s = malloc(siglen);
        if (!s)
                return -ENOMEM;
        memcpy(s, sig, siglen);
        *ret_sig = s;
        *ret_sig_len = siglen;
        return 0;
}

const struct card_profile card_profile_piv = {
        .name = "piv",
        .aid = piv_aid,
        .aid_len = sizeof(piv_aid),
        .pin_min = 6,
        .pin_max = 8,
        .select = piv_select,
        .read_certificate = piv_read_certificate,
        .pin_tries = piv_pin_tries,
        .verify_pin = piv_verify_pin,
        .change_pin = piv_change_pin,
        .sign = piv_sign,
};
