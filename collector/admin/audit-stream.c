/* Every stored log merged into one time-ordered stream of parsed records: one cursor and one record per log.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

typedef struct Head {
        char log[ID128_STRING_MAX];
        StoreCursor *cursor;
        AuditRecord rec;
        char *scratch; /* its decoded strings */
        size_t scratch_size;
} Head;

struct AuditStream {
        Head *heads;
        unsigned n, allocated;
        unsigned *heap; /* indexes into heads, ordered by (ts, log, seq) */
        unsigned heap_n;
        bool started;
        uint64_t total;
        const char *const *needles; /* when set, lines holding none of them are skipped unparsed */
        size_t n_needles;
};

void audit_stream_set_filter(AuditStream *st, const char *const *needles, size_t n)
{
        st->needles = needles;
        st->n_needles = n;
}

static bool wanted(const AuditStream *st, const char *line, size_t len)
{
        if (!st->n_needles)
                return true;
        for (size_t i = 0; i < st->n_needles; i++)
                if (memmem(line, len, st->needles[i], strlen(st->needles[i])))
                        return true;
        return false;
}

/* The top-level "ts" of a JCS record line: after "term", before "v", so its last occurrence. */
static int line_ts(const char *line, size_t len, int64_t *ret)
{
        static const char key[] = ",\"ts\":";
        const char *hit = NULL;
        int64_t v = 0;

        for (const char *p = line; (p = memmem(p, len - (size_t)(p - line), key, sizeof(key) - 1));
             p += sizeof(key) - 1)
                hit = p;
        if (!hit)
                return -EBADMSG;
        hit += sizeof(key) - 1;
        if (hit >= line + len || *hit < '0' || *hit > '9')
                return -EBADMSG;
        for (; hit < line + len && *hit >= '0' && *hit <= '9'; hit++) {
                if (v > RECORD_INT_MAX / 10)
                        return -ERANGE;
                v = v * 10 + (*hit - '0');
        }
        *ret = v;
        return 0;
}

/* Scan the head's current line into its record. Stored lines were verified at ingest: the audit only
 * needs their fields, so the bounded scanner of audit-record.c is enough (no tree, no canonical
 * re-serialisation). The line stays the cursor's until the head advances again. */
static int head_parse(Head *h, unsigned index, uint64_t seq, const char *line, size_t len)
{
        int r;

        if (len + 1 > h->scratch_size) {
                size_t n = len + 1 > 1024 ? len + 1 : 1024;
                char *p = realloc(h->scratch, n);
                if (!p)
                        return -ENOMEM;
                h->scratch = p;
                h->scratch_size = n;
        }
        r = audit_record_scan(line, len, h->scratch, h->scratch_size, &h->rec);
        if (r < 0)
                return r;
        if (h->rec.seq != seq)
                return -EBADMSG;
        h->rec.log_index = index;
        h->rec.log = h->log;
        return 0;
}

/* Advance one head: 1 has a record, 0 exhausted. */
static int head_advance(AuditStream *st, unsigned i)
{
        Head *h = &st->heads[i];
        const char *line;
        uint64_t seq;
        size_t len;
        int r;

        do
                r = store_cursor_next(h->cursor, &seq, &line, &len);
        while (r > 0 && !wanted(st, line, len));
        if (r <= 0)
                return r;
        r = head_parse(h, i, seq, line, len);
        return r < 0 ? r : 1;
}

static bool head_less(const AuditStream *st, unsigned a, unsigned b)
{
        const AuditRecord *x = &st->heads[a].rec, *y = &st->heads[b].rec;
        if (x->ts != y->ts)
                return x->ts < y->ts;
        if (a != b)
                return a < b; /* heads are in log id order */
        return x->seq < y->seq;
}

static void sift_down(AuditStream *st, unsigned i)
{
        for (;;) {
                unsigned l = 2 * i + 1, r = l + 1, m = i;
                if (l < st->heap_n && head_less(st, st->heap[l], st->heap[m]))
                        m = l;
                if (r < st->heap_n && head_less(st, st->heap[r], st->heap[m]))
                        m = r;
                if (m == i)
                        return;
                unsigned t = st->heap[i];
                st->heap[i] = st->heap[m];
                st->heap[m] = t;
                i = m;
        }
}

typedef struct OpenState {
        Store *store;
        AuditStream *st;
        int64_t since;
} OpenState;

