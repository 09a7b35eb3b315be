/* base64 (RFC 4648 §4, padded, strict), lowercase hex and 128-bit id text forms. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/encoding.h"
#include "mamori/macro.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *data, size_t size, char **ret)
{
        const uint8_t *p = data;
        char *out, *o;

        if (!ret || (!data && size > 0) || size > (SIZE_MAX - 1) / 4 * 3 - 3)
                return -EINVAL;
        out = o = malloc(BASE64_LEN(size) + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                if (i + 1 < size)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < size)
                        v |= p[i + 2];
                *o++ = b64[(v >> 18) & 63];
                *o++ = b64[(v >> 12) & 63];
                *o++ = i + 1 < size ? b64[(v >> 6) & 63] : '=';
                *o++ = i + 2 < size ? b64[v & 63] : '=';
        }
        *o = '\0';
        *ret = out;
        return 0;
}

/* A base64 digit's value, or -1: without branches, since the digits of a signature come in no order a
 * branch predictor could learn (a record's "sig" is decoded for every record a collector takes). */
static int b64_value(uint8_t c)
{
        int v = -1;

        v = (unsigned)(c - 'A') < 26 ? c - 'A' : v;
        v = (unsigned)(c - 'a') < 26 ? c - 'a' + 26 : v;
        v = (unsigned)(c - '0') < 10 ? c - '0' + 52 : v;
        v = c == '+' ? 62 : v;
        v = c == '/' ? 63 : v;
        return v;
}

/* Decode into out (room for len/4*3 bytes); returns the decoded size or -EBADMSG. */
static ssize_t b64_decode_into(const char *s, size_t len, uint8_t *out)
{
        const uint8_t *u = (const uint8_t *)s;
        size_t n = 0, i = 0;

        if (len % 4 != 0)
                return -EBADMSG;
        /* Every quad but the last has no padding: four digits, checked together. */
        for (; len > 4 && i < len - 4; i += 4) {
                int v0 = b64_value(u[i]), v1 = b64_value(u[i + 1]), v2 = b64_value(u[i + 2]),
                    v3 = b64_value(u[i + 3]);
                if ((v0 | v1 | v2 | v3) < 0)
                        return -EBADMSG;
                uint32_t w = (uint32_t)v0 << 18 | (uint32_t)v1 << 12 | (uint32_t)v2 << 6 | (uint32_t)v3;
                out[n++] = (uint8_t)(w >> 16);
                out[n++] = (uint8_t)(w >> 8);
                out[n++] = (uint8_t)w;
        }
        if (i == len)
                return 0;

        /* The last quad: '=' may end it. */
        int v[4];
        size_t pad = 0;
        for (size_t j = 0; j < 4; j++) {
                if (u[i + j] == '=' && j >= 2) {
                        v[j] = 0;
                        pad++;
                        continue;
                }
                if (pad > 0) /* data after '=' */
                        return -EBADMSG;
                v[j] = b64_value(u[i + j]);
                if (v[j] < 0)
                        return -EBADMSG;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* non-zero leftover bits would give a second spelling of the same bytes */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
                return -EBADMSG;
        out[n++] = (uint8_t)(w >> 16);
        if (pad < 2)
                out[n++] = (uint8_t)(w >> 8);
        if (pad < 1)
                out[n++] = (uint8_t)w;
        return (ssize_t)n;
}

int base64_decode(const char *s, size_t len, void **ret, size_t *ret_size)
{
        _cleanup_free_ uint8_t *out = NULL;
        ssize_t n;

        if (!ret || (!s && len > 0))
                return -EINVAL;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        n = b64_decode_into(s, len, out);
        if (n < 0)
                return (int)n;
        out[n] = 0;
        *ret = TAKE_PTR(out);
        if (ret_size)
                *ret_size = (size_t)n;
        return 0;
}

int base64_decode_exact(const char *s, size_t len, void *buf, size_t size)
{
        uint8_t tmp[512];
        ssize_t n;

        if (!s || !buf || size > sizeof(tmp) - 2)
                return -EINVAL;
        if (len != BASE64_LEN(size))
                return -EBADMSG;
        n = b64_decode_into(s, len, tmp);
        if (n < 0) {
                explicit_bzero(tmp, sizeof(tmp));
                return (int)n;
        }
        if ((size_t)n == size)
                memcpy(buf, tmp, size);
        explicit_bzero(tmp, (size_t)n); /* may have carried key material */
        return (size_t)n == size ? 0 : -EBADMSG;
}

void hex_encode(const void *data, size_t size, char *out)
{
        static const char digits[] = "0123456789abcdef";
        const uint8_t *p = data;

        for (size_t i = 0; i < size; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[2 * size] = '\0';
}

static int lower_hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int hex_decode_exact(const char *s, size_t len, void *buf, size_t size)
{
        uint8_t *out = buf;

        if (!s || !buf)
                return -EINVAL;
        if (len != 2 * size)
                return -EBADMSG;
        for (size_t i = 0; i < size; i++) {
                int hi = lower_hex_value(s[2 * i]), lo = lower_hex_value(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EBADMSG;
        }
        for (size_t i = 0; i < size; i++)
                out[i] = (uint8_t)(lower_hex_value(s[2 * i]) << 4 | lower_hex_value(s[2 * i + 1]));
        return 0;
}

bool hex_lower_valid(const char *s, size_t n)
{
        const uint8_t *u = (const uint8_t *)s;
        unsigned bad = 0;

        if (!s || strnlen(s, n + 1) != n)
                return false;
        /* Without a branch a character: digits and letters of a hash come in no learnable order. */
        for (size_t i = 0; i < n; i++)
                bad |= ((unsigned)(u[i] - '0') >= 10) & ((unsigned)(u[i] - 'a') >= 6);
        return !bad;
}

int id128_from_string(const char *s, uint8_t ret[16])
{
        if (!hex_lower_valid(s, 32))
                return -EBADMSG;
        return hex_decode_exact(s, 32, ret, 16);
}

void id128_to_string(const uint8_t id[16], char ret[ID128_STRING_MAX])
{
        hex_encode(id, 16, ret);
}
