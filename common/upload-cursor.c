/* The upload cursor file: the one strict parser, canonical writer and durable replacement, and the
 * check of its receipt against the local log. */
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
        if (!c || !memchr(c->log, '\0', sizeof(c->log)) || !log_id_valid(c->log, strlen(c->log)) ||
            c->acked > (uint64_t)RECORD_INT_MAX)
                return false;
        return !c->has_receipt || (c->receipt.has_sig && receipt_validate(&c->receipt) >= 0 &&
                                   streq(c->receipt.log, c->log) && c->receipt.acked == c->acked);
}

int upload_cursor_parse(const void *data, size_t size, UploadCursor *ret)
{
        static const JsonLimits limits = {
                .max_size = UPLOAD_CURSOR_SIZE_MAX,
                .max_depth = 2,
                .max_members = 8,
                .max_string = 128,
        };
        _cleanup_json_ JsonValue *o = NULL;
        const JsonValue *log, *acked, *receipt;
        UploadCursor c = {};
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
        if (o->type != JSON_OBJECT)
                return -EBADMSG;
        log = json_object_get(o, "log");
        acked = json_object_get(o, "acked");
        receipt = json_object_get(o, "receipt");
        if (json_object_size(o) != (receipt ? 3u : 2u))
                return -EBADMSG;
        if (!log || !acked || json_get_string(log, &id, &id_len) < 0 || !log_id_valid(id, id_len) ||
            json_get_integer(acked, &n) < 0 || n < 0 || n > RECORD_INT_MAX)
                return -EBADMSG;
        memcpy(c.log, id, id_len + 1);
        c.acked = (uint64_t)n;
        if (receipt) {
                if (receipt_from_json(receipt, &c.receipt, NULL) < 0)
                        return -EBADMSG;
                c.has_receipt = true;
        }
        if (!cursor_valid(&c))
                return -EBADMSG;
        *ret = c;
        return 0;
}

int upload_cursor_format(const UploadCursor *c, char ret[static UPLOAD_CURSOR_LINE_MAX])
{
        _cleanup_free_ char *receipt = NULL;
        size_t len = 0;
        int n;

        if (!cursor_valid(c))
                return -EINVAL;
        if (c->has_receipt) {
                n = receipt_format(&c->receipt, &receipt, &len);
                if (n < 0)
                        return n == -ENOMEM ? n : -EINVAL;
                if (len > RECEIPT_SIZE_MAX)
                        return -EINVAL;
                n = snprintf(ret, UPLOAD_CURSOR_LINE_MAX,
                             "{\"log\":\"%s\",\"acked\":%" PRIu64 ",\"receipt\":%s}\n", c->log, c->acked,
                             receipt);
        } else
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

int upload_cursor_load_verified(const char *path, EVP_PKEY *receipt_key, const char *dir, const char *log_id,
                                UploadCursor *ret, const char **ret_why)
{
        UploadCursor c;
        int k;

        if (!path || !receipt_key || !dir || !log_id || !ret)
                return -EINVAL;
        k = upload_cursor_load(path, &c);
        if (k == -EBADMSG && ret_why)
                *ret_why = "not a cursor file";
        if (k < 0)
                return k;
        if (!streq(c.log, log_id))
                return -ESTALE;
        if (!c.has_receipt) {
                if (ret_why)
                        *ret_why = "no receipt";
                return -ENOKEY;
        }
        k = receipt_check_log(&c.receipt, receipt_key, dir, log_id, ret_why);
        if (k == -ENOENT)
                return -EBADMSG;
        if (k < 0)
                return k;
        *ret = c;
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
