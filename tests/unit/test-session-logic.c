/* The session logic (agent/mamorid/session-logic.c) driven through fake ops: no D-Bus, no PC/SC, no log;
 * the card thread is faked by driving the login engine on the software PIV card (piv-sim.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mamori/auth-reasons.h"
#include "mamori/card-login.h"
#include "mamori/cert-check.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "piv-sim.h"
#include "session-internal.h"
#include "session-logic.h"

#define CARD_A   card_a /* OP0001: the id of the software card's certificate, set up per test */
#define READER   "Virtual Reader 0"
#define SENDER   ":1.42"
#define RECS_MAX 64
#define CALLS    8

/* ---- a policy with one operator and one card at this terminal's office ---- */

static char *chuo[] = {"chuo"};
static PolicyOperator operators[] = {
        {.id = "OP0001", .offices = chuo, .n_offices = 1, .status = POLICY_STATUS_ACTIVE, .pin_changed = -1},
        {.id = "OP0002", .offices = chuo, .n_offices = 1, .status = POLICY_STATUS_ACTIVE, .pin_changed = -1},
        {.id = "OP0003", .offices = chuo, .n_offices = 1, .status = POLICY_STATUS_ACTIVE, .pin_changed = -1},
};
/* The group card tests turn card A into a card of this group (members OP0001, OP0002; not OP0003). */
static char *members[] = {"OP0001", "OP0002"};
static PolicyGroup groups[] = {
        {.id = "G-chuo", .offices = chuo, .n_offices = 1, .members = members, .n_members = 2}};
static char card_a[CARD_ID_LEN + 1];
static PolicyCard cards[] = {{"", POLICY_CARD_INDIVIDUAL, "OP0001", NULL, POLICY_STATUS_ACTIVE}};
static PolicyOffice offices[] = {{.id = "chuo"}};
static PolicyTerminal terminals[] = {{.id = "T-0001", .office = "chuo"}};
static Policy policy = {
        .serial = 7,
        .issued = 0,
        .expires = INT64_MAX / 2,
        .offices = offices,
        .n_offices = ELEMENTSOF(offices),
        .terminals = terminals,
        .n_terminals = ELEMENTSOF(terminals),
        .operators = operators,
        .n_operators = ELEMENTSOF(operators),
        .cards = cards,
        .n_cards = ELEMENTSOF(cards),
        .groups = groups,
        .n_groups = ELEMENTSOF(groups),
};

/* ---- the fakes: records wait in a queue until the test commits them ---- */

struct rec {
        char ev[32];
        char reason[32];
        char tries[8];
        char method[32], session[16], repeats[16];
        char op[OPERATOR_ID_MAX];
        bool has_card;
        bool latency; /* has latency_us */
        oplog_done_fn done;
        void *userdata;
        bool committed;
};

struct answer {
        bool answered;
        struct session_outcome o;
        size_t committed_before; /* records committed when it was answered */
};

struct fake {
        struct session s;
        struct agent_config config;
        sd_event *event;
        struct rec recs[RECS_MAX];
        size_t n_recs, n_committed;
        bool log_writable;
        card_job_done_fn job_done;
        void *job_userdata;
        enum card_job_kind job_kind;
        struct sim card;  /* the software card behind the fake card thread */
        CardLogin *login; /* the login the fake card thread holds */
        uint64_t login_id;
        char pin[17];
        unsigned locks, changes;
        bool lock_answers;         /* the fake logind answers LockSession (a `lock` record follows) */
        SessionCall *calls[CALLS]; /* the logic never looks inside a call: any distinct pointer does */
        /* The fake password thread: one check or change waits here until the test says. */
        session_password_done_fn pw_done;
        void *pw_userdata;
        uint64_t pw_id;
        char pw_operator[OPERATOR_ID_MAX], pw_password[64];
        /* The fake vein thread: one job waits here until the test says; cancels are counted. */
        bool vein_present, vein_can_identify;
        vein_event_fn vein_done;
        void *vein_userdata;
        uint64_t vein_id, vein_cancelled;
        size_t vein_allowed;
        struct answer answers[CALLS];
        /* What the session last asked to keep across a restart (password-failures.h). */
        struct password_failure_file saved;
        unsigned saves;
        /* How far the password failure counts' clock is ahead of CLOCK_MONOTONIC: an hour passes at once. */
        uint64_t clock_ahead_usec;
};

static int fake_record(void *userdata, const char *ev, const char *op, const char *card, JsonValue *data,
                       oplog_done_fn done, void *done_userdata)
{
        struct fake *f = userdata;
        struct rec *r = &f->recs[f->n_recs++];

        assert_true(f->n_recs <= RECS_MAX);
        assert_true(!card || card[0]); /* no card is NULL: the log refuses an empty one */
        *r = (struct rec){.done = done, .userdata = done_userdata, .has_card = card != NULL};
        snprintf(r->ev, sizeof(r->ev), "%s", ev);
        snprintf(r->op, sizeof(r->op), "%s", op ?: "");
        for (size_t i = 0; data && data->type == JSON_OBJECT && i < data->object.n; i++) {
                const JsonMember *m = &data->object.members[i];
                if (streq(m->key, "reason") && m->value->type == JSON_STRING)
                        snprintf(r->reason, sizeof(r->reason), "%s", m->value->string.data);
                if (streq(m->key, "tries") && m->value->type == JSON_INTEGER)
                        snprintf(r->tries, sizeof(r->tries), "%lld", (long long)m->value->integer);
                if (streq(m->key, "repeats") && m->value->type == JSON_INTEGER)
                        snprintf(r->repeats, sizeof(r->repeats), "%lld", (long long)m->value->integer);
                if (streq(m->key, "method") && m->value->type == JSON_STRING)
                        snprintf(r->method, sizeof(r->method), "%s", m->value->string.data);
                if (streq(m->key, "session") && m->value->type == JSON_STRING)
                        snprintf(r->session, sizeof(r->session), "%s", m->value->string.data);
                if (streq(m->key, "latency_us"))
                        r->latency = true;
        }
        json_value_free(data);
        return 0;
}

static bool fake_log_writable(void *userdata)
{
        return ((struct fake *)userdata)->log_writable;
}

static const Policy *fake_policy(void *userdata)
{
        return &policy;
}

static int fake_check_cert(void *userdata, const uint8_t *der, size_t der_len)
{
        return CERT_CHECK_OK;
}

static int fake_login_start(void *userdata, const char *reader, CardLogin *l, uint64_t id,
                            card_job_done_fn done, void *done_userdata)
{
        struct fake *f = userdata;

        if (f->job_done)
                return -EBUSY;
        assert_string_equal(reader, READER);
        f->job_kind = CARD_JOB_LOGIN;
        f->job_done = done;
        f->job_userdata = done_userdata;
        f->login = l;
        f->login_id = id;
        f->pin[0] = '\0';
        return 0;
}

static int fake_login_pin(void *userdata, uint64_t id, const char *pin)
{
        struct fake *f = userdata;

        if (!f->login || id != f->login_id || f->pin[0])
                return -ESRCH;
        snprintf(f->pin, sizeof(f->pin), "%s", pin);
        return 0;
}

static void fake_login_cancel(void *userdata, uint64_t id)
{
        struct fake *f = userdata;

        /* As the card thread: a login not past its PIN ends (its late -ECANCELED is ignored). */
        if (f->login && id == f->login_id && !f->pin[0]) {
                f->login = card_login_free(f->login);
                f->job_done = NULL;
        }
}

static int fake_change_pin(void *userdata, const char *reader, const char *old_pin, const char *new_pin,
                           card_job_done_fn done, void *done_userdata)
{
        struct fake *f = userdata;

        if (f->job_done)
                return -EBUSY;
        assert_string_equal(reader, READER);
        f->job_kind = CARD_JOB_CHANGE_PIN;
        f->job_done = done;
        f->job_userdata = done_userdata;
        return 0;
}

static int fake_password_check(void *userdata, uint64_t id, const char *operator_id, const char *password,
                               session_password_done_fn done, void *done_userdata)
{
        struct fake *f = userdata;

        if (f->pw_done)
                return -EBUSY;
        f->pw_done = done;
        f->pw_userdata = done_userdata;
        f->pw_id = id;
        snprintf(f->pw_operator, sizeof(f->pw_operator), "%s", operator_id);
        snprintf(f->pw_password, sizeof(f->pw_password), "%s", password);
        return 0;
}

static int fake_password_set(void *userdata, uint64_t id, const char *operator_id, const char *old_password,
                             const char *new_password, session_password_done_fn done, void *done_userdata)
{
        return fake_password_check(userdata, id, operator_id, new_password, done, done_userdata);
}

static int fake_password_remove(void *userdata, uint64_t id, const char *operator_id,
                                session_password_done_fn done, void *done_userdata)
{
        return fake_password_check(userdata, id, operator_id, "", done, done_userdata);
}

