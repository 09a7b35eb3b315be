/* The audit core shared by ledger, audit, trace, watch and self-inspection: records, sessions, findings. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mamori/encoding.h"
#include "mamori/json.h"
#include "mamori/oplog-record.h"
#include "store.h"

#define AUDIT_ID_MAX (RECORD_ID_MAX + 1)
#define AUDIT_DAY    (INT64_C(86400) * 1000000)

/* ---- one stored record, as the audit reads it (audit-stream.c) ---- */

typedef struct AuditRecord {
        unsigned log_index; /* index of its log in the stream, 0 … n_logs-1 */
        const char *log;
        uint64_t seq;
        int64_t ts;
        const char *term, *ev;
        const char *op, *card;       /* NULL = null */
        const char *reason, *method; /* data.reason, data.method when strings, else NULL */
        uint64_t repeats;            /* data.repeats (a record-limit summary: occurrences counted), else 0 */
        const char *data_json;       /* the data object as it stands in the line (audit_record_data) */
        size_t data_len;
        const char *line; /* the stored line, for trace */
        size_t len;
} AuditRecord;

/*
 * Scan one stored line (JCS, an optional final "\n") for the fields above (audit-record.c): bounded, no
 * allocation; strings are decoded into scratch (scratch_size >= len + 1 always suffices), which with
 * line must outlive *ret. -EBADMSG malformed or a field missing, -E2BIG too long or nested too deep,
 * -ERANGE an integer beyond int64. log and log_index are left for the caller.
 */
int audit_record_scan(const char *line, size_t len, char *scratch, size_t scratch_size, AuditRecord *ret);
/* The data object as a tree, for the few readers that print all of it (trace). */
int audit_record_data(const AuditRecord *r, JsonValue **ret);
/* How many occurrences a record stands for: data.repeats of a summary, else 1. */
static inline uint64_t audit_record_count(const AuditRecord *r)
{
        return r->repeats > 0 ? r->repeats : 1;
}

/*
 * All stored logs merged into one stream in time order (ts, then log, then seq): one cursor per log,
 * one parsed record per log in memory. since_usec > 0 starts each log at its first record with
 * ts >= since_usec - AUDIT_DAY (binary search on seq; a log's ts only grows except at clock jumps).
 */
typedef struct AuditStream AuditStream;
int audit_stream_open(Store *s, int64_t since_usec, AuditStream **ret);
/* The same over given logs, each after a given seq; log_index = index in starts (watch keeps them stable).
 */
typedef struct AuditStreamStart {
        char log[ID128_STRING_MAX];
        uint64_t after;
} AuditStreamStart;
int audit_stream_open_from(Store *s, const AuditStreamStart *starts, unsigned n, AuditStream **ret);
/* 1 with the next record (valid until the next call), 0 at the end, < 0 error. */
int audit_stream_next(AuditStream *st, AuditRecord *ret);
/* Trace: skip, without parsing, every line that contains none of needles (borrowed; set before the first
 * next). */
void audit_stream_set_filter(AuditStream *st, const char *const *needles, size_t n);
unsigned audit_stream_n_logs(const AuditStream *st);
uint64_t audit_stream_total(const AuditStream *st); /* records stored, for progress */
AuditStream *audit_stream_free(AuditStream *st);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditStream *, audit_stream_free);
#define _cleanup_audit_stream_ _cleanup_(audit_stream_freep)

/* ---- the registry, as one snapshot (audit-registry.c) ---- */

typedef struct AuditRegistry AuditRegistry;
/* -EBADMSG: an office's working days in the store do not parse; *reterr_bad_office (may be NULL) then
 * names that office (malloc'd). */
int audit_registry_load(Store *s, AuditRegistry **ret, char **reterr_bad_office);
AuditRegistry *audit_registry_free(AuditRegistry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditRegistry *, audit_registry_free);
#define _cleanup_audit_registry_ _cleanup_(audit_registry_freep)
/* Office of a terminal, or NULL when unregistered. */
const char *audit_registry_office(const AuditRegistry *reg, const char *term);
bool audit_registry_office_exists(const AuditRegistry *reg, const char *office);
/* Office hours in minutes after local midnight; false when the office has none. */
bool audit_registry_hours(const AuditRegistry *reg, const char *office, int *ret_open, int *ret_close);
/* An office's working days (bit per tm_wday; mon-fri unless set) and whether a local date (YYYY-MM-DD)
 * is one of its holidays. */
