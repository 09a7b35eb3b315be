/*
 * mamori-admin retention: deletes the months of records that lie wholly before RetentionYears (7) at the
 * centre. Per log it deletes only a prefix whose every record is filed (store.h StoreRecord.ts) before the
 * cut-off (a record after a clock jump back is filed with the younger one before it: nothing younger is
 * ever deleted), after checking that prefix with the chain verifier; the verifier's state at each cut
 * (hash of the last deleted line, the epoch key that signs the next record) is kept as the log's anchor,
 * so `mamori-admin verify` goes on verifying what remains, and each deletion is a history row. Month by
 * month, oldest first: PostgreSQL drops the month's partition in one transaction with every log's anchor;
 * where it cannot (SQLite, or a month that keeps a record that does not verify) rows are deleted in
 * transactions of at most --batch records. Then the key of each closed month not rebuilt yet is rebuilt
 * (store_records_compact(), PostgreSQL), once per month, while ingest goes on.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/oplog-verify.h"
#include "mamori/parse-util.h"

/* The store's lock for a retention run (store_run_lock(): not a log id). */
#define RETENTION_LOCK "#retention"
/* Exit status when another run holds it: EX_TEMPFAIL (sysexits.h), "try again later". */
#define EXIT_BUSY 75

/* One deletion: records of one log after the previous step up to anchor.seq, all filed in one month. */
typedef struct Step {
        char log[ID128_STRING_MAX];
        char term[65];
        int64_t month; /* µs of the UTC month's first instant */
        uint64_t n;
        StoreAnchor anchor;
} Step;

typedef struct Retention {
        Store *store;
        int64_t cutoff; /* a month's first instant: records filed before it go */
        uint64_t batch; /* records per transaction when deleting by rows */
        bool dry_run;
        uint64_t deleted, logs;
        int64_t blocked; /* the first month that holds a record kept for a reason other than its age */
        Step *steps;
        size_t n_steps, allocated;
        int failed;
        /* apply()'s progress, for what a failure leaves: the months of the steps (oldest first), how many
         * are done, the records planned and deleted already (by rows) of the next one, and whether a COMMIT
         * failed (which may have stored it, when the connection was lost). */
        int64_t *months;
        size_t n_months, done;
        uint64_t planned, part;
        bool committing;
} Retention;

/* The first instant (µs, UTC) of the month of usec, and of the month after it. */
static int64_t month_start(int64_t usec, int next)
{
        time_t t = (time_t)(usec >= 0 ? usec / 1000000 : (usec - 999999) / 1000000);
        struct tm tm;

        if (!gmtime_r(&t, &tm))
                return usec;
        tm = (struct tm){.tm_year = tm.tm_year, .tm_mon = tm.tm_mon + next, .tm_mday = 1};
        return (int64_t)timegm(&tm) * 1000000;
}

