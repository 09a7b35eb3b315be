/* Event and diagnostic output of mamorid: structured journal fields, or "event key=value" lines. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "mamori/macro.h"
#include "mamori/message-ids.h"

/* Decides once whether stderr is connected to the journal (JOURNAL_STREAM matches stderr). */
void agent_log_init(void);
bool agent_log_to_journal(void);

/* One event: name is a DESIGN.md §6 event ("card.inserted"); then pairs of field name (lowercase,
 * e.g. "reader") and value, ending with NULL. A NULL value skips that field. On the journal each
 * field becomes MAMORI_<FIELD>=, and the events an administrator acts on get their MESSAGE_ID=
 * (mamori_event_message_id()); on stderr the line is `name field=value …` with values quoted
 * when they contain blanks or quotes. */
void agent_log_event(const char *name, ...) __attribute__((sentinel));
/* The same with the fields as arrays (n pairs; at most 16 are shown). */
void agent_log_event_fields(const char *name, const char *const keys[], const char *const values[],
                            size_t n);

/* Diagnostics (priority as in syslog.h: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
_printf_(2, 3) void agent_log(int priority, const char *fmt, ...);
/* The same with a MESSAGE_ID= (include/mamori/message-ids.h) for the journal catalogue. */
_printf_(3, 4) void agent_log_id(const char *message_id, int priority, const char *fmt, ...);
