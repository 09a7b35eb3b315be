/* mamorid's biometric steps (fingerprint and vein): logins without a card, a group card's member, the
 * lending check, enrolment and deletion of templates; outcomes and records, no D-Bus. */
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

/* What a modality's reader can do now: false when there is none (or no thread to ask). */
static bool have_reader(struct session *s, enum bio_modality m, bool *ret_can_identify, int *ret_stages)
{
        *ret_can_identify = false;
        *ret_stages = 0;
        if (m == BIO_MODALITY_VEIN) {
                struct vein_device_info v = {0};
                if (s->ops->vein_device)
                        s->ops->vein_device(s->userdata, &v);
                *ret_can_identify = v.can_identify;
                return v.present && s->ops->vein_match;
        }
        struct finger_device_info f = {0};
        if (s->ops->finger_device)
                s->ops->finger_device(s->userdata, &f);
        *ret_can_identify = f.can_identify;
        *ret_stages = f.enroll_stages;
        return f.present && s->ops->finger_match;
}

/* The refusals that name the modality (the one reason table has a row for each). */
static enum auth_reason no_match(enum bio_modality m)
{
        return m == BIO_MODALITY_VEIN ? AUTH_VEIN_NO_MATCH : AUTH_FINGER_NO_MATCH;
}

static enum auth_reason unreadable(enum bio_modality m)
{
        return m == BIO_MODALITY_VEIN ? AUTH_VEIN_UNREADABLE : AUTH_FINGER_UNREADABLE;
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

static void on_finger_scanned(void *userdata, const struct finger_event *ev);
static void on_vein_scanned(void *userdata, const struct vein_event *ev);

/* Whose templates a touch is compared with: operators who may log in here now (1:N), or only the
 * operator named (1:1 on a reader that cannot identify). The files are read on the reader's thread. */
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

void session_bio_cancel_scan(struct session *s)
{
        uint64_t id = s->login.scan_id;

        if (!id)
                return;
        if (s->login.scan_modality == BIO_MODALITY_VEIN) {
                if (s->ops->vein_cancel)
                        s->ops->vein_cancel(s->userdata, id);
        } else if (s->ops->finger_cancel)
                s->ops->finger_cancel(s->userdata, id);
}

/* Starts the scan of the pending login (Step "finger" or "vein", by s->login.scan_modality); call
 * is answered after the touch. */
static void start_scan(struct session *s, SessionCall *call, const char *only)
{
        enum bio_modality m = s->login.scan_modality;
        bool can_identify;
        int stages;
        uint64_t id;
        int r;

        if (!have_reader(s, m, &can_identify, &stages)) {
                refuse_login(s, call, AUTH_BIO_UNAVAILABLE, only,
                             s->session_card[0] ? s->session_card : NULL, NULL);
                return;
        }
        uint64_t t0 = now_mono_usec();
        char **allowed = NULL;
        size_t n = 0;
        /* 1:1 needs the operator's id: without it there is nothing to compare with. */
        r = allowed_operators(s, can_identify ? NULL : only, &allowed, &n);
        if (r >= 0 && !can_identify && !only)
                n = 0;
        s->login.gallery_usec = now_mono_usec() - t0;
        if (r < 0) {
                struct session_outcome o = session_outcome_failed(r);
                session_answer(s, call, &o);
                session_login_failed(s);
                return;
        }
        id = ++s->last_login_id;
        const char *dir = s->config->prints_directory ?: "/nonexistent";
        if (m == BIO_MODALITY_VEIN)
                r = s->ops->vein_match(s->userdata, id, dir, allowed, n, on_vein_scanned, s);
        else
                r = s->ops->finger_match(s->userdata, id, dir, allowed, n, on_finger_scanned, s);
        free(allowed);
        if (r < 0) {
                if (r == -EBUSY) {
                        struct session_outcome o = session_outcome_refused(
                                AUTH_BUSY, m == BIO_MODALITY_VEIN ? "the vein reader is busy"
                                                                  : "the fingerprint sensor is busy");
                        session_answer(s, call, &o);
                        session_login_failed(s);
                } else
                        refuse_login(s, call, AUTH_BIO_UNAVAILABLE, only, NULL, NULL);
                return;
        }
        s->login.scan_id = id;
        s->login.step = m == BIO_MODALITY_VEIN ? LOGIN_STEP_VEIN : LOGIN_STEP_FINGER;
        s->login.answer = call;
        session_changed(s);
}

/* What a scan of either modality came back with. */
struct scan_result {
        uint64_t id;
        int result;
        bool matched;
        const char *operator_id;
        size_t gallery;
        uint64_t prepare_usec, elapsed_usec;
};

static void scanned(struct session *s, enum bio_modality m, const struct scan_result *ev)
{
        struct auth_context c = session_auth_context(s);
        bool stale = false;

        if (s->state != SESSION_AUTHENTICATING || !s->login.active || s->login.scan_id != ev->id ||
            s->login.scan_modality != m)
                return; /* cancelled meanwhile (pull, CancelLogin, lock): already answered */
        SessionCall *call = TAKE_PTR(s->login.answer);
        char card_id[CARD_ID_LEN + 1], scanned_op[OPERATOR_ID_MAX];
        snprintf(card_id, sizeof(card_id), "%s", s->login.card_id);
        const char *card = card_id[0] ? card_id : NULL;
        /* Whom a refusal is recorded against: the operator named, never a shared account's name. */
        const char *named = s->login.operator_id[0] ? s->login.operator_id
                            : (s->login.user[0] && c.policy && policy_find_operator(c.policy, s->login.user))
                                    ? s->login.user
                                    : NULL;
        s->login.scan_id = 0;
        snprintf(scanned_op, sizeof(scanned_op), "%s", ev->matched ? ev->operator_id : "");
        agent_log(LOG_INFO,
                  "%s scan: %zu templates compared, chosen in %" PRIu64
                  " us, read and made ready in %" PRIu64 " us, %" PRIu64
                  " us from the scan's start to its answer",
                  bio_modality_to_string(m), ev->gallery, s->login.gallery_usec, ev->prepare_usec,
                  ev->elapsed_usec);

        if (ev->result < 0) {
                enum auth_reason why = ev->result == -EAGAIN ? unreadable(m) : AUTH_BIO_UNAVAILABLE;
                if (ev->result == -ECANCELED)
                        why = AUTH_NOT_PENDING;
                refuse_login(s, call, why, named, card, NULL);
                return;
        }
        if (!ev->matched) {
                refuse_login(s, call, no_match(m), named, card, NULL);
                return;
        }

        /* Accounts=per-operator: whoever the touch identified must be the account's own operator. A
         * card+pin login checked its card's operator at StartLogin; the finger must be that one. */
        if (s->login.group_id[0] || !s->login.card_id[0]) {
                if (!session_account_is(s, s->login.user, scanned_op)) {
                        refuse_login(s, call, AUTH_WRONG_USER, scanned_op, card, NULL);
                        return;
                }
        }
        if (streq(s->login.method, "finger+password") || streq(s->login.method, "vein+password")) {
                /* Decided again with the bundle as it is now. */
                enum auth_reason r = auth_decide_operator(&c, scanned_op, &stale);
                if (r != AUTH_ALLOW) {
                        refuse_login(s, call, r, scanned_op, NULL, NULL);
                        return;
                }
                snprintf(s->login.operator_id, sizeof(s->login.operator_id), "%s", scanned_op);
                s->login.step = LOGIN_STEP_PASSWORD;
                struct session_outcome o = session_outcome_ok();
                snprintf(o.operator_id, sizeof(o.operator_id), "%s", scanned_op);
                snprintf(o.step, sizeof(o.step), "%s", login_step_to_string(LOGIN_STEP_PASSWORD));
                session_answer(s, call, &o);
                session_changed(s);
                return;
        }
        if (streq(s->login.method, "group-card+finger")) {
                const PolicyGroup *g = c.policy ? policy_find_group(c.policy, s->login.group_id) : NULL;
                if (!g || !policy_group_has_member(g, scanned_op)) {
                        refuse_login(s, call, AUTH_NOT_GROUP_MEMBER, scanned_op, card, NULL);
                        return;
                }
                enum auth_reason r = auth_decide_operator(&c, scanned_op, &stale);
                if (r == AUTH_ALLOW)
                        r = auth_decide_session(&c, card_id, scanned_op); /* the card, again, now */
                if (r != AUTH_ALLOW) {
                        refuse_login(s, call, r, scanned_op, card, NULL);
                        return;
                }
                open_session(s, call, scanned_op, card_id, "group-card+finger", stale);
                return;
        }
        /* card+pin with RequireFingerWithCard=yes: only the card's operator's own finger. */
        if (!streq(scanned_op, s->login.operator_id)) {
                char op[OPERATOR_ID_MAX];
                snprintf(op, sizeof(op), "%s", s->login.operator_id);
                refuse_login(s, call, AUTH_LENDING_SUSPECTED, op, card, scanned_op);
                return;
        }
        enum auth_reason r = auth_decide_session(&c, card_id, scanned_op);
        if (r != AUTH_ALLOW) {
                refuse_login(s, call, r, scanned_op, card, NULL);
                return;
        }
        open_session(s, call, scanned_op, card_id, "card+pin", policy_is_stale(c.policy, c.now_usec));
}

static void on_finger_scanned(void *userdata, const struct finger_event *ev)
{
        if (ev->kind != FINGER_EVENT_DONE) {
                if (ev->retry)
                        agent_log(LOG_INFO, "fingerprint not read (try %d): touch again", ev->stage);
                return;
        }
        scanned(userdata, BIO_MODALITY_FINGER,
                &(struct scan_result){.id = ev->id,
                                      .result = ev->result,
                                      .matched = ev->matched,
                                      .operator_id = ev->operator_id,
                                      .gallery = ev->gallery,
                                      .prepare_usec = ev->prepare_usec,
                                      .elapsed_usec = ev->elapsed_usec});
}

static void on_vein_scanned(void *userdata, const struct vein_event *ev)
{
        if (ev->kind != VEIN_EVENT_DONE)
                return;
        scanned(userdata, BIO_MODALITY_VEIN,
                &(struct scan_result){.id = ev->id,
                                      .result = ev->result,
                                      .matched = ev->matched,
                                      .operator_id = ev->operator_id,
                                      .gallery = ev->gallery,
                                      .prepare_usec = ev->prepare_usec,
                                      .elapsed_usec = ev->elapsed_usec});
}

/* ---- the methods ---- */

void session_start_bio_login(struct session *s, SessionCall *call, const char *sender, const char *user,
                             const char *modality)
{
        struct session_outcome o;
        struct auth_context c = session_auth_context(s);
        int m = bio_modality_from_string(modality);

        if (m < 0) {
                o = session_outcome_refused(AUTH_INVALID_ARGUMENT, "modality %s: finger or vein", modality);
                session_answer(s, call, &o);
                return;
        }
        const char *method = m == BIO_MODALITY_VEIN ? "vein+password" : "finger+password";
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
                        agent_data("reason", auth_reason_to_string(r), "method", method, NULL));
                return;
        }
        /* A reader that can only verify compares with one operator's templates: when user names no
         * operator of this bundle (a shared counter account, or nothing), the caller is told to ask the
         * operator id (Step "operator-id") and to call again with it; nothing starts, nothing is
         * recorded. */
        bool can_identify;
        int stages;
        if (have_reader(s, (enum bio_modality)m, &can_identify, &stages) && !can_identify &&
            !(user && user[0] && c.policy && policy_find_operator(c.policy, user))) {
                o = session_outcome_ok();
                snprintf(o.step, sizeof(o.step), "%s", login_step_to_string(LOGIN_STEP_OPERATOR_ID));
                session_answer(s, call, &o);
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
        s->login.scan_modality = (enum bio_modality)m;
        s->login.step = m == BIO_MODALITY_VEIN ? LOGIN_STEP_VEIN : LOGIN_STEP_FINGER;
        snprintf(s->login.method, sizeof(s->login.method), "%s", method);
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

        /* After a card: a group member's or the holder's finger (vein readers are for logins
         * without a card in this version). */
        if (!streq(modality, "finger")) {
                o = session_outcome_refused(streq(modality, "vein") ? AUTH_BIO_UNAVAILABLE
                                                                    : AUTH_INVALID_ARGUMENT,
                                            "modality %s is not available after a card", modality);
                session_answer(s, call, &o);
                return;
        }
        if (s->state != SESSION_AUTHENTICATING || !s->login.active || s->login.step != LOGIN_STEP_FINGER ||
            s->login.scan_id || s->login.answer || !s->login.card_id[0]) {
                o = session_outcome_refused(AUTH_NOT_PENDING, "no login of yours is waiting for a finger");
                session_answer(s, call, &o);
                return;
        }
        /* A group's member identifies 1:N; the lending check compares with the card's operator
         * (1:N too where the sensor can, so another operator's finger is named). */
        s->login.scan_modality = BIO_MODALITY_FINGER;
        start_scan(s, call, s->login.group_id[0] ? NULL : s->login.operator_id);
}

