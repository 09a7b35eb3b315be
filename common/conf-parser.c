/* Reads agent.conf-style files: sections, Key=value, comments, drop-ins; reports file:line. */
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/conf-parser.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"

#define MAX_SECTION 64u
#define MAX_KEY     64u
/* Marks "inside a broken section header": its keys are skipped without a second error. */
#define BROKEN_SECTION "\x01"

_printf_(5, 6) static void report(struct conf_context *ctx, enum conf_level level, const char *file,
                                  unsigned line, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (level == CONF_ERROR)
                ctx->n_errors++;
        else
                ctx->n_warnings++;
        if (!ctx->diag)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        ctx->diag(ctx->userdata, level, file, line, msg);
}

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r';
}

/* Trims blanks in place on both ends of [*start, *end). */
static void trim(const char **start, const char **end)
{
        while (*start < *end && is_blank(**start))
                (*start)++;
        while (*end > *start && is_blank((*end)[-1]))
                (*end)--;
}

static bool valid_name(const char *s, size_t len, size_t max)
{
        if (len == 0 || len > max)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_'))
                        return false;
        }
        return true;
}

static const struct conf_item *lookup(const struct conf_context *ctx, const char *section, const char *key)
{
        for (size_t i = 0; i < ctx->n_items; i++)
                if (streq(ctx->items[i].section, section) && streq(ctx->items[i].key, key))
                        return &ctx->items[i];
        return NULL;
}

static bool known_section(const struct conf_context *ctx, const char *section)
{
        for (size_t i = 0; i < ctx->n_items; i++)
                if (streq(ctx->items[i].section, section))
                        return true;
        return false;
}

static char lower(char c)
{
        return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static unsigned min_u(unsigned a, unsigned b)
{
        return a < b ? a : b;
}

/* Edit distance (insert, delete, substitute, swap two neighbours; case ignored) between two names
 * of at most MAX_KEY bytes, or cap if it is cap or more: three rows on the stack, so the work is
 * bounded by the name lengths. */
static unsigned name_distance(const char *a, const char *b, unsigned cap)
{
        size_t la = strlen(a), lb = strlen(b);
        unsigned rows[3][MAX_KEY + 1];
        unsigned *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

        if (la > MAX_KEY || lb > MAX_KEY || (la > lb ? la - lb : lb - la) >= cap)
                return cap;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = (unsigned)j;
        for (size_t i = 1; i <= la; i++) {
                unsigned best = cur[0] = (unsigned)i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned v = min_u(min_u(prev[j] + 1, cur[j - 1] + 1),
                                           prev[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1));
                        if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                            lower(a[i - 2]) == lower(b[j - 1]))
                                v = min_u(v, prev2[j - 2] + 1);
                        cur[j] = v;
                        best = min_u(best, v);
                }
                if (best >= cap)
                        return cap;
                unsigned *t = prev2;
                prev2 = prev;
                prev = cur;
                cur = t;
        }
        return min_u(prev[lb], cap);
}

/* Close enough to be a typo: at most 2 edits, and few for the length ("URI" → "URL", not "Id" → "Ix"). */
static bool near_miss(const char *word, const char *known, unsigned *best)
{
        unsigned d = name_distance(word, known, 3);
        size_t lw = strlen(word), lk = strlen(known);

        if (d > 2 || d * 3 > (lw > lk ? lw : lk) || d >= *best)
                return false;
        *best = d;
        return true;
}

/* The known section a misspelled one probably meant, or NULL. */
static const char *suggest_section(const struct conf_context *ctx, const char *section)
{
        const char *found = NULL;
        unsigned best = UINT_MAX;

        for (size_t i = 0; i < ctx->n_items; i++)
                if (near_miss(section, ctx->items[i].section, &best))
                        found = ctx->items[i].section;
        return found;
}

/* The known key a misspelled one probably meant: in its own section first, else in another
 * section (the key was put under the wrong header). */
static const struct conf_item *suggest_key(const struct conf_context *ctx, const char *section,
                                           const char *key)
{
        const struct conf_item *found = NULL;
        unsigned best = UINT_MAX;

        for (size_t i = 0; i < ctx->n_items; i++)
                if (streq(ctx->items[i].section, section) && near_miss(key, ctx->items[i].key, &best))
                        found = &ctx->items[i];
        if (found)
                return found;
        best = UINT_MAX;
        for (size_t i = 0; i < ctx->n_items; i++)
                if (near_miss(key, ctx->items[i].key, &best))
                        found = &ctx->items[i];
        return found;
}

