/* mamori-admin init and collector renew: the centre's CAs and policy key (in the admin directory) and
 * the collector's TLS certificate for the host names terminals use. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "admin-keys.h"
#include "admin-pki.h"
#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "receipt-key.h"

#define CA_DAYS        7300
#define COLLECTOR_DAYS 825
#define NAMES_MAX      32

static const char *const default_names[] = {"localhost", "127.0.0.1", "::1"};

/* --name options, checked, into names[]. */
static int add_name(char **names, size_t *n, const char *name)
{
        _cleanup_free_ char *san = NULL;
        char *one[] = {(char *)name};

        if (*n >= NAMES_MAX) {
                fprintf(stderr, "mamori-admin: at most %d --name\n", NAMES_MAX);
                return -E2BIG;
        }
        if (pki_names_to_san(one, 1, &san) < 0) {
                fprintf(stderr,
                        "mamori-admin: --name %s is neither a host name (letters, digits, '-', dots) nor an "
                        "IP "
                        "address\n",
                        name);
                return -EINVAL;
        }
        names[(*n)++] = (char *)name;
        return 0;
}

static void print_until(X509 *cert)
{
        struct tm tm;
        char when[32] = "?";

        if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
                strftime(when, sizeof(when), "%Y-%m-%d", &tm);
        printf("valid until %s\n", when);
}

/* The collector's TLS key and certificate for names, signed by the collector CA, written into its
 * state directory (owned by whoever owns that directory). *reterr_key_written: set when it failed after
 * the new key replaced the old one (the certificate there is then the old one, for another key). */
static int issue_collector_cert(AdminContext *ctx, X509 *cca, EVP_PKEY *cca_key, char *const *names,
                                size_t n, X509 **ret, bool *reterr_key_written)
{
        _cleanup_free_ char *san = NULL, *key_path = collector_state_path(&ctx->config, COLLECTOR_TLS_KEY);
        _cleanup_free_ char *cert_path = collector_state_path(&ctx->config, COLLECTOR_TLS_CERT);
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        int r;

        if (!key_path || !cert_path)
                return -ENOMEM;
        if ((r = pki_names_to_san(names, n, &san)) < 0 || (r = pki_ec_key(&key)) < 0 ||
            (r = pki_issue(cca, cca_key, key, names[0], PKI_SERVER, san, COLLECTOR_DAYS, &cert)) < 0)
                return r;
        /* The key first: a certificate never names a key that is not there yet. */
        r = pki_write_key(key_path, key);
        if (r < 0)
                return r;
        if ((r = admin_give_to_collector(ctx, key_path)) < 0 || (r = pki_write_cert(cert_path, cert)) < 0 ||
            (r = admin_give_to_collector(ctx, cert_path)) < 0) {
                *reterr_key_written = true;
                return r;
        }
        *ret = TAKE_PTR(cert);
        return 0;
}

/* A public file for the collector: a copy in its state directory. */
static int publish_copy(AdminContext *ctx, const char *name, X509 *cert, EVP_PKEY *pub)
{
        _cleanup_free_ char *p = collector_state_path(&ctx->config, name);
        int r;

        if (!p)
                return -ENOMEM;
        r = cert ? pki_write_cert(p, cert) : pki_write_public_key(p, pub);
        return r < 0 ? r : admin_give_to_collector(ctx, p);
}

static int parse_names(int argc, char **argv, const char *usage, char **names, size_t *n)
{
        static const struct option options[] = {
                {"name", required_argument, NULL, 'n'},
                {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "n:", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        if (add_name(names, n, optarg) < 0)
                                return 2;
                        break;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "usage: mamori-admin %s\n", usage);
                return 2;
        }
        return 0;
}

/* Every file init writes: the admin directory's (the CAs, the policy key: last, it marks a finished
 * init), then the collector's. */
