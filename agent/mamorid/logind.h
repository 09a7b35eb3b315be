/* mamorid's logind client: lock the seat's active session, verify LockedHint, fall back, watch idle. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "logind-lock.h"
#include "mamori/agent-config.h"

typedef struct Logind Logind;

int logind_new(sd_event *e, sd_bus *bus, const char *seat, uint64_t verify_usec, enum lock_fallback fallback,
               logind_idle_fn idle_cb, logind_locked_fn locked_cb, logind_unlocked_fn unlocked_cb,
               void *userdata, Logind **ret);
Logind *logind_free(Logind *l);

/* Locks the active session of the seat now (and from then on watches its LockedHint). trigger_mono_usec
 * (CLOCK_MONOTONIC) is when the reason was detected, for the latency figure. cb is called twice: once when
 * LockSession was answered (final=false; skipped when it failed) and once after the LockedHint check
 * (final=true). A refused LockSession goes straight to the LockedHint check and fallback; an unknown active
 * session falls back to LockSessions. Returns -ENOMEM (cb never called) or 0 (cb will be called). */
int logind_lock(Logind *l, uint64_t trigger_mono_usec, logind_lock_fn cb, void *userdata);

/* The id of the seat's active session (e.g. "c1"); -ENXIO when there is none. */
int logind_active_session_id(Logind *l, char *ret, size_t size);

/* 1 when logind puts process pid in the seat's active session (GetSessionByPID, compared with the
 * seat's ActiveSession), 0 when it does not (no session, another one, no active session), < 0 when
 * logind cannot be asked. pid must be > 0: logind reads 0 as "the caller", which is mamorid. */
int logind_pid_in_active_session(Logind *l, pid_t pid);

/* Re-reads the seat's active session and subscribes to its idle properties (call after login). */
int logind_watch_idle(Logind *l);
