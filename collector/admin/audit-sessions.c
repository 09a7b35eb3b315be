/*
 * Sessions rebuilt from each log's records, in stream order: the one rule ledger, audit, watch and the
 * self-inspection share. A session opens at session.start and closes at session.end (its reason); a
 * session.start while one is open closes the old one as "no-end"; agent.start or log.open closes it as
 * "agent-start" (the agent died without ending it); agent.stop as "agent-stop".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

typedef struct LogState {
        AuditSession s; /* the open session, or the last closed one */
        bool any, open;
} LogState;

struct AuditSessions {
        LogState *logs;
        unsigned n;
        uint64_t next_id;
        audit_session_fn opened, closed;
        void *userdata;
};

int audit_sessions_new(unsigned n_logs, audit_session_fn opened, audit_session_fn closed, void *userdata,
                       AuditSessions **ret)
{
        AuditSessions *t = calloc(1, sizeof(AuditSessions));
        if (!t)
                return -ENOMEM;
        t->logs = calloc(n_logs ? n_logs : 1, sizeof(LogState));
        if (!t->logs) {
                free(t);
                return -ENOMEM;
        }
        t->n = n_logs;
        t->next_id = 1;
        t->opened = opened;
        t->closed = closed;
        t->userdata = userdata;
        *ret = t;
        return 0;
}

AuditSessions *audit_sessions_free(AuditSessions *t)
{
        if (!t)
                return NULL;
        free(t->logs);
        free(t);
        return NULL;
}

static void copy(char *dst, size_t size, const char *src)
{
        size_t n = src ? strnlen(src, size - 1) : 0;
        if (n)
                memcpy(dst, src, n);
        dst[n] = 0;
}

static void close_session(AuditSessions *t, LogState *l, int64_t ts, uint64_t seq, const char *reason)
{
        l->s.end = ts;
        l->s.end_seq = seq;
        copy(l->s.end_reason, sizeof(l->s.end_reason), reason);
        l->open = false;
        if (t->closed)
                t->closed(&l->s, t->userdata);
}

int audit_sessions_feed(AuditSessions *t, const AuditRecord *r)
{
        if (r->log_index >= t->n)
                return -EINVAL;
        LogState *l = &t->logs[r->log_index];
        const char *ev = r->ev;

        if (streq(ev, "session.start")) {
                if (l->open)
                        close_session(t, l, r->ts, 0, "no-end");
                l->s = (AuditSession){
                        .id = t->next_id++, .log_index = r->log_index, .start = r->ts, .start_seq = r->seq};
                copy(l->s.log, sizeof(l->s.log), r->log);
                copy(l->s.term, sizeof(l->s.term), r->term);
                copy(l->s.op, sizeof(l->s.op), r->op);
                copy(l->s.card, sizeof(l->s.card), r->card);
                copy(l->s.method, sizeof(l->s.method), r->method);
                l->any = l->open = true;
                if (t->opened)
                        t->opened(&l->s, t->userdata);
        } else if (streq(ev, "session.end")) {
                if (l->open)
                        close_session(t, l, r->ts, r->seq, r->reason ?: "");
        } else if (streq(ev, "agent.start") || streq(ev, "log.open")) {
                if (l->open)
                        close_session(t, l, r->ts, 0, "agent-start");
        } else if (streq(ev, "agent.stop")) {
                if (l->open)
                        close_session(t, l, r->ts, r->seq, "agent-stop");
        }
        return 0;
}

int audit_sessions_grow(AuditSessions *t, unsigned n_logs)
{
        if (n_logs <= t->n)
                return 0;
        LogState *n = realloc(t->logs, n_logs * sizeof(LogState));
        if (!n)
                return -ENOMEM;
        memset(n + t->n, 0, (n_logs - t->n) * sizeof(LogState));
        t->logs = n;
        t->n = n_logs;
        return 0;
}

AuditSession *audit_sessions_open(AuditSessions *t, unsigned log_index)
{
        return log_index < t->n && t->logs[log_index].open ? &t->logs[log_index].s : NULL;
}

AuditSession *audit_sessions_last(AuditSessions *t, unsigned log_index)
{
        return log_index < t->n && t->logs[log_index].any ? &t->logs[log_index].s : NULL;
}

void audit_sessions_finish(AuditSessions *t)
{
        for (unsigned i = 0; i < t->n; i++)
                if (t->logs[i].open)
                        close_session(t, &t->logs[i], 0, 0, "open");
}