static const struct {
        bool admin; /* in the admin directory, else the collector's state directory */
        const char *name;
} init_files[] = {
        {true, ADMIN_TERMINAL_CA_KEY}, {true, ADMIN_TERMINAL_CA},   {true, ADMIN_COLLECTOR_CA_KEY},
        {true, ADMIN_COLLECTOR_CA},    {true, ADMIN_POLICY_PUB},    {true, ADMIN_POLICY_KEY},
        {false, COLLECTOR_TLS_KEY},    {false, COLLECTOR_TLS_CERT}, {false, ADMIN_TERMINAL_CA},
        {false, ADMIN_COLLECTOR_CA},   {false, ADMIN_POLICY_PUB},   {false, RECEIPT_KEY_FILE},
        {false, RECEIPT_PUB_FILE},
};
_Static_assert(ELEMENTSOF(init_files) <= 32, "a bit each in a uint32_t");

static char *init_file_path(AdminContext *ctx, size_t i)
{
        return init_files[i].admin ? admin_key_path(ctx, init_files[i].name)
                                   : collector_state_path(&ctx->config, init_files[i].name);
}

/* Which of init's files exist (bit i: init_files[i]). */
static uint32_t init_files_present(AdminContext *ctx)
{
        uint32_t present = 0;

        for (size_t i = 0; i < ELEMENTSOF(init_files); i++) {
                _cleanup_free_ char *p = init_file_path(ctx, i);
                if (p && access(p, F_OK) == 0)
                        present |= UINT32_C(1) << i;
        }
        return present;
}

/* A failed init: what it made (the files that were not there before it), that nothing uses them yet, and
 * how to try again. A second init refuses to run while the admin directory's keys are there. */
static int init_failed(AdminContext *ctx, int r, uint32_t before)
{
        uint32_t made = init_files_present(ctx) & ~before;

        fprintf(stderr, "mamori-admin: init failed: %s; the centre is not initialised", strerror(-r));
        if (!made) {
                fprintf(stderr,
                        " and no key or certificate was made. Check that %s and %s are writable and their "
                        "disk not full, then run mamori-admin init again\n",
                        ctx->config.admin_directory, ctx->config.state_directory);
                return 1;
        }
        fputs(". It made these files, which nothing uses yet:\n", stderr);
        for (size_t i = 0; i < ELEMENTSOF(init_files); i++)
                if (made & (UINT32_C(1) << i)) {
                        _cleanup_free_ char *p = init_file_path(ctx, i);
                        fprintf(stderr, "  %s\n", p ?: init_files[i].name);
                }
        fprintf(stderr,
                "Remove them, check that %s and %s are writable and their disk not full, then run "
                "mamori-admin init again (while they are there, init refuses to run)\n",
                ctx->config.admin_directory, ctx->config.state_directory);
        return 1;
}

/* What an initialised centre has, and what to do instead of a second init. */
static int already_initialised(AdminContext *ctx)
{
        static const char *const files[] = {ADMIN_POLICY_KEY, ADMIN_TERMINAL_CA_KEY, ADMIN_COLLECTOR_CA_KEY};
        unsigned found = 0;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = admin_key_path(ctx, files[i]);
                if (p && access(p, F_OK) == 0) {
                        if (found++ == 0)
                                fprintf(stderr, "mamori-admin: this centre is initialised already:\n");
                        fprintf(stderr, "  %s\n", p);
                }
        }
        if (found == 0)
                return 0;
        fprintf(stderr,
                "Nothing was changed: a new CA would orphan every enrolled terminal and a new policy key "
                "every terminal's SignerKey=.\n"
                "  new host names or an expiring collector certificate: mamori-admin collector renew --name "
                "HOST\n"
                "  enrol a terminal: mamori-admin terminal add --request FILE --office OFFICE --out FILE\n"
                "  start over (every terminal must enrol again): move %s and %s aside first\n",
                ctx->config.admin_directory, ctx->config.state_directory);
        return -EEXIST;
}

