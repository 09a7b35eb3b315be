/* Unit tests of the audit's session rule (audit-sessions.c) and its dates and office hours (audit-time.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "audit.h"

typedef struct Seen {
        AuditSession closed[8];
        unsigned n_closed, n_opened;
} Seen;

static void opened(const AuditSession *s, void *userdata)
{
        ((Seen *)userdata)->n_opened++;
}

static void closed(const AuditSession *s, void *userdata)
{
        Seen *seen = userdata;
        assert_true(seen->n_closed < 8);
        seen->closed[seen->n_closed++] = *s;
}

/* Feed one record of log 0, written as a line and read back by the audit's scanner, with a data object
 * of one "key=value" member (or none). */
static void feed(AuditSessions *t, uint64_t seq, int64_t ts, const char *ev, const char *op, const char *kv)
{
        char line[512], data[128] = "{}", scratch[sizeof(line)], opj[64] = "null";
        AuditRecord r;

        if (kv) {
                const char *eq = strchr(kv, '=');
                snprintf(data, sizeof(data), "{\"%.*s\":\"%s\"}", (int)(eq - kv), kv, eq + 1);
        }
        if (op)
                snprintf(opj, sizeof(opj), "\"%s\"", op);
        snprintf(line, sizeof(line),
                 "{\"boot\":\"b\",\"card\":%s,\"data\":%s,\"ev\":\"%s\",\"log\":\"l\",\"mono\":1,"
                 "\"op\":%s,\"prev\":\"p\",\"seq\":%" PRIu64 ",\"sig\":\"s\",\"term\":\"T-0001\","
                 "\"ts\":%" PRId64 ",\"v\":1}",
                 op ? "\"c0ffee\"" : "null", data, ev, opj, seq, ts);
        assert_int_equal(audit_record_scan(line, strlen(line), scratch, sizeof(scratch), &r), 0);
        r.log_index = 0;
        r.log = "0123456789abcdef0123456789abcdef";
        assert_int_equal(audit_sessions_feed(t, &r), 0);
}

static void test_sessions(void **state)
{
        Seen seen = {};
        AuditSessions *t;

        assert_int_equal(audit_sessions_new(1, opened, closed, &seen, &t), 0);
        feed(t, 1, 100, "session.start", "OP1", "method=card+pin");
        assert_non_null(audit_sessions_open(t, 0));
        feed(t, 2, 150, "app.op", "OP1", NULL);
        feed(t, 3, 200, "session.end", "OP1", "reason=card-removed");
        assert_null(audit_sessions_open(t, 0));
        assert_int_equal(seen.n_closed, 1);
        assert_string_equal(seen.closed[0].end_reason, "card-removed");
        assert_string_equal(seen.closed[0].method, "card+pin");
        assert_string_equal(seen.closed[0].op, "OP1");
        assert_int_equal(seen.closed[0].start, 100);
        assert_int_equal(seen.closed[0].end, 200);
        assert_int_equal(seen.closed[0].start_seq, 1);
        assert_int_equal(seen.closed[0].end_seq, 3);
        /* A session.end with nothing open changes nothing. */
        feed(t, 4, 210, "session.end", "OP1", "reason=idle");
        assert_int_equal(seen.n_closed, 1);
        /* A start while one is open closes it as no-end at the new start. */
        feed(t, 5, 300, "session.start", "OP2", "method=card+pin");
        feed(t, 6, 400, "session.start", "OP3", "method=card+pin");
        assert_int_equal(seen.n_closed, 2);
        assert_string_equal(seen.closed[1].end_reason, "no-end");
        assert_int_equal(seen.closed[1].end, 400);
        /* The agent restarted without ending it. */
        feed(t, 7, 500, "agent.start", NULL, NULL);
        assert_int_equal(seen.n_closed, 3);
        assert_string_equal(seen.closed[2].end_reason, "agent-start");
        assert_string_equal(seen.closed[2].op, "OP3");
        /* Still open at the end of the data. */
        feed(t, 8, 600, "session.start", "OP4", "method=card+pin");
        audit_sessions_finish(t);
        assert_int_equal(seen.n_closed, 4);
        assert_string_equal(seen.closed[3].end_reason, "open");
        assert_int_equal(seen.closed[3].end, 0);
        assert_int_equal(seen.n_opened, 4);
        /* Ids follow the order sessions start. */
        assert_true(seen.closed[0].id < seen.closed[1].id && seen.closed[1].id < seen.closed[2].id);
        audit_sessions_free(t);
}

static void test_dates_and_hours(void **state)
{
        int64_t a, b;
        int open, close;

        setenv("TZ", "Asia/Tokyo", 1);
        tzset();
        assert_int_equal(audit_parse_date("2026-04-01", &a), 0);
        assert_int_equal(a, INT64_C(1774969200) * 1000000); /* 2026-03-31T15:00:00Z */
        static const char *const bad[] = {"2026-4-01",   "2026-02-30", "2026-13-01", "26-04-01",
                                          "2026-04-01x", "",           "2026/04/01", "1969-12-31"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(audit_parse_date(bad[i], &a), -EINVAL);
        /* --to is inclusive: one day is [midnight, next midnight). */
        assert_int_equal(audit_parse_window("2026-04-01", "2026-04-01", &a, &b), 0);
        assert_int_equal(b - a, AUDIT_DAY);
        assert_int_equal(audit_parse_window("2026-04-02", "2026-04-01", &a, &b), -ERANGE);
        assert_int_equal(audit_parse_hours("08:30-17:15", &open, &close), 0);
        assert_int_equal(open, 8 * 60 + 30);
        assert_int_equal(close, 17 * 60 + 15);
        static const char *const bad_hours[] = {"8:30-17:15",  "17:15-08:30",  "08:30-08:30", "08:60-17:00",
                                                "25:00-26:00", "08:30-17:15 ", "08:30"};
        for (size_t i = 0; i < ELEMENTSOF(bad_hours); i++)
                assert_int_equal(audit_parse_hours(bad_hours[i], &open, &close), -EINVAL);
        /* Local minutes and days. */
        assert_int_equal(audit_local_minutes(a + (int64_t)(9 * 3600 + 5 * 60) * 1000000), 9 * 60 + 5);
        assert_int_equal(audit_local_day(a + AUDIT_DAY - 1) - audit_local_day(a), 0);
        assert_int_equal(audit_local_day(a + AUDIT_DAY) - audit_local_day(a), 1);
}

static void test_kinds_closed_set(void **state)
{
        static const char *const names[] = {"outside-hours",
                                            "card-on-two-terminals",
                                            "suspended-card-used",
                                            "returned-card-used",
                                            "pin-failures-burst",
                                            "finger-failures-burst",
                                            "card-left",
                                            "secret-overdue",
                                            "group-without-member",
                                            "lending-suspected",
                                            "lock-bypassed",
                                            "log-gap",
                                            "log-fork",
                                            "log-bad-signature",
                                            "terminal-silent",
                                            "app-ops-unusual",
                                            "emergency"};
        assert_int_equal(ELEMENTSOF(names), _AUDIT_KIND_MAX);
        for (int k = 0; k < _AUDIT_KIND_MAX; k++) {
                assert_string_equal(audit_kind_name((AuditKind)k), names[k]);
                assert_true(strlen(audit_kind_label_ja((AuditKind)k)) > 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sessions),
                cmocka_unit_test(test_dates_and_hours),
                cmocka_unit_test(test_kinds_closed_set),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