/* The fake password thread answers the check it holds. */
static void password_says(struct fake *f, int result)
{
        session_password_done_fn done = f->pw_done;

        assert_non_null(done);
        f->pw_done = NULL;
        done(f->pw_userdata, f->pw_id, result);
}

static int fake_lock_screen(void *userdata, uint64_t trigger_mono_usec, logind_lock_fn cb, void *cb_userdata)
{
        struct fake *f = userdata;
        struct logind_lock_result r = {.fallback_method = "none"};

        f->locks++;
        if (f->lock_answers) {
                snprintf(r.session_id, sizeof(r.session_id), "c1");
                r.latency_usec = 1234;
                cb(cb_userdata, &r, false); /* LockSession answered */
        }
        cb(cb_userdata, &r, true); /* the desktop locked at once */
        return 0;
}

static int fake_watch_idle(void *userdata)
{
        return 0;
}

static size_t call_index(struct fake *f, SessionCall *call)
{
        for (size_t i = 0; i < CALLS; i++)
                if (f->calls[i] == call)
                        return i;
        fail_msg("answered a call that was never made");
        return 0;
}

static void fake_answer(void *userdata, SessionCall *call, const struct session_outcome *o)
{
        struct fake *f = userdata;
        struct answer *a = &f->answers[call_index(f, call)];

        assert_false(a->answered); /* exactly once */
        *a = (struct answer){.answered = true, .o = *o, .committed_before = f->n_committed};
}

static void fake_changed(void *userdata, const char *state_reason)
{
        ((struct fake *)userdata)->changes++;
}

static void fake_vein_device(void *userdata, struct vein_device_info *ret)
{
        struct fake *f = userdata;

        *ret = (struct vein_device_info){.present = f->vein_present, .can_identify = f->vein_can_identify};
}

static int fake_vein_match(void *userdata, uint64_t id, const char *dir, char *const *allowed, size_t n,
                           vein_event_fn done, void *done_userdata)
{
        struct fake *f = userdata;

        if (f->vein_done)
                return -EBUSY;
        f->vein_done = done;
        f->vein_userdata = done_userdata;
        f->vein_id = id;
        f->vein_allowed = n;
        return 0;
}

static void fake_vein_cancel(void *userdata, uint64_t id)
{
        struct fake *f = userdata;

        /* As the vein thread: the job ends; its late -ECANCELED is for nobody any more. */
        if (f->vein_done && id == f->vein_id) {
                f->vein_cancelled = id;
                f->vein_done = NULL;
        }
}

/* The fake vein thread ends the job it holds: result, and whose template matched ("" none). */
static void vein_says(struct fake *f, int result, const char *matched)
{
        struct vein_event ev = {.id = f->vein_id, .kind = VEIN_EVENT_DONE, .result = result};
        vein_event_fn done = f->vein_done;

        assert_non_null(done);
        f->vein_done = NULL;
        ev.matched = matched && matched[0];
        snprintf(ev.operator_id, sizeof(ev.operator_id), "%s", matched ?: "");
        done(f->vein_userdata, &ev);
}

static void fake_password_failures_save(void *userdata, const struct password_failure_file *file)
{
        struct fake *f = userdata;
        f->saved = *file;
        f->saves++;
}

static uint64_t fake_password_clock(void *userdata)
{
        struct fake *f = userdata;
        return now_mono_usec() + f->clock_ahead_usec;
}

static const struct session_ops fake_ops = {
        .record = fake_record,
        .log_writable = fake_log_writable,
        .policy = fake_policy,
        .check_cert = fake_check_cert,
        .login_start = fake_login_start,
        .login_pin = fake_login_pin,
        .login_cancel = fake_login_cancel,
        .change_pin = fake_change_pin,
        .password_check = fake_password_check,
        .password_set = fake_password_set,
        .password_remove = fake_password_remove,
        .password_clock = fake_password_clock,
        .password_failures_save = fake_password_failures_save,
        .lock_screen = fake_lock_screen,
        .watch_idle = fake_watch_idle,
        .answer = fake_answer,
        .changed = fake_changed,
};

/* The same with a vein reader behind the plugin ABI. */
static const struct session_ops fake_vein_ops = {
        .record = fake_record,
        .log_writable = fake_log_writable,
        .policy = fake_policy,
        .check_cert = fake_check_cert,
        .login_start = fake_login_start,
        .login_pin = fake_login_pin,
        .login_cancel = fake_login_cancel,
        .change_pin = fake_change_pin,
        .password_check = fake_password_check,
        .password_clock = fake_password_clock,
        .password_failures_save = fake_password_failures_save,
        .vein_device = fake_vein_device,
        .vein_match = fake_vein_match,
        .vein_cancel = fake_vein_cancel,
        .lock_screen = fake_lock_screen,
        .watch_idle = fake_watch_idle,
        .answer = fake_answer,
        .changed = fake_changed,
};

/* Commits (or fails) every queued record, in order, as the log thread would. */
static void commit_all(struct fake *f, int result)
{
        while (f->n_committed < f->n_recs) {
                struct rec *r = &f->recs[f->n_committed++];
                r->committed = true;
                if (r->done)
                        r->done(result, f->n_committed, r->userdata);
                else if (result < 0)
                        session_on_log_health(&f->s, result); /* what event.c does */
        }
}

static const struct rec *find_rec(struct fake *f, const char *ev)
{
        for (size_t i = 0; i < f->n_recs; i++)
                if (streq(f->recs[i].ev, ev))
                        return &f->recs[i];
        return NULL;
}

static size_t rec_index(struct fake *f, const char *ev)
{
        const struct rec *r = find_rec(f, ev);
        assert_non_null(r);
        return (size_t)(r - f->recs);
}

static int setup(void **state)
{
        struct fake *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        f->config = (struct agent_config){
                .terminal_id = "T-0001",
                .office = "chuo",
                .accounts = ACCOUNTS_SHARED,
                .idle_lock_usec = 600 * USEC_PER_SEC,
                .idle_source = IDLE_SOURCE_LOGIND,
                .card_left_usec = 30 * USEC_PER_SEC,
                .max_age_days = 90,
        };
        f->log_writable = true;
        for (size_t i = 0; i < CALLS; i++)
                f->calls[i] = (SessionCall *)&f->answers[i];
        sim_init(&f->card, "P-256");
        assert_int_equal(card_id_from_cert(f->card.der, f->card.der_len, card_a), 0);
        memcpy(cards[0].id, card_a, sizeof(card_a));
        session_init(&f->s, &fake_ops, f, &f->config, f->event);
        *state = f;
        return 0;
}

static int setup_vein(void **state)
{
        struct fake *f;

        setup(state);
        f = *state;
        f->vein_present = f->vein_can_identify = true;
        session_init(&f->s, &fake_vein_ops, f, &f->config, f->event);
        return 0;
}

static int teardown(void **state)
{
        struct fake *f = *state;

        session_done(&f->s);
        commit_all(f, 0);
        sd_event_unref(f->event);
        card_login_free(f->login);
        sim_done(&f->card);
        free(f);
        return 0;
}

static void insert_card(struct fake *f)
{
        struct reader_event ev = {.type = READER_EVENT_INSERTED, .pin_tries = 3, .der_len = f->card.der_len};

        snprintf(ev.reader, sizeof(ev.reader), READER);
        snprintf(ev.card_id, sizeof(ev.card_id), "%s", CARD_A);
        ev.der = malloc(ev.der_len); /* the session takes it */
        assert_non_null(ev.der);
        memcpy(ev.der, f->card.der, ev.der_len);
        session_on_reader_event(&f->s, &ev);
}

static void pull_card(struct fake *f)
{
        struct reader_event ev = {.type = READER_EVENT_REMOVED};

        snprintf(ev.reader, sizeof(ev.reader), READER);
        snprintf(ev.card_id, sizeof(ev.card_id), "%s", CARD_A);
        session_on_reader_event(&f->s, &ev);
}

/* Card in, StartLogin (call 0) granted, AnswerPin (call 1) with the card job running. */
static void start_and_answer(struct fake *f)
{
        insert_card(f);
        commit_all(f, 0);
        session_start_login(&f->s, f->calls[0], SENDER, "");
        assert_true(f->answers[0].answered);
        assert_int_equal(f->answers[0].o.reason, AUTH_ALLOW);
        assert_string_equal(f->answers[0].o.card_id, CARD_A);
        assert_int_equal(f->answers[0].o.tries, 3);
        assert_int_equal(f->s.state, SESSION_AUTHENTICATING);
        assert_true(session_login_started_by(&f->s, SENDER));
        assert_false(session_login_started_by(&f->s, ":1.43"));

        session_answer_pin(&f->s, f->calls[1], "123456");
        assert_false(f->answers[1].answered);
        assert_non_null(f->job_done);
        assert_int_equal(f->job_kind, CARD_JOB_LOGIN);
}

/* The fake card thread finishes the login: the engine's card steps on the software card, set up
 * so that the card answers result (0, CARD_E_PIN_WRONG with tries_left, CARD_E_PIN_BLOCKED,
 * CARD_E_SIG_INVALID). */
