/* Unit tests of the collector's batch ingestion over the store (DESIGN §7 answers), on either backend. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "ingest.h"
#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/oplog-record.h"
#include "record-fixture.h"
#include "store.h"
#include "thirds-runner.h"
#include "verify-pool.h"

#define LOG_ID  "00112233445566778899aabbccddeeff"
#define N_LINES 12

typedef struct Fixture {
        Store *store;
        EVP_PKEY *identity, *epoch0, *epoch1;
        char *lines[N_LINES + 1]; /* 1-based, each with "\n" */
        uint64_t bad_prev_at;     /* make_log: this seq gets a wrong prev (validly signed) */
        int64_t ts[N_LINES + 1];  /* make_log: record times (0: 1000 + seq µs) */
        PGconn *holder;           /* PostgreSQL: a session of the case's own, ended by teardown() */
} Fixture;

/* seq 1 log.open (identity), 2..5 epoch 0, 6 key.rotate → epoch 1, 7..12 epoch 1; into out[1..N_LINES],
 * each malloc'd and ending with "\n". */
static void make_lines(Fixture *f, const char *term, const char *log_id, const char *variant,
                       uint64_t variant_from, char *out[N_LINES + 1])
{
        char prev[SHA256_HEX_MAX] = RECORD_PREV_FIRST;
        for (uint64_t seq = 1; seq <= N_LINES; seq++) {
                Record *r = NULL;
                EVP_PKEY *signer = seq == 1 ? f->identity : seq <= 6 ? f->epoch0 : f->epoch1;
                char *line;
                size_t len;

                assert_int_equal(record_new(&r), 0);
                strcpy(r->log, log_id);
                strcpy(r->boot, LOG_ID);
                r->seq = seq;
                r->ts = f->ts[seq] ?: 1000 + (int64_t)seq;
                r->mono = (int64_t)seq;
                r->term = strdup(term);
                memcpy(r->prev, prev, sizeof(prev));
                if (seq == f->bad_prev_at)
                        memset(r->prev, 'f', SHA256_HEX_MAX - 1);
                r->ev = strdup(seq == 1 ? "log.open" : seq == 6 ? "key.rotate" : "lock");
                if (seq == 1)
                        fixture_set_data_key(r, f->epoch0);
                else if (seq == 6)
                        fixture_set_data_key(r, f->epoch1);
                if (variant && seq >= variant_from)
                        assert_int_equal(json_object_set_string(r->data, "x", variant), 0);
                assert_int_equal(record_sign(r, signer, &line, &len), 0);
                assert_int_equal(record_line_hash(line, len, prev), 0);
                free(out[seq]);
                assert_true(asprintf(&out[seq], "%s\n", line) > 0);
                free(line);
                record_free(r);
        }
}

static void make_log(Fixture *f, const char *term, const char *variant, uint64_t variant_from)
{
        make_lines(f, term, LOG_ID, variant, variant_from, f->lines);
}

static char *join(Fixture *f, unsigned from, unsigned to)
{
        size_t n = 0;
        for (unsigned i = from; i <= to; i++)
                n += strlen(f->lines[i]);
        char *b = calloc(1, n + 1);
        for (unsigned i = from; i <= to; i++)
                strcat(b, f->lines[i]);
        return b;
}

/*
 * The store under test: an in-memory SQLite database, or the PostgreSQL database named by
 * MAMORI_TEST_STORE_URL (tests/integration/pgcluster.py run starts a private cluster for it).
 */
static const char *store_url(void)
{
        const char *u = getenv("MAMORI_TEST_STORE_URL");
        return u && *u ? u : NULL;
}

static void quiet(void *arg, const char *message)
{
        (void)arg, (void)message;
}

/* Run sql on the test database (PostgreSQL); the result, or NULL with *ret_error set. */
static PGresult *pg_sql(const char *url, const char *sql, char **ret_error)
{
        PGconn *c = PQconnectdb(url);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PQsetNoticeProcessor(c, quiet, NULL);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
                if (ret_error)
                        *ret_error = strdup(PQerrorMessage(c));
                else
                        fail_msg("%s: %s", sql, PQerrorMessage(c));
                PQclear(r);
                r = NULL;
        }
        PQfinish(c);
        return r;
}

/* An empty PostgreSQL database: the schema of the previous case dropped (the register refuses TRUNCATE). */
static void pg_reset(const char *url)
{
        PQclear(pg_sql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public", NULL));
}

static char *identity_pem(Fixture *f)
{
        BIO *b = BIO_new(BIO_s_mem());
        char *pem;
        long n;

        assert_int_equal(PEM_write_bio_PUBKEY(b, f->identity), 1);
        n = BIO_get_mem_data(b, &pem);
        char *p = strndup(pem, (size_t)n);
        BIO_free(b);
        return p;
}

/* An empty store with terminal T-1 registered with f's identity key. */
static Store *new_store(Fixture *f)
{
        const char *url = store_url();
        Store *s = NULL;
        char *p = identity_pem(f);

        if (url)
                pg_reset(url);
        assert_int_equal(store_open(url ?: ":memory:", &s), 0);
        assert_string_equal(store_backend_name(s), url ? "postgresql" : "sqlite");
        assert_int_equal(store_terminal_add(s, 0, "T-1", "chuo", p), 0);
        free(p);
        return s;
}

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(Fixture));

        f->identity = fixture_key_from_byte(1);
        f->epoch0 = fixture_key_from_byte(2);
        f->epoch1 = fixture_key_from_byte(3);
        f->store = new_store(f);
        make_log(f, "T-1", NULL, 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fixture *f = *state;
        PQfinish(f->holder); /* and the locks it holds */
        store_close(f->store);
        EVP_PKEY_free(f->identity);
        EVP_PKEY_free(f->epoch0);
        EVP_PKEY_free(f->epoch1);
        for (unsigned i = 0; i <= N_LINES; i++)
                free(f->lines[i]);
        free(f);
        return 0;
}

/* Post lines from..to as cn; check status and body. */
static void post(Fixture *f, const char *cn, unsigned from, unsigned to, unsigned status, const char *body)
{
        char *b = join(f, from, to);
        IngestAnswer a = {};
        assert_int_equal(ingest_batch(f->store, NULL, cn, b, strlen(b), 100, 42, &a), 0);
        if (a.status != status || (body && strcmp(a.body, body) != 0))
                fail_msg("lines %u..%u: got %u %s, want %u %s", from, to, a.status, a.body, status,
                         body ? body : "");
        ingest_answer_done(&a);
        free(b);
}

static uint64_t stored(Fixture *f)
{
        uint64_t n;
        assert_int_equal(store_record_count(f->store, &n), 0);
        return n;
}

/* store-pg.c's SCHEMA_LOCK_KEY: the advisory lock a new session takes to make the schema. */
#define SCHEMA_LOCK_KEY_TEXT "120265215275625"

#define ACK(n) "{\"acked\":" #n ",\"log\":\"" LOG_ID "\"}"

static void test_store_resend_gap(void **state)
{
        Fixture *f = *state;
        post(f, "T-1", 1, 4, 200, ACK(4));
        post(f, "T-1", 1, 4, 200, ACK(4));
        assert_int_equal(stored(f), 4);
        post(f, "T-1", 6, 8, 409, ACK(4));
        post(f, "T-1", 3, 12, 200, ACK(12)); /* overlap, crosses the key rotation */
        assert_int_equal(stored(f), 12);
        post(f, "T-1", 12, 12, 200, ACK(12));
}

#define MONTH_USEC (31LL * 24 * 3600 * 1000000)
#define T_2026_03  1772323200000000LL /* 2026-03-01T00:00:00Z */

/* The single value of a one-row, one-column query (PostgreSQL), malloc'd. */
static char *pg_value(const char *sql)
{
        PGresult *r = pg_sql(store_url(), sql, NULL);
        assert_int_equal(PQntuples(r), 1);
        char *v = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        return v;
}

/* A second connection inside a transaction that has run sql (a lock or rows it holds until COMMIT). */
static PGconn *pg_holding(const char *sql)
{
        PGconn *other = PQconnectdb(store_url());
        assert_int_equal(PQstatus(other), CONNECTION_OK);
        PQclear(PQexec(other, "BEGIN"));
        PGresult *r = PQexec(other, sql);
        assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
        PQclear(r);
        return other;
}

/* sql's single value (PostgreSQL) is want. */
static void assert_pg_value(const char *sql, const char *want)
{
        char *v = pg_value(sql);
        assert_string_equal(v, want);
        free(v);
}

/* Wait (10 s at most) until sql's one value is want: another connection reached a lock wait. */
static void pg_wait_for(const char *sql, const char *want)
{
        for (int i = 0;; i++) {
                char *v = pg_value(sql);
                bool there = streq(v, want);
                free(v);
                if (there)
                        return;
                assert_true(i < 1000);
                usleep(10 * 1000);
        }
}

/*
 * Exactly once across months: a batch sent again months later (its records filed in a partition made
 * since, the resend answered at another month's time) is acknowledged and stored once; on PostgreSQL a
 * second row of the same record is refused by the key (log, seq, ts) too.
 */
static void test_resend_in_later_month_stored_once(void **state)
{
        Fixture *f = *state;
        for (unsigned i = 1; i <= N_LINES; i++)
                f->ts[i] = T_2026_03 + (int64_t)i * 1000000 + (i > 8 ? 40 * 24 * 3600 * 1000000LL : 0);
        make_log(f, "T-1", NULL, 0);
        post(f, "T-1", 1, 10, 200, ACK(10)); /* 1..8 in March, 9..10 in April */
        assert_int_equal(store_maintain(f->store, T_2026_03 + 3 * MONTH_USEC), 0);
        char *b = join(f, 1, 12);
        IngestAnswer a = {};
        assert_int_equal(
                ingest_batch(f->store, NULL, "T-1", b, strlen(b), 100, T_2026_03 + 5 * MONTH_USEC, &a), 0);
        assert_int_equal(a.status, 200);
        assert_string_equal(a.body, ACK(12));
        ingest_answer_done(&a);
        free(b);
        assert_int_equal(stored(f), 12);
        if (!store_url())
                return;
        /* The rows sit in the partitions of their months, made ahead or moved out of the default one. */
        assert_pg_value("SELECT string_agg(tableoid::regclass || ':' || n, ' ' ORDER BY "
                        "tableoid::regclass::text) FROM"
                        " (SELECT tableoid, count(*) AS n FROM records GROUP BY 1) x",
                        "records_202603:8 records_202604:4");
        assert_pg_value("SELECT count(*) FROM records_default", "0");
        char *err = NULL;
        assert_null(pg_sql(store_url(),
                           "INSERT INTO records (log, seq, ts, line) SELECT log, seq, ts, line"
                           " FROM records WHERE seq = 5",
                           &err));
        assert_non_null(strstr(err, "duplicate key"));
        free(err);
}

