/* PIV (SP 800-73-4) APDU builders and response parsers: pure, no I/O (see piv-apdu.h). */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mamori/card.h"
#include "mamori/parse-util.h"
#include "piv-apdu.h"
#include "tlv.h"

const uint8_t piv_aid[9] = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00};
const uint8_t piv_tag_cert_auth[3] = {0x5F, 0xC1, 0x05};

int apdu_build(uint8_t *buf, size_t cap, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
               const uint8_t *data, size_t dlen, bool le)
{
        size_t n = 4 + (dlen > 0 ? 1 + dlen : 0) + (le ? 1 : 0);

        if (dlen > 255)
                return -EINVAL;
        if (n > cap)
                return -ENOBUFS;
        buf[0] = cla;
        buf[1] = ins;
        buf[2] = p1;
        buf[3] = p2;
        size_t i = 4;
        if (dlen > 0) {
                buf[i++] = (uint8_t)dlen;
                memcpy(buf + i, data, dlen);
                i += dlen;
        }
        if (le)
                buf[i++] = 0x00;
        return (int)i;
}

int piv_build_select(uint8_t *buf, size_t cap, const uint8_t *aid, size_t aid_len)
{
        if (aid_len == 0 || aid_len > 16)
                return -EINVAL;
        return apdu_build(buf, cap, 0x00, 0xA4, 0x04, 0x00, aid, aid_len, true);
}

int piv_build_get_data(uint8_t *buf, size_t cap, const uint8_t *tag, size_t tag_len)
{
        uint8_t d[2 + 3];

        if (tag_len == 0 || tag_len > 3)
                return -EINVAL;
        d[0] = 0x5C;
        d[1] = (uint8_t)tag_len;
        memcpy(d + 2, tag, tag_len);
        return apdu_build(buf, cap, 0x00, 0xCB, 0x3F, 0xFF, d, 2 + tag_len, true);
}

int piv_build_get_response(uint8_t *buf, size_t cap, uint8_t le)
{
        if (cap < 5)
                return -ENOBUFS;
        buf[0] = 0x00;
        buf[1] = 0xC0;
        buf[2] = 0x00;
        buf[3] = 0x00;
        buf[4] = le;
        return 5;
}

int piv_build_verify_status(uint8_t *buf, size_t cap, uint8_t pin_ref)
{
        return apdu_build(buf, cap, 0x00, 0x20, 0x00, pin_ref, NULL, 0, false);
}

int piv_pin_check(const char *pin)
{
        return pin_check_format(pin, PIN_DIGITS_MIN, PIN_DIGITS_MAX);
}

static void pin_pad(uint8_t out[8], const char *pin)
{
        size_t n = strlen(pin);

        memset(out, 0xFF, 8);
        memcpy(out, pin, n);
}

int piv_build_verify_pin(uint8_t *buf, size_t cap, uint8_t pin_ref, const char *pin)
{
        uint8_t d[8];
        int r;

        if (piv_pin_check(pin) < 0)
                return -EINVAL;
        pin_pad(d, pin);
        r = apdu_build(buf, cap, 0x00, 0x20, 0x00, pin_ref, d, sizeof(d), false);
        OPENSSL_cleanse(d, sizeof(d));
        return r;
}

int piv_build_change_pin(uint8_t *buf, size_t cap, uint8_t pin_ref, const char *old_pin, const char *new_pin)
{
        uint8_t d[16];
        int r;

        if (piv_pin_check(old_pin) < 0 || piv_pin_check(new_pin) < 0)
                return -EINVAL;
        pin_pad(d, old_pin);
        pin_pad(d + 8, new_pin);
        r = apdu_build(buf, cap, 0x00, 0x24, 0x00, pin_ref, d, sizeof(d), false);
        OPENSSL_cleanse(d, sizeof(d));
        return r;
}

int piv_build_auth_template(uint8_t *buf, size_t cap, const uint8_t *payload, size_t plen)
{
        uint8_t h81[4];
        int n81, n7c;
        size_t inner;

        n81 = tlv_put_header(h81, sizeof(h81), 0x81, plen);
        if (n81 < 0)
                return n81;
        inner = 2 + (size_t)n81 + plen;
        n7c = tlv_put_header(buf, cap, 0x7C, inner);
        if (n7c < 0)
                return n7c;
        if ((size_t)n7c + inner > cap)
                return -ENOBUFS;
        uint8_t *p = buf + n7c;
        *p++ = 0x82; /* response requested */
        *p++ = 0x00;
        memcpy(p, h81, (size_t)n81);
        p += n81;
        memcpy(p, payload, plen);
        return (int)((size_t)n7c + inner);
}