int admin_init(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_pkey_ EVP_PKEY *policy = NULL, *tca_key = NULL, *cca_key = NULL, *receipt = NULL;
        _cleanup_x509_ X509 *tca = NULL, *cca = NULL, *srv = NULL;
        _cleanup_free_ char *p_policy = admin_key_path(ctx, ADMIN_POLICY_KEY);
        _cleanup_free_ char *p_pub = admin_key_path(ctx, ADMIN_POLICY_PUB);
        _cleanup_free_ char *p_tca_key = admin_key_path(ctx, ADMIN_TERMINAL_CA_KEY);
        _cleanup_free_ char *p_tca = admin_key_path(ctx, ADMIN_TERMINAL_CA);
        _cleanup_free_ char *p_cca_key = admin_key_path(ctx, ADMIN_COLLECTOR_CA_KEY);
        _cleanup_free_ char *p_cca = admin_key_path(ctx, ADMIN_COLLECTOR_CA);
        char *names[NAMES_MAX];
        bool key_written = false;
        uint32_t before;
        size_t n = 0;
        Store *s;
        int r;

        r = parse_names(argc, argv, "init [--name HOST]…", names, &n);
        if (r != 0)
                return r;
        if (!p_policy || !p_pub || !p_tca_key || !p_tca || !p_cca_key || !p_cca)
                return 1;
        if (admin_keys_prepare(ctx, true) < 0 || already_initialised(ctx) < 0)
                return 1;
        if (mkdir(ctx->config.state_directory, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "mamori-admin: cannot create %s: %m\n", ctx->config.state_directory);
                return 1;
        }
        if (n == 0)
                for (size_t i = 0; i < ELEMENTSOF(default_names); i++)
                        names[n++] = (char *)default_names[i];
        if (admin_store(ctx, &s) < 0)
                return 1;
        before = init_files_present(ctx);
        if ((r = ed25519_generate(&policy)) < 0 || (r = pki_ec_key(&tca_key)) < 0 ||
            (r = pki_ec_key(&cca_key)) < 0 ||
            (r = pki_make_ca(tca_key, "mamori terminal CA", CA_DAYS, &tca)) < 0 ||
            (r = pki_make_ca(cca_key, "mamori collector CA", CA_DAYS, &cca)) < 0)
                goto fail;
        /* mamori-admin's own: the CAs and the policy key (last: it marks a finished init). */
        if ((r = pki_write_key(p_tca_key, tca_key)) < 0 || (r = pki_write_cert(p_tca, tca)) < 0 ||
            (r = pki_write_key(p_cca_key, cca_key)) < 0 || (r = pki_write_cert(p_cca, cca)) < 0 ||
            (r = pki_write_public_key(p_pub, policy)) < 0 || (r = pki_write_key(p_policy, policy)) < 0)
                goto fail;
        /* The collector's: its TLS pair, its receipt key, and copies of what it trusts or hands out. */
        if ((r = issue_collector_cert(ctx, cca, cca_key, names, n, &srv, &key_written)) < 0 ||
            (r = publish_copy(ctx, ADMIN_TERMINAL_CA, tca, NULL)) < 0 ||
            (r = publish_copy(ctx, ADMIN_COLLECTOR_CA, cca, NULL)) < 0 ||
            (r = publish_copy(ctx, ADMIN_POLICY_PUB, NULL, policy)) < 0 ||
            (r = collector_receipt_key(&ctx->config, true, &receipt, NULL)) < 0)
                goto fail;
        {
                _cleanup_free_ char *rk = collector_state_path(&ctx->config, RECEIPT_KEY_FILE);
                _cleanup_free_ char *rp = collector_state_path(&ctx->config, RECEIPT_PUB_FILE);
                if (!rk || !rp || (r = admin_give_to_collector(ctx, rk)) < 0 ||
                    (r = admin_give_to_collector(ctx, rp)) < 0)
                        goto fail;
        }
        {
                _cleanup_free_ char *shown = store_url_display(ctx->config.database);
                printf("initialised the centre\n"
                       "  %s: policy key, terminal CA and collector CA (root only; the collector "
                       "cannot read them)\n"
                       "  %s: the collector's TLS key and certificate, receipt key; store %s\n",
                       ctx->config.admin_directory, ctx->config.state_directory, shown ? shown : "?");
        }
        printf("  collector certificate for");
        for (size_t i = 0; i < n; i++)
                printf(" %s", names[i]);
        printf(", ");
        print_until(srv);
        if (argc == 1)
                printf("  only local names: for terminals on other machines run mamori-admin collector "
                       "renew "
                       "--name HOST\n");
        printf("Next: systemctl enable --now mamori-collector; mamori-admin policy publish; enrol terminals "
               "with "
               "mamori-admin terminal add --request FILE --office OFFICE --out FILE\n");
        return 0;
fail:
        return init_failed(ctx, r, before);
}

