/* mamori-uploader: pushes the committed operation log to the collector exactly once and in order
 * (DESIGN.md §7), and fetches the signed policy bundle into [Policy] Directory. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>

#include "mamori/agent-config.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "mamori/message-ids.h"
#include "mamori/parse-util.h"
#include "mamori/receipt.h"
#include "mamori/time-util.h"
#include "mamori/quarantine-info.h"
#include "mamori/upload-cursor.h"
#include "upload-http.h"
#include "upload-policy.h"
#include "upload-reader.h"

#define BACKOFF_MIN_USEC    (250 * USEC_PER_MSEC)
#define ANSWER_MAX          (64u * 1024u)      /* a §7 answer is a small JSON object */
#define IDLE_RECHECK_USEC   (5 * USEC_PER_SEC) /* without inotify, or as a safety net */
#define BATCH_RECORDS_LIMIT 20000u             /* the collector's default batch bound */

struct uploader {
        struct agent_config config;
        const char *cursor_path;
        size_t batch_records, batch_bytes;
        bool verbose;

        UploadReader *reader;      /* the one being pushed: main_reader, or a quarantined log's */
        UploadReader *main_reader; /* [Log] Directory */
        UploadReader *quarantined; /* a quarantined log whose good part the collector lacks */
        uint64_t limit;            /* last seq to push of the log being pushed (UINT64_MAX: all) */
        char *quarantine_dir;      /* the quarantined log's directory while it is pushed */
        const char *push_dir;      /* the directory of the log being pushed */
        UploadHttp *http;
        UploadPolicy *policy;
        UploadBatch batch;
        EVP_PKEY *receipt_key; /* [Collector] ReceiptKey: what an acknowledgement must be signed by */

        sd_event *event;
        sd_event_source *step;         /* the upload loop: one step (one batch) per dispatch, ONESHOT */
        sd_event_source *policy_timer; /* every PollSec */
        sd_event_source *inotify;      /* the log directory; NULL until it exists, or after it went */
        bool backing_off;              /* the step waits out a pause that log activity must not cut short */
        uint64_t watchdog_usec, last_ping;

        char log[ID128_STRING_MAX]; /* local log id, "" until known */
        bool synced;                /* after is the collector's view of log */
        uint64_t after;             /* acknowledged seq of log */
        uint64_t saved;             /* what the cursor file says for log */
        Receipt receipt;            /* verified receipt for after (valid when has_receipt) */
        bool has_receipt;
        uint64_t read_usec; /* reading (and syncing) the last batch, for --verbose */

        uint64_t backoff_usec, backoff_max_usec;
        char last_problem[512]; /* to log a repeating failure once, not at every retry */
};

static bool journal_stderr;

_printf_(2, 3) static void ulog(int priority, const char *fmt, ...)
{
        static const char *const names[] = {"emerg",   "alert",  "crit", "error",
                                            "warning", "notice", "info", "debug"};
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (journal_stderr)
                fprintf(stderr, "<%d>%s\n", priority & 7, msg);
        else
                fprintf(stderr, "mamori-uploader: %s: %s\n", names[priority & 7], msg);
}

/* A failure that repeats at every retry is logged when it starts or changes, not each time.
 * message_id (include/mamori/message-ids.h) or NULL: in the journal, for the catalogue. */
_printf_(4, 5) static void problem_id(struct uploader *u, const char *message_id, int priority,
                                      const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (streq(msg, u->last_problem))
                return;
        snprintf(u->last_problem, sizeof(u->last_problem), "%s", msg);
        if (message_id && journal_stderr)
                sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority, "MESSAGE_ID=%s", message_id,
                                NULL);
        else
                ulog(priority, "%s", msg);
        (void)sd_notifyf(0, "STATUS=%s", msg);
}

#define problem(u, priority, ...) problem_id(u, NULL, priority, __VA_ARGS__)

static void recovered(struct uploader *u, const char *what)
{
        if (u->last_problem[0]) {
                ulog(LOG_NOTICE, "%s again", what);
                u->last_problem[0] = 0;
                (void)sd_notify(0, "STATUS=uploading");
        }
}

/* sd-event's watchdog pings between dispatches; a transfer can outlast WatchdogSec. */
static void watchdog_ping_during_transfer(struct uploader *u)
{
        uint64_t now;

        if (u->watchdog_usec == 0)
                return;
        now = now_mono_usec();
        if (now - u->last_ping >= u->watchdog_usec / 2) {
                (void)sd_notify(0, "WATCHDOG=1");
                u->last_ping = now;
        }
}