static void card_says(struct fake *f, int result, int tries_left)
{
        struct card_transport t = {.transmit = sim_transmit, .userdata = &f->card};
        card_job_done_fn done = f->job_done;
        CardLogin *l = f->login;
        int r;

        assert_non_null(l);
        assert_true(f->pin[0]);
        f->card.tries = f->card.max_tries = 3;
        f->card.corrupt_sig = result == CARD_E_SIG_INVALID;
        assert_true(strlen(f->pin) < sizeof(f->card.pin));
        memcpy(f->card.pin, f->pin, strlen(f->pin) + 1);
        if (result == CARD_E_PIN_WRONG) {
                f->card.tries = tries_left + 1;
                snprintf(f->card.pin, sizeof(f->card.pin), "%s",
                         streq(f->pin, "000000") ? "111111" : "000000");
        } else if (result == CARD_E_PIN_BLOCKED)
                f->card.tries = 0;
        assert_int_equal(card_login_prepare(l, &t, NULL), 0);
        r = card_login_verify(l, f->pin);
        assert_int_equal(r, result);
        card_login_detach(l);

        const struct card_login_info *info = card_login_info(l);
        struct card_job_result res = {.id = f->login_id,
                                      .result = r,
                                      .tries_left = r == CARD_E_PIN_WRONG ? info->tries_left : -1,
                                      .exchanges = info->exchanges,
                                      .login = l};
        f->job_done = NULL;
        f->login = NULL;
        done(f->job_userdata, &res);
        card_login_free(l);
}

static void test_login_success_answers_after_commit(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, 0, -1);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_string_equal(f->s.operator_id, "OP0001");
        /* Decided, but nothing is on record yet: no answer. */
        assert_false(f->answers[1].answered);
        size_t unlock = rec_index(f, "unlock");
        assert_true(rec_index(f, "auth.ok") < rec_index(f, "session.start"));
        assert_true(rec_index(f, "session.start") < unlock);

        commit_all(f, 0);
        assert_true(f->answers[1].answered);
        assert_int_equal(f->answers[1].o.error, 0);
        assert_int_equal(f->answers[1].o.reason, AUTH_ALLOW);
        assert_string_equal(f->answers[1].o.operator_id, "OP0001");
        assert_true(f->answers[1].committed_before > unlock); /* after the unlock record is durable */
        assert_true(session_holds_inserted_card(&f->s));
}

static void test_refusal_recorded_then_answered(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, CARD_E_PIN_WRONG, 2);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_false(f->answers[1].answered);
        const struct rec *fail = find_rec(f, "auth.fail");
        assert_non_null(fail);
        assert_string_equal(fail->reason, auth_reason_to_string(AUTH_PIN_WRONG));
        assert_string_equal(fail->tries, "2");
        assert_null(find_rec(f, "auth.ok"));

        commit_all(f, 0);
        assert_true(f->answers[1].answered);
        assert_true(f->answers[1].committed_before > rec_index(f, "auth.fail"));
        assert_int_equal(f->answers[1].o.reason, AUTH_PIN_WRONG);
        assert_string_equal(auth_reason_to_dbus_error(f->answers[1].o.reason), MAMORI_ERROR_PIN_WRONG);
        assert_string_equal(f->answers[1].o.message, "pin-wrong tries=2");
        /* The card said how many tries are left: the next StartLogin tells the prompt. */
        assert_int_equal(f->s.card.pin_tries, 2);
}

/* A PIN of the wrong shape: recorded as pin-format, answered after commit, no card job, no try;
 * the login keeps waiting and the right PIN then logs in. */
static void test_pin_format_keeps_login_pending(void **state)
{
        static const char *const bad[] = {"", "12a45", "12345", "123456789"};
        struct fake *f = *state;

        insert_card(f);
        commit_all(f, 0);
        session_start_login(&f->s, f->calls[0], SENDER, "");
        assert_int_equal(f->answers[0].o.reason, AUTH_ALLOW);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                size_t n = f->n_recs;

                session_answer_pin(&f->s, f->calls[1 + i], bad[i]);
                assert_false(f->pin[0]);                  /* nothing went to the card thread */
                assert_false(f->answers[1 + i].answered); /* not before the record is durable */
                assert_int_equal(f->n_recs, n + 1);
                assert_string_equal(f->recs[n].ev, "auth.fail");
                assert_string_equal(f->recs[n].reason, "pin-format");
                assert_string_equal(f->recs[n].tries, "");
                commit_all(f, 0);
                assert_true(f->answers[1 + i].answered);
                assert_true(f->answers[1 + i].committed_before > n);
                assert_int_equal(f->answers[1 + i].o.reason, AUTH_PIN_FORMAT);
                assert_string_equal(auth_reason_to_dbus_error(f->answers[1 + i].o.reason),
                                    MAMORI_ERROR_PIN_FORMAT);
                assert_string_equal(f->answers[1 + i].o.message, "pin-format");
                assert_int_equal(f->s.state, SESSION_AUTHENTICATING);
                assert_true(session_login_started_by(&f->s, SENDER));
                assert_int_equal(f->s.card.pin_tries, 3); /* the countdown is untouched */
        }
        assert_null(find_rec(f, "pin.blocked"));

        session_answer_pin(&f->s, f->calls[5], "123456");
        assert_string_equal(f->pin, "123456");
        card_says(f, 0, -1);
        commit_all(f, 0);
        assert_true(f->answers[5].answered);
        assert_int_equal(f->answers[5].o.reason, AUTH_ALLOW);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
}

static void test_pull_during_commit_grants_nothing(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, 0, -1);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        /* The card leaves while auth.ok … unlock are still being written. */
        pull_card(f);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_false(f->answers[1].answered);
        const struct rec *end = find_rec(f, "session.end");
        assert_non_null(end);
        assert_string_equal(end->reason, "card-removed");
        assert_true(f->locks >= 1);

        commit_all(f, 0);
        assert_true(f->answers[1].answered);
        assert_int_not_equal(f->answers[1].o.reason, AUTH_ALLOW);
        assert_int_equal(f->answers[1].o.reason, AUTH_CARD_ERROR);
        assert_string_equal(f->answers[1].o.operator_id, "");
}

static void test_log_failure_during_commit_grants_nothing(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, 0, -1);
        commit_all(f, -ENOSPC);
        assert_true(f->answers[1].answered);
        assert_int_equal(f->answers[1].o.reason, AUTH_LOG_UNWRITABLE);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_non_null(find_rec(f, "session.end"));
}

static void test_lock_during_login(void **state)
{
        struct fake *f = *state;
        unsigned locks;

        start_and_answer(f);
        locks = f->locks;
        session_lock_call(&f->s, f->calls[2]);
        /* The PIN check in flight is answered as refused, the Lock at once (no session to end). */
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_true(f->answers[1].answered);
        assert_int_equal(f->answers[1].o.reason, AUTH_CANCELLED);
        assert_string_equal(f->answers[1].o.message, "cancelled: manual");
        assert_true(f->answers[2].answered);
        assert_int_equal(f->answers[2].o.reason, AUTH_ALLOW);
        assert_int_equal(f->locks, locks + 1);
        assert_false(session_login_started_by(&f->s, SENDER));

        /* The card finishes late: nothing is granted, nobody is answered twice. */
        card_says(f, 0, -1);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_null(find_rec(f, "auth.ok"));
        commit_all(f, 0);
}

/* CancelLogin while the PIN is being checked: the waiting AnswerPin hears Cancelled with words that
 * say to start again (not "card could not be read"), nothing is recorded as a failure. */
static void test_cancel_answers_the_waiting_call_cancelled(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        session_cancel_login(&f->s, f->calls[2]);
        assert_true(f->answers[2].answered);
        assert_int_equal(f->answers[2].o.reason, AUTH_ALLOW);
        assert_true(f->answers[1].answered);
        assert_int_equal(f->answers[1].o.reason, AUTH_CANCELLED);
        assert_string_equal(f->answers[1].o.message, "cancelled");
        assert_string_equal(auth_reason_to_dbus_error(f->answers[1].o.reason), MAMORI_ERROR_CANCELLED);
        assert_string_equal(auth_reason_to_words(f->answers[1].o.reason),
                            "The login was stopped before it finished — start it again");
        assert_null(find_rec(f, "auth.fail"));
        assert_int_equal(f->s.state, SESSION_LOCKED);
        card_says(f, 0, -1); /* late: nothing granted */
        assert_null(find_rec(f, "auth.ok"));
        commit_all(f, 0);
}