int admin_collector_renew(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *p_cca_key = admin_key_path(ctx, ADMIN_COLLECTOR_CA_KEY);
        _cleanup_free_ char *p_cca = admin_key_path(ctx, ADMIN_COLLECTOR_CA);
        _cleanup_free_ char *p_old = collector_state_path(&ctx->config, COLLECTOR_TLS_CERT);
        _cleanup_pkey_ EVP_PKEY *cca_key = NULL;
        _cleanup_x509_ X509 *cca = NULL, *old = NULL, *srv = NULL;
        char *names[NAMES_MAX], **old_names = NULL;
        size_t n = 0, n_old = 0;
        bool key_written = false;
        int r;

        r = parse_names(argc, argv, "collector renew [--name HOST]…", names, &n);
        if (r != 0)
                return r;
        if (!p_cca_key || !p_cca || !p_old || admin_keys_prepare(ctx, false) < 0)
                return 1;
        r = pki_load_cert(p_cca, &cca);
        if (r >= 0)
                r = pem_load_private_key(p_cca_key, &cca_key);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: cannot load the collector CA %s / %s: %s (run mamori-admin init)\n",
                        p_cca, p_cca_key, strerror(-r));
                return 1;
        }
        if (n == 0) {
                /* The names the current certificate carries. */
                r = pki_load_cert(p_old, &old);
                if (r >= 0)
                        r = pki_cert_names(old, &old_names, &n_old);
                if (r < 0) {
                        fprintf(stderr,
                                "mamori-admin: cannot read the names of %s: %s; give them with --name\n",
                                p_old, strerror(-r));
                        return 1;
                }
                for (size_t i = 0; i < n_old && i < NAMES_MAX; i++)
                        names[n++] = old_names[i];
        }
        r = issue_collector_cert(ctx, cca, cca_key, names, n, &srv, &key_written);
        if (r >= 0) {
                printf("renewed the collector certificate (same collector CA) for");
                for (size_t i = 0; i < n; i++)
                        printf(" %s", names[i]);
                printf(", ");
                print_until(srv);
                printf("Next: systemctl restart mamori-collector (it reads its certificate at start)\n");
        } else if (key_written) {
                _cleanup_free_ char *key_path = collector_state_path(&ctx->config, COLLECTOR_TLS_KEY);
                fprintf(stderr,
                        "mamori-admin: collector renew failed: %s; the new key %s is written but not its "
                        "certificate: %s is still the old one, for the old key, and they do not match. The "
                        "running collector goes on with the pair it loaded: do not restart it until "
                        "mamori-admin collector renew (with the same --name) has succeeded; check that %s "
                        "is writable and its disk not full\n",
                        strerror(-r), key_path ?: COLLECTOR_TLS_KEY, p_old, ctx->config.state_directory);
        } else
                fprintf(stderr,
                        "mamori-admin: collector renew failed: %s; nothing was changed, the collector's key "
                        "and certificate in %s are as they were. Check that %s is writable and its disk not "
                        "full, then run mamori-admin collector renew again\n",
                        strerror(-r), ctx->config.state_directory, ctx->config.state_directory);
        pki_names_free(old_names);
        return r < 0 ? 1 : 0;
}
