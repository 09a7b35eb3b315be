/* Operation-log verification (DESIGN.md §6): segment files, line streaming, signature and key-rotation
 * chain. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mamori/oplog-verify.h"

#define READ_CHUNK (256u * 1024u)

void log_segment_name(uint64_t first_seq, char buf[LOG_SEGMENT_NAME_MAX])
{
        snprintf(buf, LOG_SEGMENT_NAME_MAX, LOG_SEGMENT_PREFIX "%020" PRIu64 LOG_SEGMENT_SUFFIX, first_seq);
}

bool log_segment_name_parse(const char *name, uint64_t *ret_first_seq)
{
        const size_t pre = strlen(LOG_SEGMENT_PREFIX), suf = strlen(LOG_SEGMENT_SUFFIX);
        uint64_t seq = 0;

        if (!name || strlen(name) != pre + 20 + suf || !strneq(name, LOG_SEGMENT_PREFIX, pre) ||
            !streq(name + pre + 20, LOG_SEGMENT_SUFFIX))
                return false;
        for (size_t i = pre; i < pre + 20; i++) {
                unsigned d;
                if (name[i] < '0' || name[i] > '9')
                        return false;
                d = (unsigned)(name[i] - '0');
                if (seq > (UINT64_MAX - d) / 10)
                        return false;
                seq = seq * 10 + d;
        }
        if (seq < 1 || seq > (uint64_t)RECORD_INT_MAX)
                return false;
        if (ret_first_seq)
                *ret_first_seq = seq;
        return true;
}

void log_segments_free(char **names, size_t n)
{
        if (!names)
                return;
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static int cmp_names(const void *a, const void *b)
{
        /* Fixed-width digits: byte order is seq order. */
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int log_segments_list(const char *dir, char ***ret, size_t *ret_n)
{
        DIR *d;
        char **names = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        int k = 0;

        if (!dir || !ret || !ret_n)
                return -EINVAL;
        d = opendir(dir);
        if (!d)
                return negative_errno();
        for (;;) {
                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                k = negative_errno();
                        break;
                }
                if (!log_segment_name_parse(de->d_name, NULL))
                        continue;
                if (n >= LOG_SEGMENTS_MAX) {
                        k = -E2BIG;
                        break;
                }
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        char **nn = realloc(names, na * sizeof(char *));
                        if (!nn) {
                                k = -ENOMEM;
                                break;
                        }
                        names = nn;
                        allocated = na;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        k = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);
        if (k < 0) {
                log_segments_free(names, n);
                return k;
        }
        if (n > 0)
                qsort(names, n, sizeof(char *), cmp_names);
        *ret = names;
        *ret_n = n;
        return 0;
}

int log_segment_read_fd(int fd, log_line_fn cb, void *userdata, uint64_t *ret_tail)
{
        const size_t cap = READ_CHUNK + RECORD_LINE_MAX + 2;
        _cleanup_free_ char *buf = NULL;
        size_t have = 0;       /* bytes in buf */
        uint64_t base = 0;     /* file offset of buf[0] */
        bool skipping = false; /* inside an over-long line already reported */
        int k;

        if (fd < 0 || !cb)
                return -EINVAL;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t r = read(fd, buf + have, cap - have);
                size_t start = 0;

                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        break;
                have += (size_t)r;

                for (;;) {
                        char *nl = memchr(buf + start, '\n', have - start);
                        size_t len;
                        if (!nl)
                                break;
                        len = (size_t)(nl - (buf + start));
                        if (skipping)
                                skipping = false;
                        else {
                                k = cb(buf + start, len, base + start, userdata);
                                if (k < 0)
                                        return k;
                        }
                        start += len + 1;
                }
                if (!skipping && have - start > RECORD_LINE_MAX + 1) {
                        /* Over-long line: report its head once, then skip to its "\n". */
                        k = cb(buf + start, RECORD_LINE_MAX + 1, base + start, userdata);
                        if (k < 0)
                                return k;
                        skipping = true;
                }
                if (skipping) {
                        base += have;
                        have = 0;
                        continue;
                }
                memmove(buf, buf + start, have - start);
                base += start;
                have -= start;
        }
        if (ret_tail)
                *ret_tail = have;
        return 0;
}

