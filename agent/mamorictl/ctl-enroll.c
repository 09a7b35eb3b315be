/* mamorictl enroll-request and enroll-install: the terminal's side of enrolment (DESIGN §11) — its TLS
 * key is made here and never leaves; the centre's answer is installed at agent.conf's paths. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctl-verbs.h"
#include "mamori/agent-config.h"
#include "mamori/crypto-util.h"
#include "mamori/enrolment.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "oplog-keys.h"

#define NEW_KEY_SUFFIX   ".new"
#define ENROLMENT_DROPIN "10-enrolment.conf"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_REQ *, X509_REQ_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);

static void diag(void *userdata, enum conf_level level, const char *file, unsigned line, const char *message)
{
        fprintf(stderr, "%s:%u: %s\n", file, line, message);
}

static bool id_ok(const char *s)
{
        size_t n = strlen(s);
        return n > 0 && n <= RECORD_ID_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") == n;
}

static int bio_string(BIO *b, char **ret)
{
        char *data, *s;
        long n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        s = strndup(data, (size_t)n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* A fresh P-256 key at path (0600, the caller's: root; the uploader gets it through LoadCredential=). */
static int make_tls_key(const char *path, EVP_PKEY **ret)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_secmem());
        _cleanup_pkey_ EVP_PKEY *key = EVP_EC_gen("P-256");
        char *data;
        long n;
        int k;

        if (!b || !key)
                return -ENOMEM;
        if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -EIO;
        n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        k = write_file_atomic(path, data, (size_t)n, 0600);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(key);
        return 0;
}

static int make_csr(EVP_PKEY *key, const char *id, char **ret)
{
        _cleanup_(X509_REQ_freep) X509_REQ *req = X509_REQ_new();
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        X509_NAME *name;

        if (!req || !b)
                return -ENOMEM;
        name = X509_REQ_get_subject_name(req);
        if (X509_REQ_set_version(req, 0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"mamori", -1, -1,
                                       0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)id, -1, -1, 0) !=
                    1 ||
            X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
            PEM_write_bio_X509_REQ(b, req) != 1)
                return -EIO;
        return bio_string(b, ret);
}

int ctl_enroll_request(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"id", required_argument, NULL, 'i'},
                {"out", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *config = AGENT_CONFIG_PATH, *id = NULL, *out = NULL;
        _cleanup_pkey_ EVP_PKEY *identity = NULL, *tls = NULL;
        _cleanup_free_ char *new_key = NULL, *text = NULL;
        struct enrolment_request req = {};
        struct agent_config cfg;
        size_t len;
        int c, k, ret = 1;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:i:o:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'i':
                        id = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'h':
                        printf("Usage: mamorictl enroll-request [--config FILE] [--id ID] [--out FILE]\n"
                               "Make a new TLS client key beside [Collector] ClientKey= (as KEY.new, 0600) "
                               "and a "
                               "request for the centre\n(terminal id, identity public key, CSR) on stdout "
                               "or in "
                               "FILE. No private key is in the request.\n");
                        return 0;
                default:
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        k = agent_config_load(config, diag, NULL, &cfg);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot use configuration %s: %s\n", config, strerror(-k));
                return 2;
        }
        if (!id)
                id = cfg.terminal_id;
        if (!id) {
                fprintf(stderr, "mamorictl: no terminal id: give --id ID (the id the centre registers, e.g. "
                                "T-0001)\n");
                goto out;
        }
        if (!id_ok(id)) {
                fprintf(stderr, "mamorictl: invalid terminal id '%s' (1..64 of A-Z a-z 0-9 . _ : @ -)\n",
                        id);
                goto out;
        }
        if (cfg.terminal_id && !streq(cfg.terminal_id, id)) {
                fprintf(stderr, "mamorictl: %s sets [Terminal] Id=%s, not %s\n", config, cfg.terminal_id,
                        id);
                goto out;
        }
        k = pem_load_private_key(cfg.identity_key, &identity);
        if (k >= 0)
                k = ed25519_check(identity);
        if (k < 0) {
                fprintf(stderr,
                        "mamorictl: cannot read the identity key %s: %s (mamorid makes it at its first "
                        "start: "
                        "systemctl start mamorid, then run this again)\n",
                        cfg.identity_key, strerror(-k));
                goto out;
        }
        snprintf(req.terminal, sizeof(req.terminal), "%s", id);
        if (asprintf(&new_key, "%s" NEW_KEY_SUFFIX, cfg.client_key) < 0)
                goto out;
        k = make_tls_key(new_key, &tls);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot write the new TLS key %s: %s\n", new_key, strerror(-k));
                goto out;
        }
        if ((k = oplog_public_pem(identity, &req.identity_pem)) < 0 ||
            (k = make_csr(tls, id, &req.csr_pem)) < 0 ||
            (k = enrolment_request_format(&req, &text, &len)) < 0) {
                fprintf(stderr, "mamorictl: cannot make the request: %s\n", strerror(-k));
                goto out;
        }
        if (out) {
                k = write_file_atomic(out, text, len, 0644);
                if (k < 0) {
                        fprintf(stderr, "mamorictl: cannot write %s: %s\n", out, strerror(-k));
                        goto out;
                }
        } else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
                goto out;
        fprintf(stderr,
                "mamorictl: request for terminal %s%s%s; its TLS key stays here (%s).\n"
                "Next, at the centre: mamori-admin terminal add --request FILE --office OFFICE --out "
                "%s.enrolment "
                "(or terminal rekey --request FILE --out …), then here: mamorictl enroll-install "
                "%s.enrolment\n",
                id, out ? " in " : " written", out ?: "", new_key, id, id);
        ret = 0;
