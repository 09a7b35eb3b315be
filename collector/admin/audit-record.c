/* A bounded, allocation-free scanner of a stored record line for the fields the audit reads. */
#include <errno.h>
#include <string.h>

#include "audit.h"

/*
 * Why not json_parse(): the audit reads millions of lines that the collector verified at ingest, and
 * needs seven top-level fields and three of data. Building a tree per line (one allocation per value)
 * was most of the audit's CPU time. This scanner walks the line once, skips what it does not need,
 * and decodes the strings it returns into the caller's scratch buffer. It still checks the JSON
 * syntax of the whole line (nesting bounded), so a damaged line is an error, never a misread.
 */

#define SCAN_DEPTH_MAX 16

typedef struct Scan {
        const char *p, *end;
        char *out, *out_end; /* scratch for decoded strings */
} Scan;

static int hex4(const char *p, unsigned *ret)
{
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
                char c = p[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (unsigned)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (unsigned)(c - 'A' + 10);
                else
                        return -EBADMSG;
        }
        *ret = v;
        return 0;
}

/* Bytes that end a run of plain string bytes: '"', '\\' and control characters. */
static const bool special[256] = {
        [0x00 ... 0x1f] = true,
        ['"'] = true,
        ['\\'] = true,
};

/*
 * A string at s->p (the opening quote). With decode, its UTF-8 goes to the scratch, NUL-terminated,
 * and *ret points at it, or is NULL when the string holds an escaped NUL (it is no C string: the
 * caller treats it as absent, like json_get_string() refusing it). Without decode, it is only checked
 * and skipped.
 */
static int scan_string(Scan *s, bool decode, const char **ret)
{
        const char *p = s->p + 1;
        char *o = s->out, *start = s->out;
        bool nul = false;

        for (;;) {
                if (p >= s->end)
                        return -EBADMSG;
                unsigned char c = (unsigned char)*p;
                if (c == '"')
                        break;
                if (c < 0x20)
                        return -EBADMSG;
                if (c != '\\') {
                        /* Runs of plain bytes: the common case, one table look-up a byte, copied in one go.
                         */
                        const char *q = p + 1;
                        while (q < s->end && !special[(unsigned char)*q])
                                q++;
                        if (decode) {
                                if ((size_t)(s->out_end - o) < (size_t)(q - p))
                                        return -E2BIG;
                                memcpy(o, p, (size_t)(q - p));
                                o += q - p;
                        }
                        p = q;
                        continue;
                }
                if (s->end - p < 2)
                        return -EBADMSG;
                char e = p[1], b;
                unsigned cp;
                switch (e) {
                case '"':
                case '\\':
                case '/':
                        b = e;
                        break;
                case 'b':
                        b = '\b';
                        break;
                case 'f':
                        b = '\f';
                        break;
                case 'n':
                        b = '\n';
                        break;
                case 'r':
                        b = '\r';
                        break;
                case 't':
                        b = '\t';
                        break;
                case 'u':
                        if (s->end - p < 6 || hex4(p + 2, &cp) < 0)
                                return -EBADMSG;
                        p += 6;
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                unsigned lo;
                                if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                                    lo < 0xdc00 || lo > 0xdfff)
                                        return -EBADMSG;
                                p += 6;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        } else if (cp >= 0xdc00 && cp <= 0xdfff)
                                return -EBADMSG;
                        if (cp == 0)
                                nul = true;
                        if (decode) {
                                if (s->out_end - o < 4)
                                        return -E2BIG;
                                if (cp < 0x80)
                                        *o++ = (char)cp;
                                else if (cp < 0x800) {
                                        *o++ = (char)(0xc0 | (cp >> 6));
                                        *o++ = (char)(0x80 | (cp & 0x3f));
                                } else if (cp < 0x10000) {
                                        *o++ = (char)(0xe0 | (cp >> 12));
                                        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                                        *o++ = (char)(0x80 | (cp & 0x3f));
                                } else {
                                        *o++ = (char)(0xf0 | (cp >> 18));
                                        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                                        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                                        *o++ = (char)(0x80 | (cp & 0x3f));
                                }
                        }
                        continue;
                default:
                        return -EBADMSG;
                }
                if (decode) {
                        if (o >= s->out_end)
                                return -E2BIG;
                        *o++ = b;
                }
                p += 2;
        }
        s->p = p + 1;
        if (decode) {
                if (o >= s->out_end)
                        return -E2BIG;
                *o++ = 0;
                s->out = o;
                *ret = nul ? NULL : start;
        }
        return 0;
}

