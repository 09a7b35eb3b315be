/* mamori-admin audit: the findings of DESIGN §12 over a window, as JSON, CSV or an HTML report. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "audit-report.h"
#include "mamori/parse-util.h"

int admin_parse_days(const char *what, const char *s, int64_t *ret)
{
        uint64_t d;
        if (parse_uint64(s, 36500, &d) < 0 || d == 0) {
                fprintf(stderr, "mamori-admin: %s wants a number of days (1..36500), not '%s'\n", what, s);
                return -EINVAL;
        }
        *ret = (int64_t)d * AUDIT_DAY;
        return 0;
}

int admin_check_format(const char *format, const char *allowed)
{
        size_t n = strlen(format);
        for (const char *p = allowed; *p;) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                if (len == n && strneq(p, format, n))
                        return 0;
                p = bar ? bar + 1 : p + len;
        }
        fprintf(stderr, "mamori-admin: --format must be one of %s\n", allowed);
        return -EINVAL;
}

int admin_parse_window(const char *from_s, const char *to_s, AuditOptions *o)
{
        int r = audit_parse_window(from_s, to_s, &o->from, &o->to);
        if (r == -EINVAL)
                fprintf(stderr, "mamori-admin: --from/--to want a date YYYY-MM-DD (local time)\n");
        else if (r < 0)
                fprintf(stderr, "mamori-admin: --to is before --from\n");
        return r;
}

/* Open the registry and the stream, check the office, and make an engine for them. */
int admin_audit_setup(AuditContext *a, AdminContext *ctx, const AuditOptions *o, audit_finding_fn found,
                      audit_session_fn session, void *userdata, const char *what)
{
        int r;

        if (admin_store(ctx, &a->store) < 0)
                return -EIO;
        r = admin_registry_load(ctx, a->store, what, "no report written", &a->reg);
        if (r < 0)
                return r;
        if (o->office && !audit_registry_office_exists(a->reg, o->office)) {
                fprintf(stderr, "mamori-admin: unknown office '%s' (see mamori-admin policy show)\n",
                        o->office);
                return -ENOENT;
        }
        /*
         * Every log from its start (or retention anchor), whatever the window: findings inside it depend
         * on records before it without bound — secret-overdue on the operator's last change and on whether
         * it was reported since (once per change), a burst on failures chained < 10 min apart, a session
         * opened before the window (card-on-two-terminals, card-left), a terminal's last record (silent,
         * a new log without agent.stop). Starting at the window (audit_stream_open's since) reports another
         * or no secret-overdue for windows that begin after an operator's first 183 days (measured on
         * test_audit's world): a bounded read needs that state kept, not re-read.
         */
        r = audit_stream_open(a->store, 0, &a->stream);
        if (r >= 0)
                r = audit_engine_new(o, a->reg, audit_stream_n_logs(a->stream), found, session, userdata,
                                     &a->engine);
        if (r < 0)
                admin_run_failed(ctx, what, "no report written", r);
        return r;
}

void admin_audit_done(AuditContext *a)
{
        audit_engine_free(a->engine);
        audit_stream_free(a->stream);
        audit_registry_free(a->reg);
        *a = (AuditContext){};
}

bool admin_report_option(int c, const char *arg, AuditOptions *o, ReportArgs *args)
{
        switch (c) {
        case 'o':
                o->office = arg;
                return true;
        case 'f':
                args->from = arg;
                return true;
        case 't':
                args->to = arg;
                return true;
        case 'F':
                args->format = arg;
                return true;
        default:
                return false;
        }
}

int admin_report_start(AuditReport *rep, AuditOptions *o, const ReportArgs *args, const char *formats,
                       const char *title_ja, const char *title_en)
{
        if (admin_check_format(args->format, formats) < 0 || admin_parse_window(args->from, args->to, o) < 0)
                return 2;
        o->now = admin_now_usec();
        if (audit_report_init(rep) < 0)
                return 1;
        rep->from_s = args->from;
        rep->to_s = args->to;
        rep->office = o->office;
        rep->from = o->from;
        rep->to = o->to;
        if (title_ja)
                rep->title_ja = title_ja;
        if (title_en)
                rep->title_en = title_en;
        return 0;
}

char *admin_shell_quote(const char *s)
{
        static const char safe[] =
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_";
        size_t n = 2;
        char *q, *o;

        if (*s && strspn(s, safe) == strlen(s))
                return strdup(s);
        for (const char *p = s; *p; p++)
                n += *p == '\'' ? 5 : 1;
        q = o = malloc(n + 1);
        if (!q)
                return NULL;
        *o++ = '\'';
        for (const char *p = s; *p; p++)
                if (*p == '\'')
                        o = stpcpy(o, "'\"'\"'");
                else
                        *o++ = *p;
        *o++ = '\'';
        *o = '\0';
        return q;
}

/*
 * Says once why a run (what: the verb) failed with r and what it leaves (left: "no report written"…):
 * the store's reads, the scan of a stored line or of the register, memory. A read that fails is the
 * database's fault (a corrupt page, a server gone), not a chain's: mamori-admin verify checks the chains
 * only, so the database's own check is named. bad_office: the register was being read, and r is
 * -EBADMSG for that office's working days (the one entry of the register that is parsed).
 */
