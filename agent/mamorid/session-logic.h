/* mamorid's session logic (card events, logins, locking, idle, answers after commit), free of D-Bus. */
#pragma once

/*
 * The logic decides and records; it never speaks a wire protocol. It calls out through struct
 * session_ops (records, the card worker, logind, the policy and trust anchors, and "answer this
 * caller"), so the unit tests drive it with fakes. agent-dbus.c turns D-Bus calls into the
 * session_*() methods below and outcomes into replies; who may call which method is decided
 * there, in one table, before a method runs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "card-worker.h"
#include "finger-worker.h"
#include "idle-input.h"
#include "logind-lock.h"
#include "mamori/agent-config.h"
#include "mamori/auth-decision.h"
#include "mamori/card.h"
#include "mamori/json.h"
#include "mamori/policy.h"
#include "oplog-writer.h"
#include "password-failures.h"
#include "print-store.h"
#include "reader-watch.h"
#include "record-limit.h"
#include "session.h"
#include "vein-worker.h"

#define OPERATOR_ID_MAX 65
#define METHOD_MAX      24 /* "group-card+password" and its kin, with the NUL */

/* A method call waiting for its answer. Opaque here: the D-Bus layer says what it is. */
typedef struct SessionCall SessionCall;

/* What a call is answered. error < 0: the call failed (-errno). Else reason AUTH_ALLOW with the
 * method's results, or a refusal of the shared reason table with message ("pin-wrong tries=2"). */
struct session_outcome {
        int error;
        enum auth_reason reason;
        char message[96];
        char operator_id[OPERATOR_ID_MAX]; /* AnswerPin, StartBioLogin, ScanFinger, EnrollFinger */
        char step[16];                     /* StartBioLogin, AnswerPin: what the login waits for next */
        char card_id[CARD_ID_LEN + 1];     /* StartLogin */
        int tries;                         /* StartLogin: PIN tries the card reported, -1 unknown */
        uint64_t seq;                      /* RecordOperation: the record's sequence number */
        int pin_age_days, max_age_days, warn_days; /* PinAgeDays, PasswordAgeDays */
};

/* The password thread's answer (password-worker.h): 0 match/stored, -EACCES wrong, -ENOENT unset. */
typedef void (*session_password_done_fn)(void *userdata, uint64_t id, int result);

