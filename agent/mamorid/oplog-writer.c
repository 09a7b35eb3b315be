/* Operation-log writer: signed hash-chained records in segment files, group commit, key rotation, recovery.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/oplog-verify.h"
#include "mamori/oplog-record.h"
#include "mamori/upload-cursor.h"
#include "oplog-check.h"
#include "oplog-keys.h"
#include "oplog-writer.h"
#include "thread-mailbox.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_DAY (UINT64_C(86400) * USEC_PER_SEC)
/* Completions waiting for the caller's loop; the log thread waits when it is this far ahead. */
#define COMPLETIONS_MAX 1024

/* A blocking appender (or the log thread) waiting for the commit that covers its ticket. */
struct waiter {
        uint64_t ticket;
        int result;
        bool done;
        struct waiter *next;
};

/* One oplog_submit() request. */
struct job {
        char *ev, *op, *card;
        JsonValue *data;
        oplog_done_fn done;
        void *userdata;
        int result;
        uint64_t seq;
        struct job *next;
};

struct OpLog {
        pthread_mutex_t lock; /* everything below up to the queue */
        pthread_cond_t cond;  /* commit finished, sync slot free */

        char *dir, *keys_dir, *term, *cursor_path, *receipt_key;
        uint32_t rotate_records;
        uint64_t rotate_usec, seg_max;
        uint32_t retention_days;

        int lock_fd, seg_fd;
        uint64_t seg_first, seg_size; /* seg_size: bytes written, committed or not */
        bool need_truncate;           /* a failed write left bytes past seg_size */
        char log_id[ID128_STRING_MAX], boot[ID128_STRING_MAX];

        EVP_PKEY *key; /* current epoch key */
        uint8_t key_pub[ED25519_KEY_SIZE];
        EVP_PKEY *pending_old_key; /* previous epoch key until its key.rotate is committed */
        uint8_t pending_old_pub[ED25519_KEY_SIZE];
        uint64_t pending_rotate_ticket;

        /* Written state (may be ahead of the disk) and the committed state it rolls back to. */
        uint64_t seq, ticket;
        char hash[SHA256_HEX_MAX];
        uint32_t since_rotate;
        int64_t rotate_ts;
        uint64_t c_seq, c_ticket, c_size;
        char c_hash[SHA256_HEX_MAX];
        uint32_t c_since_rotate;
        int64_t c_rotate_ts;

        struct waiter *waiters;
        bool syncing;
        int error; /* 0 writable, else why not */

        /* Log thread and its queue of submitted jobs (qlock). */
        bool async, thread_started, stopping;
        pthread_t thread;
        pthread_mutex_t qlock;
        pthread_cond_t qcond;
        struct job *q_head, *q_tail;
        /* Finished jobs (struct job *) to the caller's thread. */
        ThreadMailbox *completions;
        /* Finished while closing (the mailbox refused them): log thread only, then the closer. */
        struct job *undelivered;
};

static int64_t now_usec(clockid_t clock)
{
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int read_boot_id(char ret[ID128_STRING_MAX])
{
        _cleanup_free_ char *s = NULL;
        size_t n, j = 0;
        int k;

        k = read_file_bounded("/proc/sys/kernel/random/boot_id", 64, &s, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && j < 32; i++)
                if ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))
                        ret[j++] = s[i];
        ret[j] = '\0';
        return j == 32 ? 0 : -EBADMSG;
}

static void job_free(struct job *j)
{
        if (!j)
                return;
        free(j->ev);
        free(j->op);
        free(j->card);
        json_value_free(j->data);
        free(j);
}

/* ---- commit bookkeeping (l->lock held) ---- */

static void mark_committed_locked(OpLog *l, uint64_t ticket, uint64_t seq, uint64_t size, const char *hash,
                                  uint32_t since_rotate, int64_t rotate_ts)
{
        l->c_ticket = ticket;
        l->c_seq = seq;
        l->c_size = size;
        memcpy(l->c_hash, hash, SHA256_HEX_MAX);
        l->c_since_rotate = since_rotate;
        l->c_rotate_ts = rotate_ts;
        l->error = 0;
        for (struct waiter *w = l->waiters; w; w = w->next)
                if (!w->done && w->ticket <= ticket) {
                        w->done = true;
                        w->result = 0;
                }
        /* The key.rotate that replaced the old epoch key is durable: now the old key may die. */
        if (l->pending_old_key && l->pending_rotate_ticket <= ticket) {
                (void)oplog_epoch_key_destroy(l->keys_dir, l->pending_old_pub);
                EVP_PKEY_free(l->pending_old_key); /* OpenSSL wipes the private key */
                l->pending_old_key = NULL;
        }
        pthread_cond_broadcast(&l->cond);
}