/* ---- enrolment ---- */

static void enrolment_clear(struct session *s)
{
        struct pending_enrolment *e = &s->enrolment;

        if (e->id) {
                if (e->modality == BIO_MODALITY_VEIN) {
                        if (s->ops->vein_cancel)
                                s->ops->vein_cancel(s->userdata, e->id);
                } else if (s->ops->finger_cancel)
                        s->ops->finger_cancel(s->userdata, e->id);
        }
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

/* An enrolment of either modality ended on its thread: the template is stored and recorded. */
static void enrolled(struct session *s, enum bio_modality m, uint64_t id, int result, const uint8_t *data,
                     size_t size, int stages)
{
        struct pending_enrolment *e = &s->enrolment;
        unsigned slot = 0;
        int r;

        if (!e->active || e->id != id || e->modality != m)
                return; /* cancelled: already answered */
        e->id = 0;
        if (result < 0 || !data) {
                enum auth_reason why = result == -ECANCELED ? AUTH_NOT_PENDING
                                       : result == -EEXIST  ? AUTH_INVALID_ARGUMENT
                                       : result == -EAGAIN  ? unreadable(m)
                                                            : AUTH_BIO_UNAVAILABLE;
                enrolment_abort(s, why,
                                result == -EEXIST ? "this finger is already enrolled: use another finger"
                                                  : auth_reason_to_string(why));
                return;
        }
        if (!(s->state == SESSION_ACTIVE && s->session_gen == e->session_gen)) {
                enrolment_abort(s, AUTH_NOT_ACTIVE, "the session ended: enrolment cancelled");
                return;
        }
        r = print_store_save(s->config->prints_directory, m, e->operator_id, data, size, &slot);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot store the %s template of %s in %s: %s", bio_modality_to_string(m),
                          e->operator_id, s->config->prints_directory, strerror(-r));
                enrolment_abort(s, r == -ENOSPC ? AUTH_INVALID_ARGUMENT : AUTH_BIO_UNAVAILABLE,
                                r == -ENOSPC ? "every slot is used: delete the operator's templates first"
                                             : "the template could not be stored");
                return;
        }
        char slot_s[24], stages_s[24];
        snprintf(slot_s, sizeof(slot_s), "#%u", slot);
        snprintf(stages_s, sizeof(stages_s), "#%d", stages);
        SessionCall *call = TAKE_PTR(e->answer);
        struct session_outcome o = session_outcome_ok();
        snprintf(o.operator_id, sizeof(o.operator_id), "%s", e->operator_id);
        o.tries = (int)slot;
        char op[OPERATOR_ID_MAX], card[CARD_ID_LEN + 1];
        snprintf(op, sizeof(op), "%s", e->operator_id);
        snprintf(card, sizeof(card), "%s", e->card_id);
        enrolment_clear(s);
        session_record_then_answer(s, call, &o, "enroll", op, card[0] ? card : NULL,
                                   agent_data("action", "enrolled", "modality", bio_modality_to_string(m),
                                              "slot", slot_s, "stages", stages_s, NULL));
}