unsigned audit_registry_days(const AuditRegistry *reg, const char *office);
bool audit_registry_holiday(const AuditRegistry *reg, const char *office, const char *date);
/* Group of a group card, or NULL (individual or unknown card). */
const char *audit_registry_card_group(const AuditRegistry *reg, const char *card);
/* Operator of an individual card, or NULL. */
const char *audit_registry_card_operator(const AuditRegistry *reg, const char *card);
bool audit_registry_group_member(const AuditRegistry *reg, const char *group, const char *op);
/* First role of an operator ("counter" when none is set). */
const char *audit_registry_role(const AuditRegistry *reg, const char *op);
/* Up to max card ids registered to an operator (borrowed). */
size_t audit_registry_cards_of(const AuditRegistry *reg, const char *op, const char **ret, size_t max);
/* Terminals, in id order. */
size_t audit_registry_n_terminals(const AuditRegistry *reg);
const char *audit_registry_terminal(const AuditRegistry *reg, size_t i, const char **ret_office,
                                    int64_t *ret_last_seen);

/* ---- the closed set of finding kinds, DESIGN §12 (audit-kinds.c) ---- */

typedef enum AuditKind {
        AUDIT_OUTSIDE_HOURS,
        AUDIT_CARD_ON_TWO_TERMINALS,
        AUDIT_SUSPENDED_CARD_USED,
        AUDIT_RETURNED_CARD_USED,
        AUDIT_PIN_FAILURES_BURST,
        AUDIT_FINGER_FAILURES_BURST,
        AUDIT_CARD_LEFT,
        AUDIT_SECRET_OVERDUE,
        AUDIT_GROUP_WITHOUT_MEMBER,
        AUDIT_LENDING_SUSPECTED,
        AUDIT_LOCK_BYPASSED,
        AUDIT_LOG_GAP,
        AUDIT_LOG_FORK,
        AUDIT_LOG_BAD_SIGNATURE,
        AUDIT_TERMINAL_SILENT,
        AUDIT_APP_OPS_UNUSUAL,
        AUDIT_EMERGENCY,
        _AUDIT_KIND_MAX,
} AuditKind;

typedef enum AuditSeverity {
        AUDIT_LOW,
        AUDIT_MEDIUM,
        AUDIT_HIGH,
} AuditSeverity;

const char *audit_kind_name(AuditKind k);
AuditSeverity audit_kind_severity(AuditKind k);
const char *audit_kind_label_ja(AuditKind k);
const char *audit_severity_name(AuditSeverity s);

/* ---- sessions, rebuilt from each log's records (audit-sessions.c) ---- */

typedef struct AuditSession {
        uint64_t id; /* 1, 2, … in the order sessions start */
        unsigned log_index;
        char log[ID128_STRING_MAX];
        char term[AUDIT_ID_MAX], op[AUDIT_ID_MAX], card[SHA256_HEX_MAX], method[32];
        int64_t start, end; /* end 0 while open */
        uint64_t start_seq, end_seq;
        char end_reason[32]; /* session.end reason, or "agent-start", "no-end", "open" */
        uint32_t violations; /* bit per AuditKind */
} AuditSession;

typedef struct AuditSessions AuditSessions;
typedef void (*audit_session_fn)(const AuditSession *s, void *userdata);
/* opened/closed may be NULL. */
int audit_sessions_new(unsigned n_logs, audit_session_fn opened, audit_session_fn closed, void *userdata,
                       AuditSessions **ret);
AuditSessions *audit_sessions_free(AuditSessions *t);
/* Apply one record of the stream (session.start, session.end, agent.start, agent.stop). */
int audit_sessions_feed(AuditSessions *t, const AuditRecord *r);
/* The open session of a log, or NULL; the last session of a log (open or closed), or NULL. */
AuditSession *audit_sessions_open(AuditSessions *t, unsigned log_index);
AuditSession *audit_sessions_last(AuditSessions *t, unsigned log_index);
int audit_sessions_grow(AuditSessions *t, unsigned n_logs);
/* Close every open session as "open" (end of the stream): closed() sees them with end 0. */
void audit_sessions_finish(AuditSessions *t);

/* ---- findings (audit-findings.c) ---- */

typedef struct AuditRef {
        char log[ID128_STRING_MAX];
        uint64_t seq;
} AuditRef;

#define AUDIT_REFS_MAX 16

typedef struct AuditFinding {
        AuditKind kind;
        AuditSeverity severity;
        char term[AUDIT_ID_MAX], op[AUDIT_ID_MAX], card[SHA256_HEX_MAX]; /* "" = null */
        char office[AUDIT_ID_MAX];                                       /* of term; "" unknown */
        int64_t ts;
        AuditRef refs[AUDIT_REFS_MAX];
        unsigned n_refs;
        uint64_t session_id; /* the session it touches, 0 none */
        char why[256];
} AuditFinding;

typedef struct AuditOptions {
        int64_t from, to;                 /* findings with ts in [from, to); 0/INT64_MAX open */
        const char *office;               /* only findings of this office's terminals; NULL all */
        int64_t silent_usec;              /* terminal-silent beyond this gap (default 7 days) */
        int64_t max_age_usec;             /* secret-overdue (MaxAgeDays=183) */
        int64_t now;                      /* "now" for silence at the end of the data */
        unsigned pin_burst, finger_burst; /* failures within burst_usec */
        int64_t burst_usec;
        double unusual_z;     /* robust z-score beyond which app ops are unusual (3.5) … */
        double unusual_ratio; /* … and at least this many times the peers' median (2) */
        unsigned unusual_min_peers;
        bool live; /* watch: no end-of-data silence, no app-ops-unusual */
} AuditOptions;