/* Every trigger that aborts a login answers a reason of the table, named first in the message. */
static void test_every_abort_answers_a_reason(void **state)
{
        for (int t = 0; t < _SESSION_TRIGGER_MAX; t++) {
                struct session_transition tr;
                if (!session_transition(SESSION_AUTHENTICATING, t, &tr) ||
                    !(tr.actions & ACTION_ABORT_LOGIN))
                        continue;
                const char *why = t == TRIGGER_CARD_REMOVED ? "no-card" : session_trigger_to_string(t);
                struct session_outcome o = session_abort_outcome(why);
                const char *name = auth_reason_to_string(o.reason);

                assert_int_not_equal(o.reason, AUTH_ALLOW);
                assert_int_equal(auth_reason_from_string(name), o.reason);
                assert_non_null(auth_reason_to_words(o.reason));
                if (strncmp(o.message, name, strlen(name)) != 0)
                        fail_msg("trigger %s answers \"%s\", which does not start with its reason %s", why,
                                 o.message, name);
                /* Only a failing reader is the card's failure; the others have their own words. */
                if (o.reason == AUTH_CARD_ERROR && t != TRIGGER_READER_LOST)
                        fail_msg("trigger %s answers card-error", why);
        }
        assert_int_equal(session_abort_outcome("cancelled").reason, AUTH_CANCELLED);
        assert_int_equal(session_abort_outcome("agent-stop").reason, AUTH_CANCELLED);
        assert_int_equal(session_abort_outcome("emergency").reason, AUTH_EMERGENCY);
}

static void test_lock_answers_after_session_end(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, 0, -1);
        commit_all(f, 0);
        session_lock_call(&f->s, f->calls[2]);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_false(f->answers[2].answered);
        size_t end = rec_index(f, "session.end");
        assert_string_equal(f->recs[end].reason, "manual");
        commit_all(f, 0);
        assert_true(f->answers[2].answered);
        assert_int_equal(f->answers[2].o.reason, AUTH_ALLOW);
        assert_true(f->answers[2].committed_before > end);
}

static size_t count_recs(struct fake *f, const char *ev, const char *reason)
{
        size_t n = 0;
        for (size_t i = 0; i < f->n_recs; i++)
                n += streq(f->recs[i].ev, ev) && streq(f->recs[i].reason, reason);
        return n;
}

/* A card that said "blocked" is refused at the next StartLogin without a card job (no exchange),
 * recorded as auth.fail pin-blocked once more, but not as a second pin.blocked. */
static void test_blocked_card_refused_before_the_card(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, CARD_E_PIN_BLOCKED, -1);
        commit_all(f, 0);
        assert_int_equal(f->s.card.pin_tries, 0);
        size_t recs = f->n_recs;
        assert_int_equal(count_recs(f, "pin.blocked", ""), 1);

        session_start_login(&f->s, f->calls[2], SENDER, "");
        assert_null(f->job_done); /* the card thread was not asked */
        assert_null(f->login);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_false(f->answers[2].answered); /* answered once the refusal is durable */
        assert_int_equal(f->n_recs, recs + 1);
        assert_string_equal(f->recs[recs].ev, "auth.fail");
        assert_string_equal(f->recs[recs].reason, auth_reason_to_string(AUTH_PIN_BLOCKED));
        commit_all(f, 0);
        assert_true(f->answers[2].answered);
        assert_int_equal(f->answers[2].o.reason, AUTH_PIN_BLOCKED);
        assert_int_equal(count_recs(f, "pin.blocked", ""), 1);

        /* A card inserted blocked (the reader thread read its tries) is refused the same way. */
        pull_card(f);
        insert_card(f);
        f->s.card.pin_tries = 0;
        session_start_login(&f->s, f->calls[3], SENDER, "");
        assert_null(f->job_done);
        commit_all(f, 0);
        assert_int_equal(f->answers[3].o.reason, AUTH_PIN_BLOCKED);
}

/* §5: a desktop unlocked while mamorid is locked is locked again at once and recorded as `lock`
 * reason `bypass`; a desktop that keeps unlocking is locked every time, but recorded once per
 * interval, the rest counted in one summary record. */
static void test_bypass_relocks_and_records_bounded(void **state)
{
        struct fake *f = *state;
        uint64_t t0 = now_mono_usec() - 20 * USEC_PER_SEC; /* so that the summary is due at once */
        unsigned locks = f->locks;

        f->lock_answers = true;
        session_on_desktop_unlocked(&f->s, t0);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_int_equal(f->locks, locks + 1);
        assert_int_equal(count_recs(f, "lock", "bypass"), 1);
        const struct rec *r = find_rec(f, "lock");
        assert_string_equal(r->method, "LockSession");
        assert_string_equal(r->session, "c1");
        assert_true(r->latency);

        /* Unlocked 50 more times within a second: locked again each time, no more records yet. */
        for (unsigned i = 1; i <= 50; i++)
                session_on_desktop_unlocked(&f->s, t0 + i * 20000);
        assert_int_equal(f->locks, locks + 51);
        assert_int_equal(count_recs(f, "lock", "bypass"), 1);

        /* The interval ends: one record counts them. */
        assert_true(sd_event_run(f->event, 1000000) > 0);
        assert_int_equal(count_recs(f, "lock", "bypass"), 2);
        assert_string_equal(f->recs[f->n_recs - 1].repeats, "50");
        assert_string_equal(f->recs[f->n_recs - 1].ev, "lock");

        /* Later, a new burst starts with a full record again. */
        session_on_desktop_unlocked(&f->s, t0 + 10 * USEC_PER_SEC);
        assert_int_equal(f->locks, locks + 52);
        assert_int_equal(count_recs(f, "lock", "bypass"), 3);
        assert_string_equal(f->recs[f->n_recs - 1].repeats, "");
        commit_all(f, 0);
}

/* The desktop unlocking after mamorid went active is the login's own unlock, never a bypass; an
 * unlock while the PIN is being checked is one (the login is refused). */
static void test_unlock_after_login_is_no_bypass(void **state)
{
        struct fake *f = *state;
        unsigned locks;

        f->lock_answers = true;
        start_and_answer(f);
        card_says(f, 0, -1);
        commit_all(f, 0);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        locks = f->locks;
        session_on_desktop_unlocked(&f->s, now_mono_usec());
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_int_equal(f->locks, locks);
        assert_int_equal(count_recs(f, "lock", "bypass"), 0);
        assert_null(find_rec(f, "session.end"));

        /* Lock, then a second login: an unlock before its PIN is decided is a bypass. */
        session_lock(&f->s, TRIGGER_MANUAL_LOCK, now_mono_usec());
        commit_all(f, 0);
        pull_card(f);
        for (size_t i = 0; i < CALLS; i++)
                f->answers[i] = (struct answer){0};
        start_and_answer(f);
        locks = f->locks;
        session_on_desktop_unlocked(&f->s, now_mono_usec());
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_int_equal(f->locks, locks + 1);
        assert_true(f->answers[1].answered);
        assert_int_not_equal(f->answers[1].o.reason, AUTH_ALLOW);
        assert_int_equal(count_recs(f, "lock", "bypass"), 1);
        card_says(f, 0, -1); /* the card finishes late: nothing granted */
        assert_int_equal(f->s.state, SESSION_LOCKED);
        commit_all(f, 0);
}

static void test_calls_refused_by_state(void **state)
{
        struct fake *f = *state;

        /* No card: the refusal is recorded first, then answered. */
        session_start_login(&f->s, f->calls[0], SENDER, "");
        assert_false(f->answers[0].answered);
        commit_all(f, 0);
        assert_int_equal(f->answers[0].o.reason, AUTH_NO_CARD);

        session_answer_pin(&f->s, f->calls[1], "1234");
        assert_int_equal(f->answers[1].o.reason, AUTH_NOT_PENDING);
        session_record_operation(&f->s, f->calls[2], NULL);
        assert_int_equal(f->answers[2].o.reason, AUTH_NOT_ACTIVE);

        /* A second StartLogin while one is running. */
        insert_card(f);
        session_start_login(&f->s, f->calls[3], SENDER, "");
        assert_int_equal(f->answers[3].o.reason, AUTH_ALLOW);
        session_start_login(&f->s, f->calls[4], ":1.43", "");
        assert_int_equal(f->answers[4].o.reason, AUTH_BUSY);
        session_answer_pin(&f->s, f->calls[5], "12345678901234567");
        assert_int_equal(f->answers[5].o.reason, AUTH_INVALID_ARGUMENT);

        /* The client went away: the login is cancelled, nobody to answer. */
        session_cancel_login(&f->s, NULL);
        assert_int_equal(f->s.state, SESSION_LOCKED);

        f->log_writable = false;
        session_start_login(&f->s, f->calls[6], SENDER, "");
        assert_int_equal(f->answers[6].o.reason, AUTH_LOG_UNWRITABLE);
}

/* ---- group cards and the password step (session-password.c) ---- */

static int setup_group(void **state)
{
        setup(state);
        cards[0].kind = POLICY_CARD_GROUP;
        cards[0].operator= NULL;
        cards[0].group = "G-chuo";
        return 0;
}

static int teardown_group(void **state)
{
        cards[0].kind = POLICY_CARD_INDIVIDUAL;
        cards[0].operator= "OP0001";
        cards[0].group = NULL;
        return teardown(state);
}

/* A group card's PIN verified: answered at once with no operator, nothing granted or recorded, and
 * the login waits for a member's password. */