static void parse_line(struct conf_context *ctx, const char *name, unsigned lineno, const char *s,
                       const char *e, char section[static MAX_SECTION + 1])
{
        trim(&s, &e);
        if (s == e || *s == '#' || *s == ';')
                return;

        if (*s == '[') {
                if (e[-1] != ']' || e - s < 2) {
                        report(ctx, CONF_ERROR, name, lineno, "section header lacks its closing ']'");
                        strcpy(section, BROKEN_SECTION);
                        return;
                }
                const char *ns = s + 1, *ne = e - 1;
                if (!valid_name(ns, (size_t)(ne - ns), MAX_SECTION)) {
                        report(ctx, CONF_ERROR, name, lineno, "invalid section name");
                        strcpy(section, BROKEN_SECTION);
                        return;
                }
                memcpy(section, ns, (size_t)(ne - ns));
                section[ne - ns] = '\0';
                if (!known_section(ctx, section)) {
                        const char *maybe = suggest_section(ctx, section);
                        if (maybe)
                                report(ctx, CONF_WARNING, name, lineno,
                                       "unknown section [%s], did you mean [%s]? Ignoring its keys", section,
                                       maybe);
                        else
                                report(ctx, CONF_WARNING, name, lineno,
                                       "unknown section [%s], ignoring its keys", section);
                }
                return;
        }

        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (!eq) {
                report(ctx, CONF_ERROR, name, lineno, "expected Key=value");
                return;
        }
        const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
        trim(&ks, &ke);
        trim(&vs, &ve);
        if (!valid_name(ks, (size_t)(ke - ks), MAX_KEY)) {
                report(ctx, CONF_ERROR, name, lineno, "invalid key name");
                return;
        }
        char key[MAX_KEY + 1];
        memcpy(key, ks, (size_t)(ke - ks));
        key[ke - ks] = '\0';

        if (streq(section, BROKEN_SECTION))
                return;
        if (section[0] == '\0') {
                report(ctx, CONF_ERROR, name, lineno, "key %s outside of a known [Section]", key);
                return;
        }
        if (!known_section(ctx, section))
                return; /* already warned once at the header */
        const struct conf_item *item = lookup(ctx, section, key);
        if (!item) {
                const struct conf_item *maybe = suggest_key(ctx, section, key);
                if (maybe && streq(maybe->section, section))
                        report(ctx, CONF_WARNING, name, lineno,
                               "unknown key %s in [%s], did you mean %s? Ignoring it", key, section,
                               maybe->key);
                else if (maybe)
                        report(ctx, CONF_WARNING, name, lineno,
                               "unknown key %s in [%s], did you mean %s in [%s]? Ignoring it", key, section,
                               maybe->key, maybe->section);
                else
                        report(ctx, CONF_WARNING, name, lineno, "unknown key %s in [%s], ignoring", key,
                               section);
                return;
        }

        char value[CONF_MAX_LINE + 1];
        memcpy(value, vs, (size_t)(ve - vs));
        value[ve - vs] = '\0';
        const char *why = NULL;
        int r = item->parse(value, (uint8_t *)ctx->target + item->offset, &why);
        if (r < 0)
                report(ctx, CONF_ERROR, name, lineno, "bad value for %s in [%s]: %s", key, section,
                       why ? why : strerror(-r));
}

int conf_parse_buffer(struct conf_context *ctx, const char *name, const char *buf, size_t size)
{
        char section[MAX_SECTION + 1] = "";
        unsigned errors_before = ctx->n_errors;
        unsigned lineno = 0;
        const char *p = buf, *end = buf + size;

        if (size > CONF_MAX_FILE_SIZE) {
                report(ctx, CONF_ERROR, name, 0, "file larger than %u bytes", CONF_MAX_FILE_SIZE);
                return -EINVAL;
        }
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *le = nl ? nl : end;
                lineno++;
                if ((size_t)(le - p) > CONF_MAX_LINE)
                        report(ctx, CONF_ERROR, name, lineno, "line longer than %u bytes", CONF_MAX_LINE);
                else if (memchr(p, '\0', (size_t)(le - p)))
                        report(ctx, CONF_ERROR, name, lineno, "line contains a NUL byte");
                else {
                        bool ctl = false;
                        for (const char *c = p; c < le; c++)
                                if ((unsigned char)*c < 0x20 && *c != '\t' && *c != '\r')
                                        ctl = true;
                        if (ctl)
                                report(ctx, CONF_ERROR, name, lineno, "line contains a control character");
                        else
                                parse_line(ctx, name, lineno, p, le, section);
                }
                p = nl ? nl + 1 : end;
        }
        return ctx->n_errors > errors_before ? -EINVAL : 0;
}

int conf_parse_file(struct conf_context *ctx, const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode)) {
                report(ctx, CONF_ERROR, path, 0, "not a regular file");
                return -EINVAL;
        }
        buf = malloc(CONF_MAX_FILE_SIZE + 1);
        if (!buf)
                return -ENOMEM;
        /* Read one byte more than allowed so an oversized file is noticed, whatever stat said. */
        while (n < CONF_MAX_FILE_SIZE + 1) {
                ssize_t r = read(fd, buf + n, CONF_MAX_FILE_SIZE + 1 - n);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = negative_errno();
                        report(ctx, CONF_ERROR, path, 0, "read failed: %s", strerror(-e));
                        return e;
                }
                if (r == 0)
                        break;
                n += (size_t)r;
        }
        return conf_parse_buffer(ctx, path, buf, n);
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_conf_suffix(const char *name)
{
        size_t l = strlen(name);
        return l > 5 && streq(name + l - 5, ".conf") && name[0] != '.';
}

