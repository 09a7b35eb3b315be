/* mamorid's shared state: one struct agent owned by main(), wired to the session logic, D-Bus and records.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "card-worker.h"
#include "finger-worker.h"
#include "event-data.h"
#include "logind.h"
#include "mamori/agent-config.h"
#include "mamori/cert-check.h"
#include "mamori/json.h"
#include "oplog-writer.h"
#include "password-worker.h"
#include "policy-watch.h"
#include "reader-watch.h"
#include "record-limit.h"
#include "restart-at-lock.h"
#include "secret-age.h"
#include "session-logic.h"
#include "vein-worker.h"

struct agent {
        struct agent_config config;
        sd_event *event;
        sd_bus *bus; /* system bus; NULL when unavailable (then no D-Bus API, no logind) */
        ReaderWatch *watch;
        PolicyWatch *policy;
        CardWorker *worker;
        FingerWorker *finger;      /* NULL when the fingerprint thread could not start */
        PasswordWorker *passwords; /* scrypt checks and changes (password-worker.h) */
        Logind *logind;
        OpLog *log;
        enum auth_reason
                held;       /* terminal-unconfigured, log-damaged: every login refused (AUTH_ALLOW: none) */
        CertCheck *anchors; /* NULL when TrustAnchors= could not be loaded: every card is untrusted */
        sd_event_source *stale_timer;
        RecordLimit *limit;     /* auth.fail and policy.reject per cause (event.c), made at the first */
        RestartAtLock *restart; /* NULL when not under systemd (no RuntimeDirectory=) */
        SecretAge *secrets;     /* the newest PIN/password change per operator in the own log */
        VeinWorker *vein;       /* NULL without [Biometric] VeinPlugin=, or when the plugin was refused */

        struct session session; /* the session logic (session-logic.h) */
        int64_t policy_serial;
        bool emergency;
};

/* event.c: one record = an event line (stderr/journal) + an operation-log append.
 * data is taken (may be NULL). done (may be NULL) runs after the record is durable or failed, or
 * at once (result 0, seq 0) for an auth.fail or policy.reject that is only counted. */
int agent_record(struct agent *a, const char *ev, const char *op, const char *card, JsonValue *data,
                 oplog_done_fn done, void *userdata);

/* agent-dbus.c */
int agent_dbus_start(struct agent *a);
/* Answers a call the session logic kept (session_ops.answer). */
void agent_dbus_answer(struct agent *a, SessionCall *call, const struct session_outcome *o);
/* PropertiesChanged, and StateChanged when state_reason is set (session_ops.changed). */
void agent_dbus_changed(struct agent *a, const char *state_reason);
/* EnrollProgress(operator, stage, stages, retry) (session_ops.enroll_progress). */
void agent_dbus_enroll_progress(struct agent *a, const char *operator_id, int stage, int stages, bool retry);
