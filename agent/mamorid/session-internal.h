/* What the session logic's step files (session-password.c, the bio steps) share with session-logic.c. */
#pragma once

/*
 * Not for the rest of the daemon: these are the logic's own building blocks — outcomes, answers
 * that wait for a commit, the one way a login is granted, and the one way it fails — so every
 * method of logging in ends the same way and keeps the same promises (DESIGN.md §5, §6).
 */

#include "mamori/macro.h"
#include "session-logic.h"

struct session_outcome session_outcome_ok(void);
_printf_(2, 3) struct session_outcome session_outcome_refused(enum auth_reason reason, const char *fmt, ...);
struct session_outcome session_outcome_failed(int error);
/* The refusal of a login ended by a state-machine word (a trigger's name): a reason of the table. */
struct session_outcome session_abort_outcome(const char *why);
/* Answers call at once (call NULL: nothing). */
void session_answer(struct session *s, SessionCall *call, const struct session_outcome *o);
/* One record (session_ops.record). */
int session_record(struct session *s, const char *ev, const char *op, const char *card, JsonValue *data,
                   oplog_done_fn done, void *userdata);
/* Records ev and answers call with o once it is durable (at once when it fails: log-unwritable). */
void session_record_then_answer(struct session *s, SessionCall *call, const struct session_outcome *o,
                                const char *ev, const char *op, const char *card, JsonValue *data);
struct auth_context session_auth_context(struct session *s);

/*
 * Grants the pending login to operator_id: state "active" with method and card (NULL: no card),
 * records auth.ok (with extra's fields, taken; may be NULL), session.start and unlock, and answers
 * call with the operator once the last is durable and only if this session still runs then.
 */
void session_grant(struct session *s, SessionCall *call, const char *operator_id, const char *card_id,
                   const char *method, JsonValue *extra);
/* Ends the pending login as refused (the caller has answered or will answer its call). */
void session_login_failed(struct session *s);
/* Accounts=per-operator: the PAM account (user, "" or NULL = none given) must be the operator's own;
 * Accounts=shared: any account. The one place of that rule, for every login method. */
bool session_account_is(const struct session *s, const char *user, const char *operator_id);
/* The password step's own part of ending a login (session-password.c): frees a held answer. */
void session_password_login_done(struct session *s, const char *why);

/* The pending login has started (StartBioLogin): state "authenticating", the answer timer armed. */
void session_login_begin(struct session *s);
/* Something callers can see changed (the Step property). */
void session_changed(struct session *s);

/* session-bio.c: after a card's PIN with RequireFingerWithCard=yes, the holder's finger is next;
 * call is the AnswerPin to answer with the card's operator (Step "finger"). */
void session_bio_after_card(struct session *s, SessionCall *call, const struct auth_decision *d,
                            const char *card_id);
/* The pending login's scan (finger or vein), if one runs, is cancelled on its thread. */
void session_bio_cancel_scan(struct session *s);
/* The session ended (or the agent stops): an enrolment of it is cancelled and answered. */
void session_bio_session_ended(struct session *s);
