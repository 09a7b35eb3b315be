/* The uploader's cursor file, read and replaced atomically and durably. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mamori/fileio.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "mamori/oplog-record.h"
#include "upload-cursor.h"

static bool is_log_id(const char *s)
{
        if (strlen(s) != 32)
                return false;
        for (size_t i = 0; i < 32; i++)
                if (!strchr("0123456789abcdef", s[i]))
                        return false;
        return true;
}

int upload_cursor_load(const char *path, char ret_log[ID128_STRING_MAX], uint64_t *ret_acked)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_json_ JsonValue *o = NULL;
        const char *log;
        int64_t acked;
        size_t n;
        int k;

        k = read_file_bounded(path, UPLOAD_CURSOR_MAX, &buf, &n);
        if (k < 0)
                return k == -E2BIG ? -EBADMSG : k;
        if (json_parse(buf, n, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &o, NULL) < 0)
                return -EBADMSG;
        if (json_object_get_string(o, "log", &log) < 0 || !is_log_id(log) ||
            json_object_get_integer(o, "acked", &acked) < 0 || acked < 0 || acked > RECORD_INT_MAX)
                return -EBADMSG;
        memcpy(ret_log, log, ID128_STRING_MAX);
        *ret_acked = (uint64_t)acked;
        return 0;
}

int upload_cursor_save(const char *path, const char *log, uint64_t acked)
{
        char buf[128];
        int n;

        if (!path || !log || !is_log_id(log) || acked > (uint64_t)RECORD_INT_MAX)
                return -EINVAL;
        n = snprintf(buf, sizeof(buf), "{\"log\":\"%s\",\"acked\":%" PRIu64 "}\n", log, acked);
        if (n < 0 || (size_t)n >= sizeof(buf))
                return -EINVAL;
        /* 0644: mamorid (pruning) and mamorictl read it. */
        return write_file_atomic(path, buf, (size_t)n, 0644);
}