static void month_name(int64_t month, char buf[static 32])
{
        time_t t = (time_t)(month / 1000000);
        struct tm tm;
        if (gmtime_r(&t, &tm))
                snprintf(buf, 32, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
        else
                snprintf(buf, 32, "?");
}

/* The verifier for a log as the store holds it: from seq 1, or from its anchor after an earlier deletion. */
int admin_log_verifier(Store *s, const StoreLog *l, LogVerifier **ret, const char **ret_why)
{
        _cleanup_free_ char *pem = NULL;
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        StoreAnchor anchor;
        int r;

        r = store_terminal_identity(s, l->term, &pem);
        if (r < 0) {
                *ret_why = "terminal not registered";
                return r == -ENOENT ? -EBADMSG : r;
        }
        if (pem_parse_public_key(pem, strlen(pem), &identity) < 0) {
                *ret_why = "bad identity key";
                return -EBADMSG;
        }
        r = store_log_anchor(s, l->log, &anchor);
        if (r == -ENOENT)
                return log_verifier_new(identity, ret);
        if (r < 0)
                return r;
        LogVerifierState st = {.last_seq = anchor.seq, .epochs = anchor.epochs};
        if (ed25519_public_to_raw(identity, st.identity) < 0) {
                *ret_why = "bad identity key";
                return -EBADMSG;
        }
        memcpy(st.log, l->log, sizeof(st.log));
        snprintf(st.term, sizeof(st.term), "%s", l->term);
        memcpy(st.last_hash, anchor.hash, sizeof(st.last_hash));
        memcpy(st.key, anchor.key, sizeof(st.key));
        r = log_verifier_restore(&st, ret);
        if (r < 0)
                *ret_why = "retention anchor inconsistent";
        return r;
}

static void block_month(Retention *t, int64_t filed)
{
        int64_t m = month_start(filed, 0);
        if (m < t->blocked)
                t->blocked = m;
}

static int step_add(Retention *t, const StoreLog *l, int64_t month, uint64_t n, const LogVerifierState *st)
{
        if (t->n_steps == t->allocated) {
                size_t na = t->allocated ? t->allocated * 2 : 64;
                Step *ns = realloc(t->steps, na * sizeof(Step));
                if (!ns)
                        return -ENOMEM;
                t->steps = ns;
                t->allocated = na;
        }
        Step *p = &t->steps[t->n_steps++];
        *p = (Step){.month = month, .n = n};
        memcpy(p->log, l->log, sizeof(p->log));
        snprintf(p->term, sizeof(p->term), "%s", l->term);
        p->anchor.seq = st->last_seq;
        memcpy(p->anchor.hash, st->last_hash, sizeof(p->anchor.hash));
        memcpy(p->anchor.key, st->key, sizeof(p->anchor.key));
        p->anchor.epochs = st->epochs;
        return 0;
}

/*
 * Walk one log from its start (or anchor) with the chain verifier, up to the first record filed at or
 * after the cut-off, and note the steps that delete what lies before: one per month (and at most `batch`
 * records each), each with the verifier state after its last record (the anchor).
 */
static int retain_log(const StoreLog *l, void *userdata)
{
        Retention *t = userdata;
        _cleanup_log_verifier_ LogVerifier *lv = NULL;
        _cleanup_store_cursor_ StoreCursor *c = NULL;
        const char *why = NULL, *line;
        LogVerifierState prev = {};
        int64_t filed = 0, month = 0;
        uint64_t seq, n = 0, total = 0;
        size_t len;
        int r;

        r = store_cursor_open(t->store, l->log, 0, &c);
        if (r < 0)
                return r;
        r = admin_log_verifier(t->store, l, &lv, &why);
        if (r < 0) {
                if (r == -ENOMEM)
                        return r;
                /* Nothing of it can be checked, so nothing of it is deleted. */
                if (store_cursor_next(c, &seq, &line, &len) > 0 && store_cursor_ts(c) < t->cutoff) {
                        fprintf(stderr, "mamori-admin: log %s: cannot check before deleting: %s; kept\n",
                                l->log, why ?: strerror(-r));
                        block_month(t, store_cursor_ts(c));
                        t->failed = 1;
                }
                return 0;
        }
        while ((r = store_cursor_next(c, &seq, &line, &len)) > 0) {
                const Record *rec;
                if (log_verifier_push(lv, line, len, &rec) < 0 || rec->seq != seq) {
                        filed = store_record_time(filed, store_cursor_ts(c));
                        if (filed < t->cutoff) {
                                fprintf(stderr,
                                        "mamori-admin: log %s: record %" PRIu64
                                        " does not verify (%s): it and "
                                        "what follows are kept; run mamori-admin verify\n",
                                        l->log, seq, log_verifier_reason(lv));
                                block_month(t, filed);
                                t->failed = 1;
                        }
                        break;
                }
                /* The filing time: stored, or for rows stored before it was, the running maximum. */
                filed = store_record_time(store_record_time(filed, rec->ts), store_cursor_ts(c));
                if (filed >= t->cutoff)
                        break; /* the first younger record: it and everything after it stay */
                int64_t m = month_start(filed, 0);
                if (n > 0 && (m != month || n >= t->batch)) {
                        r = step_add(t, l, month, n, &prev);
                        if (r < 0)
                                return r;
                        n = 0;
                }
                month = m;
                n++;
                total++;
                r = log_verifier_save(lv, &prev);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (n > 0) {
                r = step_add(t, l, month, n, &prev);
                if (r < 0)
                        return r;
        }
        if (total > 0)
                t->logs++;
        return 0;
}

/* Apply the steps of one month by rows: one transaction per step. */
static int delete_month_rows(Retention *t, int64_t month, uint64_t *ret_n)
{
        char name[32], note[40];
        uint64_t total = 0;
        int r;

        month_name(month, name);
        snprintf(note, sizeof(note), "month %s", name);
        for (size_t i = 0; i < t->n_steps; i++) {
                Step *p = &t->steps[i];
                uint64_t n = 0;
                if (p->month != month)
                        continue;
                r = store_begin(t->store);
                if (r < 0)
                        return r;
                r = store_records_delete_below(t->store, admin_now_usec(), p->log, &p->anchor, note, &n);
                if (r < 0) {
                        store_rollback(t->store);
                        return r;
                }
                t->committing = true;
                r = store_commit(t->store);
                if (r < 0)
                        return r;
                t->committing = false;
                t->part += n;
                printf("log %s (terminal %s): deleted %" PRIu64 " records up to seq %" PRIu64 " (%s)\n",
                       p->log, p->term, n, p->anchor.seq, name);
                if (n != p->n)
                        fprintf(stderr,
                                "mamori-admin: log %s: deleted %" PRIu64 " records up to seq %" PRIu64
                                ", %" PRIu64 " expected (records changed while retention ran)\n",
                                p->log, n, p->anchor.seq, p->n);
                total += n;
        }
        *ret_n = total;
        return 0;
}

/* One line per log of a month: what the steps of that log in it delete. */
static void print_steps(const Retention *t, int64_t month, const char *verb)
{
        char name[32];

        month_name(month, name);
        for (size_t i = 0; i < t->n_steps; i++) {
                const Step *p = &t->steps[i];
                uint64_t n = p->n;
                if (p->month != month)
                        continue;
                while (i + 1 < t->n_steps && t->steps[i + 1].month == month &&
                       streq(t->steps[i + 1].log, p->log))
                        n += t->steps[++i].n;
                printf("log %s (terminal %s): %s %" PRIu64 " records up to seq %" PRIu64 " (%s)\n", p->log,
                       p->term, verb, n, t->steps[i].anchor.seq, name);
        }
}

/*
 * A month at once (PostgreSQL: its partition dropped), in one transaction with the anchor and history
 * row of every log it held. 0 done, -EOPNOTSUPP / -ENOENT / -ESTALE: delete by rows instead.
 */
static int drop_month(Retention *t, int64_t month, uint64_t *ret_n)
{
        char name[32], note[64];
        uint64_t expected = 0;
        int r;

        month_name(month, name);
        snprintf(note, sizeof(note), "month %s dropped whole", name);
        r = store_begin(t->store);
        if (r < 0)
                return r;
        for (size_t i = 0; i < t->n_steps; i++) {
                Step *p = &t->steps[i];
                uint64_t n = p->n;
                if (p->month != month)
                        continue;
                /* The last step of this log in this month carries the anchor; the count is the month's. */
                size_t j = i + 1;
                for (; j < t->n_steps && t->steps[j].month == month && streq(t->steps[j].log, p->log); j++)
                        n += t->steps[j].n;
                p = &t->steps[j - 1];
                r = store_log_anchor_set(t->store, admin_now_usec(), p->log, &p->anchor, n, note);
                if (r < 0)
                        goto fail;
                expected += n;
                i = j - 1;
        }
        r = store_records_drop_month(t->store, month, expected);
        if (r < 0)
                goto fail;
        t->committing = true;
        r = store_commit(t->store);
        if (r < 0)
                return r;
        t->committing = false;
        print_steps(t, month, "deleted");
        *ret_n = expected;
        return 0;
fail:
        store_rollback(t->store);
        return r;
}

/* A month its steps would drop whole (PostgreSQL) rather than delete by rows: no key of it is left to
 * rebuild. */
static bool drops_whole(const Retention *t, int64_t month)
{
        if (month >= t->blocked)
                return false;
        for (size_t i = 0; i < t->n_steps; i++)
                if (t->steps[i].month == month)
                        return true;
        return false;
}

static int print_compacted(int64_t month, uint64_t before, uint64_t after, const char *kept_invalid,
                           void *userdata)
{
        Retention *t = userdata;
        char name[32];

        month_name(month, name);
        if (t->dry_run && drops_whole(t, month))
                return 0;
        if (kept_invalid) {
                fprintf(stderr,
                        "mamori-admin: month %s: key not rebuilt: index %s is invalid and not a leftover of "
                        "an interrupted rebuild, so it is left alone (a CREATE INDEX CONCURRENTLY that "
                        "failed "
                        "or still runs?); when nothing builds it any more, DROP INDEX CONCURRENTLY %s (or "
                        "REINDEX INDEX CONCURRENTLY %s to keep it), then run retention again\n",
                        name, kept_invalid, kept_invalid, kept_invalid);
                t->failed = 1;
                return 0;
        }
        if (t->dry_run)
                printf("month %s: would rebuild its key, indexes %.1f MB\n", name, (double)before / 1e6);
        else
                printf("month %s: key rebuilt, indexes %.1f MB (were %.1f MB)\n", name, (double)after / 1e6,
                       (double)before / 1e6);
        return 0;
}

static int cmp_month(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static int apply(Retention *t)
{
        int r;

        t->months = calloc(t->n_steps ?: 1, sizeof(int64_t));
        if (!t->months)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_steps; i++)
                t->months[t->n_months++] = t->steps[i].month;
        qsort(t->months, t->n_months, sizeof(int64_t), cmp_month);
        size_t kept = 0; /* each month once */
        for (size_t i = 0; i < t->n_months; i++)
                if (kept == 0 || t->months[i] != t->months[kept - 1])
                        t->months[kept++] = t->months[i];
        t->n_months = kept;
        for (t->done = 0; t->done < t->n_months; t->done++) {
                int64_t month = t->months[t->done];
                uint64_t n = 0, logs = 0;
                const char *how = "by rows";
                char name[32];

                month_name(month, name);
                t->planned = t->part = 0;
                for (size_t k = 0; k < t->n_steps; k++)
                        if (t->steps[k].month == month) {
                                t->planned += t->steps[k].n;
                                logs += k == 0 || t->steps[k - 1].month != month ||
                                        !streq(t->steps[k - 1].log, t->steps[k].log);
                        }
                if (t->dry_run) {
                        print_steps(t, month, "would delete");
                        printf("month %s: would delete %" PRIu64 " records of %" PRIu64 " logs\n", name,
                               t->planned, logs);
                        t->deleted += t->planned;
                        continue;
                }
                /* Whole only when no record of it is kept (one that does not verify, say), and asked first:
                 * a store that cannot (SQLite) must not write every log's anchor only to roll it back. */
                r = month < t->blocked && store_drops_months(t->store) ? drop_month(t, month, &n)
                                                                       : -EOPNOTSUPP;
                if (r >= 0)
                        how = "whole month dropped";
                else if (r == -EOPNOTSUPP || r == -ENOENT || r == -ESTALE) {
                        if (r == -ESTALE)
                                fprintf(stderr,
                                        "mamori-admin: month %s changed while retention ran: deleting "
                                        "it by rows\n",
                                        name);
                        r = delete_month_rows(t, month, &n);
                }
                if (r < 0)
                        return r;
                printf("month %s: deleted %" PRIu64 " records of %" PRIu64 " logs (%s)\n", name, n, logs,
                       how);
                t->deleted += n;
        }
        return 0;
}

/* months[from..to) in words: "2015-01", or "the 3 months 2015-01 to 2015-03". */
static void months_span(const Retention *t, size_t from, size_t to, char buf[static 128])
{
        char first[32], last[32];

        month_name(t->months[from], first);
        month_name(t->months[to - 1], last);
        if (to - from == 1)
                snprintf(buf, 128, "%s", first);
        else
                snprintf(buf, 128, "the %zu months %s to %s", to - from, first, last);
}

/*
 * apply() failed in months[done]: why, what it deleted before (each deletion anchored and recorded, and
 * printed above), what is left, and that a run again is safe: it walks every log from its anchor, so it
 * goes on from what was deleted (a month dropped whole is one transaction: all of it or nothing).
 */
static void apply_failed(const Retention *t, int r)
{
        char month[32], span[128];

        month_name(t->months[t->done], month);
        if (r == -ENOLCK)
                fprintf(stderr,
                        "mamori-admin: retention stopped at month %s: the connection to the store was lost "
                        "and the retention lock with it, so another run may have changed what this one "
                        "planned. ",
                        month);
        else if (r == -ESTALE)
                fprintf(stderr,
                        "mamori-admin: retention stopped at month %s: a log's records were deleted further "
                        "than this run planned (by another run); nothing of this step was changed. ",
                        month);
        else if (r == -ECONNRESET && t->committing)
                fprintf(stderr,
                        "mamori-admin: retention stopped at month %s: the connection to the database was "
                        "lost as a deletion of it was committed: that one may or may not be done. ",
                        month);
        else
                fprintf(stderr, "mamori-admin: retention failed deleting month %s: %s. ", month,
                        strerror(-r));
        if (t->done == 0 && t->part == 0)
                fputs("Nothing was deleted", stderr);
        else {
                fputs("Deleted (anchored and recorded, as printed above): ", stderr);
                if (t->done > 0) {
                        months_span(t, 0, t->done, span);
                        fputs(span, stderr);
                }
                if (t->part > 0)
                        fprintf(stderr, "%s%" PRIu64 " of the %" PRIu64 " records of %s",
                                t->done > 0 ? ", and " : "", t->part, t->planned, month);
        }
        if (t->part > 0)
                fprintf(stderr, "; left: the other %" PRIu64 " records of %s", t->planned - t->part, month);
        else
                fprintf(stderr, "; left: %s", month);
        if (t->done + 1 < t->n_months) {
                months_span(t, t->done + 1, t->n_months, span);
                fprintf(stderr, ", and %s", span);
        }
        fputs(". Running mamori-admin retention again is safe: it goes on from what was deleted", stderr);
        if (r == -ENOLCK || r == -ESTALE || r == -ECONNRESET)
                fputs("\n", stderr);
        else
                fprintf(stderr, "; if it fails the same way, %s\n", admin_store_why(t->store, r));
}

int admin_retention(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"years", required_argument, NULL, 'y'},
                {"dry-run", no_argument, NULL, 'n'},
                {"batch", required_argument, NULL, 'b'},
                {"vacuum", no_argument, NULL, 'v'},
                {},
        };
        Retention t = {.batch = 10000, .blocked = INT64_MAX};
        uint64_t years = 7;
        bool vacuum = false;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "y:nb:v", options, NULL)) >= 0)
                switch (c) {
                case 'b':
                        if (parse_uint64(optarg, 1000000, &t.batch) < 0 || t.batch < 1) {
                                fprintf(stderr, "mamori-admin: --batch wants 1..1000000 records per "
                                                "transaction (default 10000)\n");
                                return 2;
                        }
                        break;
                case 'y':
                        if (parse_uint64(optarg, 100, &years) < 0 || years < 1) {
                                fprintf(stderr,
                                        "mamori-admin: --years wants 1..100 (the regulations ask for 7)\n");
                                return 2;
                        }
                        break;
                case 'n':
                        t.dry_run = true;
                        break;
                case 'v':
                        vacuum = true;
                        break;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr,
                        "usage: mamori-admin retention [--years N (7)] [--dry-run] [--batch N (10000)] "
                        "[--vacuum]\n");
                return 2;
        }
        /* N years of 365.25 days before now, rounded down to the start of its month (UTC): only whole
         * months go, never part of one that reaches into the retention period. */
        t.cutoff = month_start(admin_now_usec() - (int64_t)years * (AUDIT_DAY * 36525 / 100), 0);
        if (admin_store(ctx, &t.store) < 0)
                return 1;
        /* One run at a time (held until we exit): a run behind another would set a log's anchor back
         * behind what the other deleted (its steps were walked before), and drop the index the other's
         * rebuild is building. */
        r = store_run_lock(t.store, RETENTION_LOCK);
        if (r == -EBUSY) {
                fprintf(stderr,
                        "mamori-admin: another retention run is in progress on this store; nothing was "
                        "done: wait for it to end (its output says what it deleted), then run "
                        "retention again if needed\n");
                return EXIT_BUSY;
        }
        if (r < 0 && r != -EOPNOTSUPP) {
                fprintf(stderr,
                        "mamori-admin: retention: cannot take the store's retention lock: %s; nothing "
                        "was done: check the database (SQLite: that the file DATABASE-retention.lock can "
                        "be made beside it, by this user), then run it again\n",
                        strerror(-r));
                return 1;
        }
        /* PostgreSQL: records waiting in the default partition filed into their months first. */
        r = store_maintain(t.store, admin_now_usec());
        if (r < 0)
                fprintf(stderr,
                        "mamori-admin: retention failed before deleting anything: the store's upkeep "
                        "(records filed into their months, clock-ahead alerts) failed: %s; nothing was "
                        "deleted. Run it again; if it fails the same way, %s\n",
                        strerror(-r), admin_store_why(t.store, r));
        else {
                r = store_logs_foreach(t.store, retain_log, &t);
                if (r < 0)
                        admin_run_failed(ctx, "retention", "nothing was deleted", r);
        }
        if (r >= 0) {
                r = apply(&t);
                if (r < 0 && t.months)
                        apply_failed(&t, r);
                else if (r < 0)
                        admin_run_failed(ctx, "retention", "nothing was deleted", r);
        }
        if (r < 0) {
                free(t.steps);
                free(t.months);
                return 1;
        }
        /* Closed months' keys made dense once (PostgreSQL); a failure leaves the records as they are. */
        r = store_records_compact(t.store, admin_now_usec(), t.dry_run, print_compacted, &t);
        if (r < 0 && r != -EOPNOTSUPP) {
                fprintf(stderr,
                        "mamori-admin: retention: rebuilding the key of a closed month failed: %s; the "
                        "deletions above are done, and the month's records are kept as they were (nothing "
                        "is lost). The next run tries the rebuild again; if it fails the same way, %s\n",
                        strerror(-r), admin_store_why(t.store, r));
                t.failed = 1;
        }
        free(t.steps);
        free(t.months);
        char when[32];
        audit_format_time(t.cutoff, when, sizeof(when));
        printf("%s%" PRIu64 " records older than %s (%" PRIu64 " years) in %" PRIu64 " logs\n",
               t.dry_run ? "would delete " : "deleted ", t.deleted, when, years, t.logs);
        /* SQLite: the space freed given back to the file system (its own transactions, after the lock's
         * work). */
        if (admin_store_space(t.store, vacuum, t.dry_run) != 0)
                t.failed = 1;
        return t.failed;
}
