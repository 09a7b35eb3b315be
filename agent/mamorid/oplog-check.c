/* Start-time check of the operation log: torn tail, damaged lines, the last key epochs through the chain
 * verifier. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/macro.h"
#include "oplog-check.h"
#include "oplog-keys.h"

/* A log.open or key.rotate record, where it is and what it names. */
struct key_rec {
        size_t segment; /* index in the segment list */
        uint64_t line, seq;
        int64_t ts;
        bool open;
        char hash[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE];
        char term[RECORD_ID_MAX + 1];
};

/* First pass over one segment: every line parsed and linked to the line before it. */
struct seg_scan {
        size_t index;
        bool is_last;   /* a NUL line at its very end is a torn write, not damage */
        uint64_t first; /* seq its name gives */
        uint64_t lines, records;
        uint64_t good_end; /* offset after the last linked line's "\n" */
        uint64_t tail;     /* bytes after the last "\n" */
        uint64_t size;     /* of the file */
        bool nul;
        uint64_t nul_line;
        /* The last two linked records (p1 the last), for "the last good record" of a damage. */
        uint64_t p1_seq, p2_seq;
        char p1_hash[SHA256_HEX_MAX], p2_hash[SHA256_HEX_MAX];
        Record *last;
        uint64_t first_seq;
        char first_prev[SHA256_HEX_MAX];
        struct key_rec keys[2]; /* keys[1] the last key record of the segment, keys[0] the one before */
        unsigned n_keys;
        bool damaged;
        uint64_t bad_line;
        char reason[200];
        /* good_seq/good_hash of the damage when it is known inside this segment */
        bool good_known;
        uint64_t good_seq;
        char good_hash[SHA256_HEX_MAX];
};

static void seg_scan_done(struct seg_scan *s)
{
        s->last = record_free(s->last);
}

_printf_(3, 4) static int scan_fail(struct seg_scan *s, uint64_t line, const char *fmt, ...)
{
        va_list ap;

        s->damaged = true;
        s->bad_line = line;
        va_start(ap, fmt);
        vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

static int scan_line(const char *line, size_t len, uint64_t offset, void *userdata)
{
        struct seg_scan *s = userdata;
        _cleanup_record_ Record *r = NULL;
        char hash[SHA256_HEX_MAX];
        int k;

        s->lines++;
        if (s->nul)
                return scan_fail(s, s->nul_line, "NUL bytes in a record line that has records after it");
        if (memchr(line, '\0', len)) {
                /* Zeros left by a power cut are only ever the last line of the last segment. */
                s->nul = true;
                s->nul_line = s->lines;
                return 0;
        }
        k = record_parse_line(line, len, &r);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                s->good_known = s->records > 0;
                s->good_seq = s->p1_seq;
                memcpy(s->good_hash, s->p1_hash, SHA256_HEX_MAX);
                return scan_fail(s, s->lines, "not a well-formed record (%s)",
                                 k == -E2BIG    ? "too long or nested too deep"
                                 : k == -ERANGE ? "integer out of range"
                                                : "bytes changed or missing");
        }
        if (!s->last) {
                if (r->seq != s->first)
                        return scan_fail(s, s->lines,
                                         "the segment's name says it starts at seq %" PRIu64
                                         ", its first record is seq %" PRIu64,
                                         s->first, r->seq);
                s->first_seq = r->seq;
                memcpy(s->first_prev, r->prev, SHA256_HEX_MAX);
        } else if (record_check_link(s->last, s->p1_hash, r) < 0) {
                /* Either this line's seq/prev or the bytes of the line before it were changed. */
                s->good_known = s->records > 1;
                s->good_seq = s->p2_seq;
                memcpy(s->good_hash, s->p2_hash, SHA256_HEX_MAX);
                return scan_fail(s, s->lines,
                                 "seq %" PRIu64 " does not follow line %" PRIu64 " (seq %" PRIu64
                                 "): this line or the one before it was changed",
                                 r->seq, s->lines - 1, s->last->seq);
        }
        k = record_line_hash(line, len, hash);
        if (k < 0)
                return k;
        if (streq(r->ev, "log.open") || streq(r->ev, "key.rotate")) {
                struct key_rec kr = {.segment = s->index,
                                     .line = s->lines,
                                     .seq = r->seq,
                                     .ts = r->ts,
                                     .open = streq(r->ev, "log.open")};
                if (record_data_key(r, kr.key) < 0)
                        return scan_fail(s, s->lines, "seq %" PRIu64 " (%s): data.key missing or malformed",
                                         r->seq, r->ev);
                memcpy(kr.hash, hash, SHA256_HEX_MAX);
                snprintf(kr.term, sizeof(kr.term), "%s", r->term);
                s->keys[0] = s->keys[1];
                s->keys[1] = kr;
                s->n_keys++;
        }
        s->p2_seq = s->p1_seq;
        memcpy(s->p2_hash, s->p1_hash, SHA256_HEX_MAX);
        s->p1_seq = r->seq;
        memcpy(s->p1_hash, hash, SHA256_HEX_MAX);
        record_free(s->last);
        s->last = TAKE_PTR(r);
        s->records++;
        s->good_end = offset + len + 1;
        return 0;
}

