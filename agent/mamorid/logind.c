/* Talks to systemd-logind over sd-bus: LockSession, LockedHint verification, fallback, idle hints. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logind.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define LOGIND_NAME               "org.freedesktop.login1"
#define LOGIND_PATH               "/org/freedesktop/login1"
#define LOGIND_MANAGER            "org.freedesktop.login1.Manager"
#define LOGIND_SEAT               "org.freedesktop.login1.Seat"
#define LOGIND_SESSION            "org.freedesktop.login1.Session"
#define LOGIND_NO_SESSION_FOR_PID "org.freedesktop.login1.NoSessionForPID"
#define CALL_TIMEOUT              (2 * 1000 * 1000) /* µs: logind answers in milliseconds or not at all */

struct lock_op {
        Logind *l;
        struct lock_op *next; /* in l->ops while in flight */
        logind_lock_fn cb;
        void *userdata;
        uint64_t trigger_mono_usec;
        struct logind_lock_result result;
        char session_path[256];
        sd_bus_slot *slot;
        sd_event_source *verify;
        bool confirmed; /* LockedHint turned true while logind's reply was still on its way */
};

struct Logind {
        sd_event *event;
        sd_bus *bus;
        char *seat;
        uint64_t verify_usec;
        enum lock_fallback fallback;
        logind_idle_fn idle_cb;
        logind_locked_fn locked_cb;
        logind_unlocked_fn unlocked_cb;
        void *userdata;
        sd_bus_slot *idle_match;
        char idle_path[256];
        int locked_hint;     /* of idle_path as last read or signalled: 1, 0, -1 unknown */
        struct lock_op *ops; /* locks still waiting for logind or for the LockedHint check */
};

static void lock_op_free(struct lock_op *op);

Logind *logind_free(Logind *l)
{
        if (!l)
                return NULL;
        /* Locks in flight at shutdown: tell their owners (-ECANCELED) so they can free their state. */
        while (l->ops) {
                struct lock_op *op = l->ops;
                op->result.error = -ECANCELED;
                op->cb(op->userdata, &op->result, true);
                lock_op_free(op);
        }
        sd_bus_slot_unref(l->idle_match);
        sd_bus_unref(l->bus);
        sd_event_unref(l->event);
        free(l->seat);
        free(l);
        return NULL;
}

int logind_new(sd_event *e, sd_bus *bus, const char *seat, uint64_t verify_usec, enum lock_fallback fallback,
               logind_idle_fn idle_cb, logind_locked_fn locked_cb, logind_unlocked_fn unlocked_cb,
               void *userdata, Logind **ret)
{
        Logind *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->seat = strdup(seat);
        if (!l->seat) {
                free(l);
                return -ENOMEM;
        }
        l->event = sd_event_ref(e);
        l->bus = sd_bus_ref(bus);
        /* logind answers in milliseconds or not at all: never let it hold the loop for long. */
        (void)sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT);
        l->verify_usec = verify_usec;
        l->fallback = fallback;
        l->idle_cb = idle_cb;
        l->locked_cb = locked_cb;
        l->unlocked_cb = unlocked_cb;
        l->locked_hint = -1;
        l->userdata = userdata;
        *ret = l;
        return 0;
}

/* The seat's active session, found through the seat object as logind names it (never by building
 * a session path ourselves). */
