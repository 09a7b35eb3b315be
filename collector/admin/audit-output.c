/* Escaping for the audit's JSON, CSV and HTML outputs, and a finding as its DESIGN §12 JSON object. */
#include <inttypes.h>
#include <stdio.h>

#include "audit.h"

void audit_json_string(FILE *f, const char *s)
{
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
                if (*p == '"' || *p == '\\')
                        fprintf(f, "\\%c", *p);
                else if (*p == '\n')
                        fputs("\\n", f);
                else if (*p < 0x20)
                        fprintf(f, "\\u%04x", *p);
                else
                        fputc(*p, f);
        }
        fputc('"', f);
}

void audit_csv_field(FILE *f, const char *s)
{
        /* RFC 4180; a leading = + - @ is prefixed with ' so a spreadsheet never runs it as a formula. */
        fputc('"', f);
        if (s && (*s == '=' || *s == '+' || *s == '-' || *s == '@'))
                fputc('\'', f);
        for (const char *p = s; p && *p; p++) {
                if (*p == '"')
                        fputc('"', f);
                fputc(*p, f);
        }
        fputc('"', f);
}

void audit_html_text(FILE *f, const char *s)
{
        for (const char *p = s; p && *p; p++)
                switch (*p) {
                case '<':
                        fputs("&lt;", f);
                        break;
                case '>':
                        fputs("&gt;", f);
                        break;
                case '&':
                        fputs("&amp;", f);
                        break;
                case '"':
                        fputs("&quot;", f);
                        break;
                case '\'':
                        fputs("&#39;", f);
                        break;
                default:
                        fputc(*p, f);
                }
}

static void nullable(FILE *f, const char *s)
{
        if (s && *s)
                audit_json_string(f, s);
        else
                fputs("null", f);
}

void audit_finding_json(FILE *f, const AuditFinding *x)
{
        fputs("{\"card\":", f);
        nullable(f, x->card);
        fputs(",\"kind\":", f);
        audit_json_string(f, audit_kind_name(x->kind));
        fputs(",\"op\":", f);
        nullable(f, x->op);
        fputs(",\"records\":[", f);
        for (unsigned i = 0; i < x->n_refs; i++)
                fprintf(f, "%s{\"log\":\"%s\",\"seq\":%" PRIu64 "}", i ? "," : "", x->refs[i].log,
                        x->refs[i].seq);
        fputs("],\"severity\":", f);
        audit_json_string(f, audit_severity_name(x->severity));
        fputs(",\"term\":", f);
        nullable(f, x->term);
        fprintf(f, ",\"ts\":%" PRId64 ",\"why\":", x->ts);
        audit_json_string(f, x->why);
        fputc('}', f);
}
