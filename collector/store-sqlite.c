/* SQLite backend of the centre store (WAL, synchronous=FULL): connection, schema, queries (store-backend.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store-backend.h"

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS terminals (id TEXT PRIMARY KEY, office TEXT NOT NULL,"
        "  identity_pem TEXT NOT NULL, created INTEGER NOT NULL, last_seen INTEGER,"
        "  silent_alerted INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS logs (id TEXT PRIMARY KEY, term TEXT NOT NULL,"
        "  last_seq INTEGER NOT NULL, last_hash TEXT NOT NULL, key BLOB NOT NULL,"
        "  epochs INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
        "  last_ts INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX IF NOT EXISTS logs_term ON logs(term);"
        "CREATE TABLE IF NOT EXISTS records (log TEXT NOT NULL, seq INTEGER NOT NULL,"
        "  line TEXT NOT NULL, ts INTEGER NOT NULL DEFAULT 0,"
        "  PRIMARY KEY (log, seq)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
        "  kind TEXT NOT NULL, term TEXT, log TEXT, seq INTEGER, detail TEXT,"
        "  count INTEGER NOT NULL DEFAULT 1, last_seen INTEGER);"
        "CREATE INDEX IF NOT EXISTS alerts_fold ON alerts(kind, term, log, seq);"
        "CREATE TABLE IF NOT EXISTS offices (id TEXT PRIMARY KEY, hours TEXT);"
        "CREATE TABLE IF NOT EXISTS operators (id TEXT PRIMARY KEY, name TEXT, offices TEXT NOT NULL,"
        "  status TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS groups_ (id TEXT PRIMARY KEY, offices TEXT NOT NULL,"
        "  members TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS cards (id TEXT PRIMARY KEY, cert_pem TEXT NOT NULL,"
        "  operator TEXT, group_ TEXT, status TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
        "  object TEXT NOT NULL, object_id TEXT NOT NULL, action TEXT NOT NULL, detail TEXT,"
        "  actor TEXT, reason TEXT, prev TEXT, hash TEXT);"
        "CREATE TABLE IF NOT EXISTS policies (serial INTEGER PRIMARY KEY, published INTEGER NOT NULL,"
        "  body BLOB NOT NULL);"
        /* Added for the audit: tables of their own, so an older database gains them as they are. */
        "CREATE TABLE IF NOT EXISTS operator_roles (id TEXT PRIMARY KEY, roles TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS anchors (log TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL,"
        "  key BLOB NOT NULL, epochs INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS secret_changes (operator TEXT PRIMARY KEY, ts INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS office_calendar (id TEXT PRIMARY KEY, days TEXT NOT NULL,"
        "  holidays TEXT NOT NULL);"
        /* Terminal lifecycle (enrolment by request): the one certificate the collector accepts for a
         * terminal and whether it is retired. A terminal without a row (enrolled before) is active
         * with any certificate of the terminal CA. */
        "CREATE TABLE IF NOT EXISTS terminal_certs (id TEXT PRIMARY KEY, status TEXT NOT NULL,"
        "  cert_sha256 TEXT, changed INTEGER NOT NULL);";

/* After migrate(): the history is append-only. Rows chained by store_open() had no hash before it. */
static const char history_triggers[] =
        "CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history WHEN OLD.hash IS NOT NULL"
        " BEGIN SELECT RAISE(ABORT, 'the register history is append-only'); END;"
        "CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history"
        " BEGIN SELECT RAISE(ABORT, 'the register history is append-only'); END;";

static int sq_err(int rc)
{
        switch (rc) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        default:
                return -EIO;
        }
}