static int open_segment(const char *dir, const char *name, int *ret)
{
        _cleanup_free_ char *path = NULL;
        int fd;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        *ret = fd;
        return 0;
}

static int scan_segment(const char *dir, char **names, size_t index, bool is_last, struct seg_scan *s)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int k;

        *s = (struct seg_scan){.index = index, .is_last = is_last};
        memcpy(s->p1_hash, RECORD_PREV_FIRST, SHA256_HEX_MAX);
        memcpy(s->p2_hash, RECORD_PREV_FIRST, SHA256_HEX_MAX);
        (void)log_segment_name_parse(names[index], &s->first);
        k = open_segment(dir, names[index], &fd);
        if (k < 0)
                return k;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        s->size = (uint64_t)st.st_size;
        k = log_segment_read_fd(fd, scan_line, s, &s->tail);
        if (k == -EBADMSG && s->damaged)
                return 0;
        if (k < 0)
                return k;
        if (s->nul && !is_last)
                scan_fail(s, s->nul_line, "NUL bytes in a record line");
        else if (s->tail > 0 && !is_last)
                scan_fail(s, s->lines + 1, "the segment ends inside a record (%" PRIu64 " bytes)", s->tail);
        return 0;
}

/* Second pass: the chain verifier over the window, from after the anchor to the last record. */
struct window {
        LogVerifier *v;
        uint64_t skip; /* lines of this segment before the window */
        uint64_t stop; /* lines of this segment that hold records */
        uint64_t line;
        uint64_t verified;
};

static int window_line(const char *line, size_t len, uint64_t offset, void *userdata)
{
        struct window *w = userdata;
        int k;

        w->line++;
        if (w->line <= w->skip)
                return 0;
        if (w->line > w->stop)
                return -ECANCELED;
        k = log_verifier_push(w->v, line, len, NULL);
        if (k < 0)
                return k;
        w->verified++;
        return 0;
}

/* The damage a scan found; when it sits at the head of its segment, the good part ends in the
 * segment before, which is read for its last record. */
static int damage_from_scan(const char *dir, char **names, const struct seg_scan *s, struct oplog_damage *d)
{
        struct seg_scan before = {0};
        int k = 0;

        if (!s->good_known && s->index > 0) {
                k = scan_segment(dir, names, s->index - 1, false, &before);
                if (k >= 0 && before.damaged)
                        before.last = record_free(before.last); /* no clean end there either */
        }
        *d = (struct oplog_damage){.line = s->bad_line};
        snprintf(d->file, sizeof(d->file), "%s", names[s->index]);
        snprintf(d->reason, sizeof(d->reason), "%s", s->reason);
        memcpy(d->good_hash, RECORD_PREV_FIRST, SHA256_HEX_MAX);
        if (s->last) {
                memcpy(d->log_id, s->last->log, sizeof(d->log_id));
                snprintf(d->term, sizeof(d->term), "%s", s->last->term);
        } else if (before.last) {
                memcpy(d->log_id, before.last->log, sizeof(d->log_id));
                snprintf(d->term, sizeof(d->term), "%s", before.last->term);
        }
        if (s->good_known) {
                d->good_seq = s->good_seq;
                memcpy(d->good_hash, s->good_hash, SHA256_HEX_MAX);
        } else if (before.last) {
                d->good_seq = before.p1_seq;
                memcpy(d->good_hash, before.p1_hash, SHA256_HEX_MAX);
        }
        seg_scan_done(&before);
        return k == -ENOMEM ? k : -EBADMSG;
}

