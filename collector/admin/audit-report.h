/* What a report holds after a run: findings in time order, counts per kind, sessions per day and terminal.
 */
#pragma once

#include <stdio.h>

#include "audit-map.h"
#include "audit.h"

typedef struct AuditReport {
        const char *title_ja, *title_en;
        const char *from_s, *to_s, *office; /* as given on the command line */
        int64_t from, to;
        AuditFinding *findings;
        size_t n_findings, allocated;
        uint64_t counts[_AUDIT_KIND_MAX];
        AuditMap *per_day; /* "term\x1fday" → uint64_t sessions started that local day */
        uint64_t sessions;
        const AuditOperatorStats *stats; /* set after the run */
        size_t n_stats;
} AuditReport;

int audit_report_init(AuditReport *rep);
void audit_report_done(AuditReport *rep);
/* Engine callbacks: userdata is the AuditReport. */
void audit_report_on_finding(const AuditFinding *f, void *userdata);
void audit_report_on_session(const AuditSession *s, void *userdata);
/* Sort the findings by time (then kind). */
void audit_report_sort(AuditReport *rep);
/* 0, or -ENOMEM when a finding could not be kept. */
int audit_report_error(const AuditReport *rep);

/* ---- outputs ---- */
void audit_report_json(FILE *f, const AuditReport *rep);
void audit_report_csv(FILE *f, const AuditReport *rep);
/* audit-report-html.c */
void audit_report_html(FILE *f, const AuditReport *rep);
/* The page frame shared by every HTML report: self-contained, A4, Japanese with English beside. */
void audit_html_begin(FILE *f, const char *title_ja, const char *title_en, const char *subtitle);
void audit_html_end(FILE *f);
/* The three charts (svg-chart.c draws them). */
void audit_html_chart_sessions_per_day(FILE *f, const AuditReport *rep);
void audit_html_chart_failures_per_operator(FILE *f, const AuditReport *rep);
void audit_html_chart_findings_per_month(FILE *f, const AuditReport *rep);
void audit_html_findings_table(FILE *f, const AuditReport *rep);
