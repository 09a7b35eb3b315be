/* mamorid's session behaviour: card events, logins, locking and idle through session.c; outcomes, no D-Bus.
 */
#include <assert.h>
#include <limits.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "event-data.h"
#include "journal.h"
#include "mamori/auth-reasons.h"
#include "mamori/cert-check.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "session-internal.h"
#include "session-logic.h"

#define LOGIN_ANSWER_USEC    (120 * USEC_PER_SEC) /* a started login not answered by then is cancelled */
#define RELOCK_INTERVAL_USEC (5 * USEC_PER_SEC)

static bool apply(struct session *s, enum session_trigger trigger, uint64_t trigger_mono_usec);
static struct auth_context auth_context(struct session *s);

static void fmt_int(char buf[24], int64_t v)
{
        snprintf(buf, 24, "#%" PRId64, v);
}

static int record(struct session *s, const char *ev, const char *op, const char *card, JsonValue *data,
                  oplog_done_fn done, void *userdata)
{
        /* A session opened without a card (finger/vein + password) has session_card "": its records
         * carry no card field. An empty one is refused by the log, which then stops every login. */
        return s->ops->record(s->userdata, ev, op, card && card[0] ? card : NULL, data, done, userdata);
}

static void changed(struct session *s, const char *state_reason)
{
        s->ops->changed(s->userdata, state_reason);
}

/* ---- outcomes and the answers that wait for a commit ---- */

static struct session_outcome outcome_ok(void)
{
        return (struct session_outcome){.reason = AUTH_ALLOW, .tries = -1};
}

_printf_(2, 3) static struct session_outcome outcome_refused(enum auth_reason reason, const char *fmt, ...)
{
        struct session_outcome o = {.reason = reason, .tries = -1};
        va_list ap;

        assert(reason != AUTH_ALLOW);
        va_start(ap, fmt);
        vsnprintf(o.message, sizeof(o.message), fmt, ap);
        va_end(ap);
        return o;
}

static struct session_outcome outcome_failed(int error)
{
        return (struct session_outcome){.error = error, .reason = AUTH_CARD_ERROR, .tries = -1};
}

static void answer(struct session *s, SessionCall *call, const struct session_outcome *o)
{
        if (call)
                s->ops->answer(s->userdata, call, o);
}

/* How a login ended by a word of the state machine is answered: a word that is a reason of the table
 * stands for itself ("no-card", "emergency", "log-unwritable"); a lost reader is the card's failure;
 * every other end (CancelLogin, a lock, a bypass, the agent stopping) cancelled it. */
struct session_outcome session_abort_outcome(const char *why)
{
        int r = auth_reason_from_string(why);

        if (r > AUTH_ALLOW)
                return outcome_refused((enum auth_reason)r, "%s", why);
        if (streq(why, "reader-lost"))
                return outcome_refused(AUTH_CARD_ERROR, "%s: %s", auth_reason_to_string(AUTH_CARD_ERROR),
                                       why);
        return outcome_refused(AUTH_CANCELLED, "%s: %s", auth_reason_to_string(AUTH_CANCELLED), why);
}

struct pending_answer {
        struct session *s;
        SessionCall *call;
        struct session_outcome o;
        bool grant;           /* a login's success: given only while its session still runs */
        uint64_t session_gen; /* the session it grants */
};

static void answer_after_commit(int result, uint64_t seq, void *userdata)
{
        struct pending_answer *p = userdata;
        struct session *s = p->s;
        struct session_outcome o;

        if (result < 0) {
                /* Nothing may be granted that is not on record. */
                o = outcome_refused(AUTH_LOG_UNWRITABLE,
                                    "log-unwritable: the operation log cannot be written (%s)",
                                    strerror(-result));
                answer(s, p->call, &o);
                free(p);
                session_on_log_health(s, result);
                return;
        }
        if (p->grant && !(s->state == SESSION_ACTIVE && s->session_gen == p->session_gen))
                /* A pull, lock or log failure while its records were being written has ended it. */
                o = outcome_refused(AUTH_CARD_ERROR, "card-error: the session ended before it was recorded");
        else {
                o = p->o;
                o.seq = seq;
        }
        answer(s, p->call, &o);
        free(p);
}

/* Keeps call to be answered o once the record it is passed to is durable. Returns NULL (call
 * answered with the error at once: it grants nothing) when out of memory. */
static struct pending_answer *answer_after(struct session *s, SessionCall *call,
                                           const struct session_outcome *o)
{
        struct pending_answer *p;
        struct session_outcome failed = outcome_failed(-ENOMEM);

        if (!call)
                return NULL;
        p = calloc(1, sizeof(*p));
        if (!p) {
                answer(s, call, &failed);
                return NULL;
        }
        *p = (struct pending_answer){
                .s = s,
                .call = call,
                .o = *o,
                .grant = o->reason == AUTH_ALLOW && o->operator_id[0],
                .session_gen = s->session_gen,
        };
        return p;
}

/* Records ev and answers call with o once it is durable. */
static void record_then_answer(struct session *s, SessionCall *call, const struct session_outcome *o,
                               const char *ev, const char *op, const char *card, JsonValue *data)
{
        struct pending_answer *p = answer_after(s, call, o);
        record(s, ev, op, card, data, p ? answer_after_commit : NULL, p);
}

/* ---- what the step files share (session-internal.h) ---- */

struct session_outcome session_outcome_ok(void)
{
        return outcome_ok();
}

struct session_outcome session_outcome_refused(enum auth_reason reason, const char *fmt, ...)
{
        struct session_outcome o = {.reason = reason, .tries = -1};
        va_list ap;

        assert(reason != AUTH_ALLOW);
        va_start(ap, fmt);
        vsnprintf(o.message, sizeof(o.message), fmt, ap);
        va_end(ap);
        return o;
}

