/* mamorid's fingerprint steps: finger logins without a card, a group card's member, the lending check,
 * enrolment and deletion of prints; outcomes and records, no D-Bus. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "event-data.h"
#include "journal.h"
#include "mamori/auth-reasons.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "print-store.h"
#include "session-internal.h"

static bool have_sensor(struct session *s, struct finger_device_info *ret)
{
        *ret = (struct finger_device_info){0};
        if (s->ops->finger_device)
                s->ops->finger_device(s->userdata, ret);
        return ret->present && s->ops->finger_match;
}

/* Records auth.fail with reason and answers call once it is durable; the login ends. */
static void refuse_login(struct session *s, SessionCall *call, enum auth_reason reason, const char *op,
                         const char *card, const char *other)
{
        struct session_outcome o = session_outcome_refused(reason, "%s", auth_reason_to_string(reason));
        char method[sizeof(s->login.method)];

        snprintf(method, sizeof(method), "%s", s->login.method[0] ? s->login.method : "finger+password");
        session_record_then_answer(s, call, &o, "auth.fail", op, card,
                                   agent_data("reason", auth_reason_to_string(reason), "method", method,
                                              "finger_operator", other, NULL));
        session_login_failed(s);
}

/* The session opens for operator_id: session_grant() records auth.ok (with the finger's part),
 * session.start and unlock, and answers after the last. */
static void open_session(struct session *s, SessionCall *call, const char *operator_id, const char *card_id,
                         const char *method, bool stale)
{
        session_grant(s, call, operator_id, card_id && card_id[0] ? card_id : NULL, method,
                      agent_data("finger", "verified", "policy_stale", stale ? "yes" : NULL, NULL));
}

/* ---- the scan ---- */

static void on_scanned(void *userdata, const struct finger_event *ev);

/* Whose prints a touch is compared with: operators who may log in here now (1:N), or only the
 * operator named (1:1 on a sensor that cannot identify). The files are read on the finger thread. */
static int allowed_operators(struct session *s, const char *only, char ***ret, size_t *ret_n)
{
        struct auth_context c = session_auth_context(s);
        size_t n = 0, cap = only ? 1 : (c.policy ? c.policy->n_operators : 0);
        char **ids = calloc(cap ? cap : 1, sizeof(char *));

        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; c.policy && i < c.policy->n_operators && n < cap; i++) {
                const char *id = c.policy->operators[i].id;
                if (only && !streq(id, only))
                        continue;
                if (auth_decide_operator(&c, id, NULL) != AUTH_ALLOW)
                        continue;      /* retired, suspended, elsewhere: their finger opens nothing here */
                ids[n++] = (char *)id; /* borrowed from the policy: the worker copies them */
        }
        *ret = ids;
        *ret_n = n;
        return 0;
}

/* Starts the scan of the pending login (Step "finger"); call is answered after the touch. */
static void start_scan(struct session *s, SessionCall *call, const char *only)
{
        struct finger_device_info info;
        uint64_t id;
        int r;

        if (!have_sensor(s, &info)) {
                refuse_login(s, call, AUTH_BIO_UNAVAILABLE, only,
                             s->session_card[0] ? s->session_card : NULL, NULL);
                return;
        }
        uint64_t t0 = now_mono_usec();
        char **allowed = NULL;
        size_t n = 0;
        /* 1:1 needs the operator's id: without it there is nothing to compare with. */
        r = allowed_operators(s, info.can_identify ? NULL : only, &allowed, &n);
        if (r >= 0 && !info.can_identify && !only)
                n = 0;
        s->login.gallery_usec = now_mono_usec() - t0;
        if (r < 0) {
                struct session_outcome o = session_outcome_failed(r);
                session_answer(s, call, &o);
                session_login_failed(s);
                return;
        }
        id = ++s->last_login_id;
        r = s->ops->finger_match(s->userdata, id, s->config->prints_directory ?: "/nonexistent", allowed, n,
                                 on_scanned, s);
        free(allowed);
        if (r < 0) {
                if (r == -EBUSY) {
                        struct session_outcome o =
                                session_outcome_refused(AUTH_BUSY, "the fingerprint sensor is busy");
                        session_answer(s, call, &o);
                        session_login_failed(s);
                } else
                        refuse_login(s, call, AUTH_BIO_UNAVAILABLE, only, NULL, NULL);
                return;
        }
        s->login.finger_id = id;
        s->login.step = LOGIN_STEP_FINGER;
        s->login.answer = call;
        session_changed(s);
}

