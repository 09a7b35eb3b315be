/* What mamorid's logind client reports (lock results, idle and lock hints), without sd-bus, for the session
 * logic. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Results of one lock, reported once the desktop locked or the fallback ran. */
struct logind_lock_result {
        int error;             /* < 0: LockSession could not be sent or failed (-ENXIO: no active session) */
        char session_id[64];   /* the session that was locked */
        uint64_t latency_usec; /* trigger → LockSession answered by logind */
        bool fallback_used; /* the desktop did not set LockedHint within LockVerifySec (or logind failed) */
        const char *fallback_method; /* "TerminateSession", "LockSessions" or "none" */
        int fallback_error;          /* result of TerminateSession when used */
};

typedef void (*logind_lock_fn)(void *userdata, const struct logind_lock_result *r, bool final);
/* idle: IdleHint of the active session; since_usec: IdleSinceHint (CLOCK_REALTIME µs), 0 unknown. */
typedef void (*logind_idle_fn)(void *userdata, bool idle, uint64_t since_usec);
/* The desktop set LockedHint on the active session by itself (its own idle lock, a user's Super+L).
 * Only a change signalled by logind counts, never a stale value read at login. */
typedef void (*logind_locked_fn)(void *userdata);
/* The desktop's LockedHint went from true to false (an unlock, by whoever), as logind signalled it;
 * mono_usec: CLOCK_MONOTONIC when mamorid saw it. Only a change counts: a LockedHint that was
 * already false when mamorid last locked (a late signal of an earlier unlock) is none. */
typedef void (*logind_unlocked_fn)(void *userdata, uint64_t mono_usec);
