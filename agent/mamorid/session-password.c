/* The password step of a login (AnswerPassword, growing delay per operator) and the active operator's
 * password.
 */
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
#include "mamori/password-verifier.h"
#include "mamori/time-util.h"
#include "session-internal.h"

#define DELAY_FIRST_USEC (1 * USEC_PER_SEC)
#define DELAY_MAX_USEC   (32 * USEC_PER_SEC)
#define FAILURES_FORGET  (3600 * USEC_PER_SEC) /* an hour without a failure starts the count again */
#define USEC_PER_DAY     (INT64_C(86400) * 1000000)

/* ---- wrong passwords per operator ---- */

/*
 * Every time of the counts (*_mono_usec) is read from one clock, session_ops.password_clock: in mamorid
 * CLOCK_MONOTONIC, in the unit tests the same moved an hour on. Monotonic, because nobody can set it: a
 * wall clock moved an hour forward (by hand, by a forged NTP answer) would forget every count; and it
 * stands still while the terminal sleeps, so a suspend never shortens the hour. It does not survive a
 * reboot, so the file keeps wall-clock times, and placing them back on this boot's clock fails closed
 * (real_to_mono): a failure from before this boot counts as made at its start, so a count is forgotten
 * no sooner than an hour into the boot (a wait still to come is cut to the longest delay: a wall clock set
 * back must not lock anyone out for good). Across a restart the wall clock is all that links the two
 * runs: set forward in between, it still shortens that count's hour.
 * A held answer's timer runs on the event loop's CLOCK_MONOTONIC (wait_start places it there).
 */
static uint64_t failures_now(const struct session *s)
{
        return s->ops->password_clock(s->userdata);
}

/* An hour without a failure, and its delay passed: f's count is due to start again. */
static bool failures_expired(const struct password_failures *f, uint64_t now)
{
        return f->count && now > f->last_mono_usec + FAILURES_FORGET && now >= f->next_mono_usec;
}

/* The one way a count starts again (a right password, a new or removed one, an hour without a
 * failure): nothing left to wait for. A slot keeps its operator, or the floor would count for them. */
static void failures_reset(struct password_failures *f, uint64_t now)
{
        struct password_failures fresh = {.last_mono_usec = now};

        memcpy(fresh.operator_id, f->operator_id, sizeof(fresh.operator_id));
        *f = fresh;
}

static struct password_failures *failures_find(struct session *s, const char *operator_id, bool create,
                                               uint64_t now)
{
        struct password_failures *free_slot = NULL, *oldest = NULL, *oldest_idle = NULL,
                                 *floor = &s->password_failures_floor;

        for (size_t i = 0; i < PASSWORD_FAILURES_MAX; i++) {
                struct password_failures *f = &s->password_failures[i];
                if (!f->operator_id[0]) {
                        free_slot = free_slot ?: f;
                        continue;
                }
                if (streq(f->operator_id, operator_id)) {
                        if (failures_expired(f, now))
                                failures_reset(f, now);
                        return f;
                }
                if (!oldest || f->last_mono_usec < oldest->last_mono_usec)
                        oldest = f;
                if (f->count == 0 && f->next_mono_usec <= now &&
                    (!oldest_idle || f->last_mono_usec < oldest_idle->last_mono_usec))
                        oldest_idle = f;
        }
        if (!create)
                return NULL;
        /* Full: a slot with nothing to wait for gives way first (its operator starts from the floor
         * again, never from less), then the operator whose last failure is oldest (its delay has long
         * passed in practice; 64 operators failing at once at one counter is not a counter). */
        struct password_failures *f = free_slot ?: oldest_idle ?: oldest;
        /* An operator without a slot starts from the floor (zero unless a failure file could not be
         * trusted). */
        if (failures_expired(floor, now))
                failures_reset(floor, now);
        *f = (struct password_failures){.count = floor->count,
                                        .next_mono_usec = floor->next_mono_usec,
                                        .last_mono_usec = floor->last_mono_usec};
        snprintf(f->operator_id, sizeof(f->operator_id), "%s", operator_id);
        return f;
}