static void on_scanned(void *userdata, const struct finger_event *ev)
{
        struct session *s = userdata;
        struct auth_context c = session_auth_context(s);
        bool stale = false;

        if (ev->kind != FINGER_EVENT_DONE) {
                if (ev->retry)
                        agent_log(LOG_INFO, "fingerprint not read (try %d): touch again", ev->stage);
                return;
        }
        if (s->state != SESSION_AUTHENTICATING || !s->login.active || s->login.finger_id != ev->id)
                return; /* cancelled meanwhile (pull, CancelLogin, lock): already answered */
        SessionCall *call = TAKE_PTR(s->login.answer);
        char card_id[CARD_ID_LEN + 1], scanned[FINGER_OPERATOR_MAX];
        snprintf(card_id, sizeof(card_id), "%s", s->login.card_id);
        const char *card = card_id[0] ? card_id : NULL;
        const char *named =
                s->login.operator_id[0] ? s->login.operator_id : (s->login.user[0] ? s->login.user : NULL);
        s->login.finger_id = 0;
        snprintf(scanned, sizeof(scanned), "%s", ev->matched ? ev->operator_id : "");
        agent_log(LOG_INFO,
                  "finger scan: %zu prints compared, chosen in %" PRIu64
                  " us, read and made ready in %" PRIu64 " us, %" PRIu64
                  " us from the scan's start to its answer",
                  ev->gallery, s->login.gallery_usec, ev->prepare_usec, ev->elapsed_usec);

        if (ev->result < 0) {
                enum auth_reason why = ev->result == -EAGAIN ? AUTH_FINGER_UNREADABLE : AUTH_BIO_UNAVAILABLE;
                if (ev->result == -ECANCELED)
                        why = AUTH_NOT_PENDING;
                refuse_login(s, call, why, named, card, NULL);
                return;
        }
        if (!ev->matched) {
                refuse_login(s, call, AUTH_FINGER_NO_MATCH, named, card, NULL);
                return;
        }

        if (streq(s->login.method, "finger+password")) {
                /* Decided again with the bundle as it is now. */
                enum auth_reason r = auth_decide_operator(&c, scanned, &stale);
                if (r != AUTH_ALLOW) {
                        refuse_login(s, call, r, scanned, NULL, NULL);
                        return;
                }
                snprintf(s->login.operator_id, sizeof(s->login.operator_id), "%s", scanned);
                s->login.step = LOGIN_STEP_PASSWORD;
                struct session_outcome o = session_outcome_ok();
                snprintf(o.operator_id, sizeof(o.operator_id), "%s", scanned);
                snprintf(o.step, sizeof(o.step), "%s", login_step_to_string(LOGIN_STEP_PASSWORD));
                session_answer(s, call, &o);
                session_changed(s);
                return;
        }
        if (streq(s->login.method, "group-card+finger")) {
                const PolicyGroup *g = c.policy ? policy_find_group(c.policy, s->login.group_id) : NULL;
                if (!g || !policy_group_has_member(g, scanned)) {
                        refuse_login(s, call, AUTH_NOT_GROUP_MEMBER, scanned, card, NULL);
                        return;
                }
                enum auth_reason r = auth_decide_operator(&c, scanned, &stale);
                if (r == AUTH_ALLOW)
                        r = auth_decide_session(&c, card_id, scanned); /* the card, again, now */
                if (r != AUTH_ALLOW) {
                        refuse_login(s, call, r, scanned, card, NULL);
                        return;
                }
                open_session(s, call, scanned, card_id, "group-card+finger", stale);
                return;
        }
        /* card+pin with RequireFingerWithCard=yes: only the card's operator's own finger. */
        if (!streq(scanned, s->login.operator_id)) {
                char op[OPERATOR_ID_MAX];
                snprintf(op, sizeof(op), "%s", s->login.operator_id);
                refuse_login(s, call, AUTH_LENDING_SUSPECTED, op, card, scanned);
                return;
        }
        enum auth_reason r = auth_decide_session(&c, card_id, scanned);
        if (r != AUTH_ALLOW) {
                refuse_login(s, call, r, scanned, card, NULL);
                return;
        }
        open_session(s, call, scanned, card_id, "card+pin", policy_is_stale(c.policy, c.now_usec));
}

