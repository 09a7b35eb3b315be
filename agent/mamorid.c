/* mamorid: the resident access-control daemon (event loop, configuration, systemd integration). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "agent-log.h"
#include "mamori/agent-config.h"
#include "mamori/macro.h"
#include "oplog-agent.h"
#include "policy-watch.h"
#include "reader-watch.h"

struct agent {
        struct agent_config config;
        sd_event *event;
        ReaderWatch *watch;
        AgentOplog *oplog; /* operation log (agent/oplog-agent.c) */
        PolicyWatch *policy;
        sd_event_source *stale_timer;
        int64_t policy_serial; /* of the bundle in force, -1 none */
        bool emergency;
};

static void config_diag(void *userdata, enum conf_level level, const char *file, unsigned line,
                        const char *message)
{
        if (line > 0)
                agent_log(level == CONF_ERROR ? LOG_ERR : LOG_WARNING, "%s:%u: %s", file, line, message);
        else
                agent_log(level == CONF_ERROR ? LOG_ERR : LOG_WARNING, "%s: %s", file, message);
}

static void log_reader_event(const struct reader_event *ev)
{
        char mono[32];
        const char *reason = NULL;

        snprintf(mono, sizeof(mono), "%" PRIu64, ev->mono_usec);
        if (ev->type == READER_EVENT_LOST || ev->type == READER_EVENT_PCSC_GONE)
                reason = ev->error == CARD_E_NO_SERVICE ? "pcscd-gone" : "unplugged";

        switch (ev->type) {
        case READER_EVENT_PCSC_GONE:
                /* No reader can be trusted while pcscd is away: report it as the loss of all. */
                agent_log_event("reader.lost", "reader", "*", "reason", reason, "mono_us", mono, NULL);
                break;
        case READER_EVENT_PCSC_BACK:
                agent_log(LOG_INFO, "pcscd is reachable again");
                break;
        default:
                agent_log_event(reader_event_name(ev->type), "reader", ev->reader, "card",
                                ev->card_id[0] ? ev->card_id : NULL, "error",
                                ev->error < 0 && ev->type == READER_EVENT_INSERTED ? card_strerror(ev->error)
                                                                                   : NULL,
                                "reason", reason, "mono_us", mono, NULL);
        }
}

static int on_reader_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct agent *a = userdata;
        struct reader_event ev;

        while (reader_watch_next(a->watch, &ev) > 0) {
                log_reader_event(&ev);
                oplog_agent_reader_event(a->oplog, &ev);
        }
        return 0;
}

static int on_policy_stale(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct agent *a = userdata;
        char serial[32];

        snprintf(serial, sizeof(serial), "%" PRId64, a->policy_serial);
        agent_log_event("policy.stale", "serial", serial, "reason", "expired", NULL);
        return 0;
}

/* Arms a timer at the bundle's expiry, so staleness is reported when it happens. */
static void arm_stale_timer(struct agent *a, const Policy *p)
{
        a->stale_timer = sd_event_source_disable_unref(a->stale_timer);
        if (!p)
                return;
        if (sd_event_add_time(a->event, &a->stale_timer, CLOCK_REALTIME, (uint64_t)p->expires + 1, 0,
                              on_policy_stale, a) < 0)
                agent_log(LOG_ERR, "cannot arm the policy expiry timer");
}

static void on_policy_changed(void *userdata, const struct policy_load_result *res, const Policy *current)
{
        struct agent *a = userdata;
        char serial[32];

        snprintf(serial, sizeof(serial), "%" PRId64, res->serial);
        switch (res->outcome) {
        case POLICY_LOAD_ACCEPTED:
                a->policy_serial = current->serial;
                agent_log_event("policy.load", "serial", serial, NULL);
                if (current->emergency && !a->emergency)
                        agent_log_event("emergency.lock", "serial", serial, NULL);
                else if (!current->emergency && a->emergency)
                        agent_log(LOG_NOTICE, "emergency lock cleared by policy serial %s", serial);
                a->emergency = current->emergency;
                arm_stale_timer(a, current);
                break;
        case POLICY_LOAD_REJECTED:
                /* The previous bundle, if any, stays in force. */
                agent_log_event("policy.reject", "reason", res->reason, "serial",
                                res->serial >= 0 ? serial : NULL, NULL);
                break;
        case POLICY_LOAD_MISSING:
                if (!current)
                        agent_log_event("policy.stale", "reason", "missing", NULL);
                break;
        case POLICY_LOAD_UNCHANGED:
                break;
        }
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct agent *a = userdata;
        (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        return sd_event_exit(a->event, 0);
}

static void help(void)
{
        printf("Usage: mamorid [--config FILE]\n"
               "The mamori access-control daemon: watches operator cards and readers.\n\n"
               "  -c, --config FILE   configuration file (default " AGENT_CONFIG_PATH
               ", drop-ins in FILE.d/)\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n");
}

static int parse_args(int argc, char **argv, const char **ret_config)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
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

static int run(struct agent *a)
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
        r = sd_event_add_signal(a->event, NULL, SIGTERM, on_exit_signal, a);
        if (r >= 0)
                r = sd_event_add_signal(a->event, NULL, SIGINT, on_exit_signal, a);
        if (r >= 0)
                r = sd_event_set_watchdog(a->event, true); /* pings at half WATCHDOG_USEC when set */
        if (r < 0)
                return r;

        (void)oplog_agent_start(&a->config, a->event, &a->oplog); /* failure: logged, fail-closed */
        agent_log_event("agent.start", "terminal", a->config.terminal_id, "version", MAMORI_VERSION, NULL);
        a->policy_serial = -1;
        r = policy_watch_start(a->event, &a->config, on_policy_changed, a, &a->policy);
        if (r < 0) {
                /* Without the signer key no bundle can be trusted: every login stays refused. */
                agent_log_event("policy.reject", "reason", "signer-key-unusable", "path",
                                a->config.policy_signer_key, NULL);
                agent_log(LOG_ERR, "cannot use policy signer key %s: %s", a->config.policy_signer_key,
                          strerror(-r));
        }

        r = reader_watch_start(a->config.readers, &a->watch);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot start the reader watcher: %s", strerror(-r));
                return r;
        }
        r = sd_event_add_io(a->event, NULL, reader_watch_fd(a->watch), EPOLLIN, on_reader_event, a);
        if (r < 0)
                return r;

        (void)sd_notify(0, "READY=1\nSTATUS=watching card readers");
        r = sd_event_loop(a->event);
        agent_log_event("agent.stop", "terminal", a->config.terminal_id, NULL);
        a->oplog = oplog_agent_stop(a->oplog);
        return r;
}

int main(int argc, char **argv)
{
        struct agent a = {0};
        const char *config_path;
        int r;

        agent_log_init();
        r = parse_args(argc, argv, &config_path);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        r = agent_config_load(config_path, config_diag, NULL, &a.config);
        if (r < 0) {
                agent_log(LOG_ERR, "cannot use configuration %s, not starting", config_path);
                (void)sd_notifyf(0, "STATUS=configuration error in %s\nERRNO=%d", config_path, -r);
                return 1;
        }

        r = run(&a);
        a.watch = reader_watch_stop(a.watch);
        a.oplog = oplog_agent_stop(a.oplog); /* when run() returned early */
        a.stale_timer = sd_event_source_disable_unref(a.stale_timer);
        a.policy = policy_watch_free(a.policy);
        a.event = sd_event_unref(a.event);
        agent_config_free(&a.config);
        if (r < 0) {
                agent_log(LOG_ERR, "stopped on error: %s", strerror(-r));
                return 1;
        }
        return 0;
}