/* A record written after the terminal's clock went back is filed at the time of the record before it. */
static void test_clock_back_files_with_previous(void **state)
{
        Fixture *f = *state;
        StoreLog l;
        for (unsigned i = 1; i <= N_LINES; i++)
                f->ts[i] = T_2026_03 + (int64_t)i * 1000000;
        f->ts[6] = T_2026_03 + 2 * MONTH_USEC; /* May */
        f->ts[7] = T_2026_03 + MONTH_USEC;     /* April: the clock went back */
        make_log(f, "T-1", NULL, 0);
        post(f, "T-1", 1, 6, 200, ACK(6));
        post(f, "T-1", 7, 12, 200, ACK(12));
        assert_int_equal(store_log_get(f->store, LOG_ID, &l), 0);
        assert_int_equal(l.last_ts, f->ts[6]);
        uint64_t seq = 99;
        if (!store_url()) {
                assert_int_equal(store_log_seq_filed_before(f->store, LOG_ID, f->ts[6], &seq), -EOPNOTSUPP);
                return;
        }
        /* Where the audit starts reading for a window from May: after seq 5, the clock-back record included.
         */
        assert_int_equal(store_log_seq_filed_before(f->store, LOG_ID, f->ts[6], &seq), 0);
        assert_int_equal(seq, 5);
        assert_int_equal(store_log_seq_filed_before(f->store, LOG_ID, T_2026_03, &seq), 0);
        assert_int_equal(seq, 0);
        assert_int_equal(store_log_seq_filed_before(f->store, LOG_ID, INT64_MAX, &seq), 0);
        assert_int_equal(seq, 12);
        assert_pg_value(
                "SELECT string_agg(seq || '@' || to_char(to_timestamp(ts / 1000000) AT TIME ZONE 'UTC',"
                " 'MM'), ' ' ORDER BY seq) FROM records WHERE seq >= 5",
                "5@03 6@05 7@05 8@05 9@05 10@05 11@05 12@05");
}

/*
 * A store made before records had a filing time (SQLite: no ts column; PostgreSQL: one unpartitioned
 * table): opened again, its records are kept and filed, and the log goes on where it was.
 */
static void test_store_from_before_partitions(void **state)
{
        Fixture *f = *state;
        char path[] = "/tmp/mamori-before-XXXXXX";
        const char *url = store_url();
        Store *s = NULL;
        StoreLog l;

        if (!url) {
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                close(fd);
                char *pem = identity_pem(f);
                assert_int_equal(store_open(path, &s), 0);
                assert_int_equal(store_terminal_add(s, 0, "T-1", "chuo", pem), 0);
                free(pem);
                store_close(f->store);
                f->store = s;
        }
        post(f, "T-1", 1, 4, 200, ACK(4));
        store_close(f->store);
        f->store = NULL;
        if (url)
                PQclear(pg_sql(url,
                               "CREATE TABLE old AS SELECT log, seq,"
                               " encode(sha256(convert_to(line, 'UTF8')), 'hex') AS hash, line FROM records;"
                               " DROP TABLE records; ALTER TABLE old RENAME TO records;"
                               " ALTER TABLE records ADD PRIMARY KEY (log, seq);"
                               " ALTER TABLE logs DROP COLUMN last_ts; DROP TABLE mamori_schema",
                               NULL));
        else {
                sqlite3 *db = NULL;
                assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
                assert_int_equal(
                        sqlite3_exec(db,
                                     "ALTER TABLE records DROP COLUMN ts;"
                                     " ALTER TABLE records ADD COLUMN hash TEXT NOT NULL DEFAULT '';"
                                     " ALTER TABLE logs DROP COLUMN last_ts",
                                     NULL, NULL, NULL),
                        SQLITE_OK);
                sqlite3_close(db);
        }
        assert_int_equal(store_open(url ?: path, &f->store), 0);
        assert_int_equal(stored(f), 4);
        post(f, "T-1", 1, 12, 200, ACK(12));
        assert_int_equal(stored(f), 12);
        assert_int_equal(store_log_get(f->store, LOG_ID, &l), 0);
        assert_int_equal(l.last_ts, 1012);
        if (url) {
                assert_pg_value("SELECT string_agg(DISTINCT tableoid::regclass::text, ' ') FROM records",
                                "records_197001");
        } else
                unlink(path);
}

/* The register history refuses UPDATE, DELETE and TRUNCATE on PostgreSQL as on SQLite (test_register). */
static void test_history_append_only(void **state)
{
        Fixture *f = *state;
        char *err = NULL;
        const char *refused[] = {"UPDATE history SET reason = 'x'", "DELETE FROM history",
                                 "TRUNCATE history"};
        if (!store_url()) {
                /* SQLite: a database file, the same statements (it has no TRUNCATE) through sqlite3. */
                char path[] = "/tmp/mamori-history-XXXXXX";
                int fd = mkstemp(path);
                Store *s = NULL;
                sqlite3 *db = NULL;
                char *pem = identity_pem(f);
                assert_true(fd >= 0);
                close(fd);
                assert_int_equal(store_open(path, &s), 0);
                assert_int_equal(store_terminal_add(s, 0, "T-1", "chuo", pem), 0);
                free(pem);
                store_close(s);
                assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
                for (size_t i = 0; i < 2; i++) {
                        assert_int_not_equal(sqlite3_exec(db, refused[i], NULL, NULL, &err), SQLITE_OK);
                        if (!err || !strstr(err, "append-only"))
                                fail_msg("%s: %s", refused[i], err ? err : "no error");
                        sqlite3_free(err);
                }
                sqlite3_close(db);
                unlink(path);
                return;
        }
        assert_int_equal(store_operator_add(f->store, 0, "OP1", "Op One", "chuo"), 0);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                assert_null(pg_sql(store_url(), refused[i], &err));
                if (!strstr(err, "append-only"))
                        fail_msg("%s: %s", refused[i], err);
                free(err);
        }
        assert_pg_value("SELECT count(*) FROM history", "2"); /* terminal T-1 add, operator OP1 add */
}

static void test_first_batch_must_start_at_one(void **state)
{
        Fixture *f = *state;
        post(f, "T-1", 2, 5, 409, ACK(0));
        assert_int_equal(stored(f), 0);
}

static void test_fork(void **state)
{
        Fixture *f = *state;
        post(f, "T-1", 1, 8, 200, ACK(8));
        make_log(f, "T-1", "other", 7);
        post(f, "T-1", 5, 10, 409, NULL);
        post(f, "T-1", 9, 10, 409, NULL);
        assert_int_equal(stored(f), 8);
}

static void test_bad_signature_stores_nothing(void **state)
{
        Fixture *f = *state;
        post(f, "T-1", 1, 3, 200, ACK(3));
        /* Flip one base64 digit of line 7's signature (first sig char: always a full 6-bit digit). */
        char *sig = strstr(f->lines[7], "\"sig\":\"") + 7;
        *sig = *sig == 'A' ? 'B' : 'A';
        post(f, "T-1", 4, 9, 422, "{\"error\":\"bad-signature\",\"seq\":7}");
        assert_int_equal(stored(f), 3);
}

static void test_wrong_identity_and_term(void **state)
{
        Fixture *f = *state;
        char *pem = NULL;
        post(f, "T-2", 1, 2, 403, "{\"error\":\"unknown-terminal\"}");
        /* Another terminal, registered with the same identity key, posting T-1's records. */
        assert_int_equal(store_terminal_identity(f->store, "T-1", &pem), 0);
        assert_int_equal(store_terminal_add(f->store, 0, "T-2", "chuo", pem), 0);
        free(pem);
        post(f, "T-2", 1, 2, 422, "{\"error\":\"term\",\"line\":1}");
        assert_int_equal(stored(f), 0);
}

static void test_malformed(void **state)
{
        Fixture *f = *state;
        static const char *const bodies[] = {"", "\n", "{}\n", "null\n", "{\"v\":1}\n", "\xff\xfe\n"};
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
                IngestAnswer a = {};
                assert_int_equal(
                        ingest_batch(f->store, NULL, "T-1", bodies[i], strlen(bodies[i]), 100, 1, &a), 0);
                assert_int_equal(a.status, 422);
                ingest_answer_done(&a);
        }
        /* Order inside a batch: 1,2 then 4. */
        char *b = join(f, 1, 2), *c;
        assert_true(asprintf(&c, "%s%s", b, f->lines[4]) > 0);
        IngestAnswer a = {};
        assert_int_equal(ingest_batch(f->store, NULL, "T-1", c, strlen(c), 100, 1, &a), 0);
        assert_int_equal(a.status, 422);
        ingest_answer_done(&a);
        free(b);
        free(c);
        /* Too many records. */
        b = join(f, 1, 12);
        assert_int_equal(ingest_batch(f->store, NULL, "T-1", b, strlen(b), 5, 1, &a), 0);
        assert_int_equal(a.status, 413);
        ingest_answer_done(&a);
        free(b);
        assert_int_equal(stored(f), 0);
}

/* The stored per-log state the next batch resumes from. */
static StoreLog log_state(Fixture *f)
{
        StoreLog l;
        assert_int_equal(store_log_get(f->store, LOG_ID, &l), 0);
        return l;
}

static void assert_same_log_state(const StoreLog *a, const StoreLog *b)
{
        assert_string_equal(a->log, b->log);
        assert_string_equal(a->term, b->term);
        assert_int_equal(a->last_seq, b->last_seq);
        assert_string_equal(a->last_hash, b->last_hash);
        assert_memory_equal(a->key, b->key, sizeof(a->key));
        assert_int_equal(a->epochs, b->epochs);
}

