/* quarantine.json, the note beside a quarantined operation log: one codec for mamorid's writer, mamorictl
 * and the uploader. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mamori/encoding.h"
#include "mamori/oplog-record.h"
#include "mamori/oplog-verify.h"

#define QUARANTINE_DIR      "quarantine"      /* under [Log] Directory */
#define QUARANTINE_INFO     "quarantine.json" /* in each quarantined log's directory */
#define QUARANTINE_INFO_MAX (16u * 1024u)
#define QUARANTINE_NAME_MAX (ID128_STRING_MAX + 8) /* "<log id>" or "<log id>.N" */

/*
 * {"v":1,"log":L,"term":T,"file":F,"line":N,"reason":R,"seq":S,"hash":H,"ts":US,"dir":D[,"new_log":L2]}
 * (JCS): the log L of terminal T was quarantined at F:N for R; its records up to seq S (line hash H)
 * hold; it lies in QUARANTINE_DIR/D; the log L2 continues it (absent while the quarantine runs).
 */
struct quarantine_info {
        char log[ID128_STRING_MAX];
        char term[RECORD_ID_MAX + 1];
        char file[LOG_SEGMENT_NAME_MAX];
        uint64_t line;
        char reason[256];
        uint64_t seq;
        char hash[SHA256_HEX_MAX];
        int64_t ts;
        char dir[QUARANTINE_NAME_MAX];
        char new_log[ID128_STRING_MAX]; /* "" while not known */
};

/* The JCS bytes (no "\n"), malloc'd. -EINVAL when a field is not what the format says. */
int quarantine_info_format(const struct quarantine_info *q, char **ret, size_t *ret_len);
/* Strict and bounded: -EBADMSG for anything but the format above. */
int quarantine_info_parse(const void *data, size_t size, struct quarantine_info *ret);
int quarantine_info_load(const char *path, struct quarantine_info *ret);
/*
 * The quarantined log `log` under log_dir: its directory (malloc'd path) and note. -ENOENT when
 * there is none; the latest one when the same log was quarantined more than once.
 */
int quarantine_info_find(const char *log_dir, const char *log, char **ret_dir, struct quarantine_info *ret);
