/* Keys of the operation log: the terminal identity key (PEM) and the per-epoch log signing keys. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/crypto-util.h"

/*
 * Load the Ed25519 identity key at path, or create it when missing: a fresh key written as PKCS#8
 * PEM with mode 0600 (temporary file, fsync, link into place so a concurrent creator never gets
 * overwritten, directory fsync). *ret_created says which happened. -ENOENT never: a missing parent
 * directory is created with mode 0700.
 */
int oplog_identity_load_or_create(const char *path, EVP_PKEY **ret, bool *ret_created);

/* Public key of key as a PEM "PUBLIC KEY" block, malloc'd and NUL-terminated. */
int oplog_public_pem(EVP_PKEY *key, char **ret);

/*
 * Epoch keys live in dir as "log-key-<64 hex of the public key>.key": the 32-byte private seed,
 * mode 0600. store writes one (fsync file and directory) before its key.rotate/log.open is
 * written; load finds the one for pub; destroy overwrites it with zeros, fsyncs, unlinks it and
 * fsyncs the directory; destroy_others does that to every epoch key except keep (NULL: all).
 * destroy returns -ENOENT if there is no such file; destroy_others returns how many it destroyed.
 */
int oplog_epoch_key_store(const char *dir, EVP_PKEY *key);
int oplog_epoch_key_load(const char *dir, const uint8_t pub[ED25519_KEY_SIZE], EVP_PKEY **ret);
int oplog_epoch_key_destroy(const char *dir, const uint8_t pub[ED25519_KEY_SIZE]);
int oplog_epoch_key_destroy_others(const char *dir, const uint8_t *keep);
/* The public key of the only epoch key file in dir; -ENOKEY when there is none or more than one. */
int oplog_epoch_key_find_single(const char *dir, uint8_t ret[ED25519_KEY_SIZE]);
/* The file name for pub (for tests). buf must hold OPLOG_EPOCH_KEY_NAME_MAX bytes. */
#define OPLOG_EPOCH_KEY_NAME_MAX 80
void oplog_epoch_key_name(const uint8_t pub[ED25519_KEY_SIZE], char buf[OPLOG_EPOCH_KEY_NAME_MAX]);

/* Where mamorid keeps the epoch keys for the log in log_dir: "keys" beside it (e.g.
 * /var/lib/mamori/log → /var/lib/mamori/keys). *ret is malloc'd. */
int oplog_keys_directory(const char *log_dir, char **ret);

/* Small durable-file helpers shared by the oplog files (a directory's fsync: mamori/fileio.h). */
int oplog_write_full(int fd, const void *buf, size_t n);
/* mkdir -p with mode for the created components. */
int oplog_mkdir_p(const char *path, mode_t mode);
