/* mamorid's session behaviour: card events, logins over D-Bus, locking and idle, all through session.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <openssl/crypto.h>

#include "journal.h"
#include "mamorid.h"
#include "mamori/auth-decision.h"
#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"

#define PIN_MAX_LEN       16
#define LOGIN_ANSWER_USEC (120 * USEC_PER_SEC) /* a started login not answered by then is cancelled */

static void fmt_int(char buf[24], int64_t v)
{
        snprintf(buf, 24, "#%" PRId64, v);
}

/* ---- replies that wait for the record to be durable ---- */

struct deferred_reply {
        struct agent *a;
        sd_bus_message *m;
        char *error_name; /* NULL: success */
        char *error_message;
        char *operator_id;    /* success reply of AnswerPin */
        uint64_t session_gen; /* the session a success reply grants */
};

static void deferred_free(struct deferred_reply *d)
{
        sd_bus_message_unref(d->m);
        free(d->error_name);
        free(d->error_message);
        free(d->operator_id);
        free(d);
}

static void reply_after_commit(int result, uint64_t seq, void *userdata)
{
        struct deferred_reply *d = userdata;

        if (result < 0) {
                /* Nothing may be granted that is not on record. */
                (void)sd_bus_reply_method_errorf(d->m, MAMORI_ERROR_LOG_UNWRITABLE,
                                                 "log-unwritable: the operation log cannot be written (%s)",
                                                 strerror(-result));
                agent_on_log_health(d->a, result);
        } else if (d->error_name)
                (void)sd_bus_reply_method_errorf(d->m, d->error_name, "%s", d->error_message);
        else if (d->operator_id) {
                /* Grant only the session that is still running: a pull, lock or log failure
                 * while its records were being written has ended it already. */
                if (d->a->state == SESSION_ACTIVE && d->a->session_gen == d->session_gen)
                        (void)sd_bus_reply_method_return(d->m, "s", d->operator_id);
                else
                        (void)sd_bus_reply_method_errorf(
                                d->m, MAMORI_ERROR_CARD_ERROR,
                                "card-error: the session ended before it was recorded");
        } else
                (void)sd_bus_reply_method_return(d->m, "");
        deferred_free(d);
}

static struct deferred_reply *deferred_new(struct agent *a, sd_bus_message *m, const char *error_name,
                                           const char *error_message, const char *operator_id)
{
        struct deferred_reply *d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->a = a;
        d->m = sd_bus_message_ref(m);
        d->error_name = error_name ? strdup(error_name) : NULL;
        d->error_message = error_message ? strdup(error_message) : NULL;
        d->operator_id = operator_id ? strdup(operator_id) : NULL;
        d->session_gen = a->session_gen;
        if ((error_name && !d->error_name) || (error_message && !d->error_message) ||
            (operator_id && !d->operator_id)) {
                deferred_free(d); /* a refusal must never degrade into a success */
                return NULL;
        }
        return d;
}

/* ---- locking ---- */

struct lock_ctx {
        struct agent *a;
        char reason[32];
};

static void on_lock_result(void *userdata, const struct logind_lock_result *r, bool final)
{
        struct lock_ctx *c = userdata;
        char latency[24];

        fmt_int(latency, (int64_t)r->latency_usec);
        if (!final) {
                agent_record(c->a, "lock", NULL, NULL,
                             agent_data("method", "LockSession", "session", r->session_id, "reason",
                                        c->reason, "latency_us", latency, NULL),
                             NULL, NULL);
                return;
        }
        if (r->error == -ECANCELED) {
                free(c);
                return; /* the agent is stopping */
        }
        if (r->error < 0)
                agent_record(c->a, "lock", NULL, NULL,
                             agent_data("method", "LockSession", "reason", c->reason, "error",
                                        r->error == -ENXIO ? "no-active-session" : strerror(-r->error),
                                        "latency_us", latency, NULL),
                             NULL, NULL);
        if (r->fallback_used)
                agent_record(c->a, "lock", NULL, NULL,
                             agent_data("method", r->fallback_method, "session", r->session_id, "reason",
                                        "desktop-did-not-lock", "error",
                                        r->fallback_error < 0 ? strerror(-r->fallback_error) : NULL, NULL),
                             NULL, NULL);
        free(c);
}

