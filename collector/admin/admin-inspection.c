/*
 * mamori-admin self-inspection: the yearly per-rule summary of one office, in the order of the prefectures'
 * self-inspection checklists (card handling, PIN change, leaving the seat, ledger, log integrity,
 * emergencies, training), with counts per operator and per terminal — what a security manager signs.
 * Every §12 kind belongs to exactly one checklist item (checklist[] below).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "audit-report.h"
#include "mamori/parse-util.h"

typedef struct Item {
        const char *section, *section_ja, *section_en;
        const char *id, *ja, *en;
        AuditKind kinds[4];
        unsigned n_kinds; /* 0: filled in by hand (training) */
} Item;

static const Item checklist[] = {
        {"card-handling",
         "ICカードの管理",
         "Card handling",
         "card-personal",
         "カードの貸与・共用はないか",
         "No card lent or shared",
         {AUDIT_CARD_ON_TWO_TERMINALS, AUDIT_LENDING_SUSPECTED, AUDIT_GROUP_WITHOUT_MEMBER},
         3},
        {"card-handling",
         "ICカードの管理",
         "Card handling",
         "card-status",
         "資格停止・返納カードが使われていないか",
         "No suspended or returned card used",
         {AUDIT_SUSPENDED_CARD_USED, AUDIT_RETURNED_CARD_USED},
         2},
        {"pin-change",
         "暗証番号・パスワードの管理",
         "PIN and password",
         "pin-age",
         "暗証番号・パスワードを期限内に変更しているか",
         "PIN/password changed within MaxAgeDays",
         {AUDIT_SECRET_OVERDUE},
         1},
        {"pin-change",
         "暗証番号・パスワードの管理",
         "PIN and password",
         "auth-failures",
         "認証の連続失敗はないか",
         "No bursts of failed PINs, passwords or fingerprints",
         {AUDIT_PIN_FAILURES_BURST, AUDIT_FINGER_FAILURES_BURST},
         2},
        {"leaving-seat",
         "離席時の対応",
         "Leaving the seat",
         "card-left",
         "離席時にカードを抜いているか",
         "Card taken out when leaving the seat",
         {AUDIT_CARD_LEFT},
         1},
        {"leaving-seat",
         "離席時の対応",
         "Leaving the seat",
         "lock",
         "画面ロックが回避されていないか",
         "Screen lock never bypassed",
         {AUDIT_LOCK_BYPASSED},
         1},
        {"ledger",
         "使用簿・利用状況",
         "Usage ledger",
         "hours",
         "業務時間外の使用はないか",
         "No use outside office hours",
         {AUDIT_OUTSIDE_HOURS},
         1},
        {"ledger",
         "使用簿・利用状況",
         "Usage ledger",
         "app-ops",
         "業務上必要のない照会の疑いはないか",
         "No unusual number of application operations",
         {AUDIT_APP_OPS_UNUSUAL},
         1},
        {"log-integrity",
         "操作履歴の保全",
         "Operation log integrity",
         "log-complete",
         "操作履歴に欠落・改ざんはないか",
         "Operation logs complete and untampered",
         {AUDIT_LOG_GAP, AUDIT_LOG_FORK, AUDIT_LOG_BAD_SIGNATURE},
         3},
        {"log-integrity",
         "操作履歴の保全",
         "Operation log integrity",
         "terminal-reporting",
         "全端末から操作履歴が届いているか",
         "Every terminal reporting",
         {AUDIT_TERMINAL_SILENT},
         1},
        {"emergency",
         "緊急時の対応",
         "Emergencies",
         "emergency",
         "緊急ロックの記録を確認したか",
         "Emergency locks reviewed",
         {AUDIT_EMERGENCY},
         1},
        {"training",
         "研修",
         "Training",
         "training",
         "セキュリティ研修を全操作者が受講したか（記入）",
         "Security training attended by every operator (fill in)",
         {},
         0},
};

static uint64_t item_count(const Item *it, const AuditReport *rep)
{
        uint64_t n = 0;
        for (unsigned k = 0; k < it->n_kinds; k++)
                n += rep->counts[it->kinds[k]];
        return n;
}

static uint64_t op_kind_count(const AuditReport *rep, const char *op, AuditKind k)
{
        uint64_t n = 0;
        for (size_t i = 0; i < rep->n_findings; i++)
                n += rep->findings[i].kind == k && streq(rep->findings[i].op, op);
        return n;
}

static int cmp_stats(const void *a, const void *b)
{
        return strcmp(((const AuditOperatorStats *)a)->op, ((const AuditOperatorStats *)b)->op);
}