/* An integer as JSON writes it: -?(0|[1-9][0-9]*), within int64. */
static int scan_integer(Scan *s, int64_t *ret)
{
        const char *p = s->p;
        bool neg = false;
        uint64_t v = 0;

        if (p < s->end && *p == '-') {
                neg = true;
                p++;
        }
        if (p >= s->end || *p < '0' || *p > '9')
                return -EBADMSG;
        if (*p == '0' && p + 1 < s->end && p[1] >= '0' && p[1] <= '9')
                return -EBADMSG;
        for (; p < s->end && *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_C(1) << 63) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E'))
                return -EBADMSG;
        if (v > (uint64_t)INT64_MAX + neg)
                return -ERANGE;
        if (neg && v == 0)
                return -EBADMSG; /* "-0" */
        s->p = p;
        if (ret)
                *ret = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
}

static int skip_literal(Scan *s, const char *word)
{
        size_t n = strlen(word);
        if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
                return -EBADMSG;
        s->p += n;
        return 0;
}

static int skip_value(Scan *s, unsigned depth);

/* An object or array at s->p, checked and skipped. */
static int skip_container(Scan *s, unsigned depth)
{
        char close = *s->p == '{' ? '}' : ']';
        bool object = close == '}';
        int r;

        if (depth >= SCAN_DEPTH_MAX)
                return -E2BIG;
        s->p++;
        if (s->p < s->end && *s->p == close) {
                s->p++;
                return 0;
        }
        for (;;) {
                if (object) {
                        if (s->p >= s->end || *s->p != '"')
                                return -EBADMSG;
                        r = scan_string(s, false, NULL);
                        if (r < 0)
                                return r;
                        if (s->p >= s->end || *s->p != ':')
                                return -EBADMSG;
                        s->p++;
                }
                r = skip_value(s, depth + 1);
                if (r < 0)
                        return r;
                if (s->p >= s->end)
                        return -EBADMSG;
                if (*s->p == close) {
                        s->p++;
                        return 0;
                }
                if (*s->p != ',')
                        return -EBADMSG;
                s->p++;
        }
}

static int skip_value(Scan *s, unsigned depth)
{
        if (s->p >= s->end)
                return -EBADMSG;
        switch (*s->p) {
        case '"':
                return scan_string(s, false, NULL);
        case '{':
        case '[':
                return skip_container(s, depth);
        case 't':
                return skip_literal(s, "true");
        case 'f':
                return skip_literal(s, "false");
        case 'n':
                return skip_literal(s, "null");
        default:
                return scan_integer(s, NULL);
        }
}

/* A key of an object at s->p, compared as it stands: a key with an escape is refused (JCS escapes only
 * '"', '\\' and control characters, which no key of a record holds). */
static int scan_key(Scan *s, const char **ret, size_t *ret_len)
{
        const char *start;
        int r;

        if (s->p >= s->end || *s->p != '"')
                return -EBADMSG;
        start = s->p + 1;
        r = scan_string(s, false, NULL);
        if (r < 0)
                return r;
        if (s->p >= s->end || *s->p != ':')
                return -EBADMSG;
        *ret = start;
        *ret_len = (size_t)(s->p - 1 - start);
        if (memchr(start, '\\', *ret_len))
                return -EBADMSG;
        s->p++;
        return 0;
}

static bool key_is(const char *k, size_t n, const char *want)
{
        return strlen(want) == n && memcmp(k, want, n) == 0;
}

/* A string that is a C string. */
static int scan_id(Scan *s, const char **ret)
{
        int r;

        if (s->p >= s->end || *s->p != '"')
                return -EBADMSG;
        r = scan_string(s, true, ret);
        if (r < 0)
                return r;
        return *ret ? 0 : -EBADMSG;
}

/* A string or null: NULL for null. */
static int scan_nullable(Scan *s, const char **ret)
{
        if (s->p < s->end && *s->p == 'n') {
                *ret = NULL;
                return skip_literal(s, "null");
        }
        return scan_id(s, ret);
}

enum {
        SEEN_SEQ = 1 << 0,
        SEEN_TS = 1 << 1,
        SEEN_TERM = 1 << 2,
        SEEN_EV = 1 << 3,
        SEEN_OP = 1 << 4,
        SEEN_CARD = 1 << 5,
        SEEN_DATA = 1 << 6,
        SEEN_ALL = (1 << 7) - 1,
};

