/*
 * The findings engine: every rule of DESIGN §12 over the time-ordered record stream, in one place, for
 * audit, ledger (violations per session), watch (live) and the self-inspection (counts). State is per
 * log, terminal, operator and burst — never per record — so a year of records streams in bounded memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-map.h"
#include "audit.h"

/* Per log: the last look-ups, kept because a log's records name the same terminal, operator and card
 * over and over (a hash or a registry search per record was a large part of the audit's time). */
typedef struct LogInfo {
        bool init;
        const char *office; /* borrowed from the registry */
        uint64_t last_seq;
        struct TermState *term_state; /* of term; owned by the terms map */
        char term[AUDIT_ID_MAX];
        struct OpState *op_state; /* of op; owned by the ops map */
        char op[AUDIT_ID_MAX];
        const char *card_op; /* operator of card (registry), NULL none; valid when card_cached */
        char card[SHA256_HEX_MAX];
        bool card_cached;
        struct OpOffice *stats; /* statistics row of (stats_term's office, stats_op), NULL none */
        char stats_term[AUDIT_ID_MAX], stats_op[AUDIT_ID_MAX];
        bool stats_cached;
} LogInfo;

typedef struct TermState TermState;
typedef struct OpState OpState;

struct TermState {
        bool any;
        unsigned last_log;
        AuditRef last;
        int64_t last_ts;
        char last_ev[32];
        bool silent_reported;
};

struct OpState {
        int64_t first_seen, last_change;
        bool overdue_reported;
};

typedef struct Burst {
        uint64_t n; /* failures, a summary record's repeats included */
        int64_t first_ts, last_ts;
        AuditRef refs[AUDIT_REFS_MAX];
        unsigned n_refs;
        bool reported, folded;
} Burst;

typedef struct OpOffice OpOffice;

struct OpOffice {
        AuditOperatorStats st;
        char role[AUDIT_ID_MAX];
        AuditRef first_op, last_op;
        int64_t last_op_ts;
        char term[AUDIT_ID_MAX];
};

struct AuditEngine {
        AuditOptions o;
        const AuditRegistry *reg;
        audit_finding_fn found;
        audit_session_fn session_closed;
        void *userdata;
        AuditSessions *sessions;
        LogInfo *logs;
        unsigned n_logs;
        AuditMap *terms, *ops, *bursts, *op_office;
        AuditOperatorStats *stats; /* built at the end */
        size_t n_stats;
        int error;
};

void audit_options_default(AuditOptions *o)
{
        *o = (AuditOptions){
                .from = 0,
                .to = INT64_MAX,
                .silent_usec = 7 * AUDIT_DAY,
                .max_age_usec = 183 * AUDIT_DAY,
                .pin_burst = 3,
                .finger_burst = 5,
                .burst_usec = INT64_C(600) * 1000000,
                .unusual_z = 3.5,
                .unusual_ratio = 2.0,
                .unusual_min_peers = 4,
        };
}

static void copy(char *dst, size_t size, const char *src)
{
        size_t n = src ? strnlen(src, size - 1) : 0;
        if (n)
                memcpy(dst, src, n);
        dst[n] = 0;
}

/* Keep key for a per-log cache; false (nothing cached) when it does not fit whole. */
static bool cache_key(char *dst, size_t size, const char *key)
{
        size_t n = strlen(key);
        if (n >= size)
                return false;
        memcpy(dst, key, n + 1);
        return true;
}

static bool in_window(const AuditEngine *e, int64_t ts)
{
        return ts >= e->o.from && ts < e->o.to;
}

static bool office_ok(const AuditEngine *e, const char *office)
{
        return !e->o.office || (office && streq(office, e->o.office));
}

static const char *term_office(const AuditEngine *e, const char *term)
{
        return term && *term ? audit_registry_office(e->reg, term) : NULL;
}

static void finding_init(AuditFinding *f, AuditKind kind, const char *term, const char *op, const char *card,
                         int64_t ts)
{
        *f = (AuditFinding){.kind = kind, .severity = audit_kind_severity(kind), .ts = ts};
        copy(f->term, sizeof(f->term), term);
        copy(f->op, sizeof(f->op), op);
        copy(f->card, sizeof(f->card), card);
}