struct session_outcome session_outcome_failed(int error)
{
        return outcome_failed(error);
}

void session_answer(struct session *s, SessionCall *call, const struct session_outcome *o)
{
        answer(s, call, o);
}

int session_record(struct session *s, const char *ev, const char *op, const char *card, JsonValue *data,
                   oplog_done_fn done, void *userdata)
{
        return record(s, ev, op, card, data, done, userdata);
}

void session_record_then_answer(struct session *s, SessionCall *call, const struct session_outcome *o,
                                const char *ev, const char *op, const char *card, JsonValue *data)
{
        record_then_answer(s, call, o, ev, op, card, data);
}

/* ---- locking ---- */

struct lock_ctx {
        struct session *s;
        char reason[32];
        bool quiet; /* a repeated bypass re-lock: counted, not recorded */
};

static void on_lock_result(void *userdata, const struct logind_lock_result *r, bool final)
{
        struct lock_ctx *c = userdata;
        char latency[24];

        fmt_int(latency, (int64_t)r->latency_usec);
        if (c->quiet) {
                if (final)
                        free(c);
                return;
        }
        if (!final) {
                record(c->s, "lock", NULL, NULL,
                       agent_data("method", "LockSession", "session", r->session_id, "reason", c->reason,
                                  "latency_us", latency, NULL),
                       NULL, NULL);
                return;
        }
        if (r->error == -ECANCELED) {
                free(c);
                return; /* the agent is stopping */
        }
        if (r->error < 0)
                record(c->s, "lock", NULL, NULL,
                       agent_data("method", "LockSession", "reason", c->reason, "error",
                                  r->error == -ENXIO ? "no-active-session" : strerror(-r->error),
                                  "latency_us", latency, NULL),
                       NULL, NULL);
        if (r->fallback_used)
                record(c->s, "lock", NULL, NULL,
                       agent_data("method", r->fallback_method, "session", r->session_id, "reason",
                                  "desktop-did-not-lock", "error",
                                  r->fallback_error < 0 ? strerror(-r->fallback_error) : NULL, NULL),
                       NULL, NULL);
        free(c);
}

static void lock_screen(struct session *s, const char *reason, bool quiet, uint64_t trigger_mono_usec)
{
        struct lock_ctx *c = calloc(1, sizeof(*c));
        int r;

        if (!c) {
                agent_log(LOG_CRIT, "out of memory while locking (%s)", reason);
                return;
        }
        c->s = s;
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
        c->quiet = quiet;
        r = s->ops->lock_screen(s->userdata, trigger_mono_usec, on_lock_result, c);
        if (r < 0)
                free(c); /* on_lock_result was not called */
        if (r == -ENODEV && !quiet)
                record(s, "lock", NULL, NULL, agent_data("reason", reason, "error", "no-system-bus", NULL),
                       NULL, NULL);
}

/* ---- timers ---- */

static int on_card_left(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct session *s = userdata;

        s->card_left_timer = sd_event_source_disable_unref(s->card_left_timer);
        if (s->state != SESSION_ACTIVE && s->card.present)
                record(s, "card.left", NULL, s->card.card_id[0] ? s->card.card_id : NULL,
                       agent_data("reader", s->card.reader, "reason", "after-lock", NULL), NULL, NULL);
        return 0;
}

static void arm_card_left(struct session *s)
{
        s->card_left_timer = sd_event_source_disable_unref(s->card_left_timer);
        if (s->card.present)
                (void)sd_event_add_time_relative(s->event, &s->card_left_timer, CLOCK_MONOTONIC,
                                                 s->config->card_left_usec, 0, on_card_left, s);
}

static int on_idle_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct session *s = userdata;

        s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
        session_lock(s, TRIGGER_IDLE, now_mono_usec());
        return 0;
}

void session_on_idle_hint(void *userdata, bool idle, uint64_t since_usec)
{
        struct session *s = userdata;

        s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
        if (!idle || s->state != SESSION_ACTIVE)
                return;
        /* Idle since before this session began (a hint left from the lock screen) counts from login. */
        if (since_usec == 0 || since_usec < s->session_started_usec)
                since_usec =
                        s->session_started_usec ? s->session_started_usec : (uint64_t)now_realtime_usec();
        (void)sd_event_add_time(s->event, &s->idle_timer, CLOCK_REALTIME,
                                since_usec + s->config->idle_lock_usec, 0, on_idle_timer, s);
}

/* IdleSource=input: every touch of keyboard or mouse pushes the idle lock IdleLockSec away. */
static void on_input_activity(void *userdata)
{
        struct session *s = userdata;

        s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
        if (s->state == SESSION_ACTIVE)
                (void)sd_event_add_time_relative(s->event, &s->idle_timer, CLOCK_MONOTONIC,
                                                 s->config->idle_lock_usec, 0, on_idle_timer, s);
}

static void start_idle_watch(struct session *s)
{
        if (s->config->idle_source == IDLE_SOURCE_INPUT) {
                s->input = idle_input_free(s->input);
                int n = idle_input_start(s->event, s->config->input_directory, on_input_activity, s,
                                         &s->input);
                if (n <= 0)
                        agent_log(LOG_WARNING,
                                  "IdleSource=input: no input device in %s; the idle lock runs from login",
                                  s->config->input_directory);
                on_input_activity(s); /* the login itself is activity */
        } else if (s->ops->watch_idle(s->userdata) < 0) {
                /* No idle hints to watch: lock IdleLockSec after login rather than never. */
                agent_log(LOG_WARNING, "cannot watch logind idle hints: the idle lock runs from login");
                (void)sd_event_add_time_relative(s->event, &s->idle_timer, CLOCK_MONOTONIC,
                                                 s->config->idle_lock_usec, 0, on_idle_timer, s);
        }
}

