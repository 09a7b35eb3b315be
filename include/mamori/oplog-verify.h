/* Operation-log verifier (DESIGN.md §6) and segment-file reader, shared by mamorictl, mamorid and the
 * collector. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/oplog-record.h"

/*
 * Segment files: one per range of records, named LOG_SEGMENT_PREFIX + the seq of its first record
 * as 20 decimal digits + LOG_SEGMENT_SUFFIX ("seg-00000000000000000001.log"), so that name order
 * is seq order. Each holds whole lines, each ending with "\n". Other names in the directory are
 * ignored (temporary files, the writer's lock file).
 */
#define LOG_SEGMENT_PREFIX   "seg-"
#define LOG_SEGMENT_SUFFIX   ".log"
#define LOG_SEGMENT_NAME_MAX 32 /* "seg-" + 20 digits + ".log" + NUL = 29 */

/* "seg-%020llu.log" for first_seq into buf. */
void log_segment_name(uint64_t first_seq, char buf[LOG_SEGMENT_NAME_MAX]);
/* true and *ret_first_seq when name is a segment name (strict: 20 digits, seq >= 1). */
bool log_segment_name_parse(const char *name, uint64_t *ret_first_seq);

/*
 * Segment names in dir, sorted by first seq. *ret is a malloc'd array of malloc'd names, owned by
 * the caller (log_segments_free). At most LOG_SEGMENTS_MAX entries (-E2BIG beyond).
 */
#define LOG_SEGMENTS_MAX 1000000u
int log_segments_list(const char *dir, char ***ret, size_t *ret_n);
void log_segments_free(char **names, size_t n);

/*
 * Streams the complete lines of an open segment file to cb (line without its "\n", its byte offset
 * in the file). Bytes after the last "\n" are a torn tail: not passed to cb, their count goes to
 * *ret_tail (may be NULL). A line longer than RECORD_LINE_MAX is passed truncated to
 * RECORD_LINE_MAX + 1 bytes (so the parser refuses it). cb returning < 0 stops the read with that
 * value. Returns 0 or -errno.
 */
typedef int (*log_line_fn)(const char *line, size_t len, uint64_t offset, void *userdata);
int log_segment_read_fd(int fd, log_line_fn cb, void *userdata, uint64_t *ret_tail);

/*
 * Incremental chain verifier: feed it every line of one log, in order, from seq 1 — or from where a
 * saved state left off. It checks the strict record syntax, seq 1 = log.open signed by the identity
 * key, prev links and seq continuity, one log id throughout, every later signature against the
 * current epoch key, and key.rotate (signed by the current key) switching to its data.key. The
 * first failure sticks: later pushes return the same error. The verifier holds a reference on
 * identity.
 *
 * This is the only implementation of the DESIGN.md §6 chain rules: mamorictl log verify, the
 * collector's ingest and mamori-admin verify all go through it.
 */
typedef struct LogVerifier LogVerifier;

/* Which rule the first refused record broke. */
typedef enum LogVerifyError {
        LOG_VERIFY_OK = 0,
        LOG_VERIFY_MALFORMED, /* not a well-formed canonical record */
        LOG_VERIFY_LOG_ID,    /* another log id than the records before it */
        LOG_VERIFY_SEQ,       /* seq is not the last seq + 1 */
        LOG_VERIFY_PREV,      /* prev is not the hash of the last line */
        LOG_VERIFY_OPEN,      /* seq 1 is not log.open, or log.open after seq 1 */
        LOG_VERIFY_SIGNATURE, /* not signed by the identity key (seq 1) or the current epoch key */
        LOG_VERIFY_KEY,       /* data.key of log.open / key.rotate missing or not an Ed25519 key */
        LOG_VERIFY_ANCHOR,    /* a pruned log: the hash chain does not reach the receipt's line hash */
} LogVerifyError;

/*
 * A pruned log is verified from its first present record through a receipt (DESIGN.md §7) that the
 * caller has checked against the receipt key: records up to seq are held by their hash chain, which
 * must end at hash; from seq + 1 on, signatures start at key and follow the key.rotate records.
 */
