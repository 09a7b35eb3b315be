/* Batch ingestion: parse every line, check term and order, verify the new records with the shared chain
 * verifier (oplog-verify) before any lock, then store the batch in one transaction (see ingest.h). */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "mamori/crypto-util.h"
#include "mamori/oplog-record.h"
#include "mamori/oplog-verify.h"

void ingest_answer_done(IngestAnswer *a)
{
        if (!a)
                return;
        free(a->body);
        a->body = NULL;
}

static int answer(IngestAnswer *ret, unsigned status, const char *fmt, ...) _printf_(3, 4);
static int answer(IngestAnswer *ret, unsigned status, const char *fmt, ...)
{
        va_list ap;
        char *b;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&b, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        *ret = (IngestAnswer){.status = status, .body = b};
        return 0;
}

static int answer_acked(IngestAnswer *ret, unsigned status, const char *log, uint64_t acked)
{
        return answer(ret, status, "{\"acked\":%" PRIu64 ",\"log\":\"%s\"}", acked, log);
}

/* What a receipt for the stored log l says: its last line and the key that signs the next record. */
static void ack_from_log(IngestAck *a, const StoreLog *l)
{
        *a = (IngestAck){.valid = true, .acked = l->last_seq};
        memcpy(a->log, l->log, sizeof(a->log));
        memcpy(a->line, l->last_hash, sizeof(a->line));
        memcpy(a->key, l->key, sizeof(a->key));
}

/* The parsed lines of the batch: record i is lines[i].record, owned here. */
typedef struct Batch {
        LogBatchLine *lines;
        size_t n;
} Batch;

static void batch_done(Batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                record_free((Record *)b->lines[i].record);
                free((char *)b->lines[i].signed_bytes);
        }
        free(b->lines);
        b->lines = NULL;
        b->n = 0;
}

/* Alerts are written in their own transaction, after the batch was rolled back. */
static void raise_alert(Store *s, int64_t now, const char *kind, const char *term, const char *log,
                        uint64_t seq, const char *detail)
{
        if (store_begin(s) < 0)
                return;
        if (store_alert_add(s, now, kind, term, log, seq, detail) < 0)
                store_rollback(s);
        else
                (void)store_commit(s); /* a failed commit rolls back */
}

/* Split and parse. 0 ok; > 0 the 1-based line that failed, with *ret_why set. */
static int batch_parse(const char *body, size_t len, size_t max_records, Batch *b, const char **ret_why)
{
        size_t n = 0, cap = 0;
        const char *p = body, *end = body + len;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                Record *r = NULL;
                char *sb = NULL;
                size_t sb_len = 0;
                int k;

                if (n >= max_records) {
                        *ret_why = "too-many-records";
                        return -E2BIG;
                }
                if (l == 0) {
                        *ret_why = "empty-line";
                        return (int)(n + 1);
                }
                if (l > RECORD_LINE_MAX) {
                        *ret_why = "line-too-long";
                        return (int)(n + 1);
                }
                k = record_parse_line_signed(p, l, &r, &sb, &sb_len);
                if (k == -ENOMEM)
                        return -ENOMEM;
                if (k < 0) {
                        *ret_why = "malformed";
                        return (int)(n + 1);
                }
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        LogBatchLine *nl_ = realloc(b->lines, nc * sizeof(LogBatchLine));
                        if (!nl_) {
                                record_free(r);
                                free(sb);
                                return -ENOMEM;
                        }
                        b->lines = nl_;
                        cap = nc;
                }
                b->lines[n++] = (LogBatchLine){
                        .record = r, .line = p, .len = l, .signed_bytes = sb, .signed_len = sb_len};
                b->n = n;
                p = nl ? nl + 1 : end;
        }
        if (n == 0) {
                *ret_why = "empty";
                return 1;
        }
        return 0;
}