/* Post 1..split and split+1..N_LINES into a fresh store (split 0 or N_LINES: one batch); the answer
 * of the batch that holds bad (0: the last batch) goes to ret_status/ret_body. */
static void post_split(Fixture *f, unsigned split, unsigned bad, unsigned *ret_status, char **ret_body)
{
        unsigned from[2] = {1, split + 1}, to[2] = {split, N_LINES};

        store_close(f->store);
        f->store = new_store(f);
        for (int p = 0; p < 2; p++) {
                IngestAnswer a = {};
                char *b;
                if (from[p] > to[p])
                        continue;
                b = join(f, from[p], to[p]);
                assert_int_equal(ingest_batch(f->store, NULL, "T-1", b, strlen(b), 100, 42, &a), 0);
                free(b);
                if (bad ? bad >= from[p] && bad <= to[p] : to[p] == N_LINES) {
                        *ret_status = a.status;
                        *ret_body = TAKE_PTR(a.body);
                } else
                        assert_int_equal(a.status, 200);
                ingest_answer_done(&a);
        }
}

/* The log posted in two batches, split anywhere (the key.rotate of seq 6 ending the first batch,
 * starting the second …): the stored state is the one a single batch leaves. */
static void test_resume_split_anywhere(void **state)
{
        Fixture *f = *state;
        StoreLog one, split;

        post(f, "T-1", 1, N_LINES, 200, ACK(12));
        one = log_state(f);
        assert_int_equal(one.epochs, 2);
        for (unsigned k = 0; k <= N_LINES; k++) {
                unsigned status = 0;
                char *body = NULL;
                post_split(f, k, 0, &status, &body);
                assert_int_equal(status, 200);
                assert_string_equal(body, ACK(12));
                free(body);
                split = log_state(f);
                assert_same_log_state(&split, &one);
                assert_int_equal(stored(f), N_LINES);
        }
        /* Stopping right at the rotation stores the new epoch key. */
        store_close(f->store);
        f->store = new_store(f);
        post(f, "T-1", 1, 6, 200, ACK(6));
        split = log_state(f);
        assert_int_equal(split.epochs, 2);
        assert_memory_equal(split.key, one.key, sizeof(one.key));
}

/* A bad signature after the split: the same 422 however the log was cut, nothing of that batch
 * stored. A wrong prev after the split: 422 chain, unless it is the first record after what is
 * stored (then our chain and the sender's part: a fork, 409). */
static void test_resume_break_after_split(void **state)
{
        Fixture *f = *state;
        char *sig = strstr(f->lines[9], "\"sig\":\"") + 7;

        *sig = *sig == 'A' ? 'B' : 'A';
        for (unsigned k = 0; k < 9; k++) {
                unsigned status = 0;
                char *body = NULL;
                post_split(f, k, 9, &status, &body);
                assert_int_equal(status, 422);
                assert_string_equal(body, "{\"error\":\"bad-signature\",\"seq\":9}");
                free(body);
                assert_int_equal(stored(f), k);
        }

        f->bad_prev_at = 8;
        make_log(f, "T-1", NULL, 0);
        for (unsigned k = 0; k < 8; k++) {
                unsigned status = 0;
                char *body = NULL;
                post_split(f, k, 8, &status, &body);
                if (k == 7) {
                        assert_int_equal(status, 409);
                        assert_string_equal(body, "{\"acked\":7,\"error\":\"fork\",\"log\":\"" LOG_ID
                                                  "\",\"seq\":8}");
                } else {
                        assert_int_equal(status, 422);
                        assert_string_equal(body, "{\"error\":\"chain\",\"seq\":8}");
                }
                free(body);
                assert_int_equal(stored(f), k);
        }
}

/* Two connections to one empty database with T-1 registered (SQLite: a file, so both see it). */
static void open_pair(Fixture *f, char path[static 64], Store **ret_a, Store **ret_b)
{
        const char *url = store_url();
        char *p = identity_pem(f);

        if (url)
                pg_reset(url);
        else {
                strcpy(path, "/tmp/mamori-ingest-XXXXXX");
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                close(fd);
                url = path;
        }
        assert_int_equal(store_open(url, ret_a), 0);
        assert_int_equal(store_terminal_add(*ret_a, 0, "T-1", "chuo", p), 0);
        assert_int_equal(store_open(url, ret_b), 0);
        free(p);
}

/* A SQLite store file and its WAL and shared-memory files. */
static void unlink_sqlite_store(const char *path)
{
        char side[80];

        unlink(path);
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
}

static void close_pair(char path[static 64], Store *a, Store *b)
{
        store_close(a);
        store_close(b);
        if (!store_url())
                unlink_sqlite_store(path);
}

typedef struct Racer {
        Store *store;
        char *body;
        pthread_barrier_t *go;
        IngestAnswer a;
        int r;
        volatile bool done;
} Racer;

static void *race(void *p)
{
        Racer *x = p;
        if (x->go)
                pthread_barrier_wait(x->go);
        x->r = ingest_batch(x->store, NULL, "T-1", x->body, strlen(x->body), 100, 42, &x->a);
        x->done = true;
        return NULL;
}

static int count_alert(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                       uint64_t seq, const char *detail, uint64_t count, int64_t last_seen, void *userdata)
{
        (void)id, (void)ts, (void)kind, (void)term, (void)log, (void)seq, (void)detail, (void)count,
                (void)last_seen;
        (*(unsigned *)userdata)++;
        return 0;
}

/*
 * Two collectors (two connections) storing overlapping batches of one log at the same moment, as
 * when an uploader timed out at one and resent to the other: every record stored once, both
 * answered 200, no false fork, no gap, no alert.
 */
static void test_two_writers_race_one_log(void **state)
{
        Fixture *f = *state;

        for (int round = 0; round < 12; round++) {
                char path[64] = "";
                Store *a, *b;
                pthread_barrier_t go;
                pthread_t ta, tb;
                unsigned from_b = round % 3 == 0 ? 1 : round % 3 == 1 ? 5 : 9; /* a: 1..8, b: from_b..12 */
                Racer ra = {.body = join(f, 1, 8), .go = &go}, rb = {.body = join(f, 1, 12), .go = &go};
                uint64_t n = 0;
                unsigned alerts = 0;
                StoreLog l;

                open_pair(f, path, &a, &b);
                ra.store = a;
                rb.store = b;
                free(rb.body);
                rb.body = join(f, from_b, 12);
                assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
                assert_int_equal(pthread_create(&ta, NULL, race, &ra), 0);
                assert_int_equal(pthread_create(&tb, NULL, race, &rb), 0);
                pthread_join(ta, NULL);
                pthread_join(tb, NULL);
                pthread_barrier_destroy(&go);
                assert_int_equal(ra.r, 0);
                assert_int_equal(rb.r, 0);
                assert_int_equal(ra.a.status, 200);
                /* b starting after what a stores is a gap only when a has not stored yet. */
                if (from_b == 1 || rb.a.status == 200)
                        assert_string_equal(rb.a.body, ACK(12));
                else {
                        assert_int_equal(rb.a.status, 409);
                        assert_string_equal(rb.a.body, ACK(0));
                }
                assert_true(streq(ra.a.body, ACK(8)) || streq(ra.a.body, ACK(12)));
                assert_int_equal(store_record_count(a, &n), 0);
                assert_int_equal(n, rb.a.status == 200 ? 12 : 8);
                assert_int_equal(store_log_get(a, LOG_ID, &l), 0);
                assert_int_equal(l.last_seq, n);
                assert_int_equal(store_alerts_foreach(a, count_alert, &alerts), 0);
                assert_int_equal(alerts, 0);
                ingest_answer_done(&ra.a);
                ingest_answer_done(&rb.a);
                free(ra.body);
                free(rb.body);
                close_pair(path, a, b);
        }
}

/* A writer of the log waits while another transaction holds it, then sees what that one left. */
static void test_log_lock_makes_writers_wait(void **state)
{
        Fixture *f = *state;
        char path[64] = "";
        Store *a, *b;
        pthread_t tb;
        StoreLog l;
        Racer rb = {.body = join(f, 1, 12)};

        open_pair(f, path, &a, &b);
        rb.store = b;
        assert_int_equal(store_begin(a), 0);
        assert_int_equal(store_log_get_locked(a, LOG_ID, &l), -ENOENT);
        assert_int_equal(pthread_create(&tb, NULL, race, &rb), 0);
        usleep(300 * 1000);
        assert_false(rb.done);
        store_rollback(a);
        pthread_join(tb, NULL);
        assert_int_equal(rb.r, 0);
        assert_int_equal(rb.a.status, 200);
        assert_string_equal(rb.a.body, ACK(12));
        /* Outside a transaction there is nothing to hold. */
        assert_int_equal(store_log_get_locked(a, LOG_ID, &l), -EINVAL);
        ingest_answer_done(&rb.a);
        free(rb.body);
        close_pair(path, a, b);
}

/* ---- Verification on several threads (the collector's verify pool and workers) ---- */

static int find_alert(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                      uint64_t seq, const char *detail, uint64_t count, int64_t last_seen, void *userdata)
{
        if (streq(kind, "bad-signature") && seq == 10)
                (*(unsigned *)userdata)++;
        return 0;
}

/*
 * One bad signature in the middle of a batch whose signatures are checked on several threads (seq 10
 * of 1..12: the third thread's share): 422 bad-signature with its seq, its alert, nothing of the batch
 * stored — with the collector's pool and with threads that each take a fixed third.
 */