/* libcurl progress callback: SIGTERM ends a transfer at once. The signal stays pending (blocked)
 * until sd-event reads it, which it does as soon as the step returns. */
static bool abort_transfer(void *userdata)
{
        struct uploader *u = userdata;
        sigset_t pending;

        watchdog_ping_during_transfer(u);
        if (sigpending(&pending) < 0)
                return false;
        return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

/* The next upload step: at once, after the idle recheck (or log activity), or after a pause. */
enum next_step {
        STEP_NOW,
        STEP_IDLE,
        STEP_BACKOFF,
};

static int schedule_step(struct uploader *u, enum next_step next)
{
        uint64_t delay = 0, jitter = 0;
        int k;

        switch (next) {
        case STEP_NOW:
                break;
        case STEP_IDLE:
                delay = IDLE_RECHECK_USEC;
                break;
        case STEP_BACKOFF:
                u->backoff_usec = u->backoff_usec ? u->backoff_usec * 2 : BACKOFF_MIN_USEC;
                if (u->backoff_usec > u->backoff_max_usec)
                        u->backoff_usec = u->backoff_max_usec;
                /* Full jitter over the upper half: terminals that lost the collector together do not
                 * all come back in the same second. */
                if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != (ssize_t)sizeof(jitter))
                        jitter = 0;
                delay = u->backoff_usec / 2 + jitter % (u->backoff_usec / 2 + 1);
                break;
        }
        u->backing_off = next == STEP_BACKOFF;
        /* From now, not from the start of this loop iteration: the step may have waited on the network. */
        k = sd_event_source_set_time(u->step, now_mono_usec() + delay);
        if (k >= 0)
                k = sd_event_source_set_enabled(u->step, SD_EVENT_ONESHOT);
        return k;
}

static int on_log_directory(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
        struct uploader *u = userdata;

        /* The directory was removed or renamed: watch the new one from the next step. */
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                u->inotify = sd_event_source_disable_unref(u->inotify);
        /* A busy log must not shorten a pause. */
        if (u->backing_off)
                return 0;
        return schedule_step(u, STEP_NOW);
}

static void watch_log_directory(struct uploader *u)
{
        if (u->inotify)
                return;
        /* Appends are IN_MODIFY, new segments IN_CREATE; a new log directory needs a new watch.
         * Failure (no directory yet) is retried at the next step; the idle recheck covers it. */
        (void)sd_event_add_inotify(u->event, &u->inotify, u->config.log_directory,
                                   IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF,
                                   on_log_directory, u);
}

static const char *http_error(int k)
{
        switch (k) {
        case -ECONNREFUSED:
                return "connection refused";
        case -ETIMEDOUT:
                return "timed out";
        case -EPROTO:
                return "TLS refused";
        case -EFBIG:
                return "answer too large";
        default:
                return strerror(-k);
        }
}

static int save_cursor(struct uploader *u)
{
        UploadCursor c = {.acked = u->after};
        int k;

        /* Only a verified receipt for exactly this seq moves the file. */
        if (u->saved == u->after || !u->has_receipt || u->receipt.acked != u->after)
                return 0;
        memcpy(c.log, u->log, sizeof(c.log));
        c.has_receipt = true;
        c.receipt = u->receipt;
        k = upload_cursor_save(u->cursor_path, &c);
        if (k < 0) {
                problem(u, LOG_ERR, "cannot write cursor %s: %s", u->cursor_path, strerror(-k));
                return k;
        }
        u->saved = u->after;
        return 0;
}

/* {"log":L,"acked":N,...} of our log → N (a 409 gap answer; also the outer shape of a 200). */
static int parse_acked(struct uploader *u, const JsonValue *o, uint64_t *ret)
{
        const char *log;
        int64_t acked;

        if (json_object_get_string(o, "log", &log) < 0 || !streq(log, u->log) ||
            json_object_get_integer(o, "acked", &acked) < 0 || acked < 0 || acked > RECORD_INT_MAX)
                return -EBADMSG;
        *ret = (uint64_t)acked;
        return 0;
}

static int parse_answer(const UploadResponse *r, JsonValue **ret)
{
        if (!r->body || json_parse(r->body, r->len, NULL, 0, ret, NULL) < 0 || (*ret)->type != JSON_OBJECT)
                return -EBADMSG;
        return 0;
}