out:
        enrolment_request_done(&req);
        agent_config_free(&cfg);
        return ret;
}

static int load_cert(const char *pem, X509 **ret)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, -1);
        X509 *x;
        if (!b)
                return -ENOMEM;
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x)
                return -EBADMSG;
        *ret = x;
        return 0;
}

/* Does the key at path hold the private half of cert's public key? */
static bool key_matches(const char *path, X509 *cert)
{
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        return pem_load_private_key(path, &key) >= 0 && X509_check_private_key(cert, key) == 1;
}

static int install(const char *path, const char *text, mode_t mode)
{
        int k = write_file_atomic(path, text, strlen(text), mode);
        if (k < 0)
                fprintf(stderr, "mamorictl: cannot write %s: %s\n", path, strerror(-k));
        return k;
}

static int write_dropin(const char *config, const char *file, const struct enrolment *e)
{
        _cleanup_free_ char *dir = NULL, *path = NULL, *text = NULL;
        char when[32];
        time_t now = time(NULL);
        struct tm tm;

        gmtime_r(&now, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (asprintf(&dir, "%s.d", config) < 0 || asprintf(&path, "%s/" ENROLMENT_DROPIN, dir) < 0 ||
            asprintf(&text,
                     "# Written by mamorictl enroll-install from %s at %s: this terminal as the centre\n"
                     "# enrolled it. A later enroll-install replaces this file.\n"
                     "[Terminal]\nId=%s\nOffice=%s\n%s%s%s",
                     file, when, e->terminal, e->office, e->url ? "[Collector]\nURL=" : "", e->url ?: "",
                     e->url ? "\n" : "") < 0)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                fprintf(stderr, "mamorictl: cannot create %s: %m\n", dir);
                return -errno;
        }
        return install(path, text, 0644);
}