/* Everything the logic asks of the rest of the daemon. userdata is session.userdata. */
struct session_ops {
        /* One record: event line + operation log. data is taken (may be NULL). done (may be NULL)
         * runs once the record is durable (result 0) or failed (< 0), possibly before this returns. */
        int (*record)(void *userdata, const char *ev, const char *op, const char *card, JsonValue *data,
                      oplog_done_fn done, void *done_userdata);
        bool (*log_writable)(void *userdata);
        /* Why the terminal refuses every login whatever the card (log-damaged,
         * terminal-unconfigured), AUTH_ALLOW when it does not. May be NULL. */
        enum auth_reason (*held)(void *userdata);
        const Policy *(*policy)(void *userdata); /* NULL: none loaded */
        /* The newest pin.change/password.change of op in this terminal's own log (secret-age.h),
         * µs; -1 when none. May be NULL. */
        int64_t (*secret_changed)(void *userdata, const char *op);
        int (*check_cert)(void *userdata, const uint8_t *der, size_t der_len); /* CERT_CHECK_* */
        /* The card thread (card-worker.h): a login takes l (prechecked) on success, holds and
         * selects the card at once, and verifies when the PIN comes; done runs later on the event
         * loop, with the engine. A PIN change: -EBUSY while a login holds the card. */
        int (*login_start)(void *userdata, const char *reader, CardLogin *l, uint64_t id,
                           card_job_done_fn done, void *done_userdata);
        int (*login_pin)(void *userdata, uint64_t id, const char *pin);
        void (*login_cancel)(void *userdata, uint64_t id); /* a login not past its PIN lets the card go */
        int (*change_pin)(void *userdata, const char *reader, const char *old_pin, const char *new_pin,
                          card_job_done_fn done, void *done_userdata);
        /* The fingerprint thread (finger-worker.h); done runs on the event loop. May be NULL (no
         * sensor support): every finger step is then bio-unavailable. */
        void (*finger_device)(void *userdata, struct finger_device_info *ret);
        int (*finger_match)(void *userdata, uint64_t id, const char *dir, char *const *allowed, size_t n,
                            finger_event_fn done, void *done_userdata);
        int (*finger_enroll)(void *userdata, uint64_t id, const char *operator_id, finger_event_fn done,
                             void *done_userdata);
        void (*finger_cancel)(void *userdata, uint64_t id);
        /* The vein thread (vein-worker.h), the same way; NULL or no plugin loaded: every vein step
         * is bio-unavailable. vein_match reads the templates of dir on its thread. */
        void (*vein_device)(void *userdata, struct vein_device_info *ret);
        int (*vein_match)(void *userdata, uint64_t id, const char *dir, char *const *allowed, size_t n,
                          vein_event_fn done, void *done_userdata);
        int (*vein_enroll)(void *userdata, uint64_t id, const char *operator_id, vein_event_fn done,
                           void *done_userdata);
        void (*vein_cancel)(void *userdata, uint64_t id);
        /* An enrolment went one stage further (EnrollProgress); may be NULL. */
        void (*enroll_progress)(void *userdata, const char *operator_id, int stage, int stages, bool retry);
        /* The password thread: check a password against operator_id's verifier, or store a new one
         * (old_password NULL: none to check). done runs later on the loop with id; -EBUSY when full. */
        int (*password_check)(void *userdata, uint64_t id, const char *operator_id, const char *password,
                              session_password_done_fn done, void *done_userdata);
        int (*password_set)(void *userdata, uint64_t id, const char *operator_id, const char *old_password,
                            const char *new_password, session_password_done_fn done, void *done_userdata);
        /* When operator_id's password was set (µs since the epoch); -ENOENT when none is. */
        int (*password_changed)(void *userdata, const char *operator_id, int64_t *ret_usec);
        /* Removes operator_id's verifier, in order with the checks and sets (0, -ENOENT none set). */
        int (*password_remove)(void *userdata, uint64_t id, const char *operator_id,
                               session_password_done_fn done, void *done_userdata);
        /* The clock the password failure counts are measured on, µs: CLOCK_MONOTONIC in mamorid (why:
         * session-password.c); the unit tests move it on by the hour. */
        uint64_t (*password_clock)(void *userdata);
        /* The failure counts changed: keep them across a restart (password-failures.h). May be NULL. */
        void (*password_failures_save)(void *userdata, const struct password_failure_file *file);
        /* logind: -ENODEV when there is no system bus; -ENOMEM (cb never called); 0: cb will be
         * called as logind_lock() says. */
        int (*lock_screen)(void *userdata, uint64_t trigger_mono_usec, logind_lock_fn cb, void *cb_userdata);
        int (*watch_idle)(void *userdata);
        /* Answers call with o and drops the reference the logic held. */
        void (*answer)(void *userdata, SessionCall *call, const struct session_outcome *o);
        /* Something callers can see changed; with a reason, the state changed (StateChanged). */
        void (*changed)(void *userdata, const char *state_reason);
};

/* The card currently in a reader (the most recently inserted one). */
struct present_card {
        bool present;
        char reader[READER_NAME_MAX];
        char card_id[CARD_ID_LEN + 1]; /* "" when the certificate could not be read */
        int read_error;
        int pin_tries; /* as the card last reported them, -1 unknown */
        uint8_t *der;  /* its certificate, owned */
        size_t der_len;
        uint64_t inserted_mono_usec;
};

/* What a pending login waits for (the Step property). */
enum login_step {
        LOGIN_STEP_PIN,         /* "pin": AnswerPin */
        LOGIN_STEP_FINGER,      /* "finger": ScanFinger */
        LOGIN_STEP_VEIN,        /* "vein" */
        LOGIN_STEP_PASSWORD,    /* "password": AnswerPassword */
        LOGIN_STEP_OPERATOR_ID, /* "operator-id" */
        _LOGIN_STEP_MAX,
};

struct password_wait;

