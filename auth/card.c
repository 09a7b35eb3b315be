/* Card operations over a transport: exchange engine (61xx/6Cxx), profile dispatch, card id, and
 * the challenge-response check of the card's signature against its certificate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "card-internal.h"
#include "mamori/auth-reasons.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "piv-apdu.h"

/* The card errors that are also refusal reasons use the reason's name (common/auth-reasons.c). */
const char *card_strerror(int r)
{
        switch (r) {
        case 0:
                return "ok";
        case CARD_E_PIN_WRONG:
                return auth_reason_to_string(AUTH_PIN_WRONG);
        case CARD_E_PIN_BLOCKED:
                return auth_reason_to_string(AUTH_PIN_BLOCKED);
        case CARD_E_NOT_VERIFIED:
                return "pin-not-verified";
        case CARD_E_NOT_FOUND:
                return "not-found";
        case CARD_E_REJECTED:
                return "card-rejected-command";
        case CARD_E_UNSUPPORTED:
                return "unsupported";
        case CARD_E_CARD_ERROR:
                return auth_reason_to_string(AUTH_CARD_ERROR);
        case CARD_E_MALFORMED:
                return "malformed-response";
        case CARD_E_TOO_BIG:
                return "response-too-big";
        case CARD_E_SIG_INVALID:
                return auth_reason_to_string(AUTH_SIGNATURE_INVALID);
        case CARD_E_BAD_PIN:
                return "pin-format";
        case CARD_E_REMOVED:
                return "card-removed";
        case CARD_E_NO_SERVICE:
                return "pcscd-unavailable";
        case CARD_E_NO_READER:
                return "reader-unavailable";
        case CARD_E_RESET:
                return "card-reset";
        case CARD_E_BUSY:
                return "card-busy";
        case CARD_E_TIMEOUT:
                return "timeout";
        case CARD_E_UNRESPONSIVE:
                return "card-unresponsive";
        case CARD_E_CANCELLED:
                return "cancelled";
        case -ENOMEM:
                return "out-of-memory";
        default:
                return "error";
        }
}

int card_id_from_cert(const uint8_t *der, size_t der_len, char ret_id[CARD_ID_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        uint8_t md[32];
        unsigned mdlen = 0;

        if (!der || der_len == 0)
                return -EINVAL;
        if (EVP_Digest(der, der_len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md))
                return -EIO;
        for (size_t i = 0; i < sizeof(md); i++) {
                ret_id[2 * i] = hex[md[i] >> 4];
                ret_id[2 * i + 1] = hex[md[i] & 0xF];
        }
        ret_id[CARD_ID_LEN] = '\0';
        return 0;
}

int card_new(const struct card_transport *transport, const char *profile, Card **ret)
{
        const struct card_profile *p;
        Card *c;

        if (!transport || !transport->transmit || !ret)
                return -EINVAL;
        p = card_profile_find(profile);
        if (!p)
                return -ENOENT;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->transport = transport;
        c->profile = p;
        c->tries_left = -1;
        *ret = c;
        return 0;
}

Card *card_free(Card *c)
{
        free(c);
        return NULL;
}

unsigned card_exchanges(const Card *c)
{
        return c->exchanges;
}

int card_tries_left(const Card *c)
{
        return c->tries_left;
}

const char *card_profile_name(const Card *c)
{
        return c->profile->name;
}

static int card_transmit(Card *c, const uint8_t *capdu, size_t clen, uint8_t rapdu[APDU_MAX_RESPONSE],
                         size_t *ret_len, uint16_t *ret_sw)
{
        size_t rlen = APDU_MAX_RESPONSE;
        int r;

        c->exchanges++;
        r = c->transport->transmit(c->transport->userdata, capdu, clen, rapdu, &rlen);
        if (r < 0)
                return r;
        if (rlen < 2 || rlen > APDU_MAX_RESPONSE)
                return CARD_E_MALFORMED;
        *ret_sw = (uint16_t)(rapdu[rlen - 2] << 8 | rapdu[rlen - 1]);
        *ret_len = rlen - 2;
        return 0;
}

/* Copies capdu with its Le byte set to le (adding Le for case 1/3 commands). */
static int apdu_with_le(const uint8_t *capdu, size_t clen, uint8_t le, uint8_t out[APDU_MAX_COMMAND])
{
        size_t body;

        if (clen < 4 || clen > APDU_MAX_COMMAND)
                return -EINVAL;
        if (clen == 4)
                body = 4;
        else if (clen == 5)
                body = 4; /* case 2: the fifth byte is Le */
        else if (clen == 5 + (size_t)capdu[4])
                body = clen; /* case 3 */
        else if (clen == 6 + (size_t)capdu[4])
                body = clen - 1; /* case 4 */
        else
                return -EINVAL;
        if (body + 1 > APDU_MAX_COMMAND)
                return -EINVAL;
        memcpy(out, capdu, body);
        out[body] = le;
        return (int)(body + 1);
}

int card_transceive(Card *c, const uint8_t *capdu, size_t clen, uint8_t *out, size_t out_cap,
                    size_t *ret_len, uint16_t *ret_sw)
{
        uint8_t rapdu[APDU_MAX_RESPONSE], cmd[APDU_MAX_COMMAND];
        size_t total = 0, n;
        uint16_t sw;
        int r;

        r = card_transmit(c, capdu, clen, rapdu, &n, &sw);
        if (r < 0)
                goto finish;

        if ((sw >> 8) == SW1_WRONG_LE) {
                int l = apdu_with_le(capdu, clen, sw & 0xFF, cmd);
                if (l < 0) {
                        r = CARD_E_MALFORMED;
                        goto finish;
                }
                r = card_transmit(c, cmd, (size_t)l, rapdu, &n, &sw);
                OPENSSL_cleanse(cmd, sizeof(cmd));
                if (r < 0)
                        goto finish;
        }

        for (unsigned round = 0;; round++) {
                if (n > 0 && out) {
                        if (n > out_cap - total || total + n > APDU_MAX_ASSEMBLED) {
                                r = CARD_E_TOO_BIG;
                                goto finish;
                        }
                        memcpy(out + total, rapdu, n);
                        total += n;
                }
                if ((sw >> 8) != SW1_MORE_DATA)
                        break;
                if (!out) {
                        sw = SW_OK; /* caller does not want the rest */
                        break;
                }
                if (round + 1 >= APDU_MAX_ROUNDS) {
                        r = CARD_E_TOO_BIG;
                        goto finish;
                }
                int l = piv_build_get_response(cmd, sizeof(cmd), sw & 0xFF);
                if (l < 0) {
                        r = l;
                        goto finish;
                }
                r = card_transmit(c, cmd, (size_t)l, rapdu, &n, &sw);
                if (r < 0)
                        goto finish;
        }

        if (ret_len)
                *ret_len = total;
        if (ret_sw)
                *ret_sw = sw;
        r = 0;
finish:
        OPENSSL_cleanse(rapdu, sizeof(rapdu));
        return r;
}

int card_select(Card *c)
{
        return c->profile->select(c);
}

int card_read_certificate(Card *c, uint8_t **ret_der, size_t *ret_der_len)
{
        return c->profile->read_certificate(c, ret_der, ret_der_len);
}

int card_pin_tries(Card *c, unsigned *ret_tries)
{
        return c->profile->pin_tries(c, ret_tries);
}

static int pin_length_ok(const Card *c, const char *pin)
{
        return pin_check_format(pin, c->profile->pin_min, c->profile->pin_max) < 0 ? CARD_E_BAD_PIN : 0;
}

int card_verify_pin(Card *c, const char *pin)
{
        int r = pin_length_ok(c, pin);
        if (r < 0)
                return r;
        return c->profile->verify_pin(c, pin);
}

int card_change_pin(Card *c, const char *old_pin, const char *new_pin)
{
        int r = pin_length_ok(c, old_pin);
        if (r < 0)
                return r;
        r = pin_length_ok(c, new_pin);
        if (r < 0)
                return r;
        return c->profile->change_pin(c, old_pin, new_pin);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);

static int key_type_of(EVP_PKEY *pkey, enum card_key_type *ret_type, const EVP_MD **ret_md)
{
        if (EVP_PKEY_is_a(pkey, "EC")) {
                char group[64];
                size_t glen = 0;

                if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                                   &glen) != 1)
                        return CARD_E_UNSUPPORTED;
                if (streq(group, "prime256v1") || streq(group, "P-256")) {
                        *ret_type = CARD_KEY_P256;
                        *ret_md = EVP_sha256();
                        return 0;
                }
                if (streq(group, "secp384r1") || streq(group, "P-384")) {
                        *ret_type = CARD_KEY_P384;
                        *ret_md = EVP_sha384();
                        return 0;
                }
                return CARD_E_UNSUPPORTED;
        }
        if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) == 2048) {
                *ret_type = CARD_KEY_RSA2048;
                *ret_md = EVP_sha256();
                return 0;
        }
        return CARD_E_UNSUPPORTED;
}