static void lock_screen(struct agent *a, const char *reason, uint64_t trigger_mono_usec)
{
        struct lock_ctx *c;

        if (!a->logind) {
                agent_record(a, "lock", NULL, NULL,
                             agent_data("reason", reason, "error", "no-system-bus", NULL), NULL, NULL);
                return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                agent_log(LOG_CRIT, "out of memory while locking (%s)", reason);
                return;
        }
        c->a = a;
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
        if (logind_lock(a->logind, trigger_mono_usec, on_lock_result, c) < 0)
                free(c); /* on_lock_result was not called */
}

/* ---- timers ---- */

static int on_card_left(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct agent *a = userdata;

        a->card_left_timer = sd_event_source_disable_unref(a->card_left_timer);
        if (a->state != SESSION_ACTIVE && a->card.present)
                agent_record(a, "card.left", NULL, a->card.card_id[0] ? a->card.card_id : NULL,
                             agent_data("reader", a->card.reader, "reason", "after-lock", NULL), NULL, NULL);
        return 0;
}

static void arm_card_left(struct agent *a)
{
        a->card_left_timer = sd_event_source_disable_unref(a->card_left_timer);
        if (a->card.present)
                (void)sd_event_add_time_relative(a->event, &a->card_left_timer, CLOCK_MONOTONIC,
                                                 a->config.card_left_usec, 0, on_card_left, a);
}

static int on_idle_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct agent *a = userdata;

        a->idle_timer = sd_event_source_disable_unref(a->idle_timer);
        agent_lock(a, TRIGGER_IDLE, now_mono_usec());
        return 0;
}

void agent_on_idle_hint(void *userdata, bool idle, uint64_t since_usec)
{
        struct agent *a = userdata;

        a->idle_timer = sd_event_source_disable_unref(a->idle_timer);
        if (!idle || a->state != SESSION_ACTIVE)
                return;
        /* Idle since before this session began (a hint left from the lock screen) counts from login. */
        if (since_usec == 0 || since_usec < a->session_started_usec)
                since_usec =
                        a->session_started_usec ? a->session_started_usec : (uint64_t)now_realtime_usec();
        (void)sd_event_add_time(a->event, &a->idle_timer, CLOCK_REALTIME,
                                since_usec + a->config.idle_lock_usec, 0, on_idle_timer, a);
}

/* IdleSource=input: every touch of keyboard or mouse pushes the idle lock IdleLockSec away. */
static void on_input_activity(void *userdata)
{
        struct agent *a = userdata;

        a->idle_timer = sd_event_source_disable_unref(a->idle_timer);
        if (a->state == SESSION_ACTIVE)
                (void)sd_event_add_time_relative(a->event, &a->idle_timer, CLOCK_MONOTONIC,
                                                 a->config.idle_lock_usec, 0, on_idle_timer, a);
}

static void start_idle_watch(struct agent *a)
{
        if (a->config.idle_source == IDLE_SOURCE_INPUT) {
                a->input = idle_input_free(a->input);
                int n = idle_input_start(a->event, a->config.input_directory, on_input_activity, a,
                                         &a->input);
                if (n <= 0)
                        agent_log(LOG_WARNING,
                                  "IdleSource=input: no input device in %s; the idle lock runs from login",
                                  a->config.input_directory);
                on_input_activity(a); /* the login itself is activity */
        } else if (!a->logind || logind_watch_idle(a->logind) < 0) {
                /* No idle hints to watch: lock IdleLockSec after login rather than never. */
                agent_log(LOG_WARNING, "cannot watch logind idle hints: the idle lock runs from login");
                (void)sd_event_add_time_relative(a->event, &a->idle_timer, CLOCK_MONOTONIC,
                                                 a->config.idle_lock_usec, 0, on_idle_timer, a);
        }
}