static void run_failed(AdminContext *ctx, const char *what, const char *left, int r, const char *bad_office)
{
        const char *backend = NULL, *target = NULL;

        if (r == -EBADMSG && bad_office) {
                /* Written by mamori-admin office days, which checks them: only a damaged store or a row
                 * made by hand holds anything else. */
                fprintf(stderr,
                        "mamori-admin: %s failed: the register's working days of office %s cannot be read; "
                        "%s. Set them again (mamori-admin office days %s DAY…, e.g. mon-fri; mamori-admin "
                        "history %s shows what was set) and run the %s again\n",
                        what, bad_office, left, bad_office, bad_office, what);
                return;
        }
        switch (r) {
        case -ENOMEM:
                fprintf(stderr,
                        "mamori-admin: %s failed: out of memory; %s. Free memory on this machine and run "
                        "the %s again\n",
                        what, left, what);
                return;
        case -EBADMSG:
        case -ERANGE:
        case -E2BIG: /* audit-record.c's scanner refused a stored line */
                fprintf(stderr,
                        "mamori-admin: %s failed: a stored record could not be read (%s); %s. Run "
                        "mamori-admin verify to find a broken record; if it finds none, report this as "
                        "a bug\n",
                        what, strerror(-r), left);
                return;
        }
        /* a read of the store: the database failed or went away mid-run */
        (void)store_url_backend(ctx->config.database, &backend, &target);
        if (backend && streq(backend, "sqlite")) {
                _cleanup_free_ char *quoted = admin_shell_quote(target);
                fprintf(stderr,
                        "mamori-admin: %s failed reading the store: %s; %s. Check the database file "
                        "(sqlite3 %s 'PRAGMA integrity_check'; restore it from a backup if that reports "
                        "errors) and run the %s again\n",
                        what, strerror(-r), left, quoted ?: target, what);
        } else
                fprintf(stderr,
                        "mamori-admin: %s failed reading the store: %s; %s. Check the database (the "
                        "PostgreSQL server's log, and that it is reachable) and run the %s again\n",
                        what, strerror(-r), left, what);
}

void admin_run_failed(AdminContext *ctx, const char *what, const char *left, int r)
{
        run_failed(ctx, what, left, r, NULL);
}

int admin_registry_load(AdminContext *ctx, Store *s, const char *what, const char *left, AuditRegistry **ret)
{
        _cleanup_free_ char *bad_office = NULL;
        int r = audit_registry_load(s, ret, &bad_office);

        if (r < 0)
                run_failed(ctx, what, left, r, bad_office);
        return r;
}

int admin_report_run(AuditContext *a, AdminContext *ctx, const AuditOptions *o, AuditReport *rep,
                     audit_finding_fn found, audit_session_fn session, void *userdata, const char *what)
{
        int r = admin_audit_setup(a, ctx, o, found, session, userdata, what);

        if (r < 0)
                return r; /* admin_audit_setup() said why */
        r = audit_run_stream(a->store, a->stream, a->engine, what);
        if (r >= 0)
                r = audit_report_error(rep);
        if (r < 0) {
                admin_run_failed(ctx, what, "no report written", r);
                return r;
        }
        rep->n_stats = audit_engine_operator_stats(a->engine, &rep->stats);
        return 0;
}

int admin_report_written(void)
{
        if (fflush(stdout) == 0)
                return 0;
        fprintf(stderr, "mamori-admin: cannot write the report: %m\n");
        return 1;
}

int admin_audit(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"from", required_argument, NULL, 'f'},
                {"to", required_argument, NULL, 't'},
                {"office", required_argument, NULL, 'o'},
                {"format", required_argument, NULL, 'F'},
                {"silent-days", required_argument, NULL, 's'},
                {"max-age-days", required_argument, NULL, 'm'},
                {},
        };
        ReportArgs args = {.format = "json"};
        AuditContext a = {};
        AuditReport rep;
        AuditOptions o;
        int c, r;

        audit_options_default(&o);
        optind = 0;
        while ((c = getopt_long(argc, argv, "f:t:o:F:s:m:", options, NULL)) >= 0) {
                if (admin_report_option(c, optarg, &o, &args))
                        continue;
                if (c == 's' && admin_parse_days("--silent-days", optarg, &o.silent_usec) >= 0)
                        continue;
                if (c == 'm' && admin_parse_days("--max-age-days", optarg, &o.max_age_usec) >= 0)
                        continue;
                return 2;
        }
        if (optind != argc || !args.from || !args.to) {
                fprintf(stderr, "usage: mamori-admin audit --from DATE --to DATE [--office ID] "
                                "[--format json|html|csv] [--silent-days N] [--max-age-days N]\n");
                return 2;
        }
        r = admin_report_start(&rep, &o, &args, "json|html|csv", "操作履歴の監査",
                               "Audit of the operation history");
        if (r != 0)
                return r;
        r = admin_report_run(&a, ctx, &o, &rep, audit_report_on_finding, audit_report_on_session, &rep,
                             "audit");
        if (r >= 0) {
                audit_report_sort(&rep);
                if (streq(args.format, "json"))
                        audit_report_json(stdout, &rep);
                else if (streq(args.format, "csv"))
                        audit_report_csv(stdout, &rep);
                else
                        audit_report_html(stdout, &rep);
                r = admin_report_written();
        }
        admin_audit_done(&a);
        audit_report_done(&rep);
        return r < 0 ? 1 : r;
}