static void json_out(FILE *f, const AuditReport *rep, int year)
{
        fputs("{\"checklist\":[", f);
        for (size_t i = 0; i < ELEMENTSOF(checklist); i++) {
                const Item *it = &checklist[i];
                fputs(i ? ",\n" : "\n", f);
                fprintf(f, "{\"en\":");
                audit_json_string(f, it->en);
                fprintf(f, ",\"id\":\"%s\",\"ja\":", it->id);
                audit_json_string(f, it->ja);
                fputs(",\"kinds\":[", f);
                for (unsigned k = 0; k < it->n_kinds; k++)
                        fprintf(f, "%s\"%s\"", k ? "," : "", audit_kind_name(it->kinds[k]));
                if (it->n_kinds)
                        fprintf(f, "],\"count\":%" PRIu64 ",\"result\":\"%s\"", item_count(it, rep),
                                item_count(it, rep) ? "check" : "ok");
                else
                        fputs("],\"count\":null,\"result\":\"to-fill\"", f);
                fprintf(f, ",\"section\":\"%s\"}", it->section);
        }
        fputs("],\n\"from\":", f);
        audit_json_string(f, rep->from_s);
        fputs(",\"office\":", f);
        audit_json_string(f, rep->office);
        fputs(",\"operators\":[", f);
        for (size_t i = 0; i < rep->n_stats; i++) {
                const AuditOperatorStats *s = &rep->stats[i];
                fputs(i ? ",\n" : "\n", f);
                fprintf(f,
                        "{\"app_ops\":%" PRIu64 ",\"auth_failures\":%" PRIu64 ",\"card_left\":%" PRIu64
                        ",\"findings\":{",
                        s->app_ops, s->auth_failures, s->card_left);
                bool first = true;
                for (int k = 0; k < _AUDIT_KIND_MAX; k++) {
                        uint64_t n = op_kind_count(rep, s->op, (AuditKind)k);
                        if (n) {
                                fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",",
                                        audit_kind_name((AuditKind)k), n);
                                first = false;
                        }
                }
                fputs("},\"last_pin_change\":", f);
                if (s->last_pin_change)
                        fprintf(f, "%" PRId64, s->last_pin_change);
                else
                        fputs("null", f);
                fputs(",\"op\":", f);
                audit_json_string(f, s->op);
                fprintf(f, ",\"pin_changes\":%" PRIu64 ",\"sessions\":%" PRIu64 "}", s->pin_changes,
                        s->sessions);
        }
        fprintf(f,
                "],\n\"sessions\":%" PRIu64
                ",\"signature\":{\"date\":null,\"security_manager\":null},\"to\":",
                rep->sessions);
        audit_json_string(f, rep->to_s);
        fprintf(f, ",\"year\":%d}\n", year);
}

