/* Quarantine of a damaged operation log: segments moved aside unchanged, a new log whose log.open names the
 * old one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mamori/fileio.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "oplog-keys.h"
#include "oplog-quarantine.h"

static int64_t now_realtime(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void info_from_damage(const struct oplog_damage *d, const char *where, struct quarantine_info *ret)
{
        *ret = (struct quarantine_info){.line = d->line, .seq = d->good_seq, .ts = now_realtime()};
        memcpy(ret->log, d->log_id, sizeof(ret->log));
        snprintf(ret->term, sizeof(ret->term), "%s", d->term);
        snprintf(ret->file, sizeof(ret->file), "%s", d->file);
        snprintf(ret->reason, sizeof(ret->reason), "%s", d->reason);
        memcpy(ret->hash, d->good_hash, sizeof(ret->hash));
        snprintf(ret->dir, sizeof(ret->dir), "%s", where);
}

static void damage_from_info(const struct quarantine_info *q, struct oplog_damage *ret)
{
        *ret = (struct oplog_damage){.line = q->line, .good_seq = q->seq};
        memcpy(ret->log_id, q->log, sizeof(ret->log_id));
        snprintf(ret->term, sizeof(ret->term), "%s", q->term);
        snprintf(ret->file, sizeof(ret->file), "%s", q->file);
        snprintf(ret->reason, sizeof(ret->reason), "%s", q->reason);
        memcpy(ret->good_hash, q->hash, sizeof(ret->good_hash));
}

/* What to quarantine, found the way mamorid finds it at start. */
static int find_damage(const struct oplog_params *p, struct oplog_damage *ret)
{
        _cleanup_pkey_ EVP_PKEY *identity = NULL, *key = NULL;
        struct oplog_damage d = {0};
        struct oplog_tail t;
        int k;

        k = pem_load_private_key(p->identity_key, &identity);
        if (k < 0)
                return k;
        k = oplog_check(p->directory, p->keys_directory, identity, &t, &d);
        if (k == -EBADMSG) {
                if (!d.log_id[0])
                        return -EBADMSG; /* not one record parses: nothing names the log */
                *ret = d;
                return 0;
        }
        if (k < 0)
                return k;
        if (k == 1)
                return -ENODATA;
        d = (struct oplog_damage){.good_seq = t.last_seq};
        snprintf(d.file, sizeof(d.file), "%s", t.segment);
        memcpy(d.log_id, t.log_id, sizeof(d.log_id));
        snprintf(d.term, sizeof(d.term), "%s", t.term);
        memcpy(d.good_hash, t.last_hash, SHA256_HEX_MAX);
        if (!streq(t.term, p->terminal_id)) {
                snprintf(d.reason, sizeof(d.reason),
                         "the log was written as terminal \"%s\", this terminal is \"%s\"", t.term,
                         p->terminal_id);
                *ret = d;
                return 0;
        }
        k = oplog_epoch_key_load(p->keys_directory, t.key, &key);
        if (k == -ENOENT) {
                snprintf(d.reason, sizeof(d.reason),
                         "the current log key is gone: the chain cannot be continued");
                *ret = d;
                return 0;
        }
        return k < 0 ? k : -EALREADY;
}

/* The first record's log id of a segment, "" when its first line does not parse. */
static int segment_log_id(const char *path, char ret[ID128_STRING_MAX])
{
        _cleanup_close_ int fd = -EBADF;
        char buf[RECORD_LINE_MAX + 1];
        _cleanup_record_ Record *r = NULL;
        ssize_t n;
        char *nl;

        ret[0] = '\0';
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf));
        if (n < 0)
                return negative_errno();
        nl = memchr(buf, '\n', (size_t)n);
        if (nl && record_parse_line(buf, (size_t)(nl - buf), &r) >= 0)
                memcpy(ret, r->log, ID128_STRING_MAX);
        return 0;
}

/* Moves every segment of log (or that names no log) from dir into target; leaves a newer log's. */
static int move_segments(const char *dir, const char *target, const char *log, unsigned *ret_moved,
                         bool *ret_successor)
{
        char **names = NULL;
        size_t n = 0;
        unsigned moved = 0;
        bool successor = false;
        int k;

        k = log_segments_list(dir, &names, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && k >= 0; i++) {
                _cleanup_free_ char *from = NULL, *to = NULL;
                char id[ID128_STRING_MAX];

                if (asprintf(&from, "%s/%s", dir, names[i]) < 0 ||
                    asprintf(&to, "%s/%s", target, names[i]) < 0) {
                        k = -ENOMEM;
                        break;
                }
                k = segment_log_id(from, id);
                if (k < 0)
                        break;
                if (id[0] && !streq(id, log)) {
                        successor = true; /* written by this quarantine before it was interrupted */
                        continue;
                }
                if (rename(from, to) < 0)
                        k = negative_errno();
                else
                        moved++;
        }
        log_segments_free(names, n);
        if (k < 0)
                return k;
        k = fsync_directory(target);
        if (k >= 0)
                k = fsync_directory(dir);
        if (k < 0)
                return k;
        *ret_moved = moved;
        *ret_successor = successor;
        return 0;
}

