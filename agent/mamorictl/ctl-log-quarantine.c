/* mamorictl log quarantine: move a damaged operation log aside for the auditors and start a new one. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl-verbs.h"
#include "mamori/agent-config.h"
#include "mamori/quarantine-info.h"
#include "mamori/macro.h"
#include "oplog-keys.h"
#include "oplog-quarantine.h"

static void diag(void *userdata, enum conf_level level, const char *file, unsigned line, const char *message)
{
        fprintf(stderr, "%s:%u: %s\n", file, line, message);
}

void ctl_log_quarantine_note(const char *dir, const struct log_verify_result *res)
{
        _cleanup_free_ char *path = NULL;
        struct quarantine_info q;

        if (asprintf(&path, "%s/" QUARANTINE_INFO, dir) < 0 || quarantine_info_load(path, &q) < 0)
                return;
        fprintf(stderr,
                "  this log was quarantined (%s): damage found at %s:%" PRIu64
                " (%s), good up to seq %" PRIu64 "%s%s\n",
                QUARANTINE_INFO, q.file, q.line, q.reason, q.seq, q.new_log[0] ? "; continued by log " : "",
                q.new_log);
        if (streq(q.file, res->bad_file) && q.line == res->bad_line && q.seq + 1 == res->bad_seq)
                fprintf(stderr, "  the break is that damage: the records up to seq %" PRIu64 " verify\n",
                        q.seq);
        else
                fprintf(stderr, "  the break is NOT where the quarantine recorded it\n");
}

static void usage(FILE *f)
{
        fprintf(f, "Usage: mamorictl log quarantine [--config FILE]\n\n"
                   "When mamorid refuses its operation log (log-damaged: a record does not verify, the log\n"
                   "is another terminal's, or its current key is gone), move that log unchanged to\n"
                   "[Log] Directory/quarantine/LOG-ID/ (kept for the auditors, never deleted) and start a\n"
                   "new log whose log.open names the old log and its last good record. Root only; then\n"
                   "restart mamorid. Exit 0 done, 1 nothing to quarantine, 2 error.\n");
}

int ctl_log_quarantine(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_free_ char *keys = NULL;
        struct oplog_quarantine_result res;
        const char *config = AGENT_CONFIG_PATH;
        struct agent_config cfg;
        struct oplog_params p;
        char line[32] = "";
        int c, k, rc;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                if (c == 'c')
                        config = optarg;
                else if (c == 'h') {
                        usage(stdout);
                        return 0;
                } else {
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (geteuid() != 0) {
                fprintf(stderr, "mamorictl: log quarantine must be run as root (it moves the log and signs "
                                "the new log's first record with the terminal identity key)\n");
                return 2;
        }
        k = agent_config_load(config, diag, NULL, &cfg);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot use configuration %s: %s\n", config, strerror(-k));
                return 2;
        }
        if (!cfg.terminal_id) {
                fprintf(stderr,
                        "mamorictl: %s has no [Terminal] Id=: enrol the terminal first (a new log is "
                        "written under this terminal's id)\n",
                        config);
                agent_config_free(&cfg);
                return 2;
        }
        k = oplog_keys_directory(cfg.log_directory, &keys);
        if (k < 0) {
                agent_config_free(&cfg);
                return 2;
        }
        p = (struct oplog_params){
                .directory = cfg.log_directory,
                .keys_directory = keys,
                .identity_key = cfg.identity_key,
                .terminal_id = cfg.terminal_id,
                .rotate_records = cfg.key_rotate_records,
                .rotate_usec = cfg.key_rotate_usec,
                .retention_days = cfg.local_retention_days,
                .receipt_key = cfg.receipt_key,
        };
        k = oplog_quarantine(&p, &res);
        rc = 0;
        switch (k) {
        case 0:
                if (res.damage.line > 0)
                        snprintf(line, sizeof(line), ":%" PRIu64, res.damage.line);
                printf("quarantined log %s (terminal %s): %s%s: %s\n", res.damage.log_id, res.damage.term,
                       res.damage.file, line, res.damage.reason);
                printf("  last good record: seq %" PRIu64 " (hash %s)\n", res.damage.good_seq,
                       res.damage.good_hash);
                printf("  %u segment file(s) moved unchanged to %s (kept for the auditors; nothing "
                       "deleted)\n",
                       res.segments, res.path);
                printf("  new log %s continues it: its log.open names log %s, seq %" PRIu64 "\n",
                       res.new_log, res.damage.log_id, res.damage.good_seq);
                printf("Next: restart mamorid (systemctl restart mamorid.service). Check both logs with\n"
                       "  mamorictl log verify %s --identity PUB.pem   (verifies up to the damage)\n"
                       "  mamorictl log verify %s --identity PUB.pem\n",
                       res.path, cfg.log_directory);
                break;
        case -EBUSY:
                fprintf(stderr,
                        "mamorictl: mamorid holds the log in %s: it opened it, so it is not damaged "
                        "(nothing to quarantine)\n",
                        cfg.log_directory);
                rc = 1;
                break;
        case -EALREADY:
                fprintf(stderr,
                        "mamorictl: the log in %s verifies and is this terminal's: nothing to "
                        "quarantine\n",
                        cfg.log_directory);
                rc = 1;
                break;
        case -ENODATA:
                fprintf(stderr, "mamorictl: there is no log in %s: nothing to quarantine\n",
                        cfg.log_directory);
                rc = 1;
                break;
        default:
                fprintf(stderr, "mamorictl: cannot quarantine the log in %s: %s\n", cfg.log_directory,
                        strerror(-k));
                rc = 2;
        }
        agent_config_free(&cfg);
        return rc;
}