/* One more failure: returns the delay before the next answer for this operator. */
static uint64_t failures_add(struct password_failures *f, uint64_t now)
{
        uint64_t delay = DELAY_FIRST_USEC;

        if (f->count < PASSWORD_FAILURE_COUNT_MAX)
                f->count++;
        for (unsigned i = 1; i < f->count && delay < DELAY_MAX_USEC; i++)
                delay *= 2;
        if (delay > DELAY_MAX_USEC)
                delay = DELAY_MAX_USEC;
        f->last_mono_usec = now;
        if (f->next_mono_usec < now + delay)
                f->next_mono_usec = now + delay;
        return f->next_mono_usec - now;
}

uint64_t session_password_delay_usec(const struct session *s, const char *operator_id)
{
        uint64_t now = failures_now(s), next = s->password_failures_floor.next_mono_usec;

        for (size_t i = 0; i < PASSWORD_FAILURES_MAX; i++) {
                const struct password_failures *f = &s->password_failures[i];
                if (f->operator_id[0] && streq(f->operator_id, operator_id)) {
                        next = f->next_mono_usec;
                        break;
                }
        }
        return next > now ? next - now : 0;
}

/* ---- the counts across restarts (kept by password-failures.c; the rule is here) ---- */

/* The counts' clock (µs of this boot) ↔ CLOCK_REALTIME µs, through the two clocks read now. 0 stays 0. */
static int64_t mono_to_real(uint64_t mono, uint64_t now_mono, int64_t now_real)
{
        if (mono == 0)
                return 0;
        int64_t real = mono >= now_mono ? now_real + (int64_t)(mono - now_mono)
                                        : now_real - (int64_t)(now_mono - mono);
        return real > 0 ? real : 1;
}

static uint64_t real_to_mono(int64_t real, uint64_t now_mono, int64_t now_real, uint64_t wait_max)
{
        if (real <= 0)
                return 0;
        if (real >= now_real) {
                /* Still to wait: never longer than the rule's longest delay (a clock set back). */
                uint64_t wait = (uint64_t)(real - now_real);
                return now_mono + (wait < wait_max ? wait : wait_max);
        }
        uint64_t ago = (uint64_t)(now_real - real);
        return now_mono > ago ? now_mono - ago : 1;
}

static void entry_from(struct password_failure_entry *e, const struct password_failures *f,
                       uint64_t now_mono, int64_t now_real)
{
        snprintf(e->operator_id, sizeof(e->operator_id), "%s", f->operator_id);
        e->count = f->count < PASSWORD_FAILURE_COUNT_MAX ? f->count : PASSWORD_FAILURE_COUNT_MAX;
        e->last_usec = mono_to_real(f->last_mono_usec, now_mono, now_real);
        e->next_usec = mono_to_real(f->next_mono_usec, now_mono, now_real);
}

static void entry_to(struct password_failures *f, const struct password_failure_entry *e, uint64_t now_mono,
                     int64_t now_real)
{
        *f = (struct password_failures){
                .count = e->count < PASSWORD_FAILURE_COUNT_MAX ? e->count : PASSWORD_FAILURE_COUNT_MAX};
        snprintf(f->operator_id, sizeof(f->operator_id), "%s", e->operator_id);
        f->last_mono_usec = real_to_mono(e->last_usec, now_mono, now_real, DELAY_MAX_USEC);
        f->next_mono_usec = real_to_mono(e->next_usec, now_mono, now_real, DELAY_MAX_USEC);
}

/* After every change of a count: the file says what memory says, durably before the answer (file and
 * directory fsync'd: without the directory's, a power cut right after a wrong answer could bring the old,
 * lower count back). On the loop: ~12 ms median, ~20 ms p99 on the development VM's disk (`tools/dev bench
 * failures`; ~8 ms without the directory fsync), at most once per password check, which scrypt holds to
 * ~1 a second. */