static void ref_add(AuditFinding *f, const char *log, uint64_t seq)
{
        if (f->n_refs >= AUDIT_REFS_MAX || !log || !*log)
                return;
        copy(f->refs[f->n_refs].log, sizeof(f->refs[0].log), log);
        f->refs[f->n_refs++].seq = seq;
}

_printf_(2, 3) static void why(AuditFinding *f, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->why, sizeof(f->why), fmt, ap);
        va_end(ap);
}

/* The finding to the caller if it lies in the window and its office (or also_office: a second terminal's
 * office, which qualifies too) is audited; false if it was not passed on. */
static bool emit(AuditEngine *e, AuditFinding *f, const char *also_office)
{
        const char *office = term_office(e, f->term);
        copy(f->office, sizeof(f->office), office);
        if (!in_window(e, f->ts) || !(office_ok(e, office) || (also_office && office_ok(e, also_office))))
                return false;
        if (f->session_id)
                for (unsigned i = 0; i < e->n_logs; i++) {
                        AuditSession *s = audit_sessions_last(e->sessions, i);
                        if (s && s->id == f->session_id) {
                                s->violations |= 1u << f->kind;
                                break;
                        }
                }
        e->found(f, e->userdata);
        return true;
}

static OpOffice *op_office(AuditEngine *e, const char *office, const char *op)
{
        char key[2 * AUDIT_ID_MAX + 2];
        snprintf(key, sizeof(key), "%s\x1f%s", office ?: "", op);
        OpOffice *x = audit_map_get(e->op_office, key, true);
        if (!x) {
                e->error = -ENOMEM;
                return NULL;
        }
        if (!x->st.op[0]) {
                copy(x->st.op, sizeof(x->st.op), op);
                copy(x->st.office, sizeof(x->st.office), office);
                copy(x->role, sizeof(x->role), audit_registry_role(e->reg, op));
        }
        return x;
}

/* Counted for the statistics only inside the window and the office. */
static OpOffice *stats_for(AuditEngine *e, const char *term, const char *op, int64_t ts)
{
        const char *office = term_office(e, term);
        if (!op || !*op || !in_window(e, ts) || !office_ok(e, office))
                return NULL;
        return op_office(e, office, op);
}

/* stats_for() of a record, through its log's cache (app.op records are most of the stream). */
static OpOffice *record_stats(AuditEngine *e, const AuditRecord *r, const char *op)
{
        LogInfo *li = &e->logs[r->log_index];
        if (!op || !*op || !in_window(e, r->ts))
                return NULL;
        if (li->stats_cached && streq(li->stats_op, op) && streq(li->stats_term, r->term))
                return li->stats;
        OpOffice *st = stats_for(e, r->term, op, r->ts);
        if (e->error < 0)
                return NULL;
        li->stats = st;
        li->stats_cached = cache_key(li->stats_op, sizeof(li->stats_op), op) &&
                           cache_key(li->stats_term, sizeof(li->stats_term), r->term);
        return st;
}

/* ---- at the start of a session ---- */

