/* mamori-uploader: pushes the committed operation log to the collector exactly once and in order
 * (DESIGN.md §7), and fetches the signed policy bundle into [Policy] Directory. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "mamori/agent-config.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "mamori/upload-cursor.h"
#include "upload-http.h"
#include "upload-policy.h"
#include "upload-reader.h"

#define USEC_PER_SEC        UINT64_C(1000000)
#define USEC_PER_MSEC       UINT64_C(1000)
#define BACKOFF_MIN_USEC    (250 * USEC_PER_MSEC)
#define ANSWER_MAX          (64u * 1024u)      /* a §7 answer is a small JSON object */
#define IDLE_RECHECK_USEC   (5 * USEC_PER_SEC) /* without inotify, or as a safety net */
#define BATCH_RECORDS_LIMIT 20000u             /* the collector's default batch bound */

struct uploader {
        struct agent_config config;
        const char *cursor_path;
        size_t batch_records, batch_bytes;
        bool verbose;

        UploadReader *reader;
        UploadHttp *http;
        UploadPolicy *policy;
        UploadBatch batch;

        int signal_fd, inotify_fd;
        bool stop;
        uint64_t watchdog_usec, last_ping;

        char log[ID128_STRING_MAX]; /* local log id, "" until known */
        bool synced;                /* after is the collector's view of log */
        uint64_t after;             /* acknowledged seq of log */
        uint64_t saved;             /* what the cursor file says for log */
        uint64_t read_usec;         /* reading (and syncing) the last batch, for --verbose */

