/* mamorid: the resident access-control daemon (event loop, configuration, wiring of its parts). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>

#include "config-check.h"
#include "journal.h"
#include "mamorid.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "oplog-open.h"
#include "password-store.h"

#define SEAT "seat0"

static void config_diag(void *userdata, enum conf_level level, const char *file, unsigned line,
                        const char *message)
{
        if (line > 0)
                agent_log(level == CONF_ERROR ? LOG_ERR : LOG_WARNING, "%s:%u: %s", file, line, message);
        else
                agent_log(level == CONF_ERROR ? LOG_ERR : LOG_WARNING, "%s: %s", file, message);
}

/* ---- what the session logic asks of the daemon (session_ops) ---- */

static int ops_record(void *userdata, const char *ev, const char *op, const char *card, JsonValue *data,
                      oplog_done_fn done, void *done_userdata)
{
        return agent_record(userdata, ev, op, card, data, done, done_userdata);
}

static bool ops_log_writable(void *userdata)
{
        struct agent *a = userdata;
        return a->log && oplog_writable(a->log);
}

static enum auth_reason ops_held(void *userdata)
{
        struct agent *a = userdata;
        return a->held;
}

static const Policy *ops_policy(void *userdata)
{
        struct agent *a = userdata;
        return a->policy ? policy_watch_current(a->policy) : NULL;
}

static int64_t ops_secret_changed(void *userdata, const char *op)
{
        struct agent *a = userdata;
        return secret_age_get(a->secrets, op);
}

static int ops_check_cert(void *userdata, const uint8_t *der, size_t der_len)
{
        struct agent *a = userdata;
        if (!a->anchors)
                return CERT_CHECK_UNTRUSTED; /* TrustAnchors= could not be loaded */
        return cert_check_verify(a->anchors, der, der_len, (uint64_t)now_realtime_usec());
}

static int ops_login_start(void *userdata, const char *reader, CardLogin *l, uint64_t id,
                           card_job_done_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return card_worker_start_login(a->worker, reader, l, id, done, done_userdata);
}

static int ops_login_pin(void *userdata, uint64_t id, const char *pin)
{
        struct agent *a = userdata;
        return card_worker_answer_pin(a->worker, id, pin);
}

static void ops_login_cancel(void *userdata, uint64_t id)
{
        struct agent *a = userdata;
        card_worker_cancel_login(a->worker, id);
}

static int ops_change_pin(void *userdata, const char *reader, const char *old_pin, const char *new_pin,
                          card_job_done_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return card_worker_change_pin(a->worker, reader, old_pin, new_pin, done, done_userdata);
}

static void ops_finger_device(void *userdata, struct finger_device_info *ret)
{
        struct agent *a = userdata;
        finger_worker_device(a->finger, ret);
}

static int ops_finger_match(void *userdata, uint64_t id, const char *dir, char *const *allowed, size_t n,
                            finger_event_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return a->finger ? finger_worker_match(a->finger, id, dir, allowed, n, done, done_userdata)
                         : -ENODEV;
}

static int ops_finger_enroll(void *userdata, uint64_t id, const char *operator_id, finger_event_fn done,
                             void *done_userdata)
{
        struct agent *a = userdata;
        return a->finger ? finger_worker_enroll(a->finger, id, operator_id, done, done_userdata) : -ENODEV;
}

static void ops_finger_cancel(void *userdata, uint64_t id)
{
        struct agent *a = userdata;
        finger_worker_cancel(a->finger, id);
}

static void ops_vein_device(void *userdata, struct vein_device_info *ret)
{
        struct agent *a = userdata;

        *ret = (struct vein_device_info){0};
        if (a->vein)
                vein_worker_device(a->vein, ret);
}

static int ops_vein_match(void *userdata, uint64_t id, const char *dir, char *const *allowed, size_t n,
                          vein_event_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return a->vein ? vein_worker_match_stored(a->vein, id, dir, allowed, n, done, done_userdata)
                       : -ENODEV;
}

static int ops_vein_enroll(void *userdata, uint64_t id, const char *operator_id, vein_event_fn done,
                           void *done_userdata)
{
        struct agent *a = userdata;
        return a->vein ? vein_worker_enroll(a->vein, id, operator_id, done, done_userdata) : -ENODEV;
}

static void ops_vein_cancel(void *userdata, uint64_t id)
{
        struct agent *a = userdata;
        vein_worker_cancel(a->vein, id);
}

