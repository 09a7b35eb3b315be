/* mamori-admin: the centre's CLI — PKI, terminals, operators, cards (the 発行簿), groups, policy, audit. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
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
                _cleanup_free_ char *actor = admin_actor(), *why = NULL;
                /* Before anything is read or changed: a role that may not do it all changes nothing. */
                int r = store_open_checked(ctx->config.database, ctx->access, &ctx->store, &why);
                if (r < 0) {
                        fprintf(stderr, "mamori-admin: %s: %s\n", ctx->command, why ?: strerror(-r));
                        return r;
                }
                /* Every register change made through this run names who made it. */
                r = actor ? store_set_actor(ctx->store, actor) : -ENOMEM;
                if (r < 0) {
                        fprintf(stderr, "mamori-admin: cannot name who runs this: %s; run it again\n",
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

bool admin_check_id(const char *what, const char *s)
{
        return check_id(what, s);
}

/* ---- dispatch ---- */

typedef struct Verb {
        const char *noun, *verb;
        int (*run)(AdminContext *ctx, int argc, char **argv);
        StoreAccess access; /* what it does with the store (admin_store()) */
} Verb;

#define READ     STORE_ACCESS_READ
#define REGISTER STORE_ACCESS_REGISTER

static const Verb verbs[] = {
        {"init", NULL, admin_init, REGISTER},
        {"collector", "renew", admin_collector_renew, REGISTER},
        {"terminal", "add", admin_terminal_add, REGISTER},
        {"terminal", "rekey", admin_terminal_rekey, REGISTER},
        {"terminal", "retire", admin_terminal_retire, REGISTER},
        {"operator", "add", admin_operator_add, REGISTER},
        {"operator", "suspend", admin_operator_suspend, REGISTER},
        {"operator", "retire", admin_operator_retire, REGISTER},
        {"operator", "resume", admin_operator_resume, REGISTER},
        {"operator", "pin-reset", admin_operator_pin_reset, REGISTER},
        {"card", "issue", admin_card_issue, REGISTER},
        {"card", "suspend", admin_card_suspend, REGISTER},
        {"card", "return", admin_card_return, REGISTER},
        {"card", "resume", admin_card_resume, REGISTER},
        {"card", "history", admin_card_history, READ},
        {"cards", NULL, admin_cards, READ},
        {"group", "add", admin_group_add, REGISTER},
        {"register", "verify", admin_register_verify, READ},
        {"policy", "publish", admin_policy_publish, REGISTER},
        {"policy", "refresh", admin_policy_refresh, REGISTER},
        {"policy", "signer", admin_policy_signer, READ},
        {"emergency", "clear", admin_emergency_clear, REGISTER},
        {"policy", "show", admin_policy_show, READ},
        {"history", NULL, admin_history, READ},
        {"verify", NULL, admin_verify, READ},
        {"export", NULL, admin_export, READ},
        {"alerts", NULL, admin_alerts, READ},
        {"office", "hours", admin_office_hours, REGISTER},
        {"office", "days", admin_office_days, REGISTER},
        {"office", "holidays", admin_office_holidays, REGISTER},
        {"operator", "roles", admin_operator_roles, REGISTER},
        {"audit", NULL, admin_audit, READ},
        {"ledger", NULL, admin_ledger, READ},
        {"trace", NULL, admin_trace, READ},
        {"watch", NULL, admin_watch, READ},
        {"self-inspection", NULL, admin_self_inspection, READ},
        {"retention", NULL, admin_retention, STORE_ACCESS_OWNER},
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

        /*
         * The audit verbs read millions of records in pages (store.c's cursor: 512 records, ~250 kB); libpq
         * frees a page's result all at once, glibc gives the top of the heap back to the kernel, and the
         * next page faults it in again: 2.5 µs of the 3 µs a record cost this process (PostgreSQL,
         * measured). Keeping up to 64 MB of freed memory costs a short-lived CLI nothing; it is set here,
         * for this one program, not by the store, whose other users (the collector) keep glibc's default.
         */
        (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);

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
        char command[64];
        snprintf(command, sizeof(command), "%s%s%s", v->noun, v->verb ? " " : "", v->verb ? v->verb : "");
        ctx.access = v->access;
        ctx.command = command;
        ret = v->run(&ctx, argc - first, argv + first);
        store_close(ctx.store);
        collector_config_free(&ctx.config);
        return ret;
}
