/* mamori-admin's certificate authority on OpenSSL 3: keys, CA, server and client certificates, PEM files. */
#include <arpa/inet.h>
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
              const char *san, int days, X509 **ret)
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
        if (usage == PKI_SERVER && (!san || (r = add_ext(x, ca, NID_subject_alt_name, san)) < 0))
                return san ? r : -EINVAL;
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

int pki_names_to_san(char *const *names, size_t n, char **ret)
{
        _cleanup_free_ char *san = NULL;

        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned char addr[sizeof(struct in6_addr)];
                const char *kind;
                char *next;

                if (inet_pton(AF_INET, names[i], addr) == 1 || inet_pton(AF_INET6, names[i], addr) == 1)
                        kind = "IP";
                else if (pki_host_name_valid(names[i]))
                        kind = "DNS";
                else
                        return -EINVAL;
                if (asprintf(&next, "%s%s%s:%s", san ?: "", san ? "," : "", kind, names[i]) < 0)
                        return -ENOMEM;
                free(san);
                san = next;
        }
        *ret = TAKE_PTR(san);
        return 0;
}

bool pki_host_name_valid(const char *s)
{
        size_t n = strlen(s), label = 0;

        if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", s[i]) ||
                    (label == 0 && s[i] == '-') || ++label > 63)
                        return false;
        }
        return s[n - 1] != '-';
}

int pki_cert_names(X509 *cert, char ***ret, size_t *ret_n)
{
        GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
        char **names = NULL;
        size_t n = 0;
        int r = 0;

        if (!gens)
                return -ENOENT;
        names = calloc((size_t)sk_GENERAL_NAME_num(gens) + 1, sizeof(char *));
        if (!names) {
                GENERAL_NAMES_free(gens);
                return -ENOMEM;
        }
        for (int i = 0; i < sk_GENERAL_NAME_num(gens) && r >= 0; i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                char buf[INET6_ADDRSTRLEN];
                const char *v = NULL;
                int len = 0;

                if (g->type == GEN_DNS) {
                        v = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
                        len = ASN1_STRING_length(g->d.dNSName);
                } else if (g->type == GEN_IPADD) {
                        int alen = ASN1_STRING_length(g->d.iPAddress);
                        const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
                        if ((alen == 4 && inet_ntop(AF_INET, a, buf, sizeof(buf))) ||
                            (alen == 16 && inet_ntop(AF_INET6, a, buf, sizeof(buf)))) {
                                v = buf;
                                len = (int)strlen(buf);
                        }
                }
                if (!v || len <= 0 || memchr(v, '\0', (size_t)len))
                        continue;
                if (!(names[n] = strndup(v, (size_t)len)))
                        r = -ENOMEM;
                else
                        n++;
        }
        GENERAL_NAMES_free(gens);
        if (r < 0 || n == 0) {
                pki_names_free(names);
                return r < 0 ? r : -ENOENT;
        }
        *ret = names;
        *ret_n = n;
        return 0;
}

void pki_names_free(char **names)
{
        if (!names)
                return;
        for (char **p = names; *p; p++)
                free(*p);
        free(names);
}

int pki_load_csr(const char *pem, EVP_PKEY **ret_key, char **ret_cn)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, -1);
        X509_REQ *req;
        EVP_PKEY *key;
        int r = 0;

        if (!b)
                return -ENOMEM;
        req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
        if (!req)
                return -EBADMSG;
        key = X509_REQ_get_pubkey(req);
        /* A request signed by the key it names: the terminal holds that key. */
        if (!key || X509_REQ_verify(req, key) != 1)
                r = -EBADMSG;
        else if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) < 256)
                r = -EPROTONOSUPPORT;
        if (r >= 0 && ret_cn) {
                char cn[256];
                int len = X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
                                                    sizeof(cn));
                *ret_cn = len > 0 ? strndup(cn, (size_t)len) : NULL;
        }
        X509_REQ_free(req);
        if (r < 0) {
                EVP_PKEY_free(key);
                return r;
        }
        *ret_key = key;
        return 0;
}

int pki_cert_pem(X509 *cert, char **ret)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        if (!b)
                return -ENOMEM;
        if (PEM_write_bio_X509(b, cert) != 1)
                return -EIO;
        n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        s = strndup(data, (size_t)n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
