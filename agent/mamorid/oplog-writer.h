/* The operation-log writer of mamorid: segment files, group commit, key rotation, recovery, retention. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mamori/json.h"
#include "thread-mailbox.h"

#define OPLOG_SEGMENT_MAX_DEFAULT (8u * 1024u * 1024u)
#define OPLOG_LOCK_FILE           ".lock"
/* In the log directory while a quarantine moves the log aside: nothing is written there meanwhile. */
#define OPLOG_QUARANTINE_MARKER ".quarantine"

struct oplog_params {
        const char *directory;      /* [Log] Directory */
        const char *keys_directory; /* epoch keys, mode 0700; e.g. /var/lib/mamori/keys */
        const char *identity_key;   /* [Terminal] IdentityKey; created (0600) when missing */
        const char *terminal_id;    /* "term" of every record */
        uint32_t rotate_records;    /* [Log] KeyRotateRecords (0 = never by count) */
        uint64_t rotate_usec;       /* [Log] KeyRotateSec in µs (0 = never by time) */
        uint64_t segment_max_bytes; /* rotate the segment before it would grow past this (0 = default) */
        uint32_t retention_days;    /* [Log] LocalRetentionDays */
        const char *cursor_path;    /* uploader cursor (NULL = UPLOAD_CURSOR_PATH_DEFAULT) */
        const char *receipt_key;    /* [Collector] ReceiptKey (NULL = RECEIPT_KEY_PATH_DEFAULT) */
        bool async;                 /* start the log thread for oplog_submit() */
};

/* How the previous run ended, found while opening. */
enum oplog_previous {
        OPLOG_PREVIOUS_NONE,  /* a new log was created (log.open written) */
        OPLOG_PREVIOUS_CLEAN, /* last record was agent.stop */
        OPLOG_PREVIOUS_CRASH, /* anything else: killed, power cut, crash */
};

struct oplog_recovery {
        enum oplog_previous previous;
        uint64_t last_seq;         /* last good record before this run */
        uint64_t torn_bytes;       /* bytes of a torn last line that were dropped (0 = none) */
        unsigned dropped_segments; /* empty trailing segment files removed */
        int stale_keys_destroyed;  /* epoch key files left by an interrupted rotation */
        bool identity_created;
        char log_id[33];
        uint64_t checked_records;  /* records parsed and linked at start */
        uint64_t verified_records; /* of them, signatures checked (the last key epochs) */
};

struct oplog_damage; /* oplog-check.h */

typedef struct OpLog OpLog;

/*
 * Open (or create) the log: creates the directories, the identity key if missing, takes an
 * exclusive lock on the directory (-EBUSY if another writer holds it), checks the last records
 * (oplog_check(): every line of the last segment linked, the last key epochs verified), recovers
 * the tail (drops a torn write, removes empty trailing segments, destroys stray epoch keys) or
 * writes log.open. Errors: -EBADMSG the log is damaged, was written under another terminal id, or
 * a quarantine was interrupted: nothing was changed, and *reterr_damage (may be NULL) says where
 * and why; -ENOKEY the current epoch key is gone (the chain cannot be continued); -errno from the
 * file system. No record is written for the start: the caller writes agent.start with what
 * *ret_recovery says.
 */
int oplog_open_checked(const struct oplog_params *p, OpLog **ret, struct oplog_recovery *ret_recovery,
                       struct oplog_damage *reterr_damage);
int oplog_open(const struct oplog_params *p, OpLog **ret, struct oplog_recovery *ret_recovery);

/*
 * Start a new log in a directory that holds no segment (-EEXIST otherwise): log.open's data is
 * {"key":K,"previous":previous}, previous naming the log this one continues (a quarantine).
 */
int oplog_open_successor(const struct oplog_params *p, const JsonValue *previous, OpLog **ret);

/* Stops the log thread (completing what was submitted), closes the files. Completions not yet
 * dispatched are called from here (never-written jobs with -ECANCELED). NULL is fine. */
OpLog *oplog_close(OpLog *l);

/*
 * Append one record and return once it is durable (group commit: concurrent callers share one
 * fdatasync). Thread-safe. data (may be NULL = {}) is always taken. op, card may be NULL.
 * *ret_seq (may be NULL) is its seq. On failure nothing of it remains in the log: -ENOSPC,
 * -EIO, -EDQUOT … and the log is marked unwritable until an append succeeds again.
 */
int oplog_append(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                 uint64_t *ret_seq);

/*
 * Asynchronous append for an event loop: queues the record for the log thread (needs
 * params.async) and returns at once. done (may be NULL) is called from oplog_dispatch(), in the
 * caller's thread, with the seq or the error, only after the record is durable (or failed).
 */
typedef void (*oplog_done_fn)(int result, uint64_t seq, void *userdata);
int oplog_submit(OpLog *l, const char *ev, const char *op, const char *card, JsonValue *data,
                 oplog_done_fn done, void *userdata);
/* The mailbox the completions arrive in (owned by l): attach it to an event loop with
 * thread_mailbox_attach_event(), or poll oplog_event_fd() and call oplog_dispatch(). */
ThreadMailbox *oplog_completions(OpLog *l);
/* eventfd that is readable while completions wait; then call oplog_dispatch(). */
int oplog_event_fd(OpLog *l);
/* Runs the waiting completion callbacks; returns how many. */
int oplog_dispatch(OpLog *l);

/* Health: true while the last attempt to write succeeded. oplog_error() is the -errno that made it
 * unwritable (0 when writable). Sessions must not start while the log is unwritable. */
bool oplog_writable(OpLog *l);
int oplog_error(OpLog *l);

/* Write key.rotate now if KeyRotateRecords/KeyRotateSec is due (the log thread also does this). */
int oplog_rotate_if_due(OpLog *l);
/* Force a key rotation (tests, `mamorictl`-driven rotation). */
int oplog_rotate_key(OpLog *l);

/*
 * Delete closed segments whose every record is acknowledged by the collector AND whose last write is
 * older than LocalRetentionDays at now_usec (CLOCK_REALTIME). Acknowledged means: covered by the
 * receipt stored in the cursor file, which mamorid verifies itself (signed by ReceiptKey, for this
 * log, its line hash that of our own record, its key signing our next one); a cursor without such a
 * receipt deletes nothing. The current segment is never deleted. Returns how many were deleted.
 */
int oplog_prune(OpLog *l, uint64_t now_usec);

/* Last committed seq (for tests and status). */
uint64_t oplog_committed_seq(OpLog *l);
const char *oplog_log_id(OpLog *l);