static void html_out(FILE *f, const AuditReport *rep, int year)
{
        char sub[256];
        snprintf(sub, sizeof(sub), "%d年 / year %d　事務所 / office: %s　セッション / sessions: %" PRIu64,
                 year, year, rep->office, rep->sessions);
        audit_html_begin(f, "自己点検結果", "Self-inspection", sub);
        const char *section = NULL;
        fputs("<table><thead><tr><th>点検項目 <span class=\"en\">item</span></th><th>件数 <span "
              "class=\"en\">count"
              "</span></th><th>結果 <span class=\"en\">result</span></th><th>根拠 <span "
              "class=\"en\">kinds</span>"
              "</th></tr></thead><tbody>\n",
              f);
        for (size_t i = 0; i < ELEMENTSOF(checklist); i++) {
                const Item *it = &checklist[i];
                if (!section || !streq(section, it->section)) {
                        section = it->section;
                        fputs("<tr><th colspan=\"4\" style=\"text-align:left\">", f);
                        audit_html_text(f, it->section_ja);
                        fputs(" <span class=\"en\">", f);
                        audit_html_text(f, it->section_en);
                        fputs("</span></th></tr>\n", f);
                }
                uint64_t n = item_count(it, rep);
                fprintf(f, "<tr class=\"%s\"><td>", it->n_kinds && n ? "medium" : "");
                audit_html_text(f, it->ja);
                fputs("<br><span class=\"en\">", f);
                audit_html_text(f, it->en);
                if (it->n_kinds)
                        fprintf(f, "</span></td><td class=\"num\">%" PRIu64 "</td><td>%s</td><td>", n,
                                n ? "要確認 <span class=\"en\">check</span>"
                                  : "適 <span class=\"en\">ok</span>");
                else
                        fputs("</span></td><td></td><td>□ 済 / done　□ 未 / not yet</td><td>", f);
                for (unsigned k = 0; k < it->n_kinds; k++)
                        fprintf(f, "%s%s", k ? "<br>" : "", audit_kind_name(it->kinds[k]));
                fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n<h2>操作者別 <span class=\"en\">Per operator</span></h2>\n"
              "<table><thead><tr><th>操作者<br><span class=\"en\">op</span></th><th>セッション<br><span "
              "class=\"en\">"
              "sessions</span></th><th>業務操作<br><span class=\"en\">app "
              "ops</span></th><th>認証失敗<br><span "
              "class=\"en\">auth failures</span></th><th>カード放置<br><span class=\"en\">card "
              "left</span></th>"
              "<th>PIN変更<br><span class=\"en\">PIN changes</span></th><th>最終変更<br><span "
              "class=\"en\">last "
              "change</span></th><th>指摘<br><span class=\"en\">findings</span></th><th>研修受講日<br><span "
              "class=\"en\">training date</span></th></tr></thead><tbody>\n",
              f);
        for (size_t i = 0; i < rep->n_stats; i++) {
                const AuditOperatorStats *s = &rep->stats[i];
                char last[16] = "—";
                uint64_t findings = 0;
                if (s->last_pin_change)
                        audit_format_date(s->last_pin_change, last, sizeof(last));
                for (size_t k = 0; k < rep->n_findings; k++)
                        findings += streq(rep->findings[k].op, s->op);
                fputs("<tr><td>", f);
                audit_html_text(f, s->op);
                fprintf(f,
                        "</td><td class=\"num\">%" PRIu64 "</td><td class=\"num\">%" PRIu64
                        "</td><td class=\"num\">%" PRIu64 "</td><td class=\"num\">%" PRIu64
                        "</td><td class=\"num\">%" PRIu64 "</td><td>%s</td><td class=\"num\">%" PRIu64
                        "</td><td></td></tr>\n",
                        s->sessions, s->app_ops, s->auth_failures, s->card_left, s->pin_changes, last,
                        findings);
        }
        fputs("</tbody></table>\n<h2>グラフ <span class=\"en\">Charts</span></h2>\n", f);
        audit_html_chart_findings_per_month(f, rep);
        audit_html_chart_failures_per_operator(f, rep);
        audit_html_chart_sessions_per_day(f, rep);
        fputs("<h2>指摘一覧 <span class=\"en\">Findings</span></h2>\n", f);
        audit_html_findings_table(f, rep);
        fputs("<h2>確認 <span class=\"en\">Sign-off</span></h2>\n<table "
              "class=\"sign\"><tr><th>セキュリティ管理者 / "
              "security manager</th><td style=\"width:45%\"></td><th>日付 / "
              "date</th><td></td></tr></table>\n",
              f);
        audit_html_end(f);
}

int admin_self_inspection(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"office", required_argument, NULL, 'o'},
                {"year", required_argument, NULL, 'y'},
                {"format", required_argument, NULL, 'F'},
                {},
        };
        ReportArgs args = {.format = "html"};
        char from[16], to[16];
        uint64_t year = 0;
        AuditContext a = {};
        AuditReport rep;
        AuditOptions o;
        int c, r;

        audit_options_default(&o);
        optind = 0;
        while ((c = getopt_long(argc, argv, "o:y:F:", options, NULL)) >= 0) {
                if (c != 'y' && admin_report_option(c, optarg, &o, &args))
                        continue;
                if (c != 'y')
                        return 2;
                if (parse_uint64(optarg, 9999, &year) < 0 || year < 1970) {
                        fprintf(stderr, "mamori-admin: --year wants a year such as 2026\n");
                        return 2;
                }
        }
        if (optind != argc || !o.office || !year) {
                fprintf(stderr, "usage: mamori-admin self-inspection --office ID --year YYYY [--format "
                                "html|json]\n");
                return 2;
        }
        snprintf(from, sizeof(from), "%04d-01-01", (int)year);
        snprintf(to, sizeof(to), "%04d-12-31", (int)year);
        args.from = from;
        args.to = to;
        r = admin_report_start(&rep, &o, &args, "html|json", NULL, NULL);
        if (r != 0)
                return r;
        r = admin_report_run(&a, ctx, &o, &rep, audit_report_on_finding, audit_report_on_session, &rep,
                             "self-inspection");
        if (r >= 0) {
                if (rep.n_stats)
                        qsort((void *)rep.stats, rep.n_stats, sizeof(AuditOperatorStats), cmp_stats);
                audit_report_sort(&rep);
                if (streq(args.format, "json"))
                        json_out(stdout, &rep, (int)year);
                else
                        html_out(stdout, &rep, (int)year);
                r = admin_report_written();
        }
        admin_audit_done(&a);
        audit_report_done(&rep);
        return r < 0 ? 1 : r;
}