struct LogVerifier {
        EVP_PKEY *identity; /* NULL when restored past seq 1: never needed again */
        EVP_PKEY *current;  /* epoch key; NULL before log.open */
        LogVerifierState state;
        Record *parsed; /* the record of the last push(), lent through ret_record */
        LogVerifyError error;
        uint64_t bad_seq;
        char reason[200];
};

int log_verifier_new(EVP_PKEY *identity, LogVerifier **ret)
{
        LogVerifier *v;
        int k;

        if (!identity || !ret || ed25519_check(identity) < 0)
                return -EINVAL;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        if (EVP_PKEY_up_ref(identity) != 1) {
                free(v);
                return -EIO;
        }
        v->identity = identity;
        k = ed25519_public_to_raw(identity, v->state.identity);
        if (k < 0) {
                log_verifier_free(v);
                return k;
        }
        memcpy(v->state.last_hash, RECORD_PREV_FIRST, sizeof(v->state.last_hash));
        *ret = v;
        return 0;
}

static bool state_valid(const LogVerifierState *s)
{
        if (!memchr(s->log, '\0', sizeof(s->log)) || !memchr(s->term, '\0', sizeof(s->term)) ||
            !memchr(s->last_hash, '\0', sizeof(s->last_hash)))
                return false;
        if (s->last_seq == 0)
                return s->log[0] == '\0' && s->term[0] == '\0' && streq(s->last_hash, RECORD_PREV_FIRST) &&
                       s->epochs == 0;
        if (s->anchor.seq > 0 && (s->anchor.seq > (uint64_t)RECORD_INT_MAX ||
                                  !memchr(s->anchor.hash, '\0', sizeof(s->anchor.hash)) ||
                                  !memchr(s->anchor.log, '\0', sizeof(s->anchor.log)) ||
                                  !hex_lower_valid(s->anchor.hash, SHA256_HEX_MAX - 1)))
                return false;
        /* Before its anchor, a pruned log may not have seen a key yet. */
        return s->last_seq <= (uint64_t)RECORD_INT_MAX && hex_lower_valid(s->log, ID128_STRING_MAX - 1) &&
               hex_lower_valid(s->last_hash, SHA256_HEX_MAX - 1) &&
               (s->epochs >= 1 || s->anchor.seq > s->last_seq) && s->epochs <= s->last_seq;
}

int log_verifier_restore(const LogVerifierState *state, LogVerifier **ret)
{
        _cleanup_pkey_ EVP_PKEY *identity = NULL, *current = NULL;
        LogVerifier *v;
        int k;

        if (!state || !ret || !state_valid(state))
                return -EINVAL;
        /* The identity key only signs seq 1: past it (the collector's every batch but the first) it is
         * carried in the state, not rebuilt. */
        if (state->last_seq == 0) {
                k = ed25519_public_from_raw(state->identity, &identity);
                if (k < 0)
                        return k == -ENOMEM ? k : -EINVAL;
        }
        if (state->epochs > 0) {
                k = ed25519_public_from_raw(state->key, &current);
                if (k < 0)
                        return k == -ENOMEM ? k : -EINVAL;
        }
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->identity = TAKE_PTR(identity);
        v->current = TAKE_PTR(current);
        v->state = *state;
        *ret = v;
        return 0;
}

int log_verifier_save(const LogVerifier *v, LogVerifierState *ret)
{
        if (!v || !ret)
                return -EINVAL;
        *ret = v->state;
        return 0;
}

LogVerifier *log_verifier_free(LogVerifier *v)
{
        if (!v)
                return NULL;
        EVP_PKEY_free(v->identity);
        EVP_PKEY_free(v->current);
        record_free(v->parsed);
        free(v);
        return NULL;
}

_printf_(4, 5) static int fail(LogVerifier *v, LogVerifyError error, uint64_t seq, const char *fmt, ...);

/* The record of the anchor's seq is reached (or was the last one pruned): the chain must end at the
 * receipt's hash, and its key takes over. */