static void failures_save(struct session *s)
{
        _cleanup_free_ struct password_failure_file *file = calloc(1, sizeof(*file));
        uint64_t now_mono = failures_now(s);
        int64_t now_real = now_realtime_usec();

        if (!s->ops->password_failures_save)
                return;
        if (!file) {
                agent_log(LOG_ERR, "out of memory: the password failure counts are not saved");
                return;
        }
        entry_from(&file->floor, &s->password_failures_floor, now_mono, now_real);
        file->floor.operator_id[0] = '\0';
        for (size_t i = 0; i < PASSWORD_FAILURES_MAX; i++) {
                const struct password_failures *f = &s->password_failures[i];
                /* A slot at zero says nothing unless a floor is in force. */
                if (f->operator_id[0] &&
                    (f->count || f->next_mono_usec > now_mono || s->password_failures_floor.count))
                        entry_from(&file->entries[file->n++], f, now_mono, now_real);
        }
        s->ops->password_failures_save(s->userdata, file);
}

/* operator_id's password was set anew or removed: their count starts again, on disk too. */
static void failures_reset_operator(struct session *s, const char *operator_id)
{
        uint64_t now = failures_now(s);
        struct password_failures *f = failures_find(s, operator_id, false, now);

        if (f && (f->count || f->next_mono_usec > now)) {
                failures_reset(f, now);
                failures_save(s);
        }
}

void session_password_failures_restore(struct session *s, const struct password_failure_file *file)
{
        uint64_t now_mono = failures_now(s);
        int64_t now_real = now_realtime_usec();
        size_t n = file->n < PASSWORD_FAILURES_MAX ? file->n : PASSWORD_FAILURES_MAX;

        memset(s->password_failures, 0, sizeof(s->password_failures));
        entry_to(&s->password_failures_floor, &file->floor, now_mono, now_real);
        s->password_failures_floor.operator_id[0] = '\0';
        for (size_t i = 0; i < n; i++)
                entry_to(&s->password_failures[i], &file->entries[i], now_mono, now_real);
}

void session_password_failures_fail_closed(struct session *s)
{
        uint64_t now = failures_now(s);
        unsigned count = 1;

        /* The count whose delay is the longest: as if each operator had just failed that often. */
        for (uint64_t d = DELAY_FIRST_USEC; d < DELAY_MAX_USEC; d *= 2)
                count++;
        memset(s->password_failures, 0, sizeof(s->password_failures));
        s->password_failures_floor = (struct password_failures){
                .count = count, .last_mono_usec = now, .next_mono_usec = now + DELAY_MAX_USEC};
        failures_save(s);
}

/* ---- an answer held back until the operator's delay has passed ---- */

struct password_wait {
        SessionCall *call;
        struct session_outcome o; /* a refusal; unused when grant */
        bool grant;               /* a right password: the login is granted when due */
        uint64_t gen;             /* the password job it answers */
        bool committed;           /* the failure's auth.fail is durable (or none was needed) */
        bool due;                 /* the delay has passed */
        sd_event_source *timer;
};

static struct password_wait *wait_free(struct password_wait *w)
{
        if (w) {
                sd_event_source_disable_unref(w->timer);
                free(w);
        }
        return NULL;
}

void session_password_login_done(struct session *s, const char *why)
{
        struct password_wait *w = TAKE_PTR(s->login.wait);

        s->login.password_job = 0; /* a check still running is answered by nobody */
        if (!w)
                return;
        struct session_outcome o = session_abort_outcome(why);
        session_answer(s, w->call, &o);
        wait_free(w);
}

static void wait_finish(struct session *s)
{
        struct password_wait *w = s->login.wait;
        char member[OPERATOR_ID_MAX], card[CARD_ID_LEN + 1], group[OPERATOR_ID_MAX];

        if (!w || !w->committed || !w->due)
                return;
        s->login.wait = NULL;
        if (!w->grant) {
                /* Wrong password: the login still waits for the next try. */
                session_answer(s, w->call, &w->o);
                wait_free(w);
                return;
        }
        snprintf(member, sizeof(member), "%s", s->login.operator_id);
        snprintf(card, sizeof(card), "%s", s->login.card_id);
        snprintf(group, sizeof(group), "%s", s->login.group_id);
        SessionCall *call = TAKE_PTR(w->call);
        wait_free(w);
        session_grant(s, call, member, card[0] ? card : NULL, s->login.method,
                      agent_data("group", group[0] ? group : NULL, NULL));
}

