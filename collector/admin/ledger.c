/* The usage ledger rows: sessions of the run, violations from the findings that name their session. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

void ledger_on_session(const AuditSession *s, void *userdata)
{
        Ledger *l = userdata;
        audit_report_on_session(s, &l->rep);
        if (l->n == l->allocated) {
                size_t n = l->allocated ? l->allocated * 2 : 1024;
                LedgerRow *nr = realloc(l->rows, n * sizeof(LedgerRow));
                if (!nr) {
                        l->error = -ENOMEM;
                        return;
                }
                l->rows = nr;
                l->allocated = n;
        }
        l->rows[l->n++] = (LedgerRow){.s = *s, .violations = s->violations};
}

void ledger_on_finding(const AuditFinding *f, void *userdata)
{
        Ledger *l = userdata;
        audit_report_on_finding(f, &l->rep);
}

static int cmp_id(const void *a, const void *b)
{
        uint64_t x = ((const LedgerRow *)a)->s.id, y = ((const LedgerRow *)b)->s.id;
        return x < y ? -1 : x > y;
}

static int cmp_start(const void *a, const void *b)
{
        const LedgerRow *x = a, *y = b;
        if (x->s.start != y->s.start)
                return x->s.start < y->s.start ? -1 : 1;
        return strcmp(x->s.term, y->s.term);
}

void ledger_finish(Ledger *l)
{
        /* Sessions close in stream order, ids were given in start order: sort by id to look them up. */
        if (l->n)
                qsort(l->rows, l->n, sizeof(LedgerRow), cmp_id);
        for (size_t i = 0; i < l->rep.n_findings; i++) {
                const AuditFinding *f = &l->rep.findings[i];
                LedgerRow key = {.s.id = f->session_id};
                if (!f->session_id || !l->n)
                        continue;
                LedgerRow *row = bsearch(&key, l->rows, l->n, sizeof(LedgerRow), cmp_id);
                if (row)
                        row->violations |= 1u << f->kind;
        }
        if (l->n)
                qsort(l->rows, l->n, sizeof(LedgerRow), cmp_start);
        audit_report_sort(&l->rep);
}

void ledger_violations_string(uint32_t bits, char *buf, size_t size)
{
        size_t n = 0;
        buf[0] = 0;
        for (int k = 0; k < _AUDIT_KIND_MAX && n < size; k++)
                if (bits & (1u << k))
                        n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "",
                                              audit_kind_name((AuditKind)k));
}

static void row_times(const LedgerRow *r, char start[32], char end[32], char secs[24])
{
        audit_format_time(r->s.start, start, 32);
        if (r->s.end) {
                audit_format_time(r->s.end, end, 32);
                snprintf(secs, 24, "%" PRId64, (r->s.end - r->s.start) / 1000000);
        } else {
                end[0] = 0;
                secs[0] = 0;
        }
}

void ledger_csv(FILE *f, const Ledger *l)
{
        fputs("term,op,method,start,end,seconds,end_reason,card,violations\r\n", f);
        for (size_t i = 0; i < l->n; i++) {
                const LedgerRow *r = &l->rows[i];
                char start[32], end[32], secs[24], card[13], v[512];
                row_times(r, start, end, secs);
                snprintf(card, sizeof(card), "%.12s", r->s.card);
                ledger_violations_string(r->violations, v, sizeof(v));
                const char *fields[] = {r->s.term, r->s.op,         r->s.method, start, end,
                                        secs,      r->s.end_reason, card,        v};
                for (size_t k = 0; k < ELEMENTSOF(fields); k++) {
                        if (k)
                                fputc(',', f);
                        audit_csv_field(f, fields[k]);
                }
                fputs("\r\n", f);
        }
}

static void json_nullable(FILE *f, const char *s)
{
        if (s && *s)
                audit_json_string(f, s);
        else
                fputs("null", f);
}

void ledger_json(FILE *f, const Ledger *l)
{
        fputs("{\"from\":", f);
        audit_json_string(f, l->rep.from_s);
        fputs(",\"office\":", f);
        audit_json_string(f, l->rep.office);
        fputs(",\"sessions\":[", f);
        for (size_t i = 0; i < l->n; i++) {
                const LedgerRow *r = &l->rows[i];
                fputs(i ? ",\n" : "\n", f);
                fputs("{\"card\":", f);
                json_nullable(f, r->s.card);
                if (r->s.end)
                        fprintf(f, ",\"end\":%" PRId64, r->s.end);
                else
                        fputs(",\"end\":null", f);
                fputs(",\"end_reason\":", f);
                audit_json_string(f, r->s.end_reason);
                fprintf(f, ",\"log\":\"%s\",\"method\":", r->s.log);
                json_nullable(f, r->s.method);
                fputs(",\"op\":", f);
                json_nullable(f, r->s.op);
                if (r->s.end)
                        fprintf(f, ",\"seconds\":%" PRId64, (r->s.end - r->s.start) / 1000000);
                else
                        fputs(",\"seconds\":null", f);
                fprintf(f, ",\"seq\":%" PRIu64 ",\"start\":%" PRId64 ",\"term\":", r->s.start_seq,
                        r->s.start);
                audit_json_string(f, r->s.term);
                fputs(",\"violations\":[", f);
                bool first = true;
                for (int k = 0; k < _AUDIT_KIND_MAX; k++)
                        if (r->violations & (1u << k)) {
                                fputs(first ? "" : ",", f);
                                audit_json_string(f, audit_kind_name((AuditKind)k));
                                first = false;
                        }
                fputs("]}", f);
        }
        fputs("],\"to\":", f);
        audit_json_string(f, l->rep.to_s);
        fputs("}\n", f);
}