static void ops_enroll_progress(void *userdata, const char *operator_id, int stage, int stages, bool retry)
{
        agent_dbus_enroll_progress(userdata, operator_id, stage, stages, retry);
}

static int ops_password_check(void *userdata, uint64_t id, const char *operator_id, const char *password,
                              session_password_done_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return a->passwords
                       ? password_worker_check(a->passwords, id, operator_id, password, done, done_userdata)
                       : -ENODEV;
}

static int ops_password_set(void *userdata, uint64_t id, const char *operator_id, const char *old_password,
                            const char *new_password, session_password_done_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return a->passwords ? password_worker_set(a->passwords, id, operator_id, old_password, new_password,
                                                  done, done_userdata)
                            : -ENODEV;
}

static int ops_password_remove(void *userdata, uint64_t id, const char *operator_id,
                               session_password_done_fn done, void *done_userdata)
{
        struct agent *a = userdata;
        return a->passwords ? password_worker_remove(a->passwords, id, operator_id, done, done_userdata)
                            : -ENODEV;
}

static int ops_password_changed(void *userdata, const char *operator_id, int64_t *ret_usec)
{
        struct agent *a = userdata;
        return password_store_changed(a->config.password_directory, operator_id, ret_usec);
}

static uint64_t ops_password_clock(void *userdata)
{
        return now_mono_usec();
}

static void ops_password_failures_save(void *userdata, const struct password_failure_file *file)
{
        struct agent *a = userdata;
        char path[4096];
        int r;

        r = password_failure_file_path(a->config.password_directory, path, sizeof(path));
        if (r >= 0)
                r = password_failure_file_save(path, file);
        if (r < 0)
                agent_log(LOG_ERR,
                          "cannot save the password failure counts to %s/" PASSWORD_FAILURES_FILE_NAME
                          " (%s): a restart now would forget them; check that PasswordDirectory= is "
                          "root's, mode 0700, on a writable file system",
                          a->config.password_directory, strerror(-r));
}

/* The failure counts of the last run, so that restarting mamorid does not reset the delays. */
static void load_password_failures(struct agent *a)
{
        _cleanup_free_ struct password_failure_file *file = calloc(1, sizeof(*file));
        char path[4096];
        int r;

        r = file ? password_failure_file_path(a->config.password_directory, path, sizeof(path)) : -ENOMEM;
        if (r >= 0)
                r = password_failure_file_load(path, file);
        if (r >= 0) {
                session_password_failures_restore(&a->session, file);
                return;
        }
        if (r == -ENOENT)
                return; /* nothing counted yet */
        /* Fail closed: counts that cannot be read are not zero. */
        session_password_failures_fail_closed(&a->session);
        agent_log(LOG_ERR,
                  "password failure counts in %s/" PASSWORD_FAILURES_FILE_NAME
                  " cannot be trusted (%s): every operator counts as locked out — the next password "
                  "answer waits the longest delay, and a wrong one keeps it — until that operator's "
                  "right password or an hour without a failure; the file was rewritten in that state. If "
                  "this repeats, check the "
                  "disk and that nothing but mamorid writes PasswordDirectory=",
                  a->config.password_directory,
                  r == -EPERM ? "not a regular file of root's with mode 0600" : strerror(-r));
}

static int ops_lock_screen(void *userdata, uint64_t trigger_mono_usec, logind_lock_fn cb, void *cb_userdata)
{
        struct agent *a = userdata;
        if (!a->logind)
                return -ENODEV;
        return logind_lock(a->logind, trigger_mono_usec, cb, cb_userdata);
}

static int ops_watch_idle(void *userdata)
{
        struct agent *a = userdata;
        return a->logind ? logind_watch_idle(a->logind) : -ENODEV;
}

static void ops_answer(void *userdata, SessionCall *call, const struct session_outcome *o)
{
        agent_dbus_answer(userdata, call, o);
}

static void ops_changed(void *userdata, const char *state_reason)
{
        struct agent *a = userdata;
        agent_dbus_changed(a, state_reason);
        (void)restart_at_lock_check(a->restart); /* a pending upgrade restarts at the lock */
}

static bool terminal_idle_locked(void *userdata)
{
        struct agent *a = userdata;
        return a->session.state == SESSION_LOCKED;
}

