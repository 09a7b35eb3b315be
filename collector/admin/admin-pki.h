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
        PKI_SERVER, /* serverAuth, subjectAltName = san (required) */
};
/* Certificate for subject_key with CN = cn, signed by ca/ca_key; san ("DNS:a,IP:b", from
 * pki_names_to_san) for a server, NULL for a client. */
int pki_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *subject_key, const char *cn, enum pki_usage usage,
              const char *san, int days, X509 **ret);

/* Host names and addresses → "DNS:name,IP:addr,…". -EINVAL for a name that is neither. */
int pki_names_to_san(char *const *names, size_t n, char **ret);
bool pki_host_name_valid(const char *s);
/* The DNS names and IP addresses of a certificate's subjectAltName, NULL-terminated. -ENOENT none. */
int pki_cert_names(X509 *cert, char ***ret, size_t *ret_n);
void pki_names_free(char **names);
/* A PKCS#10 request (PEM): its public key after checking its self-signature (-EBADMSG), an EC key of
 * at least 256 bits (-EPROTONOSUPPORT otherwise); *ret_cn its subject CN or NULL (may be NULL). */
int pki_load_csr(const char *pem, EVP_PKEY **ret_key, char **ret_cn);
/* The certificate as PEM text, malloc'd. */
int pki_cert_pem(X509 *cert, char **ret);

/* PEM files, written atomically (write_file_atomic); keys 0600, certificates 0644. */
int pki_write_key(const char *path, EVP_PKEY *key);
int pki_write_public_key(const char *path, EVP_PKEY *key);
int pki_write_cert(const char *path, X509 *cert);
int pki_load_cert(const char *path, X509 **ret);
/* Card id: lowercase hex SHA-256 of the DER certificate. */
int pki_cert_sha256_hex(X509 *cert, char ret[65]);