/* Drop everything written after the last commit (its callers get error). */
static void rollback_locked(OpLog *l, int error)
{
        if (ftruncate(l->seg_fd, (off_t)l->c_size) < 0)
                l->need_truncate = true;
        l->seg_size = l->c_size;
        l->seq = l->c_seq;
        memcpy(l->hash, l->c_hash, SHA256_HEX_MAX);
        l->since_rotate = l->c_since_rotate;
        l->rotate_ts = l->c_rotate_ts;
        l->error = error;
        for (struct waiter *w = l->waiters; w; w = w->next)
                if (!w->done && w->ticket > l->c_ticket) {
                        w->done = true;
                        w->result = error;
                }
        if (l->pending_old_key && l->pending_rotate_ticket > l->c_ticket) {
                /* The rotation never became durable: keep signing with the old key. */
                (void)oplog_epoch_key_destroy(l->keys_dir, l->key_pub);
                EVP_PKEY_free(l->key);
                l->key = l->pending_old_key;
                memcpy(l->key_pub, l->pending_old_pub, ED25519_KEY_SIZE);
                l->pending_old_key = NULL;
        }
        pthread_cond_broadcast(&l->cond);
}

/* Sync everything written so far while holding the lock (segment switch, shutdown). */
static int sync_now_locked(OpLog *l)
{
        while (l->syncing)
                pthread_cond_wait(&l->cond, &l->lock);
        if (l->c_ticket == l->ticket && l->c_size == l->seg_size)
                return 0;
        if (fdatasync(l->seg_fd) < 0) {
                int k = negative_errno();
                rollback_locked(l, k);
                return k;
        }
        mark_committed_locked(l, l->ticket, l->seq, l->seg_size, l->hash, l->since_rotate, l->rotate_ts);
        return 0;
}

/* Group commit: the first waiter without a sync in flight becomes the leader; its one fdatasync
 * covers every record written before it started. */
