/* Restarts mamorid into an upgraded binary only while the terminal is locked (flag file from the postinst).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "journal.h"
#include "mamori/macro.h"
#include "restart-at-lock.h"

struct RestartAtLock {
        sd_event *event;
        sd_event_source *inotify;
        sd_event_source *timer;
        uint64_t delay_usec;
        char *flag;
        restart_idle_fn is_idle;
        void *userdata;
        bool exiting;
};

static bool wanted(RestartAtLock *r)
{
        return !r->exiting && access(r->flag, F_OK) == 0 && r->is_idle(r->userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        RestartAtLock *r = userdata;

        r->timer = sd_event_source_disable_unref(r->timer);
        if (!wanted(r)) /* a login started meanwhile: the next lock checks again */
                return 0;
        /* Removed first, so that the new process does not restart again. */
        if (unlink(r->flag) < 0 && errno != ENOENT) {
                agent_log(LOG_ERR, "cannot remove %s (%m): not restarting for the upgrade", r->flag);
                return 0;
        }
        agent_log(LOG_NOTICE, "restarting into the upgraded mamorid now that the terminal is locked");
        (void)sd_notify(0, "STOPPING=1\nSTATUS=restarting into the upgraded version");
        r->exiting = true;
        return sd_event_exit(r->event, 0);
}

bool restart_at_lock_check(RestartAtLock *r)
{
        if (!r || r->timer || !wanted(r))
                return false;
        /* Not at once: the lock that just happened is verified (LockedHint, fallback) and recorded
         * first, so the new process finds the desktop locked. */
        if (sd_event_add_time_relative(r->event, &r->timer, CLOCK_MONOTONIC, r->delay_usec, 0, on_timer, r) <
            0) {
                agent_log(LOG_ERR, "cannot arm the restart timer: not restarting for the upgrade");
                return false;
        }
        return true;
}

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
        RestartAtLock *r = userdata;
        if (ev->len > 0 && strcmp(ev->name, RESTART_AT_LOCK_FLAG) == 0)
                (void)restart_at_lock_check(r);
        return 0;
}

int restart_at_lock_start(sd_event *e, uint64_t delay_usec, restart_idle_fn is_idle, void *userdata,
                          RestartAtLock **ret)
{
        const char *dir = secure_getenv("RUNTIME_DIRECTORY");
        _cleanup_free_ RestartAtLock *r = NULL;
        int k;

        /* RuntimeDirectory=mamori: one entry, no ':' (several would be joined by ':'). */
        if (!dir || dir[0] != '/' || strchr(dir, ':')) {
                *ret = NULL;
                return 0;
        }
        r = calloc(1, sizeof(*r));
        if (!r || asprintf(&r->flag, "%s/%s", dir, RESTART_AT_LOCK_FLAG) < 0)
                return -ENOMEM;
        /* This process runs the newest binary: a flag from before it started is satisfied. */
        (void)unlink(r->flag);
        r->event = e;
        r->delay_usec = delay_usec;
        r->is_idle = is_idle;
        r->userdata = userdata;
        k = sd_event_add_inotify(e, &r->inotify, dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR, on_inotify, r);
        if (k < 0) {
                free(r->flag);
                return k;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

RestartAtLock *restart_at_lock_free(RestartAtLock *r)
{
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->inotify);
        sd_event_source_disable_unref(r->timer);
        free(r->flag);
        free(r);
        return NULL;
}