static int load_identity(Store *s, const char *cn, EVP_PKEY **ret)
{
        _cleanup_free_ char *pem = NULL;
        int r = store_terminal_identity(s, cn, &pem);
        if (r < 0)
                return r;
        r = pem_parse_public_key(pem, strlen(pem), ret);
        return r < 0 ? -EIO : 0;
}

/* Outcome of the checks done inside the transaction. */
enum verdict {
        V_OK,
        V_GAP,
        V_FORK,
        V_BAD_SIGNATURE,
        V_BAD_CHAIN,
        V_LOG_OWNER,
};

/* The verifier's state for a stored log (the identity comes from the registry, not the log row). */
static void state_from_log(const StoreLog *l, const uint8_t identity[ED25519_KEY_SIZE],
                           LogVerifierState *ret)
{
        *ret = (LogVerifierState){.last_seq = l->last_seq, .epochs = l->epochs};
        memcpy(ret->identity, identity, ED25519_KEY_SIZE);
        memcpy(ret->log, l->log, sizeof(ret->log));
        snprintf(ret->term, sizeof(ret->term), "%s", l->term);
        memcpy(ret->last_hash, l->last_hash, sizeof(ret->last_hash));
        memcpy(ret->key, l->key, sizeof(ret->key));
}

/* What the next batch resumes from: where the verifier stopped (log id and owner do not change). */
static void log_from_state(const LogVerifierState *st, StoreLog *l)
{
        l->last_seq = st->last_seq;
        memcpy(l->last_hash, st->last_hash, sizeof(l->last_hash));
        memcpy(l->key, st->key, sizeof(l->key));
        l->epochs = st->epochs;
}

/* The chain verifier for log l: fresh for a new log, else resumed from what was stored. */
static int verifier_for_log(const StoreLog *l, EVP_PKEY *identity, LogVerifier **ret)
{
        LogVerifierState st;
        uint8_t raw[ED25519_KEY_SIZE];
        int r;

        if (l->last_seq == 0)
                return log_verifier_new(identity, ret);
        r = ed25519_public_to_raw(identity, raw);
        if (r < 0)
                return r;
        state_from_log(l, raw, &st);
        return log_verifier_restore(&st, ret);
}

/* What the verifier's refusal means for this batch: the first new record leaving our stored chain
 * is a fork; any other break is the sender's. */
static enum verdict verdict_of(const LogVerifier *lv, uint64_t stored_seq, uint64_t bad_seq)
{
        switch (log_verifier_error(lv)) {
        case LOG_VERIFY_SIGNATURE:
                return V_BAD_SIGNATURE;
        case LOG_VERIFY_PREV:
                return stored_seq > 0 && bad_seq == stored_seq + 1 ? V_FORK : V_BAD_CHAIN;
        default:
                return V_BAD_CHAIN;
        }
}

/* A log's state as read before any lock was taken: what the new records were verified against. */
typedef struct Verified {
        LogVerifier *lv;   /* after the new records; broken when one was refused */
        int r;             /* 0, or -EBADMSG: refused */
        size_t first;      /* index of the first new record in the batch */
        uint64_t from_seq; /* the stored state it started from */
        char from_hash[SHA256_HEX_MAX];
} Verified;

static void verified_done(Verified *v)
{
        v->lv = log_verifier_free(v->lv);
}

/* The records of b from index first on, verified from the stored state l. */
static int verify_new(const StoreLog *l, EVP_PKEY *identity, Batch *b, size_t first, const IngestOptions *o,
                      Verified *ret)
{
        _cleanup_log_verifier_ LogVerifier *lv = NULL;
        int r;

        r = verifier_for_log(l, identity, &lv);
        if (r < 0)
                return r;
        r = log_verifier_push_batch(lv, b->lines + first, b->n - first, o ? &o->parallel : NULL);
        if (r < 0 && r != -EBADMSG)
                return r;
        verified_done(ret);
        *ret = (Verified){.lv = TAKE_PTR(lv), .r = r, .first = first, .from_seq = l->last_seq};
        memcpy(ret->from_hash, l->last_hash, sizeof(ret->from_hash));
        return 0;
}