int ctl_enroll_install(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *config = AGENT_CONFIG_PATH;
        _cleanup_free_ char *new_key = NULL, *cn = NULL;
        _cleanup_pkey_ EVP_PKEY *receipt = NULL, *signer = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL, *ca = NULL;
        struct enrolment e = {};
        struct agent_config cfg;
        bool use_new;
        int c, k, ret = 1;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'h':
                        printf("Usage: mamorictl enroll-install [--config FILE] ENROLMENT-FILE\n"
                               "Install the centre's answer: the terminal certificate at ClientCert=, the "
                               "collector CA at CA=,\nthe receipt key at ReceiptKey=, the policy signer key "
                               "at "
                               "SignerKey=, the key made by enroll-request\nat ClientKey=, and Id=, "
                               "Office=, URL= "
                               "in FILE.d/" ENROLMENT_DROPIN ".\n");
                        return 0;
                default:
                        return 2;
                }
        if (optind + 1 != argc) {
                fprintf(stderr, "usage: mamorictl enroll-install [--config FILE] ENROLMENT-FILE\n");
                return 2;
        }
        k = agent_config_load(config, diag, NULL, &cfg);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot use configuration %s: %s\n", config, strerror(-k));
                return 2;
        }
        k = enrolment_load(argv[optind], &e);
        if (k < 0) {
                fprintf(stderr,
                        "mamorictl: %s is not an enrolment file: %s (mamori-admin terminal add makes it)\n",
                        argv[optind], k == -EBADMSG ? "bad format" : strerror(-k));
                goto out;
        }
        if (cfg.terminal_id && !streq(cfg.terminal_id, e.terminal)) {
                fprintf(stderr,
                        "mamorictl: %s is for terminal %s, but this terminal is %s ([Terminal] Id=)\n",
                        argv[optind], e.terminal, cfg.terminal_id);
                goto out;
        }
        if (load_cert(e.certificate_pem, &cert) < 0 || load_cert(e.collector_ca_pem, &ca) < 0 ||
            pem_parse_public_key(e.receipt_key_pem, strlen(e.receipt_key_pem), &receipt) < 0 ||
            ed25519_check(receipt) < 0 ||
            pem_parse_public_key(e.policy_signer_pem, strlen(e.policy_signer_pem), &signer) < 0 ||
            ed25519_check(signer) < 0) {
                fprintf(stderr, "mamorictl: %s holds a certificate or key that does not parse\n",
                        argv[optind]);
                goto out;
        }
        {
                char buf[RECORD_ID_MAX + 2];
                int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
                                                  sizeof(buf));
                if (n <= 0 || !streq(buf, e.terminal)) {
                        fprintf(stderr, "mamorictl: the certificate in %s is not for terminal %s\n",
                                argv[optind], e.terminal);
                        goto out;
                }
        }
        if (asprintf(&new_key, "%s" NEW_KEY_SUFFIX, cfg.client_key) < 0)
                goto out;
        use_new = key_matches(new_key, cert);
        if (!use_new && !key_matches(cfg.client_key, cert)) {
                fprintf(stderr,
                        "mamorictl: the certificate in %s is not for this terminal's TLS key (%s or %s): "
                        "was the "
                        "request made here? Make a new one with mamorictl enroll-request\n",
                        argv[optind], new_key, cfg.client_key);
                goto out;
        }
        if (install(cfg.collector_ca, e.collector_ca_pem, 0644) < 0 ||
            install(cfg.receipt_key, e.receipt_key_pem, 0644) < 0 ||
            install(cfg.policy_signer_key, e.policy_signer_pem, 0644) < 0 ||
            install(cfg.client_cert, e.certificate_pem, 0644) < 0)
                goto out;
        if (use_new && rename(new_key, cfg.client_key) < 0) {
                fprintf(stderr, "mamorictl: cannot move %s to %s: %m\n", new_key, cfg.client_key);
                goto out;
        }
        if (write_dropin(config, argv[optind], &e) < 0)
                goto out;
        printf("enrolled as terminal %s (office %s)%s%s: certificate %s, key %s, collector CA %s, receipt "
               "key %s, "
               "policy signer %s\nNext: systemctl restart mamorid mamori-uploader\n",
               e.terminal, e.office, e.url ? ", collector " : "", e.url ?: "", cfg.client_cert,
               cfg.client_key, cfg.collector_ca, cfg.receipt_key, cfg.policy_signer_key);
        ret = 0;
out:
        enrolment_done(&e);
        agent_config_free(&cfg);
        return ret;
}