void audit_options_default(AuditOptions *o);

typedef struct AuditEngine AuditEngine;
typedef void (*audit_finding_fn)(const AuditFinding *f, void *userdata);
/*
 * found() gets every finding in the window, as soon as it is proven (so watch can print it);
 * session_closed(), when not NULL, every session that started in the window, with the kinds of the
 * findings already raised on it (card-left may follow its end: ledger matches by session id).
 */
int audit_engine_new(const AuditOptions *o, const AuditRegistry *reg, unsigned n_logs,
                     audit_finding_fn found, audit_session_fn session_closed, void *userdata,
                     AuditEngine **ret);
AuditEngine *audit_engine_free(AuditEngine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditEngine *, audit_engine_free);
#define _cleanup_audit_engine_ _cleanup_(audit_engine_freep)
int audit_engine_feed(AuditEngine *e, const AuditRecord *r);
/* An alert of the collector (fork, bad signature …) as a finding. */
int audit_engine_alert(AuditEngine *e, int64_t ts, const char *kind, const char *term, const char *log,
                       uint64_t seq, const char *detail);
/* End of data: open sessions, silence up to min(to, now), app-ops-unusual. */
int audit_engine_finish(AuditEngine *e);
/* Live (watch): more logs than at creation; terminals silent at now (each reported once per silence). */
int audit_engine_grow(AuditEngine *e, unsigned n_logs);
void audit_engine_check_silence(AuditEngine *e, int64_t now);
/* Statistics the self-inspection and the HTML charts read. */
typedef struct AuditOperatorStats {
        char op[AUDIT_ID_MAX];
        char office[AUDIT_ID_MAX];
        uint64_t sessions, app_ops, auth_failures, pin_changes, card_left;
        int64_t last_pin_change;
} AuditOperatorStats;
size_t audit_engine_operator_stats(const AuditEngine *e, const AuditOperatorStats **ret);

/* Run the store through an engine made for st's logs: alerts, every record in time order, finish.
 * progress_what names the run on a terminal's progress line (NULL: none). */
int audit_run_stream(Store *s, AuditStream *st, AuditEngine *e, const char *progress_what);

/* ---- time (audit-time.c): DATE is YYYY-MM-DD in the centre's local time zone ---- */

/* Local midnight of DATE in µs; -EINVAL when malformed. */
int audit_parse_date(const char *s, int64_t *ret);
/* --from/--to (either NULL = open): [from midnight, the midnight after to). -EINVAL malformed, -ERANGE
 * empty. */
int audit_parse_window(const char *from_s, const char *to_s, int64_t *ret_from, int64_t *ret_to);
/* "HH:MM-HH:MM" → minutes. */
int audit_parse_hours(const char *s, int *ret_open, int *ret_close);
/* Working days: "mon tue …", commas or spaces, ranges "mon-fri" → bit per tm_wday (bit 0 Sunday). */
int audit_parse_days(const char *s, unsigned *ret_mask);
/* The canonical list ("mon tue wed thu fri"; buf >= 28); the short name of a tm_wday. */
void audit_format_days(unsigned mask, char *buf, size_t size);
const char *audit_day_name(int wday);
/* Local day of the week, 0 = Sunday. */
int audit_local_wday(int64_t usec);
/* Local "YYYY-MM-DD HH:MM:SS" (buf >= 20) and "YYYY-MM-DD" (buf >= 11). */
void audit_format_time(int64_t usec, char *buf, size_t size);
void audit_format_date(int64_t usec, char *buf, size_t size);
/* Minutes after local midnight; local day number (days since the epoch in local time); month 0-11. */
int audit_local_minutes(int64_t usec);
int64_t audit_local_day(int64_t usec);
int audit_local_month(int64_t usec, int *ret_year);

/* ---- progress on a terminal (audit-progress.c): only when stderr is a tty ---- */

typedef struct AuditProgress {
        const char *what;
        uint64_t total, done;
        uint64_t next_check;
        int64_t last_print;
        bool enabled;
} AuditProgress;
void audit_progress_init(AuditProgress *p, const char *what, uint64_t total);
void audit_progress_step(AuditProgress *p);
/* Ends the line after a run that returned r: "done", or "failed" when r < 0. */
void audit_progress_end(AuditProgress *p, int r);

/* ---- output helpers (audit-output.c) ---- */

void audit_json_string(FILE *f, const char *s);
void audit_csv_field(FILE *f, const char *s);
void audit_html_text(FILE *f, const char *s);
/* A finding as one JSON object of DESIGN §12 (no newline). */
void audit_finding_json(FILE *f, const AuditFinding *x);