/* A login between StartLogin (or StartBioLogin) and the answer that grants or ends it. */
struct pending_login {
        bool active;
        char *sender;        /* who started it (the D-Bus unique name); only it may go on */
        SessionCall *answer; /* AnswerPin/AnswerPassword to answer, once decided and committed */
        enum login_step step;
        char method[METHOD_MAX]; /* what the session's Method will be: "card+pin", "group-card+password" … */
        char card_id[CARD_ID_LEN + 1];
        char reader[READER_NAME_MAX];
        char operator_id[OPERATOR_ID_MAX]; /* known so far: the card's, the bio match's; "" after a group
                                              card */
        char group_id[OPERATOR_ID_MAX];    /* a group card's group, once its PIN verified */
        char user[OPERATOR_ID_MAX];        /* the PAM user (Accounts=per-operator: must be the operator); for
                                              StartBioLogin also the id a 1:1 sensor compares with */
        uint64_t id;                       /* the card thread's login, which holds the card for the PIN */
        uint64_t started_mono_usec;
        uint64_t password_job;           /* the password thread's check in flight (0: none) */
        struct password_wait *wait;      /* a password answer held back for its delay */
        uint64_t scan_id;                /* the fingerprint or vein thread's scan, while one runs */
        enum bio_modality scan_modality; /* whose thread runs it */
        uint64_t gallery_usec;           /* deciding whose prints it compares with */
};

/* An enrolment between EnrollFinger (EnrollVein) and its answer (session-bio.c). */
struct pending_enrolment {
        bool active;
        enum bio_modality modality;
        uint64_t id;
        char *sender;
        SessionCall *answer;
        uint64_t session_gen; /* the session it belongs to: it ends with it */
        int stages;           /* captures needed, as the reader last said (vein) */
        char operator_id[OPERATOR_ID_MAX];
        char card_id[CARD_ID_LEN + 1];
};

struct pending_answer;

/* Wrong passwords per operator: each failure doubles the time before the next answer for them. */
#define PASSWORD_FAILURES_MAX PASSWORD_FAILURE_ENTRIES_MAX
struct password_failures {
        char operator_id[OPERATOR_ID_MAX]; /* "" = free slot */
        unsigned count;
        uint64_t next_mono_usec; /* no answer for this operator before this */
        uint64_t last_mono_usec;
};

struct session {
        const struct session_ops *ops;
        void *userdata;
        const struct agent_config *config;
        sd_event *event;

        enum session_state state;
        uint64_t session_gen;           /* counts sessions: a late answer grants only its own */
        uint64_t session_started_usec;  /* CLOCK_REALTIME of the login */
        uint64_t last_relock_mono_usec; /* throttles Lock on an already locked terminal */
        /* Bypass re-locks: the first of a burst is recorded in full, the rest are counted and
         * summed up in one record at the end of the interval (record-limit.h). */
        struct burst bypass;
        struct pending_answer *end_answer; /* answered once the next session.end is durable (Lock) */
        char operator_id[OPERATOR_ID_MAX]; /* only while active */
        char session_card[CARD_ID_LEN + 1];
        char method[METHOD_MAX];
        uint64_t last_login_id;
        uint64_t last_password_job;
        /* ResetPassword jobs not answered yet: a ChangePassword queued behind one would write a password
         * back after the removal, so it is refused until they are. */
        unsigned password_resets_pending;
        struct password_failures password_failures[PASSWORD_FAILURES_MAX];
        /* The count of every operator without a slot: zero, or what a failure file that could not be
         * trusted left behind (session_password_failures_fail_closed). */
        struct password_failures password_failures_floor;
        struct present_card card;
        struct pending_login login;
        struct pending_enrolment enrolment;
        bool readers_lost; /* pcscd gone: fail closed until it returns */

        IdleInput *input; /* IdleSource=input, while a session is active */
        sd_event_source *idle_timer, *card_left_timer, *login_timer;
};

void session_init(struct session *s, const struct session_ops *ops, void *userdata,
                  const struct agent_config *config, sd_event *event);
/* Answers a pending login (cancelled) and frees what the session holds. */
void session_done(struct session *s);

/* Inputs. */
void session_on_reader_event(struct session *s, const struct reader_event *ev); /* takes ev->der */
void session_on_policy(struct session *s, const Policy *current);
void session_on_log_health(struct session *s, int error);
void session_on_idle_hint(void *userdata, bool idle, uint64_t since_usec); /* logind_idle_fn */
void session_on_desktop_locked(void *userdata);                            /* logind_locked_fn */
void session_on_desktop_unlocked(void *userdata, uint64_t mono_usec);      /* logind_unlocked_fn */
void session_lock(struct session *s, enum session_trigger trigger, uint64_t trigger_mono_usec);