static void test_parallel_bad_signature_in_middle(void **state)
{
        Fixture *f = *state;
        VerifyPool *pool = NULL;
        char *sig = strstr(f->lines[10], "\"sig\":\"") + 7;

        *sig = *sig == 'A' ? 'B' : 'A';
        assert_int_equal(verify_pool_new(3, &pool), 0);
        for (int round = 0; round < 20; round++) {
                IngestOptions o = {.parallel = round % 2 ? verify_pool_parallel(pool)
                                                         : (LogParallel){run_thirds, NULL}};
                char *b = join(f, 1, N_LINES);
                IngestAnswer a = {};
                unsigned alerts = 0;
                StoreLog l;

                assert_int_equal(ingest_batch(f->store, &o, "T-1", b, strlen(b), 100, 42, &a), 0);
                assert_int_equal(a.status, 422);
                assert_string_equal(a.body, "{\"error\":\"bad-signature\",\"seq\":10}");
                ingest_answer_done(&a);
                assert_int_equal(stored(f), 0);
                assert_int_equal(store_log_get(f->store, LOG_ID, &l), -ENOENT);
                assert_int_equal(store_alerts_foreach(f->store, find_alert, &alerts), 0);
                assert_int_equal(alerts, 1); /* folded: one row however often */
                /* The good part alone is stored, verified the same way. */
                free(b);
                b = join(f, 1, 9);
                assert_int_equal(ingest_batch(f->store, &o, "T-1", b, strlen(b), 100, 42, &a), 0);
                assert_int_equal(a.status, 200);
                assert_string_equal(a.body, ACK(9));
                ingest_answer_done(&a);
                assert_int_equal(stored(f), 9);
                free(b);
                store_close(f->store);
                f->store = new_store(f);
        }
        verify_pool_free(pool);
}

#define N_TERMINALS 8

typedef struct Terminal {
        Store *store; /* this thread's connection, as each collector worker has its own */
        const IngestOptions *o;
        char id[16], log[ID128_STRING_MAX];
        char *lines[N_LINES + 1];
        pthread_barrier_t *go;
        unsigned failures;
} Terminal;

/* Overlapping batches, resent: every answer 200 with the highest seq stored. */
static void *terminal_posts(void *p)
{
        static const unsigned batches[][3] = {{1, 6, 6}, {4, 9, 9}, {1, 12, 12}, {10, 12, 12}, {12, 12, 12}};
        Terminal *t = p;

        pthread_barrier_wait(t->go);
        for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
                IngestAnswer a = {};
                char want[128], *b;
                size_t n = 0;

                for (unsigned i = batches[k][0]; i <= batches[k][1]; i++)
                        n += strlen(t->lines[i]);
                b = calloc(1, n + 1);
                for (unsigned i = batches[k][0]; i <= batches[k][1]; i++)
                        strcat(b, t->lines[i]);
                snprintf(want, sizeof(want), "{\"acked\":%u,\"log\":\"%s\"}", batches[k][2], t->log);
                if (ingest_batch(t->store, t->o, t->id, b, n, 100, 42, &a) < 0 || a.status != 200 ||
                    !streq(a.body, want))
                        t->failures++;
                ingest_answer_done(&a);
                free(b);
        }
        return NULL;
}

/*
 * Terminals posting at once, each on its own store connection, sharing one verify pool (and, for
 * SQLite, the write lock the collector's workers share): every record of every log stored exactly
 * once, every answer right, no alert.
 */
static void test_concurrent_terminals_stored_once(void **state)
{
        Fixture *f = *state;
        const char *url = store_url();
        char path[64] = "", *pem = identity_pem(f);
        pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
        VerifyPool *pool = NULL;
        Terminal t[N_TERMINALS] = {};
        pthread_t th[N_TERMINALS];
        pthread_barrier_t go;
        Store *admin = NULL;
        unsigned alerts = 0;
        uint64_t n = 0;

        if (url)
                pg_reset(url);
        else {
                strcpy(path, "/tmp/mamori-ingest-XXXXXX");
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                close(fd);
                url = path;
        }
        assert_int_equal(store_open(url, &admin), 0);
        assert_int_equal(verify_pool_new(2, &pool), 0);
        IngestOptions o = {.parallel = verify_pool_parallel(pool),
                           .write_lock = streq(store_backend_name(admin), "sqlite") ? &write_lock : NULL};
        assert_int_equal(pthread_barrier_init(&go, NULL, N_TERMINALS), 0);
        for (int i = 0; i < N_TERMINALS; i++) {
                snprintf(t[i].id, sizeof(t[i].id), "T-%d", 100 + i);
                snprintf(t[i].log, sizeof(t[i].log), "%032x", 0xa0 + i);
                assert_int_equal(store_terminal_add(admin, 0, t[i].id, "chuo", pem), 0);
                make_lines(f, t[i].id, t[i].log, NULL, 0, t[i].lines);
                assert_int_equal(store_open(url, &t[i].store), 0);
                t[i].o = &o;
                t[i].go = &go;
        }
        for (int i = 0; i < N_TERMINALS; i++)
                assert_int_equal(pthread_create(&th[i], NULL, terminal_posts, &t[i]), 0);
        for (int i = 0; i < N_TERMINALS; i++)
                pthread_join(th[i], NULL);

        assert_int_equal(store_record_count(admin, &n), 0);
        assert_int_equal(n, (uint64_t)N_TERMINALS * N_LINES);
        for (int i = 0; i < N_TERMINALS; i++) {
                StoreLog l;
                assert_int_equal(t[i].failures, 0);
                assert_int_equal(store_log_get(admin, t[i].log, &l), 0);
                assert_int_equal(l.last_seq, N_LINES);
                assert_string_equal(l.term, t[i].id);
                for (unsigned seq = 1; seq <= N_LINES; seq++) {
                        char have[SHA256_HEX_MAX], want[SHA256_HEX_MAX];
                        assert_int_equal(store_record_hash(admin, t[i].log, seq, have), 0);
                        assert_int_equal(record_line_hash(t[i].lines[seq], strlen(t[i].lines[seq]), want),
                                         0);
                        assert_string_equal(have, want);
                        free(t[i].lines[seq]);
                }
                store_close(t[i].store);
        }
        assert_int_equal(store_alerts_foreach(admin, count_alert, &alerts), 0);
        assert_int_equal(alerts, 0);
        pthread_barrier_destroy(&go);
        verify_pool_free(pool);
        free(pem);
        close_pair(path, admin, NULL);
}

typedef struct AlertWriter {
        Store *store;
        int r;
        volatile bool done;
} AlertWriter;

static void *write_alert(void *p)
{
        AlertWriter *w = p;
        w->r = store_begin(w->store);
        if (w->r >= 0)
                w->r = store_alert_add(w->store, 2, "bad-signature", "T-2", NULL, 0, "second");
        if (w->r >= 0)
                w->r = store_commit(w->store);
        w->done = true;
        return NULL;
}

static int collect_alert_id(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                            uint64_t seq, const char *detail, uint64_t count, int64_t last_seen,
                            void *userdata)
{
        int64_t *ids = userdata;
        (void)ts, (void)kind, (void)term, (void)log, (void)seq, (void)count, (void)last_seen;
        ids[streq(detail, "first") ? 0 : 1] = id;
        return 0;
}

/*
 * Alert ids become visible in id order (mamori-admin watch follows them): while one collector's
 * transaction holds an uncommitted alert, another collector's alert waits for it, and gets the
 * higher id. Outside a transaction an alert is refused.
 */
static void test_alerts_visible_in_id_order(void **state)
{
        char path[64] = "";
        Store *a, *b;
        pthread_t tb;
        AlertWriter wb = {};
        int64_t ids[2] = {-1, -1};

        open_pair(*state, path, &a, &b);
        wb.store = b;
        assert_int_equal(store_alert_add(a, 1, "fork", "T-1", NULL, 0, "outside"), -EINVAL);
        assert_int_equal(store_begin(a), 0);
        assert_int_equal(store_alert_add(a, 1, "fork", "T-1", NULL, 0, "first"), 0);
        assert_int_equal(pthread_create(&tb, NULL, write_alert, &wb), 0);
        usleep(300 * 1000);
        assert_false(wb.done);
        assert_int_equal(store_commit(a), 0);
        pthread_join(tb, NULL);
        assert_int_equal(wb.r, 0);
        assert_int_equal(store_alerts_foreach(a, collect_alert_id, ids), 0);
        assert_true(ids[0] > 0);
        assert_true(ids[1] > ids[0]);
        close_pair(path, a, b);
}

typedef struct Opener {
        const char *url;
        pthread_barrier_t *go;
        int r;
} Opener;

static void *open_store(void *p)
{
        Opener *o = p;
        Store *s = NULL;

        pthread_barrier_wait(o->go);
        o->r = store_open(o->url, &s);
        store_close(s);
        return NULL;
}

/*
 * A collector's workers (one connection each) and a second collector opening one new database at once,
 * each making the schema and this month's partitions: every open succeeds. SQLite: one new file.
 */
static void test_many_open_one_new_store_at_once(void **state)
{
        enum { N = 8 };
        const char *url = store_url();
        char path[64] = "/tmp/mamori-open-XXXXXX";
        pthread_barrier_t go;
        pthread_t t[N];
        Opener o[N];

        (void)state;
        if (url)
                pg_reset(url);
        else {
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                close(fd);
                unlink(path);
                url = path;
        }
        for (int round = 0; round < 3; round++) {
                if (store_url())
                        pg_reset(url);
                assert_int_equal(pthread_barrier_init(&go, NULL, N), 0);
                for (int i = 0; i < N; i++) {
                        o[i] = (Opener){.url = url, .go = &go};
                        assert_int_equal(pthread_create(&t[i], NULL, open_store, &o[i]), 0);
                }
                for (int i = 0; i < N; i++) {
                        pthread_join(t[i], NULL);
                        assert_int_equal(o[i].r, 0);
                }
                pthread_barrier_destroy(&go);
        }
        close_pair(path, NULL, NULL); /* the SQLite file and its WAL */
}

typedef struct Maintainer {
        Store *store;
        int r;
        volatile bool done;
} Maintainer;

static void *maintain_store(void *p)
{
        Maintainer *m = p;
        m->r = store_maintain(m->store, T_2026_03);
        m->done = true;
        return NULL;
}

/* One lock order: other holds a lock m's maintainer needs; the maintainer starts and waits for it (until
 * waiting_sql's value is 1); then other takes then_sql's lock (within 10 s, want its status), which must not
 * wait for the maintainer, and commits; the maintainer then finishes. */
static void maintainer_waits_while(Maintainer *m, PGconn *other, const char *waiting_sql,
                                   const char *then_sql, ExecStatusType want)
{
        pthread_t t;
        PGresult *r;

        assert_int_equal(pthread_create(&t, NULL, maintain_store, m), 0);
        pg_wait_for(waiting_sql, "1");
        r = PQexec(other, then_sql);
        if (PQresultStatus(r) != want)
                fail_msg("%s, taken while the maintainer waits: %s", then_sql, PQerrorMessage(other));
        PQclear(r);
        assert_false(m->done);
        PQclear(PQexec(other, "COMMIT"));
        PQfinish(other);
        pthread_join(t, NULL);
}