/* Line seq of the batch b, if it holds it. */
static const char *batch_line(const UploadBatch *b, uint64_t seq, size_t *ret_len)
{
        const char *p = b->data, *end = b->data + b->len;

        if (b->count == 0 || seq < b->first_seq || seq > b->last_seq)
                return NULL;
        for (uint64_t s = b->first_seq; p < end; s++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl)
                        return NULL;
                if (s == seq) {
                        *ret_len = (size_t)(nl - p);
                        return p;
                }
                p = nl + 1;
        }
        return NULL;
}

/*
 * A 200 answer: {"log":L,"acked":N,"receipt":{…}}, believed only through its receipt (DESIGN.md §7):
 * signed by [Collector] ReceiptKey, for our log and that N, and its line hash that of our own record
 * N (b, when it holds N or N+1, else the log files). 0 with *ret_receipt; -EBADMSG with *ret_why.
 */
static int verified_ack(struct uploader *u, const UploadResponse *r, const UploadBatch *b,
                        Receipt *ret_receipt, const char **ret_why)
{
        _cleanup_json_ JsonValue *o = NULL;
        const char *line_n = NULL, *line_next = NULL;
        size_t len_n = 0, len_next = 0;
        Receipt rc;
        uint64_t acked;
        int k;

        *ret_why = "not {\"log\":L,\"acked\":N} of our log";
        if (parse_answer(r, &o) < 0 || parse_acked(u, o, &acked) < 0)
                return -EBADMSG;
        k = receipt_from_json(json_object_get(o, "receipt"), &rc, ret_why);
        if (k < 0) {
                if (!json_object_get(o, "receipt"))
                        *ret_why = "no receipt";
                return -EBADMSG;
        }
        if (rc.acked != acked || !streq(rc.log, u->log)) {
                *ret_why = "its receipt is for another log or seq than the answer";
                return -EBADMSG;
        }
        if (b) {
                line_n = batch_line(b, acked, &len_n);
                line_next = batch_line(b, acked + 1, &len_next);
        }
        if (line_n || line_next || acked == 0)
                k = receipt_check_lines(&rc, u->receipt_key, u->log, line_n, len_n, line_next, len_next,
                                        ret_why);
        else
                k = receipt_check_log(&rc, u->receipt_key, u->push_dir, u->log, ret_why);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return -EBADMSG;
        *ret_receipt = rc;
        return 0;
}

/* An acknowledgement that does not hold: never believed, the cursor stays, retried after a pause. */
static void protocol_error(struct uploader *u, const char *what, long status, const char *why)
{
        problem(u, LOG_CRIT,
                "log %s: protocol error: the collector's %s answer (%ld) is refused: %s; cursor stays at "
                "seq "
                "%" PRIu64 ", retrying (check [Collector] ReceiptKey= and the collector's alerts)",
                u->log, what, status, why, u->after);
}

/* Learn where the collector stands for our log (no cursor, or one that does not hold). */
static int sync_acked(struct uploader *u)
{
        _cleanup_free_ char *path = NULL;
        UploadResponse r = {};
        const char *detail, *why = "";
        Receipt rc;
        int k;

        if (asprintf(&path, "/v1/logs/%s/acked", u->log) < 0)
                return -ENOMEM;
        k = upload_http_request(u->http, path, NULL, NULL, 0, NULL, ANSWER_MAX, &r, &detail);
        if (k == -ECANCELED)
                return k;
        if (k < 0) {
                problem(u, LOG_WARNING, "collector %s unreachable: %s (%s); retrying",
                        u->config.collector_url, http_error(k), detail);
                return k;
        }
        if (r.status != 200) {
                problem(u, LOG_ERR, "collector answered %ld to GET %s: %.200s", r.status, path,
                        r.body ? r.body : "");
                upload_response_done(&r);
                return -EPROTO;
        }
        k = verified_ack(u, &r, NULL, &rc, &why);
        upload_response_done(&r);
        if (k < 0) {
                protocol_error(u, "GET acked", 200, why);
                return -EPROTO;
        }
        u->after = rc.acked;
        u->receipt = rc;
        u->has_receipt = true;
        u->synced = true;
        ulog(LOG_INFO, "log %s: collector has acknowledged up to seq %" PRIu64 " (receipt verified)", u->log,
             rc.acked);
        return save_cursor(u) < 0 ? 0 : 0; /* a cursor write failure is retried after the next batch */
}