static const struct session_ops session_ops = {
        .record = ops_record,
        .log_writable = ops_log_writable,
        .held = ops_held,
        .policy = ops_policy,
        .secret_changed = ops_secret_changed,
        .check_cert = ops_check_cert,
        .login_start = ops_login_start,
        .login_pin = ops_login_pin,
        .login_cancel = ops_login_cancel,
        .change_pin = ops_change_pin,
        .finger_device = ops_finger_device,
        .finger_match = ops_finger_match,
        .finger_enroll = ops_finger_enroll,
        .finger_cancel = ops_finger_cancel,
        .vein_device = ops_vein_device,
        .vein_match = ops_vein_match,
        .vein_enroll = ops_vein_enroll,
        .vein_cancel = ops_vein_cancel,
        .enroll_progress = ops_enroll_progress,
        .password_check = ops_password_check,
        .password_set = ops_password_set,
        .password_changed = ops_password_changed,
        .password_remove = ops_password_remove,
        .password_clock = ops_password_clock,
        .password_failures_save = ops_password_failures_save,
        .lock_screen = ops_lock_screen,
        .watch_idle = ops_watch_idle,
        .answer = ops_answer,
        .changed = ops_changed,
};

static void on_reader_event(void *userdata, struct reader_event *ev)
{
        struct agent *a = userdata;
        session_on_reader_event(&a->session, ev); /* takes ev->der */
}

static int on_policy_stale(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct agent *a = userdata;
        char serial[24];

        snprintf(serial, sizeof(serial), "#%" PRId64, a->policy_serial);
        agent_record(a, "policy.stale", NULL, NULL, agent_data("serial", serial, "reason", "expired", NULL),
                     NULL, NULL);
        return 0;
}

/* Arms a timer at the bundle's expiry, so staleness is reported when it happens. */
static void arm_stale_timer(struct agent *a, const Policy *p)
{
        a->stale_timer = sd_event_source_disable_unref(a->stale_timer);
        if (p && sd_event_add_time(a->event, &a->stale_timer, CLOCK_REALTIME, (uint64_t)p->expires + 1, 0,
                                   on_policy_stale, a) < 0)
                agent_log(LOG_ERR, "cannot arm the policy expiry timer");
}

