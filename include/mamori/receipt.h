/* Collector receipts (DESIGN.md §7): build and sign at the collector, parse and verify at the terminal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/json.h"
#include "mamori/oplog-record.h"

/*
 * A receipt is the JCS object {"v":1,"collector":C,"log":L,"acked":N,"line":H,"key":K,"ts":T,"sig":S}:
 * C the collector's name (1..64 of [A-Za-z0-9._:@-]), L the log id, N the highest seq stored with no
 * gap (0 … 2^53-1), H the hex SHA-256 of the line of record N (RECORD_PREV_FIRST when N = 0), K the
 * base64 raw Ed25519 public key of the epoch that signs record N+1 (the identity key when N = 0),
 * T microseconds since the epoch, S the Ed25519 signature of the JCS bytes without "sig" by the
 * collector's receipt key ([Collector] ReceiptKey= on the terminal).
 */
#define RECEIPT_VERSION  1
#define RECEIPT_SIZE_MAX 1024u /* a receipt is ~330 bytes; anything larger is not one */

#define RECEIPT_KEY_PATH_DEFAULT "/etc/mamori/receipt.pub"

typedef struct Receipt {
        char collector[RECORD_ID_MAX + 1];
        char log[ID128_STRING_MAX];
        uint64_t acked;
        char line[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE];
        int64_t ts;
        bool has_sig;
        uint8_t sig[ED25519_SIG_SIZE];
} Receipt;

/* 0 when every field has the format above (sig not required), -EINVAL otherwise. */
int receipt_validate(const Receipt *r);

/* The receipt as a JSON object, with or without "sig" (with_sig needs has_sig). */
int receipt_to_json(const Receipt *r, bool with_sig, JsonValue **ret);

/* Sign r with the collector's receipt key: sets sig/has_sig. ret_json (may be NULL) gets the JCS
 * bytes including "sig", malloc'd and NUL-terminated. */
int receipt_sign(Receipt *r, EVP_PKEY *key, char **ret_json, size_t *ret_len);

/* The JCS bytes of a signed receipt (with "sig"), malloc'd and NUL-terminated. */
int receipt_format(const Receipt *r, char **ret, size_t *ret_len);

/*
 * Strict reading from a parsed JSON value: an object with exactly the 8 members, each of its type
 * and format, v == 1. -EBADMSG otherwise; *ret_why (may be NULL) names the first problem.
 * The signature is NOT checked here: see receipt_verify().
 */
int receipt_from_json(const JsonValue *o, Receipt *ret, const char **ret_why);
/* The same from bytes (at most RECEIPT_SIZE_MAX, one final "\n" allowed). -E2BIG when larger. */
int receipt_parse(const void *data, size_t size, Receipt *ret, const char **ret_why);

/* 0 if r's signature verifies with key, -EKEYREJECTED if not, -EBADMSG if r has none or is malformed. */
int receipt_verify(const Receipt *r, EVP_PKEY *key);

/*
 * What a terminal checks before it believes r for its own log in dir (whose id is log_id): r is
 * signed by key, names log_id, and its "line" is the hash of the local record r->acked (so acked
 * can never exceed the local log); when the local record acked + 1 exists, it verifies with r->key.
 * 0 when all hold; -EBADMSG (with *ret_why) when one does not; -ENOENT (with *ret_why) when record
 * acked is no longer in dir (pruned) and acked + 1 is not there to check either; -errno when the
 * log cannot be read. acked == 0 is believed without a record.
 */
int receipt_check_log(const Receipt *r, EVP_PKEY *key, const char *dir, const char *log_id,
                      const char **ret_why);

/* The same with the lines at hand (without "\n"): line_n is the local record acked, line_next the
 * local record acked + 1; either may be NULL when not known, not both (-ENOENT then). */
int receipt_check_lines(const Receipt *r, EVP_PKEY *key, const char *log_id, const char *line_n,
                        size_t len_n, const char *line_next, size_t len_next, const char **ret_why);

/* Public receipt key from a PEM file: -EINVAL when it is not Ed25519, else as pem_load_public_key(). */
int receipt_key_load(const char *path, EVP_PKEY **ret);