static void on_finger_enrolled(void *userdata, const struct finger_event *ev)
{
        struct session *s = userdata;
        struct pending_enrolment *e = &s->enrolment;

        if (ev->kind == FINGER_EVENT_PROGRESS) {
                if (e->active && e->id == ev->id && s->ops->enroll_progress)
                        s->ops->enroll_progress(s->userdata, e->operator_id, ev->stage, ev->stages,
                                                ev->retry);
                return;
        }
        enrolled(s, BIO_MODALITY_FINGER, ev->id, ev->result, ev->print, ev->print_size, ev->stages);
}

static void on_vein_enrolled(void *userdata, const struct vein_event *ev)
{
        struct session *s = userdata;
        struct pending_enrolment *e = &s->enrolment;

        if (ev->kind == VEIN_EVENT_PROGRESS) {
                if (e->active && e->id == ev->id) {
                        e->stages = ev->stages;
                        if (s->ops->enroll_progress)
                                s->ops->enroll_progress(s->userdata, e->operator_id, ev->stage, ev->stages,
                                                        false);
                }
                return;
        }
        enrolled(s, BIO_MODALITY_VEIN, ev->id, ev->result, ev->template, ev->template_size, e->stages);
}

static void enroll_start(struct session *s, SessionCall *call, const char *sender, enum bio_modality m)
{
        struct session_outcome o;
        bool can_identify;
        int stages, r;

        /* A template is always bound to a card-verified identity: only in a card session. */
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
        if (!have_reader(s, m, &can_identify, &stages) ||
            !(m == BIO_MODALITY_VEIN ? !!s->ops->vein_enroll : !!s->ops->finger_enroll)) {
                o = session_outcome_refused(AUTH_BIO_UNAVAILABLE, "%s",
                                            auth_reason_to_string(AUTH_BIO_UNAVAILABLE));
                session_answer(s, call, &o);
                return;
        }
        uint64_t id = ++s->last_login_id;
        s->enrolment = (struct pending_enrolment){
                .active = true, .modality = m, .id = id, .session_gen = s->session_gen};
        snprintf(s->enrolment.operator_id, sizeof(s->enrolment.operator_id), "%s", s->operator_id);
        snprintf(s->enrolment.card_id, sizeof(s->enrolment.card_id), "%s", s->session_card);
        s->enrolment.sender = strdup(sender ?: "");
        if (!s->enrolment.sender)
                r = -ENOMEM;
        else if (m == BIO_MODALITY_VEIN)
                r = s->ops->vein_enroll(s->userdata, id, s->operator_id, on_vein_enrolled, s);
        else
                r = s->ops->finger_enroll(s->userdata, id, s->operator_id, on_finger_enrolled, s);
        if (r < 0) {
                s->enrolment.id = 0;
                enrolment_clear(s);
                o = r == -EBUSY    ? session_outcome_refused(AUTH_BUSY, "the reader is busy")
                    : r == -ENODEV ? session_outcome_refused(AUTH_BIO_UNAVAILABLE, "%s",
                                                             auth_reason_to_string(AUTH_BIO_UNAVAILABLE))
                                   : session_outcome_failed(r);
                session_answer(s, call, &o);
                return;
        }
        s->enrolment.answer = call;
        /* Stage 0: what to do first (a vein reader tells its number of captures with the first). */
        if (s->ops->enroll_progress)
                s->ops->enroll_progress(s->userdata, s->operator_id, 0, stages, false);
}