static void group_card_opens(struct fake *f)
{
        start_and_answer(f);
        size_t before = f->n_recs;
        card_says(f, 0, -1);
        assert_true(f->answers[1].answered);
        assert_int_equal(f->answers[1].o.reason, AUTH_ALLOW);
        assert_string_equal(f->answers[1].o.operator_id, "");
        assert_int_equal(f->s.state, SESSION_AUTHENTICATING);
        assert_string_equal(session_step(&f->s), "password");
        assert_int_equal(f->n_recs, before);
        /* The PIN step is over. */
        session_answer_pin(&f->s, f->calls[7], "123456");
        assert_int_equal(f->answers[7].o.reason, AUTH_NOT_PENDING);
        f->answers[7] = (struct answer){0};
}

static void test_group_card_member_password_grants_the_member(void **state)
{
        struct fake *f = *state;

        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "kumo-no-ue");
        assert_string_equal(f->pw_operator, "OP0002");
        assert_string_equal(f->pw_password, "kumo-no-ue");
        /* One check at a time. */
        session_answer_password(&f->s, f->calls[3], "OP0002", "again");
        assert_int_equal(f->answers[3].o.reason, AUTH_BUSY);
        password_says(f, 0);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_string_equal(f->s.operator_id, "OP0002");
        assert_string_equal(f->s.method, "group-card+password");
        assert_string_equal(f->s.session_card, CARD_A);
        const struct rec *ok = find_rec(f, "auth.ok");
        assert_non_null(ok);
        assert_string_equal(ok->method, "group-card+password");
        assert_false(f->answers[2].answered); /* after the records */
        commit_all(f, 0);
        assert_int_equal(f->answers[2].o.reason, AUTH_ALLOW);
        assert_string_equal(f->answers[2].o.operator_id, "OP0002");
        assert_true(session_holds_inserted_card(&f->s));
}

static void test_group_card_non_member_refused(void **state)
{
        struct fake *f = *state;

        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0003", "kumo-no-ue");
        assert_null(f->pw_done); /* no password is checked for a non-member */
        const struct rec *fail = find_rec(f, "auth.fail");
        assert_non_null(fail);
        assert_string_equal(fail->reason, "not-group-member");
        assert_string_equal(fail->method, "group-card+password");
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_false(f->answers[2].answered);
        commit_all(f, 0);
        assert_int_equal(f->answers[2].o.reason, AUTH_NOT_GROUP_MEMBER);
        assert_string_equal(auth_reason_to_dbus_error(f->answers[2].o.reason),
                            MAMORI_ERROR_NOT_GROUP_MEMBER);
}

static void run_until_answered(struct fake *f, size_t i, uint64_t max_usec)
{
        uint64_t end = now_mono_usec() + max_usec;

        while (!f->answers[i].answered && now_mono_usec() < end)
                assert_true(sd_event_run(f->event, 100 * 1000) >= 0);
        assert_true(f->answers[i].answered);
}

static void test_wrong_password_waits_doubling_and_pull_ends_it(void **state)
{
        struct fake *f = *state;

        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "wrong");
        uint64_t t0 = now_mono_usec();
        password_says(f, -EACCES);
        const struct rec *fail = find_rec(f, "auth.fail");
        assert_non_null(fail);
        assert_string_equal(fail->reason, "password-wrong");
        uint64_t delay = session_password_delay_usec(&f->s, "OP0002");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC);
        commit_all(f, 0);
        assert_false(f->answers[2].answered); /* recorded, but the delay has not passed */
        run_until_answered(f, 2, 3 * USEC_PER_SEC);
        assert_true(now_mono_usec() - t0 >= USEC_PER_SEC);
        assert_int_equal(f->answers[2].o.reason, AUTH_PASSWORD_WRONG);
        assert_string_equal(f->answers[2].o.message, "password-wrong delay=1");
        /* The login still waits for the password. */
        assert_int_equal(f->s.state, SESSION_AUTHENTICATING);
        assert_string_equal(session_step(&f->s), "password");

        /* The second failure doubles the wait; a pull answers the held call at once. */
        session_answer_password(&f->s, f->calls[3], "OP0002", "wrong again");
        password_says(f, -EACCES);
        delay = session_password_delay_usec(&f->s, "OP0002");
        assert_true(delay > 1900 * 1000 && delay <= 2 * USEC_PER_SEC);
        commit_all(f, 0);
        assert_false(f->answers[3].answered);
        pull_card(f);
        assert_true(f->answers[3].answered);
        assert_int_equal(f->answers[3].o.reason, AUTH_NO_CARD);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        /* The count outlives the login: the operator's next answer still waits. */
        assert_true(session_password_delay_usec(&f->s, "OP0002") > 0);
        assert_int_equal(session_password_delay_usec(&f->s, "OP0001"), 0);
}

static const struct password_failure_entry *saved_entry(struct fake *f, const char *operator_id)
{
        for (size_t i = 0; i < f->saved.n; i++)
                if (streq(f->saved.entries[i].operator_id, operator_id))
                        return &f->saved.entries[i];
        return NULL;
}

/* The event loop finished (as at mamorid's stop): sd-event refuses every new source (-ESTALE), so a held
 * password answer gets no timer — the real library failing, as it does out of memory. */
static void finish_event_loop(struct fake *f)
{
        assert_int_equal(sd_event_exit(f->event, 0), 0);
        assert_true(sd_event_run(f->event, 0) >= 0);
        assert_int_equal(sd_event_get_state(f->event), SD_EVENT_FINISHED);
}

/* A wrong password whose answer cannot be held for its delay is not refused early (it was, once the
 * failure was on record, without the delay): the login is cancelled at once, the failure still
 * recorded and counted, so the operator starts again and the next answer waits out the delay. */
static void test_wrong_password_unheld_not_answered_early(void **state)
{
        struct fake *f = *state;

        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "wrong");
        finish_event_loop(f);
        password_says(f, -EACCES);
        const struct rec *fail = find_rec(f, "auth.fail");
        assert_non_null(fail);
        assert_string_equal(fail->reason, "password-wrong");
        assert_true(f->answers[2].answered);
        assert_int_equal(f->answers[2].o.reason, AUTH_CANCELLED);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        commit_all(f, 0);
        assert_int_equal(f->answers[2].o.reason, AUTH_CANCELLED); /* not a refusal without the delay */
        uint64_t delay = session_password_delay_usec(&f->s, "OP0002");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC);
        assert_int_equal(saved_entry(f, "OP0002")->count, 1);
}

/* A right password given while the operator's delay still runs, its answer unable to be held: not
 * granted before the delay (it was, at once), the login cancelled as for a wrong one (the same answer,
 * so a guesser learns nothing), and the count kept, so the next login still waits. */
static void test_right_password_unheld_not_granted_early(void **state)
{
        struct fake *f = *state;

        session_password_failures_fail_closed(&f->s); /* every operator waits 32 s */
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "right");
        finish_event_loop(f);
        password_says(f, 0);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_null(find_rec(f, "auth.ok"));
        assert_true(f->answers[2].answered);
        assert_int_equal(f->answers[2].o.reason, AUTH_CANCELLED);
        commit_all(f, 0);
        assert_int_equal(f->answers[2].o.reason, AUTH_CANCELLED);
        assert_true(session_password_delay_usec(&f->s, "OP0002") > 31 * USEC_PER_SEC);
        assert_null(saved_entry(f, "OP0002")); /* not started again */
        assert_int_equal(f->saved.floor.count, 6);
}

/* mamorid restarting: a new session, with the failure counts the old one saved. */
static void restart_with_saved_counts(struct fake *f)
{
        session_done(&f->s);
        commit_all(f, 0);
        card_login_free(f->login);
        f->login = NULL;
        f->job_done = NULL;
        f->pw_done = NULL;
        memset(f->answers, 0, sizeof(f->answers));
        session_init(&f->s, &fake_ops, f, &f->config, f->event);
        assert_int_equal(session_password_delay_usec(&f->s, "OP0002"), 0); /* memory alone forgets */
        session_password_failures_restore(&f->s, &f->saved);
}

/* A wrong password is saved before its answer, in wall-clock time; after a restart the operator's
 * delay still runs and the next failure doubles it again (it started at 1 s before). */
