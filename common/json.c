/* Strict, bounded JSON parser (RFC 8259 subset: integers only) and the tree's builders and getters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/jcs.h"
#include "mamori/json.h"
#include "utf8.h"

typedef struct Key Key;

typedef struct Parser {
        const uint8_t *buf;
        size_t pos, end;
        JsonLimits limits;
        bool canonical; /* JSON_PARSE_CANONICAL */
} Parser;

static int parse_value(Parser *p, unsigned depth, const Key *key, JsonValue **ret, char **ret_key);

/* A member's key while its value is parsed: the input's own bytes when it has no escape. */
struct Key {
        const char *s;
        size_t len;
};

/*
 * A parsed value's node, with room after it for `data` bytes (a string's) and for the key of the member
 * it is the value of: one allocation where there were up to three (the parse of every record a collector
 * takes makes ~40 of them).
 */
static JsonValue *node_alloc(JsonType type, size_t data, const Key *key)
{
        JsonValue *v = calloc(1, sizeof(JsonValue) + data + (key ? key->len + 1 : 0));
        if (v)
                v->type = type;
        return v;
}

/* A built value's node: nothing after it. */
static JsonValue *value_alloc(JsonType type)
{
        return node_alloc(type, 0, NULL);
}

/* Copies key after the node's first `used` tail bytes; the member's key is then this copy. */
static char *node_put_key(JsonValue *v, size_t used, const Key *key)
{
        char *k;

        if (!key)
                return NULL;
        k = (char *)(v + 1) + used;
        memcpy(k, key->s, key->len);
        k[key->len] = '\0';
        return k;
}

JsonValue *json_value_free(JsonValue *v)
{
        if (!v)
                return NULL;
        switch (v->type) {
        case JSON_STRING:
                if (!v->data_inline)
                        free(v->string.data);
                break;
        case JSON_ARRAY:
                for (size_t i = 0; i < v->array.n; i++)
                        json_value_free(v->array.items[i]);
                free(v->array.items);
                break;
        case JSON_OBJECT:
                for (size_t i = 0; i < v->object.n; i++) {
                        if (!v->object.members[i].key_in_value)
                                free(v->object.members[i].key);
                        json_value_free(v->object.members[i].value);
                }
                free(v->object.members);
                break;
        default:
                break;
        }
        free(v);
        return NULL;
}

/* Canonical input has none: left in place, whitespace then fails as the token it is not. */
static void skip_ws(Parser *p)
{
        if (p->canonical)
                return;
        while (p->pos < p->end) {
                uint8_t c = p->buf[p->pos];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                        break;
                p->pos++;
        }
}

