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
                int r = store_open(ctx->config.database, &ctx->store);
                if (r < 0) {
                        fprintf(stderr, "mamori-admin: cannot open database %s: %s\n", ctx->config.database,
                                strerror(-r));
                        return r;
                }
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

/* ---- operators ---- */

/* Appends the ids to a space-separated list. */
static int list_append(char **list, const char *id)
{
        char *n;
        if (asprintf(&n, "%s%s%s", *list ? *list : "", *list ? " " : "", id) < 0)
                return -ENOMEM;
        free(*list);
        *list = n;
        return 0;
}

static int verb_operator_add(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"name", required_argument, NULL, 'n'},
                {"office", required_argument, NULL, 'o'},
                {},
        };
        _cleanup_free_ char *offices = NULL;
        const char *name = NULL;
        Store *s;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "n:o:", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        name = optarg;
                        break;
                case 'o':
                        if (!check_id("office", optarg) || list_append(&offices, optarg) < 0)
                                return 2;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || !offices) {
                fprintf(stderr, "usage: mamori-admin operator add ID [--name N] --office O [--office O…]\n");
                return 2;
        }
        if (!check_id("operator id", argv[optind]))
                return 2;
        if (name && strlen(name) > 256) {
                fprintf(stderr, "mamori-admin: name longer than 256 bytes\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        if (in_transaction(s, store_operator_add(s, admin_now_usec(), argv[optind], name, offices),
                           "operator add"))
                return 1;
        printf("operator %s added\n", argv[optind]);
        return 0;
}

/* operator suspend|retire|resume ID [--reason TEXT] and card suspend|return|resume CARD [--reason TEXT] */
static int status_change(AdminContext *ctx, int argc, char **argv, bool card, const char *status,
                         bool need_reason)
{
        static const struct option options[] = {
                {"reason", required_argument, NULL, 'r'},
                {},
        };
        const char *reason = NULL;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "r:", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || (need_reason && !reason)) {
                fprintf(stderr, "usage: mamori-admin %s %s ID%s\n", card ? "card" : "operator", argv[0],
                        need_reason ? " --reason TEXT" : " [--reason TEXT]");
                return 2;
        }
        if (card ? !hex_lower_valid(argv[optind], 64) : !id_valid(argv[optind])) {
                fprintf(stderr, "mamori-admin: invalid %s '%s'\n",
                        card ? "card id (64 lowercase hex)" : "operator id", argv[optind]);
                return 2;
        }
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        r = card ? store_card_set_status(s, admin_now_usec(), argv[optind], status, reason)
                 : store_operator_set_status(s, admin_now_usec(), argv[optind], status, reason);
        if (in_transaction(s, r, card ? "card" : "operator"))
                return 1;
        printf("%s %s is now %s\n", card ? "card" : "operator", argv[optind], status);
        return 0;
}

/* ---- cards ---- */

static int verb_card_issue(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"cert", required_argument, NULL, 'c'},
                {"operator", required_argument, NULL, 'o'},
                {"group", required_argument, NULL, 'g'},
                {},
        };
        const char *cert_path = NULL, *op = NULL, *group = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        _cleanup_free_ char *pem = NULL;
        char card_id[SHA256_HEX_MAX];
        size_t size;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:o:g:", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        cert_path = optarg;
                        break;
                case 'o':
                        op = optarg;
                        break;
                case 'g':
                        group = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || !cert_path || !!op == !!group) {
                fprintf(stderr,
                        "usage: mamori-admin card issue --cert CERT.pem (--operator ID | --group G)\n");
                return 2;
        }
        if (!check_id(op ? "operator id" : "group id", op ?: group))
                return 2;
        r = pki_load_cert(cert_path, &cert);
        if (r >= 0)
                r = pki_cert_sha256_hex(cert, card_id);
        if (r >= 0)
                r = read_file_bounded(cert_path, PEM_FILE_MAX, &pem, &size);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot read certificate %s: %s\n", cert_path, strerror(-r));
                return 1;
        }
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        r = store_card_issue(s, admin_now_usec(), card_id, pem, op, group);
        if (r == -ENOENT) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: %s %s is not registered\n", op ? "operator" : "group",
                        op ?: group);
                return 1;
        }
        if (in_transaction(s, r, "card issue"))
                return 1;
        printf("%s\n", card_id);
        return 0;
}

static int print_history(int64_t ts, const char *object, const char *id, const char *action,
                         const char *detail, void *userdata)
{
        time_t t = (time_t)(ts / 1000000);
        struct tm tm;
        char when[32];

        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s\t%s\t%s\t%s\t%s\n", when, object, id, action, detail);
        return 0;
}

