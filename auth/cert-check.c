/* Operator certificate checks with OpenSSL's X509_STORE: chain to the anchors, time, keyUsage. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "mamori/cert-check.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"

#define ANCHORS_FILE_MAX (1024u * 1024u)
#define CERT_DER_MAX     (64u * 1024u)

struct CertCheck {
        X509_STORE *store;
        unsigned n_anchors;
};

static const char *const reason_table[_CERT_CHECK_MAX] = {
        [CERT_CHECK_OK] = "ok",
        [CERT_CHECK_UNTRUSTED] = "untrusted",
        [CERT_CHECK_EXPIRED] = "expired",
        [CERT_CHECK_BAD_USAGE] = "bad-usage",
        [CERT_CHECK_MALFORMED] = "malformed",
};

const char *cert_check_reason_to_string(int reason)
{
        if (reason < 0 || reason >= _CERT_CHECK_MAX)
                return NULL;
        return reason_table[reason];
}

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free);

int cert_check_new(CertCheck **ret)
{
        CertCheck *cc;

        cc = calloc(1, sizeof(*cc));
        if (!cc)
                return -ENOMEM;
        cc->store = X509_STORE_new();
        if (!cc->store) {
                free(cc);
                return -ENOMEM;
        }
        /* An anchor is trusted as such, also when it is an intermediate CA. */
        X509_STORE_set_flags(cc->store, X509_V_FLAG_PARTIAL_CHAIN);
        *ret = cc;
        return 0;
}

CertCheck *cert_check_free(CertCheck *cc)
{
        if (!cc)
                return NULL;
        X509_STORE_free(cc->store);
        free(cc);
        return NULL;
}

int cert_check_add_anchors_pem(CertCheck *cc, const char *pem, size_t len)
{
        _cleanup_(BIO_freep) BIO *bio = NULL;
        int added = 0;

        if (!cc || !pem || len > ANCHORS_FILE_MAX)
                return -EINVAL;
        bio = BIO_new_mem_buf(pem, (int)len);
        if (!bio)
                return -ENOMEM;
        for (;;) {
                _cleanup_(X509_freep) X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!x) {
                        unsigned long e = ERR_peek_last_error();
                        ERR_clear_error();
                        /* End of input is "no start line"; anything else is a broken PEM block. */
                        if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE && added > 0)
                                break;
                        return -EBADMSG;
                }
                if (X509_STORE_add_cert(cc->store, x) != 1) {
                        ERR_clear_error(); /* duplicate anchors are harmless */
                        continue;
                }
                added++;
                cc->n_anchors++;
        }
        return added;
}

int cert_check_add_anchors_file(CertCheck *cc, const char *path)
{
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r;

        if (!cc || !path)
                return -EINVAL;
        r = read_file_bounded(path, ANCHORS_FILE_MAX, &buf, &n);
        if (r < 0)
                return r;
        return cert_check_add_anchors_pem(cc, buf, n);
}

static int reason_from_x509_error(int e)
{
        switch (e) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
                return CERT_CHECK_EXPIRED;
        case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
        case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
        case X509_V_ERR_INVALID_EXTENSION:
        case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
                return CERT_CHECK_MALFORMED;
        default:
                return CERT_CHECK_UNTRUSTED;
        }
}

int cert_check_verify(CertCheck *cc, const uint8_t *der, size_t der_len, uint64_t now_usec)
{
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
        const unsigned char *p = der;
        int ok;

        if (!cc || cc->n_anchors == 0)
                return -EINVAL;
        if (!der || der_len == 0 || der_len > CERT_DER_MAX)
                return CERT_CHECK_MALFORMED;
        x = d2i_X509(NULL, &p, (long)der_len);
        if (!x || p != der + der_len) {
                ERR_clear_error();
                return CERT_CHECK_MALFORMED;
        }
        /* Caches the extensions and flags bad ones (EXFLAG_INVALID). */
        uint32_t xflags = X509_get_extension_flags(x);
        if (xflags & EXFLAG_INVALID)
                return CERT_CHECK_MALFORMED;

        ctx = X509_STORE_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (X509_STORE_CTX_init(ctx, cc->store, x, NULL) != 1) {
                ERR_clear_error();
                return -ENOMEM;
        }
        X509_STORE_CTX_set_time(ctx, 0, (time_t)(now_usec / 1000000u));
        /* No purpose: the operator CA decides what its certificates are for; we check keyUsage. */
        ok = X509_verify_cert(ctx);
        if (ok != 1) {
                int e = X509_STORE_CTX_get_error(ctx);
                ERR_clear_error();
                if (ok < 0 && e == X509_V_OK)
                        return -ENOMEM;
                return reason_from_x509_error(e);
        }

        if (!(xflags & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE))
                return CERT_CHECK_BAD_USAGE;
        return CERT_CHECK_OK;
}
