/*
 * mamori-admin retention: deletes records older than RetentionYears (7) at the centre. Per log it deletes
 * only a prefix whose every record is older than the cut-off (a record after a clock jump back stops it:
 * nothing younger is ever deleted), after checking that prefix with the chain verifier; the verifier's
 * state at the cut (hash of the last deleted line, the epoch key that signs the next record) is kept as the
 * log's anchor, so `mamori-admin verify` goes on verifying what remains, and the deletion is a history row.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/oplog-verify.h"
#include "mamori/parse-util.h"

typedef struct Retention {
        Store *store;
        int64_t cutoff;
        bool dry_run;
        uint64_t deleted, logs;
        int failed;
} Retention;

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

static int retain_log(const StoreLog *l, void *userdata)
{
        Retention *t = userdata;
        _cleanup_log_verifier_ LogVerifier *lv = NULL;
        _cleanup_store_cursor_ StoreCursor *c = NULL;
        const char *why = NULL, *line;
        uint64_t seq, cut = 0, n = 0;
        StoreAnchor anchor = {};
        size_t len;
        int r;

        r = admin_log_verifier(t->store, l, &lv, &why);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: log %s: cannot check before deleting: %s\n", l->log,
                        why ?: strerror(-r));
                t->failed = 1;
                return r == -ENOMEM ? r : 0;
        }
        r = store_cursor_open(t->store, l->log, 0, &c);
        if (r < 0)
                return r;
        while ((r = store_cursor_next(c, &seq, &line, &len)) > 0) {
                const Record *rec;
                if (log_verifier_push(lv, line, len, &rec) < 0 || rec->seq != seq) {
                        fprintf(stderr,
                                "mamori-admin: log %s: record %" PRIu64 " does not verify (%s): kept; run "
                                "mamori-admin verify\n",
                                l->log, seq, log_verifier_reason(lv));
                        t->failed = 1;
                        break;
                }
                if (rec->ts >= t->cutoff)
                        break; /* the first younger record: it and everything after it stay */
                cut = seq;
                n++;
        }
        if (r < 0)
                return r;
        c = store_cursor_free(c);
        if (cut == 0)
                return 0;
        /* The verifier has taken one record past the cut (or stopped at the end): its state is that of the
         * last pushed record, so rebuild the anchor from a verifier that stops at the cut. */
        lv = log_verifier_free(lv);
        r = admin_log_verifier(t->store, l, &lv, &why);
        if (r < 0)
                return r;
        r = store_cursor_open(t->store, l->log, 0, &c);
        if (r < 0)
                return r;
        while ((r = store_cursor_next(c, &seq, &line, &len)) > 0 && seq <= cut)
                if (log_verifier_push(lv, line, len, NULL) < 0)
                        return -EBADMSG;
        if (r < 0)
                return r;
        c = store_cursor_free(c);
        LogVerifierState st;
        r = log_verifier_save(lv, &st);
        if (r < 0)
                return r;
        anchor.seq = st.last_seq;
        memcpy(anchor.hash, st.last_hash, sizeof(anchor.hash));
        memcpy(anchor.key, st.key, sizeof(anchor.key));
        anchor.epochs = st.epochs;
        if (anchor.seq != cut)
                return -EBADMSG;
        t->logs++;
        if (t->dry_run) {
                printf("log %s (terminal %s): would delete %" PRIu64 " records up to seq %" PRIu64 "\n",
                       l->log, l->term, n, cut);
                t->deleted += n;
                return 0;
        }
        r = store_begin(t->store);
        if (r < 0)
                return r;
        r = store_records_delete_below(t->store, admin_now_usec(), l->log, &anchor, &n);
        if (r < 0) {
                store_rollback(t->store);
                return r;
        }
        r = store_commit(t->store);
        if (r < 0)
                return r;
        printf("log %s (terminal %s): deleted %" PRIu64 " records up to seq %" PRIu64 "\n", l->log, l->term,
               n, cut);
        t->deleted += n;
        return 0;
}

int admin_retention(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"years", required_argument, NULL, 'y'},
                {"dry-run", no_argument, NULL, 'n'},
                {},
        };
        Retention t = {};
        uint64_t years = 7;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "y:n", options, NULL)) >= 0)
                switch (c) {
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
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "usage: mamori-admin retention [--years N (7)] [--dry-run]\n");
                return 2;
        }
        /* N years of 365.25 days before now: a calendar-exact cut-off would differ by at most a day. */
        t.cutoff = admin_now_usec() - (int64_t)years * (AUDIT_DAY * 36525 / 100);
        if (admin_store(ctx, &t.store) < 0)
                return 1;
        r = store_logs_foreach(t.store, retain_log, &t);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: retention failed: %s\n", strerror(-r));
                return 1;
        }
        char when[32];
        audit_format_time(t.cutoff, when, sizeof(when));
        printf("%s%" PRIu64 " records older than %s (%" PRIu64 " years) in %" PRIu64 " logs\n",
               t.dry_run ? "would delete " : "deleted ", t.deleted, when, years, t.logs);
        return t.failed;
}