int card_authenticate(Card *c, const uint8_t *der, size_t der_len)
{
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *mctx = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        const unsigned char *p = der;
        uint8_t challenge[32], digest[EVP_MAX_MD_SIZE];
        unsigned dlen = 0;
        size_t siglen = 0;
        enum card_key_type type;
        const EVP_MD *md;
        EVP_PKEY *pkey; /* owned by x */
        int r;

        if (!der || der_len == 0 || der_len > PIV_CERT_MAX_DER)
                return CARD_E_MALFORMED;
        x = d2i_X509(NULL, &p, (long)der_len);
        if (!x || p != der + der_len) {
                ERR_clear_error();
                return CARD_E_MALFORMED;
        }
        pkey = X509_get0_pubkey(x);
        if (!pkey)
                return CARD_E_MALFORMED;
        r = key_type_of(pkey, &type, &md);
        if (r < 0)
                return r;

        if (RAND_bytes(challenge, sizeof(challenge)) != 1)
                return -EIO;
        if (EVP_Digest(challenge, sizeof(challenge), digest, &dlen, md, NULL) != 1)
                return -EIO;

        r = c->profile->sign(c, type, digest, dlen, &sig, &siglen);
        if (r < 0)
                return r;

        /* Verify over the challenge itself, independently of how the profile built the block. */
        mctx = EVP_MD_CTX_new();
        if (!mctx)
                return -ENOMEM;
        if (EVP_DigestVerifyInit(mctx, NULL, md, NULL, pkey) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        if (EVP_DigestVerify(mctx, sig, siglen, challenge, sizeof(challenge)) != 1) {
                ERR_clear_error(); /* a bad signature is a result, not an OpenSSL failure to report */
                return CARD_E_SIG_INVALID;
        }
        return 0;
}

int card_login(Card *c, const char *pin, const uint8_t *der, size_t der_len)
{
        int r;

        /* Refuse a malformed PIN before touching the card at all. */
        r = pin_length_ok(c, pin);
        if (r < 0)
                return r;
        r = card_select(c);
        if (r < 0)
                return r;
        r = card_verify_pin(c, pin);
        if (r < 0)
                return r;
        return card_authenticate(c, der, der_len);
}