        uint64_t backoff_usec, backoff_max_usec;
        uint64_t next_policy_usec;
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

/* A failure that repeats at every retry is logged when it starts or changes, not each time. */
_printf_(3, 4) static void problem(struct uploader *u, int priority, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (streq(msg, u->last_problem))
                return;
        snprintf(u->last_problem, sizeof(u->last_problem), "%s", msg);
        ulog(priority, "%s", msg);
        (void)sd_notifyf(0, "STATUS=%s", msg);
}

static void recovered(struct uploader *u, const char *what)
{
        if (u->last_problem[0]) {
                ulog(LOG_NOTICE, "%s again", what);
                u->last_problem[0] = 0;
                (void)sd_notify(0, "STATUS=uploading");
        }
}

static void drain_signals(struct uploader *u)
{
        struct signalfd_siginfo si;
        while (read(u->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        u->stop = true;
}

static void watchdog_ping(struct uploader *u)
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

/* libcurl progress callback: SIGTERM ends a transfer at once; the watchdog is fed during long ones. */
static bool abort_transfer(void *userdata)
{
        struct uploader *u = userdata;
        drain_signals(u);
        watchdog_ping(u);
        return u->stop;
}

/* Sleeps until the log directory changes, a signal arrives, or timeout passes. */
static void wait_for(struct uploader *u, uint64_t timeout_usec)
{
        struct pollfd p[2] = {{.fd = u->signal_fd, .events = POLLIN},
                              {.fd = u->inotify_fd, .events = POLLIN}};
        uint64_t deadline = now_mono_usec() + timeout_usec;

        for (;;) {
                uint64_t now = now_mono_usec(), left;
                if (now >= deadline || u->stop)
                        return;
                left = deadline - now;
                if (u->watchdog_usec && left > u->watchdog_usec / 2)
                        left = u->watchdog_usec / 2;
                int n = poll(p, u->inotify_fd >= 0 ? 2 : 1, (int)((left + 999) / 1000));
                watchdog_ping(u);
                if (n < 0 && errno != EINTR)
                        return;
                if (n > 0 && (p[0].revents & POLLIN))
                        drain_signals(u);
                if (n > 0 && u->inotify_fd >= 0 && (p[1].revents & POLLIN)) {
                        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                        while (read(u->inotify_fd, buf, sizeof(buf)) > 0)
                                ;
                        return;
                }
        }
}

static void backoff_wait(struct uploader *u)
{
        uint64_t d, jitter = 0;

        u->backoff_usec = u->backoff_usec ? u->backoff_usec * 2 : BACKOFF_MIN_USEC;
        if (u->backoff_usec > u->backoff_max_usec)
                u->backoff_usec = u->backoff_max_usec;
        /* Full jitter over the upper half: terminals that lost the collector together do not all
         * come back in the same second. */
        (void)getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK);
        d = u->backoff_usec / 2 + jitter % (u->backoff_usec / 2 + 1);
        /* Only the signal fd: a busy log must not shorten the pause. */
        int fd = u->inotify_fd;
        u->inotify_fd = -1;
        wait_for(u, d);
        u->inotify_fd = fd;
}

static void watch_log_directory(struct uploader *u)
{
        if (u->inotify_fd < 0) {
                u->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                if (u->inotify_fd < 0)
                        return;
        }
        /* Appends are IN_MODIFY, new segments IN_CREATE; a new log directory needs a new watch. */
        if (inotify_add_watch(u->inotify_fd, u->config.log_directory,
                              IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF) < 0)
                u->inotify_fd = safe_close(u->inotify_fd);
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

        if (u->saved == u->after)
                return 0;
        memcpy(c.log, u->log, sizeof(c.log));
        k = upload_cursor_save(u->cursor_path, &c);
        if (k < 0) {
                problem(u, LOG_ERR, "cannot write cursor %s: %s", u->cursor_path, strerror(-k));
                return k;
        }
        u->saved = u->after;
        return 0;
}

/* {"log":L,"acked":N} of our log → N. */
static int parse_acked(struct uploader *u, const UploadResponse *r, uint64_t *ret)
{
        _cleanup_json_ JsonValue *o = NULL;
        const char *log;
        int64_t acked;

        if (!r->body || json_parse(r->body, r->len, NULL, 0, &o, NULL) < 0)
                return -EBADMSG;
        if (json_object_get_string(o, "log", &log) < 0 || !streq(log, u->log) ||
            json_object_get_integer(o, "acked", &acked) < 0 || acked < 0)
                return -EBADMSG;
        *ret = (uint64_t)acked;
        return 0;
}

/* Learn where the collector stands for our log (no cursor, or one of another log). */
static int sync_acked(struct uploader *u)
{
        _cleanup_free_ char *path = NULL;
        UploadResponse r = {};
        const char *detail;
        uint64_t acked;
        int k;

        if (asprintf(&path, "/v1/logs/%s/acked", u->log) < 0)
                return -ENOMEM;
        k = upload_http_request(u->http, path, NULL, NULL, 0, NULL, ANSWER_MAX, &r, &detail);
        if (k < 0) {
                problem(u, LOG_WARNING, "collector %s unreachable: %s (%s); retrying",
                        u->config.collector_url, http_error(k), detail);
                return k;
        }
        if (r.status != 200 || parse_acked(u, &r, &acked) < 0) {
                problem(u, LOG_ERR, "collector answered %ld to GET %s: %.200s", r.status, path,
                        r.body ? r.body : "");
                upload_response_done(&r);
                return -EPROTO;
        }
        upload_response_done(&r);
        u->after = acked;
        u->synced = true;
        ulog(LOG_INFO, "log %s: collector has acknowledged up to seq %" PRIu64, u->log, acked);
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
        if (r.status == 200 && parse_acked(u, &r, &acked) >= 0) {
                upload_response_done(&r);
                if (acked < b->first_seq - 1) {
                        /* The collector says it stores less than before this batch: resend from there. */
                        ulog(LOG_WARNING,
                             "log %s: collector acknowledged only seq %" PRIu64 ", resending from %" PRIu64,
                             u->log, acked, acked + 1);
                }
                u->after = acked;
                recovered(u, "uploading");
                if (u->verbose)
                        ulog(LOG_DEBUG,
                             "log %s: sent %" PRIu64 "..%" PRIu64 ", acked %" PRIu64 " read_us=%" PRIu64
                             " post_us=%" PRIu64,
                             u->log, b->first_seq, b->last_seq, acked, u->read_usec, post_usec);
                (void)save_cursor(u);
                return 1;
        }
        if (r.status == 409 && parse_acked(u, &r, &acked) >= 0) {
                /* A gap before our first seq (the collector lost or never got earlier records, or our
                 * cursor is behind): continue from what it has. */
                upload_response_done(&r);
                ulog(LOG_WARNING,
                     "log %s: collector has seq %" PRIu64 " (we sent from %" PRIu64
                     "), resuming from %" PRIu64,
                     u->log, acked, b->first_seq, acked + 1);
                if (acked == u->after) {
                        /* It keeps asking for what we just sent: do not spin. */
                        problem(u, LOG_ERR,
                                "log %s: collector keeps asking for seq %" PRIu64 " which we sent", u->log,
                                acked + 1);
                        return 0;
                }
                u->after = acked;
                (void)save_cursor(u);
                return 1;
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
        /* A fork, bad data, an unknown terminal, a store failure: never skip records; say it loudly
         * and try again later (the collector's operators see the alert). */
        problem(u, r.status >= 500 ? LOG_WARNING : LOG_CRIT,
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
                problem(u, LOG_CRIT,
                        "policy from the collector refused (status %ld, serial %" PRId64 "): %s", res.status,
                        res.serial, res.reason ? res.reason : "?");
                break;
        case UPLOAD_POLICY_UNCHANGED:
        case UPLOAD_POLICY_NONE:
                break;
        }
}

/* One step of the upload loop. */
static void upload_step(struct uploader *u)
{
        int k;

        if (!u->log[0]) {
                k = upload_reader_log_id(u->reader, u->log);
                if (k == -ENOENT) {
                        watch_log_directory(u);
                        wait_for(u, IDLE_RECHECK_USEC);
                        return;
                }
                if (k < 0) {
                        u->log[0] = 0;
                        problem(u, LOG_CRIT, "local log in %s unreadable: %s", u->config.log_directory,
                                strerror(-k));
                        backoff_wait(u);
                        return;
                }
                UploadCursor c;
                u->synced = false;
                u->saved = UINT64_MAX;
                if (upload_cursor_load(u->cursor_path, &c) >= 0 && streq(c.log, u->log)) {
                        u->after = u->saved = c.acked;
                        u->synced = true;
                }
        }
        if (!u->synced) {
                if (sync_acked(u) < 0)
                        backoff_wait(u);
                return;
        }
        uint64_t t0 = now_mono_usec();
        k = upload_reader_read(u->reader, u->after, u->batch_records, u->batch_bytes, &u->batch);
        u->read_usec = now_mono_usec() - t0;
        if (k < 0) {
                problem(u, LOG_CRIT,
                        "local log in %s: cannot read after seq %" PRIu64 ": %s; nothing skipped",
                        u->config.log_directory, u->after,
                        k == -EBADMSG ? "not a continuous log" : strerror(-k));
                backoff_wait(u);
                return;
        }
        if (k == 0) {
                uint64_t now = now_mono_usec(), left = IDLE_RECHECK_USEC;
                if (u->next_policy_usec > now && u->next_policy_usec - now < left)
                        left = u->next_policy_usec - now;
                else if (u->next_policy_usec <= now)
                        left = 0;
                wait_for(u, left);
                return;
        }
        if (!streq(u->batch.log, u->log)) {
                /* mamorid started a new log: its own cursor. */
                ulog(LOG_NOTICE, "local log changed from %s to %s", u->log, u->batch.log);
                u->log[0] = 0;
                return;
        }
        k = post_batch(u, &u->batch);
        if (k > 0)
                u->backoff_usec = 0;
        else if (k != -ECANCELED)
                backoff_wait(u);
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

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        u->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (u->signal_fd < 0)
                return negative_errno();
        u->inotify_fd = -1;

        k = upload_http_new(&hp, &u->http);
        if (k < 0) {
                ulog(LOG_ERR, "cannot use [Collector] URL=%s: %s", u->config.collector_url,
                     k == -EINVAL ? "not an https:// URL" : strerror(-k));
                return k;
        }
        k = upload_reader_new(u->config.log_directory, &u->reader);
        if (k >= 0)
                k = upload_policy_new(u->config.policy_directory, u->config.policy_signer_key, &u->policy);
        if (k < 0)
                return k;

        u->backoff_max_usec =
                u->config.poll_usec > BACKOFF_MIN_USEC ? u->config.poll_usec : BACKOFF_MIN_USEC;
        if (sd_watchdog_enabled(0, &u->watchdog_usec) <= 0)
                u->watchdog_usec = 0;
        watch_log_directory(u);
        ulog(LOG_INFO, "uploading %s to %s, policy into %s every %" PRIu64 " s", u->config.log_directory,
             u->config.collector_url, u->config.policy_directory, u->config.poll_usec / USEC_PER_SEC);
        (void)sd_notify(0, "READY=1\nSTATUS=uploading");

        while (!u->stop) {
                uint64_t now = now_mono_usec();
                if (now >= u->next_policy_usec) {
                        poll_policy(u);
                        u->next_policy_usec = now_mono_usec() + u->config.poll_usec;
                }
                if (u->stop)
                        break;
                if (u->inotify_fd < 0)
                        watch_log_directory(u);
                upload_step(u);
                watchdog_ping(u);
        }
        (void)sd_notify(0, "STOPPING=1");
        ulog(LOG_INFO, "stopping; acknowledged seq %" PRIu64 " of log %s", u->after,
             u->log[0] ? u->log : "-");
        return 0;
}

static void config_diag(void *userdata, enum conf_level level, const char *file, unsigned line,
                        const char *message)
{
        ulog(level == CONF_ERROR ? LOG_ERR : LOG_WARNING, "%s:%u: %s", file, line, message);
}

static int parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
        char *end;
        unsigned long long v;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
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
               "  --verbose            log every batch\n",
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
                {},
        };
        struct uploader u = {
                .cursor_path = UPLOAD_CURSOR_PATH_DEFAULT,
                .batch_records = UPLOAD_BATCH_RECORDS_DEFAULT,
                .batch_bytes = UPLOAD_BATCH_BYTES_DEFAULT,
                .signal_fd = -1,
                .inotify_fd = -1,
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
        u.reader = upload_reader_free(u.reader);
        u.http = upload_http_free(u.http);
        u.policy = upload_policy_free(u.policy);
        safe_close(u.signal_fd);
        safe_close(u.inotify_fd);
        agent_config_free(&u.config);
        return k < 0 ? 1 : 0;
}