void session_enroll_finger(struct session *s, SessionCall *call, const char *sender)
{
        enroll_start(s, call, sender, BIO_MODALITY_FINGER);
}

void session_enroll_vein(struct session *s, SessionCall *call, const char *sender)
{
        enroll_start(s, call, sender, BIO_MODALITY_VEIN);
}

/* ---- deletion ---- */

/* Deletes operator_id's templates of m and records it; call (may be NULL) hears back after the
 * record. */
static void delete_templates(struct session *s, SessionCall *call, const char *operator_id,
                             enum bio_modality m, const char *action)
{
        struct session_outcome o;
        unsigned n = 0;
        char count[24];
        int r;

        r = print_store_delete(s->config->prints_directory, m, operator_id, &n);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot delete the %s templates of %s in %s: %s",
                          bio_modality_to_string(m), operator_id, s->config->prints_directory, strerror(-r));
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
                agent_data("action", action, "modality", bio_modality_to_string(m), "prints", count, NULL));
}

void session_delete_prints(struct session *s, SessionCall *call, const char *operator_id)
{
        delete_templates(s, call, operator_id, BIO_MODALITY_FINGER, "deleted");
}

void session_delete_templates(struct session *s, SessionCall *call, const char *operator_id,
                              enum bio_modality m)
{
        delete_templates(s, call, operator_id, m, "deleted");
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
                        for (unsigned m = 0; m < _BIO_MODALITY_MAX; m++)
                                delete_templates(s, NULL, ids[i], (enum bio_modality)m, "retired-deleted");
                free(ids[i]);
        }
        free(ids);
}