static void test_failure_counts_survive_a_restart(void **state)
{
        struct fake *f = *state;

        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "wrong");
        int64_t t0 = now_realtime_usec();
        password_says(f, -EACCES);
        assert_int_equal(f->saves, 1);
        const struct password_failure_entry *e = saved_entry(f, "OP0002");
        assert_non_null(e);
        assert_int_equal(e->count, 1);
        assert_true(e->next_usec >= t0 + 900 * 1000 && e->next_usec <= t0 + 1100 * 1000);
        assert_true(e->last_usec >= t0 - 100 * 1000 && e->last_usec <= t0 + 100 * 1000);
        assert_int_equal(f->saved.floor.count, 0);
        commit_all(f, 0);
        run_until_answered(f, 2, 3 * USEC_PER_SEC);
        session_answer_password(&f->s, f->calls[3], "OP0002", "wrong again");
        password_says(f, -EACCES);
        assert_int_equal(saved_entry(f, "OP0002")->count, 2);
        commit_all(f, 0);

        restart_with_saved_counts(f);
        uint64_t delay = session_password_delay_usec(&f->s, "OP0002");
        assert_true(delay > 1500 * 1000 && delay <= 2 * USEC_PER_SEC);
        assert_int_equal(session_password_delay_usec(&f->s, "OP0001"), 0);

        /* The third failure, in the new run: 4 s, not the 1 s of a fresh count. */
        f->pin[0] = '\0';
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "still wrong");
        password_says(f, -EACCES);
        delay = session_password_delay_usec(&f->s, "OP0002");
        assert_true(delay > 3900 * 1000 && delay <= 4 * USEC_PER_SEC);
        assert_int_equal(saved_entry(f, "OP0002")->count, 3);
        commit_all(f, 0);
        pull_card(f);
}

/* A failure file that cannot be trusted: every operator is locked out (32 s), saved as a floor that
 * survives another restart; a right password after the wait clears only that operator. */
static void test_untrusted_failure_file_locks_out(void **state)
{
        struct fake *f = *state;

        session_password_failures_fail_closed(&f->s);
        assert_int_equal(f->saves, 1);
        assert_int_equal(f->saved.floor.count, 6);
        assert_int_equal(f->saved.n, 0);
        for (const char *op = "OP0001"; op; op = streq(op, "OP0001") ? "OP0003" : NULL) {
                uint64_t delay = session_password_delay_usec(&f->s, op);
                assert_true(delay > 31 * USEC_PER_SEC && delay <= 32 * USEC_PER_SEC);
        }
        /* Another restart keeps the lock-out (it is in the file now, not only in memory). */
        restart_with_saved_counts(f);
        assert_true(session_password_delay_usec(&f->s, "OP0003") > 31 * USEC_PER_SEC);

        /* Later: the lock-out's wait has passed, its count has not. */
        int64_t now = now_realtime_usec();
        f->saved.floor.last_usec = now - 40 * USEC_PER_SEC;
        f->saved.floor.next_usec = now - 8 * USEC_PER_SEC;
        restart_with_saved_counts(f);
        assert_int_equal(session_password_delay_usec(&f->s, "OP0002"), 0);
        f->pin[0] = '\0';
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "right");
        password_says(f, 0);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        /* OP0002 starts again at zero, and stays so after a restart; the others stay locked out. */
        const struct password_failure_entry *e = saved_entry(f, "OP0002");
        assert_non_null(e);
        assert_int_equal(e->count, 0);
        assert_int_equal(f->saved.floor.count, 6);
        commit_all(f, 0);
        pull_card(f);
        commit_all(f, 0);
        restart_with_saved_counts(f);
        f->pin[0] = '\0';
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0001", "wrong");
        password_says(f, -EACCES);
        uint64_t delay = session_password_delay_usec(&f->s, "OP0001");
        assert_true(delay > 31 * USEC_PER_SEC && delay <= 32 * USEC_PER_SEC); /* not 1 s */
        assert_int_equal(saved_entry(f, "OP0001")->count, 7);
        assert_int_equal(saved_entry(f, "OP0002")->count, 0);
        commit_all(f, 0);
        pull_card(f);
}

/* ResetPassword: refused off the record; the verifier goes through the password thread, the reset is
 * recorded (enroll, no card) before the answer and the operator's count starts again. */
static void test_reset_password(void **state)
{
        struct fake *f = *state;

        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "wrong");
        password_says(f, -EACCES);
        commit_all(f, 0);
        run_until_answered(f, 2, 3 * USEC_PER_SEC);
        pull_card(f);
        commit_all(f, 0);
        assert_true(saved_entry(f, "OP0002") != NULL);

        f->log_writable = false;
        session_reset_password(&f->s, f->calls[3], "OP0002", 1000);
        assert_true(f->answers[3].answered);
        assert_int_equal(f->answers[3].o.reason, AUTH_LOG_UNWRITABLE);
        assert_null(f->pw_done); /* nothing removed */
        f->log_writable = true;

        size_t n = f->n_recs;
        session_reset_password(&f->s, f->calls[4], "OP0002", 1000);
        assert_string_equal(f->pw_operator, "OP0002");
        password_says(f, 0);
        assert_int_equal(f->n_recs, n + 1);
        assert_string_equal(f->recs[n].ev, "enroll");
        assert_string_equal(f->recs[n].op, "OP0002");
        assert_false(f->recs[n].has_card);
        assert_false(f->answers[4].answered); /* after the record */
        commit_all(f, 0);
        assert_true(f->answers[4].answered);
        assert_int_equal(f->answers[4].o.reason, AUTH_ALLOW);
        assert_int_equal(session_password_delay_usec(&f->s, "OP0002"), 0);
        assert_null(saved_entry(f, "OP0002"));

        /* None set: said so, nothing recorded. */
        n = f->n_recs;
        session_reset_password(&f->s, f->calls[5], "OP0002", -1);
        password_says(f, -ENOENT);
        assert_int_equal(f->answers[5].o.reason, AUTH_PASSWORD_UNSET);
        assert_int_equal(f->n_recs, n);
}

/* The group card opens, OP0002's right password (call 2): a group-card+password session of OP0002. */
static void member_session(struct fake *f)
{
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "kumo-no-ue");
        password_says(f, 0);
        commit_all(f, 0);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_string_equal(f->s.method, "group-card+password");
}

/* A login of the group card in which operator_id's password is wrong; the card is pulled at once (which
 * answers the call held for the delay), ready for the next login. Returns the delay the failure set. */
static uint64_t password_fails(struct fake *f, const char *operator_id)
{
        f->pin[0] = '\0';
        memset(f->answers, 0, sizeof(f->answers));
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], operator_id, "wrong");
        password_says(f, -EACCES);
        uint64_t delay = session_password_delay_usec(&f->s, operator_id);
        commit_all(f, 0);
        assert_false(f->answers[2].answered); /* held for the delay */
        pull_card(f);
        commit_all(f, 0);
        assert_int_equal(f->answers[2].o.reason, AUTH_NO_CARD);
        return delay;
}

/* An hour without a failure starts a count again: OP0001 and OP0002 fail at t; at t+59 min OP0002's
 * count still holds (2 s), at t+61 min OP0001's is forgotten (1 s). The hour passes on the counts'
 * clock (session_ops.password_clock), however long this machine has been up. */
static void test_failure_count_forgotten_after_an_hour(void **state)
{
        struct fake *f = *state;
        uint64_t delay;

        delay = password_fails(f, "OP0001");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC);
        delay = password_fails(f, "OP0002");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC);

        f->clock_ahead_usec += 59 * 60 * USEC_PER_SEC;
        assert_int_equal(session_password_delay_usec(&f->s, "OP0002"), 0); /* the delay is long over */
        delay = password_fails(f, "OP0002");
        assert_true(delay > 1900 * 1000 && delay <= 2 * USEC_PER_SEC); /* still counted: the second */
        assert_int_equal(saved_entry(f, "OP0002")->count, 2);

        f->clock_ahead_usec += 2 * 60 * USEC_PER_SEC;
        delay = password_fails(f, "OP0001");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC); /* forgotten: a first again */
        assert_int_equal(saved_entry(f, "OP0001")->count, 1);
        assert_int_equal(saved_entry(f, "OP0002")->count, 2); /* its failure was 2 min ago */
}

/* The floor a failure file that could not be trusted left (count 6, 32 s) is forgotten the same way:
 * at t+59 min an operator without a slot still starts from it, at t+61 min from zero. */
static void test_untrusted_floor_forgotten_after_an_hour(void **state)
{
        struct fake *f = *state;
        uint64_t delay;

        session_password_failures_fail_closed(&f->s);
        assert_int_equal(f->saved.floor.count, 6);

        f->clock_ahead_usec += 59 * 60 * USEC_PER_SEC;
        delay = password_fails(f, "OP0002");
        assert_true(delay > 31 * USEC_PER_SEC && delay <= 32 * USEC_PER_SEC);
        assert_int_equal(saved_entry(f, "OP0002")->count, 7);
        assert_int_equal(f->saved.floor.count, 6);

        f->clock_ahead_usec += 2 * 60 * USEC_PER_SEC;
        delay = password_fails(f, "OP0001");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC);
        assert_int_equal(saved_entry(f, "OP0001")->count, 1);
        assert_int_equal(f->saved.floor.count, 0);
}

/* Counts saved two hours ago and read back by a restarted mamorid are forgotten too, an operator's and
 * the floor: the next failure waits 1 s, not the doubled or the longest delay. The counts' clock is
 * three hours on, so that two hours ago lies within it whenever this machine started. */