/* ---- the methods ---- */

void session_start_bio_login(struct session *s, SessionCall *call, const char *sender, const char *user,
                             const char *modality)
{
        struct session_outcome o;
        struct auth_context c = session_auth_context(s);

        if (!streq(modality, "finger")) {
                o = session_outcome_refused(streq(modality, "vein") ? AUTH_BIO_UNAVAILABLE
                                                                    : AUTH_INVALID_ARGUMENT,
                                            "modality %s is not available here", modality);
                session_answer(s, call, &o);
                return;
        }
        if (s->state != SESSION_LOCKED) {
                o = session_outcome_refused(AUTH_BUSY, "%s",
                                            s->state == SESSION_ACTIVE ? "a session is active: lock it first"
                                                                       : "another login is in progress");
                session_answer(s, call, &o);
                return;
        }
        enum auth_reason held = s->ops->held ? s->ops->held(s->userdata) : AUTH_ALLOW;
        if (held == AUTH_ALLOW && !s->ops->log_writable(s->userdata))
                held = AUTH_LOG_UNWRITABLE;
        if (held != AUTH_ALLOW) {
                o = session_outcome_refused(held, "%s: %s", auth_reason_to_string(held),
                                            auth_reason_to_words(held));
                session_answer(s, call, &o);
                return;
        }
        enum auth_reason r = auth_decide_operator(&c, NULL, NULL);
        if (r != AUTH_ALLOW) {
                o = session_outcome_refused(r, "%s", auth_reason_to_string(r));
                session_record_then_answer(
                        s, call, &o, "auth.fail", NULL, NULL,
                        agent_data("reason", auth_reason_to_string(r), "method", "finger+password", NULL));
                return;
        }
        char *login_sender = strdup(sender ?: "");
        if (!login_sender) {
                o = session_outcome_failed(-ENOMEM);
                session_answer(s, call, &o);
                return;
        }
        s->login = (struct pending_login){.active = true, .started_mono_usec = now_mono_usec()};
        s->login.sender = login_sender;
        s->login.step = LOGIN_STEP_FINGER;
        snprintf(s->login.method, sizeof(s->login.method), "finger+password");
        if (user && print_store_id_ok(user))
                snprintf(s->login.user, sizeof(s->login.user), "%s", user);
        session_login_begin(s);
        start_scan(s, call, s->login.user[0] ? s->login.user : NULL);
}

void session_bio_after_card(struct session *s, SessionCall *call, const struct auth_decision *d,
                            const char *card_id)
{
        struct session_outcome o = session_outcome_ok();

        /* RequireFingerWithCard=yes: the card's part is done (PIN and signature verified) and the
         * card thread has let it go; nothing is recorded until the finger has decided. */
        s->login.id = 0;
        s->login.step = LOGIN_STEP_FINGER;
        snprintf(o.operator_id, sizeof(o.operator_id), "%s", s->login.operator_id);
        session_answer(s, call, &o);
        session_changed(s);
}

void session_scan_finger(struct session *s, SessionCall *call, const char *modality)
{
        struct session_outcome o;

        if (!streq(modality, "finger")) {
                o = session_outcome_refused(streq(modality, "vein") ? AUTH_BIO_UNAVAILABLE
                                                                    : AUTH_INVALID_ARGUMENT,
                                            "modality %s is not available here", modality);
                session_answer(s, call, &o);
                return;
        }
        if (s->state != SESSION_AUTHENTICATING || !s->login.active || s->login.step != LOGIN_STEP_FINGER ||
            s->login.finger_id || s->login.answer || !s->login.card_id[0]) {
                o = session_outcome_refused(AUTH_NOT_PENDING, "no login of yours is waiting for a finger");
                session_answer(s, call, &o);
                return;
        }
        /* A group's member identifies 1:N; the lending check compares with the card's operator
         * (1:N too where the sensor can, so another operator's finger is named). */
        start_scan(s, call, s->login.group_id[0] ? NULL : s->login.operator_id);
}