/* Index of the record of seq in b, when b holds it (its seqs ascend by one). */
static bool batch_index(const Batch *b, uint64_t seq, size_t *ret)
{
        uint64_t first = b->lines[0].record->seq;

        if (seq < first || seq - first >= b->n)
                return false;
        *ret = (size_t)(seq - first);
        return true;
}

/*
 * Before any lock: the batch's new records verified from the log's state as stored now, so the
 * signature checks (nearly all the cost) of different terminals' batches run at the same time and
 * outside the database's write lock. Whether this state is still the stored one is checked again
 * under the lock (a batch of the same log stored meanwhile: verified again there). Nothing to do
 * (0, ret untouched) for a log of another terminal, a gap, or records all stored.
 */
static int verify_ahead(Store *s, const char *cn, const char *log, EVP_PKEY *identity, Batch *b,
                        const IngestOptions *o, Verified *ret)
{
        StoreLog l;
        size_t first;
        int r;

        r = store_log_get(s, log, &l);
        if (r == -ENOENT) {
                l = (StoreLog){.last_seq = 0};
                memcpy(l.log, log, sizeof(l.log));
                snprintf(l.term, sizeof(l.term), "%s", cn);
                memcpy(l.last_hash, RECORD_PREV_FIRST, sizeof(l.last_hash));
        } else if (r < 0)
                return r;
        if (!streq(l.term, cn) || !batch_index(b, l.last_seq + 1, &first))
                return 0;
        return verify_new(&l, identity, b, first, o, ret);
}

static void write_unlock(const IngestOptions *o)
{
        if (o && o->write_lock)
                pthread_mutex_unlock(o->write_lock);
}