static int on_wait_due(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct session *s = userdata;

        if (s->login.wait) {
                s->login.wait->timer = sd_event_source_disable_unref(s->login.wait->timer);
                s->login.wait->due = true;
                wait_finish(s);
        }
        return 0;
}

struct wait_commit {
        struct session *s;
        uint64_t gen;
};

static void on_failure_committed(int result, uint64_t seq, void *userdata)
{
        struct wait_commit c = *(struct wait_commit *)userdata;
        struct session *s = c.s;

        free(userdata);
        if (result < 0) {
                /* Fail closed: the lock this causes ends the login and refuses the held answer. */
                session_on_log_health(s, result);
                return;
        }
        if (s->login.wait && s->login.wait->gen == c.gen) {
                s->login.wait->committed = true;
                wait_finish(s);
        }
}

/* Holds call until due (the counts' clock) and, for a failure, its record: s->login.wait answers it then.
 * -errno (out of memory for the wait or its timer): call is not taken, the caller answers it
 * (refuse_unheld()). */
static int wait_start(struct session *s, SessionCall *call, uint64_t gen, bool grant,
                      const struct session_outcome *o, uint64_t due)
{
        _cleanup_free_ struct password_wait *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        *w = (struct password_wait){.call = call, .grant = grant, .gen = gen, .committed = grant};
        if (o)
                w->o = *o;
        /* The timer runs on the loop's clock: due is placed on it through both clocks read now (the same
         * instant in mamorid, whose counts' clock is the loop's). */
        uint64_t now = failures_now(s), loop_now = now_mono_usec();
        r = sd_event_add_time(s->event, &w->timer, CLOCK_MONOTONIC, loop_now + (due > now ? due - now : 0),
                              0, on_wait_due, s);
        if (r < 0)
                return r;
        s->login.wait = TAKE_PTR(w);
        return 0;
}

/*
 * An answer that cannot be held for its delay (wait_start() failed: out of memory) fails closed. Given at
 * once, a wrong password's refusal or a right one's grant would let a guesser try faster than the delays
 * allow; held for ever, the caller would hang. So the login ends, and the caller hears at once that it was
 * cancelled and is to be started again — the same answer at the same moment whether the password was right
 * or wrong, which tells a guesser nothing. The count stays as it is (a wrong password's was raised and
 * saved already; a right one's is not started again), so the next login's answer waits out the delay.
 */
static void refuse_unheld(struct session *s, SessionCall *call, int error)
{
        struct session_outcome o = session_outcome_refused(
                AUTH_CANCELLED, "%s: the password's answer could not be held for its delay (%s)",
                auth_reason_to_string(AUTH_CANCELLED), strerror(-error));

        agent_log(LOG_ERR,
                  "cannot hold a password answer for its delay: %s; the login was cancelled, the operator "
                  "starts it again (if this repeats, check mamorid's memory)",
                  strerror(-error));
        session_answer(s, call, &o);
        session_login_failed(s);
}

/* ---- AnswerPassword ---- */

