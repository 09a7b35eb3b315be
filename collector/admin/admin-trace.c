/* mamori-admin trace: every record touching one card or operator, on every terminal, in time order. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "mamori/encoding.h"

static void print_text(const AuditRecord *r, const char *op)
{
        _cleanup_json_ JsonValue *data = NULL;
        char when[32];
        audit_format_time(r->ts, when, sizeof(when));
        printf("%s  %-10s %-16s %-10s %.12s", when, r->term, r->ev, op ?: "-", r->card ?: "-");
        (void)audit_record_data(r, &data); /* the scanner checked its syntax; without it, no details */
        for (size_t i = 0; i < json_object_size(data); i++) {
                const JsonMember *m = &data->object.members[i];
                if (m->value->type == JSON_STRING)
                        printf(" %s=%s", m->key, m->value->string.data);
                else if (m->value->type == JSON_INTEGER)
                        printf(" %s=%" PRId64, m->key, m->value->integer);
        }
        printf("  [%s:%" PRIu64 "]\n", r->log, r->seq);
}

int admin_trace(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"card", required_argument, NULL, 'c'},
                {"operator", required_argument, NULL, 'o'},
                {"since", required_argument, NULL, 's'},
                {"format", required_argument, NULL, 'F'},
                {},
        };
        const char *card = NULL, *op = NULL, *since_s = NULL, *format = "text";
        _cleanup_audit_registry_ AuditRegistry *reg = NULL;
        _cleanup_audit_stream_ AuditStream *st = NULL;
        AuditProgress p;
        AuditRecord rec;
        int64_t since;
        uint64_t n = 0;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:o:s:F:", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        card = optarg;
                        break;
                case 'o':
                        op = optarg;
                        break;
                case 's':
                        since_s = optarg;
                        break;
                case 'F':
                        format = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || !!card == !!op || !since_s) {
                fprintf(stderr, "usage: mamori-admin trace (--card ID | --operator ID) --since DATE "
                                "[--format text|json]\n");
                return 2;
        }
        if (card && !hex_lower_valid(card, 64)) {
                fprintf(stderr,
                        "mamori-admin: --card wants a card id (64 lowercase hex, see card history)\n");
                return 2;
        }
        if (admin_check_format(format, "text|json") < 0)
                return 2;
        if (audit_parse_date(since_s, &since) < 0) {
                fprintf(stderr, "mamori-admin: --since wants a date YYYY-MM-DD (local time)\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        if (admin_registry_load(ctx, s, "trace", "nothing printed", &reg) < 0)
                return 1;
        r = audit_stream_open(s, since, &st);
        if (r < 0) {
                admin_run_failed(ctx, "trace", "nothing printed", r);
                return 1;
        }
        /* Only lines that name the card, the operator or one of the operator's cards are parsed. */
        const char *needles[33];
        size_t n_needles = 0;
        needles[n_needles++] = card ?: op;
        if (op)
                n_needles += audit_registry_cards_of(reg, op, needles + 1, ELEMENTSOF(needles) - 1);
        audit_stream_set_filter(st, needles, n_needles);
        audit_progress_init(&p, "trace", audit_stream_total(st));
        while ((r = audit_stream_next(st, &rec)) > 0) {
                audit_progress_step(&p);
                if (rec.ts < since)
                        continue;
                /* auth.fail carries the card but no operator: the card register says whose it is. */
                const char *who = rec.op ?: (rec.card ? audit_registry_card_operator(reg, rec.card) : NULL);
                if (card ? !(rec.card && streq(rec.card, card)) : !(who && streq(who, op)))
                        continue;
                n++;
                if (streq(format, "json")) {
                        fwrite(rec.line, 1, rec.len, stdout);
                        putchar('\n');
                } else
                        print_text(&rec, who);
        }
        audit_progress_end(&p, r);
        if (r < 0) {
                admin_run_failed(ctx, "trace", "what was printed is incomplete", r);
                return 1;
        }
        if (fflush(stdout) != 0) {
                fprintf(stderr, "mamori-admin: cannot write: %m\n");
                return 1;
        }
        if (streq(format, "text"))
                fprintf(stderr, "%" PRIu64 " records\n", n);
        return 0;
}