void session_on_desktop_locked(void *userdata)
{
        session_lock(userdata, TRIGGER_DESKTOP_LOCKED, now_mono_usec());
}

void session_on_desktop_unlocked(void *userdata, uint64_t mono_usec)
{
        /* While active the unlock is the desktop following our login (it unlocks only after the
         * PAM answer, which waits until mamorid is active): the table has no such transition. */
        session_lock(userdata, TRIGGER_BYPASS, mono_usec);
}

/* ---- bypass records, bounded ---- */

/* The re-locks counted since the last bypass record, in one record: how many, over how long. */
static void bypass_summary(void *userdata, const struct burst_summary *sum)
{
        struct session *s = userdata;
        char repeats[24], after[24], period[24];

        fmt_int(repeats, sum->repeats);
        fmt_int(after, (int64_t)sum->after_usec);
        fmt_int(period, (int64_t)sum->period_usec);
        record(s, "lock", NULL, NULL,
               agent_data("method", "LockSession", "reason", "bypass", "repeats", repeats, "after_us", after,
                          "period_us", period, NULL),
               NULL, NULL);
        agent_log(LOG_WARNING, "the desktop was unlocked behind mamori's back %u more times, locked again",
                  sum->repeats);
}

/* ---- the state machine applied ---- */

static void login_clear(struct session *s)
{
        /* A password answer still held back for its delay is refused, not lost. */
        session_password_login_done(s, "cancelled");
        /* A login still waiting for its PIN lets go of the card. */
        if (s->login.id)
                s->ops->login_cancel(s->userdata, s->login.id);
        session_bio_cancel_scan(s); /* a pending scan is cancelled, never left */
        free(s->login.sender);
        s->login = (struct pending_login){0};
}

static void abort_login(struct session *s, const char *why)
{
        struct pending_login *l = &s->login;

        if (l->answer) {
                struct session_outcome o = session_abort_outcome(why);
                SessionCall *call = TAKE_PTR(l->answer);
                answer(s, call, &o);
        }
        session_password_login_done(s, why);
        login_clear(s);
}

static void clear_session(struct session *s)
{
        s->operator_id[0] = '\0';
        s->session_card[0] = '\0';
        s->method[0] = '\0';
        s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
        s->input = idle_input_free(s->input);
        session_bio_session_ended(s); /* an enrolment belongs to its session */
}

/* Applies trigger; returns false when the table has no such transition (nothing happens). */
static bool apply(struct session *s, enum session_trigger trigger, uint64_t trigger_mono_usec)
{
        struct session_transition t;
        const char *why = session_trigger_to_string(trigger);
        enum session_state prev = s->state;
        char op[OPERATOR_ID_MAX], card[CARD_ID_LEN + 1];

        if (!session_transition(s->state, trigger, &t))
                return false;
        /* Re-locking a locked terminal on request at most every few seconds: a Lock loop (of
         * root or the seat's session) must not become a way to flood the log. */
        if (prev == SESSION_LOCKED && t.next == SESSION_LOCKED && trigger == TRIGGER_MANUAL_LOCK &&
            s->last_relock_mono_usec && trigger_mono_usec - s->last_relock_mono_usec < RELOCK_INTERVAL_USEC)
                return true;
        if (prev == SESSION_LOCKED && trigger == TRIGGER_MANUAL_LOCK)
                s->last_relock_mono_usec = trigger_mono_usec;
        /* Every bypass is locked again; only the first of a burst gets its own records. */
        bool quiet = trigger == TRIGGER_BYPASS && !burst_admit(&s->bypass, s->event, trigger_mono_usec);

        /* The new state first: a record that fails while we are here re-enters apply() and
         * must find the transition already made. */
        snprintf(op, sizeof(op), "%s", s->operator_id);
        snprintf(card, sizeof(card), "%s", s->session_card);
        s->state = t.next;
        if (trigger == TRIGGER_LOGIN_OK) {
                s->session_gen++;
                s->session_started_usec = (uint64_t)now_realtime_usec();
        }
        if (prev == SESSION_AUTHENTICATING)
                s->login_timer = sd_event_source_disable_unref(s->login_timer);
        if (t.actions & ACTION_ABORT_LOGIN)
                abort_login(s, trigger == TRIGGER_CARD_REMOVED ? auth_reason_to_string(AUTH_NO_CARD) : why);
        if (trigger == TRIGGER_LOGIN_START)
                s->card_left_timer = sd_event_source_disable_unref(s->card_left_timer);
        if (t.actions & ACTION_END_SESSION) {
                struct pending_answer *p = TAKE_PTR(s->end_answer);
                clear_session(s);
                /* A Lock call hears back once the session.end it caused is durable. */
                /* A session without a card (finger/vein + password) has no card field. */
                record(s, "session.end", op, card[0] ? card : NULL, agent_data("reason", t.end_reason, NULL),
                       p ? answer_after_commit : NULL, p);
                /* The operator walked away from an idle screen with the card in the reader. */
                if (trigger == TRIGGER_IDLE && s->card.present)
                        record(s, "card.left", op, s->card.card_id[0] ? s->card.card_id : NULL,
                               agent_data("reader", s->card.reader, "reason", "idle", NULL), NULL, NULL);
        }
        if (t.actions & ACTION_LOCK_SCREEN)
                lock_screen(s, t.end_reason ? t.end_reason : why, quiet, trigger_mono_usec);
        /* card.left watches a card left behind when a session ends (not after a pull or an idle
         * lock, which already said so, nor after a mistyped PIN). */
        if (prev == SESSION_ACTIVE && t.next == SESSION_LOCKED && trigger != TRIGGER_IDLE &&
            trigger != TRIGGER_CARD_REMOVED)
                arm_card_left(s);
        if (!quiet || prev != t.next)
                changed(s, t.end_reason ? t.end_reason : why);
        return true;
}