/* A cursor on log after after_seq gives exactly seq after_seq+1..last, in order, each with its line and
 * (want_ts not NULL) its filing time want_ts[seq]. */
static void assert_cursor_reads(Store *s, const char *log, uint64_t after_seq, uint64_t last,
                                const int64_t *want_ts)
{
        StoreCursor *c = NULL;
        const char *line;
        uint64_t seq, expect = after_seq + 1;
        size_t len;
        int r;

        assert_int_equal(store_cursor_open(s, log, after_seq, &c), 0);
        while ((r = store_cursor_next(c, &seq, &line, &len)) > 0) {
                assert_int_equal(seq, expect);
                char want[32];
                snprintf(want, sizeof(want), "r%" PRIu64, seq);
                assert_int_equal(len, strlen(want));
                assert_memory_equal(line, want, len);
                if (want_ts)
                        assert_int_equal(store_cursor_ts(c), want_ts[seq]);
                /* Another query on the same connection between two rows (the audit's seek does). */
                if (seq % 300 == 0) {
                        uint64_t first, l;
                        assert_int_equal(store_log_seq_range(s, log, &first, &l), 0);
                }
                expect++;
        }
        assert_int_equal(r, 0);
        assert_int_equal(expect, last + 1);
        store_cursor_free(c);
}

/*
 * A cursor gives every record of a log once, in seq order, across pages and months: a log silent for two
 * months between two pages, a log whose filing time went back (a row stored against the rule: PostgreSQL
 * reads a page only in a range of filing times after the first), and a start in the middle.
 */
static void test_cursor_reads_every_record(void **state)
{
        Fixture *f = *state;
        const uint64_t n = 1500;
        StoreRecord *v = calloc(n + 1, sizeof(StoreRecord));
        int64_t *ts = calloc(n + 1, sizeof(int64_t));
        char(*lines)[32] = calloc(n + 1, sizeof(*lines));
        const char *logs[] = {"aa000000000000000000000000000001", "aa000000000000000000000000000002"};

        for (unsigned k = 0; k < ELEMENTSOF(logs); k++) {
                for (uint64_t seq = 1; seq <= n; seq++) {
                        /* A record an hour; after seq 700 two months of silence. */
                        ts[seq] =
                                T_2026_03 + (int64_t)seq * 3600 * 1000000 + (seq > 700 ? 2 * MONTH_USEC : 0);
                        if (k == 1 && (seq == 513 || seq == 1000 || seq == n))
                                ts[seq] = T_2026_03 - MONTH_USEC; /* filed against the rule: back a month */
                        snprintf(lines[seq], sizeof(lines[seq]), "r%" PRIu64, seq);
                        v[seq - 1] = (StoreRecord){
                                .seq = seq, .ts = ts[seq], .line = lines[seq], .len = strlen(lines[seq])};
                }
                assert_int_equal(store_begin(f->store), 0);
                assert_int_equal(store_records_put(f->store, logs[k], v, n), 0);
                assert_int_equal(store_commit(f->store), 0);
                assert_int_equal(store_maintain(f->store, T_2026_03 + 4 * MONTH_USEC), 0);
                assert_cursor_reads(f->store, logs[k], 0, n, ts);
                assert_cursor_reads(f->store, logs[k], 600, n, ts);
                assert_cursor_reads(f->store, logs[k], n - 1, n, ts);
                assert_cursor_reads(f->store, logs[k], n, n, NULL);
        }
        free(v);
        free(ts);
        free(lines);
}

/*
 * A stored line comes back byte for byte: backslashes, tabs, CR and LF (which COPY's text form would
 * have to escape), multibyte UTF-8 and a line of the longest length a record may have.
 */
static void test_lines_stored_byte_for_byte(void **state)
{
        Fixture *f = *state;
        const char *log = "aa000000000000000000000000000003";
        static const char *const odd[] = {
                "{\"a\":\"x\\\\y\\\"z\"}", "tab\there", "cr\rlf\nend", "\\", "東京都千代田区 \u2028", "\\N",
        };
        StoreRecord v[ELEMENTSOF(odd) + 1];
        _cleanup_free_ char *longest = malloc(RECORD_LINE_MAX);

        assert_non_null(longest);
        for (size_t i = 0; i < RECORD_LINE_MAX; i++)
                longest[i] = "\\\t{}x"[i % 5];
        for (size_t i = 0; i < ELEMENTSOF(odd); i++)
                v[i] = (StoreRecord){.seq = i + 1, .ts = T_2026_03, .line = odd[i], .len = strlen(odd[i])};
        v[ELEMENTSOF(odd)] = (StoreRecord){
                .seq = ELEMENTSOF(odd) + 1, .ts = T_2026_03, .line = longest, .len = RECORD_LINE_MAX};
        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_records_put(f->store, log, v, ELEMENTSOF(v)), 0);
        assert_int_equal(store_commit(f->store), 0);
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_free_ char *line = NULL;
                size_t len = 0;
                assert_int_equal(store_record_line(f->store, log, v[i].seq, &line, &len), 0);
                assert_int_equal(len, v[i].len);
                assert_memory_equal(line, v[i].line, len);
        }
}

/*
 * A batch is stored whole or not at all, also when the store sends it in several statements (PostgreSQL:
 * a COPY per 250 rows): a row far into the batch that the store refuses (its seq already stored) fails
 * the call, and rolling back leaves none of the rows before it.
 */
static void test_batch_refused_late_stores_nothing(void **state)
{
        Fixture *f = *state;
        const char *log = "aa000000000000000000000000000004";
        const uint64_t n = 700, clash = 650;
        StoreRecord *v = calloc(n, sizeof(StoreRecord));
        char(*lines)[32] = calloc(n, sizeof(*lines));
        char hash[SHA256_HEX_MAX];

        assert_non_null(v);
        assert_non_null(lines);
        for (uint64_t i = 0; i < n; i++) {
                snprintf(lines[i], sizeof(lines[i]), "r%" PRIu64, i + 1);
                v[i] = (StoreRecord){
                        .seq = i + 1, .ts = T_2026_03, .line = lines[i], .len = strlen(lines[i])};
        }
        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_records_put(f->store, log, &v[clash - 1], 1), 0);
        assert_int_equal(store_commit(f->store), 0);

        assert_int_equal(store_begin(f->store), 0);
        assert_true(store_records_put(f->store, log, v, n) < 0);
        store_rollback(f->store);
        for (uint64_t seq = 1; seq <= n; seq++)
                assert_int_equal(store_record_hash(f->store, log, seq, hash), seq == clash ? 0 : -ENOENT);
        free(v);
        free(lines);
}

/*
 * Records of a month without a partition (a terminal's backlog, a clock far off) wait in the default
 * partition; making their month while another collector is still inserting more of them there waits
 * for that insert instead of failing ("would be violated" made store_open() fail: a collector could
 * not start while old records were being uploaded).
 */
static void test_partition_made_while_old_records_arrive(void **state)
{
        Fixture *f = *state;
        Maintainer m = {.store = f->store};
        pthread_t t;

        post(f, "T-1", 1, 4, 200, ACK(4)); /* 1970-01: no partition, filed in the default one */
        PGconn *other = pg_holding("INSERT INTO records (log, seq, ts, line) SELECT log, seq + 100, ts + 1,"
                                   " line FROM records WHERE seq = 4");
        assert_int_equal(pthread_create(&t, NULL, maintain_store, &m), 0);
        usleep(300 * 1000);
        assert_false(m.done); /* waits for the insert */
        PQclear(PQexec(other, "COMMIT"));
        pthread_join(t, NULL);
        PQfinish(other);
        assert_int_equal(m.r, 0);
        assert_pg_value("SELECT count(*) FROM records_197001", "5");
        assert_pg_value("SELECT count(*) FROM records_default", "0");
}

static int count_clock_ahead(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                             uint64_t seq, const char *detail, uint64_t count, int64_t last_seen,
                             void *userdata)
{
        uint64_t *seen = userdata;
        (void)id, (void)ts, (void)term, (void)log, (void)seq, (void)detail, (void)last_seen;
        if (streq(kind, "clock-ahead")) {
                seen[0]++;
                seen[1] = count;
        }
        return 0;
}

/*
 * Two collectors maintaining at once, both past their look for logs filed beyond the months made ahead
 * before either has alerted: one clock-ahead alert, raised once (count 1, not a second row or a count of
 * 2). The moment is forced: a third connection holds the alerts' lock (PostgreSQL) or the write lock
 * (SQLite) until both maintainers wait for it.
 */
static void test_clock_ahead_alerted_once_by_two(void **state)
{
        Fixture *f = *state;
        char path[64] = "";
        Maintainer ma = {}, mb = {};
        uint64_t seen[2] = {};
        IngestAnswer ans = {};
        PGconn *pg = NULL;
        sqlite3 *db = NULL;
        pthread_t ta, tb;
        Store *a, *b;

        for (unsigned i = 1; i <= N_LINES; i++)
                f->ts[i] = T_2026_03 + 20 * 365 * 24 * 3600 * 1000000LL + (int64_t)i;
        make_log(f, "T-1", NULL, 0);
        open_pair(f, path, &a, &b);
        char *body = join(f, 1, N_LINES);
        assert_int_equal(ingest_batch(a, NULL, "T-1", body, strlen(body), 100, T_2026_03, &ans), 0);
        assert_int_equal(ans.status, 200);
        ingest_answer_done(&ans);
        free(body);
        if (store_url()) {
                pg = PQconnectdb(store_url());
                assert_int_equal(PQstatus(pg), CONNECTION_OK);
                PQclear(PQexec(pg, "BEGIN"));
                PGresult *r = PQexec(pg, "SELECT pg_advisory_xact_lock(hashtextextended('#alerts', 0))");
                assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
                PQclear(r);
        } else {
                assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
                assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        }
        ma.store = a;
        mb.store = b;
        assert_int_equal(pthread_create(&ta, NULL, maintain_store, &ma), 0);
        assert_int_equal(pthread_create(&tb, NULL, maintain_store, &mb), 0);
        if (pg)
                /* Both maintainers wait for the alerts' lock, each past its partitions (one makes
                 * them, the other waits for it and finds them made) and its look. */
                pg_wait_for("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
                            " AND locktype = 'advisory' AND objsubid = 1"
                            " AND (classid::bigint << 32 | objid::bigint) = hashtextextended('#alerts', 0)",
                            "2");
        else
                usleep(500 * 1000); /* both wait in BEGIN IMMEDIATE (the busy timeout is 10 s) */
        assert_false(ma.done);
        assert_false(mb.done);
        if (pg) {
                PQclear(PQexec(pg, "COMMIT"));
                PQfinish(pg);
        } else {
                assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
                sqlite3_close(db);
        }
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        /* Both finish: neither waits, holding a lock, for one the other holds (on PostgreSQL the
         * partition maker's lock is taken before records_default is read, and the alerts' lock after
         * every records partition). */
        assert_int_equal(ma.r, 0);
        assert_int_equal(mb.r, 0);
        assert_int_equal(store_alerts_foreach(a, count_clock_ahead, seen), 0);
        assert_int_equal(seen[0], 1);
        assert_int_equal(seen[1], 1);
        close_pair(path, a, b);
}