void agent_on_desktop_locked(void *userdata)
{
        agent_lock(userdata, TRIGGER_DESKTOP_LOCKED, now_mono_usec());
}

/* ---- the state machine applied ---- */

static void login_clear(struct agent *a)
{
        free(a->login.sender);
        free(a->login.der);
        a->login = (struct pending_login){0};
}

static void abort_login(struct agent *a, const char *reason)
{
        struct pending_login *l = &a->login;

        if (l->answer) {
                (void)sd_bus_reply_method_errorf(l->answer, agent_error_name(reason), "%s", reason);
                l->answer = sd_bus_message_unref(l->answer);
        }
        login_clear(a);
}

static void clear_session(struct agent *a)
{
        a->operator_id[0] = '\0';
        a->session_card[0] = '\0';
        a->method[0] = '\0';
        a->idle_timer = sd_event_source_disable_unref(a->idle_timer);
        a->input = idle_input_free(a->input);
}

#define RELOCK_INTERVAL_USEC (5 * USEC_PER_SEC)

/* Applies trigger; returns false when the table has no such transition (nothing happens). */
static bool apply(struct agent *a, enum session_trigger trigger, uint64_t trigger_mono_usec)
{
        struct session_transition t;
        const char *why = session_trigger_to_string(trigger);
        enum session_state prev = a->state;
        char op[OPERATOR_ID_MAX], card[CARD_ID_LEN + 1];

        if (!session_transition(a->state, trigger, &t))
                return false;
        /* Re-locking a locked terminal on request (anyone may call Lock) at most every few
         * seconds: it must not become a way to flood the log. */
        if (prev == SESSION_LOCKED && t.next == SESSION_LOCKED && trigger == TRIGGER_MANUAL_LOCK &&
            a->last_relock_mono_usec && trigger_mono_usec - a->last_relock_mono_usec < RELOCK_INTERVAL_USEC)
                return true;
        if (prev == SESSION_LOCKED && trigger == TRIGGER_MANUAL_LOCK)
                a->last_relock_mono_usec = trigger_mono_usec;

        /* The new state first: a record that fails while we are here re-enters apply() and
         * must find the transition already made. */
        snprintf(op, sizeof(op), "%s", a->operator_id);
        snprintf(card, sizeof(card), "%s", a->session_card);
        a->state = t.next;
        if (trigger == TRIGGER_LOGIN_OK) {
                a->session_gen++;
                a->session_started_usec = (uint64_t)now_realtime_usec();
        }
        if (prev == SESSION_AUTHENTICATING)
                a->login_timer = sd_event_source_disable_unref(a->login_timer);
        if (t.actions & ACTION_ABORT_LOGIN)
                abort_login(a, trigger == TRIGGER_CARD_REMOVED ? auth_reason_to_string(AUTH_NO_CARD) : why);
        if (trigger == TRIGGER_LOGIN_START)
                a->card_left_timer = sd_event_source_disable_unref(a->card_left_timer);
        if (t.actions & ACTION_END_SESSION) {
                clear_session(a);
                agent_record(a, "session.end", op, card, agent_data("reason", t.end_reason, NULL), NULL,
                             NULL);
                /* The operator walked away from an idle screen with the card in the reader. */
                if (trigger == TRIGGER_IDLE && a->card.present)
                        agent_record(a, "card.left", op, a->card.card_id[0] ? a->card.card_id : NULL,
                                     agent_data("reader", a->card.reader, "reason", "idle", NULL), NULL,
                                     NULL);
        }
        if (t.actions & ACTION_LOCK_SCREEN)
                lock_screen(a, t.end_reason ? t.end_reason : why, trigger_mono_usec);
        /* card.left watches a card left behind when a session ends (not after a pull or an idle
         * lock, which already said so, nor after a mistyped PIN). */
        if (prev == SESSION_ACTIVE && t.next == SESSION_LOCKED && trigger != TRIGGER_IDLE &&
            trigger != TRIGGER_CARD_REMOVED)
                arm_card_left(a);
        agent_dbus_state_changed(a, t.end_reason ? t.end_reason : why);
        return true;
}

