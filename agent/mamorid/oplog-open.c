/* Opens mamorid's operation log, writes agent.start/stop durably, attaches its completions to the loop. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "journal.h"
#include "oplog-open.h"

struct AgentOplog {
        OpLog *log;
        int last_error; /* last reported failure, to log each change once */
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

static int parent_keys_dir(const char *log_dir, char **ret)
{
        const char *slash = strrchr(log_dir, '/');
        int n;

        if (!slash || slash == log_dir)
                n = asprintf(ret, "/keys");
        else
                n = asprintf(ret, "%.*s/keys", (int)(slash - log_dir), log_dir);
        return n < 0 ? -ENOMEM : 0;
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

int oplog_agent_start(const struct agent_config *config, sd_event *e, AgentOplog **ret)
{
        _cleanup_free_ char *keys = NULL;
        struct oplog_recovery rec = {0};
        struct oplog_params p = {0};
        JsonValue *data = NULL;
        AgentOplog *a;
        int k;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        *ret = a;
        k = parent_keys_dir(config->log_directory, &keys);
        if (k < 0)
                goto fail;
        p = (struct oplog_params){
                .directory = config->log_directory,
                .keys_directory = keys,
                .identity_key = config->identity_key,
                .terminal_id = config->terminal_id ? config->terminal_id : "unconfigured",
                .rotate_records = config->key_rotate_records,
                .rotate_usec = config->key_rotate_usec,
                .retention_days = config->local_retention_days,
                .receipt_key = config->receipt_key,
                .async = true,
        };
        k = oplog_open(&p, &a->log, &rec);
        if (k < 0) {
                agent_log(LOG_CRIT, "cannot open the operation log in %s: %s%s", config->log_directory,
                          strerror(-k),
                          k == -ENOKEY ? " (the current log key is gone; the chain cannot be continued)"
                                       : "");
                goto fail;
        }
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
