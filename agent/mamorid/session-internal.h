/* What session-logic.c shares with session-bio.c: outcomes, records, answers after commit, transitions. */
#pragma once

#include "session-logic.h"

/* A call kept until the record it waits for is durable (session-logic.c). */
struct pending_answer {
        struct session *s;
        SessionCall *call;
        struct session_outcome o;
        bool grant;           /* a login's success: given only while its session still runs */
        uint64_t session_gen; /* the session it grants */
};

void fmt_int(char buf[24], int64_t v);
int record(struct session *s, const char *ev, const char *op, const char *card, JsonValue *data,
           oplog_done_fn done, void *userdata);
void changed(struct session *s, const char *state_reason);
struct session_outcome outcome_ok(void);
_printf_(2, 3) struct session_outcome outcome_refused(enum auth_reason reason, const char *fmt, ...);
struct session_outcome outcome_failed(int error);
void answer(struct session *s, SessionCall *call, const struct session_outcome *o);
void answer_after_commit(int result, uint64_t seq, void *userdata);
struct pending_answer *answer_after(struct session *s, SessionCall *call, const struct session_outcome *o);
void record_then_answer(struct session *s, SessionCall *call, const struct session_outcome *o,
                        const char *ev, const char *op, const char *card, JsonValue *data);
void start_idle_watch(struct session *s);
void login_clear(struct session *s);
bool apply(struct session *s, enum session_trigger trigger, uint64_t trigger_mono_usec);
struct auth_context auth_context(struct session *s);
int on_login_timeout(sd_event_source *source, uint64_t usec, void *userdata);

/* session-bio.c: after a card's PIN, the finger (group member, or the lending check) is next;
 * call is the AnswerPin to answer with that step. */
void session_bio_after_card(struct session *s, SessionCall *call, const struct auth_decision *d,
                            const char *card_id);
/* The session ended (or the agent stops): an enrolment of it is cancelled and answered. */
void session_bio_session_ended(struct session *s);