void agent_lock(struct agent *a, enum session_trigger trigger, uint64_t trigger_mono_usec)
{
        (void)apply(a, trigger, trigger_mono_usec);
}

int agent_lock_and_reply(struct agent *a, sd_bus_message *m)
{
        struct deferred_reply *d = deferred_new(a, m, NULL, NULL, NULL);

        if (!d)
                return -ENOMEM;
        /* The caller hears back once session.end is durable; with no session to end, at once. */
        a->end_done = reply_after_commit;
        a->end_done_userdata = d;
        agent_lock(a, TRIGGER_MANUAL_LOCK, now_mono_usec());
        if (a->end_done) {
                a->end_done = NULL;
                a->end_done_userdata = NULL;
                reply_after_commit(0, 0, d);
        }
        return 1;
}

void agent_session_init(struct agent *a)
{
        a->state = SESSION_LOCKED;
        a->policy_serial = -1;
}

void agent_session_done(struct agent *a)
{
        abort_login(a, "cancelled");
        free(a->card.der);
        a->card = (struct present_card){0};
        a->input = idle_input_free(a->input);
        a->login_timer = sd_event_source_disable_unref(a->login_timer);
}

/* ---- inputs ---- */

void agent_on_reader_event(struct agent *a, const struct reader_event *ev)
{
        char mono[24];
        const char *reason = NULL;

        fmt_int(mono, (int64_t)ev->mono_usec);
        if (ev->type == READER_EVENT_LOST || ev->type == READER_EVENT_PCSC_GONE)
                reason = ev->error == CARD_E_NO_SERVICE ? "pcscd-gone" : "unplugged";

        switch (ev->type) {
        case READER_EVENT_ADDED:
                agent_record(a, "reader.added", NULL, NULL, agent_data("reader", ev->reader, NULL), NULL,
                             NULL);
                break;
        case READER_EVENT_PCSC_BACK:
                a->readers_lost = false;
                agent_log(LOG_INFO, "pcscd is reachable again");
                break;
        case READER_EVENT_PCSC_GONE:
                a->readers_lost = true;
                agent_record(a, "reader.lost", NULL, NULL, agent_data("reader", "*", "reason", reason, NULL),
                             NULL, NULL);
                apply(a, TRIGGER_READER_LOST, ev->mono_usec);
                break;
        case READER_EVENT_LOST:
                agent_record(a, "reader.lost", NULL, NULL,
                             agent_data("reader", ev->reader, "reason", reason, NULL), NULL, NULL);
                apply(a, TRIGGER_READER_LOST, ev->mono_usec);
                break;
        case READER_EVENT_INSERTED:
                free(a->card.der);
                a->card = (struct present_card){
                        .present = true,
                        .read_error = ev->error,
                        .pin_tries = ev->pin_tries,
                        .der = ev->der,
                        .der_len = ev->der_len,
                        .inserted_mono_usec = ev->mono_usec,
                };
                snprintf(a->card.reader, sizeof(a->card.reader), "%s", ev->reader);
                snprintf(a->card.card_id, sizeof(a->card.card_id), "%s", ev->card_id);
                a->card_left_timer = sd_event_source_disable_unref(a->card_left_timer);
                agent_record(a, "card.inserted", NULL, ev->card_id[0] ? ev->card_id : NULL,
                             agent_data("reader", ev->reader, "error",
                                        ev->error < 0 ? card_strerror(ev->error) : NULL, "mono_us", mono,
                                        NULL),
                             NULL, NULL);
                agent_dbus_properties_changed(a);
                break;
        case READER_EVENT_REMOVED: {
                bool ours = (a->state == SESSION_ACTIVE && streq(a->session_card, ev->card_id)) ||
                            (a->state == SESSION_AUTHENTICATING && streq(a->login.reader, ev->reader));
                agent_record(a, "card.removed", NULL, ev->card_id[0] ? ev->card_id : NULL,
                             agent_data("reader", ev->reader, "mono_us", mono, NULL), NULL, NULL);
                if (streq(a->card.reader, ev->reader)) {
                        free(a->card.der);
                        a->card = (struct present_card){0};
                }
                a->card_left_timer = sd_event_source_disable_unref(a->card_left_timer);
                if (ours)
                        apply(a, TRIGGER_CARD_REMOVED, ev->mono_usec);
                agent_dbus_properties_changed(a);
                break;
        }
        }
}

