/* mamorid's bridge to the operation log: opens it from the configuration, writes events from the sd-event
 * loop. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "mamori/agent-config.h"
#include "oplog.h"
#include "reader-watch.h"

typedef struct AgentOplog AgentOplog;

/*
 * Open the log of config ([Log] Directory, epoch keys in <parent of Directory>/keys, [Terminal]
 * IdentityKey/Id), attach its completion eventfd to e, and write agent.start (durably) with how
 * the previous run ended: data {"previous":"new"|"clean"|"crash","last_seq":N,"torn_bytes":N,
 * "version":V}. On failure *ret is still set: the log is then unwritable (oplog_agent_writable()
 * false) and the reason was logged; mamorid keeps running fail-closed.
 */
int oplog_agent_start(const struct agent_config *config, sd_event *e, AgentOplog **ret);

/* Write agent.stop durably and close. NULL is fine. Returns NULL. */
AgentOplog *oplog_agent_stop(AgentOplog *a);

/* Queue one event (answered after commit; a failure is logged and makes the log unwritable).
 * Then pairs of data field name and string value (NULL value = skipped), ending with NULL. */
void oplog_agent_event(AgentOplog *a, const char *ev, const char *op, const char *card, ...)
        __attribute__((sentinel));

/* The reader watcher's events as records (reader.added/lost, card.inserted/removed). */
void oplog_agent_reader_event(AgentOplog *a, const struct reader_event *ev);

/* false when no record can be written now: the session layer must refuse new sessions. */
bool oplog_agent_writable(AgentOplog *a);

/* The writer itself (NULL when it could not be opened), e.g. for blocking appends of D-Bus calls. */
OpLog *oplog_agent_log(AgentOplog *a);