int ingest_batch(Store *s, const IngestOptions *o, const char *cn, const char *body, size_t len,
                 size_t max_records, int64_t now_usec, IngestAnswer *ret)
{
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        _cleanup_free_ StoreRecord *rows = NULL;
        Verified ver = {};
        Batch b = {};
        const char *why = NULL;
        enum verdict v = V_OK;
        uint64_t bad_seq = 0;
        StoreLog l;
        bool new_log = false;
        int r;

        if (!s || !cn || (!body && len) || !ret)
                return -EINVAL;

        r = load_identity(s, cn, &identity);
        if (r == -ENOENT)
                return answer(ret, 403, "{\"error\":\"unknown-terminal\"}");
        if (r < 0)
                return r;

        r = batch_parse(body, len, max_records, &b, &why);
        if (r == -E2BIG) {
                batch_done(&b);
                return answer(ret, 413, "{\"error\":\"%s\"}", why);
        }
        if (r < 0) {
                batch_done(&b);
                return r;
        }
        if (r > 0) {
                batch_done(&b);
                return answer(ret, 422, "{\"error\":\"%s\",\"line\":%d}", why, r);
        }

        /* Batch-internal rules: one log, this terminal, consecutive ascending seq. */
        char log[ID128_STRING_MAX];
        memcpy(log, b.lines[0].record->log, sizeof(log));
        for (size_t i = 0; i < b.n; i++) {
                const Record *rec = b.lines[i].record;
                if (!streq(rec->term, cn)) {
                        raise_alert(s, now_usec, "wrong-term", cn, rec->log, rec->seq,
                                    "record term differs from the certificate CN");
                        batch_done(&b);
                        return answer(ret, 422, "{\"error\":\"term\",\"line\":%zu}", i + 1);
                }
                if (!streq(rec->log, log) || (i > 0 && rec->seq != b.lines[i - 1].record->seq + 1)) {
                        batch_done(&b);
                        return answer(ret, 422, "{\"error\":\"order\",\"line\":%zu}", i + 1);
                }
        }

        r = verify_ahead(s, cn, log, identity, &b, o, &ver);
        if (r < 0) {
                batch_done(&b);
                return r;
        }

        if (o && o->write_lock)
                pthread_mutex_lock(o->write_lock);
        r = store_begin(s);
        if (r < 0) {
                write_unlock(o);
                verified_done(&ver);
                batch_done(&b);
                return r;
        }

        r = store_log_get_locked(s, log, &l);
        if (r == -ENOENT) {
                new_log = true;
                l = (StoreLog){.last_seq = 0};
                strcpy(l.log, log);
                if (strlen(cn) >= sizeof(l.term)) {
                        r = -EINVAL;
                        goto fail;
                }
                strcpy(l.term, cn);
                strcpy(l.last_hash, RECORD_PREV_FIRST);
                r = 0;
        }
        if (r < 0)
                goto fail;
        if (!streq(l.term, cn)) {
                v = V_LOG_OWNER;
                goto reject;
        }

        size_t i = 0;
        /* Already stored: must be byte-identical (compared by line hash). */
        for (; i < b.n && b.lines[i].record->seq <= l.last_seq; i++) {
                char have[SHA256_HEX_MAX], got[SHA256_HEX_MAX];
                r = store_record_hash(s, log, b.lines[i].record->seq, have);
                if (r < 0)
                        goto fail;
                r = record_line_hash(b.lines[i].line, b.lines[i].len, got);
                if (r < 0)
                        goto fail;
                if (!streq(have, got)) {
                        v = V_FORK;
                        bad_seq = b.lines[i].record->seq;
                        goto reject;
                }
        }
        if (i < b.n && b.lines[i].record->seq != l.last_seq + 1) {
                v = V_GAP;
                goto reject;
        }

        if (i < b.n) {
                /* New records: the §6 chain rules are the verifier's; storing them is ours. */
                LogVerifierState st;
                size_t first = i;

                if (!ver.lv || ver.first != first || ver.from_seq != l.last_seq ||
                    !streq(ver.from_hash, l.last_hash)) {
                        /* The log moved since it was read (its other batch stored meanwhile, maybe by
                         * another collector): verified again from what is stored now. */
                        r = verify_new(&l, identity, &b, first, o, &ver);
                        if (r < 0)
                                goto fail;
                }
                if (ver.r == -EBADMSG) {
                        bad_seq = log_verifier_bad_seq(ver.lv);
                        v = verdict_of(ver.lv, l.last_seq, bad_seq);
                        goto reject;
                }
                rows = calloc(b.n - first, sizeof(StoreRecord));
                if (!rows) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (; i < b.n; i++) {
                        const Record *rec = b.lines[i].record;

                        l.last_ts = store_record_time(l.last_ts, rec->ts);
                        rows[i - first] = (StoreRecord){.seq = rec->seq,
                                                        .ts = l.last_ts,
                                                        .line = b.lines[i].line,
                                                        .len = b.lines[i].len};
                        /* DESIGN §8: a verified PIN/password change sets the operator's pin_changed
                         * in the next bundle the centre signs. */
                        if (rec->op && (streq(rec->ev, "pin.change") || streq(rec->ev, "password.change"))) {
                                r = store_secret_changed(s, rec->op, rec->ts);
                                if (r < 0)
                                        goto fail;
                        }
                }
                /* The whole batch verified: stored in one call (PostgreSQL: a COPY per 250 rows). */
                r = store_records_put(s, log, rows, b.n - first);
                if (r < 0)
                        goto fail;
                r = log_verifier_save(ver.lv, &st);
                if (r < 0)
                        goto fail;
                log_from_state(&st, &l);
        }

        if (new_log && l.last_seq > 0) {
                uint64_t others = 0;
                r = store_log_count_for_terminal(s, cn, &others);
                if (r < 0)
                        goto fail;
                if (others > 0) {
                        r = store_alert_add(s, now_usec, "new-log", cn, log, 1,
                                            "a new log was opened by a terminal that already has one");
                        if (r < 0)
                                goto fail;
                }
        }
        if (l.last_seq > 0) {
                r = store_log_put(s, &l, now_usec);
                if (r < 0)
                        goto fail;
        }
        r = store_terminal_touch(s, cn, now_usec);
        if (r < 0)
                goto fail;
        r = store_commit(s);
        write_unlock(o);
        verified_done(&ver);
        batch_done(&b);
        if (r < 0)
                return r;
        r = answer_acked(ret, 200, log, l.last_seq);
        if (r >= 0)
                ack_from_log(&ret->ack, &l);
        return r;

reject:
        store_rollback(s);
        verified_done(&ver);
        batch_done(&b);
        {
                const char *logid = log;
                uint64_t acked = v == V_LOG_OWNER ? 0 : l.last_seq;
                switch (v) {
                case V_GAP:
                        r = answer_acked(ret, 409, logid, acked);
                        break;
                case V_FORK:
                        raise_alert(s, now_usec, "fork", cn, logid, bad_seq,
                                    "a record differs from the stored record of the same seq");
                        r = answer(ret, 409,
                                   "{\"acked\":%" PRIu64
                                   ",\"error\":\"fork\",\"log\":\"%s\",\"seq\":%" PRIu64 "}",
                                   acked, logid, bad_seq);
                        break;
                case V_BAD_SIGNATURE:
                        raise_alert(s, now_usec, "bad-signature", cn, logid, bad_seq,
                                    "a record signature does not verify");
                        r = answer(ret, 422, "{\"error\":\"bad-signature\",\"seq\":%" PRIu64 "}", bad_seq);
                        break;
                case V_BAD_CHAIN:
                        raise_alert(s, now_usec, "bad-chain", cn, logid, bad_seq,
                                    "a record does not continue the chain");
                        r = answer(ret, 422, "{\"error\":\"chain\",\"seq\":%" PRIu64 "}", bad_seq);
                        break;
                case V_LOG_OWNER:
                        raise_alert(s, now_usec, "log-owner", cn, logid, 0,
                                    "records of a log that belongs to another terminal");
                        r = answer(ret, 422, "{\"error\":\"log-owner\"}");
                        break;
                default:
                        r = -EINVAL;
                }
                write_unlock(o);
                return r;
        }

fail:
        store_rollback(s);
        write_unlock(o);
        verified_done(&ver);
        batch_done(&b);
        return r;
}