/* <dir>/quarantine/<log>, or <log>.2, .3 … when that log id was quarantined before. */
static int pick_target(const char *dir, const char *log, char *ret, size_t size)
{
        for (unsigned i = 1; i < 1000; i++) {
                struct stat st;
                int n = i == 1 ? snprintf(ret, size, "%s", log) : snprintf(ret, size, "%s.%u", log, i);
                _cleanup_free_ char *path = NULL;
                if (n < 0 || (size_t)n >= size)
                        return -ENAMETOOLONG;
                if (asprintf(&path, "%s/" QUARANTINE_DIR "/%s", dir, ret) < 0)
                        return -ENOMEM;
                if (lstat(path, &st) < 0)
                        return errno == ENOENT ? 0 : negative_errno();
        }
        return -EEXIST;
}

int oplog_quarantine(const struct oplog_params *p, struct oplog_quarantine_result *ret)
{
        _cleanup_free_ char *lock_path = NULL, *marker = NULL, *target = NULL, *info_path = NULL,
                            *info = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        struct oplog_quarantine_result r = {0};
        struct quarantine_info qi;
        char where[QUARANTINE_NAME_MAX];
        JsonValue *previous = NULL;
        bool successor = false;
        OpLog *l = NULL;
        size_t info_len;
        int k;

        if (!p || !p->directory || !p->keys_directory || !p->identity_key || !p->terminal_id || !ret)
                return -EINVAL;
        if (asprintf(&lock_path, "%s/" OPLOG_LOCK_FILE, p->directory) < 0 ||
            asprintf(&marker, "%s/" OPLOG_QUARANTINE_MARKER, p->directory) < 0)
                return -ENOMEM;
        lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0)
                return negative_errno();
        if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : negative_errno();

        k = quarantine_info_load(marker, &qi);
        if (k >= 0) {
                /* An interrupted quarantine: finish it as it was begun. */
                damage_from_info(&qi, &r.damage);
                snprintf(where, sizeof(where), "%s", qi.dir);
        } else if (k == -ENOENT) {
                /* A new quarantine: the marker is durable before the first file moves. */
                k = find_damage(p, &r.damage);
                if (k < 0)
                        return k;
                k = pick_target(p->directory, r.damage.log_id, where, sizeof(where));
                if (k < 0)
                        return k;
                info_from_damage(&r.damage, where, &qi);
                k = quarantine_info_format(&qi, &info, &info_len);
                if (k >= 0)
                        k = write_file_atomic(marker, info, info_len, 0640);
        }
        if (k < 0)
                return k;
        if (asprintf(&target, "%s/" QUARANTINE_DIR "/%s", p->directory, where) < 0)
                return -ENOMEM;
        k = oplog_mkdir_p(target, 0750);
        if (k >= 0) {
                _cleanup_free_ char *parent = NULL;
                if (asprintf(&parent, "%s/" QUARANTINE_DIR, p->directory) < 0)
                        return -ENOMEM;
                k = fsync_directory(parent);
                if (k >= 0)
                        k = fsync_directory(p->directory);
        }
        if (k >= 0)
                k = move_segments(p->directory, target, r.damage.log_id, &r.segments, &successor);
        if (k < 0)
                return k;

        /* The new log: its log.open names the old one and where its good part ends. */
        if (!successor) {
                lock_fd = safe_close(
                        lock_fd); /* the writer takes the lock itself; the marker holds mamorid off */
                k = json_new_object(&previous);
                if (k >= 0)
                        k = json_object_set_string(previous, "log", r.damage.log_id);
                if (k >= 0)
                        k = json_object_set_integer(previous, "seq", (int64_t)r.damage.good_seq);
                if (k >= 0)
                        k = json_object_set_string(previous, "hash", r.damage.good_hash);
                if (k >= 0)
                        k = json_object_set_string(previous, "reason", "quarantine");
                if (k >= 0)
                        k = oplog_open_successor(p, previous, &l);
                json_value_free(previous);
                if (k < 0)
                        return k;
                snprintf(r.new_log, sizeof(r.new_log), "%s", oplog_log_id(l));
                l = oplog_close(l);
        } else {
                char **names = NULL;
                size_t n = 0;
                k = log_segments_list(p->directory, &names, &n);
                if (k >= 0 && n > 0) {
                        _cleanup_free_ char *first = NULL;
                        if (asprintf(&first, "%s/%s", p->directory, names[0]) >= 0)
                                (void)segment_log_id(first, r.new_log);
                }
                log_segments_free(names, n);
        }

        free(info);
        info = NULL;
        memcpy(qi.new_log, r.new_log, sizeof(qi.new_log));
        k = quarantine_info_format(&qi, &info, &info_len);
        if (k < 0)
                return k;
        if (asprintf(&info_path, "%s/" QUARANTINE_INFO, target) < 0)
                return -ENOMEM;
        k = write_file_atomic(info_path, info, info_len, 0640);
        if (k < 0)
                return k;
        if (unlink(marker) < 0)
                return negative_errno();
        k = fsync_directory(p->directory);
        if (k < 0)
                return k;
        snprintf(r.path, sizeof(r.path), "%s", target);
        *ret = r;
        return 0;
}