/*
 * A maintainer waits for the partition maker's lock before it reads records_default: another maintainer
 * holding that lock then takes ACCESS EXCLUSIVE on records_default (as it does to make a month) at once.
 * Read first, the two waited for each other and PostgreSQL aborted one (-EBUSY, or the other's LOCK).
 * The other maintainer is a third connection, so the moment is certain.
 */
static void test_maintainers_lock_in_one_order(void **state)
{
        Fixture *f = *state;
        Maintainer m = {.store = f->store};

        /* store-pg.c's PARTITION_LOCK_KEY: this connection is the maintainer making a month. */
        PGconn *other = pg_holding("SELECT pg_advisory_xact_lock(120265215275626)");
        /* March 2026 and the two months after it have no partitions yet: the maintainer must make them. */
        maintainer_waits_while(
                &m, other,
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'"
                " AND objid = 120265215275626 % 4294967296",
                "SET lock_timeout = '10s'; LOCK TABLE records_default IN ACCESS EXCLUSIVE MODE",
                PGRES_COMMAND_OK);
        assert_int_equal(m.r, 0);
        assert_pg_value("SELECT count(*) FROM pg_class WHERE relname IN"
                        " ('records_202603', 'records_202604', 'records_202605')",
                        "3");
}

/*
 * The clock-ahead alert reads a log's records before it takes the alerts' lock, and holds no records lock
 * once it has it: the one lock order is records, then alerts. A third connection holds records (as a
 * partition maker holds records_default) until the maintainer waits for it, then takes the alerts' lock
 * (as an ingest raising a new log's alert does): it gets it at once. Taken in the other order, the
 * maintainer would hold the alerts' lock while it waited, and PostgreSQL would abort one of the two.
 */
static void test_clock_ahead_alert_locks_records_then_alerts(void **state)
{
        Fixture *f = *state;
        Maintainer m = {.store = f->store};
        IngestAnswer ans = {};
        uint64_t seen[2] = {};

        for (unsigned i = 1; i <= N_LINES; i++)
                f->ts[i] = T_2026_03 + 20 * 365 * 24 * 3600 * 1000000LL + (int64_t)i;
        make_log(f, "T-1", NULL, 0);
        char *body = join(f, 1, N_LINES);
        assert_int_equal(ingest_batch(f->store, NULL, "T-1", body, strlen(body), 100, T_2026_03, &ans), 0);
        assert_int_equal(ans.status, 200);
        ingest_answer_done(&ans);
        free(body);
        /* The months made first, so that the maintainer below makes none and only its alert reads
         * records; the alert this raises taken away, so that it is raised again. */
        assert_int_equal(store_maintain(f->store, T_2026_03), 0);
        assert_int_equal(store_alerts_foreach(f->store, count_clock_ahead, seen), 0);
        assert_int_equal(seen[0], 1);
        PQclear(pg_sql(store_url(), "DELETE FROM alerts WHERE kind = 'clock-ahead'", NULL));

        PGconn *other = pg_holding("LOCK TABLE ONLY records IN ACCESS EXCLUSIVE MODE");
        maintainer_waits_while(
                &m, other,
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation'"
                " AND relation = 'records'::regclass",
                "SET lock_timeout = '10s'; SELECT pg_advisory_xact_lock(hashtextextended('#alerts', 0))",
                PGRES_TUPLES_OK);
        assert_int_equal(m.r, 0);
        seen[0] = seen[1] = 0;
        assert_int_equal(store_alerts_foreach(f->store, count_clock_ahead, seen), 0);
        assert_int_equal(seen[0], 1);
}

static void *open_one(void *p)
{
        Opener *o = p;
        Store *s = NULL;

        o->r = store_open(o->url, &s);
        store_close(s);
        return NULL;
}

/*
 * A store opened (a collector's worker connecting, any mamori-admin command) while another connection's
 * transaction holds rows of logs and records does not wait for it. PostgreSQL: an ingest transaction; the
 * schema, made once, is not made again (its ALTER TABLE and CREATE INDEX wanted locks that wait for such a
 * transaction, and held up every ingest behind them). SQLite: a reader's transaction (WAL; its one writer
 * at a time is by design).
 */
static void test_open_does_not_wait_for_ingest(void **state)
{
        char path[] = "/tmp/mamori-open-XXXXXX";
        const char *url = store_url();
        Opener o = {.url = url};
        PGconn *ingest = NULL;
        sqlite3 *reader = NULL;
        Store *s = NULL;
        pthread_t t;

        (void)state;
        if (url) {
                ingest = PQconnectdb(url);
                assert_int_equal(PQstatus(ingest), CONNECTION_OK);
                PQclear(PQexec(ingest, "BEGIN"));
                PGresult *r = PQexec(ingest, "UPDATE logs SET last_seen = last_seen WHERE id = 'none';"
                                             " SELECT count(*) FROM records WHERE log = 'none'");
                assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
                PQclear(r);
        } else {
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                close(fd);
                assert_int_equal(store_open(path, &s), 0);
                store_close(s);
                o.url = path;
                assert_int_equal(sqlite3_open(path, &reader), SQLITE_OK);
                assert_int_equal(
                        sqlite3_exec(reader,
                                     "BEGIN; SELECT count(*) FROM logs; SELECT count(*) FROM records", NULL,
                                     NULL, NULL),
                        SQLITE_OK);
        }
        assert_int_equal(pthread_create(&t, NULL, open_one, &o), 0);
        int i = 0;
        for (; i < 500 && pthread_tryjoin_np(t, NULL) != 0; i++) /* 5 s */
                usleep(10 * 1000);
        if (ingest) {
                PQclear(PQexec(ingest, "ROLLBACK"));
                PQfinish(ingest);
        } else {
                sqlite3_exec(reader, "ROLLBACK", NULL, NULL, NULL);
                sqlite3_close(reader);
                unlink_sqlite_store(path);
        }
        if (i == 500) {
                pthread_join(t, NULL);
                fail_msg("store_open() waited for another connection's open transaction");
        }
        assert_int_equal(o.r, 0);
}

/* Retention's anchor of a log only moves forward: one behind the stored one (a run working from a stale
 * plan) is refused with -ESTALE and changes nothing; the same one again is accepted. Both backends. */
static void test_anchor_never_moves_back(void **state)
{
        Fixture *f = *state;
        const char *log = "0123456789abcdef0123456789abcdef";
        StoreAnchor a = {.seq = 30, .epochs = 2}, got;
        uint64_t n = 0;

        memset(a.hash, 'a', SHA256_HEX_MAX - 1);
        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_records_delete_below(f->store, 1, log, &a, NULL, &n), 0);
        assert_int_equal(store_commit(f->store), 0);
        a.seq = 29;
        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_records_delete_below(f->store, 2, log, &a, NULL, &n), -ESTALE);
        store_rollback(f->store);
        assert_int_equal(store_log_anchor_set(f->store, 3, log, &a, 0, NULL), -ESTALE);
        assert_int_equal(store_log_anchor(f->store, log, &got), 0);
        assert_int_equal(got.seq, 30);
        a.seq = 30;
        assert_int_equal(store_log_anchor_set(f->store, 4, log, &a, 0, "again"), 0);
        a.seq = 31;
        assert_int_equal(store_log_anchor_set(f->store, 5, log, &a, 0, NULL), 0);
        assert_int_equal(store_log_anchor(f->store, log, &got), 0);
        assert_int_equal(got.seq, 31);
}

/*
 * store_run_lock(): one holder at a time across stores (both backends); on PostgreSQL a holder whose
 * connection dropped does not reconnect and take the lock back (another run may have held it and worked
 * meanwhile): every later call fails with -ENOLCK, while a new store can take the lock.
 */
static void test_run_lock_one_holder_and_not_retaken(void **state)
{
        char path[] = "/tmp/mamori-runlock-XXXXXX";
        const char *url = store_url();
        Store *a = NULL, *b = NULL, *c = NULL;

        (void)state;
        if (!url) {
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                close(fd);
        }
        assert_int_equal(store_open(url ?: path, &a), 0);
        assert_int_equal(store_open(url ?: path, &b), 0);
        assert_int_equal(store_run_lock(a, "#retention"), 0);
        assert_int_equal(store_run_lock(a, "#retention"), -EINVAL); /* one a store */
        assert_int_equal(store_run_lock(b, "#retention"), -EBUSY);
        assert_int_equal(store_run_lock(b, "#other"), 0); /* another name is another lock */
        store_close(b);

        if (url) {
                /* a's session ends under it, as in a server restart. */
                free(pg_value("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                              " AND granted AND objid = (hashtextextended('#retention', 0) & 4294967295)"
                              "::bigint::oid"));
                assert_int_equal(store_open(url, &c), 0);
                uint64_t n = 0;
                for (int i = 0; i < 500; i++) { /* the server notices the end within 5 s */
                        if (store_run_lock(c, "#retention") == 0)
                                break;
                        assert_true(i < 499);
                        usleep(10 * 1000);
                }
                assert_int_equal(store_record_count(a, &n), -ECONNRESET); /* its session is gone */
                assert_int_equal(store_begin(a), -ENOLCK);                /* and it does not come back */
                assert_int_equal(store_begin(a), -ENOLCK);
                store_close(c);
        } else {
                store_close(a);
                a = NULL;
                assert_int_equal(store_open(path, &c), 0);
                assert_int_equal(store_run_lock(c, "#retention"), 0); /* released with its store */
                store_close(c);
                unlink_sqlite_store(path);
                char lock[64];
                snprintf(lock, sizeof(lock), "%s-retention.lock", path);
                unlink(lock);
                snprintf(lock, sizeof(lock), "%s-other.lock", path);
                unlink(lock);
        }
        store_close(a);
}