int conf_parse_with_dropins(struct conf_context *ctx, const char *path, const char *dropin_dir)
{
        char *names[CONF_MAX_DROPINS];
        size_t n = 0;
        int ret = 0, r;

        r = conf_parse_file(ctx, path);
        if (r == -ENOENT) {
                report(ctx, CONF_ERROR, path, 0, "cannot open: %s", strerror(ENOENT));
                return r;
        }
        if (r < 0)
                ret = r;

        if (!dropin_dir)
                return ret;
        DIR *d = opendir(dropin_dir);
        if (!d)
                return errno == ENOENT
                               ? ret
                               : (report(ctx, CONF_ERROR, dropin_dir, 0, "cannot open: %s", strerror(errno)),
                                  -EINVAL);
        struct dirent *de;
        bool too_many = false;
        while ((de = readdir(d))) {
                if (!has_conf_suffix(de->d_name))
                        continue;
                if (n == CONF_MAX_DROPINS) {
                        too_many = true;
                        break;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        ret = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);
        if (too_many) {
                report(ctx, CONF_ERROR, dropin_dir, 0, "more than %u drop-in files", CONF_MAX_DROPINS);
                ret = -EINVAL;
        }
        qsort(names, n, sizeof(names[0]), cmp_names);
        for (size_t i = 0; i < n; i++) {
                char full[4096];
                if ((size_t)snprintf(full, sizeof(full), "%s/%s", dropin_dir, names[i]) >= sizeof(full)) {
                        report(ctx, CONF_ERROR, dropin_dir, 0, "drop-in path too long");
                        ret = -EINVAL;
                } else {
                        r = conf_parse_file(ctx, full);
                        if (r < 0 && ret >= 0)
                                ret = r;
                }
                free(names[i]);
        }
        return ret;
}

void conf_diag_print(void *userdata, enum conf_level level, const char *file, unsigned line,
                     const char *message)
{
        const char *what = level == CONF_ERROR ? "error" : "warning";

        if (line > 0)
                fprintf(stderr, "%s:%u: %s: %s\n", file, line, what, message);
        else
                fprintf(stderr, "%s: %s: %s\n", file, what, message);
        if (userdata)
                (*(unsigned *)userdata)++;
}

int conf_parse_string(const char *value, void *data, const char **ret_why)
{
        char **field = data;
        char *copy = strdup(value);

        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

int conf_parse_path(const char *value, void *data, const char **ret_why)
{
        if (value[0] != '/') {
                *ret_why = "expected an absolute path";
                return -EINVAL;
        }
        if (strlen(value) >= 4096) {
                *ret_why = "path too long";
                return -EINVAL;
        }
        return conf_parse_string(value, data, ret_why);
}

int conf_parse_seconds(const char *value, void *data, const char **ret_why)
{
        uint64_t usec;
        int r = parse_duration_usec(value, &usec);

        if (r < 0) {
                *ret_why = r == -ERANGE ? "duration too large" : "expected a duration like 300, 5min or 1h";
                return r;
        }
        *(uint64_t *)data = usec;
        return 0;
}

int conf_parse_uint32(const char *value, void *data, const char **ret_why)
{
        uint64_t v;
        int r = parse_uint64(value, UINT32_MAX, &v);

        if (r < 0) {
                *ret_why = r == -ERANGE ? "number too large" : "expected a whole number";
                return r;
        }
        *(uint32_t *)data = (uint32_t)v;
        return 0;
}

int conf_parse_bool(const char *value, void *data, const char **ret_why)
{
        int r = parse_boolean(value, data);

        if (r < 0)
                *ret_why = "expected yes or no";
        return r;
}

int conf_parse_positive_uint32(const char *value, void *data, const char **ret_why)
{
        uint32_t n;
        int r = conf_parse_uint32(value, &n, ret_why);

        if (r < 0)
                return r;
        if (n == 0) {
                *ret_why = "must be at least 1";
                return -ERANGE;
        }
        *(uint32_t *)data = n;
        return 0;
}

int conf_parse_positive_seconds(const char *value, void *data, const char **ret_why)
{
        uint64_t usec;
        int r = conf_parse_seconds(value, &usec, ret_why);

        if (r < 0)
                return r;
        if (usec == 0) {
                *ret_why = "must be longer than 0";
                return -ERANGE;
        }
        *(uint64_t *)data = usec;
        return 0;
}

int conf_parse_choice(const char *value, const char *const choices[], int *field, const char *why,
                      const char **ret_why)
{
        for (int i = 0; choices[i]; i++)
                if (streq(value, choices[i])) {
                        *field = i;
                        return 0;
                }
        *ret_why = why;
        return -EINVAL;
}
