/* Reads committed record lines of the local operation log for mamori-uploader, from a remembered
 * position (segment, byte offset, seq) so that a stream of batches reads every byte once. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/oplog-verify.h"
#include "mamori/oplog-record.h"
#include "upload-reader.h"

#define READ_CHUNK (RECORD_LINE_MAX * 4u) /* always holds a whole line */

struct UploadReader {
        char *dir;
        /* Position: the line at offset in segment seg_first has seq pos_seq. */
        bool pos_valid;
        uint64_t seg_first;
        uint64_t offset;
        uint64_t pos_seq;
        int fd;
        bool fd_dirty; /* read since the last fdatasync */
        char *chunk;
};

void upload_batch_clear(UploadBatch *b)
{
        b->len = 0;
        b->count = 0;
        b->first_seq = b->last_seq = 0;
        b->log[0] = 0;
}

void upload_batch_done(UploadBatch *b)
{
        free(b->data);
        *b = (UploadBatch){};
}

static int batch_append(UploadBatch *b, const char *line, size_t len)
{
        if (b->len + len + 1 > b->cap) {
                size_t nc = b->cap ? b->cap : 64 * 1024;
                while (nc < b->len + len + 1)
                        nc *= 2;
                char *nd = realloc(b->data, nc);
                if (!nd)
                        return -ENOMEM;
                b->data = nd;
                b->cap = nc;
        }
        memcpy(b->data + b->len, line, len);
        b->data[b->len + len] = '\n';
        b->len += len + 1;
        return 0;
}