void session_lock(struct session *s, enum session_trigger trigger, uint64_t trigger_mono_usec)
{
        (void)apply(s, trigger, trigger_mono_usec);
}

void session_lock_call(struct session *s, SessionCall *call)
{
        struct session_outcome ok = outcome_ok();
        struct pending_answer *p = answer_after(s, call, &ok); /* NULL: answered already, lock anyway */

        /* The caller hears back once session.end is durable; with no session to end, at once. */
        s->end_answer = p;
        session_lock(s, TRIGGER_MANUAL_LOCK, now_mono_usec());
        p = TAKE_PTR(s->end_answer);
        if (p)
                answer_after_commit(0, 0, p);
}

void session_init(struct session *s, const struct session_ops *ops, void *userdata,
                  const struct agent_config *config, sd_event *event)
{
        assert(ops->password_clock);
        *s = (struct session){
                .ops = ops,
                .userdata = userdata,
                .config = config,
                .event = event,
                .state = SESSION_LOCKED,
        };
        burst_init(&s->bypass, RECORD_LIMIT_USEC, bypass_summary, s);
}

void session_done(struct session *s)
{
        burst_done(&s->bypass); /* a count still pending is not lost at stop */
        abort_login(s, "cancelled");
        session_bio_session_ended(s);
        free(s->card.der);
        s->card = (struct present_card){0};
        s->input = idle_input_free(s->input);
        s->login_timer = sd_event_source_disable_unref(s->login_timer);
        s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
        s->card_left_timer = sd_event_source_disable_unref(s->card_left_timer);
}

/* ---- inputs ---- */

void session_on_reader_event(struct session *s, const struct reader_event *ev)
{
        char mono[24];
        const char *reason = NULL;

        fmt_int(mono, (int64_t)ev->mono_usec);
        if (ev->type == READER_EVENT_LOST || ev->type == READER_EVENT_PCSC_GONE)
                reason = ev->error == CARD_E_NO_SERVICE ? "pcscd-gone" : "unplugged";

        switch (ev->type) {
        case READER_EVENT_ADDED:
                record(s, "reader.added", NULL, NULL, agent_data("reader", ev->reader, NULL), NULL, NULL);
                break;
        case READER_EVENT_PCSC_BACK:
                s->readers_lost = false;
                agent_log(LOG_INFO, "pcscd is reachable again");
                break;
        case READER_EVENT_PCSC_GONE:
                s->readers_lost = true;
                record(s, "reader.lost", NULL, NULL, agent_data("reader", "*", "reason", reason, NULL), NULL,
                       NULL);
                apply(s, TRIGGER_READER_LOST, ev->mono_usec);
                break;
        case READER_EVENT_LOST:
                record(s, "reader.lost", NULL, NULL,
                       agent_data("reader", ev->reader, "reason", reason, NULL), NULL, NULL);
                apply(s, TRIGGER_READER_LOST, ev->mono_usec);
                break;
        case READER_EVENT_INSERTED:
                free(s->card.der);
                s->card = (struct present_card){
                        .present = true,
                        .read_error = ev->error,
                        .pin_tries = ev->pin_tries,
                        .der = ev->der,
                        .der_len = ev->der_len,
                        .inserted_mono_usec = ev->mono_usec,
                };
                snprintf(s->card.reader, sizeof(s->card.reader), "%s", ev->reader);
                snprintf(s->card.card_id, sizeof(s->card.card_id), "%s", ev->card_id);
                s->card_left_timer = sd_event_source_disable_unref(s->card_left_timer);
                record(s, "card.inserted", NULL, ev->card_id[0] ? ev->card_id : NULL,
                       agent_data("reader", ev->reader, "error",
                                  ev->error < 0 ? card_strerror(ev->error) : NULL, "mono_us", mono, NULL),
                       NULL, NULL);
                changed(s, NULL);
                /* A card inserted while a login without a card waits for its touch: the operator
                 * chose the card. The scan is cancelled and its caller told so (not a failure, no
                 * auth.fail), after CardPresent changed, so the login screen sees the card first
                 * and goes on with StartLogin. */
                if (s->state == SESSION_AUTHENTICATING && s->login.active && s->login.scan_id &&
                    !s->login.card_id[0] && s->login.answer) {
                        SessionCall *call = TAKE_PTR(s->login.answer);
                        struct session_outcome o = outcome_refused(
                                AUTH_NOT_PENDING, "cancelled: a card was inserted; log in with the card");
                        answer(s, call, &o);
                        apply(s, TRIGGER_LOGIN_CANCEL, ev->mono_usec);
                }
                break;
        case READER_EVENT_REMOVED: {
                bool ours = (s->state == SESSION_ACTIVE && streq(s->session_card, ev->card_id)) ||
                            (s->state == SESSION_AUTHENTICATING && streq(s->login.reader, ev->reader));
                record(s, "card.removed", NULL, ev->card_id[0] ? ev->card_id : NULL,
                       agent_data("reader", ev->reader, "mono_us", mono, NULL), NULL, NULL);
                if (streq(s->card.reader, ev->reader)) {
                        free(s->card.der);
                        s->card = (struct present_card){0};
                }
                s->card_left_timer = sd_event_source_disable_unref(s->card_left_timer);
                if (ours)
                        apply(s, TRIGGER_CARD_REMOVED, ev->mono_usec);
                changed(s, NULL);
                break;
        }
        }
}

