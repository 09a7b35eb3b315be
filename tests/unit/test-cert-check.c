/* Unit tests for the operator certificate checks (auth/cert-check.c) with an in-process test PKI. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "mamori/cert-check.h"
#include "mamori/macro.h"

#define T0      ((time_t)1763880000) /* 2025-11-23 */
#define DAY     (24 * 3600)
#define USEC(t) ((uint64_t)(t)*1000000u)

struct ca {
        EVP_PKEY *key;
        X509 *cert;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
        assert_non_null(e);
        assert_int_equal(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
}

/* A certificate for key, issued by issuer (self-signed when NULL). ku = keyUsage or NULL. */
static X509 *issue(EVP_PKEY *key, const char *cn, struct ca *issuer, time_t nb, time_t na, bool ca,
                   const char *ku)
{
        static long serial = 1;
        X509 *x = X509_new();
        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
        ASN1_TIME_set(X509_getm_notBefore(x), nb);
        ASN1_TIME_set(X509_getm_notAfter(x), na);
        X509_NAME *n = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : n);
        X509_set_pubkey(x, key);
        add_ext(x, issuer ? issuer->cert : NULL, NID_basic_constraints,
                ca ? "critical,CA:TRUE" : "CA:FALSE");
        if (ku)
                add_ext(x, issuer ? issuer->cert : NULL, NID_key_usage, ku);
        assert_true(X509_sign(x, issuer ? issuer->key : key, EVP_sha256()) > 0);
        return x;
}

static void make_ca(struct ca *ca, const char *cn, struct ca *parent)
{
        ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_non_null(ca->key);
        ca->cert = issue(ca->key, cn, parent, T0 - 365 * DAY, T0 + 3650 * DAY, true,
                         "critical,keyCertSign,cRLSign");
}

static void free_ca(struct ca *ca)
{
        X509_free(ca->cert);
        EVP_PKEY_free(ca->key);
}

static size_t der_of(X509 *x, uint8_t **ret)
{
        *ret = NULL;
        int l = i2d_X509(x, ret);
        assert_true(l > 0);
        return (size_t)l;
}

static char *pem_of(X509 *const *xs, size_t n, size_t *ret_len)
{
        BIO *b = BIO_new(BIO_s_mem());
        for (size_t i = 0; i < n; i++)
                assert_int_equal(PEM_write_bio_X509(b, xs[i]), 1);
        char *p;
        long l = BIO_get_mem_data(b, &p);
        char *out = malloc((size_t)l + 1);
        memcpy(out, p, (size_t)l);
        out[l] = 0;
        *ret_len = (size_t)l;
        BIO_free(b);
        return out;
}

static struct ca root, inter, other;
static EVP_PKEY *leaf_key;

static int setup(void **state)
{
        make_ca(&root, "Operator Root CA", NULL);
        make_ca(&inter, "Operator Issuing CA", &root);
        make_ca(&other, "Somebody Else CA", NULL);
        leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        return leaf_key ? 0 : -1;
}

static int teardown(void **state)
{
        free_ca(&root);
        free_ca(&inter);
        free_ca(&other);
        EVP_PKEY_free(leaf_key);
        return 0;
}

static CertCheck *checker_with(X509 *const *anchors, size_t n)
{
        CertCheck *cc = NULL;
        size_t len;
        char *pem = pem_of(anchors, n, &len);
        assert_int_equal(cert_check_new(&cc), 0);
        assert_int_equal(cert_check_add_anchors_pem(cc, pem, len), (int)n);
        free(pem);
        return cc;
}

static int check(CertCheck *cc, X509 *x, time_t now)
{
        uint8_t *der;
        size_t n = der_of(x, &der);
        int r = cert_check_verify(cc, der, n, USEC(now));
        OPENSSL_free(der);
        return r;
}

static void test_table(void **state)
{
        CertCheck *cc = checker_with((X509 *const[]){inter.cert}, 1);
        struct {
                const char *name;
                X509 *cert;
                time_t now;
                int want;
        } t[] = {
                {"good",
                 issue(leaf_key, "OP0001", &inter, T0 - DAY, T0 + 365 * DAY, false,
                       "critical,digitalSignature"),
                 T0, CERT_CHECK_OK},
                {"good, more usages",
                 issue(leaf_key, "OP0001", &inter, T0 - DAY, T0 + 365 * DAY, false,
                       "digitalSignature,keyEncipherment"),
                 T0, CERT_CHECK_OK},
                {"expired",
                 issue(leaf_key, "OP0001", &inter, T0 - 10 * DAY, T0 - DAY, false, "digitalSignature"), T0,
                 CERT_CHECK_EXPIRED},
                {"not yet valid",
                 issue(leaf_key, "OP0001", &inter, T0 + DAY, T0 + 10 * DAY, false, "digitalSignature"), T0,
                 CERT_CHECK_EXPIRED},
                {"valid then, expired now",
                 issue(leaf_key, "OP0001", &inter, T0 - DAY, T0 + DAY, false, "digitalSignature"),
                 T0 + 2 * DAY, CERT_CHECK_EXPIRED},
                {"other CA",
                 issue(leaf_key, "OP0001", &other, T0 - DAY, T0 + DAY, false, "digitalSignature"), T0,
                 CERT_CHECK_UNTRUSTED},
                {"self-signed",
                 issue(leaf_key, "OP0001", NULL, T0 - DAY, T0 + DAY, false, "digitalSignature"), T0,
                 CERT_CHECK_UNTRUSTED},
                {"no keyUsage", issue(leaf_key, "OP0001", &inter, T0 - DAY, T0 + DAY, false, NULL), T0,
                 CERT_CHECK_BAD_USAGE},
                {"keyEncipherment only",
                 issue(leaf_key, "OP0001", &inter, T0 - DAY, T0 + DAY, false, "keyEncipherment"), T0,
                 CERT_CHECK_BAD_USAGE},
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                int r = check(cc, t[i].cert, t[i].now);
                if (r != t[i].want)
                        fail_msg("%s: got %d (%s), want %d (%s)", t[i].name, r,
                                 cert_check_reason_to_string(r), t[i].want,
                                 cert_check_reason_to_string(t[i].want));
                X509_free(t[i].cert);
        }
        cert_check_free(cc);
}

