/* mamori-admin: the centre's CLI — PKI, terminals, operators, cards (the 発行簿), groups, policy, audit. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin-pki.h"
#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/oplog-record.h"
#include "mamori/time-util.h"
#include "receipt-key.h"

int64_t admin_now_usec(void)
{
        return now_realtime_usec();
}

int admin_store(AdminContext *ctx, Store **ret)
{
        if (!ctx->store) {
                _cleanup_free_ char *actor = admin_actor();
                int r = store_open(ctx->config.database, &ctx->store);
                if (r < 0) {
                        fprintf(stderr, "mamori-admin: cannot open database %s: %s\n", ctx->config.database,
                                strerror(-r));
                        return r;
                }
                /* Every register change made through this run names who made it. */
                r = actor ? store_set_actor(ctx->store, actor) : -ENOMEM;
                if (r < 0)
                        return r;
        }
        *ret = ctx->store;
        return 0;
}

/* Ids as DESIGN §6/§8 allow them: 1..64 of [A-Za-z0-9._:@-]. */
static bool id_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > RECORD_ID_MAX)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") == n;
}

static bool check_id(const char *what, const char *s)
{
        if (s && id_valid(s))
                return true;
        fprintf(stderr, "mamori-admin: invalid %s '%s' (1..64 of A-Z a-z 0-9 . _ : @ -)\n", what,
                s ? s : "");
        return false;
}

bool admin_check_id(const char *what, const char *s)
{
        return check_id(what, s);
}

/* Run f inside one transaction; report err_what on failure. */
static int in_transaction(Store *s, int r_of_work, const char *err_what)
{
        if (r_of_work < 0) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: %s: %s\n", err_what,
                        r_of_work == -EEXIST   ? "already exists"
                        : r_of_work == -ENOENT ? "not found"
                                               : strerror(-r_of_work));
                return 1;
        }
        r_of_work = store_commit(s);
        if (r_of_work < 0) {
                fprintf(stderr, "mamori-admin: %s: commit failed: %s\n", err_what, strerror(-r_of_work));
                return 1;
        }
        return 0;
}

/* ---- init ---- */

static int write_state_key(AdminContext *ctx, const char *name, EVP_PKEY *key)
{
        _cleanup_free_ char *p = collector_state_path(&ctx->config, name);
        return p ? pki_write_key(p, key) : -ENOMEM;
}

static int write_state_cert(AdminContext *ctx, const char *name, X509 *cert)
{
        _cleanup_free_ char *p = collector_state_path(&ctx->config, name);
        return p ? pki_write_cert(p, cert) : -ENOMEM;
}

static int verb_init(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_pkey_ EVP_PKEY *policy = NULL, *tca_key = NULL, *cca_key = NULL, *srv_key = NULL;
        _cleanup_x509_ X509 *tca = NULL, *cca = NULL, *srv = NULL;
        _cleanup_free_ char *marker = collector_state_path(&ctx->config, "policy.key");
        _cleanup_free_ char *pub = collector_state_path(&ctx->config, "policy-signer.pub");
        struct stat st;
        Store *s;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin init\n");
                return 2;
        }
        if (!marker || !pub)
                return 1;
        if (mkdir(ctx->config.state_directory, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "mamori-admin: cannot create %s: %m\n", ctx->config.state_directory);
                return 1;
        }
        if (stat(marker, &st) == 0) {
                fprintf(stderr, "mamori-admin: %s exists: already initialised\n", marker);
                return 1;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        if ((r = ed25519_generate(&policy)) < 0 || (r = pki_ec_key(&tca_key)) < 0 ||
            (r = pki_ec_key(&cca_key)) < 0 || (r = pki_ec_key(&srv_key)) < 0 ||
            (r = pki_make_ca(tca_key, "mamori terminal CA", 7300, &tca)) < 0 ||
            (r = pki_make_ca(cca_key, "mamori collector CA", 7300, &cca)) < 0 ||
            (r = pki_issue(cca, cca_key, srv_key, "localhost", PKI_SERVER, 825, &srv)) < 0)
                goto fail;
        if ((r = write_state_key(ctx, "terminal-ca.key", tca_key)) < 0 ||
            (r = write_state_cert(ctx, "terminal-ca.pem", tca)) < 0 ||
            (r = write_state_key(ctx, "collector-ca.key", cca_key)) < 0 ||
            (r = write_state_cert(ctx, "collector-ca.pem", cca)) < 0 ||
            (r = write_state_key(ctx, "collector.key", srv_key)) < 0 ||
            (r = write_state_cert(ctx, "collector.pem", srv)) < 0 ||
            (r = pki_write_public_key(pub, policy)) < 0 ||
            (r = pki_write_key(marker, policy)) < 0) /* last: it marks a finished init */
                goto fail;
        {
                /* The collector's own receipt key, beside its TLS key (mamori-collector makes it at
                 * its first start too): terminal add hands its public half to terminals. */
                _cleanup_pkey_ EVP_PKEY *receipt = NULL;
                r = collector_receipt_key(&ctx->config, true, &receipt, NULL);
                if (r < 0)
                        goto fail;
        }
        printf("initialised %s (database %s)\n", ctx->config.state_directory, ctx->config.database);
        return 0;
fail:
        fprintf(stderr, "mamori-admin: init failed: %s\n", strerror(-r));
        return 1;
}