void session_on_policy(struct session *s, const Policy *current)
{
        if (current && current->emergency)
                apply(s, TRIGGER_EMERGENCY, now_mono_usec());
        else if (current && s->state == SESSION_ACTIVE) {
                /* §5 lifecycle: the session's card and operator against the bundle just loaded. */
                struct auth_context c = auth_context(s);
                c.policy = current;
                switch (auth_decide_session(&c, s->session_card, s->operator_id)) {
                case AUTH_CARD_SUSPENDED:
                case AUTH_CARD_RETURNED:
                case AUTH_UNKNOWN_CARD:
                        apply(s, TRIGGER_CARD_SUSPENDED, now_mono_usec());
                        break;
                case AUTH_OPERATOR_SUSPENDED:
                case AUTH_OPERATOR_RETIRED:
                case AUTH_WRONG_OFFICE:
                case AUTH_NOT_GROUP_MEMBER: /* taken out of the group card's group */
                        apply(s, TRIGGER_OPERATOR_RETIRED, now_mono_usec());
                        break;
                default: /* allowed still; staleness has its own timer and record */
                        break;
                }
        }
        if (current)
                session_bio_on_policy(s, current);
        changed(s, NULL);
}

void session_on_log_health(struct session *s, int error)
{
        if (error < 0 && error != -ECANCELED) { /* cancelled: the agent is stopping */
                agent_log_id(MAMORI_MESSAGE_LOG_UNWRITABLE, LOG_ERR,
                             "operation log cannot be written (%s): locking, logins refused",
                             strerror(-error));
                apply(s, TRIGGER_LOG_FAILED, now_mono_usec());
        }
        changed(s, NULL);
}

/* ---- logins ---- */

struct auth_context session_auth_context(struct session *s)
{
        return auth_context(s);
}

static struct auth_context auth_context(struct session *s)
{
        return (struct auth_context){
                .policy = s->ops->policy(s->userdata),
                .terminal_id = s->config->terminal_id,
                .office = s->config->office,
                .now_usec = now_realtime_usec(),
                .stale_policy = s->config->stale_policy,
        };
}

/* A login engine for the card in the reader, as the reader thread read it at insertion, with its
 * certificate checked against TrustAnchors=. */
static int new_login(struct session *s, CardLogin **ret)
{
        _cleanup_(card_login_freep) CardLogin *l = NULL;
        int r;

        r = card_login_new(&l);
        if (r < 0)
                return r;
        r = card_login_set_card(l, s->card.present && !s->readers_lost, s->card.read_error, s->card.der,
                                s->card.der_len);
        if (r < 0)
                return r;
        card_login_set_cert_result(l, s->card.der
                                              ? s->ops->check_cert(s->userdata, s->card.der, s->card.der_len)
                                              : CERT_CHECK_UNTRUSTED);
        *ret = TAKE_PTR(l);
        return 0;
}

/* Records auth.fail (and pin.blocked) and answers call with the refusal once it is durable. */
static void refuse_after_record(struct session *s, SessionCall *call, const struct auth_decision *d,
                                const char *card_id)
{
        const char *reason = auth_reason_to_string(d->reason);
        bool tries = d->reason == AUTH_PIN_WRONG && d->tries_left >= 0;
        struct session_outcome o = tries ? outcome_refused(d->reason, "%s tries=%d", reason, d->tries_left)
                                         : outcome_refused(d->reason, "%s", reason);
        char tries_left[24];

        fmt_int(tries_left, d->tries_left);
        if (d->reason == AUTH_PIN_BLOCKED)
                record(s, "pin.blocked", NULL, card_id, NULL, NULL, NULL);
        record_then_answer(s, call, &o, "auth.fail", NULL, card_id,
                           agent_data("reason", auth_reason_to_string(d->reason), "method", "card+pin",
                                      "tries", tries ? tries_left : NULL, NULL));
}

static int on_login_timeout(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct session *s = userdata;

        /* A client that started a login and never answers must not hold the terminal. */
        s->login_timer = sd_event_source_disable_unref(s->login_timer);
        if (s->state == SESSION_AUTHENTICATING && (!s->login.answer || s->login.scan_id))
                apply(s, TRIGGER_LOGIN_CANCEL, now_mono_usec()); /* a scan nobody touches, too */
        return 0;
}

static void on_login_done(void *userdata, const struct card_job_result *res);

