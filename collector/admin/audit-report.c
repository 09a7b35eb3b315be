/* Collects a run's findings and per-day session counts for the audit and self-inspection reports. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit-report.h"

static int oom;

int audit_report_init(AuditReport *rep)
{
        *rep = (AuditReport){};
        return audit_map_new(sizeof(uint64_t), &rep->per_day);
}

void audit_report_done(AuditReport *rep)
{
        free(rep->findings);
        audit_map_free(rep->per_day);
        *rep = (AuditReport){};
}

void audit_report_on_finding(const AuditFinding *f, void *userdata)
{
        AuditReport *rep = userdata;
        if (rep->n_findings == rep->allocated) {
                size_t n = rep->allocated ? rep->allocated * 2 : 256;
                AuditFinding *nf = realloc(rep->findings, n * sizeof(AuditFinding));
                if (!nf) {
                        oom = -ENOMEM;
                        return;
                }
                rep->findings = nf;
                rep->allocated = n;
        }
        rep->findings[rep->n_findings++] = *f;
        rep->counts[f->kind]++;
}

void audit_report_on_session(const AuditSession *s, void *userdata)
{
        AuditReport *rep = userdata;
        char key[AUDIT_ID_MAX + 32];
        snprintf(key, sizeof(key), "%s\x1f%" PRId64, s->term, audit_local_day(s->start));
        uint64_t *n = audit_map_get(rep->per_day, key, true);
        if (!n) {
                oom = -ENOMEM;
                return;
        }
        (*n)++;
        rep->sessions++;
}

int audit_report_error(const AuditReport *rep)
{
        return oom;
}

static int cmp_finding(const void *a, const void *b)
{
        const AuditFinding *x = a, *y = b;
        if (x->ts != y->ts)
                return x->ts < y->ts ? -1 : 1;
        if (x->kind != y->kind)
                return (int)x->kind - (int)y->kind;
        return strcmp(x->term, y->term);
}

void audit_report_sort(AuditReport *rep)
{
        if (rep->n_findings)
                qsort(rep->findings, rep->n_findings, sizeof(AuditFinding), cmp_finding);
}

/* Kind names in byte order, so that "counts" has sorted keys like every JCS object. */
static void kinds_sorted(AuditKind order[_AUDIT_KIND_MAX])
{
        for (int i = 0; i < _AUDIT_KIND_MAX; i++)
                order[i] = (AuditKind)i;
        for (int i = 1; i < _AUDIT_KIND_MAX; i++)
                for (int j = i;
                     j > 0 && strcmp(audit_kind_name(order[j - 1]), audit_kind_name(order[j])) > 0; j--) {
                        AuditKind t = order[j];
                        order[j] = order[j - 1];
                        order[j - 1] = t;
                }
}

void audit_report_json(FILE *f, const AuditReport *rep)
{
        AuditKind order[_AUDIT_KIND_MAX];
        kinds_sorted(order);
        fputs("{\"counts\":{", f);
        for (int i = 0; i < _AUDIT_KIND_MAX; i++)
                fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "", audit_kind_name(order[i]),
                        rep->counts[order[i]]);
        fputs("},\"findings\":[", f);
        for (size_t i = 0; i < rep->n_findings; i++) {
                fputs(i ? ",\n" : "\n", f);
                audit_finding_json(f, &rep->findings[i]);
        }
        fputs("],\"from\":", f);
        audit_json_string(f, rep->from_s);
        fputs(",\"to\":", f);
        audit_json_string(f, rep->to_s);
        fputs("}\n", f);
}

void audit_report_csv(FILE *f, const AuditReport *rep)
{
        fputs("time,kind,severity,office,term,op,card,records,why\r\n", f);
        for (size_t i = 0; i < rep->n_findings; i++) {
                const AuditFinding *x = &rep->findings[i];
                char when[32], refs[AUDIT_REFS_MAX * 56] = "";
                size_t n = 0;
                audit_format_time(x->ts, when, sizeof(when));
                for (unsigned k = 0; k < x->n_refs && n < sizeof(refs); k++)
                        n += (size_t)snprintf(refs + n, sizeof(refs) - n, "%s%s:%" PRIu64, k ? " " : "",
                                              x->refs[k].log, x->refs[k].seq);
                audit_csv_field(f, when);
                fputc(',', f);
                audit_csv_field(f, audit_kind_name(x->kind));
                fputc(',', f);
                audit_csv_field(f, audit_severity_name(x->severity));
                fputc(',', f);
                audit_csv_field(f, x->office);
                fputc(',', f);
                audit_csv_field(f, x->term);
                fputc(',', f);
                audit_csv_field(f, x->op);
                fputc(',', f);
                audit_csv_field(f, x->card);
                fputc(',', f);
                audit_csv_field(f, refs);
                fputc(',', f);
                audit_csv_field(f, x->why);
                fputs("\r\n", f);
        }
}
