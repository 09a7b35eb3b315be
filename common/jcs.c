/* RFC 8785 (JCS) serialisation: UTF-16 key order, ECMAScript string escaping, integers only. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/jcs.h"
#include "utf8.h"

typedef struct Buf {
        char *data;
        size_t len, allocated;
} Buf;

static int buf_put(Buf *b, const void *d, size_t n)
{
        if (b->len + n + 1 > b->allocated) {
                size_t a = b->allocated ? b->allocated : 256;
                while (a < b->len + n + 1) {
                        if (a > SIZE_MAX / 2)
                                return -ENOMEM;
                        a *= 2;
                }
                char *p = realloc(b->data, a);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->allocated = a;
        }
        memcpy(b->data + b->len, d, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

static int buf_putc(Buf *b, char c)
{
        return buf_put(b, &c, 1);
}

/* The UTF-16 code units of cp: one for the BMP, a surrogate pair above it. */
static unsigned utf16_units(uint32_t cp, uint16_t u[2])
{
        if (cp < 0x10000) {
                u[0] = (uint16_t)cp;
                return 1;
        }
        cp -= 0x10000;
        u[0] = (uint16_t)(0xd800 + (cp >> 10));
        u[1] = (uint16_t)(0xdc00 + (cp & 0x3ff));
        return 2;
}

int jcs_key_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
        const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
        uint16_t ux[2], uy[2];
        unsigned nx = 0, ny = 0, ix = 0, iy = 0;

        /* ASCII on both sides: a code unit per byte. */
        while (a_len > 0 && b_len > 0 && *x < 0x80 && *y < 0x80) {
                if (*x != *y)
                        return *x < *y ? -1 : 1;
                x++, y++, a_len--, b_len--;
        }
        /* Then one UTF-16 code unit at a time. Invalid UTF-8 sorts bytewise. */
        for (;;) {
                if (ix == nx) {
                        uint32_t cp;
                        if (a_len == 0)
                                nx = 0;
                        else {
                                int r = utf8_decode(x, a_len, &cp);
                                if (r < 0) {
                                        cp = *x;
                                        r = 1;
                                }
                                x += r, a_len -= (size_t)r;
                                nx = utf16_units(cp, ux);
                        }
                        ix = 0;
                }
                if (iy == ny) {
                        uint32_t cp;
                        if (b_len == 0)
                                ny = 0;
                        else {
                                int r = utf8_decode(y, b_len, &cp);
                                if (r < 0) {
                                        cp = *y;
                                        r = 1;
                                }
                                y += r, b_len -= (size_t)r;
                                ny = utf16_units(cp, uy);
                        }
                        iy = 0;
                }
                if (nx == 0 || ny == 0)
                        return (nx != 0) - (ny != 0);
                if (ux[ix] != uy[iy])
                        return ux[ix] < uy[iy] ? -1 : 1;
                ix++, iy++;
        }
}

static int put_string(Buf *b, const char *s, size_t len)
{
        const uint8_t *p = (const uint8_t *)s;
        size_t run = 0;
        int r;

        if (!utf8_is_valid(s, len))
                return -EINVAL;

        r = buf_putc(b, '"');
        if (r < 0)
                return r;
        for (size_t i = 0; i < len; i++) {
                const char *esc = NULL;
                char tmp[7];

                if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
                        continue; /* as it stands: the commonest case */
                switch (p[i]) {
                case '\b':
                        esc = "\\b";
                        break;
                case '\t':
                        esc = "\\t";
                        break;
                case '\n':
                        esc = "\\n";
                        break;
                case '\f':
                        esc = "\\f";
                        break;
                case '\r':
                        esc = "\\r";
                        break;
                case '"':
                        esc = "\\\"";
                        break;
                case '\\':
                        esc = "\\\\";
                        break;
                default:
                        if (p[i] < 0x20) {
                                snprintf(tmp, sizeof(tmp), "\\u%04x", p[i]);
                                esc = tmp;
                        }
                }
                if (!esc)
                        continue;
                /* Flush the literal run before this byte, then the escape. */
                r = buf_put(b, s + run, i - run);
                if (r < 0)
                        return r;
                r = buf_put(b, esc, strlen(esc));
                if (r < 0)
                        return r;
                run = i + 1;
        }
        r = buf_put(b, s + run, len - run);
        if (r < 0)
                return r;
        return buf_putc(b, '"');
}

static int sort_cmp(const void *a, const void *b)
{
        const JsonMember *x = *(const JsonMember *const *)a, *y = *(const JsonMember *const *)b;
        return jcs_key_compare(x->key, x->key_len, y->key, y->key_len);
}

static int put_value(Buf *b, const JsonValue *v, const char *skip_key)
{
        int r;

        switch (v->type) {
        case JSON_NULL:
                return buf_put(b, "null", 4);
        case JSON_BOOLEAN:
                return v->boolean ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
        case JSON_INTEGER: {
                char tmp[24];
                if (v->integer > JCS_MAX_SAFE_INTEGER || v->integer < -JCS_MAX_SAFE_INTEGER)
                        return -ERANGE;
                int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v->integer);
                return buf_put(b, tmp, (size_t)n);
        }
        case JSON_STRING:
                return put_string(b, v->string.data, v->string.len);
        case JSON_ARRAY:
                r = buf_putc(b, '[');
                for (size_t i = 0; r >= 0 && i < v->array.n; i++) {
                        if (i > 0)
                                r = buf_putc(b, ',');
                        if (r >= 0)
                                r = put_value(b, v->array.items[i], NULL);
                }
                return r < 0 ? r : buf_putc(b, ']');
        case JSON_OBJECT: {
                _cleanup_free_ const JsonMember **sorted = NULL;
                size_t n = 0;
                bool first = true;

                if (v->object.n > 0) {
                        sorted = calloc(v->object.n, sizeof(JsonMember *));
                        if (!sorted)
                                return -ENOMEM;
                }
                for (size_t i = 0; i < v->object.n; i++) {
                        if (skip_key && streq(v->object.members[i].key, skip_key))
                                continue;
                        sorted[n++] = &v->object.members[i];
                }
                if (n > 1)
                        qsort(sorted, n, sizeof(JsonMember *), sort_cmp);

                r = buf_putc(b, '{');
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        if (!first)
                                r = buf_putc(b, ',');
                        first = false;
                        if (r >= 0)
                                r = put_string(b, sorted[i]->key, sorted[i]->key_len);
                        if (r >= 0)
                                r = buf_putc(b, ':');
                        if (r >= 0)
                                r = put_value(b, sorted[i]->value, NULL);
                }
                return r < 0 ? r : buf_putc(b, '}');
        }
        }
        return -EINVAL;
}

int jcs_serialize(const JsonValue *v, const char *skip_key, char **ret, size_t *ret_len)
{
        Buf b = {};
        int r;

        if (!v || !ret)
                return -EINVAL;
        r = put_value(&b, v, skip_key);
        if (r < 0) {
                free(b.data);
                return r;
        }
        *ret = b.data;
        if (ret_len)
                *ret_len = b.len;
        return 0;
}
