/* mamori-uploader's cursor file: the highest seq the collector acknowledged (DESIGN.md §7). */
#pragma once

#include <stdint.h>

#include "mamori/encoding.h"

/* The file holds {"log":"<log id>","acked":N} and one "\n"; the same format oplog_read_cursor()
 * (mamorid's pruning) and `mamorictl status` read. */
#define UPLOAD_CURSOR_MAX 4096

/* -ENOENT when there is no cursor, -EBADMSG when it is not one (the caller starts from the
 * collector's acked instead). */
int upload_cursor_load(const char *path, char ret_log[ID128_STRING_MAX], uint64_t *ret_acked);

/* Replace the cursor durably: temp file, fsync, rename, fsync of the directory. */
int upload_cursor_save(const char *path, const char *log, uint64_t acked);
