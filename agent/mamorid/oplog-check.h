/* The start-time check of an operation log's last records: where it ends, what is torn, what is damaged. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/oplog-verify.h"

/* What the check found wrong, for the administrator and for a quarantine. */
struct oplog_damage {
        char file[LOG_SEGMENT_NAME_MAX]; /* segment file name */
        uint64_t line;                   /* 1-based line in file (0: not one line) */
        char reason[256];
        char log_id[ID128_STRING_MAX];  /* the damaged log ("" if not even one record parses) */
        char term[RECORD_ID_MAX + 1];   /* its terminal id ("" if unknown) */
        uint64_t good_seq;              /* the last record before the damage that holds (0: none) */
        char good_hash[SHA256_HEX_MAX]; /* its line hash (RECORD_PREV_FIRST when good_seq is 0) */
};

/* Where a log that passed the check ends. */
struct oplog_tail {
        char segment[LOG_SEGMENT_NAME_MAX]; /* the last segment holding records */
        uint64_t segment_first;             /* the seq its name gives */
        uint64_t good_size;                 /* its bytes up to the end of its last record */
        uint64_t torn_bytes;                /* bytes after that: a torn write to drop */
        unsigned empty_segments;            /* segments after it with no complete record (to remove) */
        char log_id[ID128_STRING_MAX];
        char term[RECORD_ID_MAX + 1];
        uint64_t last_seq;
        char last_hash[SHA256_HEX_MAX];
        bool clean; /* the last record is agent.stop */
        /* The current epoch's public key as the chain names it (or, when the records naming it were
         * pruned, the one epoch key file in the keys directory: key_from_chain false). */
        uint8_t key[ED25519_KEY_SIZE];
        bool key_from_chain;
        int64_t key_ts;     /* ts of the record naming it (0 when not from the chain) */
        uint64_t since_key; /* records after that record */
        uint64_t scanned;   /* lines parsed and linked */
        uint64_t verified;  /* records whose signature was checked */
};

/*
 * Check the log in dir before anything is appended. Every line of the last segment is parsed and
 * linked (seq, prev, log id); the records from the last-but-one key record (log.open or
 * key.rotate) to the end are verified by the chain verifier (common/oplog-verify.c): signatures
 * with the epoch key the chain names, so the last key.rotate's signature is checked too. Only
 * bytes after the last "\n" of the last segment, or a last line holding NUL bytes (zeros after a
 * power cut), count as a torn write; any other line that does not hold is damage. identity signs
 * log.open; keys_dir is read only when the records naming the current key were pruned.
 * Reads only, never writes.
 *
 * Returns 0 and *ret; 1 when dir holds no record (a new log is due); -EBADMSG with
 * *reterr_damage filled (file, line, reason, the last good record) when the log is damaged;
 * -ENOKEY when no key can be named; other -errno when the files cannot be read.
 */
int oplog_check(const char *dir, const char *keys_dir, EVP_PKEY *identity, struct oplog_tail *ret,
                struct oplog_damage *reterr_damage);