/* Scanned segments from the anchor's to the last, in list order (scans[0] is the earliest). */
struct scans {
        struct seg_scan *s;
        size_t n;
};

static void scans_free(struct scans *sc)
{
        for (size_t i = 0; i < sc->n; i++)
                seg_scan_done(&sc->s[i]);
        free(sc->s);
}

static int scans_prepend(struct scans *sc, struct seg_scan **ret)
{
        struct seg_scan *ns = realloc(sc->s, (sc->n + 1) * sizeof(*ns));
        if (!ns)
                return -ENOMEM;
        memmove(ns + 1, ns, sc->n * sizeof(*ns));
        sc->s = ns;
        sc->n++;
        *ret = &ns[0];
        return 0;
}

int oplog_check(const char *dir, const char *keys_dir, EVP_PKEY *identity, struct oplog_tail *ret,
                struct oplog_damage *reterr_damage)
{
        _cleanup_log_verifier_ LogVerifier *v = NULL;
        struct scans sc = {0};
        struct oplog_tail t = {0};
        struct key_rec anchor = {0}, *k1 = NULL, *k0 = NULL;
        enum { FROM_START, FROM_KEY, FROM_FIRST } from;
        struct seg_scan *last, *s;
        char **names = NULL;
        size_t n = 0, i, lo;
        unsigned empty = 0;
        int k;

        if (!dir || !keys_dir || !identity || !ret || !reterr_damage)
                return -EINVAL;
        k = log_segments_list(dir, &names, &n);
        if (k < 0)
                return k;

        /* The last segment with a record; those after it hold at most a torn write. */
        for (i = n; i > 0; i--) {
                k = scans_prepend(&sc, &s);
                if (k < 0)
                        goto finish;
                k = scan_segment(dir, names, i - 1, true, s);
                if (k < 0)
                        goto finish;
                if (s->damaged) {
                        k = damage_from_scan(dir, names, s, reterr_damage);
                        goto finish;
                }
                if (s->records > 0)
                        break;
                seg_scan_done(s);
                memmove(sc.s, sc.s + 1, (sc.n - 1) * sizeof(*sc.s));
                sc.n--;
                empty++;
        }
        if (i == 0) {
                t.empty_segments = empty;
                *ret = t;
                k = 1;
                goto finish;
        }

        /* Back until the last two key records are known (or log.open, or the first segment). */
        lo = i - 1;
        for (;;) {
                unsigned keys = 0;
                bool open = false;
                for (size_t j = 0; j < sc.n; j++) {
                        keys += sc.s[j].n_keys;
                        for (unsigned q = 0; q < 2 && q < sc.s[j].n_keys; q++)
                                open = open || sc.s[j].keys[1 - q].open;
                }
                if (keys >= 2 || open || lo == 0)
                        break;
                k = scans_prepend(&sc, &s);
                if (k < 0)
                        goto finish;
                k = scan_segment(dir, names, --lo, false, s);
                if (k < 0)
                        goto finish;
                if (s->damaged) {
                        k = damage_from_scan(dir, names, s, reterr_damage);
                        goto finish;
                }
        }
        last = &sc.s[sc.n - 1];

        /* The last two key records, newest first across the scanned segments. */
        for (size_t j = sc.n; j > 0 && !k0; j--) {
                struct seg_scan *x = &sc.s[j - 1];
                for (unsigned q = 0; q < 2 && q < x->n_keys && !k0; q++) {
                        if (!k1)
                                k1 = &x->keys[1 - q];
                        else
                                k0 = &x->keys[1 - q];
                }
        }

