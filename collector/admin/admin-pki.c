/* mamori-admin's certificate authority on OpenSSL 3: keys, CA, server and client certificates, PEM files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "admin-pki.h"
#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/fileio.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);

int pki_ec_key(EVP_PKEY **ret)
{
        EVP_PKEY *k = EVP_EC_gen("P-256");
        if (!k)
                return -EIO;
        *ret = k;
        return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return -EIO;
        int ok = X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        return ok ? 0 : -EIO;
}

/* Certificate skeleton: random serial, validity now … now + days, subject CN. */
static int cert_base(EVP_PKEY *subject_key, const char *cn, int days, X509 **ret)
{
        _cleanup_x509_ X509 *x = X509_new();
        unsigned char serial[16];
        BIGNUM *bn;
        X509_NAME *name;

        if (!x)
                return -ENOMEM;
        if (RAND_bytes(serial, sizeof(serial)) != 1)
                return -EIO;
        serial[0] &= 0x7f; /* positive */
        bn = BN_bin2bn(serial, sizeof(serial), NULL);
        if (!bn)
                return -ENOMEM;
        int ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
        BN_free(bn);
        if (!ok || X509_set_version(x, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
            !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) || X509_set_pubkey(x, subject_key) != 1)
                return -EIO;
        name = X509_get_subject_name(x);
        if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"mamori", -1, -1,
                                       0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1)
                return -EINVAL;
        *ret = TAKE_PTR(x);
        return 0;
}

int pki_make_ca(EVP_PKEY *key, const char *cn, int days, X509 **ret)
{
        _cleanup_x509_ X509 *x = NULL;
        int r = cert_base(key, cn, days, &x);
        if (r < 0)
                return r;
        if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
                return -EIO;
        if ((r = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
            (r = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
            (r = add_ext(x, x, NID_subject_key_identifier, "hash")) < 0)
                return r;
        if (X509_sign(x, key, EVP_sha256()) <= 0)
                return -EIO;
        *ret = TAKE_PTR(x);
        return 0;
}

int pki_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *subject_key, const char *cn, enum pki_usage usage,
              int days, X509 **ret)
{
        _cleanup_x509_ X509 *x = NULL;
        int r = cert_base(subject_key, cn, days, &x);
        if (r < 0)
                return r;
        if (X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1)
                return -EIO;
        if ((r = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
            (r = add_ext(x, ca, NID_key_usage, "critical,digitalSignature")) < 0 ||
            (r = add_ext(x, ca, NID_ext_key_usage, usage == PKI_SERVER ? "serverAuth" : "clientAuth")) < 0 ||
            (r = add_ext(x, ca, NID_subject_key_identifier, "hash")) < 0 ||
            (r = add_ext(x, ca, NID_authority_key_identifier, "keyid:always")) < 0)
                return r;
        if (usage == PKI_SERVER &&
            (r = add_ext(x, ca, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost")) < 0)
                return r;
        if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
                return -EIO;
        *ret = TAKE_PTR(x);
        return 0;
}

/* Serialise through a memory BIO and write atomically. */
static int write_bio(const char *path, BIO *b, mode_t mode)
{
        char *data;
        long n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        return write_file_atomic(path, data, (size_t)n, mode);
}

int pki_write_key(const char *path, EVP_PKEY *key)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_secmem());
        if (!b)
                return -ENOMEM;
        if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -EIO;
        return write_bio(path, b, 0600);
}

int pki_write_public_key(const char *path, EVP_PKEY *key)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        if (!b)
                return -ENOMEM;
        if (PEM_write_bio_PUBKEY(b, key) != 1)
                return -EIO;
        return write_bio(path, b, 0644);
}

int pki_write_cert(const char *path, X509 *cert)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        if (!b)
                return -ENOMEM;
        if (PEM_write_bio_X509(b, cert) != 1)
                return -EIO;
        return write_bio(path, b, 0644);
}

int pki_load_cert(const char *path, X509 **ret)
{
        _cleanup_free_ char *data = NULL;
        _cleanup_(BIO_freep) BIO *b = NULL;
        size_t size;
        X509 *x;
        int r;

        r = read_file_bounded(path, PEM_FILE_MAX, &data, &size);
        if (r < 0)
                return r;
        b = BIO_new_mem_buf(data, (int)size);
        if (!b)
                return -ENOMEM;
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x) {
                /* DER as well: card certificates often come that way. */
                const unsigned char *p = (const unsigned char *)data;
                x = d2i_X509(NULL, &p, (long)size);
                if (!x || p != (const unsigned char *)data + size) {
                        X509_free(x);
                        return -EBADMSG;
                }
        }
        *ret = x;
        return 0;
}

int pki_cert_sha256_hex(X509 *cert, char ret[65])
{
        unsigned char *der = NULL;
        int n = i2d_X509(cert, &der);
        int r;

        if (n <= 0)
                return -EIO;
        r = sha256_hex(der, (size_t)n, ret);
        OPENSSL_free(der);
        return r;
}