int upload_reader_new(const char *dir, UploadReader **ret)
{
        UploadReader *r;

        if (!dir || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->fd = -1;
        r->dir = strdup(dir);
        r->chunk = malloc(READ_CHUNK);
        if (!r->dir || !r->chunk) {
                upload_reader_free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

UploadReader *upload_reader_free(UploadReader *r)
{
        if (!r)
                return NULL;
        safe_close(r->fd);
        free(r->dir);
        free(r->chunk);
        free(r);
        return NULL;
}

static void reader_reset(UploadReader *r)
{
        r->fd = safe_close(r->fd);
        r->fd_dirty = false;
        r->pos_valid = false;
}

static int open_segment(UploadReader *r, uint64_t first)
{
        char name[LOG_SEGMENT_NAME_MAX];
        int dfd, fd;

        log_segment_name(first, name);
        dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0) {
                int k = negative_errno();
                close(dfd);
                return k;
        }
        close(dfd);
        r->fd = safe_close(r->fd);
        r->fd = fd;
        r->fd_dirty = false;
        r->seg_first = first;
        r->offset = 0;
        r->pos_seq = first;
        r->pos_valid = true;
        return 0;
}

/* The first seq of the segment that should hold seq (the last one starting at or before it, or the
 * oldest), and of the segment after cur_first (0 = none). */
static int find_segments(UploadReader *r, uint64_t seq, uint64_t cur_first, uint64_t *ret_holder,
                         uint64_t *ret_next)
{
        char **names = NULL;
        size_t n = 0;
        uint64_t holder = 0, next = 0;
        int k;

        k = log_segments_list(r->dir, &names, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                uint64_t first;
                (void)log_segment_name_parse(names[i], &first);
                if (i == 0 || first <= seq)
                        holder = first;
                if (next == 0 && first > cur_first)
                        next = first;
        }
        log_segments_free(names, n);
        if (n == 0)
                return -ENOENT;
        if (ret_holder)
                *ret_holder = holder;
        if (ret_next)
                *ret_next = next;
        return 0;
}

/* Makes durable what was read from the current segment (a line written but not yet synced by
 * mamorid must not reach the collector: a power cut could replace it with other bytes). */
static int sync_current(UploadReader *r)
{
        if (r->fd >= 0 && r->fd_dirty) {
                if (fdatasync(r->fd) < 0)
                        return negative_errno();
                r->fd_dirty = false;
        }
        return 0;
}

int upload_reader_log_id(UploadReader *r, char ret[ID128_STRING_MAX])
{
        _cleanup_record_ Record *rec = NULL;
        char name[LOG_SEGMENT_NAME_MAX];
        _cleanup_close_ int fd = -1;
        uint64_t oldest;
        ssize_t n;
        char *nl;
        int k;

        k = find_segments(r, 0, 0, &oldest, NULL);
        if (k < 0)
                return k;
        log_segment_name(oldest, name);
        {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", r->dir, name) < 0)
                        return -ENOMEM;
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        }
        if (fd < 0)
                return negative_errno();
        n = pread(fd, r->chunk, READ_CHUNK, 0);
        if (n < 0)
                return negative_errno();
        nl = memchr(r->chunk, '\n', (size_t)n);
        if (!nl)
                return n == (ssize_t)READ_CHUNK ? -EBADMSG : -ENOENT;
        k = record_parse_line(r->chunk, (size_t)(nl - r->chunk), &rec);
        if (k < 0)
                return -EBADMSG;
        memcpy(ret, rec->log, ID128_STRING_MAX);
        return 0;
}

/* Reads the complete lines at the position: skips those before want, appends the rest to b within
 * the bounds. *ret_full is set when the bounds stopped it (not the end of the data). */
static int read_lines(UploadReader *r, uint64_t want, size_t max_records, size_t max_bytes, UploadBatch *b,
                      bool *ret_full)
{
        for (;;) {
                ssize_t n = pread(r->fd, r->chunk, READ_CHUNK, (off_t)r->offset);
                size_t used = 0;
                bool any = false;

                if (n < 0)
                        return negative_errno();
                while ((size_t)n > used) {
                        char *line = r->chunk + used;
                        char *nl = memchr(line, '\n', (size_t)n - used);
                        size_t len;

                        if (!nl)
                                break;
                        len = (size_t)(nl - line);
                        if (r->pos_seq >= want) {
                                _cleanup_record_ Record *rec = NULL;

                                if (b->count > 0 &&
                                    (b->count >= max_records || b->len + len + 1 > max_bytes)) {
                                        *ret_full = true;
                                        return 0;
                                }
                                if (record_parse_line(line, len, &rec) < 0 || rec->seq != r->pos_seq ||
                                    (b->count > 0 && !streq(rec->log, b->log)))
                                        return -EBADMSG;
                                if (batch_append(b, line, len) < 0)
                                        return -ENOMEM;
                                if (b->count == 0) {
                                        b->first_seq = rec->seq;
                                        memcpy(b->log, rec->log, sizeof(b->log));
                                }
                                b->last_seq = rec->seq;
                                b->count++;
                                r->fd_dirty = true;
                        }
                        used += len + 1;
                        r->offset += len + 1;
                        r->pos_seq++;
                        any = true;
                }
                if (!any) {
                        /* No complete line: the end of what is committed here, or a line longer
                         * than any record can be. */
                        if ((size_t)n == READ_CHUNK)
                                return -EBADMSG;
                        *ret_full = false;
                        return 0;
                }
        }
}

int upload_reader_read(UploadReader *r, uint64_t after, size_t max_records, size_t max_bytes, UploadBatch *b)
{
        uint64_t want = after + 1;
        bool retried = false;
        int k;

        if (!r || !b || max_records == 0 || max_bytes == 0)
                return -EINVAL;
        upload_batch_clear(b);

        if (r->pos_valid) {
                struct stat st;
                /* A segment that was removed (pruned, or a new log) no longer tells the truth. */
                if (r->pos_seq != want || fstat(r->fd, &st) < 0 || st.st_nlink == 0)
                        reader_reset(r);
        }
        if (!r->pos_valid) {
                uint64_t holder;
                k = find_segments(r, want, 0, &holder, NULL);
                if (k == -ENOENT)
                        return 0;
                if (k < 0)
                        return k;
                k = open_segment(r, holder);
                if (k < 0)
                        return k;
                if (holder > want)
                        want = holder; /* older records were pruned after acknowledgement */
        }

        for (;;) {
                uint64_t next;
                bool full = false;

                k = read_lines(r, want, max_records, max_bytes, b, &full);
                if (k < 0)
                        goto fail;
                if (full)
                        break;
                /* End of this segment's committed lines: is there a newer segment? */
                k = find_segments(r, r->pos_seq, r->seg_first, NULL, &next);
                if (k < 0)
                        goto fail;
                if (next == 0)
                        break;
                if (next != r->pos_seq) {
                        /* The writer may have added lines here before switching: look once more. */
                        if (!retried) {
                                retried = true;
                                continue;
                        }
                        k = -EBADMSG;
                        goto fail;
                }
                retried = false;
                k = sync_current(r);
                if (k < 0)
                        goto fail;
                k = open_segment(r, next);
                if (k < 0)
                        goto fail;
        }
        k = sync_current(r);
        if (k < 0)
                goto fail;
        return (int)b->count;
fail:
        reader_reset(r);
        upload_batch_clear(b);
        return k;
}