static int exec(sqlite3 *db, const char *sql)
{
        return sq_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

struct StoreQuery {
        sqlite3 *db;
        sqlite3_stmt *st;
};

static int sq_query(void *conn, const char *sql, const StoreArg *args, size_t n_args, StoreQuery **ret)
{
        sqlite3 *db = conn;
        sqlite3_stmt *st = NULL;
        StoreQuery *q;
        int rc;

        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sq_err(rc) ?: -EIO;
        for (size_t i = 0; i < n_args && rc == SQLITE_OK; i++) {
                const StoreArg *a = &args[i];
                int k = (int)i + 1;
                switch (a->type) {
                case 's':
                case 't':
                        rc = a->p ? sqlite3_bind_text64(st, k, a->p, a->len, SQLITE_TRANSIENT, SQLITE_UTF8)
                                  : sqlite3_bind_null(st, k);
                        break;
                case 'b':
                        rc = sqlite3_bind_blob64(st, k, a->p, a->len, SQLITE_TRANSIENT);
                        break;
                case 'i':
                        rc = sqlite3_bind_int64(st, k, a->i);
                        break;
                default:
                        rc = SQLITE_MISUSE;
                }
        }
        if (rc != SQLITE_OK || !(q = malloc(sizeof(*q)))) {
                sqlite3_finalize(st);
                return rc != SQLITE_OK ? sq_err(rc) ?: -EIO : -ENOMEM;
        }
        *q = (StoreQuery){.db = db, .st = st};
        *ret = q;
        return 0;
}

static int sq_step(StoreQuery *q)
{
        int rc = sqlite3_step(q->st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return sq_err(rc) ?: -EIO;
}

static bool sq_is_null(StoreQuery *q, int col)
{
        return sqlite3_column_type(q->st, col) == SQLITE_NULL;
}

static const void *sq_bytes(StoreQuery *q, int col, size_t *ret_len)
{
        const void *p;

        if (sqlite3_column_type(q->st, col) == SQLITE_BLOB)
                p = sqlite3_column_blob(q->st, col);
        else
                p = sqlite3_column_text(q->st, col);
        *ret_len = (size_t)sqlite3_column_bytes(q->st, col);
        return p ?: "";
}

static int64_t sq_int64(StoreQuery *q, int col)
{
        return sqlite3_column_int64(q->st, col);
}

static uint64_t sq_changes(StoreQuery *q)
{
        return (uint64_t)sqlite3_changes(q->db);
}

static void sq_free(StoreQuery *q)
{
        if (!q)
                return;
        sqlite3_finalize(q->st);
        free(q);
}

/* One prepared INSERT for the whole batch, reset between rows. */
static int sq_put_records(void *conn, const char *log, const StoreRecord *v, size_t n)
{
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(conn, "INSERT INTO records (log, seq, ts, line) VALUES (?,?,?,?)", -1, &st,
                                NULL);
        for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
                sqlite3_reset(st);
                if ((rc = sqlite3_bind_text(st, 1, log, -1, SQLITE_STATIC)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)v[i].seq)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(st, 3, v[i].ts)) != SQLITE_OK ||
                    (rc = sqlite3_bind_text64(st, 4, v[i].line, v[i].len, SQLITE_STATIC, SQLITE_UTF8)) !=
                            SQLITE_OK)
                        break;
                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        return sq_err(rc);
}

/* 1 when table has the column, 0 when not. table is one of ours, never user input. */
static int has_column(sqlite3 *db, const char *table, const char *column)
{
        sqlite3_stmt *st = NULL;
        char sql[64];
        int rc, r = 0;

        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sq_err(rc) ?: -EIO;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const unsigned char *name = sqlite3_column_text(st, 1);
                if (name && streq((const char *)name, column)) {
                        r = 1;
                        break;
                }
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                r = sq_err(rc) ?: -EIO;
        sqlite3_finalize(st);
        return r;
}

/* Databases made before a column existed get it (CREATE TABLE IF NOT EXISTS adds none). */
static int migrate(sqlite3 *db)
{
        int r = has_column(db, "alerts", "count");
        if (r < 0)
                return r;
        if (r == 0) {
                r = exec(db, "ALTER TABLE alerts ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
                             "ALTER TABLE alerts ADD COLUMN last_seen INTEGER;");
                if (r < 0)
                        return r;
        }
        /* The filing time of records (StoreRecord.ts): rows stored before it have 0, and retention
         * reads the time of those from their lines. */
        r = has_column(db, "records", "ts");
        if (r < 0)
                return r;
        if (r == 0) {
                r = exec(db, "ALTER TABLE records ADD COLUMN ts INTEGER NOT NULL DEFAULT 0;"
                             "ALTER TABLE logs ADD COLUMN last_ts INTEGER NOT NULL DEFAULT 0;");
                if (r < 0)
                        return r;
        }
        /* Records were stored with their line hash (65 bytes a record, ~10 %): the column goes, once (SQLite
         * rewrites the table; the hash is made from the line when a record is sent again). */
        r = has_column(db, "records", "hash");
        if (r < 0)
                return r;
        if (r > 0) {
                r = exec(db, "ALTER TABLE records DROP COLUMN hash");
                if (r < 0)
                        return r;
        }
        /* The register before its hash chain: the columns here, its rows chained by store_open(). */
        r = has_column(db, "history", "hash");
        if (r != 0)
                return r < 0 ? r : 0;
        return exec(db, "ALTER TABLE history ADD COLUMN actor TEXT;"
                        "ALTER TABLE history ADD COLUMN reason TEXT;"
                        "ALTER TABLE history ADD COLUMN prev TEXT;"
                        "ALTER TABLE history ADD COLUMN hash TEXT;");
}