/* The seq to start after: the last seq whose ts < since - one day (clock jumps are small). */
static int seek_seq(Store *s, const char *log, int64_t since, uint64_t *ret_after)
{
        uint64_t first, last, lo, hi;
        int r;

        /* Filed by month: the months before since - one day alone say where to start. */
        r = store_log_seq_filed_before(s, log, since - AUDIT_DAY, ret_after);
        if (r != -EOPNOTSUPP)
                return r;
        r = store_log_seq_range(s, log, &first, &last);
        if (r == -ENOENT) {
                *ret_after = 0;
                return 0;
        }
        if (r < 0)
                return r;
        since -= AUDIT_DAY;
        lo = first;
        hi = last + 1; /* first seq with ts >= since lies in [lo, hi] */
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                _cleanup_free_ char *line = NULL;
                size_t len;
                int64_t ts;

                r = store_record_line(s, log, mid, &line, &len);
                if (r == -ENOENT) { /* a hole (never made by the collector): scan from there */
                        hi = mid;
                        continue;
                }
                if (r < 0)
                        return r;
                r = line_ts(line, len, &ts);
                if (r < 0)
                        return r;
                if (ts < since)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_after = lo > 0 ? lo - 1 : 0;
        return 0;
}

static int add_log(const StoreLog *l, void *userdata)
{
        OpenState *o = userdata;
        AuditStream *st = o->st;
        uint64_t after = 0;
        Head *h;
        int r;

        if (st->n == st->allocated) {
                unsigned n = st->allocated ? st->allocated * 2 : 16;
                Head *nh = realloc(st->heads, n * sizeof(Head));
                if (!nh)
                        return -ENOMEM;
                st->heads = nh;
                st->allocated = n;
        }
        if (o->since > 0) {
                r = seek_seq(o->store, l->log, o->since, &after);
                if (r < 0)
                        return r;
        }
        h = &st->heads[st->n];
        *h = (Head){};
        memcpy(h->log, l->log, sizeof(h->log));
        r = store_cursor_open(o->store, l->log, after, &h->cursor);
        if (r < 0)
                return r;
        st->n++;
        return 0;
}

int audit_stream_open(Store *s, int64_t since_usec, AuditStream **ret)
{
        _cleanup_audit_stream_ AuditStream *st = calloc(1, sizeof(AuditStream));
        int r;

        if (!st)
                return -ENOMEM;
        OpenState o = {.store = s, .st = st, .since = since_usec};
        r = store_logs_foreach(s, add_log, &o);
        if (r < 0)
                return r;
        r = store_record_total(s, &st->total); /* for the progress line: counting rows would read them all */
        if (r < 0)
                return r;
        st->heap = calloc(st->n ? st->n : 1, sizeof(unsigned));
        if (!st->heap)
                return -ENOMEM;
        *ret = TAKE_PTR(st);
        return 0;
}

int audit_stream_next(AuditStream *st, AuditRecord *ret)
{
        int r;

        if (!st->started) {
                /* Prime every head, then heapify. Done lazily so that opening stays cheap. */
                st->started = true;
                for (unsigned i = 0; i < st->n; i++) {
                        r = head_advance(st, i);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                st->heap[st->heap_n++] = i;
                }
                for (unsigned i = st->heap_n / 2; i-- > 0;)
                        sift_down(st, i);
        } else if (st->heap_n > 0) {
                /* The record handed out last time is consumed now. */
                r = head_advance(st, st->heap[0]);
                if (r < 0)
                        return r;
                if (r == 0)
                        st->heap[0] = st->heap[--st->heap_n];
                if (st->heap_n > 0)
                        sift_down(st, 0);
        }
        if (st->heap_n == 0)
                return 0;
        *ret = st->heads[st->heap[0]].rec;
        return 1;
}

int audit_stream_open_from(Store *s, const AuditStreamStart *starts, unsigned n, AuditStream **ret)
{
        _cleanup_audit_stream_ AuditStream *st = calloc(1, sizeof(AuditStream));
        int r;

        if (!st)
                return -ENOMEM;
        st->heads = calloc(n ? n : 1, sizeof(Head));
        st->heap = calloc(n ? n : 1, sizeof(unsigned));
        if (!st->heads || !st->heap)
                return -ENOMEM;
        st->allocated = n;
        for (unsigned i = 0; i < n; i++) {
                memcpy(st->heads[i].log, starts[i].log, sizeof(st->heads[i].log));
                r = store_cursor_open(s, starts[i].log, starts[i].after, &st->heads[i].cursor);
                if (r < 0)
                        return r;
                st->n++;
        }
        *ret = TAKE_PTR(st);
        return 0;
}

unsigned audit_stream_n_logs(const AuditStream *st)
{
        return st->n;
}

uint64_t audit_stream_total(const AuditStream *st)
{
        return st->total;
}

AuditStream *audit_stream_free(AuditStream *st)
{
        if (!st)
                return NULL;
        for (unsigned i = 0; i < st->n; i++) {
                store_cursor_free(st->heads[i].cursor);
                free(st->heads[i].scratch);
        }
        free(st->heads);
        free(st->heap);
        free(st);
        return NULL;
}