static void on_opened(const AuditSession *s, void *userdata)
{
        AuditEngine *e = userdata;
        const char *office = term_office(e, s->term);
        AuditFinding f;
        int open, close;

        OpOffice *st = stats_for(e, s->term, s->op, s->start);
        if (st)
                st->st.sessions++;

        if (office && audit_registry_hours(e->reg, office, &open, &close)) {
                /* Outside hours: before opening or after closing, on a day the office does not work
                 * (weekends unless office days says otherwise) or on one of its holidays. */
                int m = audit_local_minutes(s->start), wday = audit_local_wday(s->start);
                char when[32], date[16], days[32];
                audit_format_time(s->start, when, sizeof(when));
                audit_format_date(s->start, date, sizeof(date));
                unsigned mask = audit_registry_days(e->reg, office);
                bool closed_day = !(mask & (1u << wday)),
                     holiday = audit_registry_holiday(e->reg, office, date);
                if (m < open || m >= close || closed_day || holiday) {
                        finding_init(&f, AUDIT_OUTSIDE_HOURS, s->term, s->op, s->card, s->start);
                        ref_add(&f, s->log, s->start_seq);
                        f.session_id = s->id;
                        if (holiday)
                                why(&f, "session started %s, on a holiday of %s", when, office);
                        else if (closed_day) {
                                audit_format_days(mask, days, sizeof(days));
                                why(&f, "session started %s (%s), a day %s does not work (its days: %s)",
                                    when, audit_day_name(wday), office, days);
                        } else
                                why(&f,
                                    "session started %s, outside the office hours %02d:%02d-%02d:%02d of %s",
                                    when, open / 60, open % 60, close / 60, close % 60, office);
                        emit(e, &f, NULL);
                }
        }

        if (s->card[0])
                for (unsigned i = 0; i < e->n_logs; i++) {
                        AuditSession *o = audit_sessions_open(e->sessions, i);
                        if (!o || o == s || o->id == s->id || !streq(o->card, s->card) ||
                            streq(o->term, s->term))
                                continue;
                        finding_init(&f, AUDIT_CARD_ON_TWO_TERMINALS, s->term, s->op, s->card, s->start);
                        ref_add(&f, o->log, o->start_seq);
                        ref_add(&f, s->log, s->start_seq);
                        f.session_id = s->id;
                        why(&f, "card in use on %s (session of %s) while a session started on %s", o->term,
                            o->op[0] ? o->op : "?", s->term);
                        /* The other session carries the violation too. */
                        if (in_window(e, s->start))
                                o->violations |= 1u << AUDIT_CARD_ON_TWO_TERMINALS;
                        emit(e, &f, term_office(e, o->term));
                }

        const char *group = s->card[0] ? audit_registry_card_group(e->reg, s->card) : NULL;
        if (group && !audit_registry_group_member(e->reg, group, s->op)) {
                finding_init(&f, AUDIT_GROUP_WITHOUT_MEMBER, s->term, s->op, s->card, s->start);
                ref_add(&f, s->log, s->start_seq);
                f.session_id = s->id;
                if (s->op[0])
                        why(&f, "group card of %s used by %s, who is not a member of that group", group,
                            s->op);
                else
                        why(&f, "group card of %s opened a session without identifying a member (method %s)",
                            group, s->method[0] ? s->method : "?");
                emit(e, &f, NULL);
        }

        if (s->op[0] && !group) {
                OpState *op = audit_map_get(e->ops, s->op, true);
                if (!op) {
                        e->error = -ENOMEM;
                        return;
                }
                int64_t since = op->last_change ? op->last_change : op->first_seen;
                if (!op->first_seen)
                        op->first_seen = s->start;
                if (since && s->start - since > e->o.max_age_usec && !op->overdue_reported) {
                        char when[16];
                        audit_format_date(since, when, sizeof(when));
                        finding_init(&f, AUDIT_SECRET_OVERDUE, s->term, s->op, s->card, s->start);
                        ref_add(&f, s->log, s->start_seq);
                        f.session_id = s->id;
                        why(&f,
                            "%s logged in with a PIN/password unchanged since %s%s (%" PRId64
                            " days, limit %" PRId64 ")",
                            s->op, op->last_change ? "" : "at least ", when, (s->start - since) / AUDIT_DAY,
                            e->o.max_age_usec / AUDIT_DAY);
                        /* Once per overdue period in what is audited: a login before the window
                         * (or at an office not audited) does not use it up, so an audit of a later
                         * year still shows an operator who has not changed the secret for years. */
                        op->overdue_reported = emit(e, &f, NULL);
                }
        }
}

static void on_closed(const AuditSession *s, void *userdata)
{
        AuditEngine *e = userdata;
        if (e->session_closed && in_window(e, s->start) && office_ok(e, term_office(e, s->term)))
                e->session_closed(s, e->userdata);
}