static void on_password_checked(void *userdata, uint64_t id, int result)
{
        struct session *s = userdata;
        struct pending_login *l = &s->login;
        struct session_outcome o;
        char delay_s[24];

        if (s->state != SESSION_AUTHENTICATING || !l->active || l->password_job != id)
                return; /* the login ended meanwhile and its caller was answered then */
        l->password_job = 0;
        SessionCall *call = TAKE_PTR(l->answer);
        const char *member = l->operator_id, *card = l->card_id[0] ? l->card_id : NULL;
        uint64_t now = failures_now(s);
        struct password_failures *f = failures_find(s, member, true, now);

        switch (result) {
        case 0: {
                /* Right: the count starts again, but an answer still waits out the last failure's delay. */
                uint64_t due = f->next_mono_usec;
                bool counted = f->count || due > now || s->password_failures_floor.count;
                if (due > now) {
                        int r = wait_start(s, call, id, true, NULL, due);
                        if (r < 0) {
                                refuse_unheld(s, call, r); /* the count is kept: no grant before due */
                                return;
                        }
                }
                failures_reset(f, now);
                if (counted)
                        failures_save(s); /* an operator who never failed costs no write */
                if (due > now)
                        return; /* granted by the wait when due */
                session_grant(s, call, member, card, l->method,
                              agent_data("group", l->group_id[0] ? l->group_id : NULL, NULL));
                return;
        }
        case -EACCES: {
                uint64_t delay = failures_add(f, now);
                failures_save(s); /* before the answer: a restart meanwhile does not forget it */
                struct wait_commit *c = malloc(sizeof(*c));

                snprintf(delay_s, sizeof(delay_s), "%" PRIu64, (delay + USEC_PER_SEC - 1) / USEC_PER_SEC);
                o = session_outcome_refused(AUTH_PASSWORD_WRONG, "%s delay=%s",
                                            auth_reason_to_string(AUTH_PASSWORD_WRONG), delay_s);
                int r = wait_start(s, call, id, false, &o, now + delay);
                bool tracked = r >= 0 && c;
                if (tracked)
                        *c = (struct wait_commit){.s = s, .gen = id};
                else if (r >= 0) /* out of memory for the tracker: the record still goes */
                        s->login.wait->committed = true;
                /* Every failure is on record (a burst of them in one summary: record-limit.h). */
                session_record(s, "auth.fail", member, card,
                               agent_data("reason", auth_reason_to_string(AUTH_PASSWORD_WRONG), "method",
                                          l->method, "group", l->group_id[0] ? l->group_id : NULL, NULL),
                               tracked ? on_failure_committed : NULL, tracked ? c : NULL);
                if (!tracked)
                        free(c);
                if (r < 0)
                        refuse_unheld(s, call, r); /* after the record: it ends the login */
                return;
        }
        case -ENOENT:
                o = session_outcome_refused(AUTH_PASSWORD_UNSET, "%s",
                                            auth_reason_to_string(AUTH_PASSWORD_UNSET));
                session_record_then_answer(s, call, &o, "auth.fail", member, card,
                                           agent_data("reason", auth_reason_to_string(AUTH_PASSWORD_UNSET),
                                                      "method", l->method, NULL));
                session_login_failed(s);
                return;
        default:
                agent_log(LOG_ERR,
                          "cannot check the password of %s: %s (check [Secrets] PasswordDirectory: a "
                          "directory "
                          "of root's, mode 0700, files 0600)",
                          member, strerror(-result));
                o = session_outcome_failed(result);
                session_answer(s, call, &o);
                session_login_failed(s);
                return;
        }
}