void agent_on_policy(struct agent *a, const Policy *current, bool emergency_changed)
{
        if (current && current->emergency)
                apply(a, TRIGGER_EMERGENCY, now_mono_usec());
        agent_dbus_properties_changed(a);
}

void agent_on_log_health(struct agent *a, int error)
{
        if (error < 0 && error != -ECANCELED) { /* cancelled: the agent is stopping */
                agent_log(LOG_ERR, "operation log cannot be written (%s): locking, logins refused",
                          strerror(-error));
                apply(a, TRIGGER_LOG_FAILED, now_mono_usec());
        }
        agent_dbus_properties_changed(a);
}

/* ---- logins ---- */

static struct auth_context auth_context(struct agent *a)
{
        return (struct auth_context){
                .policy = a->policy ? policy_watch_current(a->policy) : NULL,
                .terminal_id = a->config.terminal_id,
                .office = a->config.office,
                .now_usec = now_realtime_usec(),
                .stale_policy = a->config.stale_policy,
        };
}

/* Facts about one card: the one in the reader (StartLogin) or the login's own snapshot. */
static struct auth_card_facts card_facts(struct agent *a, bool present, int read_error, const char *card_id,
                                         const uint8_t *der, size_t der_len)
{
        struct auth_card_facts f = {
                .card_present = present && !a->readers_lost,
                .card_error = read_error,
                .card_id = card_id && card_id[0] ? card_id : NULL,
                .cert_result = CERT_CHECK_UNTRUSTED,
                .pin_result = AUTH_STEP_NOT_DONE,
                .tries_left = -1,
                .auth_result = AUTH_STEP_NOT_DONE,
        };
        if (f.card_id && !der)
                f.card_error = CARD_E_MALFORMED;
        if (a->anchors && der)
                f.cert_result = cert_check_verify(a->anchors, der, der_len, (uint64_t)now_realtime_usec());
        return f;
}

/* Records auth.fail and answers m with the refusal once it is durable. */
static void refuse_after_record(struct agent *a, sd_bus_message *m, const struct auth_decision *d,
                                const char *card_id)
{
        char message[64], tries[24];
        const char *reason = auth_reason_to_string(d->reason);

        if (d->reason == AUTH_PIN_WRONG && d->tries_left >= 0)
                snprintf(message, sizeof(message), "%s tries=%d", reason, d->tries_left);
        else
                snprintf(message, sizeof(message), "%s", reason);
        fmt_int(tries, d->tries_left);
        struct deferred_reply *r = deferred_new(a, m, agent_error_name(reason), message, NULL);
        if (d->reason == AUTH_PIN_BLOCKED)
                agent_record(a, "pin.blocked", NULL, card_id, NULL, NULL, NULL);
        agent_record(a, "auth.fail", NULL, card_id,
                     agent_data("reason", reason, "method", "card+pin", "tries",
                                d->reason == AUTH_PIN_WRONG && d->tries_left >= 0 ? tries : NULL, NULL),
                     r ? reply_after_commit : NULL, r);
}