typedef struct LogAnchor {
        char log[ID128_STRING_MAX]; /* the receipt's log id */
        uint64_t seq;
        char hash[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE];
} LogAnchor;

/*
 * Everything the verifier needs to go on after the last good record, so that a log can be verified
 * in pieces (the collector stores it per log and resumes with each batch): pushing lines 1..n into
 * one verifier, or 1..k, saving, restoring and pushing k+1..n, gives the same verdict and state.
 */
typedef struct LogVerifierState {
        uint8_t identity[ED25519_KEY_SIZE]; /* raw terminal identity key: signs log.open */
        char log[ID128_STRING_MAX];         /* log id; "" before seq 1 */
        char term[RECORD_ID_MAX + 1];       /* term of the log.open record; "" before seq 1 */
        uint64_t last_seq;                  /* seq of the last good record; 0 before any */
        char last_hash[SHA256_HEX_MAX];     /* its line hash; RECORD_PREV_FIRST before any */
        uint8_t key[ED25519_KEY_SIZE];      /* raw public key of the current epoch (epochs > 0) */
        uint32_t epochs;                    /* key epochs seen: log.open = 1, + 1 per key.rotate */
        LogAnchor anchor;                   /* a pruned log (log_verifier_new_anchored); seq 0 = none */
} LogVerifierState;

/* A verifier before seq 1. */
int log_verifier_new(EVP_PKEY *identity, LogVerifier **ret);
/*
 * A verifier for a pruned log whose first present record is first (seq > 1), through anchor (from a
 * receipt the caller has verified): records up to anchor->seq are checked for syntax, seq, log id
 * and prev links but not signatures, and the line hash of record anchor->seq must be anchor->hash;
 * later records are checked with anchor->key and the key.rotate records that follow. An anchor
 * below first->seq - 1 cannot be reached: the verifier starts broken (LOG_VERIFY_ANCHOR).
 */
int log_verifier_new_anchored(const LogAnchor *anchor, const Record *first, LogVerifier **ret);
/*
 * A verifier that goes on from a saved state. -EINVAL if the state is inconsistent (a key that is
 * not Ed25519, a malformed log id or hash, records without a key epoch, a log id before seq 1 …).
 */
