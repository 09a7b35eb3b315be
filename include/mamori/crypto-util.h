/* OpenSSL 3 helpers: Ed25519 sign/verify and raw keys, PEM key loading, SHA-256. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/macro.h"

#define ED25519_SIG_SIZE 64
#define ED25519_KEY_SIZE 32
#define SHA256_SIZE      32
#define SHA256_HEX_MAX   65 /* 64 digits + NUL */

/* Largest PEM file pem_load_*() reads; keys and small certificates only. */
#define PEM_FILE_MAX (64u * 1024u)

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
#define _cleanup_pkey_ _cleanup_(EVP_PKEY_freep)

/*
 * Keys are EVP_PKEY handles owned by the caller (EVP_PKEY_free). OpenSSL wipes private key
 * material when the handle is freed. Errors: -EINVAL bad argument or key of the wrong type,
 * -EBADMSG unparsable input, -EKEYREJECTED signature does not verify, -EIO other OpenSSL failure.
 */

/* Sign msg with an Ed25519 private key (PureEdDSA, no pre-hash). */
int ed25519_sign(EVP_PKEY *key, const void *msg, size_t size, uint8_t ret_sig[ED25519_SIG_SIZE]);

/* 0 if sig is a valid signature of msg by key (public or private), -EKEYREJECTED if not. */
int ed25519_verify(EVP_PKEY *key, const void *msg, size_t size, const uint8_t sig[ED25519_SIG_SIZE]);

/* Fresh key pair from the OpenSSL RNG. */
int ed25519_generate(EVP_PKEY **ret);

/* Private key from a 32-byte seed (RFC 8032 "private key"). The caller wipes its seed copy. */
int ed25519_from_seed(const uint8_t seed[ED25519_KEY_SIZE], EVP_PKEY **ret);

int ed25519_public_from_raw(const uint8_t raw[ED25519_KEY_SIZE], EVP_PKEY **ret);
int ed25519_public_to_raw(EVP_PKEY *key, uint8_t ret[ED25519_KEY_SIZE]);

/* 0 when key is an Ed25519 key, -EINVAL otherwise. */
int ed25519_check(EVP_PKEY *key);

/* PEM from memory or a file (read with O_CLOEXEC, at most PEM_FILE_MAX bytes; -E2BIG beyond). */
int pem_parse_private_key(const void *pem, size_t size, EVP_PKEY **ret);
int pem_parse_public_key(const void *pem, size_t size, EVP_PKEY **ret);
int pem_load_private_key(const char *path, EVP_PKEY **ret);
int pem_load_public_key(const char *path, EVP_PKEY **ret);

int sha256(const void *data, size_t size, uint8_t ret[SHA256_SIZE]);
/* Lowercase hex SHA-256, NUL-terminated. */
int sha256_hex(const void *data, size_t size, char ret[SHA256_HEX_MAX]);