static int enter_anchor(LogVerifier *v)
{
        LogVerifierState *s = &v->state;
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        int k;

        if (!streq(s->last_hash, s->anchor.hash))
                return fail(v, LOG_VERIFY_ANCHOR, s->last_seq + 1,
                            "the hash chain does not end at the receipt's line hash of seq %" PRIu64,
                            s->anchor.seq);
        k = ed25519_public_from_raw(s->anchor.key, &key);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return fail(v, LOG_VERIFY_KEY, s->last_seq + 1, "the receipt's key is not an Ed25519 key");
        EVP_PKEY_free(v->current);
        v->current = TAKE_PTR(key);
        memcpy(s->key, s->anchor.key, sizeof(s->key));
        if (s->epochs == 0)
                s->epochs = 1;
        return 0;
}

int log_verifier_new_anchored(const LogAnchor *anchor, const Record *first, LogVerifier **ret)
{
        _cleanup_log_verifier_ LogVerifier *v = NULL;
        int k;

        if (!anchor || !first || !ret || first->seq < 2 || anchor->seq < 1 ||
            anchor->seq > (uint64_t)RECORD_INT_MAX || !memchr(anchor->hash, '\0', sizeof(anchor->hash)) ||
            !memchr(anchor->log, '\0', sizeof(anchor->log)) ||
            !hex_lower_valid(anchor->hash, SHA256_HEX_MAX - 1))
                return -EINVAL;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->state.anchor = *anchor;
        /* What the missing records would have left: trusted only because the chain must reach the
         * receipt's hash. */
        v->state.last_seq = first->seq - 1;
        memcpy(v->state.last_hash, first->prev, sizeof(v->state.last_hash));
        memcpy(v->state.log, first->log, sizeof(v->state.log));
        if (!streq(anchor->log, first->log))
                (void)fail(v, LOG_VERIFY_ANCHOR, first->seq,
                           "the receipt is for log %s, these records are of log %s", anchor->log,
                           first->log);
        else if (anchor->seq < v->state.last_seq)
                (void)fail(v, LOG_VERIFY_ANCHOR, anchor->seq + 1,
                           "records %" PRIu64 "..%" PRIu64
                           " are missing and the receipt covers only seq %" PRIu64,
                           anchor->seq + 1, v->state.last_seq, anchor->seq);
        else if (anchor->seq == v->state.last_seq) {
                k = enter_anchor(v);
                if (k < 0 && k != -EBADMSG)
                        return k;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

_printf_(4, 5) static int fail(LogVerifier *v, LogVerifyError error, uint64_t seq, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
        va_end(ap);
        v->error = error;
        v->bad_seq = seq;
        return -EBADMSG;
}

static const char *parse_error(int k)
{
        switch (k) {
        case -E2BIG:
                return "line too long or nested too deep";
        case -ERANGE:
                return "integer out of range";
        default:
                return "not a well-formed canonical record";
        }
}

/*
 * How verify_record() treats a record's signature. SIG_NOW checks it there; SIG_DEFER leaves the check
 * to the caller and hands out the key that must verify it (a reference in *ret_signer), so the chain
 * rules run in order and the costly signature checks later, on several threads; SIG_GOOD and SIG_BAD
 * replay a record whose signature was checked that way.
 */
typedef enum SigCheck {
        SIG_NOW,
        SIG_DEFER,
        SIG_GOOD,
        SIG_BAD,
} SigCheck;

static int check_signature(const LogBatchLine *l, EVP_PKEY *key, SigCheck how, EVP_PKEY **ret_signer)
{
        switch (how) {
        case SIG_NOW:
                return record_verify_signed(l->record, l->signed_bytes, l->signed_len, key);
        case SIG_DEFER:
                if (!key)
                        return -EINVAL; /* as record_verify() without a key: refused */
                if (EVP_PKEY_up_ref(key) != 1)
                        return -EIO;
                EVP_PKEY_free(*ret_signer);
                *ret_signer = key;
                return 0;
        case SIG_GOOD:
                return 0;
        case SIG_BAD:
                return -EBADMSG;
        }
        return -EINVAL;
}

/* The chain rules for the parsed record of one line; the state moves on only on success. The
 * signature is checked as how says (ret_signer: SIG_DEFER only). */
static int verify_record(LogVerifier *v, const LogBatchLine *l, SigCheck how, EVP_PKEY **ret_signer)
{
        const Record *r = l->record;
        LogVerifierState *s = &v->state;
        _cleanup_pkey_ EVP_PKEY *next_key = NULL;
        uint8_t raw[ED25519_KEY_SIZE];
        char hash[SHA256_HEX_MAX];
        uint64_t expect = s->last_seq + 1;
        bool open = streq(r->ev, "log.open");
        int k;

        if (s->last_seq > 0 && !streq(r->log, s->log))
                return fail(v, LOG_VERIFY_LOG_ID, r->seq, "seq %" PRIu64 ": log id %s differs from %s",
                            r->seq, r->log, s->log);
        if (r->seq != expect)
                return fail(v, LOG_VERIFY_SEQ, r->seq,
                            "seq %" PRIu64 " found where seq %" PRIu64 " was expected%s", r->seq, expect,
                            r->seq > expect ? " (records missing)" : " (records repeated or reordered)");
        if (!streq(r->prev, s->last_hash))
                return fail(v, LOG_VERIFY_PREV, r->seq,
                            "seq %" PRIu64 ": prev does not match the hash of seq %" PRIu64, r->seq,
                            expect - 1);

        if (r->seq == 1) {
                if (!open)
                        return fail(v, LOG_VERIFY_OPEN, r->seq, "seq 1 is \"%s\", not log.open", r->ev);
                k = check_signature(l, v->identity, how, ret_signer);
                if (k == -ENOMEM || k == -EIO)
                        return k;
                if (k < 0)
                        return fail(v, LOG_VERIFY_SIGNATURE, r->seq,
                                    "seq 1 (log.open): signature is not by the identity key");
        } else if (r->seq <= s->anchor.seq) {
                /* Pruned log, up to the receipt: the hash chain that must end at its hash holds these. */
                if (open)
                        return fail(v, LOG_VERIFY_OPEN, r->seq, "seq %" PRIu64 ": log.open after seq 1",
                                    r->seq);
        } else {
                if (open)
                        return fail(v, LOG_VERIFY_OPEN, r->seq, "seq %" PRIu64 ": log.open after seq 1",
                                    r->seq);
                k = check_signature(l, v->current, how, ret_signer);
                if (k == -ENOMEM || k == -EIO)
                        return k;
                if (k < 0)
                        return fail(v, LOG_VERIFY_SIGNATURE, r->seq,
                                    "seq %" PRIu64
                                    " (%s): signature is not by the current log key (epoch %u)",
                                    r->seq, r->ev, s->epochs - 1);
        }

        if (open || streq(r->ev, "key.rotate")) {
                k = record_data_key(r, raw);
                if (k < 0)
                        return fail(v, LOG_VERIFY_KEY, r->seq,
                                    "seq %" PRIu64 " (%s): data.key missing or malformed", r->seq, r->ev);
                k = ed25519_public_from_raw(raw, &next_key);
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        return fail(v, LOG_VERIFY_KEY, r->seq,
                                    "seq %" PRIu64 " (%s): data.key is not an Ed25519 key", r->seq, r->ev);
        }

        k = record_line_hash(l->line, l->len, hash);
        if (k < 0)
                return k;
        if (s->anchor.seq > 0 && r->seq == s->anchor.seq && !streq(hash, s->anchor.hash))
                return fail(v, LOG_VERIFY_ANCHOR, r->seq,
                            "seq %" PRIu64 ": its line hash is not the one the receipt acknowledges",
                            r->seq);

        /* Everything checked: move on. */
        if (next_key) {
                EVP_PKEY_free(v->current);
                v->current = TAKE_PTR(next_key);
                memcpy(s->key, raw, sizeof(raw));
                s->epochs++;
        }
        if (r->seq == 1) {
                memcpy(s->log, r->log, sizeof(s->log));
                snprintf(s->term, sizeof(s->term), "%s", r->term);
        }
        s->last_seq = r->seq;
        memcpy(s->last_hash, hash, sizeof(hash));
        if (s->anchor.seq > 0 && r->seq == s->anchor.seq)
                return enter_anchor(v);
        return 0;
}

int log_verifier_push_record(LogVerifier *v, const Record *r, const void *line, size_t len)
{
        if (!v || !r || (!line && len > 0))
                return -EINVAL;
        if (v->error != LOG_VERIFY_OK)
                return -EBADMSG;
        return verify_record(v, &(LogBatchLine){.record = r, .line = line, .len = len}, SIG_NOW, NULL);
}

/* The signature checks of one log_verifier_push_batch(), run by par's threads. */
typedef struct SigJobs {
        const LogBatchLine *lines;
        EVP_PKEY **signers; /* NULL: nothing to check (a pruned log before its anchor) */
        int *results;
        atomic_size_t first_bad; /* lowest index known bad: later ones need no check */
} SigJobs;

static void check_one(size_t i, void *userdata)
{
        SigJobs *j = userdata;
        size_t bad;
        int k;

        if (!j->signers[i] || i > atomic_load(&j->first_bad))
                return;
        k = record_verify_signed(j->lines[i].record, j->lines[i].signed_bytes, j->lines[i].signed_len,
                                 j->signers[i]);
        j->results[i] = k;
        if (k >= 0)
                return;
        bad = atomic_load(&j->first_bad);
        while (i < bad && !atomic_compare_exchange_weak(&j->first_bad, &bad, i))
                ;
}

static void run_serial(size_t n, log_job_fn job, void *job_userdata, void *userdata)
{
        for (size_t i = 0; i < n; i++)
                job(i, job_userdata);
}

/* Back to the state before the batch, with no error. */
static void rewind_to(LogVerifier *v, const LogVerifierState *start, EVP_PKEY *start_key)
{
        EVP_PKEY_free(v->current);
        v->current = start_key;
        v->state = *start;
        v->error = LOG_VERIFY_OK;
        v->bad_seq = 0;
        v->reason[0] = '\0';
}

int log_verifier_push_batch(LogVerifier *v, LogBatchLine *lines, size_t n, const LogParallel *par)
{
        _cleanup_free_ EVP_PKEY **signers = NULL;
        _cleanup_free_ int *results = NULL;
        _cleanup_pkey_ EVP_PKEY *start_key = NULL;
        LogVerifierState start;
        SigJobs jobs;
        size_t reached = 0, checked;
        int chain = 0, k;

        if (!v || (!lines && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!lines[i].record || (!lines[i].line && lines[i].len > 0))
                        return -EINVAL;
        if (v->error != LOG_VERIFY_OK)
                return -EBADMSG;
        if (n == 0)
                return 0;
        signers = calloc(n, sizeof(EVP_PKEY *));
        results = calloc(n, sizeof(int));
        if (!signers || !results)
                return -ENOMEM;
        if (v->current && EVP_PKEY_up_ref(v->current) != 1)
                return -EIO;
        start_key = v->current;
        start = v->state;

        /* 1. The chain rules, in order: seq, prev, log id, log.open, which key signs which record. */
        for (; reached < n; reached++) {
                chain = verify_record(v, &lines[reached], SIG_DEFER, &signers[reached]);
                if (chain < 0)
                        break;
                memcpy(lines[reached].hash, v->state.last_hash, SHA256_HEX_MAX);
        }
        if (chain < 0 && chain != -EBADMSG) {
                k = chain;
                goto undo;
        }
        /* The refused record itself counts when its signature came before the rule it broke. */
        checked = reached < n ? reached + 1 : n;

        /* 2. The signatures, on par's threads. */
        jobs = (SigJobs){.lines = lines, .signers = signers, .results = results};
        atomic_init(&jobs.first_bad, SIZE_MAX);
        if (par && par->run)
                par->run(checked, check_one, &jobs, par->userdata);
        else
                run_serial(checked, check_one, &jobs, NULL);

        /* 3. The first refusal in order wins, as if the records had been pushed one by one. */
        for (size_t i = 0; i < checked; i++) {
                if (!signers[i] || results[i] >= 0)
                        continue;
                if (results[i] == -ENOMEM || results[i] == -EIO) {
                        k = results[i];
                        goto undo;
                }
                rewind_to(v, &start, TAKE_PTR(start_key));
                for (size_t j = 0; j < i; j++) {
                        k = verify_record(v, &lines[j], SIG_GOOD, NULL);
                        if (k < 0)
                                goto free_signers;
                }
                k = verify_record(v, &lines[i], SIG_BAD, NULL);
                goto free_signers;
        }
        k = chain;
        goto free_signers;
undo:
        rewind_to(v, &start, TAKE_PTR(start_key));
free_signers:
        for (size_t i = 0; i < n; i++)
                EVP_PKEY_free(signers[i]);
        return k;
}

int log_verifier_push(LogVerifier *v, const void *line, size_t len, const Record **ret_record)
{
        _cleanup_record_ Record *r = NULL;
        _cleanup_free_ char *signed_bytes = NULL;
        size_t signed_len = 0;
        int k;

        if (!v || (!line && len > 0))
                return -EINVAL;
        if (v->error != LOG_VERIFY_OK)
                return -EBADMSG;

        k = record_parse_line_signed(line, len, &r, &signed_bytes, &signed_len);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return fail(v, LOG_VERIFY_MALFORMED, v->state.last_seq + 1, "seq %" PRIu64 " expected: %s",
                            v->state.last_seq + 1, parse_error(k));
        k = verify_record(v,
                          &(LogBatchLine){.record = r,
                                          .line = line,
                                          .len = len,
                                          .signed_bytes = signed_bytes,
                                          .signed_len = signed_len},
                          SIG_NOW, NULL);
        if (k < 0)
                return k;
        record_free(v->parsed);
        v->parsed = TAKE_PTR(r);
        if (ret_record)
                *ret_record = v->parsed;
        return 0;
}

const char *log_verifier_reason(const LogVerifier *v)
{
        return v && v->error != LOG_VERIFY_OK ? v->reason : "";
}

LogVerifyError log_verifier_error(const LogVerifier *v)
{
        return v ? v->error : LOG_VERIFY_OK;
}

uint64_t log_verifier_bad_seq(const LogVerifier *v)
{
        return v && v->error != LOG_VERIFY_OK ? v->bad_seq : 0;
}

uint64_t log_verifier_last_seq(const LogVerifier *v)
{
        return v ? v->state.last_seq : 0;
}

const char *log_verifier_last_hash(const LogVerifier *v)
{
        return v ? v->state.last_hash : RECORD_PREV_FIRST;
}

const char *log_verifier_log_id(const LogVerifier *v)
{
        return v ? v->state.log : "";
}

unsigned log_verifier_epochs(const LogVerifier *v)
{
        return v ? v->state.epochs : 0;
}

int log_verifier_current_key(const LogVerifier *v, uint8_t ret[ED25519_KEY_SIZE])
{
        if (!v || !ret)
                return -EINVAL;
        if (v->state.epochs == 0)
                return -ENOENT;
        memcpy(ret, v->state.key, ED25519_KEY_SIZE);
        return 0;
}

struct dir_ctx {
        LogVerifier *v;
        log_record_fn each;
        void *userdata;
        struct log_verify_result *res;
        uint64_t line_no;
        uint64_t first_seq; /* from the segment name */
        bool first_in_segment;
};

static int on_line(const char *line, size_t len, uint64_t offset, void *userdata)
{
        struct dir_ctx *c = userdata;
        const Record *r = NULL;
        int k;

        c->line_no++;
        k = log_verifier_push(c->v, line, len, &r);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                c->res->bad_line = c->line_no;
                c->res->bad_seq = log_verifier_last_seq(c->v) + 1;
                snprintf(c->res->reason, sizeof(c->res->reason), "%s", log_verifier_reason(c->v));
                return -EBADMSG;
        }
        if (c->first_in_segment && r->seq != c->first_seq) {
                c->res->bad_line = c->line_no;
                c->res->bad_seq = r->seq;
                snprintf(c->res->reason, sizeof(c->res->reason),
                         "segment name says it starts at seq %" PRIu64 ", its first record is seq %" PRIu64,
                         c->first_seq, r->seq);
                return -EBADMSG;
        }
        c->first_in_segment = false;
        c->res->records++;
        if (c->each) {
                k = c->each(r, line, len, c->userdata);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* The verifier for a log whose first segment starts at first_seq: from seq 1 with the identity key,
 * or from a pruned start through the anchor. 0 with *ret, or > 0 when the verdict is already known
 * (res filled), or -errno. */
static int first_verifier(const char *dir, const char *first_name, uint64_t first_seq, EVP_PKEY *identity,
                          const LogAnchor *anchor, LogVerifier **ret, struct log_verify_result *res)
{
        _cleanup_free_ char *line = NULL;
        _cleanup_record_ Record *r = NULL;
        size_t len;
        int k;

        res->first_seq = first_seq;
        if (first_seq == 1)
                return log_verifier_new(identity, ret);
        snprintf(res->bad_file, sizeof(res->bad_file), "%s", first_name);
        if (!anchor || anchor->seq == 0) {
                res->bad_seq = 1;
                snprintf(res->reason, sizeof(res->reason),
                         "records 1..%" PRIu64 " are not here (pruned after upload?): a pruned log verifies "
                         "only with the collector's receipt",
                         first_seq - 1);
                return 1;
        }
        k = log_read_line(dir, first_seq, &line, &len);
        if (k == -EBADMSG || k == -ENOENT) {
                res->bad_seq = first_seq;
                res->bad_line = 1;
                snprintf(res->reason, sizeof(res->reason), "seq %" PRIu64 " expected: not a record",
                         first_seq);
                return 1;
        }
        if (k < 0)
                return k;
        k = record_parse_line(line, len, &r);
        if (k < 0)
                return k == -ENOMEM ? k : -EBADMSG;
        res->anchor_seq = anchor->seq;
        return log_verifier_new_anchored(anchor, r, ret);
}

int log_verify_directory(const char *dir, EVP_PKEY *identity, log_record_fn each, void *userdata,
                         struct log_verify_result *ret)
{
        return log_verify_directory_anchored(dir, identity, NULL, each, userdata, ret);
}

int log_verify_directory_anchored(const char *dir, EVP_PKEY *identity, const LogAnchor *anchor,
                                  log_record_fn each, void *userdata, struct log_verify_result *ret)
{
        _cleanup_log_verifier_ LogVerifier *v = NULL;
        struct log_verify_result res = {0};
        char **names = NULL;
        size_t n = 0;
        int k;

        if (!dir || !identity || !ret)
                return -EINVAL;
        k = log_segments_list(dir, &names, &n);
        if (k < 0)
                return k;
        if (n == 0)
                k = log_verifier_new(identity, &v);
        else {
                uint64_t first_seq = 1;
                (void)log_segment_name_parse(names[0], &first_seq);
                k = first_verifier(dir, names[0], first_seq, identity, anchor, &v, &res);
                if (k > 0) {
                        k = 0;
                        goto finish;
                }
        }
        if (k < 0) {
                log_segments_free(names, n);
                return k;
        }
        if (log_verifier_error(v) != LOG_VERIFY_OK) {
                /* An anchor the present records cannot reach. */
                snprintf(res.bad_file, sizeof(res.bad_file), "%s", names[0]);
                res.bad_seq = log_verifier_bad_seq(v);
                snprintf(res.reason, sizeof(res.reason), "%s", log_verifier_reason(v));
                goto finish;
        }

        for (size_t i = 0; i < n; i++) {
                _cleanup_close_ int fd = -EBADF;
                _cleanup_free_ char *path = NULL;
                struct dir_ctx c = {
                        .v = v, .each = each, .userdata = userdata, .res = &res, .first_in_segment = true};
                uint64_t tail = 0;

                (void)log_segment_name_parse(names[i], &c.first_seq);
                snprintf(res.bad_file, sizeof(res.bad_file), "%s", names[i]);
                if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
                        k = -ENOMEM;
                        goto finish;
                }
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
                if (fd < 0) {
                        k = negative_errno();
                        goto finish;
                }
                res.segments++;
                k = log_segment_read_fd(fd, on_line, &c, &tail);
                if (k == -EBADMSG) {
                        k = 0;
                        goto finish; /* reason already set */
                }
                if (k < 0)
                        goto finish;
                if (c.first_in_segment && tail == 0 && i + 1 == n)
                        continue; /* a just-created last segment: harmless */
                if (c.first_in_segment) {
                        res.bad_seq = log_verifier_last_seq(v) + 1;
                        snprintf(res.reason, sizeof(res.reason), "segment has no complete record%s",
                                 tail > 0 ? " (only a torn line)" : "");
                        goto finish;
                }
                if (tail > 0) {
                        res.bad_line = c.line_no + 1;
                        res.bad_seq = log_verifier_last_seq(v) + 1;
                        snprintf(res.reason, sizeof(res.reason),
                                 "truncated record: %" PRIu64 " bytes after the last complete line", tail);
                        goto finish;
                }
                if (i + 1 < n) {
                        uint64_t next_first = 0;
                        (void)log_segment_name_parse(names[i + 1], &next_first);
                        if (next_first != log_verifier_last_seq(v) + 1) {
                                snprintf(res.bad_file, sizeof(res.bad_file), "%s", names[i + 1]);
                                res.bad_seq = log_verifier_last_seq(v) + 1;
                                snprintf(res.reason, sizeof(res.reason),
                                         "segment starts at seq %" PRIu64 ", expected %" PRIu64
                                         " (segment missing or cut short)",
                                         next_first, res.bad_seq);
                                goto finish;
                        }
                }
        }
        if (n == 0) {
                res.bad_file[0] = '\0';
                res.bad_seq = 1;
                snprintf(res.reason, sizeof(res.reason), "no segment files (no records)");
        } else if (res.anchor_seq > log_verifier_last_seq(v)) {
                /* The receipt acknowledges records this log does not have. */
                res.bad_file[0] = '\0';
                res.bad_seq = log_verifier_last_seq(v) + 1;
                snprintf(res.reason, sizeof(res.reason),
                         "the receipt acknowledges seq %" PRIu64 " but the log ends at seq %" PRIu64,
                         res.anchor_seq, log_verifier_last_seq(v));
        } else {
                res.intact = true;
                res.bad_file[0] = '\0';
                res.reason[0] = '\0';
        }
        k = 0;
finish:
        log_segments_free(names, n);
        if (k < 0)
                return k;
        *ret = res;
        return 0;
}

struct seek_ctx {
        uint64_t want, at;
        char *line;
        size_t len;
};

static int seek_line(const char *line, size_t len, uint64_t offset, void *userdata)
{
        struct seek_ctx *c = userdata;

        if (c->at++ != c->want)
                return 0;
        c->line = strndup(line, len);
        if (!c->line)
                return -ENOMEM;
        c->len = len;
        return -ECANCELED;
}

int log_read_line(const char *dir, uint64_t seq, char **ret, size_t *ret_len)
{
        _cleanup_record_ Record *r = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct seek_ctx c = {.want = seq};
        char **names = NULL;
        size_t n = 0, pick = SIZE_MAX;
        uint64_t first = 0;
        int k;

        if (!dir || !ret || seq < 1)
                return -EINVAL;
        k = log_segments_list(dir, &names, &n);
        if (k < 0)
                return k;
        /* The last segment starting at or before seq. */
        for (size_t i = 0; i < n; i++) {
                uint64_t f = 0;
                (void)log_segment_name_parse(names[i], &f);
                if (f > seq)
                        break;
                pick = i;
                first = f;
        }
        if (pick == SIZE_MAX)
                k = -ENOENT;
        else if (asprintf(&path, "%s/%s", dir, names[pick]) < 0)
                k = -ENOMEM;
        log_segments_free(names, n);
        if (k < 0)
                return k;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        c.at = first;
        k = log_segment_read_fd(fd, seek_line, &c, NULL);
        if (k == -ECANCELED)
                k = 0;
        else if (k >= 0)
                k = -ENOENT; /* the segment ends before seq */
        if (k < 0) {
                free(c.line);
                return k;
        }
        k = record_parse_line(c.line, c.len, &r);
        if (k < 0 || r->seq != seq) {
                free(c.line);
                return k == -ENOMEM ? k : -EBADMSG;
        }
        *ret = c.line;
        if (ret_len)
                *ret_len = c.len;
        return 0;
}
