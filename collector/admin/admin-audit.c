/* mamori-admin audit verbs: re-verify every stored log from its identity key (the same chain verifier as the
 * collector's ingest), export lines, list alerts. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/oplog-verify.h"

typedef struct VerifyState {
        Store *store;
        LogVerifier *verifier;
        uint64_t expect_seq;
        uint64_t records, logs, bad;
        bool refused; /* verify_line() refused a record: the chain is at fault, not the store's read */
} VerifyState;

static int verify_line(uint64_t seq, const char *line, size_t len, void *userdata)
{
        VerifyState *v = userdata;
        const Record *rec = NULL;
        int r = log_verifier_push(v->verifier, line, len, &rec);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || rec->seq != seq) {
                v->refused = true;
                return -EBADMSG;
        }
        v->records++;
        return 0;
}

/* The chain's end, as the verifier saw it, against the state the collector stored to resume from. */
static const char *state_differs(const LogVerifier *lv, const StoreLog *l)
{
        LogVerifierState st;

        if (log_verifier_save(lv, &st) < 0)
                return "verifier state unavailable";
        if (st.last_seq != l->last_seq)
                return "records missing below the acknowledged seq";
        if (!streq(st.last_hash, l->last_hash))
                return "last hash differs from the log state";
        if (st.epochs != l->epochs || memcmp(st.key, l->key, sizeof(st.key)) != 0)
                return "current log key differs from the log state";
        return NULL;
}

static int verify_log(const StoreLog *l, void *userdata)
{
        VerifyState *v = userdata;
        _cleanup_log_verifier_ LogVerifier *lv = NULL;
        const char *why = NULL;
        int r;

        v->logs++;
        /* From seq 1, or from the anchor that retention left when it deleted the start of the log. */
        r = admin_log_verifier(v->store, l, &lv, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && !why)
                why = "cannot start the verifier";
        if (!why) {
                v->verifier = lv;
                v->refused = false;
                r = store_records_foreach(v->store, l->log, verify_line, v);
                v->verifier = NULL;
                if (r == -ENOMEM || (r < 0 && !v->refused))
                        return r; /* the store's read failed: no verdict on this log */
                if (r < 0)
                        why = *log_verifier_reason(lv) ? log_verifier_reason(lv) : "stored seq differs";
                else
                        why = state_differs(lv, l);
        }
        if (why) {
                v->bad++;
                printf("log %s (terminal %s): BROKEN: %s\n", l->log, l->term, why);
        } else
                printf("log %s (terminal %s): %" PRIu64 " records, intact\n", l->log, l->term, l->last_seq);
        return 0;
}

int admin_verify(AdminContext *ctx, int argc, char **argv)
{
        VerifyState v = {};
        uint64_t total = 0;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin verify\n");
                return 2;
        }
        if (admin_store(ctx, &v.store) < 0)
                return 1;
        r = store_logs_foreach(v.store, verify_log, &v);
        if (r >= 0)
                r = store_record_count(v.store, &total);
        if (r < 0) {
                admin_run_failed(ctx, "verify", "the logs above were checked, the others were not", r);
                return 1;
        }
        if (total != v.records) {
                printf("%" PRIu64 " stored records do not belong to a verified chain\n", total - v.records);
                v.bad++;
        }
        printf("%" PRIu64 " logs, %" PRIu64 " records verified, %" PRIu64 " broken\n", v.logs, v.records,
               v.bad);
        return v.bad ? 1 : 0;
}

typedef struct ExportState {
        Store *store;
        bool write_failed; /* stdout refused a line: the store is not at fault */
} ExportState;

static int export_line(uint64_t seq, const char *line, size_t len, void *userdata)
{
        ExportState *e = userdata;

        if (fwrite(line, 1, len, stdout) != len || putchar('\n') == EOF) {
                e->write_failed = true;
                return -EIO;
        }
        return 0;
}

static int export_log(const StoreLog *l, void *userdata)
{
        ExportState *e = userdata;

        return store_records_foreach(e->store, l->log, export_line, e);
}

int admin_export(AdminContext *ctx, int argc, char **argv)
{
        ExportState e = {};
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin export\n");
                return 2;
        }
        if (admin_store(ctx, &e.store) < 0)
                return 1;
        r = store_logs_foreach(e.store, export_log, &e);
        if (r >= 0 && fflush(stdout) != 0)
                e.write_failed = true;
        if (e.write_failed) {
                fprintf(stderr,
                        "mamori-admin: cannot write the export: %s; it is incomplete. Check where it goes "
                        "(disk space, the pipe's reader) and run the export again\n",
                        strerror(errno ?: EIO));
                return 1;
        }
        if (r < 0) {
                admin_run_failed(ctx, "export", "what was written is incomplete", r);
                return 1;
        }
        return 0;
}

static int print_alert(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                       uint64_t seq, const char *detail, uint64_t count, int64_t last_seen, void *userdata)
{
        printf("%" PRId64 "\t%" PRId64 "\t%s\t%s\t%s\t%" PRIu64 "\t%s\t%" PRIu64 "\t%" PRId64 "\n", id, ts,
               kind, term, log, seq, detail, count, last_seen);
        return 0;
}

int admin_alerts(AdminContext *ctx, int argc, char **argv)
{
        Store *s;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin alerts\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        r = store_alerts_foreach(s, print_alert, NULL);
        if (r < 0) {
                admin_run_failed(ctx, "alerts", "what was printed is incomplete", r);
                return 1;
        }
        return 0;
}