static int on_login_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct agent *a = userdata;

        /* A client that started a login and never answers must not hold the terminal. */
        a->login_timer = sd_event_source_disable_unref(a->login_timer);
        if (a->state == SESSION_AUTHENTICATING && !a->login.answer)
                apply(a, TRIGGER_LOGIN_CANCEL, now_mono_usec());
        return 0;
}

int agent_start_login(struct agent *a, sd_bus_message *m, const char *user, char *ret_card_id,
                      int *ret_tries, const char **ret_error, const char **ret_message)
{
        if (a->state != SESSION_LOCKED) {
                *ret_error = MAMORI_ERROR_BUSY;
                *ret_message = a->state == SESSION_ACTIVE ? "a session is active: lock it first"
                                                          : "another login is in progress";
                return 0;
        }
        if (!a->log || !oplog_writable(a->log)) {
                *ret_error = MAMORI_ERROR_LOG_UNWRITABLE;
                *ret_message = "log-unwritable: the operation log cannot be written, logins are refused";
                return 0;
        }
        struct auth_card_facts f = card_facts(a, a->card.present, a->card.read_error, a->card.card_id,
                                              a->card.der, a->card.der_len);
        struct auth_context c = auth_context(a);
        struct auth_decision d = auth_decide_precheck(&f, &c);

        if (d.reason == AUTH_ALLOW && d.group_id) {
                /* Group cards need a member to identify (finger or password): not available yet. */
                d.reason = AUTH_CARD_ERROR;
        }
        if (d.reason != AUTH_ALLOW) {
                refuse_after_record(a, m, &d, f.card_id);
                return 1; /* answered later */
        }
        if (a->config.accounts == ACCOUNTS_PER_OPERATOR && (!user || !streq(user, d.operator_id))) {
                struct deferred_reply *r = deferred_new(a, m, auth_reason_to_dbus_error(AUTH_WRONG_USER),
                                                        "wrong-user: this card is not this account's", NULL);
                agent_record(a, "auth.fail", d.operator_id, f.card_id,
                             agent_data("reason", auth_reason_to_string(AUTH_WRONG_USER), "method",
                                        "card+pin", "user", user, NULL),
                             r ? reply_after_commit : NULL, r);
                return 1;
        }
        a->login = (struct pending_login){.active = true, .started_mono_usec = now_mono_usec()};
        a->login.sender = strdup(sd_bus_message_get_sender(m) ?: "");
        snprintf(a->login.card_id, sizeof(a->login.card_id), "%s", f.card_id);
        snprintf(a->login.reader, sizeof(a->login.reader), "%s", a->card.reader);
        snprintf(a->login.operator_id, sizeof(a->login.operator_id), "%s", d.operator_id);
        a->login.der = malloc(a->card.der_len);
        if (!a->login.der) {
                login_clear(a);
                return -ENOMEM;
        }
        memcpy(a->login.der, a->card.der, a->card.der_len);
        a->login.der_len = a->card.der_len;
        apply(a, TRIGGER_LOGIN_START, now_mono_usec());
        (void)sd_event_add_time_relative(a->event, &a->login_timer, CLOCK_MONOTONIC, LOGIN_ANSWER_USEC, 0,
                                         on_login_timeout, a);
        snprintf(ret_card_id, CARD_ID_LEN + 1, "%s", f.card_id);
        *ret_tries = a->card.pin_tries;
        *ret_error = NULL;
        return 0;
}