/* ---- terminals ---- */

static int load_state_pair(AdminContext *ctx, const char *cert_name, const char *key_name, X509 **ret_cert,
                           EVP_PKEY **ret_key)
{
        _cleanup_free_ char *c = collector_state_path(&ctx->config, cert_name);
        _cleanup_free_ char *k = collector_state_path(&ctx->config, key_name);
        _cleanup_x509_ X509 *cert = NULL;
        int r;

        if (!c || !k)
                return -ENOMEM;
        r = pki_load_cert(c, &cert);
        if (r >= 0)
                r = pem_load_private_key(k, ret_key);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot load %s / %s: %s\n", c, k, strerror(-r));
                return r;
        }
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

static int verb_terminal_add(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"office", required_argument, NULL, 'o'},
                {"identity", required_argument, NULL, 'i'},
                {"out", required_argument, NULL, 'd'},
                {},
        };
        const char *office = NULL, *identity = NULL, *out = NULL, *id;
        _cleanup_pkey_ EVP_PKEY *idkey = NULL, *ca_key = NULL, *client_key = NULL;
        _cleanup_x509_ X509 *ca = NULL, *client = NULL, *cca = NULL;
        _cleanup_free_ char *pem = NULL, *p_cert = NULL, *p_key = NULL, *p_ca = NULL;
        _cleanup_free_ char *cca_path = collector_state_path(&ctx->config, "collector-ca.pem");
        _cleanup_free_ char *receipt_path = collector_state_path(&ctx->config, RECEIPT_PUB_FILE);
        _cleanup_free_ char *receipt = NULL, *p_receipt = NULL;
        size_t size, receipt_len = 0;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:i:d:", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        office = optarg;
                        break;
                case 'i':
                        identity = optarg;
                        break;
                case 'd':
                        out = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || !office || !identity || !out) {
                fprintf(stderr,
                        "usage: mamori-admin terminal add ID --office O --identity PUB.pem --out DIR\n");
                return 2;
        }
        id = argv[optind];
        if (!check_id("terminal id", id) || !check_id("office", office))
                return 2;
        r = read_file_bounded(identity, PEM_FILE_MAX, &pem, &size);
        if (r >= 0)
                r = pem_parse_public_key(pem, size, &idkey);
        if (r >= 0)
                r = ed25519_check(idkey);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: %s is not an Ed25519 public key (PEM): %s\n", identity,
                        strerror(-r));
                return 1;
        }
        if (load_state_pair(ctx, "terminal-ca.pem", "terminal-ca.key", &ca, &ca_key) < 0 || !cca_path ||
            pki_load_cert(cca_path, &cca) < 0)
                return 1;
        /* The collector's public receipt key goes with the certificates: terminals trust it as
         * [Collector] ReceiptKey=. */
        if (!receipt_path)
                return 1;
        r = read_file_bounded(receipt_path, PEM_FILE_MAX, &receipt, &receipt_len);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: cannot read the collector's receipt key %s: %s (start "
                        "mamori-collector "
                        "once, or run mamori-collector --receipt-key)\n",
                        receipt_path, strerror(-r));
                return 1;
        }
        if ((r = pki_ec_key(&client_key)) < 0 ||
            (r = pki_issue(ca, ca_key, client_key, id, PKI_CLIENT, 1825, &client)) < 0) {
                fprintf(stderr, "mamori-admin: cannot issue the client certificate: %s\n", strerror(-r));
                return 1;
        }
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        if (in_transaction(s, store_terminal_add(s, admin_now_usec(), id, office, pem), "terminal add") != 0)
                return 1;
        if (mkdir(out, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "mamori-admin: cannot create %s: %m\n", out);
                return 1;
        }
        if (asprintf(&p_cert, "%s/client.pem", out) < 0 || asprintf(&p_key, "%s/client.key", out) < 0 ||
            asprintf(&p_ca, "%s/collector-ca.pem", out) < 0 ||
            asprintf(&p_receipt, "%s/" RECEIPT_PUB_FILE, out) < 0)
                return 1;
        if ((r = pki_write_cert(p_cert, client)) < 0 || (r = pki_write_key(p_key, client_key)) < 0 ||
            (r = pki_write_cert(p_ca, cca)) < 0 ||
            (r = write_file_atomic(p_receipt, receipt, receipt_len, 0644)) < 0) {
                fprintf(stderr, "mamori-admin: cannot write into %s: %s\n", out, strerror(-r));
                return 1;
        }
        printf("terminal %s registered (office %s); client certificate, collector CA and receipt key in "
               "%s\n",
               id, office, out);
        return 0;
}