void session_answer_password(struct session *s, SessionCall *call, const char *operator_id,
                             const char *password)
{
        struct pending_login *l = &s->login;
        struct session_outcome o;
        const char *card = l->card_id[0] ? l->card_id : NULL;
        char member[OPERATOR_ID_MAX];

        if (s->state != SESSION_AUTHENTICATING || !l->active || l->step != LOGIN_STEP_PASSWORD) {
                o = session_outcome_refused(AUTH_NOT_PENDING, "no login of yours is waiting for a password");
                session_answer(s, call, &o);
                return;
        }
        if (l->answer || l->password_job || l->wait) {
                o = session_outcome_refused(AUTH_BUSY, "the password is already being checked");
                session_answer(s, call, &o);
                return;
        }
        size_t n = strnlen(password, PASSWORD_MAX + 1);
        if (n == 0 || n > PASSWORD_MAX || strlen(operator_id) >= sizeof(member)) {
                o = session_outcome_refused(AUTH_INVALID_ARGUMENT,
                                            "password: 1 to %u bytes; operator id: up to 64", PASSWORD_MAX);
                session_answer(s, call, &o);
                return;
        }
        if (l->group_id[0]) {
                /* After a group card: the member says who they are; they must be one, and allowed here. */
                if (!operator_id[0]) {
                        o = session_outcome_refused(AUTH_INVALID_ARGUMENT,
                                                    "the member's operator id is needed");
                        session_answer(s, call, &o);
                        return;
                }
                struct auth_context c = session_auth_context(s);
                enum auth_reason why = auth_decide_session(&c, l->card_id, operator_id);
                if (why != AUTH_ALLOW) {
                        bool member_of_policy = c.policy && policy_find_operator(c.policy, operator_id);
                        o = session_outcome_refused(why, "%s", auth_reason_to_string(why));
                        /* op only for an operator the register knows; what was typed goes in data. */
                        session_record_then_answer(s, call, &o, "auth.fail",
                                                   member_of_policy ? operator_id : NULL, card,
                                                   agent_data("reason", auth_reason_to_string(why), "method",
                                                              l->method, "group", l->group_id, "member",
                                                              member_of_policy ? NULL : operator_id, NULL));
                        session_login_failed(s);
                        return;
                }
                if (!session_account_is(s, l->user, operator_id)) {
                        o = session_outcome_refused(AUTH_WRONG_USER,
                                                    "%s: this account is not that operator's",
                                                    auth_reason_to_string(AUTH_WRONG_USER));
                        session_record_then_answer(s, call, &o, "auth.fail", operator_id, card,
                                                   agent_data("reason",
                                                              auth_reason_to_string(AUTH_WRONG_USER),
                                                              "method", l->method, "user", l->user, NULL));
                        session_login_failed(s);
                        return;
                }
                snprintf(member, sizeof(member), "%s", operator_id);
        } else {
                /* Identified already (finger, vein): "" or that same operator. */
                if (!l->operator_id[0] || (operator_id[0] && !streq(operator_id, l->operator_id))) {
                        o = session_outcome_refused(
                                AUTH_NOT_PENDING,
                                "no login of yours is waiting for that operator's password");
                        session_answer(s, call, &o);
                        return;
                }
                snprintf(member, sizeof(member), "%s", l->operator_id);
        }

        uint64_t id = ++s->last_password_job;
        int r = s->ops->password_check(s->userdata, id, member, password, on_password_checked, s);
        if (r < 0) {
                o = r == -EBUSY ? session_outcome_refused(AUTH_BUSY, "the password check is busy")
                                : session_outcome_failed(r);
                session_answer(s, call, &o);
                return;
        }
        snprintf(l->operator_id, sizeof(l->operator_id), "%s", member);
        l->password_job = id;
        l->answer = call; /* answered by on_password_checked, or by an abort */
}

/* ---- the active operator's password ---- */

/* The active session was opened with its operator's password (after a finger, a hand or a group card). */
static bool opened_with_password(const struct session *s)
{
        return s->state == SESSION_ACTIVE && strstr(s->method, "password");
}

struct password_change {
        struct session *s;
        SessionCall *call;
        char operator_id[OPERATOR_ID_MAX];
        char card_id[CARD_ID_LEN + 1];
        char method[METHOD_MAX];
};

static void on_password_set(void *userdata, uint64_t id, int result)
{
        struct password_change *pc = userdata;
        struct session *s = pc->s;
        const char *card = pc->card_id[0] ? pc->card_id : NULL;
        struct session_outcome o;
        uint64_t now = failures_now(s);

        if (result == 0) {
                failures_reset_operator(s, pc->operator_id);
                o = session_outcome_ok();
                session_record_then_answer(s, pc->call, &o, "password.change", pc->operator_id, card,
                                           agent_data("session_method", pc->method, NULL));
        } else if (result == -EACCES) {
                uint64_t delay = failures_add(failures_find(s, pc->operator_id, true, now), now);
                failures_save(s);
                o = session_outcome_refused(AUTH_PASSWORD_WRONG, "%s delay=%" PRIu64,
                                            auth_reason_to_string(AUTH_PASSWORD_WRONG),
                                            (delay + USEC_PER_SEC - 1) / USEC_PER_SEC);
                session_record_then_answer(s, pc->call, &o, "auth.fail", pc->operator_id, card,
                                           agent_data("reason", auth_reason_to_string(AUTH_PASSWORD_WRONG),
                                                      "method", "password-change", NULL));
        } else {
                agent_log(LOG_ERR, "cannot store the password of %s: %s", pc->operator_id,
                          strerror(-result));
                o = session_outcome_failed(result);
                session_answer(s, pc->call, &o);
        }
        free(pc);
}