/* ---- enrolment ---- */

static void enrolment_clear(struct session *s)
{
        struct pending_enrolment *e = &s->enrolment;

        if (e->id && s->ops->finger_cancel)
                s->ops->finger_cancel(s->userdata, e->id);
        free(e->sender);
        *e = (struct pending_enrolment){0};
}

static void enrolment_abort(struct session *s, enum auth_reason why, const char *message)
{
        SessionCall *call = TAKE_PTR(s->enrolment.answer);
        struct session_outcome o = session_outcome_refused(why, "%s", message);

        enrolment_clear(s);
        session_answer(s, call, &o);
}

void session_bio_session_ended(struct session *s)
{
        if (s->enrolment.active)
                enrolment_abort(s, AUTH_NOT_ACTIVE, "the session ended: enrolment cancelled");
}

void session_enroll_client_gone(struct session *s, const char *sender)
{
        if (s->enrolment.active && s->enrolment.sender && sender && streq(s->enrolment.sender, sender))
                enrolment_abort(s, AUTH_NOT_PENDING, "cancelled");
}

static void on_enrolled(void *userdata, const struct finger_event *ev)
{
        struct session *s = userdata;
        struct pending_enrolment *e = &s->enrolment;
        unsigned slot = 0;
        int r;

        if (!e->active || e->id != ev->id)
                return; /* cancelled: already answered */
        if (ev->kind == FINGER_EVENT_PROGRESS) {
                if (s->ops->enroll_progress)
                        s->ops->enroll_progress(s->userdata, e->operator_id, ev->stage, ev->stages,
                                                ev->retry);
                return;
        }
        e->id = 0;
        if (ev->result < 0 || !ev->print) {
                enum auth_reason why = ev->result == -ECANCELED ? AUTH_NOT_PENDING
                                       : ev->result == -EEXIST  ? AUTH_INVALID_ARGUMENT
                                       : ev->result == -EAGAIN  ? AUTH_FINGER_UNREADABLE
                                                                : AUTH_BIO_UNAVAILABLE;
                enrolment_abort(s, why,
                                ev->result == -EEXIST ? "this finger is already enrolled: use another finger"
                                                      : auth_reason_to_string(why));
                return;
        }
        if (!(s->state == SESSION_ACTIVE && s->session_gen == e->session_gen)) {
                enrolment_abort(s, AUTH_NOT_ACTIVE, "the session ended: enrolment cancelled");
                return;
        }
        r = print_store_save(s->config->prints_directory, e->operator_id, ev->print, ev->print_size, &slot);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot store the print of %s in %s: %s", e->operator_id,
                          s->config->prints_directory, strerror(-r));
                enrolment_abort(s, r == -ENOSPC ? AUTH_INVALID_ARGUMENT : AUTH_BIO_UNAVAILABLE,
                                r == -ENOSPC ? "every finger slot is used: delete the prints first"
                                             : "the print could not be stored");
                return;
        }
        char slot_s[24], stages[24];
        snprintf(slot_s, sizeof(slot_s), "#%u", slot);
        snprintf(stages, sizeof(stages), "#%d", ev->stages);
        SessionCall *call = TAKE_PTR(e->answer);
        struct session_outcome o = session_outcome_ok();
        snprintf(o.operator_id, sizeof(o.operator_id), "%s", e->operator_id);
        o.tries = (int)slot;
        char op[OPERATOR_ID_MAX], card[CARD_ID_LEN + 1];
        snprintf(op, sizeof(op), "%s", e->operator_id);
        snprintf(card, sizeof(card), "%s", e->card_id);
        enrolment_clear(s);
        session_record_then_answer(s, call, &o, "enroll", op, card[0] ? card : NULL,
                                   agent_data("action", "enrolled", "modality", "finger", "slot", slot_s,
                                              "stages", stages, NULL));
}

