/* The session state machine of DESIGN.md §5: states, triggers and the one table of transitions. */
#pragma once

#include <stdbool.h>

enum session_state {
        SESSION_LOCKED,
        SESSION_AUTHENTICATING,
        SESSION_ACTIVE,
        _SESSION_STATE_MAX,
};

enum session_trigger {
        TRIGGER_LOGIN_START,    /* StartLogin passed the prechecks */
        TRIGGER_LOGIN_OK,       /* PIN and signature verified, decision allow */
        TRIGGER_LOGIN_FAIL,     /* refused after the PIN step */
        TRIGGER_LOGIN_CANCEL,   /* CancelLogin, or the PAM client went away */
        TRIGGER_CARD_REMOVED,   /* the card of the session (or of the login) was pulled */
        TRIGGER_IDLE,           /* idle for IdleLockSec */
        TRIGGER_MANUAL_LOCK,    /* mamorictl lock, D-Bus Lock */
        TRIGGER_READER_LOST,    /* reader unplugged or pcscd gone: fail closed */
        TRIGGER_EMERGENCY,      /* policy bundle with "emergency": true */
        TRIGGER_LOG_FAILED,     /* the operation log cannot be written: fail closed */
        TRIGGER_DESKTOP_LOCKED, /* the desktop locked itself (LockedHint set without us) */
        TRIGGER_AGENT_STOP,     /* mamorid is stopping: nothing may stay unlocked behind it */
        TRIGGER_BYPASS, /* the desktop unlocked (LockedHint true→false) while no session is active */
        TRIGGER_CARD_SUSPENDED,   /* a loaded bundle suspends or returns the session's card */
        TRIGGER_OPERATOR_RETIRED, /* a loaded bundle retires (suspends) its operator or drops this office */
        TRIGGER_PASSWORD_RESET,   /* ResetPassword removed the password the session was opened with */
        _SESSION_TRIGGER_MAX,
};

/* What the agent must do on a transition, besides recording the trigger's events. */
enum session_action {
        ACTION_NONE = 0,
        ACTION_LOCK_SCREEN = 1 << 0,   /* logind LockSession + LockedHint check + fallback */
        ACTION_END_SESSION = 1 << 1,   /* session.end with the trigger's reason, clear the operator */
        ACTION_START_SESSION = 1 << 2, /* auth.ok, session.start, unlock */
        ACTION_ABORT_LOGIN = 1 << 3,   /* fail the pending PAM conversation */
};

struct session_transition {
        enum session_state next;
        unsigned actions;       /* enum session_action bits */
        const char *end_reason; /* session.end reason (with ACTION_END_SESSION) */
};

/* Looks up (state, trigger). Returns false when the trigger is not valid in that state (the
 * caller ignores it, or answers the D-Bus call with an error). */
bool session_transition(enum session_state state, enum session_trigger trigger,
                        struct session_transition *ret);

const char *session_state_to_string(enum session_state s);
const char *session_trigger_to_string(enum session_trigger t);
