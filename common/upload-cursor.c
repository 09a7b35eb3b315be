/* The upload cursor file: the one strict parser, canonical writer and durable replacement. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mamori/fileio.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "mamori/oplog-record.h"
#include "mamori/upload-cursor.h"

static bool log_id_valid(const char *s, size_t len)
{
        if (len != ID128_STRING_MAX - 1)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static bool cursor_valid(const UploadCursor *c)
{
        return c && memchr(c->log, '\0', sizeof(c->log)) && log_id_valid(c->log, strlen(c->log)) &&
               c->acked <= (uint64_t)RECORD_INT_MAX;
}

int upload_cursor_parse(const void *data, size_t size, UploadCursor *ret)
{
        static const JsonLimits limits = {
                .max_size = UPLOAD_CURSOR_SIZE_MAX,
                .max_depth = 1,
                .max_members = 2,
                .max_string = 64,
        };
        _cleanup_json_ JsonValue *o = NULL;
        const JsonValue *log, *acked;
        const char *id;
        size_t id_len;
        int64_t n;

        if (!data || !ret)
                return -EINVAL;
        if (size > UPLOAD_CURSOR_SIZE_MAX)
                return -EBADMSG;
        /* Every parser error (syntax, bounds, range, duplicate key) means "not a cursor". */
        if (json_parse(data, size, &limits, JSON_PARSE_ALLOW_FINAL_NEWLINE, &o, NULL) < 0)
                return -EBADMSG;
        if (o->type != JSON_OBJECT || json_object_size(o) != 2)
                return -EBADMSG;
        log = json_object_get(o, "log");
        acked = json_object_get(o, "acked");
        if (!log || !acked || json_get_string(log, &id, &id_len) < 0 || !log_id_valid(id, id_len) ||
            json_get_integer(acked, &n) < 0 || n < 0 || n > RECORD_INT_MAX)
                return -EBADMSG;

        memcpy(ret->log, id, id_len + 1);
        ret->acked = (uint64_t)n;
        return 0;
}

int upload_cursor_format(const UploadCursor *c, char ret[static UPLOAD_CURSOR_LINE_MAX])
{
        int n;

        if (!cursor_valid(c))
                return -EINVAL;
        n = snprintf(ret, UPLOAD_CURSOR_LINE_MAX, "{\"log\":\"%s\",\"acked\":%" PRIu64 "}\n", c->log,
                     c->acked);
        assert(n > 0 && (size_t)n < UPLOAD_CURSOR_LINE_MAX);
        return n;
}

int upload_cursor_load(const char *path, UploadCursor *ret)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int k;

        if (!path || !ret)
                return -EINVAL;
        /* The directory belongs to mamori-upload and root reads the file: never follow a link it
         * planted, never block on a FIFO. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
        if (fd < 0)
                return errno == ELOOP ? -EBADMSG : negative_errno();
        k = read_fd_bounded(fd, UPLOAD_CURSOR_SIZE_MAX, &buf, &n);
        if (k == -E2BIG || k == -EBADFD)
                return -EBADMSG;
        if (k < 0)
                return k;
        return upload_cursor_parse(buf, n, ret);
}

int upload_cursor_acked(const char *path, const char *log_id, uint64_t *ret_acked)
{
        UploadCursor c;
        int k;

        if (!log_id || !ret_acked)
                return -EINVAL;
        k = upload_cursor_load(path, &c);
        if (k == -ENOENT) {
                *ret_acked = 0;
                return 0;
        }
        if (k < 0)
                return k;
        *ret_acked = streq(c.log, log_id) ? c.acked : 0;
        return 0;
}

int upload_cursor_save(const char *path, const UploadCursor *c)
{
        char line[UPLOAD_CURSOR_LINE_MAX];
        int n;

        if (!path)
                return -EINVAL;
        n = upload_cursor_format(c, line);
        if (n < 0)
                return n;
        return write_file_atomic(path, line, (size_t)n, 0644);
}