static int wait_commit_locked(OpLog *l, struct waiter *w)
{
        w->next = l->waiters;
        l->waiters = w;
        while (!w->done) {
                if (!l->syncing) {
                        uint64_t ticket = l->ticket, seq = l->seq, size = l->seg_size;
                        uint32_t since = l->since_rotate;
                        int64_t rts = l->rotate_ts;
                        char hash[SHA256_HEX_MAX];
                        int fd = l->seg_fd, r;

                        memcpy(hash, l->hash, sizeof(hash));
                        l->syncing = true;
                        pthread_mutex_unlock(&l->lock);
                        r = fdatasync(fd) < 0 ? negative_errno() : 0;
                        pthread_mutex_lock(&l->lock);
                        l->syncing = false;
                        if (r < 0)
                                rollback_locked(l, r);
                        else
                                mark_committed_locked(l, ticket, seq, size, hash, since, rts);
                } else
                        pthread_cond_wait(&l->cond, &l->lock);
        }
        for (struct waiter **p = &l->waiters; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        return w->result;
}

/* ---- segments ---- */

static int segment_create_locked(OpLog *l, uint64_t first_seq, int *ret_fd)
{
        char name[LOG_SEGMENT_NAME_MAX];
        _cleanup_free_ char *path = NULL;
        int fd, k;

        log_segment_name(first_seq, name);
        if (asprintf(&path, "%s/%s", l->dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
                return negative_errno();
        /* The new name must be durable before any record in it counts as committed. */
        k = fsync_directory(l->dir);
        if (k < 0) {
                safe_close(fd);
                (void)unlink(path);
                return k;
        }
        *ret_fd = fd;
        return 0;
}

static int segment_switch_locked(OpLog *l)
{
        int fd, k;

        k = sync_now_locked(l);
        if (k < 0)
                return k;
        k = segment_create_locked(l, l->seq + 1, &fd);
        if (k < 0)
                return k;
        safe_close(l->seg_fd);
        l->seg_fd = fd;
        l->seg_first = l->seq + 1;
        l->seg_size = l->c_size = 0;
        return 0;
}

/* ---- writing ---- */

/* The signed line ("\n"-terminated) for the next seq. data is borrowed (NULL = {}). */
static int build_line(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                      EVP_PKEY *signer, char **ret, size_t *ret_len)
{
        _cleanup_record_ Record *r = NULL;
        _cleanup_free_ char *line = NULL;
        JsonValue *empty;
        size_t len;
        int k;

        k = record_new(&r);
        if (k < 0)
                return k;
        empty = r->data;
        if (data)
                r->data = data;
        memcpy(r->log, l->log_id, sizeof(r->log));
        memcpy(r->boot, l->boot, sizeof(r->boot));
        memcpy(r->prev, l->hash, sizeof(r->prev));
        r->seq = l->seq + 1;
        r->ts = now_usec(CLOCK_REALTIME);
        r->mono = now_usec(CLOCK_BOOTTIME);
        r->term = strdup(l->term);
        r->ev = strdup(ev);
        if (!r->term || !r->ev || (op && !(r->op = strdup(op))) || (card && !(r->card = strdup(card))))
                k = -ENOMEM;
        else if (record_validate(r) < 0)
                k = -EINVAL;
        else
                k = record_sign(r, signer, &line, &len);
        r->data = empty; /* give the caller's data back */
        if (k < 0)
                return k;
        /* record_sign's buffer is NUL-terminated: its last byte becomes the "\n". */
        line[len] = '\n';
        *ret = TAKE_PTR(line);
        *ret_len = len + 1;
        return 0;
}

/*
 * Sign and write one record for the next seq. If the segment is full it is synced and replaced
 * first; that may wait for a sync in flight (dropping the lock), so the line is built again
 * afterwards. signer NULL = the current epoch key; with expect_key set, -EAGAIN when the current
 * key changed while the lock was dropped (a concurrent rotation).
 */
static int write_record_locked(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                               EVP_PKEY *signer, EVP_PKEY *expect_key)
{
        _cleanup_free_ char *line = NULL;
        size_t len;
        int k;

        if (l->need_truncate) {
                if (ftruncate(l->seg_fd, (off_t)l->seg_size) < 0)
                        return l->error = negative_errno();
                l->need_truncate = false;
        }
        for (;;) {
                if (expect_key && l->key != expect_key)
                        return -EAGAIN;
                k = build_line(l, ev, op, card, data, signer ? signer : l->key, &line, &len);
                if (k < 0)
                        return k;
                if (l->seg_size == 0 || l->seg_size + len <= l->seg_max)
                        break;
                free(line);
                line = NULL;
                k = segment_switch_locked(l);
                if (k < 0)
                        return l->error = k;
        }
        k = oplog_write_full(l->seg_fd, line, len);
        if (k < 0) {
                /* Never leave half a record behind. */
                if (ftruncate(l->seg_fd, (off_t)l->seg_size) < 0)
                        l->need_truncate = true;
                return l->error = k;
        }
        l->seg_size += len;
        l->seq++;
        l->ticket++;
        return record_line_hash(line, len, l->hash);
}

static bool rotation_due_locked(OpLog *l)
{
        if (l->pending_old_key)
                return false; /* the previous rotation is not durable yet */
        if (l->rotate_records > 0 && l->since_rotate >= l->rotate_records)
                return true;
        if (l->rotate_usec > 0 && now_usec(CLOCK_REALTIME) - l->rotate_ts >= (int64_t)l->rotate_usec)
                return true;
        return false;
}

/* Write key.rotate (signed by the current key) and switch to the next key; the old one is
 * destroyed by mark_committed_locked() once this record is durable. */
static int key_rotate_locked(OpLog *l)
{
        _cleanup_pkey_ EVP_PKEY *next = NULL;
        _cleanup_free_ char *b64 = NULL;
        _cleanup_json_ JsonValue *data = NULL;
        uint8_t pub[ED25519_KEY_SIZE];
        int k;

        if (l->pending_old_key)
                return -EBUSY;
        k = ed25519_generate(&next);
        if (k >= 0)
                k = ed25519_public_to_raw(next, pub);
        if (k >= 0)
                k = base64_encode(pub, sizeof(pub), &b64);
        if (k >= 0)
                k = json_new_object(&data);
        if (k >= 0)
                k = json_object_set_string(data, "key", b64);
        if (k < 0)
                return k;
        /* The next key is on disk before any record names it, so a crash never strands the chain. */
        k = oplog_epoch_key_store(l->keys_dir, next);
        if (k < 0)
                return l->error = k;
        k = write_record_locked(l, "key.rotate", NULL, NULL, data, NULL, l->key);
        if (k < 0) {
                (void)oplog_epoch_key_destroy(l->keys_dir, pub);
                return k == -EAGAIN ? 0 : k; /* -EAGAIN: another thread rotated meanwhile */
        }
        l->pending_old_key = l->key;
        memcpy(l->pending_old_pub, l->key_pub, ED25519_KEY_SIZE);
        l->pending_rotate_ticket = l->ticket;
        l->key = TAKE_PTR(next);
        memcpy(l->key_pub, pub, sizeof(pub));
        l->since_rotate = 0;
        l->rotate_ts = now_usec(CLOCK_REALTIME);
        return 0;
}

static int append_locked(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                         uint64_t *ret_ticket, uint64_t *ret_seq)
{
        _cleanup_json_ JsonValue *owned = data;
        int k;

        if (!ev || !record_event_known(ev))
                return -EINVAL;
        if (rotation_due_locked(l)) {
                k = key_rotate_locked(l);
                if (k < 0)
                        return k;
        }
        k = write_record_locked(l, ev, op, card, data, NULL, NULL);
        if (k < 0)
                return k;
        l->since_rotate++;
        *ret_ticket = l->ticket;
        *ret_seq = l->seq;
        return 0;
}

int oplog_append(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                 uint64_t *ret_seq)
{
        struct waiter w = {0};
        uint64_t seq;
        int k;

        if (!l) {
                json_value_free(data);
                return -EINVAL;
        }
        pthread_mutex_lock(&l->lock);
        k = append_locked(l, ev, op, card, data, &w.ticket, &seq);
        if (k >= 0)
                k = wait_commit_locked(l, &w);
        pthread_mutex_unlock(&l->lock);
        if (k < 0)
                return k;
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

int oplog_rotate_key(OpLog *l)
{
        struct waiter w = {0};
        int k;

        if (!l)
                return -EINVAL;
        pthread_mutex_lock(&l->lock);
        k = key_rotate_locked(l);
        if (k >= 0) {
                w.ticket = l->ticket;
                k = wait_commit_locked(l, &w);
        }
        pthread_mutex_unlock(&l->lock);
        return k;
}

int oplog_rotate_if_due(OpLog *l)
{
        bool due;

        if (!l)
                return -EINVAL;
        pthread_mutex_lock(&l->lock);
        due = rotation_due_locked(l);
        pthread_mutex_unlock(&l->lock);
        return due ? oplog_rotate_key(l) : 0;
}

bool oplog_writable(OpLog *l)
{
        bool ok;
        pthread_mutex_lock(&l->lock);
        ok = l->error == 0;
        pthread_mutex_unlock(&l->lock);
        return ok;
}

int oplog_error(OpLog *l)
{
        int e;
        pthread_mutex_lock(&l->lock);
        e = l->error;
        pthread_mutex_unlock(&l->lock);
        return e;
}

uint64_t oplog_committed_seq(OpLog *l)
{
        uint64_t s;
        pthread_mutex_lock(&l->lock);
        s = l->c_seq;
        pthread_mutex_unlock(&l->lock);
        return s;
}

const char *oplog_log_id(OpLog *l)
{
        return l->log_id;
}

/* ---- the log thread (async appends) ---- */

static void *log_thread(void *userdata)
{
        OpLog *l = userdata;
        struct job **undelivered_tail = &l->undelivered;

        pthread_mutex_lock(&l->qlock);
        for (;;) {
                struct job *batch, *j;
                struct waiter w = {0};
                bool any = false;

                while (!l->q_head && !l->stopping) {
                        if (l->rotate_usec > 0) {
                                int64_t due;
                                struct timespec ts;
                                pthread_mutex_lock(&l->lock);
                                due = l->rotate_ts + (int64_t)l->rotate_usec;
                                pthread_mutex_unlock(&l->lock);
                                /* At most one attempt a second, even when a rotation keeps failing. */
                                if (due < now_usec(CLOCK_REALTIME) + (int64_t)USEC_PER_SEC)
                                        due = now_usec(CLOCK_REALTIME) + (int64_t)USEC_PER_SEC;
                                ts.tv_sec = due / 1000000;
                                ts.tv_nsec = (due % 1000000) * 1000;
                                if (pthread_cond_timedwait(&l->qcond, &l->qlock, &ts) == ETIMEDOUT) {
                                        pthread_mutex_unlock(&l->qlock);
                                        (void)oplog_rotate_if_due(l);
                                        (void)oplog_prune(l, (uint64_t)now_usec(CLOCK_REALTIME));
                                        pthread_mutex_lock(&l->qlock);
                                }
                        } else
                                pthread_cond_wait(&l->qcond, &l->qlock);
                }
                if (!l->q_head)
                        break; /* stopping and drained */
                batch = l->q_head;
                l->q_head = l->q_tail = NULL;
                pthread_mutex_unlock(&l->qlock);

                /* Write the whole batch, then one commit for all of it. */
                pthread_mutex_lock(&l->lock);
                for (j = batch; j; j = j->next) {
                        uint64_t ticket = 0; /* set by append_locked() on success; gcc -O3 cannot see that */
                        j->result =
                                append_locked(l, j->ev, j->op, j->card, TAKE_PTR(j->data), &ticket, &j->seq);
                        if (j->result >= 0) {
                                w.ticket = ticket;
                                any = true;
                        }
                }
                if (any) {
                        int k = wait_commit_locked(l, &w);
                        for (j = batch; j; j = j->next)
                                if (j->result >= 0 && k < 0)
                                        j->result = k;
                }
                pthread_mutex_unlock(&l->lock);

                /* Waits while the caller is COMPLETIONS_MAX behind. Once oplog_close() has shut the
                 * mailbox, what is still submitted is written all the same and left for it. */
                for (j = batch; j; j = batch) {
                        batch = j->next;
                        j->next = NULL;
                        if (thread_mailbox_post(l->completions, &j) < 0) {
                                *undelivered_tail = j;
                                undelivered_tail = &j->next;
                        }
                }
                pthread_mutex_lock(&l->qlock);
        }
        pthread_mutex_unlock(&l->qlock);
        return NULL;
}

int oplog_submit(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                 oplog_done_fn done, void *userdata)
{
        struct job *j;

        if (!l || !ev || !l->thread_started) {
                json_value_free(data);
                return -EINVAL;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                json_value_free(data);
                return -ENOMEM;
        }
        j->data = data;
        j->done = done;
        j->userdata = userdata;
        j->ev = strdup(ev);
        j->op = op ? strdup(op) : NULL;
        j->card = card ? strdup(card) : NULL;
        if (!j->ev || (op && !j->op) || (card && !j->card)) {
                job_free(j);
                return -ENOMEM;
        }
        pthread_mutex_lock(&l->qlock);
        if (l->q_tail)
                l->q_tail->next = j;
        else
                l->q_head = j;
        l->q_tail = j;
        pthread_cond_signal(&l->qcond);
        pthread_mutex_unlock(&l->qlock);
        return 0;
}

/* Runs on the thread that dispatches the mailbox; item is a struct job *. */
static void complete_job(void *item, void *userdata)
{
        struct job *j = *(struct job **)item;
        if (j->done)
                j->done(j->result, j->seq, j->userdata);
        job_free(j);
}

ThreadMailbox *oplog_completions(OpLog *l)
{
        return l ? l->completions : NULL;
}

int oplog_event_fd(OpLog *l)
{
        return l ? thread_mailbox_fd(l->completions) : -EBADF;
}

int oplog_dispatch(OpLog *l)
{
        if (!l)
                return -EINVAL;
        return l->completions ? thread_mailbox_dispatch(l->completions, SIZE_MAX) : 0;
}

/* ---- retention ---- */

/* What the stored receipt proves to us, checked here and now: 0 when nothing (no cursor, no
 * receipt, another log, a receipt that does not hold against our own records). */
static uint64_t receipt_acked(OpLog *l)
{
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        UploadCursor c;

        if (receipt_key_load(l->receipt_key, &key) < 0)
                return 0;
        if (upload_cursor_load_verified(l->cursor_path, key, l->dir, l->log_id, &c, NULL) < 0)
                return 0;
        /* Only once record acked + 1 is there has the receipt's key been checked against it: what a
         * pruned log is verified with later. Until then, nothing goes. */
        if (c.acked > 0) {
                _cleanup_free_ char *next = NULL;
                if (log_read_line(l->dir, c.acked + 1, &next, NULL) < 0)
                        return 0;
        }
        return c.acked;
}

int oplog_prune(OpLog *l, uint64_t now)
{
        char **names = NULL;
        size_t n = 0;
        uint64_t acked = 0, cutoff;
        int k, deleted = 0;

        if (!l)
                return -EINVAL;
        acked = receipt_acked(l);
        if (acked == 0)
                return 0;
        cutoff = (uint64_t)l->retention_days * USEC_PER_DAY;
        k = log_segments_list(l->dir, &names, &n);
        if (k < 0)
                return k;
        pthread_mutex_lock(&l->lock);
        /* Only a prefix: the local log stays one contiguous range. */
        for (size_t i = 0; i + 1 < n; i++) {
                _cleanup_free_ char *path = NULL;
                uint64_t first, next_first;
                struct stat st;

                (void)log_segment_name_parse(names[i], &first);
                (void)log_segment_name_parse(names[i + 1], &next_first);
                if (first == l->seg_first || next_first - 1 > acked)
                        break;
                if (asprintf(&path, "%s/%s", l->dir, names[i]) < 0)
                        break;
                if (stat(path, &st) < 0)
                        break;
                if ((uint64_t)st.st_mtim.tv_sec * USEC_PER_SEC + cutoff > now)
                        break;
                if (unlink(path) < 0)
                        break;
                deleted++;
        }
        pthread_mutex_unlock(&l->lock);
        log_segments_free(names, n);
        if (deleted > 0)
                (void)fsync_directory(l->dir);
        return deleted;
}

/* ---- open / recovery ---- */

/* previous (may be NULL) is what log.open says about the log this one continues (a quarantine). */
static int new_log_locked(OpLog *l, EVP_PKEY *identity, const JsonValue *previous)
{
        _cleanup_free_ char *b64 = NULL;
        JsonValue *data = NULL, *copy = NULL;
        struct waiter w = {0};
        uint8_t id[16];
        int k;

        if (RAND_bytes(id, sizeof(id)) != 1)
                return -EIO;
        id128_to_string(id, l->log_id);
        memcpy(l->hash, RECORD_PREV_FIRST, sizeof(l->hash));
        memcpy(l->c_hash, RECORD_PREV_FIRST, sizeof(l->c_hash));
        k = ed25519_generate(&l->key);
        if (k < 0)
                return k;
        k = ed25519_public_to_raw(l->key, l->key_pub);
        if (k < 0)
                return k;
        k = oplog_epoch_key_destroy_others(l->keys_dir, NULL);
        if (k < 0)
                return k;
        k = oplog_epoch_key_store(l->keys_dir, l->key);
        if (k < 0)
                return k;
        k = segment_create_locked(l, 1, &l->seg_fd);
        if (k < 0)
                return k;
        l->seg_first = 1;
        k = base64_encode(l->key_pub, sizeof(l->key_pub), &b64);
        if (k >= 0)
                k = json_new_object(&data);
        if (k >= 0)
                k = json_object_set_string(data, "key", b64);
        if (k >= 0 && previous) {
                k = json_value_copy(previous, &copy);
                if (k >= 0)
                        k = json_object_set(data, "previous", copy); /* takes copy, also on failure */
        }
        if (k < 0) {
                json_value_free(data);
                return k;
        }
        /* seq 1: the epoch-0 public key, vouched for by the terminal identity key. */
        k = write_record_locked(l, "log.open", NULL, NULL, data, identity, NULL);
        json_value_free(data);
        if (k < 0)
                return k;
        l->rotate_ts = now_usec(CLOCK_REALTIME);
        l->since_rotate = 0;
        w.ticket = l->ticket;
        return wait_commit_locked(l, &w);
}

/* Removes the segments after the last one holding records (all of them when last is NULL): they
 * hold at most a torn write. */
static int drop_empty_segments(OpLog *l, const char *last, struct oplog_recovery *rec)
{
        char **names = NULL;
        size_t n = 0;
        int k;

        k = log_segments_list(l->dir, &names, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && k >= 0; i++) {
                _cleanup_free_ char *path = NULL;
                if (last && strcmp(names[i], last) <= 0)
                        continue;
                if (asprintf(&path, "%s/%s", l->dir, names[i]) < 0)
                        k = -ENOMEM;
                else if (unlink(path) < 0)
                        k = negative_errno();
                else
                        rec->dropped_segments++;
        }
        log_segments_free(names, n);
        if (k >= 0)
                k = fsync_directory(l->dir);
        return k;
}

static int recover_locked(OpLog *l, EVP_PKEY *identity, struct oplog_recovery *rec,
                          struct oplog_damage *reterr_damage)
{
        _cleanup_free_ char *path = NULL, *marker = NULL;
        struct oplog_damage d;
        struct oplog_tail t;
        int k;

        /* A quarantine that was interrupted must be finished before anything is written here. */
        if (asprintf(&marker, "%s/" OPLOG_QUARANTINE_MARKER, l->dir) < 0)
                return -ENOMEM;
        if (access(marker, F_OK) == 0) {
                d = (struct oplog_damage){0};
                snprintf(d.reason, sizeof(d.reason), "a quarantine of this log was interrupted (%s exists)",
                         OPLOG_QUARANTINE_MARKER);
                memcpy(d.good_hash, RECORD_PREV_FIRST, SHA256_HEX_MAX);
                *reterr_damage = d;
                return -EBADMSG;
        }

        k = oplog_check(l->dir, l->keys_dir, identity, &t, &d);
        if (k == -EBADMSG) {
                *reterr_damage = d;
                return k;
        }
        if (k < 0)
                return k;
        k = drop_empty_segments(l, k == 1 ? NULL : t.segment, rec);
        if (k < 0)
                return k;
        if (t.segment[0] == '\0')
                return 1; /* nothing left: a new log */

        if (!streq(t.term, l->term)) {
                /* Never continue another terminal's chain (nor one begun before this one had an id). */
                d = (struct oplog_damage){.good_seq = t.last_seq};
                snprintf(d.file, sizeof(d.file), "%s", t.segment);
                snprintf(d.reason, sizeof(d.reason),
                         "the log was written as terminal \"%s\", this terminal is \"%s\"", t.term, l->term);
                memcpy(d.log_id, t.log_id, sizeof(d.log_id));
                snprintf(d.term, sizeof(d.term), "%s", t.term);
                memcpy(d.good_hash, t.last_hash, SHA256_HEX_MAX);
                *reterr_damage = d;
                return -EBADMSG;
        }

        if (asprintf(&path, "%s/%s", l->dir, t.segment) < 0)
                return -ENOMEM;
        l->seg_fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (l->seg_fd < 0)
                return negative_errno();
        if (t.torn_bytes > 0 && ftruncate(l->seg_fd, (off_t)t.good_size) < 0)
                return negative_errno();
        rec->torn_bytes = t.torn_bytes;
        rec->checked_records = t.scanned;
        rec->verified_records = t.verified;
        l->seg_first = t.segment_first;
        memcpy(l->log_id, t.log_id, sizeof(l->log_id));
        l->seq = t.last_seq;
        memcpy(l->hash, t.last_hash, sizeof(l->hash));
        l->seg_size = t.good_size;
        rec->last_seq = l->seq;
        rec->previous = t.clean ? OPLOG_PREVIOUS_CLEAN : OPLOG_PREVIOUS_CRASH;

        memcpy(l->key_pub, t.key, sizeof(t.key));
        if (t.key_from_chain) {
                l->rotate_ts = t.key_ts;
                l->since_rotate = t.since_key > UINT32_MAX ? UINT32_MAX : (uint32_t)t.since_key;
        } else {
                /* The records naming the key were pruned: rotate away from it at the first append. */
                l->rotate_ts = 0;
                l->since_rotate = l->rotate_records;
        }
        k = oplog_epoch_key_load(l->keys_dir, l->key_pub, &l->key);
        if (k < 0)
                return k == -ENOENT ? -ENOKEY : k;
        k = oplog_epoch_key_destroy_others(l->keys_dir, l->key_pub);
        if (k < 0)
                return k;
        rec->stale_keys_destroyed = k;

        /* What the previous run wrote but may not have synced is the base of the chain now. */
        if (fdatasync(l->seg_fd) < 0)
                return negative_errno();
        mark_committed_locked(l, l->ticket, l->seq, l->seg_size, l->hash, l->since_rotate, l->rotate_ts);
        return 0;
}

/* The writer for p's directory, locked, with the identity key: everything but the log itself. */
static int open_dir(const struct oplog_params *p, OpLog **ret, EVP_PKEY **ret_identity, bool *ret_created)
{
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        _cleanup_free_ char *lock_path = NULL;
        OpLog *l;
        int k;

        if (!p || !p->directory || !p->keys_directory || !p->identity_key || !p->terminal_id || !ret)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);
        pthread_mutex_init(&l->qlock, NULL);
        pthread_cond_init(&l->qcond, NULL);
        l->lock_fd = l->seg_fd = -EBADF;
        l->dir = strdup(p->directory);
        l->keys_dir = strdup(p->keys_directory);
        l->term = strdup(p->terminal_id);
        l->cursor_path = strdup(p->cursor_path ? p->cursor_path : UPLOAD_CURSOR_PATH_DEFAULT);
        l->receipt_key = strdup(p->receipt_key ? p->receipt_key : RECEIPT_KEY_PATH_DEFAULT);
        l->rotate_records = p->rotate_records;
        l->rotate_usec = p->rotate_usec;
        l->seg_max = p->segment_max_bytes ? p->segment_max_bytes : OPLOG_SEGMENT_MAX_DEFAULT;
        l->retention_days = p->retention_days;
        if (!l->dir || !l->keys_dir || !l->term || !l->cursor_path || !l->receipt_key) {
                k = -ENOMEM;
                goto fail;
        }

        k = oplog_mkdir_p(l->dir, 0750);
        if (k >= 0)
                k = oplog_mkdir_p(l->keys_dir, 0700);
        if (k < 0)
                goto fail;
        k = oplog_identity_load_or_create(p->identity_key, &identity, ret_created);
        if (k < 0)
                goto fail;
        k = read_boot_id(l->boot);
        if (k < 0)
                goto fail;

        if (asprintf(&lock_path, "%s/" OPLOG_LOCK_FILE, l->dir) < 0) {
                k = -ENOMEM;
                goto fail;
        }
        l->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (l->lock_fd < 0) {
                k = negative_errno();
                goto fail;
        }
        if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                k = errno == EWOULDBLOCK ? -EBUSY : negative_errno();
                goto fail;
        }
        *ret = l;
        *ret_identity = TAKE_PTR(identity);
        return 0;
fail:
        oplog_close(l);
        return k;
}

/* The log thread and the first pruning, once the log is there. */
static int open_finish(const struct oplog_params *p, OpLog *l)
{
        int k;

        if (p->async) {
                k = thread_mailbox_new(sizeof(struct job *), COMPLETIONS_MAX, complete_job, NULL, NULL,
                                       &l->completions);
                if (k < 0)
                        return k;
                k = -pthread_create(&l->thread, NULL, log_thread, l);
                if (k < 0)
                        return k;
                l->thread_started = true;
        }
        (void)oplog_prune(l, (uint64_t)now_usec(CLOCK_REALTIME));
        return 0;
}

int oplog_open_checked(const struct oplog_params *p, OpLog **ret, struct oplog_recovery *ret_recovery,
                       struct oplog_damage *reterr_damage)
{
        struct oplog_recovery rec = {0};
        struct oplog_damage d;
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        OpLog *l = NULL;
        int k;

        k = open_dir(p, &l, &identity, &rec.identity_created);
        if (k < 0)
                return k;
        pthread_mutex_lock(&l->lock);
        k = recover_locked(l, identity, &rec, &d);
        if (k == 1) {
                rec.previous = OPLOG_PREVIOUS_NONE;
                k = new_log_locked(l, identity, NULL);
        }
        pthread_mutex_unlock(&l->lock);
        if (k == -EBADMSG && reterr_damage)
                *reterr_damage = d;
        if (k >= 0)
                k = open_finish(p, l);
        if (k < 0) {
                oplog_close(l);
                return k;
        }
        memcpy(rec.log_id, l->log_id, sizeof(rec.log_id));
        *ret = l;
        if (ret_recovery)
                *ret_recovery = rec;
        return 0;
}

int oplog_open(const struct oplog_params *p, OpLog **ret, struct oplog_recovery *ret_recovery)
{
        return oplog_open_checked(p, ret, ret_recovery, NULL);
}

int oplog_open_successor(const struct oplog_params *p, const JsonValue *previous, OpLog **ret)
{
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        char **names = NULL;
        size_t n = 0;
        OpLog *l = NULL;
        bool created;
        int k;

        if (!previous || previous->type != JSON_OBJECT)
                return -EINVAL;
        k = open_dir(p, &l, &identity, &created);
        if (k < 0)
                return k;
        k = log_segments_list(l->dir, &names, &n);
        log_segments_free(names, n);
        if (k >= 0 && n > 0)
                k = -EEXIST;
        if (k >= 0) {
                pthread_mutex_lock(&l->lock);
                k = new_log_locked(l, identity, previous);
                pthread_mutex_unlock(&l->lock);
        }
        if (k >= 0)
                k = open_finish(p, l);
        if (k < 0) {
                oplog_close(l);
                return k;
        }
        *ret = l;
        return 0;
}

OpLog *oplog_close(OpLog *l)
{
        if (!l)
                return NULL;
        if (l->thread_started) {
                pthread_mutex_lock(&l->qlock);
                l->stopping = true;
                pthread_cond_signal(&l->qcond);
                pthread_mutex_unlock(&l->qlock);
                /* The thread may be waiting for room in the mailbox, which only we would make. */
                thread_mailbox_shutdown(l->completions);
                pthread_join(l->thread, NULL);
        }
        if (l->seg_fd >= 0) {
                pthread_mutex_lock(&l->lock);
                (void)sync_now_locked(l);
                if (l->seg_size == 0 && l->seg_first > 1) {
                        /* A segment that never got a record would only confuse readers. */
                        char name[LOG_SEGMENT_NAME_MAX];
                        _cleanup_free_ char *path = NULL;
                        log_segment_name(l->seg_first, name);
                        if (asprintf(&path, "%s/%s", l->dir, name) >= 0 && unlink(path) >= 0)
                                (void)fsync_directory(l->dir);
                }
                pthread_mutex_unlock(&l->lock);
        }
        /* Every submitter hears back, so nobody's completion state leaks: finished jobs with
         * their result (in order: the mailbox's, then those it refused while closing), jobs the
         * thread never took with -ECANCELED. */
        (void)thread_mailbox_dispatch(l->completions, SIZE_MAX);
        l->completions = thread_mailbox_free(l->completions);
        for (struct job *j = l->undelivered, *next; j; j = next) {
                next = j->next;
                complete_job(&j, NULL);
        }
        for (struct job *j = l->q_head, *next; j; j = next) {
                next = j->next;
                if (j->done)
                        j->done(-ECANCELED, 0, j->userdata);
                job_free(j);
        }
        safe_close(l->seg_fd);
        safe_close(l->lock_fd);
        EVP_PKEY_free(l->key);
        EVP_PKEY_free(l->pending_old_key);
        free(l->dir);
        free(l->keys_dir);
        free(l->term);
        free(l->cursor_path);
        free(l->receipt_key);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->qlock);
        pthread_cond_destroy(&l->qcond);
        free(l);
        return NULL;
}
