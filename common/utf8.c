/* Strict UTF-8 decoding and encoding (RFC 3629): no overlongs, no surrogates, nothing past U+10FFFF. */
#include <errno.h>

#include "utf8.h"

int utf8_decode(const uint8_t *s, size_t len, uint32_t *ret_cp)
{
        uint32_t cp, min;
        size_t n;

        if (len == 0)
                return -EBADMSG;

        if (s[0] < 0x80) {
                *ret_cp = s[0];
                return 1;
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                n = 2, cp = s[0] & 0x1f, min = 0x80;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                n = 3, cp = s[0] & 0x0f, min = 0x800;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                n = 4, cp = s[0] & 0x07, min = 0x10000;
        } else
                return -EBADMSG; /* continuation byte, C0/C1 overlong lead, or F5..FF */

        if (len < n)
                return -EBADMSG;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return -EBADMSG;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return -EBADMSG;

        *ret_cp = cp;
        return (int)n;
}

size_t utf8_encode(uint32_t cp, uint8_t *buf)
{
        if (cp < 0x80) {
                buf[0] = (uint8_t)cp;
                return 1;
        }
        if (cp < 0x800) {
                buf[0] = (uint8_t)(0xc0 | (cp >> 6));
                buf[1] = (uint8_t)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                buf[0] = (uint8_t)(0xe0 | (cp >> 12));
                buf[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                buf[2] = (uint8_t)(0x80 | (cp & 0x3f));
                return 3;
        }
        buf[0] = (uint8_t)(0xf0 | (cp >> 18));
        buf[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        buf[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        buf[3] = (uint8_t)(0x80 | (cp & 0x3f));
        return 4;
}

bool utf8_is_valid(const char *s, size_t len)
{
        const uint8_t *p = (const uint8_t *)s;

        while (len > 0) {
                uint32_t cp;
                int r;

                if (*p < 0x80) { /* ASCII, nearly every byte of a record: no decoding */
                        p++, len--;
                        continue;
                }
                r = utf8_decode(p, len, &cp);
                if (r < 0)
                        return false;
                p += r;
                len -= (size_t)r;
        }
        return true;
}
