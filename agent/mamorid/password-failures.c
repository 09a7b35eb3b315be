/* The password failure counts kept across restarts: one root-only file, its bounded codec, load and save. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "password-failures.h"
#include "password-store.h"

#define HEADER     "mamori-password-failures 1"
#define FIELDS_MAX 6 /* "op" ID COUNT LAST NEXT, and one more to see junk */
#define NUMBER_MAX 20

/* Splits line (NUL-terminated, no newline) at single spaces into at most FIELDS_MAX fields. Returns
 * the count, or -EBADMSG for an empty field (two spaces, a leading or trailing one). */
static int split(char *line, char *fields[FIELDS_MAX])
{
        int n = 0;

        for (char *p = line;; n++) {
                char *space = strchr(p, ' ');

                if (n == FIELDS_MAX || !*p)
                        return -EBADMSG;
                fields[n] = p;
                if (!space)
                        return n + 1;
                *space = '\0';
                p = space + 1;
        }
}

static int parse_number(const char *s, uint64_t max, uint64_t *ret)
{
        if (strlen(s) > NUMBER_MAX || (s[0] == '0' && s[1])) /* canonical: no leading zeros */
                return -EBADMSG;
        return parse_uint64(s, max, ret) < 0 ? -EBADMSG : 0;
}

static int parse_entry(char **fields, struct password_failure_entry *ret)
{
        uint64_t count, last, next;

        if (parse_number(fields[0], PASSWORD_FAILURE_COUNT_MAX, &count) < 0 ||
            parse_number(fields[1], INT64_MAX, &last) < 0 || parse_number(fields[2], INT64_MAX, &next) < 0)
                return -EBADMSG;
        ret->count = (uint32_t)count;
        ret->last_usec = (int64_t)last;
        ret->next_usec = (int64_t)next;
        return 0;
}

int password_failure_file_parse(const char *data, size_t size, struct password_failure_file *ret)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ struct password_failure_file *f = NULL;
        char *p, *fields[FIELDS_MAX];
        bool floor_seen = false;
        size_t line_no = 0;
        int n;

        if (size > PASSWORD_FAILURES_FILE_MAX)
                return -E2BIG;
        if (size == 0 || data[size - 1] != '\n' || memchr(data, '\0', size))
                return -EBADMSG;
        text = malloc(size + 1);
        f = calloc(1, sizeof(*f));
        if (!text || !f)
                return -ENOMEM;
        memcpy(text, data, size);
        text[size] = '\0';

        for (p = text; *p; line_no++) {
                char *line = p, *nl = strchr(p, '\n'); /* there is one: the text ends with it */

                *nl = '\0';
                p = nl + 1;
                if (line_no == 0) {
                        if (!streq(line, HEADER))
                                return -EBADMSG;
                        continue;
                }
                n = split(line, fields);
                if (n < 0)
                        return n;
                if (line_no == 1) {
                        /* The floor, always the second line. */
                        if (n != 4 || !streq(fields[0], "floor") || parse_entry(fields + 1, &f->floor) < 0)
                                return -EBADMSG;
                        floor_seen = true;
                        continue;
                }
                if (n != 5 || !streq(fields[0], "op") || f->n == PASSWORD_FAILURE_ENTRIES_MAX ||
                    password_store_check_id(fields[1]) < 0)
                        return -EBADMSG;
                for (size_t i = 0; i < f->n; i++)
                        if (streq(f->entries[i].operator_id, fields[1]))
                                return -EBADMSG;
                struct password_failure_entry *e = &f->entries[f->n];
                if (parse_entry(fields + 2, e) < 0)
                        return -EBADMSG;
                memcpy(e->operator_id, fields[1], strlen(fields[1]) + 1); /* checked: at most 64 bytes */
                f->n++;
        }
        if (!floor_seen)
                return -EBADMSG;
        *ret = *f;
        return 0;
}

static bool entry_ok(const struct password_failure_entry *e)
{
        return e->count <= PASSWORD_FAILURE_COUNT_MAX && e->last_usec >= 0 && e->next_usec >= 0;
}

int password_failure_file_format(const struct password_failure_file *f, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *out;

        if (f->n > PASSWORD_FAILURE_ENTRIES_MAX || !entry_ok(&f->floor))
                return -EINVAL;
        for (size_t i = 0; i < f->n; i++)
                if (!entry_ok(&f->entries[i]) || password_store_check_id(f->entries[i].operator_id) < 0)
                        return -EINVAL;
        out = open_memstream(&buf, &size);
        if (!out)
                return -ENOMEM;
        fprintf(out, HEADER "\nfloor %" PRIu32 " %" PRId64 " %" PRId64 "\n", f->floor.count,
                f->floor.last_usec, f->floor.next_usec);
        for (size_t i = 0; i < f->n; i++)
                fprintf(out, "op %s %" PRIu32 " %" PRId64 " %" PRId64 "\n", f->entries[i].operator_id,
                        f->entries[i].count, f->entries[i].last_usec, f->entries[i].next_usec);
        if (fclose(out) != 0 || !buf)
                return -ENOMEM;
        *ret_size = size;
        *ret = TAKE_PTR(buf);
        return 0;
}

int password_failure_file_path(const char *directory, char *buf, size_t size)
{
        if ((size_t)snprintf(buf, size, "%s/" PASSWORD_FAILURES_FILE_NAME, directory) >= size)
                return -ENAMETOOLONG;
        return 0;
}

int password_failure_file_load(const char *path, struct password_failure_file *ret)
{
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t size;
        int r;

        /* Only a file that only we could have written counts; a FIFO there does not hold mamorid's start. */
        _cleanup_close_ int fd = -EBADF;
        r = open_private_file(path, &fd, &st);
        if (r < 0)
                return r == -EBADFD ? -EPERM : r;
        r = read_fd_bounded(fd, PASSWORD_FAILURES_FILE_MAX, &data, &size);
        if (r < 0)
                return r;
        return password_failure_file_parse(data, size, ret);
}

int password_failure_file_save(const char *path, const struct password_failure_file *f)
{
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = password_failure_file_format(f, &text, &size);
        if (r < 0)
                return r;
        return write_file_atomic(path, text, size, 0600);
}
