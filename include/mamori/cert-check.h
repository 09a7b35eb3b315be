/* Operator certificate checks (DESIGN.md §3): chain to TrustAnchors=, validity, keyUsage. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Named results of cert_check_verify(); the strings (cert_check_reason_to_string) are the
 * auth.fail reasons. not-yet-valid is reported as expired. */
enum cert_check_reason {
        CERT_CHECK_OK = 0,
        CERT_CHECK_UNTRUSTED, /* "untrusted": no chain to an anchor, bad signature, revoked CA... */
        CERT_CHECK_EXPIRED,   /* "expired": outside notBefore..notAfter (leaf or chain) */
        CERT_CHECK_BAD_USAGE, /* "bad-usage": no keyUsage extension, or no digitalSignature */
        CERT_CHECK_MALFORMED, /* "malformed": not one whole DER certificate, broken extensions */
        _CERT_CHECK_MAX,
};

const char *cert_check_reason_to_string(int reason);

typedef struct CertCheck CertCheck;

/* An empty anchor set; add anchors before verifying. */
int cert_check_new(CertCheck **ret);
CertCheck *cert_check_free(CertCheck *cc);
static inline void cert_check_freep(CertCheck **cc)
{
        if (*cc)
                cert_check_free(*cc);
}

/* Adds every certificate of a PEM file (TrustAnchors=). An anchor may be a root or an
 * intermediate CA (partial chains are accepted). Returns the number added (> 0), -ENOENT/-errno
 * if unreadable, -E2BIG if over 1 MiB, -EBADMSG if it holds no certificate or bad PEM. */
int cert_check_add_anchors_file(CertCheck *cc, const char *path);
/* Same from PEM in memory. */
int cert_check_add_anchors_pem(CertCheck *cc, const char *pem, size_t len);

/* Checks a DER certificate at time now_usec (µs since the epoch, CLOCK_REALTIME). Returns
 * CERT_CHECK_OK (0) or a positive enum cert_check_reason; a negative errno (-ENOMEM, -EINVAL
 * with no anchors) when the check itself could not be made. */
int cert_check_verify(CertCheck *cc, const uint8_t *der, size_t der_len, uint64_t now_usec);