void session_start_login(struct session *s, SessionCall *call, const char *sender, const char *user)
{
        struct session_outcome o;

        if (s->state != SESSION_LOCKED) {
                o = outcome_refused(AUTH_BUSY, "%s",
                                    s->state == SESSION_ACTIVE ? "a session is active: lock it first"
                                                               : "another login is in progress");
                answer(s, call, &o);
                return;
        }
        enum auth_reason held = s->ops->held ? s->ops->held(s->userdata) : AUTH_ALLOW;
        if (held != AUTH_ALLOW) {
                o = outcome_refused(held, "%s: %s", auth_reason_to_string(held), auth_reason_to_words(held));
                answer(s, call, &o);
                return;
        }
        if (!s->ops->log_writable(s->userdata)) {
                o = outcome_refused(
                        AUTH_LOG_UNWRITABLE,
                        "log-unwritable: the operation log cannot be written, logins are refused");
                answer(s, call, &o);
                return;
        }
        _cleanup_(card_login_freep) CardLogin *l = NULL;
        int r = new_login(s, &l);
        if (r < 0) {
                o = outcome_failed(r);
                answer(s, call, &o);
                return;
        }
        struct auth_context c = auth_context(s);
        /* The checks before the PIN, here on the loop: a refused card is never touched. */
        struct auth_decision d = card_login_precheck(l, NULL, &c);
        char card_id_buf[CARD_ID_LEN + 1];
        snprintf(card_id_buf, sizeof(card_id_buf), "%s", card_login_info(l)->card_id);
        const char *card_id = card_id_buf[0] ? card_id_buf : NULL;

        if (d.reason != AUTH_ALLOW) {
                refuse_after_record(s, call, &d, card_id);
                return; /* answered once the refusal is on record */
        }
        if (s->card.pin_tries == 0) {
                /* Blocked, as the card said at insertion or at its last VERIFY: refused without
                 * touching the card again (pin.blocked was recorded when it happened). */
                o = outcome_refused(AUTH_PIN_BLOCKED, "%s", auth_reason_to_string(AUTH_PIN_BLOCKED));
                record_then_answer(s, call, &o, "auth.fail", NULL, card_id,
                                   agent_data("reason", auth_reason_to_string(AUTH_PIN_BLOCKED), "method",
                                              "card+pin", NULL));
                return;
        }
        /* A group card's operator is the member who identifies after its PIN: the account is checked then.
         */
        if (!d.group_id && !session_account_is(s, user, d.operator_id)) {
                o = outcome_refused(AUTH_WRONG_USER, "%s: this card is not this account's",
                                    auth_reason_to_string(AUTH_WRONG_USER));
                record_then_answer(s, call, &o, "auth.fail", d.operator_id, card_id,
                                   agent_data("reason", auth_reason_to_string(AUTH_WRONG_USER), "method",
                                              "card+pin", "user", user, NULL));
                return;
        }
        char *login_sender = strdup(sender ?: "");
        if (!login_sender) {
                o = outcome_failed(-ENOMEM);
                answer(s, call, &o);
                return;
        }
        /* The card thread takes the card now and selects it while the operator types the PIN. */
        uint64_t id = ++s->last_login_id;
        r = s->ops->login_start(s->userdata, s->card.reader, l, id, on_login_done, s);
        if (r < 0) {
                free(login_sender);
                o = r == -EBUSY ? outcome_refused(AUTH_BUSY, "the card is busy") : outcome_failed(r);
                answer(s, call, &o);
                return;
        }
        TAKE_PTR(l); /* the card thread's now */
        s->login = (struct pending_login){.active = true, .id = id, .started_mono_usec = now_mono_usec()};
        s->login.sender = login_sender;
        snprintf(s->login.card_id, sizeof(s->login.card_id), "%s", card_id);
        snprintf(s->login.reader, sizeof(s->login.reader), "%s", s->card.reader);
        snprintf(s->login.operator_id, sizeof(s->login.operator_id), "%s", d.operator_id ?: "");
        snprintf(s->login.group_id, sizeof(s->login.group_id), "%s", d.group_id ?: "");
        snprintf(s->login.user, sizeof(s->login.user), "%s", user ?: "");
        s->login.step = LOGIN_STEP_PIN;
        snprintf(s->login.method, sizeof(s->login.method), "%s",
                 !d.group_id                                      ? "card+pin"
                 : s->config->group_member == GROUP_MEMBER_FINGER ? "group-card+finger"
                                                                  : "group-card+password");
        apply(s, TRIGGER_LOGIN_START, now_mono_usec());
        (void)sd_event_add_time_relative(s->event, &s->login_timer, CLOCK_MONOTONIC, LOGIN_ANSWER_USEC, 0,
                                         on_login_timeout, s);
        o = outcome_ok();
        snprintf(o.card_id, sizeof(o.card_id), "%s", card_id);
        o.tries = s->card.pin_tries;
        answer(s, call, &o);
}

static void on_login_done(void *userdata, const struct card_job_result *res)
{
        struct session *s = userdata;
        SessionCall *call = s->login.answer;
        char card_id[CARD_ID_LEN + 1];

        if (s->state != SESSION_AUTHENTICATING || !call || res->id != s->login.id || !res->login)
                return; /* aborted meanwhile (card pulled, cancelled): already answered */
        s->login.answer = NULL;
        snprintf(card_id, sizeof(card_id), "%s", s->login.card_id);

        /* What the card just said about its PIN counter, for the next prompt. */
        if (streq(s->card.card_id, s->login.card_id))
                s->card.pin_tries = res->result == CARD_E_PIN_WRONG     ? res->tries_left
                                    : res->result == CARD_E_PIN_BLOCKED ? 0
                                                                        : -1;
        /* Still authenticating means the login's card was not pulled meanwhile. Decide again with
         * the policy as it is now: a card suspended during the PIN entry loses. */
        struct auth_context c = auth_context(s);
        if (s->card.der && streq(s->card.card_id, s->login.card_id)) /* checked again, at this time */
                card_login_set_cert_result(res->login,
                                           s->ops->check_cert(s->userdata, s->card.der, s->card.der_len));
        struct auth_decision d = card_login_decide(res->login, NULL, &c);
        bool group = s->login.group_id[0];
        if (d.reason == AUTH_ALLOW &&
            (group ? !d.group_id || !streq(d.group_id, s->login.group_id)
                   : !d.operator_id || !streq(d.operator_id, s->login.operator_id)))
                d.reason = AUTH_CARD_ERROR;

        if (d.reason != AUTH_ALLOW) {
                refuse_after_record(s, call, &d, card_id);
                login_clear(s);
                apply(s, TRIGGER_LOGIN_FAIL, now_mono_usec());
                return;
        }

        if (group) {
                /* The group card opened the door; now a member of its group identifies (Step). The
                 * card thread is done with the card: nothing is granted yet, nothing recorded. */
                s->login.id = 0;
                s->login.step = s->config->group_member == GROUP_MEMBER_FINGER ? LOGIN_STEP_FINGER
                                                                               : LOGIN_STEP_PASSWORD;
                struct session_outcome o = outcome_ok(); /* operator "" */
                answer(s, call, &o);
                changed(s, NULL); /* Step */
                return;
        }

        if (s->config->require_finger_with_card) {
                /* The lending check: the card's operator's own finger, before the session opens. */
                session_bio_after_card(s, call, &d, card_id);
                return;
        }

        char exchanges[24];
        fmt_int(exchanges, res->exchanges);
        session_grant(
                s, call, d.operator_id, card_id, "card+pin",
                agent_data("exchanges", exchanges, "policy_stale", d.policy_stale ? "yes" : NULL, NULL));
}

