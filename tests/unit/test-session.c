/* The session table against DESIGN.md §5: only "active" has an operator, every exit from it locks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "session.h"

static void test_design_rows(void **state)
{
        static const struct {
                enum session_state from;
                enum session_trigger trigger;
                enum session_state to;
                unsigned actions;
                const char *reason;
        } rows[] = {
                /* §5: card of the session pulled → lock now, session.end card-removed. */
                {SESSION_ACTIVE, TRIGGER_CARD_REMOVED, SESSION_LOCKED,
                 ACTION_END_SESSION | ACTION_LOCK_SCREEN, "card-removed"},
                {SESSION_ACTIVE, TRIGGER_IDLE, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
                 "idle"},
                {SESSION_ACTIVE, TRIGGER_READER_LOST, SESSION_LOCKED,
                 ACTION_END_SESSION | ACTION_LOCK_SCREEN, "reader-lost"},
                {SESSION_ACTIVE, TRIGGER_MANUAL_LOCK, SESSION_LOCKED,
                 ACTION_END_SESSION | ACTION_LOCK_SCREEN, "manual"},
                {SESSION_ACTIVE, TRIGGER_EMERGENCY, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
                 "emergency"},
                {SESSION_ACTIVE, TRIGGER_LOG_FAILED, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
                 "log-unwritable"},
                /* §5: a bundle that suspends/returns the card or retires the operator ends it. */
                {SESSION_ACTIVE, TRIGGER_CARD_SUSPENDED, SESSION_LOCKED,
                 ACTION_END_SESSION | ACTION_LOCK_SCREEN, "card-suspended"},
                {SESSION_ACTIVE, TRIGGER_OPERATOR_RETIRED, SESSION_LOCKED,
                 ACTION_END_SESSION | ACTION_LOCK_SCREEN, "operator-retired"},
                /* The same for the password a session was opened with, reset by an administrator. */
                {SESSION_ACTIVE, TRIGGER_PASSWORD_RESET, SESSION_LOCKED,
                 ACTION_END_SESSION | ACTION_LOCK_SCREEN, "password-reset"},
                {SESSION_LOCKED, TRIGGER_LOGIN_START, SESSION_AUTHENTICATING, ACTION_NONE, NULL},
                {SESSION_AUTHENTICATING, TRIGGER_LOGIN_OK, SESSION_ACTIVE, ACTION_START_SESSION, NULL},
                {SESSION_AUTHENTICATING, TRIGGER_LOGIN_FAIL, SESSION_LOCKED, ACTION_NONE, NULL},
                {SESSION_AUTHENTICATING, TRIGGER_CARD_REMOVED, SESSION_LOCKED, ACTION_ABORT_LOGIN, NULL},
                {SESSION_LOCKED, TRIGGER_EMERGENCY, SESSION_LOCKED, ACTION_LOCK_SCREEN, NULL},
                /* §5: unlocked behind mamori's back → locked again at once, `lock` reason bypass. */
                {SESSION_LOCKED, TRIGGER_BYPASS, SESSION_LOCKED, ACTION_LOCK_SCREEN, NULL},
                {SESSION_AUTHENTICATING, TRIGGER_BYPASS, SESSION_LOCKED,
                 ACTION_ABORT_LOGIN | ACTION_LOCK_SCREEN, NULL},
        };
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
                struct session_transition t;
                assert_true(session_transition(rows[i].from, rows[i].trigger, &t));
                assert_int_equal(t.next, rows[i].to);
                assert_int_equal(t.actions, rows[i].actions);
                if (rows[i].reason)
                        assert_string_equal(t.end_reason, rows[i].reason);
                else
                        assert_null(t.end_reason);
        }
}

/* Properties every row must have, whatever is added later. */
static void test_invariants(void **state)
{
        for (int s = 0; s < _SESSION_STATE_MAX; s++)
                for (int g = 0; g < _SESSION_TRIGGER_MAX; g++) {
                        struct session_transition t;
                        if (!session_transition(s, g, &t))
                                continue;
                        /* Only a verified login reaches active. */
                        if (t.next == SESSION_ACTIVE)
                                assert_true(s == SESSION_AUTHENTICATING && g == TRIGGER_LOGIN_OK);
                        /* Leaving active always ends the session and locks the screen. */
                        if (s == SESSION_ACTIVE) {
                                assert_int_equal(t.next, SESSION_LOCKED);
                                assert_true(t.actions & ACTION_END_SESSION);
                                assert_true(t.actions & ACTION_LOCK_SCREEN);
                                assert_non_null(t.end_reason);
                        }
                        /* Fail-closed triggers never leave the terminal unlocked. */
                        if (g == TRIGGER_READER_LOST || g == TRIGGER_EMERGENCY || g == TRIGGER_LOG_FAILED ||
                            g == TRIGGER_CARD_REMOVED || g == TRIGGER_IDLE)
                                assert_int_equal(t.next, SESSION_LOCKED);
                }
        /* A login cannot start while another is pending or a session is active. */
        struct session_transition t;
        assert_false(session_transition(SESSION_AUTHENTICATING, TRIGGER_LOGIN_START, &t));
        assert_false(session_transition(SESSION_ACTIVE, TRIGGER_LOGIN_START, &t));
        assert_false(session_transition(SESSION_LOCKED, TRIGGER_LOGIN_OK, &t));
        assert_false(session_transition(SESSION_ACTIVE, TRIGGER_LOGIN_OK, &t));
        assert_false(session_transition(_SESSION_STATE_MAX, TRIGGER_IDLE, &t));
        /* The desktop unlocking after a card login is expected, never a bypass. */
        assert_false(session_transition(SESSION_ACTIVE, TRIGGER_BYPASS, &t));
}

static void test_names(void **state)
{
        assert_string_equal(session_state_to_string(SESSION_AUTHENTICATING), "authenticating");
        assert_string_equal(session_trigger_to_string(TRIGGER_LOG_FAILED), "log-unwritable");
        assert_string_equal(session_trigger_to_string(TRIGGER_OPERATOR_RETIRED), "operator-retired");
        assert_string_equal(session_trigger_to_string(TRIGGER_PASSWORD_RESET), "password-reset");
        assert_string_equal(session_trigger_to_string(_SESSION_TRIGGER_MAX), "unknown");
        /* Every trigger has its own name. */
        for (int g = 0; g < _SESSION_TRIGGER_MAX; g++)
                assert_string_not_equal(session_trigger_to_string(g), "unknown");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_design_rows),
                cmocka_unit_test(test_invariants),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