static void on_login_done(void *userdata, const struct card_job_result *res)
{
        struct agent *a = userdata;
        sd_bus_message *m = a->login.answer;
        char card_id[CARD_ID_LEN + 1];

        if (a->state != SESSION_AUTHENTICATING || !m)
                return; /* aborted meanwhile (card pulled, cancelled): already answered */
        a->login.answer = NULL;
        snprintf(card_id, sizeof(card_id), "%s", a->login.card_id);

        /* What the card just said about its PIN counter, for the next prompt. */
        if (streq(a->card.card_id, a->login.card_id))
                a->card.pin_tries = res->result == CARD_E_PIN_WRONG     ? res->tries_left
                                    : res->result == CARD_E_PIN_BLOCKED ? 0
                                                                        : -1;
        /* Still authenticating means the login's card was not pulled meanwhile. */
        struct auth_card_facts f = card_facts(a, true, 0, a->login.card_id, a->login.der, a->login.der_len);
        struct auth_context c = auth_context(a);
        if (res->result == 0)
                f.pin_result = f.auth_result = 0;
        else if (res->result == CARD_E_SIG_INVALID) {
                f.pin_result = 0;
                f.auth_result = res->result;
        } else {
                f.pin_result = res->result;
                f.tries_left = res->tries_left;
        }
        /* Decide again with the policy as it is now: a card suspended during the PIN entry loses. */
        struct auth_decision d = auth_decide(&f, &c);
        if (d.reason == AUTH_ALLOW && (!d.operator_id || !streq(d.operator_id, a->login.operator_id)))
                d.reason = AUTH_CARD_ERROR;

        if (d.reason != AUTH_ALLOW) {
                refuse_after_record(a, m, &d, card_id);
                sd_bus_message_unref(m);
                login_clear(a);
                apply(a, TRIGGER_LOGIN_FAIL, now_mono_usec());
                return;
        }

        char exchanges[24], elapsed[24];
        fmt_int(exchanges, res->exchanges);
        fmt_int(elapsed, (int64_t)(now_mono_usec() - a->login.started_mono_usec));
        snprintf(a->operator_id, sizeof(a->operator_id), "%s", d.operator_id);
        snprintf(a->session_card, sizeof(a->session_card), "%s", card_id);
        snprintf(a->method, sizeof(a->method), "card+pin");
        login_clear(a);
        apply(a, TRIGGER_LOGIN_OK, now_mono_usec());

        struct deferred_reply *r = deferred_new(a, m, NULL, NULL, a->operator_id);
        sd_bus_message_unref(m);
        agent_record(a, "auth.ok", a->operator_id, card_id,
                     agent_data("method", "card+pin", "exchanges", exchanges, "elapsed_us", elapsed,
                                "policy_stale", d.policy_stale ? "yes" : NULL, NULL),
                     NULL, NULL);
        agent_record(a, "session.start", a->operator_id, card_id, agent_data("method", "card+pin", NULL),
                     NULL, NULL);
        agent_record(a, "unlock", a->operator_id, card_id, NULL, r ? reply_after_commit : NULL, r);
        start_idle_watch(a);
}

int agent_answer_pin(struct agent *a, sd_bus_message *m, const char *pin, const char **ret_error,
                     const char **ret_message)
{
        const char *sender = sd_bus_message_get_sender(m);
        int r;

        if (a->state != SESSION_AUTHENTICATING || !a->login.sender || !sender ||
            !streq(sender, a->login.sender)) {
                *ret_error = MAMORI_ERROR_NOT_PENDING;
                *ret_message = "no login of yours is waiting for a PIN";
                return 0;
        }
        if (a->login.answer) {
                *ret_error = MAMORI_ERROR_BUSY;
                *ret_message = "the PIN is already being checked";
                return 0;
        }
        if (strlen(pin) > PIN_MAX_LEN) {
                *ret_error = MAMORI_ERROR_INVALID;
                *ret_message = "PIN too long";
                return 0;
        }
        r = card_worker_submit(a->worker, CARD_JOB_LOGIN, a->login.reader, pin, NULL, a->login.der,
                               a->login.der_len, on_login_done, a);
        if (r < 0) {
                *ret_error = r == -EBUSY ? MAMORI_ERROR_BUSY : MAMORI_ERROR_CARD_ERROR;
                *ret_message = r == -EBUSY ? "the card is busy" : auth_reason_to_string(AUTH_CARD_ERROR);
                return 0;
        }
        a->login.answer = sd_bus_message_ref(m);
        *ret_error = NULL;
        return 1;
}