static int hex_digit(uint8_t c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int parse_u4(Parser *p, uint32_t *ret)
{
        uint32_t u = 0;

        if (p->end - p->pos < 4)
                return -EBADMSG;
        for (size_t i = 0; i < 4; i++) {
                int d = hex_digit(p->buf[p->pos]);
                if (d < 0)
                        return -EBADMSG;
                u = (u << 4) | (uint32_t)d;
                p->pos++;
        }
        *ret = u;
        return 0;
}

/* Whether \u<hex> for cp is how JCS writes cp: only control characters without a short form
 * (\b \t \n \f \r), in lowercase hex. */
static bool canonical_u_escape(const uint8_t hex[4], uint32_t cp)
{
        if (cp >= 0x20 || cp == '\b' || cp == '\t' || cp == '\n' || cp == '\f' || cp == '\r')
                return false;
        for (size_t i = 0; i < 4; i++)
                if (hex[i] >= 'A' && hex[i] <= 'F')
                        return false;
        return true;
}

/* A byte that stands for itself inside a string in every mode: printable ASCII but '"' and '\\'. */
static inline bool plain_byte(uint8_t c)
{
        return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Whether a byte of the 8 in x is zero (exact: never a false "no"). */
static inline uint64_t word_has_zero(uint64_t x)
{
        return (x - UINT64_C(0x0101010101010101)) & ~x & UINT64_C(0x8080808080808080);
}

/* Whether any of the 8 bytes in x is not plain_byte(): below 0x20, above 0x7f, '"' or '\\'. */
static inline bool word_has_special(uint64_t x)
{
        const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);

        return ((x - ones * 0x20) & ~x & highs) | (x & highs) | word_has_zero(x ^ (ones * '"')) |
               word_has_zero(x ^ (ones * '\\'));
}

/* The first position from i on (up to end) whose 8-byte word holds a byte that is not plain. */
static inline size_t skip_plain(const uint8_t *buf, size_t i, size_t end)
{
        while (i <= end && end - i >= 8) { /* i may be end + 1, after a final backslash */
                uint64_t x;
                memcpy(&x, buf + i, sizeof(x));
                if (word_has_special(x))
                        break;
                i += 8;
        }
        return i;
}

/* Where a string's raw bytes end (its closing quote) and whether they are its decoded bytes. */
typedef struct Span {
        size_t start, raw_end;
        bool plain; /* printable ASCII only, no escape: the string is its raw bytes */
} Span;

/* p->pos is at the opening quote; it is left after it. */
static int scan_string(Parser *p, Span *ret)
{
        size_t start = ++p->pos, raw_end = start;
        bool plain = true;

        /* Find the closing quote first so that the decoded string is bounded by the raw length. */
        for (;;) {
                raw_end = skip_plain(p->buf, raw_end, p->end);
                while (raw_end < p->end && plain_byte(p->buf[raw_end]))
                        raw_end++;
                if (raw_end >= p->end) {
                        p->pos = p->end; /* a final backslash would otherwise point past the input */
                        return -EBADMSG;
                }
                if (p->buf[raw_end] == '"')
                        break;
                plain = false;
                if (p->buf[raw_end] == '\\')
                        raw_end++;
                raw_end++;
        }
        *ret = (Span){.start = start, .raw_end = raw_end, .plain = plain};
        return 0;
}

/* Decodes the string scan_string() found into out (room for its raw length + 1, NUL-terminated);
 * p->pos is left after its closing quote. The decoded string is never longer than its raw form. */
static int decode_string(Parser *p, const Span *sp, char *out, size_t *ret_len)
{
        size_t raw_end = sp->raw_end, n = 0;

        if (sp->plain) {
                n = raw_end - sp->start;
                memcpy(out, p->buf + sp->start, n);
                p->pos = raw_end;
        }
        while (p->pos < raw_end) {
                uint8_t c = p->buf[p->pos];

                if (c < 0x20)
                        return -EBADMSG;
                if (c < 0x80 && c != '\\') { /* ASCII: as it stands */
                        out[n++] = (char)c;
                        p->pos++;
                        continue;
                }
                if (c != '\\') {
                        uint32_t cp;
                        int r = utf8_decode(p->buf + p->pos, raw_end - p->pos, &cp);
                        if (r < 0)
                                return r;
                        memcpy(out + n, p->buf + p->pos, (size_t)r);
                        n += (size_t)r;
                        p->pos += (size_t)r;
                        continue;
                }

                p->pos++; /* backslash; the scan above guarantees one more byte before raw_end */
                c = p->buf[p->pos++];
                if (p->canonical && c == '/') {
                        p->pos--;
                        return -EBADMSG; /* JCS writes "/" as it stands */
                }
                switch (c) {
                case '"':
                case '\\':
                case '/':
                        out[n++] = (char)c;
                        break;
                case 'b':
                        out[n++] = '\b';
                        break;
                case 'f':
                        out[n++] = '\f';
                        break;
                case 'n':
                        out[n++] = '\n';
                        break;
                case 'r':
                        out[n++] = '\r';
                        break;
                case 't':
                        out[n++] = '\t';
                        break;
                case 'u': {
                        uint32_t cp, lo;
                        size_t hex = p->pos;
                        if (parse_u4(p, &cp) < 0 || p->pos > raw_end)
                                return -EBADMSG;
                        if (p->canonical && !canonical_u_escape(p->buf + hex, cp)) {
                                p->pos = hex;
                                return -EBADMSG;
                        }
                        if (cp >= 0xdc00 && cp <= 0xdfff)
                                return -EBADMSG; /* lone low surrogate */
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                if (raw_end - p->pos < 6 || p->buf[p->pos] != '\\' ||
                                    p->buf[p->pos + 1] != 'u')
                                        return -EBADMSG; /* lone high surrogate */
                                p->pos += 2;
                                if (parse_u4(p, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                                        return -EBADMSG;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        }
                        /* \uXXXX is 6 raw bytes and at most 3 decoded; a pair is 12 raw, 4 decoded. */
                        n += utf8_encode(cp, (uint8_t *)out + n);
                        break;
                }
                default:
                        p->pos--;
                        return -EBADMSG;
                }
        }
        if (n > p->limits.max_string)
                return -E2BIG;

        out[n] = '\0';
        p->pos = raw_end + 1;
        *ret_len = n;
        return 0;
}

/* A string value, decoded into its node (which also holds key, when it is a member's value). */
static int parse_string_value(Parser *p, const Key *key, JsonValue **ret, char **ret_key)
{
        _cleanup_json_ JsonValue *v = NULL;
        size_t n;
        Span sp;
        int r;

        r = scan_string(p, &sp);
        if (r < 0)
                return r;
        v = node_alloc(JSON_STRING, sp.raw_end - sp.start + 1, key);
        if (!v)
                return -ENOMEM;
        v->string.data = (char *)(v + 1);
        v->data_inline = true;
        r = decode_string(p, &sp, v->string.data, &n);
        if (r < 0)
                return r;
        v->string.len = n;
        *ret_key = node_put_key(v, n + 1, key);
        *ret = TAKE_PTR(v);
        return 0;
}

static int parse_number(Parser *p, const Key *key, JsonValue **ret, char **ret_key)
{
        bool neg = false;
        uint64_t mag = 0, limit;

        if (p->buf[p->pos] == '-') {
                neg = true;
                p->pos++;
        }
        limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

        if (p->pos >= p->end || p->buf[p->pos] < '0' || p->buf[p->pos] > '9')
                return -EBADMSG;
        if (p->buf[p->pos] == '0') {
                p->pos++;
                if (p->pos < p->end && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9')
                        return -EBADMSG; /* leading zero */
                if (neg)
                        return -EBADMSG; /* "-0" has no integer meaning of its own */
        } else {
                while (p->pos < p->end && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
                        unsigned d = p->buf[p->pos] - '0';
                        if (mag > (limit - d) / 10)
                                return -ERANGE;
                        mag = mag * 10 + d;
                        p->pos++;
                }
        }
        if (p->pos < p->end && (p->buf[p->pos] == '.' || p->buf[p->pos] == 'e' || p->buf[p->pos] == 'E'))
                return -EBADMSG; /* mamori's formats carry integers only */

        if (p->canonical && mag > (uint64_t)JCS_MAX_SAFE_INTEGER)
                return -ERANGE; /* JCS cannot carry it */
        JsonValue *v = node_alloc(JSON_INTEGER, 0, key);
        if (!v)
                return -ENOMEM;
        *ret_key = node_put_key(v, 0, key);
        if (neg)
                v->integer = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        else
                v->integer = (int64_t)mag;
        *ret = v;
        return 0;
}

static int parse_literal(Parser *p, const Key *key, JsonValue **ret, char **ret_key)
{
        static const struct {
                const char *word;
                JsonType type;
                bool b;
        } table[] = {
                {"true", JSON_BOOLEAN, true},
                {"false", JSON_BOOLEAN, false},
                {"null", JSON_NULL, false},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                size_t l = strlen(table[i].word);
                if (p->end - p->pos < l || memcmp(p->buf + p->pos, table[i].word, l) != 0)
                        continue;
                JsonValue *v = node_alloc(table[i].type, 0, key);
                if (!v)
                        return -ENOMEM;
                *ret_key = node_put_key(v, 0, key);
                v->boolean = table[i].b;
                p->pos += l;
                *ret = v;
                return 0;
        }
        return -EBADMSG;
}

static int grow(void **array, size_t *allocated, size_t need, size_t elem)
{
        if (need <= *allocated)
                return 0;
        size_t n = *allocated ? *allocated * 2 : 4;
        if (n < need)
                n = need;
        void *a = reallocarray(*array, n, elem);
        if (!a)
                return -ENOMEM;
        *array = a;
        *allocated = n;
        return 0;
}

static int parse_array(Parser *p, unsigned depth, const Key *key, JsonValue **ret, char **ret_key)
{
        _cleanup_json_ JsonValue *v = NULL;
        int r;

        if (depth + 1 > p->limits.max_depth)
                return -E2BIG;
        v = node_alloc(JSON_ARRAY, 0, key);
        if (!v)
                return -ENOMEM;
        *ret_key = node_put_key(v, 0, key);

        p->pos++;
        skip_ws(p);
        if (p->pos < p->end && p->buf[p->pos] == ']') {
                p->pos++;
                *ret = TAKE_PTR(v);
                return 0;
        }
        for (;;) {
                JsonValue *item = NULL;
                char *no_key;

                if (v->array.n >= p->limits.max_members)
                        return -E2BIG;
                r = parse_value(p, depth + 1, NULL, &item, &no_key);
                if (r < 0)
                        return r;
                r = grow((void **)&v->array.items, &v->array.allocated, v->array.n + 1, sizeof(JsonValue *));
                if (r < 0) {
                        json_value_free(item);
                        return r;
                }
                v->array.items[v->array.n++] = item;

                skip_ws(p);
                if (p->pos >= p->end)
                        return -EBADMSG;
                if (p->buf[p->pos] == ']') {
                        p->pos++;
                        break;
                }
                if (p->buf[p->pos] != ',')
                        return -EBADMSG;
                p->pos++;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int member_cmp(const void *a, const void *b)
{
        const JsonMember *x = *(const JsonMember *const *)a, *y = *(const JsonMember *const *)b;
        size_t l = x->key_len < y->key_len ? x->key_len : y->key_len;
        int c = memcmp(x->key, y->key, l);
        if (c != 0)
                return c;
        return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int check_duplicates(const JsonValue *v)
{
        if (v->object.n < 2)
                return 0;
        if (v->object.n <= 8) {
                for (size_t i = 0; i < v->object.n; i++)
                        for (size_t j = i + 1; j < v->object.n; j++) {
                                const JsonMember *a = &v->object.members[i], *b = &v->object.members[j];
                                if (a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0)
                                        return -EBADMSG;
                        }
                return 0;
        }

        _cleanup_free_ const JsonMember **sorted = calloc(v->object.n, sizeof(JsonMember *));
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < v->object.n; i++)
                sorted[i] = &v->object.members[i];
        qsort(sorted, v->object.n, sizeof(JsonMember *), member_cmp);
        for (size_t i = 1; i < v->object.n; i++)
                if (member_cmp(&sorted[i - 1], &sorted[i]) == 0)
                        return -EBADMSG;
        return 0;
}

static int parse_object(Parser *p, unsigned depth, const Key *key, JsonValue **ret, char **ret_key)
{
        _cleanup_json_ JsonValue *v = NULL;
        int r;

        if (depth + 1 > p->limits.max_depth)
                return -E2BIG;
        v = node_alloc(JSON_OBJECT, 0, key);
        if (!v)
                return -ENOMEM;
        *ret_key = node_put_key(v, 0, key);

        p->pos++;
        skip_ws(p);
        if (p->pos < p->end && p->buf[p->pos] == '}') {
                p->pos++;
                *ret = TAKE_PTR(v);
                return 0;
        }
        for (;;) {
                _cleanup_free_ char *decoded = NULL; /* a key with escapes */
                JsonValue *item = NULL;
                char *item_key;
                Key k;
                Span sp;

                if (v->object.n >= p->limits.max_members)
                        return -E2BIG;
                if (p->pos >= p->end || p->buf[p->pos] != '"')
                        return -EBADMSG;
                size_t key_pos = p->pos;
                r = scan_string(p, &sp);
                if (r < 0)
                        return r;
                if (sp.plain) {
                        k = (Key){.s = (const char *)p->buf + sp.start, .len = sp.raw_end - sp.start};
                        p->pos = sp.raw_end;
                        if (k.len > p->limits.max_string)
                                return -E2BIG;
                        p->pos = sp.raw_end + 1;
                } else {
                        decoded = malloc(sp.raw_end - sp.start + 1);
                        if (!decoded)
                                return -ENOMEM;
                        r = decode_string(p, &sp, decoded, &k.len);
                        if (r < 0)
                                return r;
                        k.s = decoded;
                        /* only an escape (\u0000) gives a NUL: plain bytes are printable */
                        if (memchr(k.s, 0, k.len)) {
                                p->pos = key_pos;
                                return -EBADMSG; /* keys are used as C strings */
                        }
                }
                if (p->canonical && v->object.n > 0) {
                        const JsonMember *last = &v->object.members[v->object.n - 1];
                        if (jcs_key_compare(last->key, last->key_len, k.s, k.len) >= 0) {
                                p->pos = key_pos;
                                return -EBADMSG; /* out of order, or the same key again */
                        }
                }
                skip_ws(p);
                if (p->pos >= p->end || p->buf[p->pos] != ':')
                        return -EBADMSG;
                p->pos++;
                r = parse_value(p, depth + 1, &k, &item, &item_key);
                if (r < 0)
                        return r;
                r = grow((void **)&v->object.members, &v->object.allocated, v->object.n + 1,
                         sizeof(JsonMember));
                if (r < 0) {
                        json_value_free(item);
                        return r;
                }
                v->object.members[v->object.n++] = (JsonMember){
                        .key = item_key,
                        .key_len = k.len,
                        .value = item,
                        .key_in_value = true,
                };

                skip_ws(p);
                if (p->pos >= p->end)
                        return -EBADMSG;
                if (p->buf[p->pos] == '}') {
                        p->pos++;
                        break;
                }
                if (p->buf[p->pos] != ',')
                        return -EBADMSG;
                p->pos++;
                skip_ws(p);
        }
        if (!p->canonical) { /* canonical: keys ascend strictly, so none repeats */
                r = check_duplicates(v);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int parse_value(Parser *p, unsigned depth, const Key *key, JsonValue **ret, char **ret_key)
{
        skip_ws(p);
        if (p->pos >= p->end)
                return -EBADMSG;

        switch (p->buf[p->pos]) {
        case '{':
                return parse_object(p, depth, key, ret, ret_key);
        case '[':
                return parse_array(p, depth, key, ret, ret_key);
        case '"':
                return parse_string_value(p, key, ret, ret_key);
        case 't':
        case 'f':
        case 'n':
                return parse_literal(p, key, ret, ret_key);
        default:
                if (p->buf[p->pos] == '-' || (p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9'))
                        return parse_number(p, key, ret, ret_key);
                return -EBADMSG;
        }
}

int json_parse(const void *data, size_t size, const JsonLimits *limits, JsonParseFlags flags,
               JsonValue **ret, size_t *error_offset)
{
        _cleanup_json_ JsonValue *v = NULL;
        Parser p = {
                .buf = data,
                .end = size,
                .limits =
                        {
                                .max_size = JSON_DEFAULT_MAX_SIZE,
                                .max_depth = JSON_DEFAULT_MAX_DEPTH,
                                .max_members = JSON_DEFAULT_MAX_MEMBERS,
                                .max_string = JSON_DEFAULT_MAX_STRING,
                        },
        };
        int r;

        if (!ret || (!data && size > 0))
                return -EINVAL;
        if (limits)
                p.limits = *limits;
        p.canonical = flags & JSON_PARSE_CANONICAL;

        if (size > p.limits.max_size) {
                r = -E2BIG;
                p.pos = p.limits.max_size;
                goto fail;
        }
        if ((flags & JSON_PARSE_ALLOW_FINAL_NEWLINE) && size > 0 && p.buf[size - 1] == '\n')
                p.end--;

        /* The top-level value may not be preceded or followed by whitespace: one value, exactly. */
        if (p.end > 0 && (p.buf[0] == ' ' || p.buf[0] == '\t' || p.buf[0] == '\n' || p.buf[0] == '\r')) {
                r = -EBADMSG;
                goto fail;
        }
        char *no_key;
        r = parse_value(&p, 0, NULL, &v, &no_key);
        if (r < 0)
                goto fail;
        if (p.pos != p.end) {
                r = -EBADMSG;
                goto fail;
        }
        *ret = TAKE_PTR(v);
        return 0;

fail:
        if (error_offset)
                *error_offset = p.pos;
        return r;
}

/* ---- getters ---- */

int json_get_boolean(const JsonValue *v, bool *ret)
{
        if (!v || v->type != JSON_BOOLEAN)
                return -EBADMSG;
        if (ret)
                *ret = v->boolean;
        return 0;
}

int json_get_integer(const JsonValue *v, int64_t *ret)
{
        if (!v || v->type != JSON_INTEGER)
                return -EBADMSG;
        if (ret)
                *ret = v->integer;
        return 0;
}

int json_get_string(const JsonValue *v, const char **ret, size_t *ret_len)
{
        if (!v || v->type != JSON_STRING)
                return -EBADMSG;
        if (memchr(v->string.data, 0, v->string.len))
                return -EBADMSG;
        if (ret)
                *ret = v->string.data;
        if (ret_len)
                *ret_len = v->string.len;
        return 0;
}

size_t json_array_size(const JsonValue *v)
{
        return v && v->type == JSON_ARRAY ? v->array.n : 0;
}

size_t json_object_size(const JsonValue *v)
{
        return v && v->type == JSON_OBJECT ? v->object.n : 0;
}

const JsonValue *json_array_get(const JsonValue *v, size_t i)
{
        if (!v || v->type != JSON_ARRAY || i >= v->array.n)
                return NULL;
        return v->array.items[i];
}

static JsonMember *object_find(const JsonValue *v, const char *key)
{
        size_t l;

        if (!v || v->type != JSON_OBJECT || !key)
                return NULL;
        l = strlen(key);
        for (size_t i = 0; i < v->object.n; i++)
                if (v->object.members[i].key_len == l && memcmp(v->object.members[i].key, key, l) == 0)
                        return &v->object.members[i];
        return NULL;
}

const JsonValue *json_object_get(const JsonValue *v, const char *key)
{
        JsonMember *m = object_find(v, key);
        return m ? m->value : NULL;
}

static int object_get_typed(const JsonValue *v, const char *key, JsonType type, const JsonValue **ret)
{
        const JsonValue *m;

        if (!v || v->type != JSON_OBJECT)
                return -EBADMSG;
        m = json_object_get(v, key);
        if (!m)
                return -ENOENT;
        if (m->type != type)
                return -EBADMSG;
        *ret = m;
        return 0;
}

int json_object_get_boolean(const JsonValue *v, const char *key, bool *ret)
{
        const JsonValue *m;
        int r = object_get_typed(v, key, JSON_BOOLEAN, &m);
        if (r < 0)
                return r;
        return json_get_boolean(m, ret);
}

int json_object_get_integer(const JsonValue *v, const char *key, int64_t *ret)
{
        const JsonValue *m;
        int r = object_get_typed(v, key, JSON_INTEGER, &m);
        if (r < 0)
                return r;
        return json_get_integer(m, ret);
}

int json_object_get_string(const JsonValue *v, const char *key, const char **ret)
{
        const JsonValue *m;
        int r = object_get_typed(v, key, JSON_STRING, &m);
        if (r < 0)
                return r;
        return json_get_string(m, ret, NULL);
}

int json_object_copy_string(const JsonValue *v, const char *key, char *buf, size_t size)
{
        const char *str;
        size_t len;

        if (object_get_typed(v, key, JSON_STRING, &v) < 0 || json_get_string(v, &str, &len) < 0 ||
            len >= size)
                return -EBADMSG;
        memcpy(buf, str, len + 1);
        return 0;
}

int json_parse_flat_object(const void *data, size_t size, const JsonLimits *limits, const char *const *keys,
                           size_t n_keys, JsonValue **ret)
{
        _cleanup_json_ JsonValue *o = NULL;

        if (!data && size > 0)
                return -EINVAL;
        if (json_parse(data, size, limits, JSON_PARSE_ALLOW_FINAL_NEWLINE, &o, NULL) < 0 ||
            o->type != JSON_OBJECT)
                return -EBADMSG;
        for (size_t i = 0; i < o->object.n; i++) {
                bool known = false;
                for (size_t j = 0; j < n_keys && !known; j++)
                        known = streq(o->object.members[i].key, keys[j]);
                if (!known)
                        return -EBADMSG;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int json_object_get_array(const JsonValue *v, const char *key, const JsonValue **ret)
{
        return object_get_typed(v, key, JSON_ARRAY, ret);
}

int json_object_get_object(const JsonValue *v, const char *key, const JsonValue **ret)
{
        return object_get_typed(v, key, JSON_OBJECT, ret);
}

/* ---- builders ---- */

static int new_simple(JsonType type, JsonValue **ret)
{
        JsonValue *v;

        if (!ret)
                return -EINVAL;
        v = value_alloc(type);
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

int json_new_null(JsonValue **ret)
{
        return new_simple(JSON_NULL, ret);
}

int json_new_boolean(bool b, JsonValue **ret)
{
        int r = new_simple(JSON_BOOLEAN, ret);
        if (r >= 0)
                (*ret)->boolean = b;
        return r;
}

int json_new_integer(int64_t i, JsonValue **ret)
{
        int r = new_simple(JSON_INTEGER, ret);
        if (r >= 0)
                (*ret)->integer = i;
        return r;
}

int json_new_string_len(const char *s, size_t len, JsonValue **ret)
{
        JsonValue *v;
        char *d;

        if (!ret || (!s && len > 0) || !utf8_is_valid(s, len))
                return -EINVAL;
        d = malloc(len + 1);
        if (!d)
                return -ENOMEM;
        if (len > 0)
                memcpy(d, s, len);
        d[len] = '\0';
        v = value_alloc(JSON_STRING);
        if (!v) {
                free(d);
                return -ENOMEM;
        }
        v->string.data = d;
        v->string.len = len;
        *ret = v;
        return 0;
}

int json_new_string(const char *s, JsonValue **ret)
{
        if (!s)
                return -EINVAL;
        return json_new_string_len(s, strlen(s), ret);
}

int json_new_array(JsonValue **ret)
{
        return new_simple(JSON_ARRAY, ret);
}

int json_new_object(JsonValue **ret)
{
        return new_simple(JSON_OBJECT, ret);
}

int json_array_append(JsonValue *array, JsonValue *value)
{
        _cleanup_json_ JsonValue *owned = value;
        int r;

        if (!array || array->type != JSON_ARRAY || !value)
                return -EINVAL;
        r = grow((void **)&array->array.items, &array->array.allocated, array->array.n + 1,
                 sizeof(JsonValue *));
        if (r < 0)
                return r;
        array->array.items[array->array.n++] = TAKE_PTR(owned);
        return 0;
}

int json_object_set(JsonValue *object, const char *key, JsonValue *value)
{
        _cleanup_json_ JsonValue *owned = value;
        char *k;
        size_t l;
        int r;

        if (!object || object->type != JSON_OBJECT || !key || !value)
                return -EINVAL;
        l = strlen(key);
        if (!utf8_is_valid(key, l))
                return -EINVAL;
        if (object_find(object, key))
                return -EEXIST;
        r = grow((void **)&object->object.members, &object->object.allocated, object->object.n + 1,
                 sizeof(JsonMember));
        if (r < 0)
                return r;
        k = strdup(key);
        if (!k)
                return -ENOMEM;
        object->object.members[object->object.n++] = (JsonMember){
                .key = k,
                .key_len = l,
                .value = TAKE_PTR(owned),
        };
        return 0;
}

int json_object_set_string(JsonValue *object, const char *key, const char *s)
{
        JsonValue *v;
        int r = json_new_string(s, &v);
        if (r < 0)
                return r;
        return json_object_set(object, key, v);
}

int json_object_set_integer(JsonValue *object, const char *key, int64_t i)
{
        JsonValue *v;
        int r = json_new_integer(i, &v);
        if (r < 0)
                return r;
        return json_object_set(object, key, v);
}

int json_object_set_boolean(JsonValue *object, const char *key, bool b)
{
        JsonValue *v;
        int r = json_new_boolean(b, &v);
        if (r < 0)
                return r;
        return json_object_set(object, key, v);
}

int json_object_set_null(JsonValue *object, const char *key)
{
        JsonValue *v;
        int r = json_new_null(&v);
        if (r < 0)
                return r;
        return json_object_set(object, key, v);
}

int json_object_remove(JsonValue *object, const char *key)
{
        JsonValue *v;
        int r = json_object_take(object, key, &v);

        if (r < 0)
                return r;
        json_value_free(v);
        return 0;
}

int json_object_take(JsonValue *object, const char *key, JsonValue **ret)
{
        JsonMember *m = object_find(object, key);
        size_t i;

        if (!m || !ret)
                return m ? -EINVAL : -ENOENT;
        i = (size_t)(m - object->object.members);
        *ret = m->value;
        if (!m->key_in_value) /* else its bytes stay in the value's node, unused */
                free(m->key);
        memmove(m, m + 1, (object->object.n - i - 1) * sizeof(JsonMember));
        object->object.n--;
        return 0;
}

int json_string_take(JsonValue *v, char **ret)
{
        int r = json_get_string(v, NULL, NULL);

        if (r < 0)
                return r;
        if (!ret)
                return -EINVAL;
        if (v->data_inline) { /* parsed into the node: the caller gets a copy it can free */
                char *d = malloc(v->string.len + 1);
                if (!d)
                        return -ENOMEM;
                memcpy(d, v->string.data, v->string.len + 1);
                *ret = d;
        } else
                *ret = v->string.data;
        v->type = JSON_NULL;
        return 0;
}

int json_value_copy(const JsonValue *v, JsonValue **ret)
{
        _cleanup_json_ JsonValue *c = NULL;
        int r;

        if (!v || !ret)
                return -EINVAL;
        switch (v->type) {
        case JSON_NULL:
                r = json_new_null(&c);
                break;
        case JSON_BOOLEAN:
                r = json_new_boolean(v->boolean, &c);
                break;
        case JSON_INTEGER:
                r = json_new_integer(v->integer, &c);
                break;
        case JSON_STRING:
                r = json_new_string_len(v->string.data, v->string.len, &c);
                break;
        case JSON_ARRAY:
                r = json_new_array(&c);
                for (size_t i = 0; r >= 0 && i < v->array.n; i++) {
                        JsonValue *item;
                        r = json_value_copy(v->array.items[i], &item);
                        if (r >= 0)
                                r = json_array_append(c, item);
                }
                break;
        case JSON_OBJECT:
                r = json_new_object(&c);
                for (size_t i = 0; r >= 0 && i < v->object.n; i++) {
                        JsonValue *item;
                        r = json_value_copy(v->object.members[i].value, &item);
                        if (r >= 0)
                                r = json_object_set(c, v->object.members[i].key, item);
                }
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

bool json_value_equal(const JsonValue *a, const JsonValue *b)
{
        if (!a || !b)
                return a == b;
        if (a->type != b->type)
                return false;
        switch (a->type) {
        case JSON_NULL:
                return true;
        case JSON_BOOLEAN:
                return a->boolean == b->boolean;
        case JSON_INTEGER:
                return a->integer == b->integer;
        case JSON_STRING:
                return a->string.len == b->string.len &&
                       memcmp(a->string.data, b->string.data, a->string.len) == 0;
        case JSON_ARRAY:
                if (a->array.n != b->array.n)
                        return false;
                for (size_t i = 0; i < a->array.n; i++)
                        if (!json_value_equal(a->array.items[i], b->array.items[i]))
                                return false;
                return true;
        case JSON_OBJECT:
                if (a->object.n != b->object.n)
                        return false;
                for (size_t i = 0; i < a->object.n; i++) {
                        const JsonValue *o = json_object_get(b, a->object.members[i].key);
                        if (!json_value_equal(a->object.members[i].value, o))
                                return false;
                }
                return true;
        }
        return false;
}