/* ---- dispatch ---- */

typedef struct Verb {
        const char *noun, *verb;
        int (*run)(AdminContext *ctx, int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        {"init", NULL, verb_init},
        {"terminal", "add", verb_terminal_add},
        {"operator", "add", admin_operator_add},
        {"operator", "suspend", admin_operator_suspend},
        {"operator", "retire", admin_operator_retire},
        {"operator", "resume", admin_operator_resume},
        {"operator", "pin-reset", admin_operator_pin_reset},
        {"card", "issue", admin_card_issue},
        {"card", "suspend", admin_card_suspend},
        {"card", "return", admin_card_return},
        {"card", "resume", admin_card_resume},
        {"card", "history", admin_card_history},
        {"cards", NULL, admin_cards},
        {"group", "add", admin_group_add},
        {"register", "verify", admin_register_verify},
        {"policy", "publish", admin_policy_publish},
        {"policy", "refresh", admin_policy_refresh},
        {"policy", "signer", admin_policy_signer},
        {"emergency", "clear", admin_emergency_clear},
        {"policy", "show", admin_policy_show},
        {"history", NULL, admin_history},
        {"verify", NULL, admin_verify},
        {"export", NULL, admin_export},
        {"alerts", NULL, admin_alerts},
        {"office", "hours", admin_office_hours},
        {"office", "days", admin_office_days},
        {"office", "holidays", admin_office_holidays},
        {"operator", "roles", admin_operator_roles},
        {"audit", NULL, admin_audit},
        {"ledger", NULL, admin_ledger},
        {"trace", NULL, admin_trace},
        {"watch", NULL, admin_watch},
        {"self-inspection", NULL, admin_self_inspection},
        {"retention", NULL, admin_retention},
};

/* One line per command, grouped by noun: "mamori-admin NOUN --help" prints that noun's lines. */
static const struct {
        const char *noun, *usage;
} usages[] = {
        {"init", "init"},
        {"terminal", "terminal add ID --office O --identity PUB.pem --out DIR"},
        {"operator", "operator add ID [--name N] --office O [--office O…] [--reason TEXT]"},
        {"operator", "operator suspend|retire|resume ID --reason TEXT"},
        {"operator", "operator pin-reset ID --reason TEXT [--expired]"},
        {"card", "card issue --cert CERT.pem (--operator ID | --group G) [--reason TEXT]"},
        {"card", "card suspend CARD_ID --reason TEXT  |  card return CARD_ID [--reason TEXT]"},
        {"card", "card resume CARD_ID --reason TEXT   |  card history [CARD_ID]"},
        {"cards", "cards [--unreturned] [--unused-since DATE] [--operator ID] [--format text|json]"},
        {"group", "group add G --office O --member ID [ID…] [--reason TEXT]"},
        {"register", "register verify"},
        {"policy",
         "policy publish [--emergency [--reason TEXT]] [--out FILE]  |  policy refresh [--out FILE]"},
        {"policy", "policy signer  |  policy show"},
        {"emergency", "emergency clear --reason TEXT [--out FILE]"},
        {"history", "history [ID]"},
        {"verify", "verify"},
        {"export", "export"},
        {"alerts", "alerts"},
        {"office", "office hours OFFICE HH:MM-HH:MM"},
        {"office", "office days OFFICE DAY…  |  office holidays OFFICE [YYYY-MM-DD…]"},
        {"operator", "operator roles ID ROLE [ROLE…]"},
        {"audit", "audit [--office ID] --from DATE --to DATE [--format json|html|csv]"},
        {"ledger", "ledger [--format csv|html|json] --office ID --from DATE --to DATE"},
        {"trace", "trace (--card ID | --operator ID) --since DATE [--format text|json]"},
        {"watch", "watch [--format text|json] [--position FILE] [--interval DURATION] [--once]"},
        {"self-inspection", "self-inspection [--format html|json] --office ID --year YYYY"},
        {"retention", "retention [--years N] [--dry-run]"},
};

/* noun NULL: every command. Returns false when no command has that noun. */
static bool help(const char *noun)
{
        bool any = false;

        for (size_t i = 0; i < ELEMENTSOF(usages); i++)
                if (!noun || streq(usages[i].noun, noun)) {
                        if (!any)
                                printf("Usage: mamori-admin [--config FILE] COMMAND …\n");
                        printf("  %s\n", usages[i].usage);
                        any = true;
                }
        if (any && !noun)
                printf("\n  -c, --config FILE  collector.conf (default /etc/mamori/collector.conf)\n"
                       "  -h, --help         this help; after a noun, that noun's commands\n"
                       "      --version      show the version\n"
                       "See mamori-admin(8).\n");
        return any;
}

static bool help_noun_exists(const char *noun)
{
        for (size_t i = 0; i < ELEMENTSOF(usages); i++)
                if (streq(usages[i].noun, noun))
                        return true;
        return false;
}

static bool is_help(const char *arg)
{
        return arg && (streq(arg, "--help") || streq(arg, "-h") || streq(arg, "help"));
}

static void diag(void *userdata, enum conf_level level, const char *file, unsigned line, const char *message)
{
        fprintf(stderr, "%s:%u: %s: %s\n", file, line, level == CONF_ERROR ? "error" : "warning", message);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        const char *config_path = "/etc/mamori/collector.conf";
        AdminContext ctx = {};
        int c, r, ret = 2;

        while ((c = getopt_long(argc, argv, "+c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'h':
                        help(NULL);
                        return 0;
                case 'V':
                        printf("mamori-admin %s\n", MAMORI_VERSION);
                        return 0;
                default:
                        return 2;
                }
        if (optind >= argc) {
                help(NULL);
                return 2;
        }
        const char *noun = argv[optind], *verb = optind + 1 < argc ? argv[optind + 1] : NULL;
        /* "help", "NOUN --help", "NOUN VERB --help": the commands of that noun. */
        if (is_help(noun))
                return help(NULL) ? 0 : 2;
        for (int i = optind + 1; i < argc; i++)
                if (is_help(argv[i]) && !streq(argv[i], "help"))
                        return help(noun)
                                       ? 0
                                       : (fprintf(stderr, "mamori-admin: unknown command '%s'\n", noun), 2);
        const Verb *v = NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].noun, noun) && (!verbs[i].verb || (verb && streq(verbs[i].verb, verb)))) {
                        v = &verbs[i];
                        break;
                }
        if (!v) {
                bool known = help_noun_exists(noun);
                fprintf(stderr, "mamori-admin: unknown command '%s%s%s' (see mamori-admin %s%s--help)\n",
                        noun, verb ? " " : "", verb ? verb : "", known ? noun : "", known ? " " : "");
                return 2;
        }
        r = collector_config_load(config_path, diag, NULL, &ctx.config);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot load %s: %s\n", config_path, strerror(-r));
                return 1;
        }
        int first = optind + (v->verb ? 1 : 0);
        ret = v->run(&ctx, argc - first, argv + first);
        store_close(ctx.store);
        collector_config_free(&ctx.config);
        return ret;
}
