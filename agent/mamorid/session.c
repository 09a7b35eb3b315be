/* The §5 table: every state change of mamorid's session, checkable line by line against DESIGN.md. */
#include <stddef.h>

#include "mamori/macro.h"
#include "session.h"

#define T(state, trigger, next_, actions_, reason_) \
        [state][trigger] = {.valid = true, .t = {.next = next_, .actions = actions_, .end_reason = reason_}}

static const struct {
        bool valid;
        struct session_transition t;
} table[_SESSION_STATE_MAX][_SESSION_TRIGGER_MAX] = {
        /* locked: only a login can leave it; locking again is harmless (re-assert the lock). */
        T(SESSION_LOCKED, TRIGGER_LOGIN_START, SESSION_AUTHENTICATING, ACTION_NONE, NULL),
        T(SESSION_LOCKED, TRIGGER_MANUAL_LOCK, SESSION_LOCKED, ACTION_LOCK_SCREEN, NULL),
        T(SESSION_LOCKED, TRIGGER_EMERGENCY, SESSION_LOCKED, ACTION_LOCK_SCREEN, NULL),
        T(SESSION_LOCKED, TRIGGER_READER_LOST, SESSION_LOCKED, ACTION_NONE, NULL),
        T(SESSION_LOCKED, TRIGGER_CARD_REMOVED, SESSION_LOCKED, ACTION_NONE, NULL),
        T(SESSION_LOCKED, TRIGGER_LOG_FAILED, SESSION_LOCKED, ACTION_NONE, NULL),
        /* Unlocked behind mamori's back (a password, UnlockSession): lock again at once. */
        T(SESSION_LOCKED, TRIGGER_BYPASS, SESSION_LOCKED, ACTION_LOCK_SCREEN, NULL),

        /* authenticating: the PIN is being checked; anything unusual aborts to locked. */
        T(SESSION_AUTHENTICATING, TRIGGER_LOGIN_OK, SESSION_ACTIVE, ACTION_START_SESSION, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_LOGIN_FAIL, SESSION_LOCKED, ACTION_NONE, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_LOGIN_CANCEL, SESSION_LOCKED, ACTION_ABORT_LOGIN, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_CARD_REMOVED, SESSION_LOCKED, ACTION_ABORT_LOGIN, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_READER_LOST, SESSION_LOCKED, ACTION_ABORT_LOGIN, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_EMERGENCY, SESSION_LOCKED, ACTION_ABORT_LOGIN | ACTION_LOCK_SCREEN,
          NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_LOG_FAILED, SESSION_LOCKED, ACTION_ABORT_LOGIN, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_AGENT_STOP, SESSION_LOCKED, ACTION_ABORT_LOGIN, NULL),
        T(SESSION_AUTHENTICATING, TRIGGER_MANUAL_LOCK, SESSION_LOCKED,
          ACTION_ABORT_LOGIN | ACTION_LOCK_SCREEN, NULL),
        /* The desktop unlocks only after mamorid went active (the PAM answer waits for it): an
         * unlock while the PIN is being checked is a bypass too. */
        T(SESSION_AUTHENTICATING, TRIGGER_BYPASS, SESSION_LOCKED, ACTION_ABORT_LOGIN | ACTION_LOCK_SCREEN,
          NULL),

        /* active: every way out ends the session and locks the screen. */
        T(SESSION_ACTIVE, TRIGGER_CARD_REMOVED, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "card-removed"),
        T(SESSION_ACTIVE, TRIGGER_IDLE, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN, "idle"),
        T(SESSION_ACTIVE, TRIGGER_MANUAL_LOCK, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "manual"),
        T(SESSION_ACTIVE, TRIGGER_READER_LOST, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "reader-lost"),
        T(SESSION_ACTIVE, TRIGGER_EMERGENCY, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "emergency"),
        T(SESSION_ACTIVE, TRIGGER_LOG_FAILED, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "log-unwritable"),
        /* The screen is locked already; the session ends so the next unlock is a fresh login. */
        T(SESSION_ACTIVE, TRIGGER_AGENT_STOP, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "agent-stop"),
        T(SESSION_ACTIVE, TRIGGER_DESKTOP_LOCKED, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "desktop-locked"),
        /* §5 lifecycle: a bundle that takes the card or the operator away ends the session at once. */
        T(SESSION_ACTIVE, TRIGGER_CARD_SUSPENDED, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "card-suspended"),
        T(SESSION_ACTIVE, TRIGGER_OPERATOR_RETIRED, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "operator-retired"),
        /* The same for a secret taken away at the terminal: a reset password no longer opens what it opened.
         */
        T(SESSION_ACTIVE, TRIGGER_PASSWORD_RESET, SESSION_LOCKED, ACTION_END_SESSION | ACTION_LOCK_SCREEN,
          "password-reset"),
};

bool session_transition(enum session_state state, enum session_trigger trigger,
                        struct session_transition *ret)
{
        if ((unsigned)state >= _SESSION_STATE_MAX || (unsigned)trigger >= _SESSION_TRIGGER_MAX ||
            !table[state][trigger].valid)
                return false;
        *ret = table[state][trigger].t;
        return true;
}

const char *session_state_to_string(enum session_state s)
{
        static const char *const names[] = {"locked", "authenticating", "active"};
        return (unsigned)s < ELEMENTSOF(names) ? names[s] : "locked";
}

const char *session_trigger_to_string(enum session_trigger t)
{
        static const char *const names[] = {
                "login-start",  "login-ok",       "login-fail",       "cancelled",
                "card-removed", "idle",           "manual",           "reader-lost",
                "emergency",    "log-unwritable", "desktop-locked",   "agent-stop",
                "bypass",       "card-suspended", "operator-retired", "password-reset",
        };
        return (unsigned)t < ELEMENTSOF(names) ? names[t] : "unknown";
}