/* POST one batch; returns > 0 when it advanced, 0 when the same batch must be retried after a
 * pause, < 0 transport failure (also retried after a pause). */
static int post_batch(struct uploader *u, UploadBatch *b)
{
        UploadResponse r = {};
        const char *detail;
        uint64_t acked, t0 = now_mono_usec(), post_usec;
        int k;

        k = upload_http_request(u->http, "/v1/records", "application/x-ndjson", b->data, b->len, NULL,
                                ANSWER_MAX, &r, &detail);
        post_usec = now_mono_usec() - t0;
        if (k == -ECANCELED)
                return k;
        if (k < 0) {
                problem(u, LOG_WARNING,
                        "collector %s unreachable: %s (%s); %" PRIu64 " records waiting, retrying",
                        u->config.collector_url, http_error(k), detail, b->last_seq - u->after);
                return k;
        }
        if (r.status == 200) {
                Receipt rc;
                const char *why = "";

                k = verified_ack(u, &r, b, &rc, &why);
                upload_response_done(&r);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        protocol_error(u, "POST /v1/records", 200, why);
                        return 0;
                }
                acked = rc.acked;
                if (acked < b->first_seq - 1) {
                        /* The collector says it stores less than before this batch: resend from there. */
                        ulog(LOG_WARNING,
                             "log %s: collector acknowledged only seq %" PRIu64 ", resending from %" PRIu64,
                             u->log, acked, acked + 1);
                }
                u->after = acked;
                u->receipt = rc;
                u->has_receipt = true;
                recovered(u, "uploading");
                if (u->verbose)
                        ulog(LOG_DEBUG,
                             "log %s: sent %" PRIu64 "..%" PRIu64 ", acked %" PRIu64 " read_us=%" PRIu64
                             " post_us=%" PRIu64,
                             u->log, b->first_seq, b->last_seq, acked, u->read_usec, post_usec);
                (void)save_cursor(u);
                return 1;
        }
        if (r.status == 409) {
                _cleanup_json_ JsonValue *o = NULL;
                const char *error = NULL;
                int64_t seq = 0;

                if (parse_answer(&r, &o) >= 0 && json_object_get_string(o, "error", &error) >= 0 &&
                    streq(error, "fork")) {
                        /* Not a gap: the centre holds other bytes for a seq of this log. */
                        (void)json_object_get_integer(o, "seq", &seq);
                        problem(u, LOG_CRIT,
                                "log %s: FORK: the collector holds a different record at seq %" PRId64
                                " of this log; "
                                "nothing is skipped or resent over it, the cursor stays at seq %" PRIu64 "; "
                                "the centre must examine its fork alert (mamori-admin alerts) against "
                                "this terminal's log (mamorictl log verify)",
                                u->log, seq, u->after);
                        (void)sd_notify(0, "STATUS=fork");
                        upload_response_done(&r);
                        return 0;
                }
                if (o && !error && parse_acked(u, o, &acked) >= 0) {
                        /* A gap before our first seq: the collector lost or never got earlier records.
                         * Resend from what it has; the cursor moves only with the next receipt. */
                        upload_response_done(&r);
                        if (acked >= u->after) {
                                protocol_error(u, "409 gap", 409,
                                               "it claims a gap at or beyond what it acknowledged before");
                                return 0;
                        }
                        ulog(LOG_WARNING,
                             "log %s: collector has seq %" PRIu64 " (we sent from %" PRIu64
                             "), resending from %" PRIu64,
                             u->log, acked, b->first_seq, acked + 1);
                        u->after = acked;
                        return 1;
                }
        }
        if (r.status == 413 && u->batch_records > 1) {
                upload_response_done(&r);
                u->batch_records = b->count > 1 ? b->count / 2 : 1;
                u->batch_bytes = b->len > 2 ? b->len / 2 : 1;
                ulog(LOG_WARNING,
                     "collector refused a batch as too large; batches now at most %zu records, %zu bytes",
                     u->batch_records, u->batch_bytes);
                return 1;
        }
        /* A fork, bad data, an unknown or retired terminal, a store failure: never skip records;
         * say it loudly and try again later (the collector's operators see the alert). */
        problem_id(u,
                   r.status == 403 && r.body && strstr(r.body, "terminal-retired")
                           ? MAMORI_MESSAGE_TERMINAL_RETIRED
                           : NULL,
                   r.status >= 500 ? LOG_WARNING : LOG_CRIT,
                   "log %s: collector refused seq %" PRIu64 "..%" PRIu64
                   " with %ld: %.300s; retrying, nothing skipped",
                   u->log, b->first_seq, b->last_seq, r.status, r.body ? r.body : "");
        upload_response_done(&r);
        return 0;
}