static int verb_history(AdminContext *ctx, int argc, char **argv, const char *object)
{
        Store *s;
        if (argc > 2) {
                fprintf(stderr, "usage: mamori-admin %s history [ID]\n", object ? object : "card");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        return store_history_foreach(s, object, argc == 2 ? argv[1] : NULL, print_history, NULL) < 0 ? 1 : 0;
}

/* ---- groups ---- */

static int verb_group_add(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"office", required_argument, NULL, 'o'},
                {"member", required_argument, NULL, 'm'},
                {},
        };
        _cleanup_free_ char *offices = NULL, *members = NULL;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:m:", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        if (!check_id("office", optarg) || list_append(&offices, optarg) < 0)
                                return 2;
                        break;
                case 'm':
                        if (!check_id("operator id", optarg) || list_append(&members, optarg) < 0)
                                return 2;
                        break;
                default:
                        return 2;
                }
        /* "--member A B C": the ids after the group id are members too. */
        if (optind >= argc || !offices) {
                fprintf(stderr, "usage: mamori-admin group add G --office O --member ID [ID…]\n");
                return 2;
        }
        const char *id = argv[optind];
        if (!check_id("group id", id))
                return 2;
        for (int i = optind + 1; i < argc; i++)
                if (!check_id("operator id", argv[i]) || list_append(&members, argv[i]) < 0)
                        return 2;
        if (!members) {
                fprintf(stderr, "mamori-admin: a group needs at least one --member\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        r = store_group_add(s, admin_now_usec(), id, offices, members);
        if (in_transaction(s, r,
                           r == -ENOENT ? "group add: a member is not a registered operator" : "group add"))
                return 1;
        printf("group %s added\n", id);
        return 0;
}

/* ---- dispatch ---- */

typedef struct Verb {
        const char *noun, *verb;
        int (*run)(AdminContext *ctx, int argc, char **argv);
} Verb;

static int op_suspend(AdminContext *c, int argc, char **argv)
{
        return status_change(c, argc, argv, false, "suspended", false);
}
static int op_retire(AdminContext *c, int argc, char **argv)
{
        return status_change(c, argc, argv, false, "retired", false);
}
static int op_resume(AdminContext *c, int argc, char **argv)
{
        return status_change(c, argc, argv, false, "active", false);
}
static int card_suspend(AdminContext *c, int argc, char **argv)
{
        return status_change(c, argc, argv, true, "suspended", true);
}
static int card_return(AdminContext *c, int argc, char **argv)
{
        return status_change(c, argc, argv, true, "returned", false);
}
static int card_resume(AdminContext *c, int argc, char **argv)
{
        return status_change(c, argc, argv, true, "active", true);
}
static int card_history(AdminContext *c, int argc, char **argv)
{
        return verb_history(c, argc, argv, "card");
}
static int all_history(AdminContext *c, int argc, char **argv)
{
        return verb_history(c, argc, argv, NULL);
}

static const Verb verbs[] = {
        {"init", NULL, admin_init},
        {"collector", "renew", admin_collector_renew},
        {"terminal", "add", admin_terminal_add},
        {"terminal", "rekey", admin_terminal_rekey},
        {"terminal", "retire", admin_terminal_retire},
        {"operator", "add", verb_operator_add},
        {"operator", "suspend", op_suspend},
        {"operator", "retire", op_retire},
        {"operator", "resume", op_resume},
        {"card", "issue", verb_card_issue},
        {"card", "suspend", card_suspend},
        {"card", "return", card_return},
        {"card", "resume", card_resume},
        {"card", "history", card_history},
        {"group", "add", verb_group_add},
        {"policy", "publish", admin_policy_publish},
        {"policy", "refresh", admin_policy_refresh},
        {"policy", "signer", admin_policy_signer},
        {"emergency", "clear", admin_emergency_clear},
        {"policy", "show", admin_policy_show},
        {"history", NULL, all_history},
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
        {"init", "init [--name HOST]…"},
        {"collector", "collector renew [--name HOST]…"},
        {"terminal", "terminal add --request FILE --office O --out FILE [--url URL]"},
        {"terminal", "terminal rekey --request FILE --out FILE [--url URL]"},
        {"terminal", "terminal retire ID --reason TEXT"},
        {"operator", "operator add ID [--name N] --office O [--office O…]"},
        {"operator", "operator suspend|retire|resume ID [--reason TEXT]"},
        {"card", "card issue --cert CERT.pem (--operator ID | --group G)"},
        {"card", "card suspend CARD_ID --reason TEXT  |  card return CARD_ID [--reason TEXT]"},
        {"card", "card resume CARD_ID --reason TEXT   |  card history [CARD_ID]"},
        {"group", "group add G --office O --member ID [ID…]"},
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