void session_change_password(struct session *s, SessionCall *call, const char *old_password,
                             const char *new_password)
{
        struct session_outcome o;
        size_t n = strnlen(new_password, PASSWORD_MAX + 1);

        if (s->state != SESSION_ACTIVE) {
                o = session_outcome_refused(AUTH_NOT_ACTIVE, "no operator is logged in");
                session_answer(s, call, &o);
                return;
        }
        /* Only the operator who proved who they are right now: a card session that still holds its
         * card, or a session opened with this very password (DESIGN.md §4). */
        if (!session_holds_inserted_card(s) && !opened_with_password(s)) {
                o = session_outcome_refused(
                        AUTH_PERMISSION_DENIED,
                        "the password can be set only in a session with its card inserted");
                session_answer(s, call, &o);
                return;
        }
        if (s->password_resets_pending > 0) {
                o = session_outcome_refused(AUTH_BUSY,
                                            "a password reset is under way: try again in a moment");
                session_answer(s, call, &o);
                return;
        }
        if (n > PASSWORD_MAX || strnlen(old_password, PASSWORD_MAX + 1) > PASSWORD_MAX) {
                o = session_outcome_refused(AUTH_INVALID_ARGUMENT, "a password is at most %u bytes",
                                            PASSWORD_MAX);
                session_answer(s, call, &o);
                return;
        }
        if (n < s->config->min_length) {
                o = session_outcome_refused(AUTH_PASSWORD_TOO_SHORT, "%s min=%" PRIu32,
                                            auth_reason_to_string(AUTH_PASSWORD_TOO_SHORT),
                                            s->config->min_length);
                session_answer(s, call, &o);
                return;
        }
        if (old_password[0] && streq(old_password, new_password)) {
                o = session_outcome_refused(AUTH_INVALID_ARGUMENT,
                                            "the new password must differ from the current one");
                session_answer(s, call, &o);
                return;
        }
        uint64_t delay = session_password_delay_usec(s, s->operator_id);
        if (delay > 0) {
                o = session_outcome_refused(AUTH_PASSWORD_WRONG, "%s delay=%" PRIu64,
                                            auth_reason_to_string(AUTH_PASSWORD_WRONG),
                                            (delay + USEC_PER_SEC - 1) / USEC_PER_SEC);
                session_answer(s, call, &o);
                return;
        }
        struct password_change *pc = calloc(1, sizeof(*pc));
        if (!pc) {
                o = session_outcome_failed(-ENOMEM);
                session_answer(s, call, &o);
                return;
        }
        *pc = (struct password_change){.s = s, .call = call};
        snprintf(pc->operator_id, sizeof(pc->operator_id), "%s", s->operator_id);
        snprintf(pc->card_id, sizeof(pc->card_id), "%s", s->session_card);
        snprintf(pc->method, sizeof(pc->method), "%s", s->method);
        int r = s->ops->password_set(s->userdata, ++s->last_password_job, pc->operator_id, old_password,
                                     new_password, on_password_set, pc);
        if (r < 0) {
                free(pc);
                o = r == -EBUSY ? session_outcome_refused(AUTH_BUSY, "the password store is busy")
                                : session_outcome_failed(r);
                session_answer(s, call, &o);
        }
}

void session_password_age(struct session *s, SessionCall *call)
{
        struct session_outcome o;
        int64_t changed;
        int r;

        if (s->state != SESSION_ACTIVE) {
                o = session_outcome_refused(AUTH_NOT_ACTIVE, "no operator is logged in");
                session_answer(s, call, &o);
                return;
        }
        o = session_outcome_ok();
        o.pin_age_days = -1;
        o.max_age_days = (int)s->config->max_age_days;
        o.warn_days = (int)s->config->warn_days;
        r = s->ops->password_changed(s->userdata, s->operator_id, &changed);
        if (r >= 0) {
                int64_t now = now_realtime_usec();
                o.pin_age_days = now > changed ? (int)((now - changed) / USEC_PER_DAY) : 0;
        } else if (r != -ENOENT)
                agent_log(LOG_ERR, "cannot read when the password of %s was set: %s", s->operator_id,
                          strerror(-r));
        session_answer(s, call, &o);
}

