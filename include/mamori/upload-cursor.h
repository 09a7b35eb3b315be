/* The upload cursor (DESIGN.md §7): the highest seq of one log the collector acknowledged. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mamori/encoding.h"

/*
 * One file, written only by mamori-uploader (after a 2xx) and read by mamorid (pruning) and
 * `mamorictl status`. It holds exactly {"log":"<32 lowercase hex>","acked":N} and one "\n"
 * (whitespace inside the object is accepted on reading, nothing else: no other key, no second
 * value, 0 ≤ N ≤ 2^53-1). A missing file means nothing is acknowledged.
 */
#define UPLOAD_CURSOR_PATH_DEFAULT "/var/lib/mamori/upload/cursor"
#define UPLOAD_CURSOR_SIZE_MAX     4096u /* larger files are not cursors */
#define UPLOAD_CURSOR_LINE_MAX     80u   /* the canonical line with its "\n" and a NUL */

typedef struct UploadCursor {
        char log[ID128_STRING_MAX]; /* the local log id */
        uint64_t acked;             /* highest seq of log stored by the collector with no gap */
} UploadCursor;

/* Parse the file's bytes. -EBADMSG when they are not exactly one cursor. */
int upload_cursor_parse(const void *data, size_t size, UploadCursor *ret);

/* The canonical line, "\n" included, NUL-terminated. Returns its length, or -EINVAL for a cursor
 * that could not be parsed back. */
int upload_cursor_format(const UploadCursor *c, char ret[static UPLOAD_CURSOR_LINE_MAX]);

/* Read path without following a symlink. -ENOENT when missing; -EBADMSG when it is not a cursor
 * (junk, too large, not a regular file, a symlink); other -errno from open/read. */
int upload_cursor_load(const char *path, UploadCursor *ret);

/* What path acknowledges of log_id: 0 when the file is missing or names another log. Negative as
 * upload_cursor_load() when it is unreadable or not a cursor. */
int upload_cursor_acked(const char *path, const char *log_id, uint64_t *ret_acked);

/* Replace the cursor durably (temp file, fsync, rename, fsync of the directory), mode 0644 so that
 * mamorid and mamorictl can read it. -EINVAL for an invalid cursor (nothing is written). */
int upload_cursor_save(const char *path, const UploadCursor *c);