static void poll_policy(struct uploader *u)
{
        struct upload_policy_result res;
        const char *detail = "";
        int k;

        k = upload_policy_poll(u->policy, u->http, &res, &detail);
        if (k == -ECANCELED)
                return;
        if (k == -ENOKEY) {
                problem(u, LOG_ERR, "policy signer key %s unreadable: no policy is fetched",
                        u->config.policy_signer_key);
                return;
        }
        if (k < 0) {
                problem(u, LOG_WARNING, "policy fetch from %s failed: %s (%s)", u->config.collector_url,
                        http_error(k), detail);
                return;
        }
        switch (res.outcome) {
        case UPLOAD_POLICY_INSTALLED:
                ulog(LOG_NOTICE, "policy installed serial=%" PRId64, res.serial);
                break;
        case UPLOAD_POLICY_REFUSED:
                problem_id(
                        u,
                        res.reason && streq(res.reason, "terminal-retired") ? MAMORI_MESSAGE_TERMINAL_RETIRED
                                                                            : NULL,
                        LOG_CRIT, "policy from the collector refused (status %ld, serial %" PRId64 "): %s",
                        res.status, res.serial, res.reason ? res.reason : "?");
                break;
        case UPLOAD_POLICY_UNCHANGED:
        case UPLOAD_POLICY_NONE:
                break;
        }
}

/* After `mamorictl log quarantine` the cursor names the old log: its good records the collector
 * lacks (up to the seq quarantine.json gives, never the damage) are pushed before the new log. */
static bool pick_quarantined(struct uploader *u)
{
        _cleanup_free_ char *dir = NULL;
        struct quarantine_info q;
        char current[ID128_STRING_MAX] = "";
        const char *why = "";
        UploadCursor c;

        /* Which log the cursor names is taken from it unverified; how far, only through its receipt
         * checked against that log's records, or from the collector. */
        if (upload_cursor_load(u->cursor_path, &c) < 0 ||
            (upload_reader_log_id(u->main_reader, current) >= 0 && streq(current, c.log)) ||
            quarantine_info_find(u->config.log_directory, c.log, &dir, &q) < 0)
                return false;
        /* Done (a receipt for the last good record cannot be checked against the next one: that
         * is the damage). A cursor that lies here costs the push, never a record: nothing in a
         * quarantine is ever deleted. */
        if (c.acked >= q.seq)
                return false;
        u->quarantined = upload_reader_free(u->quarantined);
        if (upload_reader_new(dir, &u->quarantined) < 0)
                return false;
        u->reader = u->quarantined;
        u->limit = q.seq;
        free(u->quarantine_dir);
        u->quarantine_dir = TAKE_PTR(dir);
        u->push_dir = u->quarantine_dir;
        memcpy(u->log, c.log, sizeof(u->log));
        u->synced = false;
        u->saved = UINT64_MAX;
        u->has_receipt = false;
        if (upload_cursor_load_verified(u->cursor_path, u->receipt_key, u->push_dir, u->log, &c, &why) >=
            0) {
                u->after = u->saved = c.acked;
                u->receipt = c.receipt;
                u->has_receipt = true;
                u->synced = true;
        }
        ulog(LOG_NOTICE,
             "log %s was quarantined at %s:%" PRIu64 ": pushing its good records up to seq %" PRIu64
             " from %s before the new log",
             q.log, q.file, q.line, q.seq, u->push_dir);
        return true;
}

/* One step of the upload loop: at most one batch. Says when the next one is due. */
static enum next_step upload_step(struct uploader *u)
{
        size_t max_records;
        uint64_t t0;
        int k;