/* data: "reason" and "method" when strings, "repeats" when an integer; everything else skipped. */
static int scan_data(Scan *s, AuditRecord *rec)
{
        const char *start = s->p;
        unsigned seen = 0;
        int r;

        if (s->p >= s->end || *s->p != '{')
                return -EBADMSG;
        s->p++;
        if (s->p < s->end && *s->p == '}') {
                s->p++;
                goto done;
        }
        for (;;) {
                const char *k;
                size_t n;
                r = scan_key(s, &k, &n);
                if (r < 0)
                        return r;
                unsigned bit = key_is(k, n, "reason")    ? 1
                               : key_is(k, n, "method")  ? 2
                               : key_is(k, n, "repeats") ? 4
                                                         : 0;
                if (bit & seen)
                        return -EBADMSG; /* a duplicate key */
                seen |= bit;
                if (bit == 1 && s->p < s->end && *s->p == '"')
                        r = scan_string(s, true, &rec->reason);
                else if (bit == 2 && s->p < s->end && *s->p == '"')
                        r = scan_string(s, true, &rec->method);
                else if (bit == 4 && s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
                        int64_t v;
                        r = scan_integer(s, &v);
                        if (r >= 0 && v > 0)
                                rec->repeats = (uint64_t)v;
                } else
                        r = skip_value(s, 1);
                if (r < 0)
                        return r;
                if (s->p >= s->end)
                        return -EBADMSG;
                if (*s->p == '}') {
                        s->p++;
                        break;
                }
                if (*s->p != ',')
                        return -EBADMSG;
                s->p++;
        }
done:
        rec->data_json = start;
        rec->data_len = (size_t)(s->p - start);
        return 0;
}

int audit_record_scan(const char *line, size_t len, char *scratch, size_t scratch_size, AuditRecord *ret)
{
        AuditRecord rec = {.line = line, .len = len};
        Scan s = {.p = line, .end = line + len, .out = scratch, .out_end = scratch + scratch_size};
        unsigned seen = 0;
        int64_t v = 0;
        int r;

        if (len > RECORD_LINE_MAX + 1)
                return -E2BIG;
        if (len > 0 && line[len - 1] == '\n')
                s.end--;
        if (s.p >= s.end || *s.p != '{')
                return -EBADMSG;
        s.p++;
        for (;;) {
                const char *k;
                size_t n;
                unsigned bit = 0;

                r = scan_key(&s, &k, &n);
                if (r < 0)
                        return r;
                switch (n) {
                case 2:
                        if (key_is(k, n, "ts")) {
                                bit = SEEN_TS;
                                r = scan_integer(&s, &v);
                                rec.ts = v;
                        } else if (key_is(k, n, "ev")) {
                                bit = SEEN_EV;
                                r = scan_id(&s, &rec.ev);
                        } else if (key_is(k, n, "op")) {
                                bit = SEEN_OP;
                                r = scan_nullable(&s, &rec.op);
                        }
                        break;
                case 3:
                        if (key_is(k, n, "seq")) {
                                bit = SEEN_SEQ;
                                r = scan_integer(&s, &v);
                                if (r >= 0 && v < 1)
                                        r = -EBADMSG;
                                rec.seq = (uint64_t)v;
                        }
                        break;
                case 4:
                        if (key_is(k, n, "term")) {
                                bit = SEEN_TERM;
                                r = scan_id(&s, &rec.term);
                        } else if (key_is(k, n, "card")) {
                                bit = SEEN_CARD;
                                r = scan_nullable(&s, &rec.card);
                        } else if (key_is(k, n, "data")) {
                                bit = SEEN_DATA;
                                r = scan_data(&s, &rec);
                        }
                        break;
                }
                if (bit) {
                        if (seen & bit)
                                return -EBADMSG;
                        seen |= bit;
                } else
                        r = skip_value(&s, 1);
                if (r < 0)
                        return r;
                if (s.p >= s.end)
                        return -EBADMSG;
                if (*s.p == '}') {
                        s.p++;
                        break;
                }
                if (*s.p != ',')
                        return -EBADMSG;
                s.p++;
        }
        if (s.p != s.end || seen != SEEN_ALL)
                return -EBADMSG;
        *ret = rec;
        return 0;
}

int audit_record_data(const AuditRecord *r, JsonValue **ret)
{
        static const JsonLimits limits = {
                .max_size = RECORD_LINE_MAX,
                .max_depth = SCAN_DEPTH_MAX,
                .max_members = 1024,
                .max_string = RECORD_LINE_MAX,
        };
        if (!r->data_json)
                return -ENOENT;
        return json_parse(r->data_json, r->data_len, &limits, 0, ret, NULL);
}