int piv_build_rsa2048_pkcs1_sha256(uint8_t ret_block[PIV_RSA2048_BYTES], const uint8_t digest[32])
{
        /* DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1). */
        static const uint8_t prefix[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                           0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
        size_t t = sizeof(prefix) + 32;
        size_t ps = PIV_RSA2048_BYTES - 3 - t;

        ret_block[0] = 0x00;
        ret_block[1] = 0x01;
        memset(ret_block + 2, 0xFF, ps);
        ret_block[2 + ps] = 0x00;
        memcpy(ret_block + 3 + ps, prefix, sizeof(prefix));
        memcpy(ret_block + 3 + ps + sizeof(prefix), digest, 32);
        return PIV_RSA2048_BYTES;
}

int piv_parse_cert_object(const uint8_t *buf, size_t len, const uint8_t **ret_cert, size_t *ret_len,
                          bool *ret_gzip)
{
        struct tlv outer, t;
        struct tlv_reader r;
        const uint8_t *cert = NULL;
        size_t cert_len = 0;
        bool have_cert = false, gzip = false, have_info = false;
        int k;

        /* The card's data object: exactly one 53 element (trailing bytes are not allowed). */
        tlv_reader_init(&r, buf, len);
        k = tlv_next(&r, &outer);
        if (k <= 0)
                return -EBADMSG;
        if (outer.tag != 0x53 || r.left != 0)
                return -EBADMSG;

        tlv_reader_enter(&r, &outer);
        while ((k = tlv_next(&r, &t)) > 0) {
                switch (t.tag) {
                case 0x70:
                        if (have_cert)
                                return -EBADMSG;
                        have_cert = true;
                        cert = t.value;
                        cert_len = t.length;
                        break;
                case 0x71:
                        if (have_info || t.length != 1)
                                return -EBADMSG;
                        have_info = true;
                        gzip = t.value[0] & 0x01;
                        break;
                default: /* FE (error detection code) and anything a later revision adds. */
                        break;
                }
        }
        if (k < 0)
                return k;
        if (!have_cert)
                return -ENOENT;
        if (cert_len == 0)
                return -EBADMSG;

        *ret_cert = cert;
        *ret_len = cert_len;
        *ret_gzip = gzip;
        return 0;
}

int piv_parse_auth_response(const uint8_t *buf, size_t len, const uint8_t **ret_sig, size_t *ret_len)
{
        struct tlv outer, sig;
        struct tlv_reader r;
        int k;

        tlv_reader_init(&r, buf, len);
        k = tlv_next(&r, &outer);
        if (k <= 0 || outer.tag != 0x7C || r.left != 0)
                return -EBADMSG;
        k = tlv_find(outer.value, outer.length, 0x82, &sig);
        if (k < 0)
                return -EBADMSG;
        if (sig.length == 0)
                return -EBADMSG;
        *ret_sig = sig.value;
        *ret_len = sig.length;
        return 0;
}

int piv_status_to_errno(uint16_t sw, unsigned *ret_tries)
{
        uint8_t sw1 = sw >> 8, sw2 = sw & 0xFF;

        if (sw == SW_OK)
                return 0;
        if (sw1 == 0x63 && (sw2 & 0xF0) == 0xC0) {
                if (ret_tries)
                        *ret_tries = sw2 & 0x0F;
                return (sw2 & 0x0F) == 0 ? CARD_E_PIN_BLOCKED : CARD_E_PIN_WRONG;
        }
        switch (sw) {
        case SW_AUTH_BLOCKED:
                return CARD_E_PIN_BLOCKED;
        case SW_SECURITY_NOT_SATISFIED:
                return CARD_E_NOT_VERIFIED;
        case 0x6A82: /* file or application not found */
        case 0x6A88: /* referenced data not found */
                return CARD_E_NOT_FOUND;
        case 0x6A80: /* incorrect data field */
        case 0x6A86: /* incorrect P1/P2 */
        case 0x6700: /* wrong length */
                return CARD_E_REJECTED;
        case 0x6A81: /* function not supported */
        case 0x6D00: /* INS not supported */
        case 0x6E00: /* CLA not supported */
        case 0x6884: /* command chaining not supported */
                return CARD_E_UNSUPPORTED;
        case 0x6581: /* memory failure */
        case 0x6F00: /* no precise diagnosis */
        default:
                return CARD_E_CARD_ERROR;
        }
}
