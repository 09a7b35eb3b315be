/* record-limit.c: a burst of one cause costs one full record and one summary; other causes pass at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "event-data.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "record-limit.h"

#define SEC UINT64_C(1000000)

struct written {
        char ev[32], op[32], card[32], reason[32], method[32];
        int64_t repeats, after_us, period_us;
};

struct fixture {
        sd_event *event;
        RecordLimit *limit;
        struct written w[64];
        size_t n;
};

static void write_summary(void *userdata, const char *ev, const char *op, const char *card, JsonValue *data)
{
        struct fixture *f = userdata;
        struct written *w;
        const char *s;

        assert_true(f->n < ELEMENTSOF(f->w));
        w = &f->w[f->n++];
        *w = (struct written){.repeats = -1};
        snprintf(w->ev, sizeof(w->ev), "%s", ev);
        snprintf(w->op, sizeof(w->op), "%s", op ?: "");
        snprintf(w->card, sizeof(w->card), "%s", card ?: "");
        if (json_object_get_string(data, "reason", &s) >= 0)
                snprintf(w->reason, sizeof(w->reason), "%s", s);
        if (json_object_get_string(data, "method", &s) >= 0)
                snprintf(w->method, sizeof(w->method), "%s", s);
        assert_int_equal(json_object_get_integer(data, "repeats", &w->repeats), 0);
        assert_int_equal(json_object_get_integer(data, "after_us", &w->after_us), 0);
        assert_int_equal(json_object_get_integer(data, "period_us", &w->period_us), 0);
        json_value_free(data);
}

static int setup(void **state)
{
        static struct fixture f;

        f = (struct fixture){};
        assert_int_equal(sd_event_new(&f.event), 0);
        assert_int_equal(record_limit_new(f.event, 5 * SEC, write_summary, &f, &f.limit), 0);
        *state = &f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        f->limit = record_limit_free(f->limit);
        f->event = sd_event_unref(f->event);
        return 0;
}

static bool admit(struct fixture *f, const char *ev, const char *reason, const char *card, uint64_t t)
{
        JsonValue *data = agent_data("reason", reason, "method", "card+pin", NULL);
        bool r = record_limit_admit(f->limit, ev, NULL, card, data, t);
        json_value_free(data);
        return r;
}

/* 1000 refusals of one cause in 2 s: the first in full, the rest in one summary at the end of the
 * interval (the timer), which counts them all and says when they came. */
static void test_burst_is_one_record_and_one_summary(void **state)
{
        struct fixture *f = *state;
        uint64_t t0 = now_mono_usec() - 20 * SEC; /* the interval has ended by the time the loop runs */

        assert_true(admit(f, "auth.fail", "pin-blocked", "c1", t0));
        for (unsigned i = 1; i <= 1000; i++)
                assert_false(admit(f, "auth.fail", "pin-blocked", "c1", t0 + SEC / 10 + i * 2000));
        assert_int_equal(f->n, 0);
        assert_true(sd_event_run(f->event, SEC) > 0);
        assert_int_equal(f->n, 1);
        assert_string_equal(f->w[0].ev, "auth.fail");
        assert_string_equal(f->w[0].reason, "pin-blocked");
        assert_string_equal(f->w[0].method, "card+pin");
        assert_string_equal(f->w[0].card, "c1");
        assert_int_equal(f->w[0].repeats, 1000);
        assert_int_equal(f->w[0].after_us, SEC / 10 + 2000);
        assert_int_equal(f->w[0].period_us, 999 * 2000);
        /* The flood goes on right after the summary: still counted (one burst), not in full. */
        assert_false(admit(f, "auth.fail", "pin-blocked", "c1", t0 + 3 * SEC));
        /* After a quiet interval a new burst starts with a full record; the count left over is
         * written first. */
        assert_true(admit(f, "auth.fail", "pin-blocked", "c1", t0 + 9 * SEC));
        assert_int_equal(f->n, 2);
        assert_int_equal(f->w[1].repeats, 1);
}

/* Another reason, card, or event is another cause: recorded in full at once during a flood. */
static void test_other_causes_pass(void **state)
{
        struct fixture *f = *state;
        uint64_t t0 = now_mono_usec();

        assert_true(admit(f, "auth.fail", "pin-blocked", "c1", t0));
        assert_false(admit(f, "auth.fail", "pin-blocked", "c1", t0 + 1));
        assert_true(admit(f, "auth.fail", "pin-wrong", "c1", t0 + 2));
        assert_true(admit(f, "auth.fail", "pin-blocked", "c2", t0 + 3));
        assert_true(admit(f, "policy.reject", "pin-blocked", "c1", t0 + 4));
        assert_true(admit(f, "auth.fail", "pin-blocked", NULL, t0 + 5));
        assert_false(admit(f, "auth.fail", "pin-wrong", "c1", t0 + 6));
        /* Each PIN try the card counted stands on its own. */
        JsonValue *d2 = agent_data("reason", "pin-wrong", "tries", "#2", NULL),
                  *d1 = agent_data("reason", "pin-wrong", "tries", "#1", NULL);
        assert_true(record_limit_admit(f->limit, "auth.fail", NULL, "c1", d2, t0 + 7));
        assert_true(record_limit_admit(f->limit, "auth.fail", NULL, "c1", d1, t0 + 8));
        assert_false(record_limit_admit(f->limit, "auth.fail", NULL, "c1", d1, t0 + 9));
        json_value_free(d1);
        json_value_free(d2);
        assert_int_equal(f->n, 0);
}

/* More causes than slots: the oldest slot's count is written before it is reused, nothing is lost,
 * and memory stays fixed. */
static void test_many_causes_evict_with_summary(void **state)
{
        struct fixture *f = *state;
        uint64_t t0 = now_mono_usec();
        char card[16];

        assert_true(admit(f, "auth.fail", "no-card", "first", t0));
        assert_false(admit(f, "auth.fail", "no-card", "first", t0 + 10));
        for (unsigned i = 0; i < 40; i++) {
                snprintf(card, sizeof(card), "k%u", i);
                assert_true(admit(f, "auth.fail", "no-card", card, t0 + 100 + i));
        }
        assert_int_equal(f->n, 1);
        assert_string_equal(f->w[0].card, "first");
        assert_int_equal(f->w[0].repeats, 1);
}

/* Freeing writes what is still counted (mamorid's stop). */
static void test_free_flushes(void **state)
{
        struct fixture *f = *state;
        uint64_t t0 = now_mono_usec();

        assert_true(admit(f, "policy.reject", "bad-signature", NULL, t0));
        for (unsigned i = 1; i <= 499; i++)
                assert_false(admit(f, "policy.reject", "bad-signature", NULL, t0 + i));
        f->limit = record_limit_free(f->limit);
        assert_int_equal(f->n, 1);
        assert_string_equal(f->w[0].ev, "policy.reject");
        assert_int_equal(f->w[0].repeats, 499);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_burst_is_one_record_and_one_summary, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_causes_pass, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_causes_evict_with_summary, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_flushes, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