/* The other client sessions of the test database for which cond (SQL on pg_stat_activity) holds ended, as a
 * server restart ends them, each waited for until its process is gone (so that the next statement on it
 * fails, not races the ending). */
static void pg_end_sessions_where(const char *cond)
{
        char *sql;

        assert_true(
                asprintf(&sql,
                         "SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 5000)) FROM"
                         " pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                         " AND backend_type = 'client backend' AND (%s)",
                         cond) > 0);
        assert_pg_value(sql, "0");
        free(sql);
}

/* Every other client session of the test database ended. */
static void pg_end_sessions(void)
{
        pg_end_sessions_where("true");
}

static int count_compacted(int64_t month_usec, uint64_t bytes_before, uint64_t bytes_after,
                           const char *kept_invalid, void *userdata)
{
        (void)month_usec, (void)bytes_before, (void)bytes_after;
        assert_null(kept_invalid);
        (*(unsigned *)userdata)++;
        return 0;
}

/*
 * PostgreSQL: store_maintain() and store_records_compact() on a store whose session the server ended (a
 * restart, a failover) make the connection again, as every other call does (they answered -EBUSY for ever,
 * and a collector made no partitions again): at once, since the server said it ended the session before
 * they sent anything (they failed once). Not under a transaction of the caller's (-EBUSY); a store that held
 * a run lock does not come back: -ENOLCK.
 */
static void test_maintain_and_compact_reconnect(void **state)
{
        Fixture *f = *state;
        const int64_t may = T_2026_03 + 2 * MONTH_USEC;
        unsigned months = 0;
        Store *held = NULL;

        pg_end_sessions();
        assert_int_equal(store_maintain(f->store, T_2026_03), 0);
        assert_pg_value("SELECT count(*) FROM pg_class WHERE relname IN"
                        " ('records_202603', 'records_202604', 'records_202605')",
                        "3");

        pg_end_sessions();
        assert_int_equal(store_records_compact(f->store, may, false, count_compacted, &months), 0);
        assert_int_equal(months, 2); /* March and April: closed in May */
        assert_pg_value("SELECT string_agg(part, ' ' ORDER BY part) FROM records_rebuilt",
                        "records_202603 records_202604");

        /* Ended inside the caller's transaction: not made again under it (its later statements would each
         * run on their own), until the caller ends the transaction. */
        uint64_t n = 0;
        assert_int_equal(store_begin(f->store), 0);
        pg_end_sessions();
        assert_true(store_record_count(f->store, &n) < 0);
        assert_int_equal(store_maintain(f->store, T_2026_03), -EBUSY);
        assert_int_equal(store_records_compact(f->store, may, false, count_compacted, &months), -EBUSY);
        store_rollback(f->store);
        assert_int_equal(store_maintain(f->store, T_2026_03), 0);

        assert_int_equal(store_open(store_url(), &held), 0);
        assert_int_equal(store_run_lock(held, "#retention"), 0);
        pg_end_sessions();
        assert_int_equal(store_maintain(held, T_2026_03), -ENOLCK);
        assert_int_equal(store_maintain(held, T_2026_03), -ENOLCK);
        assert_int_equal(store_records_compact(held, may, false, count_compacted, &months), -ENOLCK);
        store_close(held);
}

/*
 * PostgreSQL: a call made outside a transaction on a store whose session the server ended (a restart, a
 * failover) works at once. libpq learns that a session is gone only from a statement sent on it, and such a
 * first call failed (the next one made the connection again): a read is sent again on a connection made
 * again; a write (store_terminal_touch()), and BEGIN, go to a new connection before they are sent, as the
 * server said it ended the session while the connection was idle (store-pg.c ensure_session()). Before that,
 * such calls failed until something called store_begin(): a collector's worker checks the terminal register
 * outside a transaction before each batch, so it answered 503 to every request for ever.
 */
static void test_call_outside_transaction_reconnects(void **state)
{
        Fixture *f = *state;
        StoreLog l;
        char *pem = NULL;
        unsigned n = 0;

        pg_end_sessions();
        assert_int_equal(store_terminal_access(f->store, "T-1", "aa"), 0);

        pg_end_sessions();
        assert_int_equal(store_terminal_touch(f->store, "T-1", 5000), 0);
        assert_pg_value("SELECT last_seen FROM terminals WHERE id = 'T-1'", "5000");

        pg_end_sessions();
        assert_int_equal(store_terminal_identity(f->store, "T-1", &pem), 0);
        assert_non_null(strstr(pem, "PUBLIC KEY"));
        free(pem);

        pg_end_sessions();
        assert_int_equal(store_log_get(f->store, LOG_ID, &l), -ENOENT);

        /* The collector's silent check (a transaction of its own) after the same. */
        pg_end_sessions();
        assert_int_equal(store_alert_silent(f->store, 10000, 1000, &n), 0);
        assert_int_equal(n, 1);
}

/*
 * PostgreSQL: a terminal's batch right after the server ended its worker's session is stored and answered
 * 200, not 503: the register and the log's state are read outside the transaction (sent again), then BEGIN.
 */
static void test_post_after_session_ended(void **state)
{
        Fixture *f = *state;

        post(f, "T-1", 1, 4, 200, ACK(4));
        pg_end_sessions();
        post(f, "T-1", 5, 8, 200, ACK(8));
        pg_end_sessions();
        post(f, "T-1", 5, 12, 200, ACK(12)); /* 5..8 compared with what is stored */
        assert_int_equal(stored(f), 12);
}

/*
 * test_session_not_set_up_not_used's teardown: the database's lock_timeout is reset even when the case
 * failed midway (cmocka runs the teardown after a failed assertion; teardown() ends its holder session and
 * the schema lock with it). Left set, every later case's store_open() would time out on the schema lock.
 */
static int teardown_lock_timeout(void **state)
{
        PQclear(pg_sql(store_url(),
                       "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET lock_timeout',"
                       " current_database()); END $$",
                       NULL));
        return teardown(state);
}

/*
 * PostgreSQL: a session whose setup failed (here the schema lock timed out: the database's lock_timeout,
 * another session holding the lock) is not used: each call makes one again until the setup is done, and
 * none runs on a session without the store's settings (synchronous_commit on). The setting and the lock are
 * undone by teardown_lock_timeout(), however the case ends.
 */
static void test_session_not_set_up_not_used(void **state)
{
        Fixture *f = *state;
        char *pem = NULL;

        PQclear(pg_sql(store_url(),
                       "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = 200',"
                       " current_database()); END $$",
                       NULL));
        pg_end_sessions();
        f->holder = PQconnectdb(store_url());
        assert_int_equal(PQstatus(f->holder), CONNECTION_OK);
        PQclear(PQexec(f->holder, "SELECT pg_advisory_lock(" SCHEMA_LOCK_KEY_TEXT ")"));

        assert_int_equal(store_terminal_identity(f->store, "T-1", &pem), -EBUSY);
        assert_int_equal(store_terminal_identity(f->store, "T-1", &pem), -EBUSY); /* not the half-made one */

        PQfinish(f->holder); /* the lock goes with its session */
        f->holder = NULL;
        assert_int_equal(store_terminal_identity(f->store, "T-1", &pem), 0);
        assert_non_null(strstr(pem, "PUBLIC KEY"));
        free(pem);
}

typedef struct Toucher {
        Store *store;
        int r;
} Toucher;

static void *touch_terminal(void *p)
{
        Toucher *t = p;
        t->r = store_terminal_touch(t->store, "T-1", 9000);
        return NULL;
}

/* A session of pg_stat_activity: store_terminal_touch()'s UPDATE waiting for a row lock. */
#define TOUCH_WAITING "wait_event_type = 'Lock' AND query LIKE 'UPDATE terminals SET last_seen = $1%'"

/*
 * PostgreSQL: what is not sent again. A write outside a transaction whose session ends while it runs (here:
 * terminated while it waits for a row lock) answers -ECONNRESET: it may have been done (a COMMIT the server
 * made and could not answer), so it is not sent on a new connection; the next call makes one. Inside the
 * caller's transaction neither a write nor a read is sent again: -ECONNRESET until the rollback, nothing of
 * the transaction stored.
 */
static void test_write_not_sent_again(void **state)
{
        Fixture *f = *state;
        Toucher t = {.store = f->store};
        StoreLog l = {.log = LOG_ID, .term = "T-1", .last_seq = 3, .epochs = 1};
        pthread_t th;
        uint64_t n = 0;

        PGconn *other = pg_holding("UPDATE terminals SET last_seen = 1 WHERE id = 'T-1'");
        assert_int_equal(pthread_create(&th, NULL, touch_terminal, &t), 0);
        pg_wait_for("SELECT count(*) FROM pg_stat_activity WHERE " TOUCH_WAITING, "1");
        pg_end_sessions_where(TOUCH_WAITING);
        /* Sent again, it would wait for other's lock until this rollback, then be done. */
        PQclear(PQexec(other, "ROLLBACK"));
        PQfinish(other);
        pthread_join(th, NULL);
        assert_int_equal(t.r, -ECONNRESET);
        assert_pg_value("SELECT coalesce(last_seen, 0) FROM terminals WHERE id = 'T-1'", "0");
        assert_int_equal(store_terminal_touch(f->store, "T-1", 9000), 0); /* on a connection made again */
        assert_pg_value("SELECT last_seen FROM terminals WHERE id = 'T-1'", "9000");

        memset(l.last_hash, 'a', SHA256_HEX_MAX - 1);
        assert_int_equal(store_begin(f->store), 0);
        pg_end_sessions();
        assert_int_equal(store_log_put(f->store, &l, 7000), -ECONNRESET);
        assert_int_equal(store_log_get(f->store, LOG_ID, &l), -ECONNRESET);
        assert_int_equal(store_record_count(f->store, &n), -ECONNRESET);
        store_rollback(f->store);
        assert_int_equal(store_log_get(f->store, LOG_ID, &l), -ENOENT);
        assert_pg_value("SELECT count(*) FROM logs", "0");
}