void session_grant(struct session *s, SessionCall *call, const char *operator_id, const char *card_id,
                   const char *method, JsonValue *extra)
{
        _cleanup_json_ JsonValue *more = extra, *data = NULL;
        char elapsed[24], card[CARD_ID_LEN + 1];
        int r;

        /* operator_id and card_id may point into s->login, which login_clear() wipes. */
        snprintf(card, sizeof(card), "%s", card_id ?: "");
        fmt_int(elapsed, (int64_t)(now_mono_usec() - s->login.started_mono_usec));
        snprintf(s->operator_id, sizeof(s->operator_id), "%s", operator_id);
        snprintf(s->session_card, sizeof(s->session_card), "%s", card);
        snprintf(s->method, sizeof(s->method), "%s", method);
        login_clear(s);
        apply(s, TRIGGER_LOGIN_OK, now_mono_usec());

        /* The answer waits for the last of the three records; it grants only this session. */
        struct session_outcome o = outcome_ok();
        snprintf(o.operator_id, sizeof(o.operator_id), "%s", s->operator_id);
        struct pending_answer *p = answer_after(s, call, &o);
        /* method first, the method's own facts, then the time it took (the event line's order). */
        r = json_new_object(&data);
        if (r >= 0)
                r = json_object_set_string(data, "method", s->method);
        for (size_t i = 0; r >= 0 && more && more->type == JSON_OBJECT && i < more->object.n; i++)
                r = json_object_set(data, more->object.members[i].key,
                                    TAKE_PTR(more->object.members[i].value));
        if (r >= 0)
                r = json_object_set_string(data, "elapsed_us", elapsed);
        if (r < 0)
                data = json_value_free(data); /* record() writes an empty object rather than nothing */
        const char *cid = s->session_card[0] ? s->session_card : NULL;
        record(s, "auth.ok", s->operator_id, cid, TAKE_PTR(data), NULL, NULL);
        record(s, "session.start", s->operator_id, cid, agent_data("method", s->method, NULL), NULL, NULL);
        record(s, "unlock", s->operator_id, cid, NULL, p ? answer_after_commit : NULL, p);
        start_idle_watch(s);
}

void session_login_begin(struct session *s)
{
        apply(s, TRIGGER_LOGIN_START, now_mono_usec());
        (void)sd_event_add_time_relative(s->event, &s->login_timer, CLOCK_MONOTONIC, LOGIN_ANSWER_USEC, 0,
                                         on_login_timeout, s);
}

void session_changed(struct session *s)
{
        changed(s, NULL);
}

bool session_account_is(const struct session *s, const char *user, const char *operator_id)
{
        return s->config->accounts != ACCOUNTS_PER_OPERATOR || (user && streq(user, operator_id));
}

void session_login_failed(struct session *s)
{
        login_clear(s);
        apply(s, TRIGGER_LOGIN_FAIL, now_mono_usec());
}

void session_answer_pin(struct session *s, SessionCall *call, const char *pin)
{
        struct session_outcome o;
        int r;

        if (s->state != SESSION_AUTHENTICATING || !s->login.active || s->login.step != LOGIN_STEP_PIN) {
                o = outcome_refused(AUTH_NOT_PENDING, "no login of yours is waiting for a PIN");
                answer(s, call, &o);
                return;
        }
        if (s->login.answer) {
                o = outcome_refused(AUTH_BUSY, "the PIN is already being checked");
                answer(s, call, &o);
                return;
        }
        if (strlen(pin) > CARD_WORKER_PIN_MAX) {
                o = outcome_refused(AUTH_INVALID_ARGUMENT, "PIN too long");
                answer(s, call, &o);
                return;
        }
        if (pin_check_format(pin, PIN_DIGITS_MIN, PIN_DIGITS_MAX) < 0) {
                /* A mistyped PIN never reaches the card and costs no try: the login keeps waiting
                 * for the next AnswerPin, and the caller hears back once the refusal is on record. */
                o = outcome_refused(AUTH_PIN_FORMAT, "%s", auth_reason_to_string(AUTH_PIN_FORMAT));
                record_then_answer(s, call, &o, "auth.fail", NULL,
                                   s->login.card_id[0] ? s->login.card_id : NULL,
                                   agent_data("reason", auth_reason_to_string(AUTH_PIN_FORMAT), "method",
                                              "card+pin", NULL));
                return;
        }
        r = s->ops->login_pin(s->userdata, s->login.id, pin);
        if (r < 0) {
                o = r == -EBUSY
                            ? outcome_refused(AUTH_BUSY, "the card is busy")
                            : outcome_refused(AUTH_CARD_ERROR, "%s", auth_reason_to_string(AUTH_CARD_ERROR));
                answer(s, call, &o);
                return;
        }
        s->login.answer = call; /* answered by on_login_done, or by an abort */
}

void session_cancel_login(struct session *s, SessionCall *call)
{
        struct session_outcome o = outcome_ok();

        if (s->state != SESSION_AUTHENTICATING || !s->login.active)
                o = outcome_refused(AUTH_NOT_PENDING, "no login of yours is in progress");
        else
                apply(s, TRIGGER_LOGIN_CANCEL, now_mono_usec());
        answer(s, call, &o);
}

bool session_login_pending(const struct session *s)
{
        return s->state == SESSION_AUTHENTICATING && s->login.active;
}

bool session_login_started_by(const struct session *s, const char *sender)
{
        return s->state == SESSION_AUTHENTICATING && s->login.active && s->login.sender && sender &&
               streq(sender, s->login.sender);
}

const char *login_step_to_string(enum login_step step)
{
        static const char *const names[_LOGIN_STEP_MAX] = {
                [LOGIN_STEP_PIN] = "pin",
                [LOGIN_STEP_FINGER] = "finger",
                [LOGIN_STEP_VEIN] = "vein",
                [LOGIN_STEP_PASSWORD] = "password",
                [LOGIN_STEP_OPERATOR_ID] = "operator-id",
        };
        return (unsigned)step < ELEMENTSOF(names) ? names[step] : "";
}