        watch_log_directory(u);
        if (u->log[0] && u->limit != UINT64_MAX && u->synced && u->after >= u->limit) {
                ulog(LOG_NOTICE, "quarantined log %s: its good records are acknowledged up to seq %" PRIu64,
                     u->log, u->after);
                u->reader = u->main_reader;
                u->push_dir = u->config.log_directory;
                u->quarantined = upload_reader_free(u->quarantined);
                u->limit = UINT64_MAX;
                u->log[0] = 0;
        }
        if (!u->log[0] && pick_quarantined(u))
                return STEP_NOW;
        if (!u->log[0]) {
                UploadCursor c;

                u->reader = u->main_reader;
                u->push_dir = u->config.log_directory;
                u->limit = UINT64_MAX;
                k = upload_reader_log_id(u->reader, u->log);
                if (k == -ENOENT)
                        return STEP_IDLE;
                if (k < 0) {
                        u->log[0] = 0;
                        problem(u, LOG_CRIT, "local log in %s unreadable: %s", u->config.log_directory,
                                strerror(-k));
                        return STEP_BACKOFF;
                }
                u->synced = false;
                u->saved = UINT64_MAX;
                u->has_receipt = false;
                /* The cursor counts only through its receipt, checked against our own log: a cursor
                 * someone wrote by hand makes us ask the collector instead. */
                const char *why = "";
                k = upload_cursor_load_verified(u->cursor_path, u->receipt_key, u->config.log_directory,
                                                u->log, &c, &why);
                if (k >= 0) {
                        u->after = u->saved = c.acked;
                        u->receipt = c.receipt;
                        u->has_receipt = true;
                        u->synced = true;
                } else if (k != -ENOENT && k != -ESTALE)
                        ulog(LOG_WARNING, "cursor %s not believed (%s): asking the collector",
                             u->cursor_path,
                             k == -ENOKEY    ? "no receipt"
                             : k == -EBADMSG ? why
                                             : strerror(-k));
        }
        if (!u->synced) {
                k = sync_acked(u);
                if (k == -ECANCELED)
                        return STEP_NOW; /* the pending SIGTERM is dispatched first */
                return k < 0 ? STEP_BACKOFF : STEP_NOW;
        }
        t0 = now_mono_usec();
        max_records = u->batch_records;
        if (u->limit != UINT64_MAX && u->limit - u->after < max_records)
                max_records = (size_t)(u->limit - u->after);
        k = upload_reader_read(u->reader, u->after, max_records, u->batch_bytes, &u->batch);
        u->read_usec = now_mono_usec() - t0;
        if (k < 0) {
                problem(u, LOG_CRIT,
                        "local log in %s: cannot read after seq %" PRIu64 ": %s; nothing skipped",
                        u->config.log_directory, u->after,
                        k == -EBADMSG ? "not a continuous log" : strerror(-k));
                return STEP_BACKOFF;
        }
        if (k == 0)
                return STEP_IDLE;
        if (!streq(u->batch.log, u->log)) {
                /* mamorid started a new log: its own cursor. */
                ulog(LOG_NOTICE, "local log changed from %s to %s", u->log, u->batch.log);
                u->log[0] = 0;
                return STEP_NOW;
        }
        k = post_batch(u, &u->batch);
        if (k > 0) {
                u->backoff_usec = 0;
                return STEP_NOW;
        }
        return k == -ECANCELED ? STEP_NOW : STEP_BACKOFF;
}

static int on_step(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct uploader *u = userdata;
        int k;

        k = schedule_step(u, upload_step(u));
        if (k < 0) {
                ulog(LOG_ERR, "cannot schedule the next upload: %s", strerror(-k));
                return sd_event_exit(u->event, k);
        }
        return 0;
}

static int on_policy_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct uploader *u = userdata;
        int k;

        poll_policy(u);
        k = sd_event_source_set_time(s, now_mono_usec() + u->config.poll_usec);
        if (k < 0) {
                ulog(LOG_ERR, "cannot schedule the next policy fetch: %s", strerror(-k));
                return sd_event_exit(u->event, k);
        }
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct uploader *u = userdata;
        return sd_event_exit(u->event, 0);
}

/* SIGHUP: nothing to reload (the configuration is read at start); not a reason to die. */
static int on_ignored_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        return 0;
}

static int add_signal(struct uploader *u, int sig, sd_event_signal_handler_t handler)
{
        _cleanup_(sd_event_source_unrefp) sd_event_source *s = NULL;
        int k;

        k = sd_event_add_signal(u->event, &s, sig, handler, u);
        /* Before any step or policy fetch that is due in the same iteration. */
        if (k >= 0)
                k = sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IMPORTANT);
        if (k >= 0)
                k = sd_event_source_set_floating(s, true); /* owned by the loop */
        return k;
}