int ingest_acked(Store *s, const char *cn, const char *log, IngestAnswer *ret)
{
        StoreLog l;
        int r;

        if (!hex_lower_valid(log, ID128_STRING_MAX - 1))
                return answer(ret, 400, "{\"error\":\"bad-log-id\"}");
        r = store_log_get(s, log, &l);
        if (r == -ENOENT) {
                /* Nothing stored: the receipt says so, with the key that signs seq 1 (the identity). */
                _cleanup_pkey_ EVP_PKEY *identity = NULL;
                r = load_identity(s, cn, &identity);
                if (r == -ENOENT)
                        return answer(ret, 403, "{\"error\":\"unknown-terminal\"}");
                if (r < 0)
                        return r;
                l = (StoreLog){.last_seq = 0};
                memcpy(l.log, log, sizeof(l.log));
                memcpy(l.last_hash, RECORD_PREV_FIRST, sizeof(l.last_hash));
                r = ed25519_public_to_raw(identity, l.key);
                if (r < 0)
                        return r;
        } else if (r < 0)
                return r;
        else if (!streq(l.term, cn))
                return answer(ret, 404, "{\"error\":\"unknown-log\"}");
        r = answer_acked(ret, 200, log, l.last_seq);
        if (r >= 0)
                ack_from_log(&ret->ack, &l);
        return r;
}