int agent_cancel_login(struct agent *a, const char *sender, const char **ret_error)
{
        if (a->state != SESSION_AUTHENTICATING || !a->login.sender || !sender ||
            !streq(sender, a->login.sender)) {
                *ret_error = MAMORI_ERROR_NOT_PENDING;
                return 0;
        }
        apply(a, TRIGGER_LOGIN_CANCEL, now_mono_usec());
        *ret_error = NULL;
        return 0;
}

struct pin_change {
        struct agent *a;
        sd_bus_message *m;
        char card_id[CARD_ID_LEN + 1];
};

static void on_pin_changed(void *userdata, const struct card_job_result *res)
{
        struct pin_change *pc = userdata;
        struct agent *a = pc->a;

        if (res->result < 0) {
                char message[64];
                enum auth_reason why = res->result == CARD_E_PIN_WRONG     ? AUTH_PIN_WRONG
                                       : res->result == CARD_E_PIN_BLOCKED ? AUTH_PIN_BLOCKED
                                       : res->result == CARD_E_BAD_PIN     ? AUTH_INVALID_ARGUMENT
                                                                           : AUTH_CARD_ERROR;
                /* A malformed new PIN is answered as InvalidArgument but keeps its own name on record. */
                const char *reason =
                        why == AUTH_INVALID_ARGUMENT ? "pin-invalid" : auth_reason_to_string(why);
                if (why == AUTH_PIN_WRONG && res->tries_left >= 0)
                        snprintf(message, sizeof(message), "%s tries=%d", reason, res->tries_left);
                else
                        snprintf(message, sizeof(message), "%s", reason);
                struct deferred_reply *r =
                        deferred_new(a, pc->m, auth_reason_to_dbus_error(why), message, NULL);
                agent_record(a, "auth.fail", a->operator_id[0] ? a->operator_id : NULL, pc->card_id,
                             agent_data("reason", reason, "method", "pin-change", NULL),
                             r ? reply_after_commit : NULL, r);
        } else {
                struct deferred_reply *r = deferred_new(a, pc->m, NULL, NULL, NULL);
                agent_record(a, "pin.change", a->operator_id[0] ? a->operator_id : NULL, pc->card_id, NULL,
                             r ? reply_after_commit : NULL, r);
        }
        sd_bus_message_unref(pc->m);
        free(pc);
}

int agent_change_pin(struct agent *a, sd_bus_message *m, const char *old_pin, const char *new_pin,
                     const char **ret_error, const char **ret_message)
{
        struct pin_change *pc;
        int r;

        if (!a->card.present || !a->card.card_id[0]) {
                *ret_error = auth_reason_to_dbus_error(AUTH_NO_CARD);
                *ret_message = auth_reason_to_string(AUTH_NO_CARD);
                return 0;
        }
        if (strlen(old_pin) > PIN_MAX_LEN || strlen(new_pin) > PIN_MAX_LEN) {
                *ret_error = MAMORI_ERROR_INVALID;
                *ret_message = "PIN too long";
                return 0;
        }
        pc = calloc(1, sizeof(*pc));
        if (!pc)
                return -ENOMEM;
        pc->a = a;
        snprintf(pc->card_id, sizeof(pc->card_id), "%s", a->card.card_id);
        r = card_worker_submit(a->worker, CARD_JOB_CHANGE_PIN, a->card.reader, old_pin, new_pin, NULL, 0,
                               on_pin_changed, pc);
        if (r < 0) {
                free(pc);
                *ret_error = MAMORI_ERROR_BUSY;
                *ret_message = "the card is busy";
                return 0;
        }
        pc->m = sd_bus_message_ref(m);
        *ret_error = NULL;
        return 1;
}