static void test_anchor_root_only(void **state)
{
        /* With only the root as anchor the leaf alone does not chain (the card holds no
         * intermediates): untrusted. With the intermediate as anchor it does. */
        CertCheck *cc = checker_with((X509 *const[]){root.cert}, 1);
        X509 *leaf = issue(leaf_key, "OP0002", &inter, T0 - DAY, T0 + DAY, false, "digitalSignature");
        X509 *direct = issue(leaf_key, "OP0003", &root, T0 - DAY, T0 + DAY, false, "digitalSignature");
        assert_int_equal(check(cc, leaf, T0), CERT_CHECK_UNTRUSTED);
        assert_int_equal(check(cc, direct, T0), CERT_CHECK_OK);
        cert_check_free(cc);

        /* Two anchors in one file. */
        cc = checker_with((X509 *const[]){other.cert, inter.cert}, 2);
        assert_int_equal(check(cc, leaf, T0), CERT_CHECK_OK);
        assert_int_equal(check(cc, direct, T0), CERT_CHECK_UNTRUSTED);
        cert_check_free(cc);
        X509_free(leaf);
        X509_free(direct);
}

static void test_malformed(void **state)
{
        CertCheck *cc = checker_with((X509 *const[]){inter.cert}, 1);
        X509 *leaf = issue(leaf_key, "OP0004", &inter, T0 - DAY, T0 + DAY, false, "digitalSignature");
        uint8_t *der;
        size_t n = der_of(leaf, &der);

        assert_int_equal(cert_check_verify(cc, der, n, USEC(T0)), CERT_CHECK_OK);
        assert_int_equal(cert_check_verify(cc, der, n - 1, USEC(T0)), CERT_CHECK_MALFORMED);
        assert_int_equal(cert_check_verify(cc, (const uint8_t *)"\x30\x03\x02\x01\x01", 5, USEC(T0)),
                         CERT_CHECK_MALFORMED);
        assert_int_equal(cert_check_verify(cc, NULL, 0, USEC(T0)), CERT_CHECK_MALFORMED);
        uint8_t *longer = malloc(n + 1);
        memcpy(longer, der, n);
        longer[n] = 0;
        assert_int_equal(cert_check_verify(cc, longer, n + 1, USEC(T0)), CERT_CHECK_MALFORMED);
        free(longer);

        /* A flipped bit in the issuer's signature: the chain no longer verifies. */
        der[n - 3] ^= 0x01;
        int r = cert_check_verify(cc, der, n, USEC(T0));
        assert_true(r == CERT_CHECK_UNTRUSTED || r == CERT_CHECK_MALFORMED);
        OPENSSL_free(der);
        X509_free(leaf);
        cert_check_free(cc);

        for (int i = 0; i < _CERT_CHECK_MAX; i++)
                assert_non_null(cert_check_reason_to_string(i));
        assert_null(cert_check_reason_to_string(_CERT_CHECK_MAX));
        assert_string_equal(cert_check_reason_to_string(CERT_CHECK_BAD_USAGE), "bad-usage");
}

static void test_anchors_file(void **state)
{
        char dir[] = "/tmp/test-cert-check-XXXXXX", path[256];
        CertCheck *cc = NULL;
        size_t len;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/anchors.pem", dir);
        assert_int_equal(cert_check_new(&cc), 0);
        assert_int_equal(cert_check_verify(cc, (const uint8_t *)"x", 1, 0), -EINVAL); /* no anchors */
        assert_int_equal(cert_check_add_anchors_file(cc, path), -ENOENT);

        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs("not a certificate\n", f);
        fclose(f);
        assert_int_equal(cert_check_add_anchors_file(cc, path), -EBADMSG);

        char *pem = pem_of((X509 *const[]){root.cert, inter.cert}, 2, &len);
        f = fopen(path, "we");
        fwrite(pem, 1, len, f);
        fclose(f);
        /* A truncated PEM block is an error, not a silently shorter anchor list. */
        assert_int_equal(cert_check_add_anchors_pem(cc, pem, len - 40), -EBADMSG);
        free(pem);
        assert_int_equal(cert_check_add_anchors_file(cc, path), 2);

        X509 *leaf = issue(leaf_key, "OP0005", &inter, T0 - DAY, T0 + DAY, false, "digitalSignature");
        assert_int_equal(check(cc, leaf, T0), CERT_CHECK_OK);
        X509_free(leaf);
        cert_check_free(cc);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_anchor_root_only),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_anchors_file),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