int log_verifier_restore(const LogVerifierState *state, LogVerifier **ret);
/* The state after the last good record (also on a broken verifier: the refused record is not in it). */
int log_verifier_save(const LogVerifier *v, LogVerifierState *ret);
LogVerifier *log_verifier_free(LogVerifier *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(LogVerifier *, log_verifier_free);
#define _cleanup_log_verifier_ _cleanup_(log_verifier_freep)

/*
 * One line (a single trailing "\n" is allowed). 0 if it continues the chain; -EBADMSG with a
 * human-readable reason (log_verifier_reason) otherwise; -ENOMEM or -EIO when the check itself
 * could not run (not sticky). On success and if ret_record is not NULL, *ret_record borrows the
 * parsed record until the next push.
 */
int log_verifier_push(LogVerifier *v, const void *line, size_t len, const Record **ret_record);
/*
 * The same for a line the caller has already parsed: r must be what record_parse_line() made of
 * exactly line/len (the collector parses a whole batch first). r stays the caller's.
 */
int log_verifier_push_record(LogVerifier *v, const Record *r, const void *line, size_t len);
/*
 * Runs job(i, job_userdata) once for every i in [0, n), possibly on several threads at once, and
 * returns when all have run (the collector's verify pool; NULL where a LogParallel is optional: one
 * after the other, on the calling thread).
 */
typedef void (*log_job_fn)(size_t i, void *job_userdata);
typedef struct LogParallel {
        void (*run)(size_t n, log_job_fn job, void *job_userdata, void *userdata);
        void *userdata;
} LogParallel;

/* One line of a batch for log_verifier_push_batch(). */
typedef struct LogBatchLine {
        const Record *record; /* what record_parse_line() made of line/len; the caller's */
        const void *line;
        size_t len;
        const char *signed_bytes; /* NULL, or what record_parse_line_signed() gave with record */
        size_t signed_len;
        char hash[SHA256_HEX_MAX]; /* set: the line hash, for every record that continues the chain */
} LogBatchLine;

/*
 * n lines at once, with the verdict, reason and state that n log_verifier_push_record() calls would
 * give — but only the chain rules (seq, prev, log id, log.open, which epoch key signs which record)
 * run in order here; the signature checks, nearly all the cost, are spread over par (NULL: here).
 * 0 when all continue the chain; -EBADMSG for the first refused one (log_verifier_bad_seq(); the
 * records before it are in the state and have their hash); -ENOMEM/-EIO when a check could not run
 * (not sticky: the state is as before the call).
 */
int log_verifier_push_batch(LogVerifier *v, LogBatchLine *lines, size_t n, const LogParallel *par);
/* Why the chain broke ("" while intact); the string lives as long as v. */
const char *log_verifier_reason(const LogVerifier *v);
/* The rule the refused record broke (LOG_VERIFY_OK while intact). */
LogVerifyError log_verifier_error(const LogVerifier *v);
/* seq the refused record claims, or the expected seq when it could not be parsed; 0 while intact. */
uint64_t log_verifier_bad_seq(const LogVerifier *v);
/* seq of the last good record (0 before any), and its line hash (RECORD_PREV_FIRST before any). */
uint64_t log_verifier_last_seq(const LogVerifier *v);
const char *log_verifier_last_hash(const LogVerifier *v);
/* Log id (empty before seq 1), number of key epochs seen (log.open = 1). */
const char *log_verifier_log_id(const LogVerifier *v);
unsigned log_verifier_epochs(const LogVerifier *v);
/* Raw public key of the current epoch; -ENOENT before log.open. */
int log_verifier_current_key(const LogVerifier *v, uint8_t ret[ED25519_KEY_SIZE]);

/* Result of a whole-directory verification. */
struct log_verify_result {
        bool intact;
        uint64_t first_seq;  /* seq of the first present record (> 1: a pruned log) */
        uint64_t anchor_seq; /* > 0: verified from first_seq through the anchor (receipt) of this seq */
        uint64_t records;    /* good records */
        uint64_t segments;   /* segment files read */
        uint64_t bad_seq;    /* seq the broken record claims, or the expected seq; 0 unknown */
        char bad_file[LOG_SEGMENT_NAME_MAX];
        uint64_t bad_line; /* 1-based line in bad_file; 0 = not a line (missing file, tail…) */
        char reason[256];
};

/*
 * Verify every segment in dir in order with identity (public or private Ed25519 key). each, if
 * not NULL, is called for every good record with its line (for export). Returns 0 when the log
 * could be read (then result->intact says whether it verifies), -errno when dir cannot be read.
 * An empty directory is not intact ("no records").
 */
typedef int (*log_record_fn)(const Record *r, const char *line, size_t len, void *userdata);
int log_verify_directory(const char *dir, EVP_PKEY *identity, log_record_fn each, void *userdata,
                         struct log_verify_result *ret);
/* The same for a log that may be pruned: when its first present record is not seq 1, it is verified
 * from there through anchor (NULL: a pruned log is broken, "verify it with its receipt"). */
int log_verify_directory_anchored(const char *dir, EVP_PKEY *identity, const LogAnchor *anchor,
                                  log_record_fn each, void *userdata, struct log_verify_result *ret);

/*
 * The line of record seq in dir (without its "\n", malloc'd and NUL-terminated), found through the
 * segment names and read up to it; it is checked to parse as a record of that seq, nothing more.
 * -ENOENT when no segment holds seq (pruned, or beyond the log), -EBADMSG when the line there is not
 * record seq (a gap or junk), -errno from the file system.
 */
int log_read_line(const char *dir, uint64_t seq, char **ret, size_t *ret_len);