void session_enroll_finger(struct session *s, SessionCall *call, const char *sender)
{
        struct finger_device_info info;
        struct session_outcome o;
        int r;

        /* A print is always bound to a card-verified identity: only in a card session. */
        if (s->state != SESSION_ACTIVE || !s->session_card[0] || !streq(s->method, "card+pin")) {
                o = session_outcome_refused(AUTH_NOT_ACTIVE, "enrolment needs an active card session");
                session_answer(s, call, &o);
                return;
        }
        if (s->enrolment.active) {
                o = session_outcome_refused(AUTH_BUSY, "an enrolment is in progress");
                session_answer(s, call, &o);
                return;
        }
        if (!have_sensor(s, &info) || !s->ops->finger_enroll) {
                o = session_outcome_refused(AUTH_BIO_UNAVAILABLE, "%s",
                                            auth_reason_to_string(AUTH_BIO_UNAVAILABLE));
                session_answer(s, call, &o);
                return;
        }
        uint64_t id = ++s->last_login_id;
        s->enrolment = (struct pending_enrolment){.active = true, .id = id, .session_gen = s->session_gen};
        snprintf(s->enrolment.operator_id, sizeof(s->enrolment.operator_id), "%s", s->operator_id);
        snprintf(s->enrolment.card_id, sizeof(s->enrolment.card_id), "%s", s->session_card);
        s->enrolment.sender = strdup(sender ?: "");
        r = s->enrolment.sender ? s->ops->finger_enroll(s->userdata, id, s->operator_id, on_enrolled, s)
                                : -ENOMEM;
        if (r < 0) {
                s->enrolment.id = 0;
                enrolment_clear(s);
                o = r == -EBUSY    ? session_outcome_refused(AUTH_BUSY, "the fingerprint sensor is busy")
                    : r == -ENODEV ? session_outcome_refused(AUTH_BIO_UNAVAILABLE, "%s",
                                                             auth_reason_to_string(AUTH_BIO_UNAVAILABLE))
                                   : session_outcome_failed(r);
                session_answer(s, call, &o);
                return;
        }
        s->enrolment.answer = call;
        if (s->ops->enroll_progress)
                s->ops->enroll_progress(s->userdata, s->operator_id, 0, info.enroll_stages, false);
}

/* ---- deletion ---- */

/* Deletes operator_id's prints and records it; call (may be NULL) hears back after the record. */
static void delete_prints(struct session *s, SessionCall *call, const char *operator_id, const char *action)
{
        struct session_outcome o;
        unsigned n = 0;
        char count[24];
        int r;

        r = print_store_delete(s->config->prints_directory, operator_id, &n);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot delete the prints of %s in %s: %s", operator_id,
                          s->config->prints_directory, strerror(-r));
                o = r == -EINVAL ? session_outcome_refused(AUTH_INVALID_ARGUMENT, "not an operator id")
                                 : session_outcome_failed(r);
                session_answer(s, call, &o);
                return;
        }
        o = session_outcome_ok();
        o.tries = (int)n;
        if (n == 0) {
                session_answer(s, call, &o); /* nothing was there: nothing to record */
                return;
        }
        snprintf(count, sizeof(count), "#%u", n);
        session_record_then_answer(
                s, call, &o, "enroll", operator_id, NULL,
                agent_data("action", action, "modality", "finger", "prints", count, NULL));
}

void session_delete_prints(struct session *s, SessionCall *call, const char *operator_id)
{
        delete_prints(s, call, operator_id, "deleted");
}

void session_bio_on_policy(struct session *s, const Policy *current)
{
        char **ids = NULL;
        size_t n = 0;

        if (!s->config->prints_directory || print_store_operators(s->config->prints_directory, &ids, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                const PolicyOperator *op = policy_find_operator(current, ids[i]);
                if (op && op->status == POLICY_STATUS_RETIRED)
                        delete_prints(s, NULL, ids[i], "retired-deleted");
                free(ids[i]);
        }
        free(ids);
}
