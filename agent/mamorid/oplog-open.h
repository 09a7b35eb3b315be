/* mamorid's bridge to the operation log: opens it from the configuration, writes agent.start/stop. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "mamori/agent-config.h"
#include "mamori/auth-reasons.h"
#include "oplog-writer.h"

typedef struct AgentOplog AgentOplog;

/*
 * Open the log of config ([Log] Directory, epoch keys in <parent of Directory>/keys, [Terminal]
 * IdentityKey/Id), attach its completion eventfd to e, and write agent.start (durably) with how
 * the previous run ended: data {"previous":"new"|"clean"|"crash","last_seq":N,"torn_bytes":N,
 * "version":V}. On failure *ret is still set: the log is then unwritable (oplog_agent_log() NULL)
 * and the reason was logged; mamorid keeps running fail-closed. Without [Terminal] Id, or when the
 * log's last records are damaged (oplog-check.h), no log is opened on purpose and
 * oplog_agent_held() names the reason every login is refused; the journal says what to do next.
 */
int oplog_agent_start(const struct agent_config *config, sd_event *e, AgentOplog **ret);

/* Write agent.stop durably and close. NULL is fine. Returns NULL. */
AgentOplog *oplog_agent_stop(AgentOplog *a);

/* The writer itself (NULL when it could not be opened), e.g. for blocking appends of D-Bus calls. */
OpLog *oplog_agent_log(AgentOplog *a);

/* AUTH_TERMINAL_UNCONFIGURED, AUTH_LOG_DAMAGED, or AUTH_ALLOW. */
enum auth_reason oplog_agent_held(AgentOplog *a);
