/* Reads and writes watch's position file: bounded and strict, so a damaged file is an error, never a skip.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/encoding.h"
#include "watch-position.h"

int watch_position_parse(const char *text, size_t size, WatchPosition *ret)
{
        const JsonLimits limits = {
                .max_size = WATCH_POSITION_MAX,
                .max_depth = 2,
                .max_members = WATCH_POSITION_LOGS,
                .max_string = 64,
        };
        _cleanup_json_ JsonValue *v = NULL;
        _cleanup_free_ AuditStreamStart *logs = NULL;
        const JsonValue *l;
        int64_t alert;
        int r;

        if (size > WATCH_POSITION_MAX)
                return -E2BIG;
        r = json_parse(text, size, &limits, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL);
        if (r < 0)
                return r;
        if (json_object_get_integer(v, "alert", &alert) < 0 || alert < 0 ||
            json_object_get_object(v, "logs", &l) < 0)
                return -EBADMSG;
        size_t n = json_object_size(l);
        logs = calloc(n ? n : 1, sizeof(*logs));
        if (!logs)
                return -ENOMEM;
        /* Keys are unique: json_parse refuses a duplicate key. */
        for (size_t i = 0; i < n; i++) {
                const JsonMember *m = &l->object.members[i];
                int64_t seq;
                if (m->key_len != ID128_STRING_MAX - 1 || !hex_lower_valid(m->key, ID128_STRING_MAX - 1) ||
                    json_get_integer(m->value, &seq) < 0 || seq < 0)
                        return -EBADMSG;
                if (seq > RECORD_INT_MAX)
                        return -ERANGE;
                memcpy(logs[i].log, m->key, ID128_STRING_MAX);
                logs[i].after = (uint64_t)seq;
        }
        *ret = (WatchPosition){.alert = alert, .logs = TAKE_PTR(logs), .n = (unsigned)n};
        return 0;
}

void watch_position_done(WatchPosition *p)
{
        free(p->logs);
        *p = (WatchPosition){};
}

int watch_position_format(int64_t alert, const AuditStreamStart *logs, unsigned n, char **ret,
                          size_t *ret_size)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        fprintf(f, "{\"alert\":%" PRId64 ",\"logs\":{", alert);
        for (unsigned i = 0; i < n; i++)
                fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "", logs[i].log, logs[i].after);
        fputs("}}\n", f);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_size = size;
        return 0;
}