static int setup_event_loop(struct uploader *u)
{
        int k;

        k = sd_event_new(&u->event);
        if (k < 0)
                return k;
        if ((k = add_signal(u, SIGTERM, on_exit_signal)) < 0 ||
            (k = add_signal(u, SIGINT, on_exit_signal)) < 0 ||
            (k = add_signal(u, SIGHUP, on_ignored_signal)) < 0)
                return k;
        /* At start the policy first, as a terminal that was off may hold a stale one; then it is due
         * every PollSec, between batches. Accuracy 1 µs: a step "now" must not wait for coalescing. */
        k = sd_event_add_time(u->event, &u->policy_timer, CLOCK_MONOTONIC, 0, 1, on_policy_timer, u);
        if (k >= 0)
                k = sd_event_source_set_priority(u->policy_timer, SD_EVENT_PRIORITY_NORMAL - 1);
        if (k >= 0) /* time sources start as ONESHOT; this one re-arms itself */
                k = sd_event_source_set_enabled(u->policy_timer, SD_EVENT_ON);
        if (k < 0)
                return k;
        k = sd_event_add_time(u->event, &u->step, CLOCK_MONOTONIC, 0, 1, on_step, u);
        if (k >= 0)
                k = sd_event_source_set_enabled(u->step, SD_EVENT_ONESHOT);
        if (k < 0)
                return k;
        /* The unit is Type=notify with WatchdogSec=: pings at half WATCHDOG_USEC when set. */
        k = sd_event_set_watchdog(u->event, true);
        if (k < 0)
                return k;
        if (sd_watchdog_enabled(0, &u->watchdog_usec) <= 0)
                u->watchdog_usec = 0;
        watch_log_directory(u);
        return 0;
}