/* 1 when the database has that table, 0 when not. */
static int has_table(sqlite3 *db, const char *table)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", -1,
                                    &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sq_err(rc) ?: -EIO;
}

/* A database from before pin_changed was kept: its stored changes count too. */
static const char secret_backfill[] =
        "INSERT INTO secret_changes (operator, ts)"
        " SELECT json_extract(line, '$.op'), max(json_extract(line, '$.ts')) FROM records"
        " WHERE (instr(line, '\"ev\":\"pin.change\"') OR instr(line, '\"ev\":\"password.change\"'))"
        " AND json_extract(line, '$.ev') IN ('pin.change', 'password.change')"
        " AND json_extract(line, '$.op') IS NOT NULL GROUP BY 1"
        " ON CONFLICT(operator) DO UPDATE SET ts = max(ts, excluded.ts)";

/* The one integer a statement (a PRAGMA) answers. */
static int pragma_int(sqlite3 *db, const char *sql, int64_t *ret)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? 0 : sq_err(rc) ?: -EIO;
}

static void sq_close(void *conn)
{
        sqlite3_close_v2(conn);
}

static int sq_open(const char *path, void **ret_conn, char **ret_why)
{
        sqlite3 *db = NULL;
        int64_t pages = 0;
        int r, backfill;

        (void)ret_why; /* a file's permissions: the error says it */

        r = sqlite3_open_v2(path, &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                    SQLITE_OPEN_EXRESCODE,
                            NULL);
        if (r != SQLITE_OK) {
                sqlite3_close_v2(db);
                return sq_err(r) ?: -EIO;
        }
        sqlite3_extended_result_codes(db, 0);
        sqlite3_busy_timeout(db, 10000);
        /* 16 KiB pages for a new file (an existing one keeps its own): records are ~0.5 kB lines, and
         * with 4 KiB pages a batch's commit wrote about 3 µs a record more (tests/bench/ingest-cost). */
        /* A new file (no page yet) gives back the space retention frees in steps (store_reclaim()). Not
         * asked of an existing one: there it takes the write lock (to note the mode), and only a VACUUM
         * would apply it. */
        if ((r = exec(db, "PRAGMA page_size=16384")) < 0 ||
            (r = pragma_int(db, "PRAGMA page_count", &pages)) < 0 ||
            (pages == 0 && (r = exec(db, "PRAGMA auto_vacuum=INCREMENTAL")) < 0) ||
            (r = exec(db, "PRAGMA journal_mode=WAL")) < 0 || (r = exec(db, "PRAGMA synchronous=FULL")) < 0 ||
            (r = backfill = has_table(db, "secret_changes")) < 0 || (r = exec(db, schema)) < 0 ||
            (r = migrate(db)) < 0 || (backfill == 0 && (r = exec(db, secret_backfill)) < 0) ||
            (r = exec(db, history_triggers)) < 0) {
                sqlite3_close_v2(db);
                return r;
        }
        *ret_conn = db;
        return 0;
}

static int sq_begin(void *conn)
{
        return exec(conn, "BEGIN IMMEDIATE");
}

static void sq_rollback(void *conn)
{
        if (!sqlite3_get_autocommit(conn))
                (void)exec(conn, "ROLLBACK");
}

static int sq_commit(void *conn)
{
        int r = exec(conn, "COMMIT");
        if (r < 0)
                sq_rollback(conn);
        return r;
}

/* BEGIN IMMEDIATE already holds the database's one write lock until the end of the transaction. */
static int sq_lock_log(void *conn, const char *log)
{
        (void)log;
        return sqlite3_get_autocommit(conn) ? -EINVAL : 0;
}

/* The database file and its WAL. */
static int sq_size(void *conn, uint64_t *ret)
{
        const char *file = sqlite3_db_filename(conn, "main");
        uint64_t total = 0;
        struct stat st;
        char wal[4096];

        if (!file || !*file)
                return -EOPNOTSUPP;
        if (stat(file, &st) < 0)
                return -errno;
        total = (uint64_t)st.st_size;
        if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", file) < sizeof(wal) && stat(wal, &st) == 0)
                total += (uint64_t)st.st_size;
        *ret = total;
        return 0;
}

static int sq_reclaimable(void *conn, uint64_t *ret_free, uint64_t *ret_page_size, bool *ret_incremental)
{
        int64_t mode = 0, pages = 0, size = 0;
        int r;

        if ((r = pragma_int(conn, "PRAGMA auto_vacuum", &mode)) < 0 ||
            (r = pragma_int(conn, "PRAGMA freelist_count", &pages)) < 0 ||
            (r = pragma_int(conn, "PRAGMA page_size", &size)) < 0)
                return r;
        *ret_free = (uint64_t)pages * (uint64_t)size;
        *ret_page_size = (uint64_t)size;
        *ret_incremental = mode == 2;
        return 0;
}