static void put_records(Store *s, uint64_t from, uint64_t to)
{
        StoreRecord v[16];
        char lines[16][16];
        size_t n = 0;

        assert_true(to - from < ELEMENTSOF(v));
        for (uint64_t seq = from; seq <= to; seq++, n++) {
                snprintf(lines[n], sizeof(lines[n]), "r%" PRIu64, seq);
                v[n] = (StoreRecord){.seq = seq, .ts = T_2026_03, .line = lines[n], .len = strlen(lines[n])};
        }
        assert_int_equal(store_records_put(s, LOG_ID, v, n), 0);
}

/* Records of LOG_ID in the database, from a connection of its own: "rows distinct-seqs". */
static char *pg_records(void)
{
        return pg_value("SELECT count(*) || ' ' || count(DISTINCT seq) FROM records WHERE log = '" LOG_ID
                        "'");
}

/*
 * PostgreSQL: a session that ended inside the caller's transaction is not made again under it — its later
 * statements would each run on their own and COMMIT would answer "COMMIT" (a warning: no transaction in
 * progress) for a transaction that is not there. Every call answers an error until the caller rolls back,
 * and store_commit() fails: the collector acknowledges records only after it. Nothing of the transaction
 * is stored; the batch sent again is stored once.
 */
static void test_commit_after_session_ended_fails(void **state)
{
        Fixture *f = *state;
        uint64_t n = 0;

        assert_int_equal(store_begin(f->store), 0);
        put_records(f->store, 1, 3);
        pg_end_sessions();
        /* libpq learns it here (the server's 57P01, or the connection closed): -ECONNRESET, not -EIO, so
         * that a caller can tell a session gone from a statement the database refused. */
        assert_int_equal(store_record_count(f->store, &n), -ECONNRESET);
        assert_int_equal(store_record_count(f->store, &n), -ECONNRESET); /* and does not reconnect */
        assert_int_equal(store_terminal_touch(f->store, "T-1", 7000), -ECONNRESET); /* not on its own */
        assert_true(store_commit(f->store) < 0);
        char *v = pg_records();
        assert_string_equal(v, "0 0");
        free(v);
        assert_pg_value("SELECT coalesce(last_seen, 0) FROM terminals WHERE id = 'T-1'", "0");

        /* The failed commit ended the transaction: the next one reconnects and stores the batch once. */
        assert_int_equal(store_begin(f->store), 0);
        put_records(f->store, 1, 6);
        assert_int_equal(store_commit(f->store), 0);
        v = pg_records();
        assert_string_equal(v, "6 6");
        free(v);
        assert_int_equal(store_record_count(f->store, &n), 0);
        assert_int_equal(n, 6);
}

/*
 * PostgreSQL: nothing else makes the connection again under the caller's transaction either —
 * store_run_lock() (-EINVAL: an open transaction is the caller's mistake, dead connection or not) and a
 * store_begin() inside it (-ECONNRESET) — so store_commit() never sends a COMMIT on a session made since
 * store_begin(), and a commit without a transaction is an error (-EINVAL), not a warning.
 */
static void test_nothing_reconnects_under_transaction(void **state)
{
        Fixture *f = *state;
        uint64_t n = 0;

        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_run_lock(f->store, "#retention"), -EINVAL); /* live connection */
        put_records(f->store, 1, 3);
        pg_end_sessions();
        assert_int_equal(store_record_count(f->store, &n), -ECONNRESET); /* libpq learns it here */
        assert_int_equal(store_run_lock(f->store, "#retention"), -EINVAL);
        assert_int_equal(store_begin(f->store), -ECONNRESET);
        assert_true(store_commit(f->store) < 0);
        char *v = pg_records();
        assert_string_equal(v, "0 0");
        free(v);

        /* Between transactions the lock is taken on the connection made again. */
        assert_int_equal(store_run_lock(f->store, "#retention"), 0);
        assert_pg_value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND objid = (hashtextextended('#retention', 0) & 4294967295)::bigint::oid",
                        "1");
        /* A commit with no transaction begun is an error, not a warning's "COMMIT". */
        assert_int_equal(store_commit(f->store), -EINVAL);
}

/*
 * PostgreSQL: the calls made only inside a transaction (store_log_get_locked(), store_alert_add(),
 * store_records_drop_month()) on a session already found gone answer -ECONNRESET, as every other call does
 * then: they answered -EINVAL ("called outside a transaction", the caller's mistake), so a retention run
 * or an ingest told the operator of a bug, not of a lost session. -EINVAL stays for a call outside a
 * transaction on a live connection.
 */
static void test_transaction_calls_after_session_ended(void **state)
{
        Fixture *f = *state;
        StoreLog l;
        uint64_t n = 0;

        assert_int_equal(store_log_get_locked(f->store, LOG_ID, &l), -EINVAL);
        assert_int_equal(store_alert_add(f->store, 1, "fork", "T-1", LOG_ID, 1, "x"), -EINVAL);
        assert_int_equal(store_records_drop_month(f->store, T_2026_03, 0), -EINVAL);

        assert_int_equal(store_begin(f->store), 0);
        pg_end_sessions();
        assert_int_equal(store_record_count(f->store, &n), -ECONNRESET); /* libpq learns it here */
        assert_int_equal(store_log_get_locked(f->store, LOG_ID, &l), -ECONNRESET);
        assert_int_equal(store_alert_add(f->store, 1, "fork", "T-1", LOG_ID, 1, "x"), -ECONNRESET);
        assert_int_equal(store_records_drop_month(f->store, T_2026_03, 0), -ECONNRESET);
        assert_true(store_commit(f->store) < 0);

        /* The next transaction is on a connection made again. */
        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_log_get_locked(f->store, LOG_ID, &l), -ENOENT);
        assert_int_equal(store_records_drop_month(f->store, T_2026_03, 0), -ENOENT);
        store_rollback(f->store);
        assert_pg_value("SELECT count(*) FROM alerts", "0");
}

/*
 * PostgreSQL: the same calls inside a transaction a statement of which already failed (here a record stored
 * twice: -EEXIST), which the server refuses every statement of until the rollback, answer -EIO, as every
 * other call does then: they answered -EINVAL ("called outside a transaction", the caller's mistake).
 */
static void test_transaction_calls_after_statement_failed(void **state)
{
        Fixture *f = *state;
        const StoreRecord again = {.seq = 1, .ts = T_2026_03, .line = "r1", .len = 2};
        StoreLog l;
        uint64_t n = 0;

        assert_int_equal(store_begin(f->store), 0);
        put_records(f->store, 1, 3);
        assert_int_equal(store_records_put(f->store, LOG_ID, &again, 1), -EEXIST);
        assert_int_equal(store_record_count(f->store, &n), -EIO); /* the transaction failed */
        assert_int_equal(store_log_get_locked(f->store, LOG_ID, &l), -EIO);
        assert_int_equal(store_alert_add(f->store, 1, "fork", "T-1", LOG_ID, 1, "x"), -EIO);
        assert_int_equal(store_records_drop_month(f->store, T_2026_03, 3), -EIO);
        assert_int_equal(store_commit(f->store), -EIO);
        char *v = pg_records();
        assert_string_equal(v, "0 0");
        free(v);
        assert_pg_value("SELECT count(*) FROM alerts", "0");

        /* Rolled back, the store works again. */
        assert_int_equal(store_begin(f->store), 0);
        assert_int_equal(store_log_get_locked(f->store, LOG_ID, &l), -ENOENT);
        store_rollback(f->store);
}

int main(void)
{
        const struct CMUnitTest both[] = {
                cmocka_unit_test_setup_teardown(test_store_resend_gap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_first_batch_must_start_at_one, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resend_in_later_month_stored_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clock_back_files_with_previous, setup, teardown),
                cmocka_unit_test_setup_teardown(test_history_append_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store_from_before_partitions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_signature_stores_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_identity_and_term, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_split_anywhere, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_break_after_split, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_writers_race_one_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_lock_makes_writers_wait, setup, teardown),
                cmocka_unit_test_setup_teardown(test_parallel_bad_signature_in_middle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_terminals_stored_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_alerts_visible_in_id_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cursor_reads_every_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lines_stored_byte_for_byte, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_refused_late_stores_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_open_one_new_store_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clock_ahead_alerted_once_by_two, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_does_not_wait_for_ingest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_run_lock_one_holder_and_not_retaken, setup, teardown),
                cmocka_unit_test_setup_teardown(test_anchor_never_moves_back, setup, teardown),
        };
        /* Cases of PostgreSQL alone: not cases of the SQLite run at all (CI requires every case it runs to
         * run, and one that returned early there would pass having asserted nothing). */
        const struct CMUnitTest pg_only[] = {
                cmocka_unit_test_setup_teardown(test_partition_made_while_old_records_arrive, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_maintainers_lock_in_one_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clock_ahead_alert_locks_records_then_alerts, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_maintain_and_compact_reconnect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_call_outside_transaction_reconnects, setup, teardown),
                cmocka_unit_test_setup_teardown(test_post_after_session_ended, setup, teardown),
                cmocka_unit_test_setup_teardown(test_session_not_set_up_not_used, setup,
                                                teardown_lock_timeout),
                cmocka_unit_test_setup_teardown(test_write_not_sent_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_commit_after_session_ended_fails, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nothing_reconnects_under_transaction, setup, teardown),
                cmocka_unit_test_setup_teardown(test_transaction_calls_after_session_ended, setup, teardown),
                cmocka_unit_test_setup_teardown(test_transaction_calls_after_statement_failed, setup,
                                                teardown),
        };
        struct CMUnitTest all[ELEMENTSOF(both) + ELEMENTSOF(pg_only)];
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(both); i++)
                all[n++] = both[i];
        for (size_t i = 0; store_url() && i < ELEMENTSOF(pg_only); i++)
                all[n++] = pg_only[i];
        return _cmocka_run_group_tests("tests", all, n, NULL, NULL);
}