/* Methods. Each takes one reference to call and answers it exactly once through ops->answer: at
 * once, or after the records it grants or refuses on are durable. The caller checks beforehand
 * who may call (agent-dbus.c's table); the logic checks the state. */
void session_start_login(struct session *s, SessionCall *call, const char *sender, const char *user);
void session_answer_pin(struct session *s, SessionCall *call, const char *pin);
void session_cancel_login(struct session *s, SessionCall *call); /* call NULL: the client went away */
void session_lock_call(struct session *s, SessionCall *call);
void session_change_pin(struct session *s, SessionCall *call, const char *old_pin, const char *new_pin);
/* data (taken): the app.op fields, already checked. */
void session_record_operation(struct session *s, SessionCall *call, JsonValue *data);
void session_pin_age(struct session *s, SessionCall *call);
/* session-password.c: the password step of a login, and the active operator's password. */
void session_answer_password(struct session *s, SessionCall *call, const char *operator_id,
                             const char *password);
void session_change_password(struct session *s, SessionCall *call, const char *old_password,
                             const char *new_password);
void session_password_age(struct session *s, SessionCall *call);
/* ResetPassword (root): removes operator_id's password on this terminal, so their next login is refused
 * password-unset until they set one in a card session (as the first time); recorded as enroll
 * {action: reset, modality: password, login_uid}; an active session of theirs opened with that password
 * then ends (TRIGGER_PASSWORD_RESET). login_uid: the administrator behind the call, -1 unknown. */
void session_reset_password(struct session *s, SessionCall *call, const char *operator_id,
                            int64_t login_uid);
/* How long the next answer for operator_id waits (0 when none), for tests and the bench. */
uint64_t session_password_delay_usec(const struct session *s, const char *operator_id);
/* At start: the counts of the failure file (CLOCK_REALTIME) as they stand now. */
void session_password_failures_restore(struct session *s, const struct password_failure_file *file);
/* At start, when the failure file exists but cannot be trusted (corrupt, not root's 0600): every
 * operator counts as locked out (the longest delay, from now) rather than as never wrong, until their
 * own right password or an hour without a failure (as any count); saved at once, so the file is sound
 * again and the lock-out survives another restart. */
void session_password_failures_fail_closed(struct session *s);

/* The Step property: "" unless a login is pending. */
const char *session_step(const struct session *s);
const char *login_step_to_string(enum login_step step);

/* Fingerprints and vein (session-bio.c). StartBioLogin: no card; modality "finger" or "vein";
 * identifies (1:N, or 1:1 against user on a reader that cannot identify) and answers after the touch
 * with the operator and the next step. */
void session_start_bio_login(struct session *s, SessionCall *call, const char *sender, const char *user,
                             const char *modality);
/* ScanFinger: after a group card's PIN (a member identifies) or a card+PIN with
 * RequireFingerWithCard=yes (the card's operator's own finger). */
void session_scan_finger(struct session *s, SessionCall *call, const char *modality);
/* EnrollFinger, EnrollVein: in an active card session, a template for that session's operator. */
void session_enroll_finger(struct session *s, SessionCall *call, const char *sender);
void session_enroll_vein(struct session *s, SessionCall *call, const char *sender);
/* The enrolment's client went away: it is cancelled. */
void session_enroll_client_gone(struct session *s, const char *sender);
/* DeletePrints (root): every print of operator_id. */
void session_delete_prints(struct session *s, SessionCall *call, const char *operator_id);
/* DeleteTemplates (root): every template of modality m of operator_id. */
void session_delete_templates(struct session *s, SessionCall *call, const char *operator_id,
                              enum bio_modality m);
/* A bundle was loaded: the templates (both modalities) of operators it retires are deleted, and
 * that is recorded, once per modality. */
void session_bio_on_policy(struct session *s, const Policy *current);
/* Facts the permission table asks about. */
bool session_login_pending(const struct session *s);
bool session_login_started_by(const struct session *s, const char *sender);
/* Active, and the card in the reader is the session's own. */
bool session_holds_inserted_card(const struct session *s);
