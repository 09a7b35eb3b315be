/* Bounded BER-TLV reader for card responses (see tlv.h). */
#include <errno.h>
#include <string.h>

#include "tlv.h"

void tlv_reader_init(struct tlv_reader *r, const uint8_t *buf, size_t len)
{
        r->p = len > 0 ? buf : NULL;
        r->left = buf ? len : 0;
}

static int tlv_fail(struct tlv_reader *r)
{
        r->p += r->left;
        r->left = 0;
        return -EBADMSG;
}

int tlv_next(struct tlv_reader *r, struct tlv *ret)
{
        const uint8_t *p = r->p;
        size_t left = r->left;
        uint32_t tag;
        size_t length;

        if (left == 0)
                return 0;

        /* Tag: one byte, or 0x1F in the low bits announcing up to two more bytes with b8 = more. */
        tag = *p++;
        left--;
        if ((tag & 0x1F) == 0x1F) {
                for (unsigned n = 1;; n++) {
                        if (n > 2 || left == 0)
                                return tlv_fail(r);
                        uint8_t b = *p++;
                        left--;
                        tag = (tag << 8) | b;
                        if (!(b & 0x80))
                                break;
                }
        }

        /* Length: short form, or 81 xx, or 82 xx xx. 80 (indefinite) and longer forms refused. */
        if (left == 0)
                return tlv_fail(r);
        uint8_t l0 = *p++;
        left--;
        if (l0 < 0x80)
                length = l0;
        else if (l0 == 0x81) {
                if (left < 1)
                        return tlv_fail(r);
                length = p[0];
                p += 1;
                left -= 1;
        } else if (l0 == 0x82) {
                if (left < 2)
                        return tlv_fail(r);
                length = ((size_t)p[0] << 8) | p[1];
                p += 2;
                left -= 2;
        } else
                return tlv_fail(r);

        if (length > left)
                return tlv_fail(r);

        ret->tag = tag;
        ret->value = length > 0 ? p : NULL;
        ret->length = length;
        r->p = p + length;
        r->left = left - length;
        return 1;
}

int tlv_find(const uint8_t *buf, size_t len, uint32_t tag, struct tlv *ret)
{
        struct tlv_reader r;
        struct tlv t;
        int k;

        tlv_reader_init(&r, buf, len);
        while ((k = tlv_next(&r, &t)) > 0)
                if (t.tag == tag) {
                        *ret = t;
                        return 0;
                }
        return k < 0 ? k : -ENOENT;
}

int tlv_put_header(uint8_t *buf, size_t cap, uint32_t tag, size_t length)
{
        uint8_t h[3 + 3];
        size_t n = 0;

        if (tag > 0xFFFFFF || length > 0xFFFF)
                return -ERANGE;
        if (tag > 0xFFFF)
                h[n++] = (uint8_t)(tag >> 16);
        if (tag > 0xFF)
                h[n++] = (uint8_t)(tag >> 8);
        h[n++] = (uint8_t)tag;

        if (length < 0x80)
                h[n++] = (uint8_t)length;
        else if (length <= 0xFF) {
                h[n++] = 0x81;
                h[n++] = (uint8_t)length;
        } else {
                h[n++] = 0x82;
                h[n++] = (uint8_t)(length >> 8);
                h[n++] = (uint8_t)length;
        }
        if (n > cap)
                return -ENOBUFS;
        memcpy(buf, h, n);
        return (int)n;
}