static void test_failure_counts_forgotten_after_a_restart(void **state)
{
        struct fake *f = *state;
        int64_t now = now_realtime_usec();

        f->clock_ahead_usec = 3 * 3600 * USEC_PER_SEC;
        f->saved = (struct password_failure_file){.floor = {.count = 6,
                                                            .last_usec = now - 7200 * USEC_PER_SEC,
                                                            .next_usec = now - 7168 * USEC_PER_SEC},
                                                  .n = 1,
                                                  .entries = {{.operator_id = "OP0002",
                                                               .count = 5,
                                                               .last_usec = now - 7200 * USEC_PER_SEC,
                                                               .next_usec = now - 7184 * USEC_PER_SEC}}};
        restart_with_saved_counts(f);
        group_card_opens(f);
        session_answer_password(&f->s, f->calls[2], "OP0002", "wrong");
        password_says(f, -EACCES);
        uint64_t delay = session_password_delay_usec(&f->s, "OP0002");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC); /* 1 s: not 32 s after 5 */
        assert_int_equal(saved_entry(f, "OP0002")->count, 1);
        commit_all(f, 0);
        run_until_answered(f, 2, 3 * USEC_PER_SEC);
        /* An operator without a slot of their own starts from the floor, which is forgotten too. */
        session_answer_password(&f->s, f->calls[3], "OP0001", "wrong");
        password_says(f, -EACCES);
        delay = session_password_delay_usec(&f->s, "OP0001");
        assert_true(delay > 900 * 1000 && delay <= USEC_PER_SEC);
        assert_int_equal(saved_entry(f, "OP0001")->count, 1);
        assert_int_equal(f->saved.floor.count, 0);
        commit_all(f, 0);
        pull_card(f);
}

/* A new password set in the session (ChangePassword) starts the operator's count again: the failure of a
 * wrong current password is forgotten, on disk too, and the next one waits 1 s, not 2 s. */
static void test_changed_password_starts_the_count_again(void **state)
{
        struct fake *f = *state;

        member_session(f);
        assert_null(saved_entry(f, "OP0002")); /* never failed: nothing on disk */

        session_change_password(&f->s, f->calls[3], "not the current one", "hoshi-zora 2027");
        password_says(f, -EACCES);
        commit_all(f, 0);
        assert_int_equal(f->answers[3].o.reason, AUTH_PASSWORD_WRONG);
        assert_int_equal(saved_entry(f, "OP0002")->count, 1);
        uint64_t end = now_mono_usec() + 3 * USEC_PER_SEC;
        while (session_password_delay_usec(&f->s, "OP0002") > 0 && now_mono_usec() < end)
                assert_true(sd_event_run(f->event, 100 * 1000) >= 0);

        unsigned saves = f->saves;
        session_change_password(&f->s, f->calls[4], "kumo-no-ue", "hoshi-zora 2027");
        assert_string_equal(f->pw_password, "hoshi-zora 2027");
        password_says(f, 0);
        commit_all(f, 0);
        assert_int_equal(f->answers[4].o.reason, AUTH_ALLOW);
        assert_int_equal(f->saves, saves + 1);
        assert_null(saved_entry(f, "OP0002"));
        session_change_password(&f->s, f->calls[5], "wrong again", "mizu-no-oto 2028");
        password_says(f, -EACCES);
        commit_all(f, 0);
        assert_string_equal(f->answers[5].o.message, "password-wrong delay=1");
        assert_int_equal(saved_entry(f, "OP0002")->count, 1);
        pull_card(f);
}

/* ResetPassword of operator_id (call i) is done and on record, and the active session stays. */
static void reset_leaves_the_session(struct fake *f, size_t i, const char *operator_id)
{
        session_reset_password(&f->s, f->calls[i], operator_id, 0);
        password_says(f, 0);
        commit_all(f, 0);
        assert_int_equal(f->answers[i].o.reason, AUTH_ALLOW);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_null(find_rec(f, "session.end"));
}

/* A reset ends the active session that was opened with that password, after the reset's record; a reset
 * of another operator's password leaves it. */
static void test_reset_password_ends_the_session_it_opened(void **state)
{
        struct fake *f = *state;

        member_session(f);

        reset_leaves_the_session(f, 3, "OP0001");

        size_t n = f->n_recs;
        unsigned locks = f->locks;
        session_reset_password(&f->s, f->calls[4], "OP0002", 0);
        password_says(f, 0);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_string_equal(f->recs[n].ev, "enroll");
        assert_string_equal(f->recs[n + 1].ev, "session.end");
        assert_string_equal(f->recs[n + 1].reason, "password-reset");
        assert_string_equal(f->recs[n + 1].op, "OP0002");
        assert_int_equal(f->locks, locks + 1);
        commit_all(f, 0);
        assert_int_equal(f->answers[4].o.reason, AUTH_ALLOW);
}

/* Every slot taken: a new operator's failure takes a slot with nothing to wait for, not the one of an
 * operator whose count is live (who would otherwise start again from zero). */
static void test_full_table_keeps_live_counts(void **state)
{
        struct fake *f = *state;
        uint64_t now;

        member_session(f);
        now = now_mono_usec();
        for (size_t i = 0; i < PASSWORD_FAILURES_MAX; i++) {
                struct password_failures *p = &f->s.password_failures[i];
                *p = (struct password_failures){.last_mono_usec = now - (60 * USEC_PER_SEC)};
                snprintf(p->operator_id, sizeof(p->operator_id), "OP9%03zu", i);
        }
        /* The live one's last failure is the oldest of all. */
        f->s.password_failures[7].count = 3;
        f->s.password_failures[7].next_mono_usec = now + (3600 * USEC_PER_SEC);
        f->s.password_failures[7].last_mono_usec = now - 10 * (60 * USEC_PER_SEC);

        session_change_password(&f->s, f->calls[3], "wrong", "mizu-no-oto 2028");
        password_says(f, -EACCES);
        commit_all(f, 0);
        assert_int_equal(f->answers[3].o.reason, AUTH_PASSWORD_WRONG);
        assert_string_equal(f->s.password_failures[7].operator_id, "OP9007");
        assert_int_equal(f->s.password_failures[7].count, 3);
        assert_true(session_password_delay_usec(&f->s, "OP9007") > 0);
        assert_true(session_password_delay_usec(&f->s, "OP0002") > 0);
}

/* A ChangePassword sent while a reset is queued is refused, not written back after the removal. */
static void test_change_refused_while_a_reset_is_pending(void **state)
{
        struct fake *f = *state;

        member_session(f);
        session_reset_password(&f->s, f->calls[3], "OP0002", 0);
        session_change_password(&f->s, f->calls[4], "", "mizu-no-oto 2028");
        assert_int_equal(f->answers[4].o.reason, AUTH_BUSY);
        assert_string_equal(f->answers[4].o.message, "a password reset is under way: try again in a moment");
        assert_string_equal(f->pw_operator, "OP0002"); /* the reset's job is the one held */
        password_says(f, 0);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_int_equal(f->s.password_resets_pending, 0);
}

/* A card+PIN session was not opened with a password: resetting its operator's password leaves it. */
static void test_reset_password_leaves_a_card_session(void **state)
{
        struct fake *f = *state;

        start_and_answer(f);
        card_says(f, 0, -1);
        commit_all(f, 0);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_string_equal(f->s.operator_id, "OP0001");
        reset_leaves_the_session(f, 2, "OP0001");
}

static void test_password_refused_by_state(void **state)
{
        struct fake *f = *state;

        session_answer_password(&f->s, f->calls[0], "OP0002", "pw");
        assert_int_equal(f->answers[0].o.reason, AUTH_NOT_PENDING);
        /* An individual card's login waits for a PIN, not a password. */
        insert_card(f);
        session_start_login(&f->s, f->calls[1], SENDER, "");
        assert_string_equal(session_step(&f->s), "pin");
        session_answer_password(&f->s, f->calls[2], "OP0001", "pw");
        assert_int_equal(f->answers[2].o.reason, AUTH_NOT_PENDING);
        assert_null(f->pw_done);
}

/* ---- vein + password (session-bio.c through the vein ops) ---- */

/* StartBioLogin(vein) (call 0): Step vein, a 1:N match among the operators allowed here. */
static void vein_login_waits(struct fake *f)
{
        session_start_bio_login(&f->s, f->calls[0], SENDER, "", "vein");
        assert_false(f->answers[0].answered); /* answered after the hand */
        assert_non_null(f->vein_done);
        assert_int_equal(f->vein_allowed, ELEMENTSOF(operators));
        assert_int_equal(f->s.state, SESSION_AUTHENTICATING);
        assert_string_equal(session_step(&f->s), "vein");
        assert_true(session_login_started_by(&f->s, SENDER));
}