/* ---- an administrator's reset ---- */

struct password_reset {
        struct session *s;
        SessionCall *call;
        char operator_id[OPERATOR_ID_MAX];
        int64_t login_uid;
};

static void on_password_removed(void *userdata, uint64_t id, int result)
{
        struct password_reset *pr = userdata;
        struct session *s = pr->s;
        struct session_outcome o;
        char login_uid[24];

        if (s->password_resets_pending > 0)
                s->password_resets_pending--;
        if (result == 0) {
                failures_reset_operator(s, pr->operator_id); /* a new password, a new count */
                agent_log(LOG_NOTICE,
                          "the password of %s on this terminal was reset: their next login needs "
                          "their card, to set a new one",
                          pr->operator_id);
                snprintf(login_uid, sizeof(login_uid), "#%" PRId64, pr->login_uid);
                o = session_outcome_ok();
                session_record_then_answer(s, pr->call, &o, "enroll", pr->operator_id, NULL,
                                           agent_data("action", "reset", "modality", "password", "login_uid",
                                                      pr->login_uid >= 0 ? login_uid : NULL, NULL));
                /* A password reset as compromised must not keep open what it opened (as a suspended
                 * card ends its session, DESIGN §5): that session ends, after the reset's record. */
                if (opened_with_password(s) && streq(s->operator_id, pr->operator_id))
                        session_lock(s, TRIGGER_PASSWORD_RESET, now_mono_usec());
        } else if (result == -ENOENT) {
                o = session_outcome_refused(AUTH_PASSWORD_UNSET, "%s: %s has no password on this terminal",
                                            auth_reason_to_string(AUTH_PASSWORD_UNSET), pr->operator_id);
                session_answer(s, pr->call, &o);
        } else {
                agent_log(LOG_ERR,
                          "cannot reset the password of %s: %s (check [Secrets] PasswordDirectory: a "
                          "directory of root's, mode 0700, files 0600)",
                          pr->operator_id, strerror(-result));
                o = session_outcome_failed(result);
                session_answer(s, pr->call, &o);
        }
        free(pr);
}

void session_reset_password(struct session *s, SessionCall *call, const char *operator_id, int64_t login_uid)
{
        struct session_outcome o;
        int r;

        /* Nothing changes off the record. */
        if (!s->ops->log_writable(s->userdata)) {
                o = session_outcome_refused(AUTH_LOG_UNWRITABLE, "%s: the reset could not be recorded",
                                            auth_reason_to_string(AUTH_LOG_UNWRITABLE));
                session_answer(s, call, &o);
                return;
        }
        if (!s->ops->password_remove) {
                o = session_outcome_failed(-EOPNOTSUPP);
                session_answer(s, call, &o);
                return;
        }
        struct password_reset *pr = calloc(1, sizeof(*pr));
        if (!pr) {
                o = session_outcome_failed(-ENOMEM);
                session_answer(s, call, &o);
                return;
        }
        *pr = (struct password_reset){.s = s, .call = call, .login_uid = login_uid};
        snprintf(pr->operator_id, sizeof(pr->operator_id), "%s", operator_id);
        r = s->ops->password_remove(s->userdata, ++s->last_password_job, pr->operator_id,
                                    on_password_removed, pr);
        if (r < 0) {
                free(pr);
                o = r == -EBUSY    ? session_outcome_refused(AUTH_BUSY, "the password store is busy")
                    : r == -EINVAL ? session_outcome_refused(AUTH_INVALID_ARGUMENT, "not an operator id")
                                   : session_outcome_failed(r);
                session_answer(s, call, &o);
                return;
        }
        s->password_resets_pending++;
}
