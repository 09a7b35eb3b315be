/* The collector's connection guard: unauthenticated caps (oldest first, per address first) and deadlines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conn-guard.h"

#define SEC UINT64_C(1000000)

/* A fake connection: whether its handshake has started, and finished. */
typedef struct Fake {
        bool done;
        int id;
        bool started;
} Fake;

static GuardProgress fake_progress(void *userdata)
{
        const Fake *f = userdata;
        return f->done ? GUARD_AUTHENTICATED : f->started ? GUARD_HANDSHAKE : GUARD_SILENT;
}

static GuardConn *add(ConnGuard *g, Fake *f, unsigned char addr, uint64_t now)
{
        unsigned char a[4] = {127, 0, 0, addr};
        GuardConn *c;
        assert_int_equal(conn_guard_add(g, a, sizeof(a), now, f, &c), 0);
        return c;
}

static int victim_id(ConnGuard *g, const GuardConn *new, uint64_t now)
{
        GuardConn *v = conn_guard_next_victim(g, new, now);
        return v ? ((Fake *)guard_conn_userdata(v))->id : -1;
}

static void test_oldest_unauthenticated_dropped_first(void **state)
{
        ConnGuard *g;
        Fake f[6] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}, {.id = 5}};
        GuardConn *c[6];

        assert_int_equal(conn_guard_new(&(ConnGuardLimits){.max_unauth = 3,
                                                           .max_unauth_per_addr = 10,
                                                           .request_usec = 100 * SEC},
                                        fake_progress, &g),
                         0);
        c[0] = add(g, &f[0], 1, 0);
        c[1] = add(g, &f[1], 2, 1);
        f[1].done = true; /* a terminal: its handshake finished, it never counts again */
        c[2] = add(g, &f[2], 3, 2);
        c[3] = add(g, &f[3], 4, 3);
        assert_int_equal(victim_id(g, c[3], 3), -1); /* 3 unauthenticated: at the cap */
        c[4] = add(g, &f[4], 5, 4);
        assert_int_equal(victim_id(g, c[4], 4), 0); /* the oldest unauthenticated goes */
        assert_int_equal(victim_id(g, c[4], 4), -1);
        c[5] = add(g, &f[5], 6, 5);
        assert_int_equal(victim_id(g, c[5], 5), 2); /* not the terminal (1) */
        ConnGuardStats st;
        conn_guard_stats(g, &st);
        assert_int_equal(st.open, 6);
        assert_int_equal(st.unauthenticated, 3);
        assert_int_equal(st.dropped_unauth, 2);
        conn_guard_remove(g, c[0]);
        conn_guard_remove(g, c[2]);
        conn_guard_stats(g, &st);
        assert_int_equal(st.open, 4);
        assert_int_equal(st.unauthenticated, 3);
        conn_guard_free(g);
}

static void test_per_address_cap_before_total(void **state)
{
        ConnGuard *g;
        Fake f[5] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
        GuardConn *c[5];

        assert_int_equal(conn_guard_new(&(ConnGuardLimits){.max_unauth = 100,
                                                           .max_unauth_per_addr = 2,
                                                           .request_usec = 100 * SEC},
                                        fake_progress, &g),
                         0);
        c[0] = add(g, &f[0], 9, 0); /* another address, older than all */
        c[1] = add(g, &f[1], 7, 1);
        c[2] = add(g, &f[2], 7, 2);
        assert_int_equal(victim_id(g, c[2], 2), -1);
        c[3] = add(g, &f[3], 7, 3);
        assert_int_equal(victim_id(g, c[3], 3), 1); /* the oldest of address 7, not 0 */
        assert_int_equal(victim_id(g, c[3], 3), -1);
        /* A terminal behind the same address (NAT) that finished its handshake is never dropped for it. */
        f[2].done = true;
        c[4] = add(g, &f[4], 7, 4);
        assert_int_equal(victim_id(g, c[4], 4), -1);
        conn_guard_free(g); /* frees what is left */
}

