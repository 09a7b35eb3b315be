/* Password verifiers: scrypt (OpenSSL EVP_KDF "SCRYPT") with its parameters in one bounded text line. */
#pragma once

/*
 * A verifier is one line of printable ASCII that says how it was made:
 *
 *     $mamori-scrypt$v=1$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
 *
 * ln is log2 of scrypt's N, r its block size, p its parallelism; salt and hash are padded
 * standard base64 (RFC 4648). Fields are in this order, decimal without leading zeros, nothing
 * after the hash. Bounds (checked before any memory is spent): ln 10..20, r 1..32, p 1..16,
 * 128·r·N ≤ 256 MiB, salt 16..64 bytes, hash 32..64 bytes, the line at most
 * PASSWORD_VERIFIER_MAX bytes. A password is 1..PASSWORD_MAX bytes.
 *
 * Comparison is constant-time (CRYPTO_memcmp). Nothing here logs; errors come back as -errno with,
 * from the parser, a short static sentence saying what is wrong (never any secret).
 */

#include <stddef.h>
#include <stdint.h>

#define PASSWORD_MAX            1024u
#define PASSWORD_VERIFIER_MAX   256u
#define PASSWORD_SALT_MIN       16u
#define PASSWORD_SALT_MAX       64u
#define PASSWORD_HASH_MIN       32u
#define PASSWORD_HASH_MAX       64u
#define PASSWORD_LN_MIN         10u
#define PASSWORD_LN_MAX         20u
#define PASSWORD_R_MAX          32u
#define PASSWORD_P_MAX          16u
#define PASSWORD_MEMORY_MAX     (256u * 1024u * 1024u)
#define PASSWORD_VERIFIER_MAGIC "$mamori-scrypt$v=1$"

struct password_params {
        unsigned ln; /* N = 2^ln */
        unsigned r, p;
        size_t salt_len, hash_len;
};

/* What new verifiers are made with: ln=15 (N=32768), r=8, p=1 (32 MiB), 16-byte salt, 32-byte hash. */
extern const struct password_params password_params_default;

struct password_verifier {
        struct password_params params;
        uint8_t salt[PASSWORD_SALT_MAX];
        uint8_t hash[PASSWORD_HASH_MAX];
};

/* 0 when params are inside the bounds above, else -ERANGE with *reterr_why (may be NULL) set. */
int password_params_check(const struct password_params *params, const char **reterr_why);

/*
 * Parses exactly len bytes (no NUL needed inside). -EBADMSG for a malformed line, -ERANGE for a
 * parameter or length out of bounds, -E2BIG for a line over PASSWORD_VERIFIER_MAX; then
 * *reterr_why (may be NULL) names the problem.
 */
int password_verifier_parse(const char *text, size_t len, struct password_verifier *ret,
                            const char **reterr_why);

/* The line for v (malloc'd, NUL-terminated, no newline). -ERANGE for params out of bounds. */
int password_verifier_format(const struct password_verifier *v, char **ret);

/* scrypt(password, salt) with params into out (params->hash_len bytes). -EINVAL for a password
 * that is empty or over PASSWORD_MAX, -ERANGE for params out of bounds, -EIO when OpenSSL fails. */
int password_derive(const char *password, size_t password_len, const uint8_t *salt,
                    const struct password_params *params, uint8_t *out);

/* A new verifier line for password with a fresh random salt (params NULL: the default). */
int password_verifier_make(const char *password, const struct password_params *params, char **ret);

/* 0 when password matches the verifier line, -EACCES when it does not; the parser's and
 * password_derive()'s errors otherwise. */
int password_verifier_check(const char *verifier, size_t verifier_len, const char *password);
