/* The watch position file: per log the last seq judged, and the last collector alert (watch-position.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

#define WATCH_POSITION_MAX  (8u * 1024u * 1024u) /* bytes of the file */
#define WATCH_POSITION_LOGS 100000u              /* logs in one position */

typedef struct WatchPosition {
        int64_t alert;          /* id of the last collector alert judged, >= 0 */
        AuditStreamStart *logs; /* malloc'd, n entries, each log once (lowercase hex id), after >= 0 */
        unsigned n;
} WatchPosition;

/*
 * {"alert":N,"logs":{"L":SEQ,…}} with an optional final "\n"; other top-level keys are ignored (a newer
 * watch may add some). -EBADMSG malformed, -E2BIG beyond the bounds above, -ERANGE a number beyond
 * int64 or the record seq bound, -ENOMEM. On success *ret owns its logs (watch_position_done).
 */
int watch_position_parse(const char *text, size_t size, WatchPosition *ret);
void watch_position_done(WatchPosition *p);
/* The canonical text of a position (what parse reads back to the same position), malloc'd. */
int watch_position_format(int64_t alert, const AuditStreamStart *logs, unsigned n, char **ret,
                          size_t *ret_size);
