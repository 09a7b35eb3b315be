/* Unit tests of the audit's record scanner (audit-record.c): what it reads, and what it refuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit.h"

#define HEAD "{\"boot\":\"b\",\"card\":"
#define TAIL                                                                                              \
        ",\"log\":\"l\",\"mono\":1,\"prev\":\"p\",\"seq\":7,\"sig\":\"s\",\"term\":\"T-0001\",\"ts\":42," \
        "\"v\":1}"

static int scan(const char *line, AuditRecord *r, char *scratch, size_t size)
{
        return audit_record_scan(line, strlen(line), scratch, size, r);
}

static void test_fields(void **state)
{
        char scratch[1024];
        AuditRecord r;

        /* A record-limit summary: data.repeats counts the occurrences it stands for. */
        assert_int_equal(
                scan(HEAD "null,\"data\":{\"after_us\":3,\"method\":\"card+pin\",\"reason\":\"pin-wrong\","
                          "\"repeats\":5,\"tries\":\"1\"},\"ev\":\"auth.fail\",\"op\":\"OP1\"" TAIL "\n",
                     &r, scratch, sizeof(scratch)),
                0);
        assert_int_equal(r.seq, 7);
        assert_int_equal(r.ts, 42);
        assert_string_equal(r.term, "T-0001");
        assert_string_equal(r.ev, "auth.fail");
        assert_string_equal(r.op, "OP1");
        assert_null(r.card);
        assert_string_equal(r.reason, "pin-wrong");
        assert_string_equal(r.method, "card+pin");
        assert_int_equal(r.repeats, 5);
        assert_int_equal(audit_record_count(&r), 5);

        /* Escapes are decoded; a reason that is no string, or holds NUL, is absent; a plain record counts 1.
         */
        assert_int_equal(scan(HEAD
                              "\"c\\u00e9\\ud83d\\ude00\",\"data\":{\"method\":\"a\\u0000b\",\"reason\":3},"
                              "\"ev\":\"lo\\\"ck\",\"op\":null" TAIL,
                              &r, scratch, sizeof(scratch)),
                         0);
        assert_string_equal(r.card, "c\xc3\xa9\xf0\x9f\x98\x80");
        assert_string_equal(r.ev, "lo\"ck");
        assert_null(r.op);
        assert_null(r.reason);
        assert_null(r.method);
        assert_int_equal(audit_record_count(&r), 1);

        _cleanup_json_ JsonValue *d = NULL;
        assert_int_equal(audit_record_data(&r, &d), 0);
        assert_int_equal(json_object_size(d), 2);
}

static void test_refused(void **state)
{
        static const struct {
                const char *line;
                int error;
        } cases[] = {
                {HEAD "null,\"ev\":\"x\",\"op\":null" TAIL, -EBADMSG},                      /* no data */
                {HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":null,\"ts\":1" TAIL, -EBADMSG}, /* ts twice */
                {HEAD "null,\"data\":{\"reason\":\"a\",\"reason\":\"b\"},\"ev\":\"x\",\"op\":null" TAIL,
                 -EBADMSG},
                {HEAD "null,\"data\":{\"re\\u0061son\":\"a\"},\"ev\":\"x\",\"op\":null" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":5" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":\"a\\u0000\"" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":\"\\ud800\"" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{\"a\":1.5},\"ev\":\"x\",\"op\":null" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{\"a\":01},\"ev\":\"x\",\"op\":null" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{\"a\":-0},\"ev\":\"x\",\"op\":null" TAIL, -EBADMSG},
                {HEAD "null,\"data\":{\"a\":9223372036854775808},\"ev\":\"x\",\"op\":null" TAIL, -ERANGE},
                {HEAD "null,\"data\":{\"a\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]},\"ev\":\"x\",\"op\":"
                      "null" TAIL,
                 -E2BIG},
                {HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":null" TAIL "\n\n", -EBADMSG},
                {HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":null" TAIL "x", -EBADMSG},
                {HEAD "null,\"data\":{}, \"ev\":\"x\",\"op\":null" TAIL, -EBADMSG}, /* not JCS */
                {HEAD "null,\"data\":{},\"ev\":\"\t\",\"op\":null" TAIL, -EBADMSG},
                {HEAD "nul,\"data\":{},\"ev\":\"x\",\"op\":null" TAIL, -EBADMSG},
                {"", -EBADMSG},
                {"{\"seq\":", -EBADMSG},
        };
        char scratch[1024];
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                AuditRecord r;
                int got = scan(cases[i].line, &r, scratch, sizeof(scratch));
                if (got != cases[i].error)
                        fail_msg("case %zu: %d, want %d: %s", i, got, cases[i].error, cases[i].line);
        }
        /* The scratch bound holds: too small is -E2BIG, never an overrun. */
        AuditRecord r;
        assert_int_equal(scan(HEAD "null,\"data\":{},\"ev\":\"x\",\"op\":null" TAIL, &r, scratch, 4),
                         -E2BIG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fields),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