int audit_engine_new(const AuditOptions *o, const AuditRegistry *reg, unsigned n_logs,
                     audit_finding_fn found, audit_session_fn session_closed, void *userdata,
                     AuditEngine **ret)
{
        _cleanup_audit_engine_ AuditEngine *e = calloc(1, sizeof(AuditEngine));
        int r;

        if (!e)
                return -ENOMEM;
        e->o = *o;
        e->reg = reg;
        e->found = found;
        e->session_closed = session_closed;
        e->userdata = userdata;
        e->n_logs = n_logs;
        e->logs = calloc(n_logs ? n_logs : 1, sizeof(LogInfo));
        if (!e->logs)
                return -ENOMEM;
        if ((r = audit_sessions_new(n_logs, on_opened, on_closed, e, &e->sessions)) < 0 ||
            (r = audit_map_new(sizeof(TermState), &e->terms)) < 0 ||
            (r = audit_map_new(sizeof(OpState), &e->ops)) < 0 ||
            (r = audit_map_new(sizeof(Burst), &e->bursts)) < 0 ||
            (r = audit_map_new(sizeof(OpOffice), &e->op_office)) < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

AuditEngine *audit_engine_free(AuditEngine *e)
{
        if (!e)
                return NULL;
        audit_sessions_free(e->sessions);
        free(e->logs);
        audit_map_free(e->terms);
        audit_map_free(e->ops);
        audit_map_free(e->bursts);
        audit_map_free(e->op_office);
        free(e->stats);
        free(e);
        return NULL;
}

/* ---- failures in bursts ---- */

static bool is_pin_failure(const char *reason)
{
        return reason && (streq(reason, "pin-wrong") || streq(reason, "pin-blocked") ||
                          streq(reason, "password-wrong"));
}

static bool is_finger_failure(const char *reason, const char *method)
{
        if (reason && (strneq(reason, "finger-", 7) || strneq(reason, "vein-", 5)))
                return true;
        return method && (strstr(method, "finger") || strstr(method, "vein")) && reason &&
               strstr(reason, "nomatch");
}

static void burst(AuditEngine *e, const AuditRecord *r, AuditKind kind, unsigned threshold, const char *op)
{
        char key[160];
        snprintf(key, sizeof(key), "%d\x1f%s\x1f%s", kind, r->term, r->card ?: op ?: "-");
        Burst *b = audit_map_get(e->bursts, key, true);
        if (!b) {
                e->error = -ENOMEM;
                return;
        }
        if (b->n == 0 || r->ts - b->last_ts > e->o.burst_usec)
                *b = (Burst){.first_ts = r->ts};
        b->last_ts = r->ts;
        if (b->n_refs < AUDIT_REFS_MAX) {
                copy(b->refs[b->n_refs].log, sizeof(b->refs[0].log), r->log);
                b->refs[b->n_refs++].seq = r->seq;
        }
        /* A record-limit summary stands for data.repeats failures (the first of its burst is a record of
         * its own): a flood folded into one record still counts in full. */
        uint64_t count = audit_record_count(r);
        b->n = b->n > UINT64_MAX - count ? UINT64_MAX : b->n + count;
        if (count > 1)
                b->folded = true;
        if (b->n >= threshold && !b->reported) {
                AuditFinding f;
                finding_init(&f, kind, r->term, op, r->card, r->ts);
                for (unsigned i = 0; i < b->n_refs; i++)
                        ref_add(&f, b->refs[i].log, b->refs[i].seq);
                why(&f, "%" PRIu64 " failed %s on %s within %" PRId64 " s%s", b->n,
                    kind == AUDIT_PIN_FAILURES_BURST ? "PIN/password entries" : "fingerprint/vein checks",
                    r->term, (b->last_ts - b->first_ts) / 1000000,
                    b->folded ? " (counting those the terminal folded into a summary record)" : "");
                b->reported = true;
                emit(e, &f, NULL);
        }
}

/* ---- per record ---- */

/* A finding proven by this one record; why is "text" + " (" detail ")" when detail is set. */
static void simple(AuditEngine *e, const AuditRecord *r, AuditKind kind, const char *op, uint64_t session_id,
                   const char *text, const char *detail)
{
        AuditFinding f;
        finding_init(&f, kind, r->term, op, r->card, r->ts);
        ref_add(&f, r->log, r->seq);
        f.session_id = session_id;
        if (detail)
                why(&f, "%s (%s)", text, detail);
        else
                why(&f, "%s", text);
        emit(e, &f, NULL);
}

static void terminal_checks(AuditEngine *e, const AuditRecord *r)
{
        LogInfo *li = &e->logs[r->log_index];
        AuditFinding f;

        if (li->last_seq && r->seq != li->last_seq + 1) {
                finding_init(&f, AUDIT_LOG_GAP, r->term, NULL, NULL, r->ts);
                ref_add(&f, r->log, li->last_seq);
                ref_add(&f, r->log, r->seq);
                why(&f, "records %" PRIu64 "-%" PRIu64 " of log %s are missing from the store",
                    li->last_seq + 1, r->seq - 1, r->log);
                emit(e, &f, NULL);
        }
        li->last_seq = r->seq;

        TermState *t = li->term_state;
        if (!t || !streq(li->term, r->term)) {
                t = audit_map_get(e->terms, r->term, true);
                if (!t) {
                        e->error = -ENOMEM;
                        return;
                }
                li->term_state = cache_key(li->term, sizeof(li->term), r->term) ? t : NULL;
        }
        if (t->any && t->last_log != r->log_index && r->seq == 1 && !streq(t->last_ev, "agent.stop")) {
                finding_init(&f, AUDIT_LOG_GAP, r->term, NULL, NULL, r->ts);
                ref_add(&f, t->last.log, t->last.seq);
                ref_add(&f, r->log, r->seq);
                why(&f,
                    "%s opened a new log while its log %s ended at seq %" PRIu64 " without agent.stop: "
                    "what it wrote after that never reached the centre",
                    r->term, t->last.log, t->last.seq);
                emit(e, &f, NULL);
        }
        if (t->any && r->ts - t->last_ts > e->o.silent_usec && !t->silent_reported) {
                char a[16], b[16];
                audit_format_date(t->last_ts, a, sizeof(a));
                audit_format_date(r->ts, b, sizeof(b));
                finding_init(&f, AUDIT_TERMINAL_SILENT, r->term, NULL, NULL, r->ts);
                ref_add(&f, t->last.log, t->last.seq);
                ref_add(&f, r->log, r->seq);
                why(&f, "no record from %s for %" PRId64 " days (%s to %s; limit %" PRId64 " days)", r->term,
                    (r->ts - t->last_ts) / AUDIT_DAY, a, b, e->o.silent_usec / AUDIT_DAY);
                emit(e, &f, NULL);
        }
        t->any = true;
        t->last_log = r->log_index;
        copy(t->last.log, sizeof(t->last.log), r->log);
        t->last.seq = r->seq;
        t->last_ts = r->ts;
        t->silent_reported = false;
        copy(t->last_ev, sizeof(t->last_ev), r->ev);
}

int audit_engine_feed(AuditEngine *e, const AuditRecord *r)
{
        const char *ev = r->ev, *reason;
        int rr;

        if (r->log_index >= e->n_logs)
                return -EINVAL;
        terminal_checks(e, r);

        /* The operator a record is about: its own, else the card's (auth.fail has no op). */
        LogInfo *li = &e->logs[r->log_index];
        const char *op = r->op;
        if (!op && r->card) {
                if (!li->card_cached || !streq(li->card, r->card)) {
                        li->card_op = audit_registry_card_operator(e->reg, r->card);
                        li->card_cached = cache_key(li->card, sizeof(li->card), r->card);
                }
                op = li->card_op;
        }
        if (op) {
                OpState *os = li->op_state;
                if (!os || !streq(li->op, op)) {
                        os = audit_map_get(e->ops, op, true);
                        if (!os)
                                return -ENOMEM;
                        li->op_state = cache_key(li->op, sizeof(li->op), op) ? os : NULL;
                }
                if (!os->first_seen)
                        os->first_seen = r->ts;
        }

        rr = audit_sessions_feed(e->sessions, r);
        if (rr < 0)
                return rr;

        if (streq(ev, "auth.fail")) {
                reason = r->reason;
                const char *method = r->method;
                OpOffice *st = stats_for(e, r->term, op, r->ts);
                if (st)
                        st->st.auth_failures += audit_record_count(r);
                if (reason && streq(reason, "card-suspended"))
                        simple(e, r, AUDIT_SUSPENDED_CARD_USED, op, 0,
                               "a suspended card was presented and refused", reason);
                else if (reason && streq(reason, "card-returned"))
                        simple(e, r, AUDIT_RETURNED_CARD_USED, op, 0,
                               "a returned card was presented and refused", reason);
                else if (reason && streq(reason, "lending-suspected"))
                        simple(e, r, AUDIT_LENDING_SUSPECTED, op, 0,
                               "card and fingerprint of different operators", method);
                else if (is_pin_failure(reason))
                        burst(e, r, AUDIT_PIN_FAILURES_BURST, e->o.pin_burst, op);
                else if (is_finger_failure(reason, method))
                        burst(e, r, AUDIT_FINGER_FAILURES_BURST, e->o.finger_burst, op);
        } else if (streq(ev, "card.left")) {
                AuditSession *s = audit_sessions_last(e->sessions, r->log_index);
                bool same = s && (!r->card || streq(s->card, r->card));
                OpOffice *st = stats_for(e, r->term, op ?: (same ? s->op : NULL), r->ts);
                if (st)
                        st->st.card_left++;
                simple(e, r, AUDIT_CARD_LEFT, op ?: (same && s->op[0] ? s->op : NULL), same ? s->id : 0,
                       "card left in the reader after the lock", r->reason);
        } else if (streq(ev, "lock")) {
                reason = r->reason;
                if (reason && streq(reason, "bypass")) {
                        char detail[64];
                        snprintf(detail, sizeof(detail), "%" PRIu64 " times, folded into this record",
                                 r->repeats);
                        simple(e, r, AUDIT_LOCK_BYPASSED, op, 0,
                               "the desktop was unlocked behind mamori's back and locked again",
                               r->repeats ? detail : NULL);
                }
        } else if (streq(ev, "emergency.lock")) {
                simple(e, r, AUDIT_EMERGENCY, op, 0, "emergency lock by the policy bundle", r->term);
        } else if (streq(ev, "app.op")) {
                OpOffice *st = record_stats(e, r, op);
                if (st) {
                        if (!st->st.app_ops) {
                                copy(st->first_op.log, sizeof(st->first_op.log), r->log);
                                st->first_op.seq = r->seq;
                        }
                        st->st.app_ops++;
                        copy(st->last_op.log, sizeof(st->last_op.log), r->log);
                        st->last_op.seq = r->seq;
                        st->last_op_ts = r->ts;
                        copy(st->term, sizeof(st->term), r->term);
                }
        } else if (streq(ev, "pin.change") || streq(ev, "password.change")) {
                if (op) {
                        OpState *os = audit_map_get(e->ops, op, true);
                        if (!os)
                                return -ENOMEM;
                        os->last_change = r->ts;
                        os->overdue_reported = false;
                        OpOffice *st = stats_for(e, r->term, op, r->ts);
                        if (st) {
                                st->st.pin_changes++;
                                st->st.last_pin_change = r->ts;
                        }
                }
        }
        return e->error;
}

int audit_engine_alert(AuditEngine *e, int64_t ts, const char *kind, const char *term, const char *log,
                       uint64_t seq, const char *detail)
{
        AuditKind k;
        AuditFinding f;

        if (streq(kind, "fork") || streq(kind, "bad-chain"))
                k = AUDIT_LOG_FORK;
        else if (streq(kind, "bad-signature") || streq(kind, "wrong-term") || streq(kind, "log-owner"))
                k = AUDIT_LOG_BAD_SIGNATURE;
        else
                return 0; /* new-log and silent: the record stream proves those (log-gap, terminal-silent) */
        finding_init(&f, k, term, NULL, NULL, ts);
        ref_add(&f, log, seq);
        why(&f, "collector refused records of %s (%s): %s", term && *term ? term : "?", kind, detail ?: "");
        emit(e, &f, NULL);
        return 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static double median(uint64_t *v, size_t n)
{
        qsort(v, n, sizeof(uint64_t), cmp_u64);
        return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2.0;
}

/*
 * app-ops-unusual: per office and role, the robust z-score z = 0.6745 (x - median) / MAD of each
 * operator's app.op count in the window against its peers; unusual when z > unusual_z (3.5, Iglewicz
 * and Hoaglin), the count is at least unusual_ratio (2) times the median, and the group has at least
 * unusual_min_peers (4) operators. A MAD of 0 (most peers equal)
 * falls back to 1.253314 × the mean absolute deviation.
 */
static int unusual_app_ops(AuditEngine *e)
{
        size_t n = audit_map_size(e->op_office);
        _cleanup_free_ bool *done = calloc(n ? n : 1, sizeof(bool));
        _cleanup_free_ uint64_t *v = calloc(n ? n : 1, sizeof(uint64_t));
        _cleanup_free_ uint64_t *dev = calloc(n ? n : 1, sizeof(uint64_t));
        _cleanup_free_ size_t *members = calloc(n ? n : 1, sizeof(size_t));

        if (!done || !v || !dev || !members)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                OpOffice *a = audit_map_at(e->op_office, i, NULL);
                size_t m = 0;
                if (done[i])
                        continue;
                for (size_t j = i; j < n; j++) {
                        OpOffice *b = audit_map_at(e->op_office, j, NULL);
                        if (!done[j] && streq(a->st.office, b->st.office) && streq(a->role, b->role)) {
                                done[j] = true;
                                members[m] = j;
                                v[m++] = b->st.app_ops;
                        }
                }
                if (m < e->o.unusual_min_peers)
                        continue;
                double med = median(v, m), sum = 0;
                for (size_t k = 0; k < m; k++) {
                        double d = fabs((double)v[k] - med);
                        dev[k] = (uint64_t)(d * 2); /* half-units keep .5 medians exact */
                        sum += d;
                }
                double mad = median(dev, m) / 2.0, scale = 0.6745 / mad;
                if (mad == 0) {
                        if (sum == 0)
                                continue;
                        scale = 0.6745 / (1.253314 * sum / (double)m);
                }
                for (size_t k = 0; k < m; k++) {
                        OpOffice *x = audit_map_at(e->op_office, members[k], NULL);
                        double z = ((double)x->st.app_ops - med) * scale;
                        /* Few peers make the MAD small: also ask for a large effect (twice the median). */
                        if (z <= e->o.unusual_z || (double)x->st.app_ops < e->o.unusual_ratio * med)
                                continue;
                        AuditFinding f;
                        finding_init(&f, AUDIT_APP_OPS_UNUSUAL, x->term, x->st.op, NULL, x->last_op_ts);
                        ref_add(&f, x->first_op.log, x->first_op.seq);
                        ref_add(&f, x->last_op.log, x->last_op.seq);
                        why(&f,
                            "%s made %" PRIu64
                            " app operations; the %zu %s operators of %s have a median of %.0f "
                            "(robust z = %.1f > %.1f, %.1f times the median)",
                            x->st.op, x->st.app_ops, m, x->role, x->st.office, med, z, e->o.unusual_z,
                            (double)x->st.app_ops / med);
                        emit(e, &f, NULL);
                }
        }
        return 0;
}

void audit_engine_check_silence(AuditEngine *e, int64_t end)
{
        for (size_t i = 0; i < audit_map_size(e->terms); i++) {
                const char *term;
                TermState *t = audit_map_at(e->terms, i, &term);
                if (t->silent_reported || end - t->last_ts <= e->o.silent_usec)
                        continue;
                AuditFinding f;
                char a[16];
                audit_format_date(t->last_ts, a, sizeof(a));
                finding_init(&f, AUDIT_TERMINAL_SILENT, term, NULL, NULL, t->last_ts + e->o.silent_usec);
                ref_add(&f, t->last.log, t->last.seq);
                why(&f, "no record from %s since %s (%" PRId64 " days; limit %" PRId64 " days)", term, a,
                    (end - t->last_ts) / AUDIT_DAY, e->o.silent_usec / AUDIT_DAY);
                t->silent_reported = true;
                emit(e, &f, NULL);
        }
}

int audit_engine_grow(AuditEngine *e, unsigned n_logs)
{
        if (n_logs <= e->n_logs)
                return 0;
        LogInfo *n = realloc(e->logs, n_logs * sizeof(LogInfo));
        if (!n)
                return -ENOMEM;
        memset(n + e->n_logs, 0, (n_logs - e->n_logs) * sizeof(LogInfo));
        e->logs = n;
        e->n_logs = n_logs;
        return audit_sessions_grow(e->sessions, n_logs);
}

int audit_engine_finish(AuditEngine *e)
{
        audit_sessions_finish(e->sessions);
        audit_engine_check_silence(e, e->o.to < e->o.now ? e->o.to : e->o.now);
        if (!e->o.live) {
                int r = unusual_app_ops(e);
                if (r < 0)
                        return r;
        }
        return e->error;
}

size_t audit_engine_operator_stats(const AuditEngine *e, const AuditOperatorStats **ret)
{
        AuditEngine *m = (AuditEngine *)e;
        size_t n = audit_map_size(e->op_office);
        free(m->stats);
        m->stats = calloc(n ? n : 1, sizeof(AuditOperatorStats));
        if (!m->stats) {
                *ret = NULL;
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                m->stats[i] = ((OpOffice *)audit_map_at(e->op_office, i, NULL))->st;
        *ret = m->stats;
        return n;
}
