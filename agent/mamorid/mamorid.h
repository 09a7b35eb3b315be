/* mamorid's shared state: one struct agent owned by main(), used by the session, D-Bus and record code. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "card-worker.h"
#include "idle-input.h"
#include "logind.h"
#include "mamori/agent-config.h"
#include "mamori/card.h"
#include "mamori/cert-check.h"
#include "mamori/json.h"
#include "mamori/time-util.h"
#include "oplog-writer.h"
#include "policy-watch.h"
#include "reader-watch.h"
#include "session.h"

#define OPERATOR_ID_MAX 65

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

/* A login between StartLogin and the answer to AnswerPin. */
struct pending_login {
        bool active;
        char *sender;           /* unique bus name of the PAM client that started it */
        sd_bus_message *answer; /* AnswerPin call to reply to, once decided and committed */
        char card_id[CARD_ID_LEN + 1];
        char reader[READER_NAME_MAX];
        char operator_id[OPERATOR_ID_MAX];
        uint64_t id; /* the card worker's login (it holds the card for the PIN) */
        uint64_t started_mono_usec;
};

struct agent {
        struct agent_config config;
        sd_event *event;
        sd_bus *bus; /* system bus; NULL when unavailable (then no D-Bus API, no logind) */
        ReaderWatch *watch;
        PolicyWatch *policy;
        CardWorker *worker;
        Logind *logind;
        OpLog *log;
        IdleInput *input;   /* IdleSource=input, while a session is active */
        CertCheck *anchors; /* NULL when TrustAnchors= could not be loaded: every card is untrusted */
        sd_event_source *stale_timer, *idle_timer, *card_left_timer, *log_retry_timer;

        enum session_state state;
        uint64_t session_gen;           /* counts sessions: a late reply must grant only its own */
        uint64_t session_started_usec;  /* CLOCK_REALTIME of the login */
        uint64_t last_relock_mono_usec; /* throttles Lock on an already locked terminal */
        oplog_done_fn end_done;         /* completion for the next session.end record (Lock's reply) */
        void *end_done_userdata;
        sd_event_source *login_timer;      /* a started login must be answered in time */
        char operator_id[OPERATOR_ID_MAX]; /* only while active */
        char session_card[CARD_ID_LEN + 1];
        char method[16];
        uint64_t last_login_id;
        struct present_card card;
        struct pending_login login;

        int64_t policy_serial;
        bool emergency;
        bool readers_lost; /* pcscd gone: fail closed until it returns */
};

/* event.c: one record = an event line (stderr/journal) + an operation-log append.
 * data is taken (may be NULL). done (may be NULL) runs after the record is durable or failed. */
int agent_record(struct agent *a, const char *ev, const char *op, const char *card, JsonValue *data,
                 oplog_done_fn done, void *userdata);
/* Builds {key: value, …} from NULL-terminated pairs; a value starting with '#' is an integer
 * ("#123"); a NULL value skips the key. */
JsonValue *agent_data(const char *key, ...) __attribute__((sentinel));

/* session-logic.c */
void agent_session_init(struct agent *a);
void agent_session_done(struct agent *a);
void agent_on_reader_event(struct agent *a, const struct reader_event *ev);
void agent_on_policy(struct agent *a, const Policy *current, bool emergency_changed);
void agent_on_log_health(struct agent *a, int error);
/* logind idle callback (userdata is the agent). */
void agent_on_idle_hint(void *userdata, bool idle, uint64_t since_usec);
/* logind: the desktop locked by itself while a session was active. */
void agent_on_desktop_locked(void *userdata);
void agent_lock(struct agent *a, enum session_trigger trigger, uint64_t trigger_mono_usec);
/* D-Bus methods; each returns an sd-bus error name (NULL on success) and may keep the message. */
int agent_start_login(struct agent *a, sd_bus_message *m, const char *user, char *ret_card_id,
                      int *ret_tries, const char **ret_error, const char **ret_message);
int agent_answer_pin(struct agent *a, sd_bus_message *m, const char *pin, const char **ret_error,
                     const char **ret_message);
int agent_cancel_login(struct agent *a, const char *sender, const char **ret_error);
/* Lock, answering m after the session.end record is durable (at once if nothing was active). */
int agent_lock_and_reply(struct agent *a, sd_bus_message *m);
int agent_change_pin(struct agent *a, sd_bus_message *m, const char *old_pin, const char *new_pin,
                     const char **ret_error, const char **ret_message);

/* agent-dbus.c */
int agent_dbus_start(struct agent *a);
void agent_dbus_state_changed(struct agent *a, const char *reason);
void agent_dbus_properties_changed(struct agent *a);
const char *agent_error_name(const char *reason); /* "pin-wrong" → org.mamori.Agent1.Error.PinWrong */
