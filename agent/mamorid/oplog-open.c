/* Opens mamorid's operation log, writes agent.start/stop durably, attaches its completions to the loop. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "journal.h"
#include "mamori/time-util.h"
#include "oplog-check.h"
#include "oplog-keys.h"
#include "oplog-open.h"

struct AgentOplog {
        OpLog *log;
        int last_error;        /* last reported failure, to log each change once */
        enum auth_reason held; /* why no log was opened on purpose (AUTH_ALLOW: none) */
};

static void report(AgentOplog *a, int error)
{
        if (error == a->last_error)
                return;
        a->last_error = error;
        if (error < 0)
                agent_log(LOG_CRIT,
                          "operation log is not writable (%s): new sessions are refused until it is",
                          strerror(-error));
        else
                agent_log(LOG_NOTICE, "operation log is writable again");
}

static const char *previous_name(enum oplog_previous p)
{
        switch (p) {
        case OPLOG_PREVIOUS_NONE:
                return "new";
        case OPLOG_PREVIOUS_CLEAN:
                return "clean";
        default:
                return "crash";
        }
}

/* No [Terminal] Id: nothing may be recorded under an id that is not this terminal's, so no log is
 * opened; the identity key is made all the same, for the enrolment request. */
static void hold_unconfigured(AgentOplog *a, const struct agent_config *config)
{
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        bool created = false;
        int k;

        a->held = AUTH_TERMINAL_UNCONFIGURED;
        k = oplog_identity_load_or_create(config->identity_key, &identity, &created);
        if (k < 0)
                agent_log(LOG_ERR, "cannot create the terminal identity key %s: %s", config->identity_key,
                          strerror(-k));
        else if (created)
                agent_log(LOG_NOTICE, "created the terminal identity key %s", config->identity_key);
        agent_log(LOG_CRIT,
                  "this terminal has no [Terminal] Id= in agent.conf: logins are refused "
                  "(terminal-unconfigured) and nothing is recorded until it is enrolled. Next: "
                  "`mamorictl identity` prints the identity key %s for `mamori-admin terminal add`; "
                  "install what that gives, set [Terminal] Id= and restart mamorid",
                  config->identity_key);
}

/* The log is damaged (or not this terminal's): say where, and what the administrator does next. */
static void hold_damaged(AgentOplog *a, const struct agent_config *config, const struct oplog_damage *d)
{
        char line[32] = "";

        a->held = AUTH_LOG_DAMAGED;
        if (d->line > 0)
                snprintf(line, sizeof(line), ":%" PRIu64, d->line);
        agent_log(LOG_CRIT,
                  "operation log damaged at %s%s%s%s: %s. Nothing is written on top of it and logins are "
                  "refused (log-damaged). Last good record: seq %" PRIu64
                  ". Next: as root run `mamorictl log quarantine` (moves this log aside for the auditors, "
                  "keeps it, starts a new log that names it), then restart mamorid",
                  config->log_directory, d->file[0] ? "/" : "", d->file, line, d->reason, d->good_seq);
}

int oplog_agent_start(const struct agent_config *config, sd_event *e, AgentOplog **ret)
{
        _cleanup_free_ char *keys = NULL;
        struct oplog_recovery rec = {0};
        struct oplog_damage damage;
        struct oplog_params p = {0};
        JsonValue *data = NULL;
        AgentOplog *a;
        uint64_t t0;
        int k;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        *ret = a;
        if (!config->terminal_id) {
                hold_unconfigured(a, config);
                return 0;
        }
        k = oplog_keys_directory(config->log_directory, &keys);
        if (k < 0)
                goto fail;
        p = (struct oplog_params){
                .directory = config->log_directory,
                .keys_directory = keys,
                .identity_key = config->identity_key,
                .terminal_id = config->terminal_id,
                .rotate_records = config->key_rotate_records,
                .rotate_usec = config->key_rotate_usec,
                .retention_days = config->local_retention_days,
                .receipt_key = config->receipt_key,
                .async = true,
        };
        t0 = now_mono_usec();
        k = oplog_open_checked(&p, &a->log, &rec, &damage);
        if (k == -EBADMSG) {
                hold_damaged(a, config, &damage);
                a->last_error = k; /* said above, in full */
                return k;
        }
        if (k < 0) {
                agent_log_id(MAMORI_MESSAGE_LOG_UNWRITABLE, LOG_CRIT,
                             "cannot open the operation log in %s: %s%s", config->log_directory,
                             strerror(-k),
                             k == -ENOKEY ? " (the current log key is gone; the chain cannot be continued: "
                                            "run `mamorictl log quarantine` as root, then restart mamorid)"
                                          : "");
                goto fail;
        }
        agent_log(LOG_INFO,
                  "operation log %s: last records checked in %" PRIu64 " ms (%" PRIu64 " linked, %" PRIu64
                  " signatures)",
                  rec.log_id, (now_mono_usec() - t0) / 1000, rec.checked_records, rec.verified_records);
        if (rec.identity_created)
                agent_log(LOG_NOTICE, "created the terminal identity key %s", config->identity_key);
        if (rec.torn_bytes > 0)
                agent_log(LOG_WARNING,
                          "operation log: dropped a torn last record (%" PRIu64 " bytes) after seq %" PRIu64,
                          rec.torn_bytes, rec.last_seq);
        if (rec.stale_keys_destroyed > 0)
                agent_log(LOG_NOTICE,
                          "operation log: destroyed %d log key(s) left by an interrupted rotation",
                          rec.stale_keys_destroyed);
        k = thread_mailbox_attach_event(oplog_completions(a->log), e);
        if (k < 0)
                goto fail;

        k = json_new_object(&data);
        if (k >= 0)
                k = json_object_set_string(data, "previous", previous_name(rec.previous));
        if (k >= 0)
                k = json_object_set_integer(data, "last_seq", (int64_t)rec.last_seq);
        if (k >= 0)
                k = json_object_set_integer(data, "torn_bytes", (int64_t)rec.torn_bytes);
        if (k >= 0)
                k = json_object_set_string(data, "version", MAMORI_VERSION);
        if (k < 0) {
                json_value_free(data);
                goto fail;
        }
        k = oplog_append(a->log, "agent.start", NULL, NULL, data, NULL);
        if (k < 0)
                goto fail;
        return 0;
fail:
        report(a, k);
        return k;
}

AgentOplog *oplog_agent_stop(AgentOplog *a)
{
        if (!a)
                return NULL;
        if (a->log) {
                int k;
                (void)oplog_dispatch(a->log);
                k = oplog_append(a->log, "agent.stop", NULL, NULL, NULL, NULL);
                if (k < 0)
                        agent_log(LOG_ERR, "cannot write agent.stop to the operation log: %s", strerror(-k));
                a->log = oplog_close(a->log);
        }
        free(a);
        return NULL;
}

OpLog *oplog_agent_log(AgentOplog *a)
{
        return a ? a->log : NULL;
}

enum auth_reason oplog_agent_held(AgentOplog *a)
{
        return a ? a->held : AUTH_ALLOW;
}