static void test_vein_password_grants_vein_password(void **state)
{
        struct fake *f = *state;

        vein_login_waits(f);
        vein_says(f, 0, "OP0002");
        assert_int_equal(f->answers[0].o.reason, AUTH_ALLOW);
        assert_string_equal(f->answers[0].o.operator_id, "OP0002");
        assert_string_equal(f->answers[0].o.step, "password");
        assert_string_equal(session_step(&f->s), "password");
        /* "" = the operator the hand named; another id is not waited for. */
        session_answer_password(&f->s, f->calls[1], "OP0001", "pw");
        assert_int_equal(f->answers[1].o.reason, AUTH_NOT_PENDING);
        session_answer_password(&f->s, f->calls[2], "", "kumo-no-ue");
        assert_string_equal(f->pw_operator, "OP0002");
        password_says(f, 0);
        assert_int_equal(f->s.state, SESSION_ACTIVE);
        assert_string_equal(f->s.method, "vein+password");
        assert_string_equal(f->s.session_card, "");
        const struct rec *ok = find_rec(f, "auth.ok");
        assert_non_null(ok);
        assert_string_equal(ok->method, "vein+password");
        assert_string_equal(ok->op, "OP0002");
        assert_false(ok->has_card);
        assert_false(f->answers[2].answered); /* after the records */
        commit_all(f, 0);
        assert_int_equal(f->answers[2].o.reason, AUTH_ALLOW);
        assert_false(session_holds_inserted_card(&f->s));
        /* The session ends on record without a card field, and the log stays writable. */
        session_lock(&f->s, TRIGGER_MANUAL_LOCK, now_mono_usec());
        const struct rec *end = find_rec(f, "session.end");
        assert_non_null(end);
        assert_string_equal(end->op, "OP0002");
        assert_false(end->has_card);
}

static void test_vein_refusals_recorded(void **state)
{
        struct fake *f = *state;

        /* A hand nobody enrolled. */
        vein_login_waits(f);
        vein_says(f, 0, NULL);
        const struct rec *fail = find_rec(f, "auth.fail");
        assert_non_null(fail);
        assert_string_equal(fail->reason, "vein-no-match");
        assert_string_equal(fail->method, "vein+password");
        assert_false(f->answers[0].answered);
        commit_all(f, 0);
        assert_int_equal(f->answers[0].o.reason, AUTH_VEIN_NO_MATCH);
        assert_string_equal(auth_reason_to_dbus_error(AUTH_VEIN_NO_MATCH), MAMORI_ERROR_VEIN_NO_MATCH);
        assert_int_equal(f->s.state, SESSION_LOCKED);

        /* An unusable capture. */
        size_t before = f->n_recs;
        f->answers[0] = (struct answer){0};
        vein_login_waits(f);
        vein_says(f, -EAGAIN, NULL);
        assert_string_equal(f->recs[before].reason, "vein-unreadable");
        commit_all(f, 0);
        assert_int_equal(f->answers[0].o.reason, AUTH_VEIN_UNREADABLE);

        /* No reader: refused at once, recorded, nothing started. */
        before = f->n_recs;
        f->vein_present = false;
        session_start_bio_login(&f->s, f->calls[1], SENDER, "", "vein");
        assert_null(f->vein_done);
        assert_string_equal(f->recs[before].reason, "bio-unavailable");
        assert_string_equal(f->recs[before].method, "vein+password");
        commit_all(f, 0);
        assert_int_equal(f->answers[1].o.reason, AUTH_BIO_UNAVAILABLE);
        assert_int_equal(f->s.state, SESSION_LOCKED);

        /* Not a modality. */
        session_start_bio_login(&f->s, f->calls[2], SENDER, "", "face");
        assert_int_equal(f->answers[2].o.reason, AUTH_INVALID_ARGUMENT);
}

/* Accounts=per-operator: a hand that identifies another operator than the account's is refused as
 * wrong-user before any password is asked; the account's own operator goes on to the password. */
static void test_vein_per_operator_account(void **state)
{
        struct fake *f = *state;

        f->config.accounts = ACCOUNTS_PER_OPERATOR;
        session_start_bio_login(&f->s, f->calls[0], SENDER, "OP0001", "vein");
        assert_non_null(f->vein_done);
        vein_says(f, 0, "OP0002");
        const struct rec *fail = find_rec(f, "auth.fail");
        assert_non_null(fail);
        assert_string_equal(fail->reason, "wrong-user");
        assert_string_equal(fail->op, "OP0002");
        commit_all(f, 0);
        assert_int_equal(f->answers[0].o.reason, AUTH_WRONG_USER);
        assert_int_equal(f->s.state, SESSION_LOCKED);

        session_start_bio_login(&f->s, f->calls[1], SENDER, "OP0001", "vein");
        vein_says(f, 0, "OP0001");
        assert_int_equal(f->answers[1].o.reason, AUTH_ALLOW);
        assert_string_equal(f->answers[1].o.step, "password");

        /* No account named: nothing can match it. */
        session_cancel_login(&f->s, f->calls[2]);
        session_start_bio_login(&f->s, f->calls[3], SENDER, "", "vein");
        if (f->vein_done)
                vein_says(f, 0, "OP0001");
        commit_all(f, 0);
        assert_int_equal(f->answers[3].o.reason, AUTH_WRONG_USER);
}

/* A card inserted while a login without a card waits for the hand: the scan is cancelled on the
 * vein thread, the caller hears NotPending at once, nothing is recorded as a failure; the card can
 * log in next. CancelLogin and a lock cancel the scan the same way. */
static void test_vein_scan_cancelled(void **state)
{
        struct fake *f = *state;

        vein_login_waits(f);
        uint64_t id = f->vein_id;
        insert_card(f);
        assert_int_equal(f->vein_cancelled, id);
        assert_true(f->answers[0].answered);
        assert_int_equal(f->answers[0].o.reason, AUTH_NOT_PENDING);
        assert_non_null(strstr(f->answers[0].o.message, "card was inserted"));
        assert_int_equal(f->s.state, SESSION_LOCKED);
        assert_null(find_rec(f, "auth.fail"));
        commit_all(f, 0);
        session_start_login(&f->s, f->calls[1], SENDER, "");
        assert_int_equal(f->answers[1].o.reason, AUTH_ALLOW);
        session_cancel_login(&f->s, f->calls[2]);
        assert_int_equal(f->s.state, SESSION_LOCKED);
        pull_card(f);

        /* CancelLogin by its client. */
        f->answers[0] = (struct answer){0};
        vein_login_waits(f);
        id = f->vein_id;
        session_cancel_login(&f->s, f->calls[3]);
        assert_int_equal(f->vein_cancelled, id);
        assert_true(f->answers[0].answered);
        assert_int_equal(f->answers[3].o.reason, AUTH_ALLOW);
        assert_int_equal(f->s.state, SESSION_LOCKED);

        /* A lock. */
        f->answers[0] = (struct answer){0};
        vein_login_waits(f);
        id = f->vein_id;
        session_lock(&f->s, TRIGGER_MANUAL_LOCK, now_mono_usec());
        assert_int_equal(f->vein_cancelled, id);
        assert_true(f->answers[0].answered);
        assert_null(find_rec(f, "auth.fail"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_login_success_answers_after_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusal_recorded_then_answered, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pin_format_keeps_login_pending, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blocked_card_refused_before_the_card, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pull_during_commit_grants_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_failure_during_commit_grants_nothing, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_lock_during_login, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_answers_the_waiting_call_cancelled, setup,
                                                teardown),
                cmocka_unit_test(test_every_abort_answers_a_reason),
                cmocka_unit_test_setup_teardown(test_lock_answers_after_session_end, setup, teardown),
                cmocka_unit_test_setup_teardown(test_calls_refused_by_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bypass_relocks_and_records_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unlock_after_login_is_no_bypass, setup, teardown),
                cmocka_unit_test_setup_teardown(test_group_card_member_password_grants_the_member,
                                                setup_group, teardown_group),
                cmocka_unit_test_setup_teardown(test_group_card_non_member_refused, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_wrong_password_waits_doubling_and_pull_ends_it,
                                                setup_group, teardown_group),
                cmocka_unit_test_setup_teardown(test_failure_counts_survive_a_restart, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_untrusted_failure_file_locks_out, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_wrong_password_unheld_not_answered_early, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_right_password_unheld_not_granted_early, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_reset_password, setup_group, teardown_group),
                cmocka_unit_test_setup_teardown(test_failure_count_forgotten_after_an_hour, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_untrusted_floor_forgotten_after_an_hour, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_failure_counts_forgotten_after_a_restart, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_changed_password_starts_the_count_again, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_reset_password_ends_the_session_it_opened, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_full_table_keeps_live_counts, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_change_refused_while_a_reset_is_pending, setup_group,
                                                teardown_group),
                cmocka_unit_test_setup_teardown(test_reset_password_leaves_a_card_session, setup, teardown),
                cmocka_unit_test_setup_teardown(test_password_refused_by_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vein_password_grants_vein_password, setup_vein,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_vein_refusals_recorded, setup_vein, teardown),
                cmocka_unit_test_setup_teardown(test_vein_per_operator_account, setup_vein, teardown),
                cmocka_unit_test_setup_teardown(test_vein_scan_cancelled, setup_vein, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
