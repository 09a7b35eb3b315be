/* The HTML reports (audit, ledger): self-contained pages, A4 print styles, Japanese with English beside. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit-report.h"
#include "ledger.h"
#include "svg-chart.h"

void audit_html_begin(FILE *f, const char *title_ja, const char *title_en, const char *subtitle)
{
        fputs("<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width\">\n"
              "<link rel=\"icon\" href=\"data:,\">\n<title>",
              f);
        audit_html_text(f, title_ja);
        fputs(" / ", f);
        audit_html_text(f, title_en);
        fputs("</title>\n<style>\n"
              "@page { size: A4; margin: 12mm; }\n"
              "body { font-family: 'Noto Sans CJK JP', 'IPAexGothic', 'Takao Gothic', sans-serif; "
              "font-size: 10pt;"
              " color: #111; max-width: 186mm; margin: 8mm auto; }\n"
              "h1 { font-size: 16pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm;"
              " border-bottom: 1px solid #444; }\n"
              ".en { color: #555; font-size: 0.85em; font-weight: normal; }\n"
              "table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #999;"
              " padding: 1px 3px; font-size: 8pt; vertical-align: top; }\n"
              "th { background: #eee; } thead { display: table-header-group; } tr { break-inside: avoid; }\n"
              "td.num { text-align: right; } .high { background: #fbd5d5; } .medium { background: #fdf0c8; "
              "}\n"
              "figure { margin: 3mm 0; break-inside: avoid; } figcaption { font-size: 8pt; color: #555; }\n"
              "svg { max-width: 100%; height: auto; } .sign td { height: 14mm; }\n"
              "@media print { body { margin: 0; } h2 { break-after: avoid; } }\n"
              "</style></head><body>\n<h1>",
              f);
        audit_html_text(f, title_ja);
        fputs(" <span class=\"en\">", f);
        audit_html_text(f, title_en);
        fputs("</span></h1>\n<p>", f);
        audit_html_text(f, subtitle);
        fputs("</p>\n", f);
}

void audit_html_end(FILE *f)
{
        fputs("<p class=\"en\">mamori-admin — 署名済み操作履歴から作成 / made from the signed operation "
              "logs</p>\n"
              "</body></html>\n",
              f);
}

static void h2(FILE *f, const char *ja, const char *en)
{
        fputs("<h2>", f);
        audit_html_text(f, ja);
        fputs(" <span class=\"en\">", f);
        audit_html_text(f, en);
        fputs("</span></h2>\n", f);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void audit_html_chart_sessions_per_day(FILE *f, const AuditReport *rep)
{
        size_t n = audit_map_size(rep->per_day), n_terms = 0;
        int64_t first = INT64_MAX, last = INT64_MIN;
        _cleanup_free_ const char **terms = calloc(n ? n : 1, sizeof(char *));
        _cleanup_free_ char *names = calloc(n ? n : 1, AUDIT_ID_MAX);
        if (!terms || !names)
                return;
        for (size_t i = 0; i < n; i++) {
                const char *key;
                audit_map_at(rep->per_day, i, &key);
                const char *sep = strchr(key, '\x1f');
                int64_t day = strtoll(sep + 1, NULL, 10);
                first = day < first ? day : first;
                last = day > last ? day : last;
                size_t len = (size_t)(sep - key);
                bool seen = false;
                for (size_t k = 0; k < n_terms && !seen; k++)
                        seen = strlen(terms[k]) == len && strneq(terms[k], key, len);
                if (!seen && len < AUDIT_ID_MAX) {
                        char *slot = names + n_terms * AUDIT_ID_MAX;
                        memcpy(slot, key, len);
                        slot[len] = 0;
                        terms[n_terms++] = slot;
                }
        }
        if (rep->from > 0)
                first = audit_local_day(rep->from);
        if (rep->to < INT64_MAX && audit_local_day(rep->to - 1) >= first)
                last = audit_local_day(rep->to - 1);
        if (n_terms == 0 || last < first || last - first > 3700) {
                svg_day_strips(f, "端末ごとの日別セッション数 / Sessions per day per terminal", NULL, 0, 0,
                               NULL, "", "");
                return;
        }
        qsort(terms, n_terms, sizeof(char *), cmp_str);
        size_t n_days = (size_t)(last - first + 1);
        _cleanup_free_ uint64_t *v = calloc(n_terms * n_days, sizeof(uint64_t));
        if (!v)
                return;
        for (size_t i = 0; i < n; i++) {
                const char *key;
                uint64_t *count = audit_map_at(rep->per_day, i, &key);
                const char *sep = strchr(key, '\x1f');
                int64_t day = strtoll(sep + 1, NULL, 10);
                if (day < first || day > last)
                        continue;
                for (size_t k = 0; k < n_terms; k++)
                        if (strlen(terms[k]) == (size_t)(sep - key) &&
                            strneq(terms[k], key, (size_t)(sep - key)))
                                v[k * n_days + (size_t)(day - first)] += *count;
        }
        char a[16], b[16];
        audit_format_date(first * AUDIT_DAY + AUDIT_DAY / 2, a, sizeof(a));
        audit_format_date(last * AUDIT_DAY + AUDIT_DAY / 2, b, sizeof(b));
        svg_day_strips(f, "端末ごとの日別セッション数 / Sessions per day per terminal", terms, n_terms,
                       n_days, v, a, b);
}

static int cmp_stats(const void *a, const void *b)
{
        const AuditOperatorStats *x = *(AuditOperatorStats *const *)a, *y = *(AuditOperatorStats *const *)b;
        if (x->auth_failures != y->auth_failures)
                return x->auth_failures > y->auth_failures ? -1 : 1;
        return strcmp(x->op, y->op);
}

void audit_html_chart_failures_per_operator(FILE *f, const AuditReport *rep)
{
        enum { TOP = 25 };
        const AuditOperatorStats *sorted[TOP];
        _cleanup_free_ const AuditOperatorStats **all =
                calloc(rep->n_stats ? rep->n_stats : 1, sizeof(void *));
        const char *labels[TOP];
        uint64_t values[TOP];
        size_t n = 0, m = 0;
        char buf[TOP][2 * AUDIT_ID_MAX + 4];

        if (!all)
                return;
        for (size_t i = 0; i < rep->n_stats; i++)
                if (rep->stats[i].auth_failures)
                        all[m++] = &rep->stats[i];
        qsort(all, m, sizeof(void *), cmp_stats);
        for (size_t i = 0; i < m && n < TOP; i++) {
                sorted[n] = all[i];
                snprintf(buf[n], sizeof(buf[n]), "%s", sorted[n]->op);
                labels[n] = buf[n];
                values[n] = sorted[n]->auth_failures;
                n++;
        }
        svg_bars(f, "操作者ごとの認証失敗 (上位25) / Authentication failures per operator (top 25)", labels,
                 values, n);
}

void audit_html_chart_findings_per_month(FILE *f, const AuditReport *rep)
{
        enum { MONTHS = 24 };
        int y0 = 0, m0 = 0, y1 = 0, m1 = 0;
        if (rep->n_findings == 0 && rep->from == 0) {
                svg_stacked_columns(f, "月別・種類別の指摘件数 / Findings per kind per month", NULL, 0, NULL,
                                    0, NULL);
                return;
        }
        m0 = audit_local_month(rep->from > 0 ? rep->from : rep->findings[0].ts, &y0);
        int64_t last = rep->to < INT64_MAX
                               ? rep->to - 1
                               : (rep->n_findings ? rep->findings[rep->n_findings - 1].ts : rep->from);
        m1 = audit_local_month(last, &y1);
        int n_cols = (y1 - y0) * 12 + (m1 - m0) + 1;
        if (n_cols < 1)
                n_cols = 1;
        if (n_cols > MONTHS) { /* the last 24 months */
                int shift = n_cols - MONTHS;
                m0 += shift;
                y0 += m0 / 12;
                m0 %= 12;
                n_cols = MONTHS;
        }
        char col_buf[MONTHS][12];
        const char *cols[MONTHS], *series[_AUDIT_KIND_MAX];
        char series_buf[_AUDIT_KIND_MAX][96];
        uint64_t v[_AUDIT_KIND_MAX * MONTHS] = {};
        size_t n_series = 0;
        int kind_series[_AUDIT_KIND_MAX];
        for (int c = 0; c < n_cols; c++) {
                snprintf(col_buf[c], sizeof(col_buf[c]), "%04d-%02d", y0 + (m0 + c) / 12, (m0 + c) % 12 + 1);
                cols[c] = col_buf[c];
        }
        for (int k = 0; k < _AUDIT_KIND_MAX; k++) {
                kind_series[k] = -1;
                if (!rep->counts[k])
                        continue;
                kind_series[k] = (int)n_series;
                snprintf(series_buf[n_series], sizeof(series_buf[0]), "%s %s",
                         audit_kind_label_ja((AuditKind)k), audit_kind_name((AuditKind)k));
                series[n_series] = series_buf[n_series];
                n_series++;
        }
        for (size_t i = 0; i < rep->n_findings; i++) {
                int y, m = audit_local_month(rep->findings[i].ts, &y);
                int c = (y - y0) * 12 + (m - m0), s = kind_series[rep->findings[i].kind];
                if (c >= 0 && c < n_cols && s >= 0)
                        v[(size_t)s * (size_t)n_cols + (size_t)c]++;
        }
        svg_stacked_columns(f, "月別・種類別の指摘件数 / Findings per kind per month", cols, (size_t)n_cols,
                            series, n_series, v);
}

