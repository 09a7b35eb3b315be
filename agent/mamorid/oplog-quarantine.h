/* Quarantine of a damaged operation log: moved aside for the auditors, a new log that names it. */
#pragma once

#include <limits.h>
#include <stdint.h>

#include "mamori/quarantine-info.h"
#include "oplog-check.h"
#include "oplog-writer.h"

struct oplog_quarantine_result {
        struct oplog_damage damage;     /* why (file, line, reason) and the last good record */
        char path[PATH_MAX];            /* where the old log's segments are now */
        unsigned segments;              /* segment files moved there */
        char new_log[ID128_STRING_MAX]; /* the log that continues */
};

/*
 * Quarantine the log in p->directory when mamorid refuses it: damaged (oplog_check()), written
 * under another terminal id, or its current epoch key gone. Its segments move, unchanged, to
 * <directory>/quarantine/<log id>/ with quarantine.json ({"v":1,"log","term","file","line",
 * "reason","seq","hash","ts","new_log"}: seq/hash is the last good record); nothing is deleted.
 * Then a new log starts whose log.open data names it: "previous":{"log":L,"seq":N,"hash":H,
 * "reason":"quarantine"}. While it runs, <directory>/.quarantine marks the move: mamorid refuses to
 * open the directory, and running it again finishes an interrupted quarantine.
 *
 * -EBUSY: a writer (mamorid) holds the log, so it opened it and it is not damaged; -EALREADY: the
 * log verifies and is this terminal's (nothing to do); -ENODATA: there is no log; -errno otherwise.
 */
int oplog_quarantine(const struct oplog_params *p, struct oplog_quarantine_result *ret);
