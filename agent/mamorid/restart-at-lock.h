/* A package upgrade never ends an operator's session: mamorid restarts into the new version at the next
 * lock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* The flag the package's postinst creates in mamorid's RuntimeDirectory (/run/mamori) on upgrade;
 * an administrator may create it too ("restart when the terminal is next locked"). */
#define RESTART_AT_LOCK_FLAG "restart-at-lock"

typedef struct RestartAtLock RestartAtLock;

/* Asks whether the terminal is locked with no login under way (the only time a restart is harmless). */
typedef bool (*restart_idle_fn)(void *userdata);

/* Watches $RUNTIME_DIRECTORY/restart-at-lock (only under systemd, which sets RUNTIME_DIRECTORY; else
 * *ret = NULL and nothing is watched); a flag left from before this process started is removed.
 * When the flag is there and is_idle() still says locked delay_usec later, the flag is removed and
 * the event loop exits with 0: Restart=always starts the new binary. */
int restart_at_lock_start(sd_event *e, uint64_t delay_usec, restart_idle_fn is_idle, void *userdata,
                          RestartAtLock **ret);
RestartAtLock *restart_at_lock_free(RestartAtLock *r);

/* Checks now (call on every session state change; the inotify watch covers a flag that appears while
 * the terminal already is locked). Returns true when a restart was scheduled. */
bool restart_at_lock_check(RestartAtLock *r);