        /* The window: the key record before the last one anchors it, so the last key.rotate's own
         * signature is checked; log.open is checked against the identity key from seq 1. */
        if (k1 && k1->open)
                from = FROM_START;
        else if (k0 && k0->open)
                from = FROM_START;
        else if (k0) {
                from = FROM_KEY;
                anchor = *k0;
        } else if (k1) {
                from = FROM_KEY; /* the one before it was pruned */
                anchor = *k1;
        } else
                from = FROM_FIRST; /* every key record was pruned */

        if (from == FROM_START) {
                k = log_verifier_new(identity, &v);
                anchor.segment = lo; /* the segment named seq 1: log.open is its first line */
                anchor.line = 0;
                if (k >= 0 && sc.s[0].first != 1) {
                        /* log.open was seen, so its segment (named seq 1, checked) was scanned. */
                        k = -EIO;
                        goto finish;
                }
        } else {
                LogVerifierState st = {.epochs = 1};
                struct seg_scan *a = &sc.s[0];

                k = ed25519_public_to_raw(identity, st.identity);
                if (k < 0)
                        goto finish;
                memcpy(st.log, last->last->log, sizeof(st.log));
                if (from == FROM_KEY) {
                        st.last_seq = anchor.seq;
                        memcpy(st.last_hash, anchor.hash, SHA256_HEX_MAX);
                        memcpy(st.key, anchor.key, ED25519_KEY_SIZE);
                        snprintf(st.term, sizeof(st.term), "%s", anchor.term);
                } else {
                        k = oplog_epoch_key_find_single(keys_dir, st.key);
                        if (k < 0)
                                goto finish;
                        anchor.segment = a->index;
                        anchor.line = 0;
                        st.last_seq = a->first_seq - 1;
                        memcpy(st.last_hash, a->first_prev, SHA256_HEX_MAX);
                        snprintf(st.term, sizeof(st.term), "%s", last->last->term);
                }
                k = log_verifier_restore(&st, &v);
        }
        if (k < 0)
                goto finish;

        for (size_t j = 0; j < sc.n; j++) {
                _cleanup_close_ int fd = -EBADF;
                struct window w = {.v = v, .stop = sc.s[j].records};

                if (sc.s[j].index < anchor.segment)
                        continue;
                if (sc.s[j].index == anchor.segment)
                        w.skip = anchor.line;
                k = open_segment(dir, names[sc.s[j].index], &fd);
                if (k < 0)
                        goto finish;
                k = log_segment_read_fd(fd, window_line, &w, NULL);
                t.verified += w.verified;
                if (k == -EBADMSG) {
                        struct oplog_damage *d = reterr_damage;
                        *d = (struct oplog_damage){.line = w.line, .good_seq = log_verifier_last_seq(v)};
                        snprintf(d->file, sizeof(d->file), "%s", names[sc.s[j].index]);
                        snprintf(d->reason, sizeof(d->reason), "%s", log_verifier_reason(v));
                        memcpy(d->log_id, last->last->log, sizeof(d->log_id));
                        snprintf(d->term, sizeof(d->term), "%s", last->last->term);
                        memcpy(d->good_hash, log_verifier_last_hash(v), SHA256_HEX_MAX);
                        goto finish;
                }
                if (k < 0 && k != -ECANCELED)
                        goto finish;
        }

        snprintf(t.segment, sizeof(t.segment), "%s", names[last->index]);
        t.segment_first = last->first;
        t.good_size = last->good_end;
        t.torn_bytes = last->size - last->good_end;
        t.empty_segments = empty;
        memcpy(t.log_id, last->last->log, sizeof(t.log_id));
        snprintf(t.term, sizeof(t.term), "%s", last->last->term);
        t.last_seq = last->last->seq;
        memcpy(t.last_hash, last->p1_hash, SHA256_HEX_MAX);
        t.clean = streq(last->last->ev, "agent.stop");
        k = log_verifier_current_key(v, t.key);
        if (k < 0)
                goto finish;
        t.key_from_chain = from != FROM_FIRST;
        if (k1) {
                t.key_ts = k1->ts;
                t.since_key = t.last_seq - k1->seq;
        }
        for (size_t j = 0; j < sc.n; j++)
                t.scanned += sc.s[j].records;
        *ret = t;
        k = 0;
finish:
        scans_free(&sc);
        log_segments_free(names, n);
        return k;
}