static void on_policy_changed(void *userdata, const struct policy_load_result *res, const Policy *current)
{
        struct agent *a = userdata;
        char serial[24];
        bool was_emergency = a->emergency;

        snprintf(serial, sizeof(serial), "#%" PRId64, res->serial);
        /* At start the store may already hold the last accepted bundle (its saved copy): it takes
         * effect like a newly accepted one, whatever policy.json says. */
        if (res->outcome != POLICY_LOAD_ACCEPTED && current && current->serial != a->policy_serial) {
                snprintf(serial, sizeof(serial), "#%" PRId64, current->serial);
                a->policy_serial = current->serial;
                agent_record(a, "policy.load", NULL, NULL,
                             agent_data("serial", serial, "source", "saved-copy", NULL), NULL, NULL);
                a->emergency = current->emergency;
                arm_stale_timer(a, current);
                session_on_policy(&a->session, current);
                snprintf(serial, sizeof(serial), "#%" PRId64, res->serial);
        }
        switch (res->outcome) {
        case POLICY_LOAD_ACCEPTED:
                a->policy_serial = current->serial;
                agent_record(a, "policy.load", NULL, NULL, agent_data("serial", serial, NULL), NULL, NULL);
                a->emergency = current->emergency;
                if (a->emergency && !was_emergency)
                        agent_record(a, "emergency.lock", NULL, NULL, agent_data("serial", serial, NULL),
                                     NULL, NULL);
                else if (!a->emergency && was_emergency)
                        agent_log(LOG_NOTICE, "emergency lock cleared by policy serial %" PRId64,
                                  res->serial);
                arm_stale_timer(a, current);
                session_on_policy(&a->session, current);
                break;
        case POLICY_LOAD_REJECTED:
                /* The previous bundle, if any, stays in force. */
                agent_record(
                        a, "policy.reject", NULL, NULL,
                        agent_data("reason", res->reason, "serial", res->serial >= 0 ? serial : NULL, NULL),
                        NULL, NULL);
                break;
        case POLICY_LOAD_MISSING:
                if (!current)
                        agent_record(a, "policy.stale", NULL, NULL, agent_data("reason", "missing", NULL),
                                     NULL, NULL);
                break;
        case POLICY_LOAD_UNCHANGED:
                break;
        }
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct agent *a = userdata;
        (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        /* An active session ends and the screen locks before the agent goes (the lock call is
         * flushed when the bus closes, the records when the log closes). */
        session_lock(&a->session, TRIGGER_AGENT_STOP, now_mono_usec());
        return sd_event_exit(a->event, 0);
}

static void help(void)
{
        printf("Usage: mamorid [--config FILE]\n"
               "The mamori access-control daemon: operator card logins, screen lock, operation log.\n\n"
               "  -c, --config FILE   configuration file (default " AGENT_CONFIG_PATH
               ", drop-ins in FILE.d/)\n"
               "      --check-config  check the configuration and the files it names, then exit\n"
               "                      (0: nothing to report; 1: each problem as file:line)\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n");
}

static int parse_args(int argc, char **argv, const char **ret_config, bool *ret_check)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"check-config", no_argument, NULL, 'C'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        int c;

        *ret_config = AGENT_CONFIG_PATH;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        *ret_config = optarg;
                        break;
                case 'C':
                        *ret_check = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("mamorid %s\n", MAMORI_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "mamorid: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void load_anchors(struct agent *a)
{
        int r = cert_check_new(&a->anchors);

        if (r >= 0)
                r = cert_check_add_anchors_file(a->anchors, a->config.trust_anchors);
        if (r < 0) {
                /* Fail closed: with no anchors every card is refused as cert-untrusted. */
                agent_log(LOG_ERR, "cannot load TrustAnchors=%s (%s): every card will be refused",
                          a->config.trust_anchors, strerror(-r));
                a->anchors = cert_check_free(a->anchors);
        }
}

/* PIN/password changes already in the own log count at once (DESIGN §4), also after a restart. */
static void load_secret_changes(struct agent *a)
{
        unsigned n = 0;
        int r;

        r = secret_age_new(&a->secrets);
        if (r >= 0 && a->log)
                r = secret_age_scan_directory(a->secrets, a->config.log_directory, &n);
        if (r < 0)
                agent_log(LOG_WARNING,
                          "cannot read the PIN/password changes of the operation log (%s): until the next "
                          "bundle, PIN age comes from the policy alone",
                          strerror(-r));
        else if (n > 0)
                agent_log(LOG_INFO, "%u PIN/password changes found in the operation log", n);
}

static int run(struct agent *a, AgentOplog **oplog)
{
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();

        r = sd_event_default(&a->event);
        if (r < 0)
                return r;
        a->session.event = a->event;
        r = sd_event_add_signal(a->event, NULL, SIGTERM, on_exit_signal, a);
        if (r >= 0)
                r = sd_event_add_signal(a->event, NULL, SIGINT, on_exit_signal, a);
        if (r >= 0)
                r = sd_event_set_watchdog(a->event, true); /* pings at half WATCHDOG_USEC when set */
        if (r < 0)
                return r;

        /* The log first: agent.start is its first record of this run. A log that cannot be
         * opened leaves a->log NULL, and every login is refused (fail closed). */
        agent_log_event("agent.start", "terminal", a->config.terminal_id, "version", MAMORI_VERSION, NULL);
        (void)oplog_agent_start(&a->config, a->event, oplog);
        a->log = oplog_agent_log(*oplog);
        a->held = oplog_agent_held(*oplog);
        load_anchors(a);
        load_secret_changes(a);

        r = agent_dbus_start(a);
        if (r < 0)
                agent_log(LOG_ERR, "no D-Bus API and no screen locking: cannot use the system bus: %s",
                          strerror(-r));
        else {
                r = logind_new(a->event, a->bus, SEAT, a->config.lock_verify_usec, a->config.lock_fallback,
                               session_on_idle_hint, session_on_desktop_locked, session_on_desktop_unlocked,
                               &a->session, &a->logind);
                if (r < 0)
                        return r;
        }
        /* A restarted agent starts locked, whatever the desktop was doing. */
        session_lock(&a->session, TRIGGER_MANUAL_LOCK, now_mono_usec());

        r = policy_watch_start(a->event, &a->config, on_policy_changed, a, &a->policy);
        if (r < 0) {
                agent_record(a, "policy.reject", NULL, NULL,
                             agent_data("reason", "signer-key-unusable", "path", a->config.policy_signer_key,
                                        NULL),
                             NULL, NULL);
                agent_log(LOG_ERR, "cannot use policy signer key %s: %s; every login is refused",
                          a->config.policy_signer_key, strerror(-r));
        }

        r = card_worker_start(a->event, &a->worker);
        if (r < 0)
                return r;
        /* libfprint on its own thread; without it every finger step is bio-unavailable. */
        r = finger_worker_start(a->event, &a->finger);
        if (r < 0)
                agent_log(LOG_ERR, "cannot start the fingerprint thread (%s): finger logins are unavailable",
                          strerror(-r));
        /* Passwords (DESIGN.md §4): a store others can enter is not used; its logins fail, loudly. */
        r = password_store_prepare(a->config.password_directory);
        if (r < 0)
                agent_log(LOG_ERR,
                          "cannot use PasswordDirectory=%s (%s): password logins will fail; it must be a "
                          "directory of root's with mode 0700",
                          a->config.password_directory, strerror(-r));
        load_password_failures(a);
        r = password_worker_start(a->event, a->config.password_directory, &a->passwords);
        if (r < 0)
                return r;
        if (a->config.vein_plugin) {
                char why[BIO_PLUGIN_WHY_MAX] = "";

                /* A refused plugin costs vein logins only (bio-unavailable); cards keep working. */
                r = vein_worker_start(a->event, a->config.vein_plugin, a->config.vein_plugin_options,
                                      &a->vein, why);
                if (r < 0)
                        agent_log(LOG_ERR,
                                  "[Biometric] VeinPlugin= refused: %s; vein logins are unavailable",
                                  why[0] ? why : strerror(-r));
                else
                        agent_log(LOG_INFO, "vein plugin %s loaded", a->config.vein_plugin);
        }
        /* After a package upgrade (the postinst leaves a flag), restart only once locked. */
        r = restart_at_lock_start(a->event, a->config.lock_verify_usec + USEC_PER_SEC, terminal_idle_locked,
                                  a, &a->restart);
        if (r < 0)
                agent_log(LOG_WARNING,
                          "cannot watch for upgrades (%s): an upgrade takes effect at the next "
                          "restart of mamorid",
                          strerror(-r));
        r = reader_watch_start(a->event, a->config.readers, on_reader_event, a, &a->watch);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot start the reader watcher: %s", strerror(-r));
                return r;
        }

        if (a->held != AUTH_ALLOW)
                (void)sd_notifyf(0, "READY=1\nSTATUS=locked, every login refused: %s",
                                 auth_reason_to_string(a->held));
        else
                (void)sd_notify(0, "READY=1\nSTATUS=watching card readers");
        return sd_event_loop(a->event);
}

int main(int argc, char **argv)
{
        struct agent a = {0};
        AgentOplog *oplog = NULL;
        const char *config_path;
        bool check = false;
        int r;

        agent_log_init();
        r = parse_args(argc, argv, &config_path, &check);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (check)
                return mamorid_check_config(config_path);

        r = agent_config_load(config_path, config_diag, NULL, &a.config);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot use configuration %s, not starting", config_path);
                (void)sd_notifyf(0, "STATUS=configuration error in %s\nERRNO=%d", config_path, -r);
                return 1;
        }
        a.policy_serial = -1;
        session_init(&a.session, &session_ops, &a, &a.config, NULL);

        r = run(&a, &oplog);

        a.watch = reader_watch_stop(a.watch);
        a.worker = card_worker_stop(a.worker);
        a.passwords = password_worker_stop(a.passwords);
        session_done(&a.session); /* a pending scan is cancelled before the sensor closes */
        a.vein = vein_worker_stop(a.vein);
        a.finger = finger_worker_stop(a.finger);
        a.limit = record_limit_free(a.limit); /* counts still pending are recorded before the log closes */
        a.secrets = secret_age_free(a.secrets);
        a.logind = logind_free(a.logind);
        a.bus = sd_bus_flush_close_unref(a.bus);
        a.stale_timer = sd_event_source_disable_unref(a.stale_timer);
        a.restart = restart_at_lock_free(a.restart);
        a.policy = policy_watch_free(a.policy);
        a.anchors = cert_check_free(a.anchors);
        agent_log_event("agent.stop", "terminal", a.config.terminal_id, NULL);
        a.log = NULL;                    /* completions run while it closes must not submit again */
        oplog = oplog_agent_stop(oplog); /* agent.stop, durably, last */
        a.event = sd_event_unref(a.event);
        agent_config_free(&a.config);
        if (r < 0) {
                agent_log(LOG_ERR, "stopped on error: %s", strerror(-r));
                return 1;
        }
        return 0;
}