static int active_session(Logind *l, char *ret_id, size_t id_size, char *ret_path, size_t path_size)
{
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *seat_path, *id, *path;
        char seat_copy[256];
        int r;

        r = sd_bus_call_method(l->bus, LOGIND_NAME, LOGIND_PATH, LOGIND_MANAGER, "GetSeat", &error, &reply,
                               "s", l->seat);
        if (r < 0)
                goto out;
        r = sd_bus_message_read(reply, "o", &seat_path);
        if (r < 0)
                goto out;
        snprintf(seat_copy, sizeof(seat_copy), "%s", seat_path);
        reply = sd_bus_message_unref(reply);
        r = sd_bus_get_property(l->bus, LOGIND_NAME, seat_copy, LOGIND_SEAT, "ActiveSession", &error, &reply,
                                "(so)");
        if (r < 0)
                goto out;
        r = sd_bus_message_read(reply, "(so)", &id, &path);
        if (r < 0)
                goto out;
        if (!*id || streq(path, "/")) {
                r = -ENXIO;
                goto out;
        }
        snprintf(ret_id, id_size, "%s", id);
        snprintf(ret_path, path_size, "%s", path);
        r = 0;
out:
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

int logind_active_session_id(Logind *l, char *ret, size_t size)
{
        char path[256];
        return active_session(l, ret, size, path, sizeof(path));
}

int logind_pid_in_active_session(Logind *l, pid_t pid)
{
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char id[64], active[256];
        const char *path;
        int r;

        if (pid <= 0)
                return -EINVAL;
        r = active_session(l, id, sizeof(id), active, sizeof(active));
        if (r == -ENXIO)
                return 0;
        if (r < 0)
                return r;
        r = sd_bus_call_method(l->bus, LOGIND_NAME, LOGIND_PATH, LOGIND_MANAGER, "GetSessionByPID", &error,
                               &reply, "u", (uint32_t)pid);
        if (r < 0) {
                /* A process outside every session (a system service, a cron job, ssh without
                 * pam_systemd) is simply not in the seat's session. */
                r = sd_bus_error_has_name(&error, LOGIND_NO_SESSION_FOR_PID) ? 0 : r;
                goto out;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                goto out;
        r = streq(path, active);
out:
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

static void lock_op_free(struct lock_op *op)
{
        for (struct lock_op **p = &op->l->ops; *p; p = &(*p)->next)
                if (*p == op) {
                        *p = op->next;
                        break;
                }
        sd_bus_slot_unref(op->slot);
        sd_event_source_disable_unref(op->verify);
        free(op);
}

static int locked_hint(Logind *l, const char *session_path, bool *ret)
{
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int b = 0;
        int r = sd_bus_get_property_trivial(l->bus, LOGIND_NAME, session_path, LOGIND_SESSION, "LockedHint",
                                            &error, 'b', &b);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        *ret = b;
        return 0;
}

static int on_verify(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct lock_op *op = userdata;
        Logind *l = op->l;
        bool locked = false;

        if (locked_hint(l, op->session_path, &locked) < 0 || !locked) {
                /* The desktop did not confirm: never leave an unlocked screen behind. */
                if (l->fallback == LOCK_FALLBACK_TERMINATE) {
                        sd_bus_error error = SD_BUS_ERROR_NULL;
                        op->result.fallback_used = true;
                        op->result.fallback_method = "TerminateSession";
                        op->result.fallback_error = sd_bus_call_method(
                                l->bus, LOGIND_NAME, LOGIND_PATH, LOGIND_MANAGER, "TerminateSession", &error,
                                NULL, "s", op->result.session_id);
                        if (op->result.fallback_error > 0)
                                op->result.fallback_error = 0;
                        sd_bus_error_free(&error);
                } else {
                        op->result.fallback_used = true;
                        op->result.fallback_method = "none";
                        op->result.fallback_error = -ENOLCK;
                }
        }
        op->cb(op->userdata, &op->result, true);
        lock_op_free(op);
        return 0;
}

static int on_lock_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        struct lock_op *op = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int r;

        op->slot = sd_bus_slot_unref(op->slot);
        op->result.latency_usec = now_mono_usec() - op->trigger_mono_usec;
        if (e) {
                op->result.error = -sd_bus_error_get_errno(e);
                if (op->result.error == 0)
                        op->result.error = -EIO;
                /* logind refused the lock: check the desktop now and fall back if it is not locked. */
                on_verify(NULL, 0, op);
                return 0;
        }
        op->cb(op->userdata, &op->result, false);
        if (op->confirmed) {
                op->cb(op->userdata, &op->result, true);
                lock_op_free(op);
                return 0;
        }
        r = sd_event_add_time_relative(op->l->event, &op->verify, CLOCK_MONOTONIC, op->l->verify_usec, 0,
                                       on_verify, op);
        if (r < 0) {
                on_verify(NULL, 0, op);
                return 0;
        }
        return 0;
}

static int watch_session(Logind *l, const char *path);

int logind_lock(Logind *l, uint64_t trigger_mono_usec, logind_lock_fn cb, void *userdata)
{
        struct lock_op *op = calloc(1, sizeof(*op));
        int r;

        if (!op)
                return -ENOMEM;
        op->l = l;
        op->cb = cb;
        op->userdata = userdata;
        op->trigger_mono_usec = trigger_mono_usec;
        op->next = l->ops;
        l->ops = op;
        r = active_session(l, op->result.session_id, sizeof(op->result.session_id), op->session_path,
                           sizeof(op->session_path));
        if (r >= 0)
                /* From now on an unlock of this session is seen; LockedHint as it is before this
                 * lock is the base, so a late signal of an earlier unlock is no bypass. */
                (void)watch_session(l, op->session_path);
        if (r >= 0)
                r = sd_bus_call_method_async(l->bus, &op->slot, LOGIND_NAME, LOGIND_PATH, LOGIND_MANAGER,
                                             "LockSession", on_lock_reply, op, "s", op->result.session_id);
        if (r < 0) {
                op->result.error = r;
                op->result.latency_usec = now_mono_usec() - trigger_mono_usec;
                if (r != -ENXIO) {
                        /* The seat's session could not be found (logind restarting?): lock them all. */
                        sd_bus_error error = SD_BUS_ERROR_NULL;
                        op->result.fallback_used = true;
                        op->result.fallback_method = "LockSessions";
                        op->result.fallback_error =
                                sd_bus_call_method(l->bus, LOGIND_NAME, LOGIND_PATH, LOGIND_MANAGER,
                                                   "LockSessions", &error, NULL, "");
                        if (op->result.fallback_error > 0)
                                op->result.fallback_error = 0;
                        sd_bus_error_free(&error);
                }
                cb(userdata, &op->result, true);
                lock_op_free(op);
        }
        return 0; /* cb has been or will be called */
}

static void report_idle(Logind *l)
{
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int idle = 0;
        uint64_t since = 0;

        if (sd_bus_get_property_trivial(l->bus, LOGIND_NAME, l->idle_path, LOGIND_SESSION, "IdleHint",
                                        &error, 'b', &idle) < 0) {
                sd_bus_error_free(&error);
                return;
        }
        sd_bus_error_free(&error);
        (void)sd_bus_get_property_trivial(l->bus, LOGIND_NAME, l->idle_path, LOGIND_SESSION, "IdleSinceHint",
                                          &error, 't', &since);
        sd_bus_error_free(&error);
        l->idle_cb(l->userdata, idle, since);
}

/* Reads PropertiesChanged(s interface, a{sv} changed, as invalidated) for LockedHint: 1, 0, or -1
 * when the signal does not carry it. */
static int signalled_locked_hint(sd_bus_message *m)
{
        const char *iface, *name;
        int locked = -1;

        if (sd_bus_message_read(m, "s", &iface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return -1;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return -1;
                if (streq(name, "LockedHint")) {
                        int b = 0;
                        if (sd_bus_message_read(m, "v", "b", &b) < 0)
                                return -1;
                        locked = !!b;
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return -1;
                if (sd_bus_message_exit_container(m) < 0)
                        return -1;
        }
        return locked;
}

/* A lock the desktop has confirmed (LockedHint true) needs no check at the LockVerifySec deadline:
 * an unlock after it is a card login or a bypass, never a reason for the fallback. */
static void confirm_pending_locks(Logind *l)
{
        for (struct lock_op *op = l->ops; op; op = op->next)
                if (op->slot && streq(op->session_path, l->idle_path))
                        op->confirmed = true;
        for (;;) {
                struct lock_op *op = l->ops;
                while (op && !(op->verify && streq(op->session_path, l->idle_path)))
                        op = op->next;
                if (!op)
                        return;
                op->cb(op->userdata, &op->result, true);
                lock_op_free(op);
        }
}

static int on_session_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Logind *l = userdata;
        int hint = signalled_locked_hint(m), before = l->locked_hint;

        if (hint >= 0)
                l->locked_hint = hint;
        if (hint == 1)
                confirm_pending_locks(l);
        if (l->locked_cb && hint == 1)
                l->locked_cb(l->userdata);
        /* true → false (or unknown → false: logind signals only changes). */
        if (l->unlocked_cb && hint == 0 && before != 0)
                l->unlocked_cb(l->userdata, now_mono_usec());
        if (l->idle_cb)
                report_idle(l);
        return 0;
}

/* Subscribes to the properties of the session at path (once) and reads its LockedHint now: the
 * base against which a later signal is a change. A signal queued before this read is older than
 * the value read, so it cannot make a change out of an unlock that happened before. */
static int watch_session(Logind *l, const char *path)
{
        char match[512];
        bool locked = false;
        int r;

        if (!l->idle_cb && !l->locked_cb && !l->unlocked_cb)
                return 0;
        if (!l->idle_match || !streq(path, l->idle_path)) {
                l->idle_match = sd_bus_slot_unref(l->idle_match);
                snprintf(l->idle_path, sizeof(l->idle_path), "%s", path);
                snprintf(match, sizeof(match),
                         "type='signal',sender='" LOGIND_NAME
                         "',interface='org.freedesktop.DBus.Properties',"
                         "member='PropertiesChanged',path='%s'",
                         path);
                r = sd_bus_add_match(l->bus, &l->idle_match, match, on_session_properties, l);
                if (r < 0)
                        return r;
        }
        l->locked_hint = locked_hint(l, path, &locked) >= 0 ? locked : -1;
        return 0;
}

int logind_watch_idle(Logind *l)
{
        char id[64], path[256];
        int r;

        if (!l->idle_cb && !l->locked_cb && !l->unlocked_cb)
                return 0;
        r = active_session(l, id, sizeof(id), path, sizeof(path));
        if (r < 0)
                return r;
        r = watch_session(l, path);
        if (r < 0)
                return r;
        if (l->idle_cb)
                report_idle(l);
        return 0;
}
