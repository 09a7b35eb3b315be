/* The newest PIN/password change per operator from this terminal's own log: a table filled at start
 * from the segments and by every change recorded since. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mamori/fileio.h"
#include "mamori/oplog-record.h"
#include "secret-age.h"

#define SEGMENT_READ_MAX (256u * 1024u * 1024u)

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

typedef struct Entry {
        char op[RECORD_ID_MAX + 1];
        int64_t ts;
} Entry;

struct SecretAge {
        Entry *entries;
        size_t n, allocated;
};

int secret_age_new(SecretAge **ret)
{
        SecretAge *sa = calloc(1, sizeof(*sa));
        if (!sa)
                return -ENOMEM;
        *ret = sa;
        return 0;
}

SecretAge *secret_age_free(SecretAge *sa)
{
        if (!sa)
                return NULL;
        free(sa->entries);
        free(sa);
        return NULL;
}

static Entry *find(const SecretAge *sa, const char *op)
{
        for (size_t i = 0; sa && i < sa->n; i++)
                if (streq(sa->entries[i].op, op))
                        return &sa->entries[i];
        return NULL;
}

int secret_age_note(SecretAge *sa, const char *op, int64_t ts)
{
        Entry *e;

        if (!sa || !op || !op[0] || strlen(op) > RECORD_ID_MAX || ts < 0)
                return -EINVAL;
        e = find(sa, op);
        if (e) {
                if (ts > e->ts)
                        e->ts = ts;
                return 0;
        }
        if (sa->n >= SECRET_AGE_MAX)
                return -E2BIG;
        if (sa->n == sa->allocated) {
                size_t na = sa->allocated ? sa->allocated * 2 : 16;
                Entry *p = realloc(sa->entries, na * sizeof(Entry));
                if (!p)
                        return -ENOMEM;
                sa->entries = p;
                sa->allocated = na;
        }
        e = &sa->entries[sa->n++];
        *e = (Entry){.ts = ts};
        strcpy(e->op, op);
        return 0;
}

int64_t secret_age_get(const SecretAge *sa, const char *op)
{
        const Entry *e = op ? find(sa, op) : NULL;
        return e ? e->ts : -1;
}

int secret_age_scan_line(SecretAge *sa, const char *line, size_t len)
{
        static const char pin[] = "\"ev\":\"pin.change\"", password[] = "\"ev\":\"password.change\"";
        _cleanup_record_ Record *rec = NULL;

        /* Only the lines that can be one are parsed ("ev" is a top-level key: within a JSON string its
         * quotes would be escaped). */
        if (!memmem(line, len, pin, sizeof(pin) - 1) && !memmem(line, len, password, sizeof(password) - 1))
                return 0;
        if (record_parse_line(line, len, &rec) < 0)
                return 0; /* not a record: the log check at start decides what a damaged line means */
        if (!rec->op || !(streq(rec->ev, "pin.change") || streq(rec->ev, "password.change")))
                return 0;
        return secret_age_note(sa, rec->op, rec->ts) == -ENOMEM ? -ENOMEM : 1;
}

int secret_age_scan_directory(SecretAge *sa, const char *log_dir, unsigned *ret_n)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        unsigned n = 0;
        int r;

        d = opendir(log_dir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *buf = NULL;
                size_t size, l = strlen(de->d_name);

                if (l < 8 || strncmp(de->d_name, "seg-", 4) != 0 || !streq(de->d_name + l - 4, ".log"))
                        continue;
                if (asprintf(&path, "%s/%s", log_dir, de->d_name) < 0)
                        return -ENOMEM;
                r = read_file_bounded(path, SEGMENT_READ_MAX, &buf, &size);
                if (r == -ENOENT)
                        continue; /* pruned meanwhile */
                if (r < 0)
                        return r;
                for (const char *p = buf, *end = buf + size; p < end;) {
                        const char *nl = memchr(p, '\n', (size_t)(end - p));
                        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
                        r = secret_age_scan_line(sa, p, ll);
                        if (r < 0)
                                return r;
                        n += (unsigned)r;
                        p = nl ? nl + 1 : end;
                }
        }
        if (ret_n)
                *ret_n = n;
        return 0;
}