const char *session_step(const struct session *s)
{
        return session_login_pending(s) ? login_step_to_string(s->login.step) : "";
}

bool session_holds_inserted_card(const struct session *s)
{
        return s->state == SESSION_ACTIVE && s->card.present && streq(s->card.card_id, s->session_card);
}

/* ---- PIN change ---- */

struct pin_change {
        struct session *s;
        SessionCall *call;
        char card_id[CARD_ID_LEN + 1];
};

static void on_pin_changed(void *userdata, const struct card_job_result *res)
{
        struct pin_change *pc = userdata;
        struct session *s = pc->s;
        const char *op = s->operator_id[0] ? s->operator_id : NULL;

        if (res->result < 0) {
                enum auth_reason why = res->result == CARD_E_PIN_WRONG     ? AUTH_PIN_WRONG
                                       : res->result == CARD_E_PIN_BLOCKED ? AUTH_PIN_BLOCKED
                                       : res->result == CARD_E_BAD_PIN     ? AUTH_PIN_INVALID
                                                                           : AUTH_CARD_ERROR;
                struct session_outcome o =
                        why == AUTH_PIN_WRONG && res->tries_left >= 0
                                ? outcome_refused(why, "%s tries=%d", auth_reason_to_string(why),
                                                  res->tries_left)
                                : outcome_refused(why, "%s", auth_reason_to_string(why));
                record_then_answer(
                        s, pc->call, &o, "auth.fail", op, pc->card_id,
                        agent_data("reason", auth_reason_to_string(why), "method", "pin-change", NULL));
        } else {
                struct session_outcome o = outcome_ok();
                record_then_answer(s, pc->call, &o, "pin.change", op, pc->card_id, NULL);
        }
        free(pc);
}

void session_change_pin(struct session *s, SessionCall *call, const char *old_pin, const char *new_pin)
{
        struct session_outcome o;
        struct pin_change *pc;
        int r;

        if (!s->card.present || !s->card.card_id[0]) {
                o = outcome_refused(AUTH_NO_CARD, "%s", auth_reason_to_string(AUTH_NO_CARD));
                answer(s, call, &o);
                return;
        }
        if (strlen(old_pin) > CARD_WORKER_PIN_MAX || strlen(new_pin) > CARD_WORKER_PIN_MAX) {
                o = outcome_refused(AUTH_INVALID_ARGUMENT, "PIN too long");
                answer(s, call, &o);
                return;
        }
        /* [Secrets] MinLength: a PIV PIN has at most 8 digits, so more than 8 asks for 8. Refused
         * before the card is touched, and on record (auth.fail reason pin-too-short). */
        size_t min_length = s->config->min_length < 8 ? (size_t)s->config->min_length : 8;
        if (strlen(new_pin) < min_length) {
                o = outcome_refused(AUTH_PIN_TOO_SHORT, "%s min=%zu",
                                    auth_reason_to_string(AUTH_PIN_TOO_SHORT), min_length);
                record_then_answer(s, call, &o, "auth.fail", s->operator_id[0] ? s->operator_id : NULL,
                                   s->card.card_id,
                                   agent_data("reason", auth_reason_to_string(AUTH_PIN_TOO_SHORT), "method",
                                              "pin-change", NULL));
                return;
        }
        pc = calloc(1, sizeof(*pc));
        if (!pc) {
                o = outcome_failed(-ENOMEM);
                answer(s, call, &o);
                return;
        }
        *pc = (struct pin_change){.s = s, .call = call};
        snprintf(pc->card_id, sizeof(pc->card_id), "%s", s->card.card_id);
        r = s->ops->change_pin(s->userdata, s->card.reader, old_pin, new_pin, on_pin_changed, pc);
        if (r < 0) {
                free(pc);
                o = outcome_refused(AUTH_BUSY, "the card is busy");
                answer(s, call, &o);
                return;
        }
}

/* ---- while a session is active ---- */

void session_record_operation(struct session *s, SessionCall *call, JsonValue *data)
{
        struct session_outcome o;

        if (s->state != SESSION_ACTIVE) {
                json_value_free(data);
                o = outcome_refused(AUTH_NOT_ACTIVE, "no operator is logged in");
                answer(s, call, &o);
                return;
        }
        o = outcome_ok();
        record_then_answer(s, call, &o, "app.op", s->operator_id, s->session_card, data);
}

void session_pin_age(struct session *s, SessionCall *call)
{
        const Policy *p = s->ops->policy(s->userdata);
        const PolicyOperator *op;
        struct session_outcome o;
        int64_t changed;

        if (s->state != SESSION_ACTIVE) {
                o = outcome_refused(AUTH_NOT_ACTIVE, "no operator is logged in");
                answer(s, call, &o);
                return;
        }
        o = outcome_ok();
        o.pin_age_days = -1;
        o.max_age_days = (int)s->config->max_age_days;
        o.warn_days = s->config->warn_days > INT_MAX ? INT_MAX : (int)s->config->warn_days;
        op = p ? policy_find_operator(p, s->operator_id) : NULL;
        /* DESIGN §4: the bundle's pin_changed, unless this terminal's own log holds a newer change
         * (made here since the bundle was signed: it counts at once). */
        changed = op ? op->pin_changed : -1;
        if (s->ops->secret_changed) {
                int64_t here = s->ops->secret_changed(s->userdata, s->operator_id);
                if (here > changed)
                        changed = here;
        }
        if (changed >= 0) {
                int64_t now = now_realtime_usec();
                int64_t days = now > changed ? (now - changed) / (INT64_C(86400) * 1000000) : 0;
                o.pin_age_days = days > INT_MAX ? INT_MAX : (int)days;
        }
        answer(s, call, &o);
}
