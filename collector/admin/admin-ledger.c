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
        const char *from = NULL, *to = NULL, *format = "csv";
        AuditContext a = {};
        Ledger l = {};
        AuditOptions o;
        int c, r;

        audit_options_default(&o);
        optind = 0;
        while ((c = getopt_long(argc, argv, "o:f:t:F:", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        o.office = optarg;
                        break;
                case 'f':
                        from = optarg;
                        break;
                case 't':
                        to = optarg;
                        break;
                case 'F':
                        format = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || !o.office || !from || !to) {
                fprintf(stderr, "usage: mamori-admin ledger --office ID --from DATE --to DATE "
                                "[--format csv|html|json]\n");
                return 2;
        }
        if (admin_check_format(format, "csv|html|json") < 0 || admin_parse_window(from, to, &o) < 0)
                return 2;
        o.now = admin_now_usec();
        if (audit_report_init(&l.rep) < 0)
                return 1;
        l.rep.from_s = from;
        l.rep.to_s = to;
        l.rep.office = o.office;
        l.rep.from = o.from;
        l.rep.to = o.to;
        l.rep.title_ja = "端末使用簿";
        l.rep.title_en = "Terminal usage ledger";
        r = admin_audit_setup(&a, ctx, &o, ledger_on_finding, ledger_on_session, &l);
        if (r >= 0)
                r = audit_run_stream(a.store, a.stream, a.engine, "ledger");
        if (r >= 0)
                r = l.error ?: audit_report_error(&l.rep);
        if (r < 0) {
                if (r != -ENOENT && r != -EIO)
                        fprintf(stderr, "mamori-admin: ledger failed: %s\n", strerror(-r));
                admin_audit_done(&a);
                audit_report_done(&l.rep);
                free(l.rows);
                return 1;
        }
        l.rep.n_stats = audit_engine_operator_stats(a.engine, &l.rep.stats);
        ledger_finish(&l);
        if (streq(format, "csv"))
                ledger_csv(stdout, &l);
        else if (streq(format, "json"))
                ledger_json(stdout, &l);
        else
                ledger_html(stdout, &l);
        r = fflush(stdout) == 0 ? 0 : 1;
        if (r)
                fprintf(stderr, "mamori-admin: cannot write the ledger: %m\n");
        admin_audit_done(&a);
        audit_report_done(&l.rep);
        free(l.rows);
        return r;
}