static int run(struct uploader *u)
{
        UploadHttpParams hp = {
                .url = u->config.collector_url,
                .ca = u->config.collector_ca,
                .client_cert = u->config.client_cert,
                .client_key = u->config.client_key,
                .connect_timeout_ms = 10000,
                .timeout_ms = 120000,
                .abort_cb = abort_transfer,
                .userdata = u,
        };
        _cleanup_free_ char *cred_cert = NULL, *cred_key = NULL;
        const char *creds = secure_getenv("CREDENTIALS_DIRECTORY");
        sigset_t mask;
        int k;

        /* Under systemd the client identity comes as credentials (LoadCredential=). */
        if (creds && asprintf(&cred_cert, "%s/client.pem", creds) >= 0 &&
            asprintf(&cred_key, "%s/client.key", creds) >= 0 && access(cred_cert, R_OK) == 0 &&
            access(cred_key, R_OK) == 0) {
                hp.client_cert = cred_cert;
                hp.client_key = cred_key;
        }

        /* Blocked before libcurl starts any thread, so that they stay with sd-event's signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        signal(SIGPIPE, SIG_IGN);

        k = upload_http_new(&hp, &u->http);
        if (k < 0) {
                ulog(LOG_ERR, "cannot use [Collector] URL=%s: %s", u->config.collector_url,
                     k == -EINVAL ? "not an https:// URL" : strerror(-k));
                return k;
        }
        k = receipt_key_load(u->config.receipt_key, &u->receipt_key);
        if (k < 0) {
                ulog(LOG_ERR,
                     "cannot use [Collector] ReceiptKey=%s: %s; install the collector's receipt.pub from "
                     "the "
                     "enrolment files (nothing is uploaded without it)",
                     u->config.receipt_key, k == -EINVAL ? "not an Ed25519 public key" : strerror(-k));
                return k;
        }
        k = upload_reader_new(u->config.log_directory, &u->main_reader);
        u->reader = u->main_reader;
        u->push_dir = u->config.log_directory;
        u->limit = UINT64_MAX;
        if (k >= 0)
                k = upload_policy_new(u->config.policy_directory, u->config.policy_signer_key, &u->policy);
        if (k < 0)
                return k;

        u->backoff_max_usec =
                u->config.poll_usec > BACKOFF_MIN_USEC ? u->config.poll_usec : BACKOFF_MIN_USEC;
        k = setup_event_loop(u);
        if (k < 0) {
                ulog(LOG_ERR, "cannot set up the event loop: %s", strerror(-k));
                return k;
        }
        ulog(LOG_INFO, "uploading %s to %s, policy into %s every %" PRIu64 " s", u->config.log_directory,
             u->config.collector_url, u->config.policy_directory, u->config.poll_usec / USEC_PER_SEC);
        (void)sd_notify(0, "READY=1\nSTATUS=uploading");

        k = sd_event_loop(u->event);
        if (k < 0)
                ulog(LOG_ERR, "event loop failed: %s", strerror(-k));
        (void)sd_notify(0, "STOPPING=1");
        ulog(LOG_INFO, "stopping; acknowledged seq %" PRIu64 " of log %s", u->after,
             u->log[0] ? u->log : "-");
        return k;
}

static void config_diag(void *userdata, enum conf_level level, const char *file, unsigned line,
                        const char *message)
{
        ulog(level == CONF_ERROR ? LOG_ERR : LOG_WARNING, "%s:%u: %s", file, line, message);
}

static int parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
        uint64_t v;
        if (parse_uint64(s, max, &v) < 0 || v < min)
                return -EINVAL;
        *ret = (size_t)v;
        return 0;
}

static void help(void)
{
        printf("Usage: mamori-uploader [--config FILE] [--cursor FILE] [--batch-records N] [--batch-bytes "
               "N] [--verbose]\n"
               "Pushes the operation log to [Collector] URL and fetches the policy bundle into [Policy] "
               "Directory.\n"
               "  --config FILE        agent configuration (default %s)\n"
               "  --cursor FILE        acknowledged position (default %s)\n"
               "  --batch-records N    records per POST (default %u, at most %u)\n"
               "  --batch-bytes N      bytes per POST (default %u)\n"
               "  --verbose            log every batch\n"
               "  -h, --help           show this help\n"
               "  --version            show the version\n",
               AGENT_CONFIG_PATH, UPLOAD_CURSOR_PATH_DEFAULT, UPLOAD_BATCH_RECORDS_DEFAULT,
               BATCH_RECORDS_LIMIT, UPLOAD_BATCH_BYTES_DEFAULT);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"cursor", required_argument, NULL, 'C'},
                {"batch-records", required_argument, NULL, 'n'},
                {"batch-bytes", required_argument, NULL, 'b'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        struct uploader u = {
                .cursor_path = UPLOAD_CURSOR_PATH_DEFAULT,
                .batch_records = UPLOAD_BATCH_RECORDS_DEFAULT,
                .batch_bytes = UPLOAD_BATCH_BYTES_DEFAULT,
        };
        const char *config_path = AGENT_CONFIG_PATH;
        int c, k;

        journal_stderr = secure_getenv("JOURNAL_STREAM") != NULL;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'C':
                        u.cursor_path = optarg;
                        break;
                case 'n':
                        if (parse_size(optarg, 1, BATCH_RECORDS_LIMIT, &u.batch_records) < 0) {
                                ulog(LOG_ERR, "--batch-records: 1..%u", BATCH_RECORDS_LIMIT);
                                return 2;
                        }
                        break;
                case 'b':
                        if (parse_size(optarg, 1024, 64u * 1024u * 1024u, &u.batch_bytes) < 0) {
                                ulog(LOG_ERR, "--batch-bytes: 1024..67108864");
                                return 2;
                        }
                        break;
                case 'v':
                        u.verbose = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("mamori-uploader %s\n", MAMORI_VERSION);
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                ulog(LOG_ERR, "unexpected argument %s", argv[optind]);
                return 2;
        }
        k = agent_config_load(config_path, config_diag, NULL, &u.config);
        if (k < 0) {
                ulog(LOG_ERR, "cannot use configuration %s, not starting", config_path);
                (void)sd_notifyf(0, "STATUS=configuration error in %s\nERRNO=%d", config_path, -k);
                return 1;
        }
        if (!u.config.collector_url || !u.config.collector_url[0]) {
                ulog(LOG_ERR, "%s: no [Collector] URL=, nothing to do", config_path);
                agent_config_free(&u.config);
                return 1;
        }
        k = run(&u);

        upload_batch_done(&u.batch);
        u.reader = NULL;
        u.main_reader = upload_reader_free(u.main_reader);
        u.quarantined = upload_reader_free(u.quarantined);
        free(u.quarantine_dir);
        u.http = upload_http_free(u.http);
        u.policy = upload_policy_free(u.policy);
        EVP_PKEY_free(u.receipt_key);
        u.inotify = sd_event_source_disable_unref(u.inotify);
        u.step = sd_event_source_disable_unref(u.step);
        u.policy_timer = sd_event_source_disable_unref(u.policy_timer);
        u.event = sd_event_unref(u.event);
        agent_config_free(&u.config);
        return k < 0 ? 1 : 0;
}