static void test_request_deadline_from_accept_and_previous_answer(void **state)
{
        ConnGuard *g;
        Fake f[2] = {{.id = 0, .done = true}, {.id = 1, .done = true}};
        GuardConn *a, *b;

        assert_int_equal(conn_guard_new(&(ConnGuardLimits){.max_unauth = 10,
                                                           .max_unauth_per_addr = 10,
                                                           .request_usec = 3 * SEC},
                                        fake_progress, &g),
                         0);
        a = add(g, &f[0], 1, 0);
        b = add(g, &f[1], 1, 2 * SEC);
        assert_int_equal(victim_id(g, NULL, 3 * SEC), -1);
        /* Each byte of a trickle changes nothing: only an answered request restarts the clock. */
        conn_guard_request_done(g, b, 4 * SEC);
        assert_int_equal(victim_id(g, NULL, 3 * SEC + 1), 0);
        assert_int_equal(victim_id(g, NULL, 6 * SEC), -1); /* 0 already dropped; b answered at 4 */
        assert_int_equal(victim_id(g, NULL, 7 * SEC + 1), 1);
        ConnGuardStats st;
        conn_guard_stats(g, &st);
        assert_int_equal(st.dropped_deadline, 2);
        conn_guard_remove(g, a);
        conn_guard_remove(g, b);
        conn_guard_free(g);
}

static void test_silent_ones_go_before_a_handshake_under_way(void **state)
{
        ConnGuard *g;
        Fake f[4] = {{.id = 0, .started = true}, {.id = 1}, {.id = 2}, {.id = 3}};
        GuardConn *c[4];

        assert_int_equal(conn_guard_new(&(ConnGuardLimits){.max_unauth = 2,
                                                           .max_unauth_per_addr = 10,
                                                           .request_usec = 100 * SEC},
                                        fake_progress, &g),
                         0);
        c[0] = add(g, &f[0], 1, 0); /* a terminal in the middle of its handshake, the oldest */
        c[1] = add(g, &f[1], 2, 1);
        c[2] = add(g, &f[2], 3, 2);
        assert_int_equal(victim_id(g, c[2], 2), 1); /* a plain connect goes first */
        c[3] = add(g, &f[3], 4, 3);
        assert_int_equal(victim_id(g, c[3], 3), 2);
        f[3].started = true;
        f[2].started = true;
        conn_guard_remove(g, c[1]);
        conn_guard_remove(g, c[2]);
        /* Only handshakes under way left, over the cap: then the oldest of them. */
        Fake extra = {.id = 9, .started = true};
        GuardConn *e = add(g, &extra, 5, 4);
        assert_int_equal(victim_id(g, e, 4), 0);
        conn_guard_free(g);
}

static void test_bad_arguments(void **state)
{
        ConnGuard *g = NULL;
        GuardConn *c;
        unsigned char big[17] = {0};

        assert_int_equal(
                conn_guard_new(
                        &(ConnGuardLimits){.max_unauth = 0, .max_unauth_per_addr = 1, .request_usec = 1},
                        fake_progress, &g),
                -EINVAL);
        assert_int_equal(
                conn_guard_new(
                        &(ConnGuardLimits){.max_unauth = 1, .max_unauth_per_addr = 1, .request_usec = 1},
                        fake_progress, &g),
                0);
        assert_int_equal(conn_guard_add(g, big, sizeof(big), 0, NULL, &c), -EINVAL);
        assert_null(conn_guard_next_victim(NULL, NULL, 0));
        assert_null(conn_guard_free(g));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_oldest_unauthenticated_dropped_first),
                cmocka_unit_test(test_per_address_cap_before_total),
                cmocka_unit_test(test_request_deadline_from_accept_and_previous_answer),
                cmocka_unit_test(test_silent_ones_go_before_a_handshake_under_way),
                cmocka_unit_test(test_bad_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