typedef struct VacuumProgress {
        store_reclaim_fn cb;
        void *userdata;
} VacuumProgress;

static int vacuum_progress(void *p)
{
        VacuumProgress *v = p;
        return v->cb(0, 0, v->userdata) < 0; /* non-zero interrupts the VACUUM */
}

static int sq_reclaim(void *conn, bool full, uint64_t step_pages, store_reclaim_fn cb, void *userdata)
{
        sqlite3 *db = conn;
        int64_t mode = 0, total = 0, left = 0;
        char sql[64];
        int r;

        if (!sqlite3_get_autocommit(db) || step_pages == 0)
                return -EINVAL;
        r = pragma_int(db, "PRAGMA auto_vacuum", &mode);
        if (r < 0)
                return r;
        if (full) {
                VacuumProgress v = {cb, userdata};
                r = exec(db, "PRAGMA auto_vacuum=INCREMENTAL");
                if (r < 0)
                        return r;
                if (cb) /* every million VM steps: a few times a second */
                        sqlite3_progress_handler(db, 1000000, vacuum_progress, &v);
                r = exec(db, "VACUUM");
                sqlite3_progress_handler(db, 0, NULL, NULL);
                if (r < 0)
                        return r == -EIO && sqlite3_errcode(db) == SQLITE_INTERRUPT ? -ECANCELED : r;
        } else {
                if (mode != 2)
                        return -EMEDIUMTYPE;
                r = pragma_int(db, "PRAGMA freelist_count", &total);
                /* Each step a write transaction of its own: a writer waits for one step at most. */
                for (left = total; r >= 0 && left > 0;) {
                        int64_t before = left;
                        snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%" PRIu64 ")", step_pages);
                        r = exec(db, sql);
                        if (r >= 0)
                                r = pragma_int(db, "PRAGMA freelist_count", &left);
                        if (r >= 0 && left >= before)
                                break; /* nothing moved (new records took the pages): done */
                        if (r >= 0 && cb)
                                r = cb((uint64_t)(total - left), (uint64_t)total, userdata);
                }
                if (r < 0)
                        return r;
        }
        /* The file shrinks as its WAL is copied back: now, unless a reader still holds the WAL (then at a
         * later checkpoint, the collector's). */
        (void)exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        return 0;
}

static void run_lock_release(void *p)
{
        int *fd = p;
        if (fd) {
                (void)close(*fd);
                free(fd);
        }
}

static void run_lock_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
        (void)argc, (void)argv;
        sqlite3_result_int(ctx, 1);
}

/*
 * store_run_lock(): flock() on a file beside the database, "DATABASE-NAME.lock" (name without its '#'),
 * not on the database itself (closing a second descriptor of it would drop SQLite's own POSIX locks). Held
 * as long as the connection: the descriptor belongs to a function registered on it, whose destructor
 * closes it when the connection closes.
 */
static int sq_run_lock(void *conn, const char *name)
{
        sqlite3 *db = conn;
        const char *file = sqlite3_db_filename(db, "main");
        char path[4096];
        int fd, *held, r;

        if (!file || !*file)
                return -EOPNOTSUPP; /* in memory: no other process shares it */
        name += name[0] == '#';
        if (!*name || strchr(name, '/'))
                return -EINVAL;
        if (exec(db, "SELECT mamori_run_lock()") == 0)
                return -EINVAL; /* one a connection */
        if ((size_t)snprintf(path, sizeof(path), "%s-%s.lock", file, name) >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                (void)close(fd);
                return r;
        }
        held = malloc(sizeof(int));
        if (!held) {
                (void)close(fd);
                return -ENOMEM;
        }
        *held = fd;
        /* On failure SQLite calls the destructor itself: the lock goes. */
        return sq_err(sqlite3_create_function_v2(db, "mamori_run_lock", 0, SQLITE_UTF8, held, run_lock_fn,
                                                 NULL, NULL, run_lock_release));
}

const StoreBackend store_backend_sqlite = {
        .name = "sqlite",
        .open = sq_open,
        .close = sq_close,
        .begin = sq_begin,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .lock_log = sq_lock_log,
        .query = sq_query,
        .step = sq_step,
        .is_null = sq_is_null,
        .bytes = sq_bytes,
        .int64 = sq_int64,
        .changes = sq_changes,
        .free = sq_free,
        .put_records = sq_put_records,
        .size = sq_size,
        .run_lock = sq_run_lock,
        .reclaim = sq_reclaim,
        .reclaimable = sq_reclaimable,
};
