/* quarantine.json: format, strict parse, and finding a quarantined log under the log directory. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/fileio.h"
#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "mamori/quarantine-info.h"

static bool id_valid(const char *s)
{
        return strlen(s) == ID128_STRING_MAX - 1 && hex_lower_valid(s, ID128_STRING_MAX - 1);
}

static bool dir_valid(const char *d, const char *log)
{
        size_t n = strlen(log);
        if (!strneq(d, log, n))
                return false;
        if (d[n] == '\0')
                return true;
        if (d[n] != '.' || d[n + 1] < '1' || d[n + 1] > '9' || strlen(d + n + 1) > 3)
                return false;
        return strspn(d + n + 1, "0123456789") == strlen(d + n + 1);
}

static bool info_valid(const struct quarantine_info *q)
{
        return id_valid(q->log) && (!q->new_log[0] || id_valid(q->new_log)) &&
               (streq(q->hash, RECORD_PREV_FIRST) || hex_lower_valid(q->hash, SHA256_HEX_MAX - 1)) &&
               strlen(q->hash) == SHA256_HEX_MAX - 1 && q->seq <= (uint64_t)RECORD_INT_MAX &&
               q->line <= (uint64_t)RECORD_INT_MAX && q->ts >= 0 && dir_valid(q->dir, q->log) &&
               (!q->file[0] || log_segment_name_parse(q->file, NULL));
}

int quarantine_info_format(const struct quarantine_info *q, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        int k;

        if (!q || !ret || !ret_len || !info_valid(q))
                return -EINVAL;
        k = json_new_object(&o);
        if (k >= 0)
                k = json_object_set_integer(o, "v", 1);
        if (k >= 0)
                k = json_object_set_string(o, "log", q->log);
        if (k >= 0)
                k = json_object_set_string(o, "term", q->term);
        if (k >= 0)
                k = json_object_set_string(o, "file", q->file);
        if (k >= 0)
                k = json_object_set_integer(o, "line", (int64_t)q->line);
        if (k >= 0)
                k = json_object_set_string(o, "reason", q->reason);
        if (k >= 0)
                k = json_object_set_integer(o, "seq", (int64_t)q->seq);
        if (k >= 0)
                k = json_object_set_string(o, "hash", q->hash);
        if (k >= 0)
                k = json_object_set_integer(o, "ts", q->ts);
        if (k >= 0)
                k = json_object_set_string(o, "dir", q->dir);
        if (k >= 0 && q->new_log[0])
                k = json_object_set_string(o, "new_log", q->new_log);
        if (k < 0)
                return k;
        return jcs_serialize(o, NULL, ret, ret_len);
}

static int get_uint(const JsonValue *o, const char *key, uint64_t *ret)
{
        int64_t i;
        if (json_object_get_integer(o, key, &i) < 0 || i < 0)
                return -EBADMSG;
        *ret = (uint64_t)i;
        return 0;
}

int quarantine_info_parse(const void *data, size_t size, struct quarantine_info *ret)
{
        static const JsonLimits limits = {
                .max_size = QUARANTINE_INFO_MAX, .max_depth = 1, .max_members = 16, .max_string = 1024};
        static const char *const keys[] = {"v",   "log",  "term", "file", "line",   "reason",
                                           "seq", "hash", "ts",   "dir",  "new_log"};
        _cleanup_json_ JsonValue *o = NULL;
        struct quarantine_info q = {0};
        uint64_t v, ts;
        int r;

        if (!ret)
                return -EINVAL;
        r = json_parse_flat_object(data, size, &limits, keys, ELEMENTSOF(keys), &o);
        if (r < 0)
                return r;
        if (get_uint(o, "v", &v) < 0 || v != 1 ||
            json_object_copy_string(o, "log", q.log, sizeof(q.log)) < 0 ||
            json_object_copy_string(o, "term", q.term, sizeof(q.term)) < 0 ||
            json_object_copy_string(o, "file", q.file, sizeof(q.file)) < 0 ||
            get_uint(o, "line", &q.line) < 0 ||
            json_object_copy_string(o, "reason", q.reason, sizeof(q.reason)) < 0 ||
            get_uint(o, "seq", &q.seq) < 0 ||
            json_object_copy_string(o, "hash", q.hash, sizeof(q.hash)) < 0 || get_uint(o, "ts", &ts) < 0 ||
            json_object_copy_string(o, "dir", q.dir, sizeof(q.dir)) < 0 ||
            (json_object_get(o, "new_log") &&
             json_object_copy_string(o, "new_log", q.new_log, sizeof(q.new_log)) < 0))
                return -EBADMSG;
        if (ts > (uint64_t)RECORD_INT_MAX)
                return -EBADMSG;
        q.ts = (int64_t)ts;
        if (!info_valid(&q))
                return -EBADMSG;
        *ret = q;
        return 0;
}

int quarantine_info_load(const char *path, struct quarantine_info *ret)
{
        _cleanup_free_ char *data = NULL;
        size_t n;
        int k;

        k = read_file_bounded(path, QUARANTINE_INFO_MAX, &data, &n);
        if (k < 0)
                return k;
        return quarantine_info_parse(data, n, ret);
}

int quarantine_info_find(const char *log_dir, const char *log, char **ret_dir, struct quarantine_info *ret)
{
        _cleanup_free_ char *top = NULL, *best_dir = NULL;
        struct quarantine_info best = {0};
        struct dirent *de;
        DIR *d;

        if (!log_dir || !log || !ret_dir || !ret)
                return -EINVAL;
        if (asprintf(&top, "%s/" QUARANTINE_DIR, log_dir) < 0)
                return -ENOMEM;
        d = opendir(top);
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                _cleanup_free_ char *dir = NULL, *path = NULL;
                struct quarantine_info q;

                if (!dir_valid(de->d_name, log))
                        continue;
                if (asprintf(&dir, "%s/%s", top, de->d_name) < 0 ||
                    asprintf(&path, "%s/" QUARANTINE_INFO, dir) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
                if (quarantine_info_load(path, &q) < 0 || !streq(q.log, log) || !streq(q.dir, de->d_name))
                        continue;
                if (!best_dir || q.ts > best.ts) {
                        free(best_dir);
                        best_dir = TAKE_PTR(dir);
                        best = q;
                }
        }
        closedir(d);
        if (!best_dir)
                return -ENOENT;
        *ret_dir = TAKE_PTR(best_dir);
        *ret = best;
        return 0;
}
