/* mamori-uploader's reader of the local operation log: committed record lines after a seq, in batches. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mamori/encoding.h"
#include "mamori/macro.h"

#define UPLOAD_BATCH_RECORDS_DEFAULT 1000u
#define UPLOAD_BATCH_BYTES_DEFAULT   (1024u * 1024u)

/* One batch: whole record lines (each ending with "\n") of one log, ascending seq, no gap. The
 * batch owns data; upload_batch_clear() empties it for reuse, upload_batch_done() frees it. */
typedef struct UploadBatch {
        char *data;
        size_t len, cap;
        size_t count;
        uint64_t first_seq, last_seq;
        char log[ID128_STRING_MAX];
} UploadBatch;

void upload_batch_clear(UploadBatch *b);
void upload_batch_done(UploadBatch *b);

typedef struct UploadReader UploadReader;

/* dir is [Log] Directory. Nothing is opened yet. */
int upload_reader_new(const char *dir, UploadReader **ret);
UploadReader *upload_reader_free(UploadReader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(UploadReader *, upload_reader_free);

/* Log id of the local log (from the first line of the oldest segment). -ENOENT no record yet,
 * -EBADMSG that line is not a record. */
int upload_reader_log_id(UploadReader *r, char ret[ID128_STRING_MAX]);

/*
 * Fill b (cleared first) with the lines after seq `after`: at most max_records lines and max_bytes
 * bytes (but always at least one line when one is there). Only complete lines are read, and each
 * segment read from is fdatasync'd before this returns, so nothing is handed out that a power cut
 * could take back. When after+1 is older than the oldest segment (pruned after acknowledgement)
 * the batch starts at the oldest record there is.
 * Returns the number of lines (0 = nothing new), -EBADMSG when the local log is not a sequence of
 * records of one log with consecutive seqs (never skipped), -errno from the file system.
 */
int upload_reader_read(UploadReader *r, uint64_t after, size_t max_records, size_t max_bytes,
                       UploadBatch *b);
