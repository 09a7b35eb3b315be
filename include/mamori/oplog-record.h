/* Operation-log record codec (DESIGN.md §6): build, sign, parse, verify and hash record lines. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/json.h"

#define RECORD_VERSION  1
#define RECORD_LINE_MAX (64u * 1024u) /* bytes of one line without its "\n" */
#define RECORD_ID_MAX   64u           /* term and op: 1..64 of [A-Za-z0-9._:@-] */
#define RECORD_EV_MAX   64u           /* ev: 1..64 of [a-z0-9._-], starting with a letter */
#define RECORD_INT_MAX  INT64_C(9007199254740991)

/* 64 zeros: "prev" of seq 1. */
#define RECORD_PREV_FIRST "0000000000000000000000000000000000000000000000000000000000000000"

/*
 * One record. The struct owns term, ev, op, card (malloc'd strings) and data (a JSON object);
 * record_free() releases them. op and card NULL mean JSON null. Fill the fields directly
 * (record_new() gives an empty "data" object) and call record_sign().
 */
typedef struct Record {
        char log[ID128_STRING_MAX];  /* 32 lowercase hex */
        uint64_t seq;                /* 1 … 2^53-1 */
        int64_t ts;                  /* CLOCK_REALTIME µs, 0 … 2^53-1 */
        char boot[ID128_STRING_MAX]; /* 32 lowercase hex */
        int64_t mono;                /* CLOCK_BOOTTIME µs, 0 … 2^53-1 */
        char *term;
        char *ev;
        char *op;   /* NULL = null */
        char *card; /* NULL = null, else 64 lowercase hex */
        JsonValue *data;
        char prev[SHA256_HEX_MAX]; /* 64 lowercase hex */
        bool has_sig;
        uint8_t sig[ED25519_SIG_SIZE];
} Record;

int record_new(Record **ret);
Record *record_free(Record *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Record *, record_free);
#define _cleanup_record_ _cleanup_(record_freep)

/* 0 if every field has the type and format §6 demands (sig not required), -EBADMSG otherwise. */
int record_validate(const Record *r);

/* The record as a JSON object, with or without "sig" (with_sig needs has_sig). */
int record_to_json(const Record *r, bool with_sig, JsonValue **ret);

/* JCS bytes of the record without "sig": what the signature covers. */
int record_signed_bytes(const Record *r, char **ret, size_t *ret_len);

/*
 * Sign r with key (Ed25519), set r->sig/has_sig, and return its line: the JCS bytes including
 * "sig", without "\n", malloc'd and NUL-terminated (ret_line may be NULL).
 */
int record_sign(Record *r, EVP_PKEY *key, char **ret_line, size_t *ret_len);

/* The line of an already signed record. */
int record_format_line(const Record *r, char **ret, size_t *ret_len);

/*
 * Parse one line (a trailing "\n" is allowed). Strict: exactly the 13 keys of §6, each of its
 * type and format, v == 1, and the bytes must be the record's canonical JCS form (so the line
 * hash is well defined). -EBADMSG malformed, -E2BIG too long/deep, -ERANGE bad integer, -ENOMEM.
 * The signature is NOT checked here: see record_verify().
 */
int record_parse_line(const void *line, size_t len, Record **ret);
/* The same, and the bytes its signature covers (the line without "sig", malloc'd) as the parse saw
 * them: what record_signed_bytes() would rebuild from the record, without building it again. */
int record_parse_line_signed(const void *line, size_t len, Record **ret, char **ret_signed,
                             size_t *ret_signed_len);

/* 0 if r->sig is valid for key, -EKEYREJECTED if not, -EBADMSG if r has no signature. */
int record_verify(const Record *r, EVP_PKEY *key);
/* The same over signed_bytes, which record_parse_line_signed() gave with r (NULL: record_verify()). */
int record_verify_signed(const Record *r, const char *signed_bytes, size_t signed_len, EVP_PKEY *key);

/* Lowercase hex SHA-256 of a line, a single trailing "\n" excluded: the next record's "prev". */
int record_line_hash(const void *line, size_t len, char ret[SHA256_HEX_MAX]);

/* The raw public key in data.key of log.open / key.rotate; -ENOENT none, -EBADMSG malformed. */
int record_data_key(const Record *r, uint8_t ret[ED25519_KEY_SIZE]);

/*
 * Chain rule: next follows prev (same log, seq + 1, next->prev == prev_hash). With prev NULL, next
 * must be seq 1 with prev RECORD_PREV_FIRST. 0 or -EBADMSG.
 */
int record_check_link(const Record *prev, const char *prev_hash, const Record *next);

/* true for the event names DESIGN.md §6 lists. */
bool record_event_known(const char *ev);
