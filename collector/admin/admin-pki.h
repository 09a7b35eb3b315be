/* mamori-admin's small certificate authority: terminal CA, collector server certificate, client
 * certificates. */
#pragma once

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "mamori/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
#define _cleanup_x509_ _cleanup_(X509_freep)

/* A fresh ECDSA P-256 key. */
int pki_ec_key(EVP_PKEY **ret);
/* Self-signed CA certificate for key, valid for `days`. */
int pki_make_ca(EVP_PKEY *key, const char *cn, int days, X509 **ret);

enum pki_usage {
        PKI_CLIENT, /* extendedKeyUsage clientAuth */
        PKI_SERVER, /* serverAuth, subjectAltName IP:127.0.0.1, IP:::1, DNS:localhost */
};
/* Certificate for subject_key with CN = cn, signed by ca/ca_key. */
int pki_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *subject_key, const char *cn, enum pki_usage usage,
              int days, X509 **ret);

/* PEM files, written atomically (write_file_atomic); keys 0600, certificates 0644. */
int pki_write_key(const char *path, EVP_PKEY *key);
int pki_write_public_key(const char *path, EVP_PKEY *key);
int pki_write_cert(const char *path, X509 *cert);
int pki_load_cert(const char *path, X509 **ret);
/* Card id: lowercase hex SHA-256 of the DER certificate. */
int pki_cert_sha256_hex(X509 *cert, char ret[65]);
