/* mamori-admin ledger: the digital usage ledger (使用簿) of one office, one row per session. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "ledger.h"

int admin_ledger(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"office", required_argument, NULL, 'o'},
                {"from", required_argument, NULL, 'f'},
                {"to", required_argument, NULL, 't'},
                {"format", required_argument, NULL, 'F'},
                {},
        };
        ReportArgs args = {.format = "csv"};
        AuditContext a = {};
        Ledger l = {};
        AuditOptions o;
        int c, r;

        audit_options_default(&o);
        optind = 0;
        while ((c = getopt_long(argc, argv, "o:f:t:F:", options, NULL)) >= 0)
                if (!admin_report_option(c, optarg, &o, &args))
                        return 2;
        if (optind != argc || !o.office || !args.from || !args.to) {
                fprintf(stderr, "usage: mamori-admin ledger --office ID --from DATE --to DATE "
                                "[--format csv|html|json]\n");
                return 2;
        }
        r = admin_report_start(&l.rep, &o, &args, "csv|html|json", "端末使用簿", "Terminal usage ledger");
        if (r != 0)
                return r;
        r = admin_report_run(&a, ctx, &o, &l.rep, ledger_on_finding, ledger_on_session, &l, "ledger");
        if (r >= 0 && l.error < 0) {
                admin_run_failed(ctx, "ledger", "no report written", l.error);
                r = l.error;
        }
        if (r >= 0) {
                ledger_finish(&l);
                if (streq(args.format, "csv"))
                        ledger_csv(stdout, &l);
                else if (streq(args.format, "json"))
                        ledger_json(stdout, &l);
                else
                        ledger_html(stdout, &l);
                r = admin_report_written();
        }
        admin_audit_done(&a);
        audit_report_done(&l.rep);
        free(l.rows);
        return r < 0 ? 1 : r;
}