void audit_html_findings_table(FILE *f, const AuditReport *rep)
{
        fputs("<table><thead><tr><th>日時<br><span class=\"en\">time</span></th><th>種類<br><span "
              "class=\"en\">kind"
              "</span></th><th>重要度<br><span class=\"en\">severity</span></th><th>端末<br><span "
              "class=\"en\">term"
              "</span></th><th>操作者<br><span class=\"en\">op</span></th><th>内容<br><span "
              "class=\"en\">why</span>"
              "</th><th>記録<br><span class=\"en\">records</span></th></tr></thead><tbody>\n",
              f);
        for (size_t i = 0; i < rep->n_findings; i++) {
                const AuditFinding *x = &rep->findings[i];
                char when[32];
                audit_format_time(x->ts, when, sizeof(when));
                fprintf(f, "<tr class=\"%s\"><td>%s</td><td>", audit_severity_name(x->severity), when);
                audit_html_text(f, audit_kind_label_ja(x->kind));
                fputs("<br><span class=\"en\">", f);
                audit_html_text(f, audit_kind_name(x->kind));
                fprintf(f, "</span></td><td>%s</td><td>", audit_severity_name(x->severity));
                audit_html_text(f, x->term);
                fputs("</td><td>", f);
                audit_html_text(f, x->op);
                fputs("</td><td>", f);
                audit_html_text(f, x->why);
                fputs("</td><td>", f);
                for (unsigned k = 0; k < x->n_refs; k++)
                        fprintf(f, "%s%.8s…:%" PRIu64, k ? "<br>" : "", x->refs[k].log, x->refs[k].seq);
                fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
}

static void subtitle(char *buf, size_t size, const AuditReport *rep)
{
        snprintf(buf, size, "期間 / period: %s — %s%s%s", rep->from_s ?: "", rep->to_s ?: "",
                 rep->office ? "　事務所 / office: " : "", rep->office ?: "");
}

void audit_report_html(FILE *f, const AuditReport *rep)
{
        char sub[256];
        subtitle(sub, sizeof(sub), rep);
        audit_html_begin(f, rep->title_ja, rep->title_en, sub);
        h2(f, "指摘の概要", "Summary of findings");
        fputs("<table><thead><tr><th>種類 <span class=\"en\">kind</span></th><th>重要度 <span "
              "class=\"en\">severity"
              "</span></th><th>件数 <span class=\"en\">count</span></th></tr></thead><tbody>\n",
              f);
        for (int k = 0; k < _AUDIT_KIND_MAX; k++) {
                fprintf(f, "<tr class=\"%s\"><td>",
                        rep->counts[k] ? audit_severity_name(audit_kind_severity(k)) : "");
                audit_html_text(f, audit_kind_label_ja((AuditKind)k));
                fprintf(f,
                        " <span class=\"en\">%s</span></td><td>%s</td><td class=\"num\">%" PRIu64
                        "</td></tr>\n",
                        audit_kind_name((AuditKind)k), audit_severity_name(audit_kind_severity(k)),
                        rep->counts[k]);
        }
        fputs("</tbody></table>\n", f);
        h2(f, "グラフ", "Charts");
        audit_html_chart_findings_per_month(f, rep);
        audit_html_chart_failures_per_operator(f, rep);
        audit_html_chart_sessions_per_day(f, rep);
        h2(f, "指摘一覧", "Findings");
        audit_html_findings_table(f, rep);
        audit_html_end(f);
}

void ledger_html(FILE *f, const Ledger *l)
{
        char sub[256];
        subtitle(sub, sizeof(sub), &l->rep);
        audit_html_begin(f, l->rep.title_ja, l->rep.title_en, sub);
        audit_html_chart_sessions_per_day(f, &l->rep);
        h2(f, "使用記録", "Sessions");
        fputs("<table><thead><tr><th>端末<br><span class=\"en\">term</span></th><th>操作者<br><span "
              "class=\"en\">op"
              "</span></th><th>認証方式<br><span class=\"en\">method</span></th><th>開始<br><span "
              "class=\"en\">start"
              "</span></th><th>終了<br><span class=\"en\">end</span></th><th>秒<br><span "
              "class=\"en\">seconds</span>"
              "</th><th>終了理由<br><span class=\"en\">end reason</span></th><th>カード<br><span "
              "class=\"en\">card"
              "</span></th><th>違反<br><span class=\"en\">violations</span></th></tr></thead><tbody>\n",
              f);
        for (size_t i = 0; i < l->n; i++) {
                const LedgerRow *r = &l->rows[i];
                char start[32] = "", end[32] = "", secs[24] = "", v[512];
                audit_format_time(r->s.start, start, sizeof(start));
                if (r->s.end) {
                        audit_format_time(r->s.end, end, sizeof(end));
                        snprintf(secs, sizeof(secs), "%" PRId64, (r->s.end - r->s.start) / 1000000);
                }
                ledger_violations_string(r->violations, v, sizeof(v));
                fprintf(f, "<tr%s><td>", r->violations ? " class=\"medium\"" : "");
                audit_html_text(f, r->s.term);
                fputs("</td><td>", f);
                audit_html_text(f, r->s.op);
                fputs("</td><td>", f);
                audit_html_text(f, r->s.method);
                fprintf(f, "</td><td>%s</td><td>%s</td><td class=\"num\">%s</td><td>", start, end, secs);
                audit_html_text(f, r->s.end_reason);
                fprintf(f, "</td><td>%.12s</td><td>", r->s.card);
                audit_html_text(f, v);
                fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
        fputs("<table class=\"sign\"><tr><th>確認者 / checked by</th><td></td><th>日付 / "
              "date</th><td></td></tr>"
              "</table>\n",
              f);
        audit_html_end(f);
}
