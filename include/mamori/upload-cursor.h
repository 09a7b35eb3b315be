/* The upload cursor (DESIGN.md §7): the highest seq of one log the collector acknowledged, and the
 * receipt that proves it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/encoding.h"
#include "mamori/receipt.h"

/*
 * One file, written only by mamori-uploader (after a verified receipt) and read by mamorid (pruning),
 * `mamorictl status` and `mamorictl log verify`. It holds {"log":"<32 lowercase hex>","acked":N,
 * "receipt":{…}} and one "\n": the receipt (receipt.h) of that log and that N, as the collector
 * signed it. Files without "receipt" (written before receipts) are read, but acknowledge nothing
 * that anyone believes. Whitespace inside the object is accepted on reading, nothing else: no
 * other key, no second value, 0 ≤ N ≤ 2^53-1. A missing file means nothing is acknowledged.
 */
#define UPLOAD_CURSOR_PATH_DEFAULT "/var/lib/mamori/upload/cursor"
#define UPLOAD_CURSOR_SIZE_MAX     4096u                    /* larger files are not cursors */
#define UPLOAD_CURSOR_LINE_MAX     (96u + RECEIPT_SIZE_MAX) /* the canonical line, "\n" and NUL */

typedef struct UploadCursor {
        char log[ID128_STRING_MAX]; /* the local log id */
        uint64_t acked;             /* highest seq of log stored by the collector with no gap */
        bool has_receipt;
        Receipt receipt; /* for log and acked, signed */
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

/*
 * The cursor only as far as its receipt proves it (what mamorid prunes by): path is loaded, its
 * receipt verified with receipt_key and checked against the local log in dir with id log_id
 * (receipt_check_log). 0 with *ret when all hold. -ENOENT no cursor; -ENOKEY a cursor without a
 * receipt; -ESTALE a cursor of another log; -EBADMSG not a cursor, or a receipt that does not
 * hold (*ret_why, may be NULL, says why); other -errno when the files cannot be read.
 */
int upload_cursor_load_verified(const char *path, EVP_PKEY *receipt_key, const char *dir, const char *log_id,
                                UploadCursor *ret, const char **ret_why);

/* Replace the cursor durably (temp file, fsync, rename, fsync of the directory), mode 0644 so that
 * mamorid and mamorictl can read it. -EINVAL for an invalid cursor (nothing is written). */
int upload_cursor_save(const char *path, const UploadCursor *c);
