/* SQLite backend of the centre store (WAL, synchronous=FULL): see store.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"

struct Store {
        sqlite3 *db;
        char *actor, *reason; /* carried by every history row written (store_set_actor/reason) */
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS terminals (id TEXT PRIMARY KEY, office TEXT NOT NULL,"
        "  identity_pem TEXT NOT NULL, created INTEGER NOT NULL, last_seen INTEGER,"
        "  silent_alerted INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS logs (id TEXT PRIMARY KEY, term TEXT NOT NULL,"
        "  last_seq INTEGER NOT NULL, last_hash TEXT NOT NULL, key BLOB NOT NULL,"
        "  epochs INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS logs_term ON logs(term);"
        "CREATE TABLE IF NOT EXISTS records (log TEXT NOT NULL, seq INTEGER NOT NULL,"
        "  hash TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (log, seq)) WITHOUT ROWID;"
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

/* After migrate(): the history is append-only. Rows chained by the migration had no hash before it. */
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

static void stmt_finalizep(sqlite3_stmt **st)
{
        if (*st)
                sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(stmt_finalizep)

static int exec(Store *s, const char *sql)
{
        return sq_err(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

/*
 * Prepare sql and bind the arguments described by fmt: 's' string (NULL = SQL NULL), 'i' int64,
 * 'u' uint64, 'b' blob (pointer, size_t).
 */
static int prepare(Store *s, sqlite3_stmt **ret, const char *sql, const char *fmt, ...)
{
        sqlite3_stmt *st = NULL;
        va_list ap;
        int rc;

        rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sq_err(rc);
        va_start(ap, fmt);
        for (int i = 1; fmt && *fmt; fmt++, i++) {
                switch (*fmt) {
                case 's': {
                        const char *v = va_arg(ap, const char *);
                        rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT)
                               : sqlite3_bind_null(st, i);
                        break;
                }
                case 'i':
                        rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
                        break;
                case 'u':
                        rc = sqlite3_bind_int64(st, i, (sqlite3_int64)va_arg(ap, uint64_t));
                        break;
                case 'b': {
                        const void *p = va_arg(ap, const void *);
                        size_t n = va_arg(ap, size_t);
                        rc = sqlite3_bind_blob64(st, i, p, n, SQLITE_TRANSIENT);
                        break;
                }
                case 't': { /* text with length */
                        const char *p = va_arg(ap, const char *);
                        size_t n = va_arg(ap, size_t);
                        rc = sqlite3_bind_text64(st, i, p, n, SQLITE_TRANSIENT, SQLITE_UTF8);
                        break;
                }
                default:
                        rc = SQLITE_MISUSE;
                }
                if (rc != SQLITE_OK)
                        break;
        }
        va_end(ap);
        if (rc != SQLITE_OK) {
                sqlite3_finalize(st);
                return sq_err(rc);
        }
        *ret = st;
        return 0;
}

/* Step a statement that returns no rows. */
static int step_done(sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : sq_err(rc) ?: -EIO;
}

/* Step for one row: 1 row, 0 none, < 0 error. */
static int step_row(sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return sq_err(rc) ?: -EIO;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? (const char *)t : "";
}

/* 1 when table has the column, 0 when not. table is one of ours, never user input. */
static int has_column(Store *s, const char *table, const char *column)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char sql[64];
        int r;

        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
        r = prepare(s, &st, sql, NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0)
                if (streq(col_text(st, 1), column))
                        return 1;
        return r;
}

static int history_chain_rows(Store *s);

/* 1 when the database has that table, 0 when not. */
static int has_table(Store *s, const char *table)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", "s", table);
        return r < 0 ? r : step_row(st);
}

/* Databases made before a column existed get it (CREATE TABLE IF NOT EXISTS adds none). */
static int migrate(Store *s)
{
        int r = has_column(s, "alerts", "count");
        if (r < 0)
                return r;
        if (r == 0) {
                r = exec(s, "ALTER TABLE alerts ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
                            "ALTER TABLE alerts ADD COLUMN last_seen INTEGER;");
                if (r < 0)
                        return r;
        }
        /* The register before its hash chain: the columns, then its rows chained as they are. */
        r = exec(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = has_column(s, "history", "hash");
        if (r == 0)
                r = exec(s, "ALTER TABLE history ADD COLUMN actor TEXT;"
                            "ALTER TABLE history ADD COLUMN reason TEXT;"
                            "ALTER TABLE history ADD COLUMN prev TEXT;"
                            "ALTER TABLE history ADD COLUMN hash TEXT;");
        if (r >= 0)
                r = history_chain_rows(s);
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        return exec(s, "COMMIT");
}

int store_open(const char *path, Store **ret)
{
        _cleanup_store_ Store *s = NULL;
        bool backfill;
        int r;

        if (!path || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(Store));
        if (!s)
                return -ENOMEM;
        r = sqlite3_open_v2(path, &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                    SQLITE_OPEN_EXRESCODE,
                            NULL);
        if (r != SQLITE_OK)
                return sq_err(r) ?: -EIO;
        sqlite3_extended_result_codes(s->db, 0);
        sqlite3_busy_timeout(s->db, 10000);
        r = exec(s, "PRAGMA journal_mode=WAL");
        if (r < 0)
                return r;
        r = exec(s, "PRAGMA synchronous=FULL");
        if (r < 0)
                return r;
        r = has_table(s, "secret_changes");
        if (r < 0)
                return r;
        backfill = r == 0;
        r = exec(s, schema);
        if (r < 0)
                return r;
        r = migrate(s);
        if (r < 0)
                return r;
        if (backfill) {
                /* A database from before pin_changed was kept: its stored changes count too. */
                r = exec(s,
                         "INSERT INTO secret_changes (operator, ts)"
                         " SELECT json_extract(line, '$.op'), max(json_extract(line, '$.ts')) FROM records"
                         " WHERE (instr(line, '\"ev\":\"pin.change\"') OR"
                         " instr(line, '\"ev\":\"password.change\"'))"
                         " AND json_extract(line, '$.ev') IN ('pin.change', 'password.change')"
                         " AND json_extract(line, '$.op') IS NOT NULL GROUP BY 1"
                         " ON CONFLICT(operator) DO UPDATE SET ts = max(ts, excluded.ts)");
                if (r < 0)
                        return r;
        }
        r = exec(s, history_triggers);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_close(Store *s)
{
        if (!s)
                return NULL;
        sqlite3_close_v2(s->db);
        free(s->actor);
        free(s->reason);
        free(s);
        return NULL;
}

int store_begin(Store *s)
{
        return exec(s, "BEGIN IMMEDIATE");
}

int store_commit(Store *s)
{
        int r = exec(s, "COMMIT");
        if (r < 0)
                store_rollback(s);
        return r;
}

void store_rollback(Store *s)
{
        if (!sqlite3_get_autocommit(s->db))
                (void)exec(s, "ROLLBACK");
}

static int set_string(char **where, const char *v)
{
        char *c = NULL;
        if (v && !(c = strdup(v)))
                return -ENOMEM;
        free(*where);
        *where = c;
        return 0;
}

int store_set_actor(Store *s, const char *actor)
{
        return set_string(&s->actor, actor);
}

int store_set_reason(Store *s, const char *reason)
{
        return set_string(&s->reason, reason);
}

/* The last row's id and hash (0 and REGISTER_PREV_FIRST for an empty history). */
static int history_head(Store *s, int64_t *ret_id, char ret_hash[SHA256_HEX_MAX])
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, coalesce(hash, '') FROM history ORDER BY id DESC LIMIT 1", NULL);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_id = 0;
                memcpy(ret_hash, REGISTER_PREV_FIRST, SHA256_HEX_MAX);
                return 0;
        }
        const char *h = col_text(st, 1);
        if (strlen(h) != SHA256_HEX_MAX - 1)
                return -EIO; /* an unchained row at the head: migrate() chains every row */
        *ret_id = sqlite3_column_int64(st, 0);
        memcpy(ret_hash, h, SHA256_HEX_MAX);
        return 0;
}

/* Rows written before the chain existed (hash NULL) are chained in id order, as they are. */
static int history_chain_rows(Store *s)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char prev[SHA256_HEX_MAX] = REGISTER_PREV_FIRST;
        int r = prepare(
                s, &st,
                "SELECT id, ts, object, object_id, action, coalesce(detail, ''), coalesce(actor, ''),"
                " coalesce(reason, ''), coalesce(hash, '') FROM history ORDER BY id",
                NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                const char *stored = col_text(st, 8);
                if (stored[0]) {
                        if (strlen(stored) != SHA256_HEX_MAX - 1)
                                return -EIO;
                        memcpy(prev, stored, SHA256_HEX_MAX);
                        continue;
                }
                RegisterRow row = {
                        .id = sqlite3_column_int64(st, 0),
                        .ts = sqlite3_column_int64(st, 1),
                        .object = col_text(st, 2),
                        .object_id = col_text(st, 3),
                        .action = col_text(st, 4),
                        .detail = col_text(st, 5),
                        .actor = col_text(st, 6),
                        .reason = col_text(st, 7),
                        .prev = prev,
                };
                char hash[SHA256_HEX_MAX];
                _cleanup_stmt_ sqlite3_stmt *up = NULL;

                r = register_row_hash(&row, hash);
                if (r < 0)
                        return r;
                r = prepare(s, &up,
                            "UPDATE history SET actor = ?, reason = ?, prev = ?, hash = ? WHERE id = ?",
                            "ssssi", row.actor, row.reason, prev, hash, row.id);
                if (r < 0)
                        return r;
                r = step_done(up);
                if (r < 0)
                        return r;
                memcpy(prev, hash, SHA256_HEX_MAX);
        }
        return r;
}

/* One chained row: the next id after the head, its prev the head's hash. reason NULL: the connection's. */
static int history_add_reason(Store *s, int64_t now, const char *object, const char *id, const char *action,
                              const char *detail, const char *reason)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char prev[SHA256_HEX_MAX], hash[SHA256_HEX_MAX];
        int64_t last;
        int r;

        r = history_head(s, &last, prev);
        if (r < 0)
                return r;
        RegisterRow row = {
                .id = last + 1,
                .ts = now,
                .object = object,
                .object_id = id,
                .action = action,
                .detail = detail ?: "",
                .actor = s->actor ?: "",
                .reason = reason ?: s->reason ?: "",
                .prev = prev,
        };
        r = register_row_hash(&row, hash);
        if (r < 0)
                return r;
        r = prepare(
                s, &st,
                "INSERT INTO history (id, ts, object, object_id, action, detail, actor, reason, prev, hash)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                "iissssssss", row.id, now, object, id, action, row.detail, row.actor, row.reason, prev,
                hash);
        return r < 0 ? r : step_done(st);
}

static int history_add(Store *s, int64_t now, const char *object, const char *id, const char *action,
                       const char *detail)
{
        return history_add_reason(s, now, object, id, action, detail, NULL);
}

int store_history_add(Store *s, int64_t now_usec, const char *object, const char *id, const char *action,
                      const char *detail)
{
        return history_add(s, now_usec, object, id, action, detail);
}

/* ---- terminals ---- */

int store_terminal_add(Store *s, int64_t now_usec, const char *id, const char *office,
                       const char *identity_pem)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_office_ensure(s, office);
        if (r < 0)
                return r;
        r = prepare(s, &st, "INSERT INTO terminals (id, office, identity_pem, created) VALUES (?,?,?,?)",
                    "sssi", id, office, identity_pem, now_usec);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "terminal", id, "add", office);
}

static int terminal_cert_put(Store *s, int64_t now_usec, const char *id, const char *status,
                             const char *cert_sha256)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(
                s, &st,
                "INSERT INTO terminal_certs (id, status, cert_sha256, changed) VALUES (?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
                " cert_sha256 = coalesce(excluded.cert_sha256, cert_sha256), changed = excluded.changed",
                "sssi", id, status, cert_sha256, now_usec);
        return r < 0 ? r : step_done(st);
}

int store_terminal_enrol(Store *s, int64_t now_usec, const char *id, const char *office,
                         const char *identity_pem, const char *cert_sha256)
{
        int r = store_terminal_add(s, now_usec, id, office, identity_pem);
        if (r < 0)
                return r;
        r = terminal_cert_put(s, now_usec, id, "active", cert_sha256);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "terminal", id, "certificate", cert_sha256);
}

int store_terminal_get(Store *s, const char *id, char **ret_office, char **ret_identity_pem,
                       bool *ret_retired)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *office = NULL, *pem = NULL;
        int r = prepare(s, &st,
                        "SELECT t.office, t.identity_pem, coalesce(c.status, 'active') FROM terminals t"
                        " LEFT JOIN terminal_certs c ON c.id = t.id WHERE t.id = ?",
                        "s", id);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        office = strdup(col_text(st, 0));
        pem = strdup(col_text(st, 1));
        if (!office || !pem)
                return -ENOMEM;
        if (ret_office)
                *ret_office = TAKE_PTR(office);
        if (ret_identity_pem)
                *ret_identity_pem = TAKE_PTR(pem);
        if (ret_retired)
                *ret_retired = streq(col_text(st, 2), "retired");
        return 0;
}

int store_terminal_rekey(Store *s, int64_t now_usec, const char *id, const char *cert_sha256)
{
        bool retired;
        int r = store_terminal_get(s, id, NULL, NULL, &retired);
        if (r < 0)
                return r;
        if (retired)
                return -EKEYREVOKED;
        r = terminal_cert_put(s, now_usec, id, "active", cert_sha256);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "terminal", id, "rekey", cert_sha256);
}

int store_terminal_retire(Store *s, int64_t now_usec, const char *id, const char *reason)
{
        bool retired;
        int r = store_terminal_get(s, id, NULL, NULL, &retired);
        if (r < 0)
                return r;
        if (retired)
                return -EALREADY;
        r = terminal_cert_put(s, now_usec, id, "retired", NULL);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "terminal", id, "retire", reason);
}

int store_terminal_access(Store *s, const char *id, const char *cert_sha256)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT status, cert_sha256 FROM terminal_certs WHERE id = ?", "s", id);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r; /* no row: enrolled before certificates were pinned, or unknown */
        if (streq(col_text(st, 0), "retired"))
                return -EKEYREVOKED;
        if (sqlite3_column_type(st, 1) != SQLITE_NULL && !streq(col_text(st, 1), cert_sha256))
                return -EKEYREJECTED;
        return 0;
}

int store_terminal_identity(Store *s, const char *id, char **ret_identity_pem)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT identity_pem FROM terminals WHERE id = ?", "s", id);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        char *p = strdup(col_text(st, 0));
        if (!p)
                return -ENOMEM;
        *ret_identity_pem = p;
        return 0;
}

int store_terminal_touch(Store *s, const char *id, int64_t now_usec)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "UPDATE terminals SET last_seen = ?, silent_alerted = 0 WHERE id = ?", "is",
                        now_usec, id);
        return r < 0 ? r : step_done(st);
}

/* ---- logs and records ---- */

static int log_from_row(sqlite3_stmt *st, StoreLog *l)
{
        const char *id = col_text(st, 0), *term = col_text(st, 1), *hash = col_text(st, 3);
        const void *key = sqlite3_column_blob(st, 4);

        if (strlen(id) >= sizeof(l->log) || strlen(term) >= sizeof(l->term) ||
            strlen(hash) >= sizeof(l->last_hash) || sqlite3_column_bytes(st, 4) != ED25519_KEY_SIZE)
                return -EIO;
        *l = (StoreLog){
                .last_seq = (uint64_t)sqlite3_column_int64(st, 2),
                .epochs = (uint32_t)sqlite3_column_int64(st, 5),
        };
        strcpy(l->log, id);
        strcpy(l->term, term);
        strcpy(l->last_hash, hash);
        memcpy(l->key, key, ED25519_KEY_SIZE);
        return 0;
}

int store_log_get(Store *s, const char *log, StoreLog *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        StoreLog l;
        int r;

        r = prepare(s, &st, "SELECT id, term, last_seq, last_hash, key, epochs FROM logs WHERE id = ?", "s",
                    log);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = log_from_row(st, &l);
        if (r < 0)
                return r;
        *ret = l;
        return 0;
}

int store_log_put(Store *s, const StoreLog *l, int64_t now_usec)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(
                s, &st,
                "INSERT INTO logs (id, term, last_seq, last_hash, key, epochs, first_seen, last_seen)"
                " VALUES (?1,?2,?3,?4,?5,?6,?7,?7) ON CONFLICT(id) DO UPDATE SET"
                " last_seq = ?3, last_hash = ?4, key = ?5, epochs = ?6, last_seen = ?7",
                "ssusbui", l->log, l->term, l->last_seq, l->last_hash, (const void *)l->key,
                (size_t)ED25519_KEY_SIZE, (uint64_t)l->epochs, now_usec);
        return r < 0 ? r : step_done(st);
}

int store_log_count_for_terminal(Store *s, const char *term, uint64_t *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT count(*) FROM logs WHERE term = ?", "s", term);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = (uint64_t)sqlite3_column_int64(st, 0);
        return 0;
}

int store_record_hash(Store *s, const char *log, uint64_t seq, char ret[SHA256_HEX_MAX])
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT hash FROM records WHERE log = ? AND seq = ?", "su", log, seq);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        const char *h = col_text(st, 0);
        if (strlen(h) != SHA256_HEX_MAX - 1)
                return -EIO;
        memcpy(ret, h, SHA256_HEX_MAX);
        return 0;
}

int store_record_put(Store *s, const char *log, uint64_t seq, const char *line, size_t len, const char *hash)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "INSERT INTO records (log, seq, hash, line) VALUES (?,?,?,?)", "sust", log,
                        seq, hash, line, len);
        return r < 0 ? r : step_done(st);
}

int store_logs_foreach(Store *s, store_log_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, term, last_seq, last_hash, key, epochs FROM logs ORDER BY id",
                        NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                StoreLog l;
                r = log_from_row(st, &l);
                if (r < 0)
                        return r;
                r = cb(&l, userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_records_foreach(Store *s, const char *log, store_record_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT seq, line FROM records WHERE log = ? ORDER BY seq", "s", log);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                const char *line = col_text(st, 1);
                r = cb((uint64_t)sqlite3_column_int64(st, 0), line, (size_t)sqlite3_column_bytes(st, 1),
                       userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_record_count(Store *s, uint64_t *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT count(*) FROM records", NULL);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = (uint64_t)sqlite3_column_int64(st, 0);
        return 0;
}

/* ---- alerts ---- */

int store_alert_add(Store *s, int64_t now_usec, const char *kind, const char *term, const char *log,
                    uint64_t seq, const char *detail)
{
        _cleanup_stmt_ sqlite3_stmt *fold = NULL, *st = NULL;
        int r;

        /* A terminal retrying the same refused batch raises the same alert each time: fold it into
         * the first row (count, last_seen) instead of a new row per retry. */
        r = prepare(s, &fold,
                    "UPDATE alerts SET count = count + 1, last_seen = ?1 WHERE id = (SELECT id FROM alerts"
                    " WHERE kind = ?2 AND term IS ?3 AND log IS ?4 AND seq IS ?5 AND detail IS ?6"
                    " ORDER BY id DESC LIMIT 1)",
                    "isssus", now_usec, kind, term, log, seq, detail);
        if (r < 0)
                return r;
        r = step_done(fold);
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) > 0)
                return 0;
        r = prepare(s, &st,
                    "INSERT INTO alerts (ts, kind, term, log, seq, detail, count, last_seen)"
                    " VALUES (?1,?2,?3,?4,?5,?6,1,?1)",
                    "isssus", now_usec, kind, term, log, seq, detail);
        return r < 0 ? r : step_done(st);
}

int store_alerts_foreach(Store *s, store_alert_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(
                s, &st,
                "SELECT id, ts, kind, term, log, seq, detail, count, ifnull(last_seen, ts) FROM alerts"
                " ORDER BY id",
                NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), col_text(st, 2),
                       col_text(st, 3), col_text(st, 4), (uint64_t)sqlite3_column_int64(st, 5),
                       col_text(st, 6), (uint64_t)sqlite3_column_int64(st, 7), sqlite3_column_int64(st, 8),
                       userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_alert_silent(Store *s, int64_t now_usec, uint64_t silent_usec, unsigned *ret_n)
{
        int64_t limit = now_usec - (int64_t)silent_usec;
        unsigned n = 0;
        int r;

        r = store_begin(s);
        if (r < 0)
                return r;
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = prepare(s, &st,
                            "INSERT INTO alerts (ts, kind, term, detail) SELECT ?1, 'silent', id,"
                            " 'no post since ' || last_seen FROM terminals"
                            " WHERE last_seen IS NOT NULL AND last_seen < ?2 AND silent_alerted = 0",
                            "ii", now_usec, limit);
                if (r >= 0)
                        r = step_done(st);
                if (r >= 0)
                        n = (unsigned)sqlite3_changes(s->db);
        }
        if (r >= 0) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = prepare(s, &st,
                            "UPDATE terminals SET silent_alerted = 1"
                            " WHERE last_seen IS NOT NULL AND last_seen < ? AND silent_alerted = 0",
                            "i", limit);
                if (r >= 0)
                        r = step_done(st);
        }
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        r = store_commit(s);
        if (r < 0)
                return r;
        if (ret_n)
                *ret_n = n;
        return 0;
}

/* ---- registry ---- */

int store_office_ensure(Store *s, const char *id)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "INSERT OR IGNORE INTO offices (id) VALUES (?)", "s", id);
        return r < 0 ? r : step_done(st);
}

/* 1 when table has a row with this id, 0 when not. table is one of ours, never user input. */
static int row_exists(Store *s, const char *table, const char *id)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char sql[96];
        int r;

        snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE id = ?", table);
        r = prepare(s, &st, sql, "s", id);
        return r < 0 ? r : step_row(st);
}

/* Ensure every office of a space-separated list. */
static int offices_ensure(Store *s, const char *list)
{
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                r = store_office_ensure(s, t);
                if (r < 0)
                        return r;
        }
        return 0;
}

int store_operator_add(Store *s, int64_t now_usec, const char *id, const char *name, const char *offices)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = offices_ensure(s, offices);
        if (r < 0)
                return r;
        r = prepare(s, &st, "INSERT INTO operators (id, name, offices, status) VALUES (?,?,?,'active')",
                    "sss", id, name, offices);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "operator", id, "add", offices);
}

int store_operator_set_status(Store *s, int64_t now_usec, const char *id, const char *status,
                              const char *reason)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "UPDATE operators SET status = ? WHERE id = ?", "ss", status, id);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return -ENOENT;
        return history_add_reason(s, now_usec, "operator", id, status, NULL, reason);
}

int store_operator_get(Store *s, const char *id, StoreOperator *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        StoreOperator o = {};
        int r = prepare(s, &st, "SELECT status FROM operators WHERE id = ?", "s", id);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (strlen(col_text(st, 0)) >= sizeof(o.status))
                return -EIO;
        strcpy(o.status, col_text(st, 0));
        *ret = o;
        return 0;
}

int store_group_add(Store *s, int64_t now_usec, const char *id, const char *offices, const char *members)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *detail = NULL, *copy = strdup(members);
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                r = row_exists(s, "operators", t);
                if (r <= 0)
                        return r < 0 ? r : -ENOENT;
        }
        r = offices_ensure(s, offices);
        if (r < 0)
                return r;
        r = prepare(s, &st, "INSERT INTO groups_ (id, offices, members) VALUES (?,?,?)", "sss", id, offices,
                    members);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        if (asprintf(&detail, "offices=%s members=%s", offices, members) < 0)
                return -ENOMEM;
        return history_add(s, now_usec, "group", id, "add", detail);
}

int store_card_issue(Store *s, int64_t now_usec, const char *card_id, const char *cert_pem,
                     const char *operator_id, const char *group_id)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *detail = NULL;
        int r = row_exists(s, operator_id ? "operators" : "groups_", operator_id ?: group_id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = prepare(s, &st,
                    "INSERT INTO cards (id, cert_pem, operator, group_, status) VALUES (?,?,?,?,'active')",
                    "ssss", card_id, cert_pem, operator_id, group_id);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        if (asprintf(&detail, "%s=%s", operator_id ? "operator" : "group", operator_id ?: group_id) < 0)
                return -ENOMEM;
        return history_add(s, now_usec, "card", card_id, "issue", detail);
}

int store_card_set_status(Store *s, int64_t now_usec, const char *card_id, const char *status,
                          const char *reason)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "UPDATE cards SET status = ? WHERE id = ?", "ss", status, card_id);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return -ENOENT;
        return history_add_reason(s, now_usec, "card", card_id, status, NULL, reason);
}

int store_card_get(Store *s, const char *card_id, StoreCard *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        StoreCard c = {};
        int r = prepare(
                s, &st,
                "SELECT coalesce(operator, ''), coalesce(group_, ''), status, coalesce((SELECT ts FROM"
                " history WHERE object = 'card' AND object_id = cards.id AND action = 'issue'"
                " ORDER BY id LIMIT 1), 0) FROM cards WHERE id = ?",
                "s", card_id);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (strlen(col_text(st, 0)) >= sizeof(c.operator_id) ||
            strlen(col_text(st, 1)) >= sizeof(c.group_id) || strlen(col_text(st, 2)) >= sizeof(c.status))
                return -EIO;
        strcpy(c.operator_id, col_text(st, 0));
        strcpy(c.group_id, col_text(st, 1));
        strcpy(c.status, col_text(st, 2));
        c.issued = sqlite3_column_int64(st, 3);
        *ret = c;
        return 0;
}

/* ---- PIN/password age ---- */

int store_secret_changed(Store *s, const char *operator_id, int64_t ts)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st,
                        "INSERT INTO secret_changes (operator, ts) VALUES (?1, ?2)"
                        " ON CONFLICT(operator) DO UPDATE SET ts = max(ts, ?2)",
                        "si", operator_id, ts);
        return r < 0 ? r : step_done(st);
}

int store_secret_reset(Store *s, int64_t now_usec, const char *operator_id, int64_t ts)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char detail[64];
        int r = row_exists(s, "operators", operator_id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = prepare(s, &st,
                    "INSERT INTO secret_changes (operator, ts) VALUES (?1, ?2)"
                    " ON CONFLICT(operator) DO UPDATE SET ts = ?2",
                    "si", operator_id, ts);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        snprintf(detail, sizeof(detail), "pin_changed=%" PRId64, ts);
        return history_add(s, now_usec, "operator", operator_id, "pin-reset", detail);
}

int store_secret_get(Store *s, const char *operator_id, int64_t *ret_ts)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT ts FROM secret_changes WHERE operator = ?", "s", operator_id);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret_ts = sqlite3_column_int64(st, 0);
        return 0;
}

int store_history_foreach(Store *s, const char *object, const char *id, store_history_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(
                s, &st,
                "SELECT id, ts, object, object_id, action, coalesce(detail, ''), coalesce(actor, ''),"
                " coalesce(reason, ''), coalesce(prev, ''), coalesce(hash, '') FROM history"
                " WHERE (?1 IS NULL OR object = ?1) AND (?2 IS NULL OR object_id = ?2) ORDER BY id",
                "ss", object, id);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                RegisterRow row = {
                        .id = sqlite3_column_int64(st, 0),
                        .ts = sqlite3_column_int64(st, 1),
                        .object = col_text(st, 2),
                        .object_id = col_text(st, 3),
                        .action = col_text(st, 4),
                        .detail = col_text(st, 5),
                        .actor = col_text(st, 6),
                        .reason = col_text(st, 7),
                        .prev = col_text(st, 8),
                        .hash = col_text(st, 9),
                };
                r = cb(&row, userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

/* A JSON array of the ids of a space-separated list. */
static int id_list_to_json(const char *list, JsonValue **ret)
{
        _cleanup_json_ JsonValue *a = NULL;
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        r = json_new_array(&a);
        if (r < 0)
                return r;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                JsonValue *v;
                r = json_new_string(t, &v);
                if (r < 0)
                        return r;
                r = json_array_append(a, v);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* Run a query and turn every row into an object with build(); append to a new array at key. */
typedef int (*row_to_json_fn)(sqlite3_stmt *st, JsonValue *o);

static int add_list(Store *s, JsonValue *bundle, const char *key, const char *sql, row_to_json_fn build)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ JsonValue *a = NULL;
        int r;

        r = json_new_array(&a);
        if (r < 0)
                return r;
        r = prepare(s, &st, sql, NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                _cleanup_json_ JsonValue *o = NULL;
                r = json_new_object(&o);
                if (r < 0)
                        return r;
                r = build(st, o);
                if (r < 0)
                        return r;
                r = json_array_append(a, TAKE_PTR(o));
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return json_object_set(bundle, key, TAKE_PTR(a));
}

static int office_row(sqlite3_stmt *st, JsonValue *o)
{
        int r = json_object_set_string(o, "id", col_text(st, 0));
        if (r >= 0 && sqlite3_column_type(st, 1) != SQLITE_NULL)
                r = json_object_set_string(o, "hours", col_text(st, 1));
        return r;
}

static int terminal_row(sqlite3_stmt *st, JsonValue *o)
{
        int r = json_object_set_string(o, "id", col_text(st, 0));
        return r < 0 ? r : json_object_set_string(o, "office", col_text(st, 1));
}

static int operator_row(sqlite3_stmt *st, JsonValue *o)
{
        JsonValue *offices;
        int r = json_object_set_string(o, "id", col_text(st, 0));
        if (r >= 0 && sqlite3_column_type(st, 1) != SQLITE_NULL)
                r = json_object_set_string(o, "name", col_text(st, 1));
        if (r >= 0)
                r = id_list_to_json(col_text(st, 2), &offices);
        if (r >= 0)
                r = json_object_set(o, "offices", offices);
        if (r >= 0)
                r = json_object_set_string(o, "status", col_text(st, 3));
        if (r >= 0 && sqlite3_column_type(st, 4) != SQLITE_NULL)
                r = json_object_set_integer(o, "pin_changed", sqlite3_column_int64(st, 4));
        return r;
}

static int group_row(sqlite3_stmt *st, JsonValue *o)
{
        JsonValue *v;
        int r = json_object_set_string(o, "id", col_text(st, 0));
        if (r >= 0)
                r = id_list_to_json(col_text(st, 1), &v);
        if (r >= 0)
                r = json_object_set(o, "offices", v);
        if (r >= 0)
                r = id_list_to_json(col_text(st, 2), &v);
        if (r >= 0)
                r = json_object_set(o, "members", v);
        return r;
}

static int card_row(sqlite3_stmt *st, JsonValue *o)
{
        bool individual = sqlite3_column_type(st, 1) != SQLITE_NULL;
        int r = json_object_set_string(o, "id", col_text(st, 0));
        if (r >= 0)
                r = json_object_set_string(o, "kind", individual ? "individual" : "group");
        if (r >= 0)
                r = json_object_set_string(o, individual ? "operator" : "group",
                                           col_text(st, individual ? 1 : 2));
        if (r >= 0)
                r = json_object_set_string(o, "status", col_text(st, 3));
        return r;
}

int store_registry_to_policy(Store *s, JsonValue *bundle)
{
        int r;

        if ((r = add_list(s, bundle, "offices", "SELECT id, hours FROM offices ORDER BY id", office_row)) <
                    0 ||
            (r = add_list(s, bundle, "terminals",
                          "SELECT id, office FROM terminals WHERE id NOT IN"
                          " (SELECT id FROM terminal_certs WHERE status = 'retired') ORDER BY id",
                          terminal_row)) < 0 ||
            (r = add_list(s, bundle, "operators",
                          "SELECT o.id, o.name, o.offices, o.status, sc.ts FROM operators o"
                          " LEFT JOIN secret_changes sc ON sc.operator = o.id ORDER BY o.id",
                          operator_row)) < 0 ||
            (r = add_list(s, bundle, "groups", "SELECT id, offices, members FROM groups_ ORDER BY id",
                          group_row)) < 0 ||
            (r = add_list(s, bundle, "cards", "SELECT id, operator, group_, status FROM cards ORDER BY id",
                          card_row)) < 0)
                return r;
        return 0;
}

/* ---- policy bundles ---- */

int store_policy_add(Store *s, int64_t serial, int64_t now_usec, const char *body, size_t len)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "INSERT INTO policies (serial, published, body) VALUES (?,?,?)", "iib",
                        serial, now_usec, (const void *)body, len);
        return r < 0 ? r : step_done(st);
}

int store_policy_latest(Store *s, int64_t *ret_serial, char **ret_body, size_t *ret_len)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT serial, body FROM policies ORDER BY serial DESC LIMIT 1", NULL);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (ret_body) {
                size_t n = (size_t)sqlite3_column_bytes(st, 1);
                char *b = malloc(n + 1);
                if (!b)
                        return -ENOMEM;
                if (n)
                        memcpy(b, sqlite3_column_blob(st, 1), n);
                b[n] = 0;
                *ret_body = b;
                if (ret_len)
                        *ret_len = n;
        }
        if (ret_serial)
                *ret_serial = sqlite3_column_int64(st, 0);
        return 0;
}

/* ---- reading for the audit ---- */

int store_terminals_foreach(Store *s, store_terminal_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, office, coalesce(last_seen, 0) FROM terminals ORDER BY id",
                        NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(col_text(st, 0), col_text(st, 1), sqlite3_column_int64(st, 2), userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_offices_foreach(Store *s, store_office_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, hours FROM offices ORDER BY id", NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(col_text(st, 0), sqlite3_column_type(st, 1) == SQLITE_NULL ? NULL : col_text(st, 1),
                       userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_operators_foreach(Store *s, store_operator_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st,
                        "SELECT o.id, o.offices, o.status, coalesce(r.roles, '') FROM operators o"
                        " LEFT JOIN operator_roles r ON r.id = o.id ORDER BY o.id",
                        NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3), userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_groups_foreach(Store *s, store_group_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, offices, members FROM groups_ ORDER BY id", NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(col_text(st, 0), col_text(st, 1), col_text(st, 2), userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_cards_foreach(Store *s, store_card_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, operator, group_, status FROM cards ORDER BY id", NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(col_text(st, 0), sqlite3_column_type(st, 1) == SQLITE_NULL ? NULL : col_text(st, 1),
                       sqlite3_column_type(st, 2) == SQLITE_NULL ? NULL : col_text(st, 2), col_text(st, 3),
                       userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_office_set_hours(Store *s, int64_t now_usec, const char *id, const char *hours)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "UPDATE offices SET hours = ? WHERE id = ?", "ss", hours, id);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return -ENOENT;
        return history_add(s, now_usec, "office", id, "hours", hours);
}

int store_office_set_calendar(Store *s, int64_t now_usec, const char *id, const char *days,
                              const char *holidays)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = row_exists(s, "offices", id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = prepare(s, &st,
                    "INSERT INTO office_calendar (id, days, holidays) VALUES (?1, coalesce(?2, ?4), "
                    "coalesce(?3, ''))"
                    " ON CONFLICT(id) DO UPDATE SET days = coalesce(?2, days), holidays = coalesce(?3, "
                    "holidays)",
                    "ssss", id, days, holidays, STORE_DEFAULT_DAYS);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        if (days) {
                r = history_add(s, now_usec, "office", id, "days", days);
                if (r < 0)
                        return r;
        }
        return holidays ? history_add(s, now_usec, "office", id, "holidays", holidays) : 0;
}

int store_office_calendars_foreach(Store *s, store_calendar_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT id, days, holidays FROM office_calendar ORDER BY id", NULL);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(col_text(st, 0), col_text(st, 1), col_text(st, 2), userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_operator_set_roles(Store *s, int64_t now_usec, const char *id, const char *roles)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = row_exists(s, "operators", id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = prepare(s, &st,
                    "INSERT INTO operator_roles (id, roles) VALUES (?1, ?2)"
                    " ON CONFLICT(id) DO UPDATE SET roles = ?2",
                    "ss", id, roles);
        if (r < 0)
                return r;
        r = step_done(st);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "operator", id, "roles", roles);
}

struct StoreCursor {
        sqlite3_stmt *st;
};

int store_cursor_open(Store *s, const char *log, uint64_t after_seq, StoreCursor **ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        StoreCursor *c;
        int r = prepare(s, &st, "SELECT seq, line FROM records WHERE log = ? AND seq > ? ORDER BY seq", "su",
                        log, after_seq);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->st = TAKE_PTR(st);
        *ret = c;
        return 0;
}

int store_cursor_next(StoreCursor *c, uint64_t *ret_seq, const char **ret_line, size_t *ret_len)
{
        int r = step_row(c->st);
        if (r <= 0)
                return r;
        *ret_seq = (uint64_t)sqlite3_column_int64(c->st, 0);
        *ret_line = col_text(c->st, 1);
        *ret_len = (size_t)sqlite3_column_bytes(c->st, 1);
        return 1;
}

StoreCursor *store_cursor_free(StoreCursor *c)
{
        if (!c)
                return NULL;
        sqlite3_finalize(c->st);
        free(c);
        return NULL;
}

int store_log_seq_range(Store *s, const char *log, uint64_t *ret_first, uint64_t *ret_last)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT min(seq), max(seq) FROM records WHERE log = ?", "s", log);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r < 0)
                return r;
        if (r == 0 || sqlite3_column_type(st, 0) == SQLITE_NULL)
                return -ENOENT;
        *ret_first = (uint64_t)sqlite3_column_int64(st, 0);
        *ret_last = (uint64_t)sqlite3_column_int64(st, 1);
        return 0;
}

int store_record_line(Store *s, const char *log, uint64_t seq, char **ret_line, size_t *ret_len)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, "SELECT line FROM records WHERE log = ? AND seq = ?", "su", log, seq);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *p = malloc(n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, col_text(st, 0), n);
        p[n] = 0;
        *ret_line = p;
        if (ret_len)
                *ret_len = n;
        return 0;
}

int store_alerts_after(Store *s, int64_t after_id, store_alert_fn cb, void *userdata)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(
                s, &st,
                "SELECT id, ts, kind, term, log, seq, detail, count, ifnull(last_seen, ts) FROM alerts"
                " WHERE id > ? ORDER BY id",
                "i", after_id);
        if (r < 0)
                return r;
        while ((r = step_row(st)) > 0) {
                r = cb(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), col_text(st, 2),
                       col_text(st, 3), col_text(st, 4), (uint64_t)sqlite3_column_int64(st, 5),
                       col_text(st, 6), (uint64_t)sqlite3_column_int64(st, 7), sqlite3_column_int64(st, 8),
                       userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

/* ---- retention ---- */

int store_records_delete_below(Store *s, int64_t now_usec, const char *log, const StoreAnchor *anchor,
                               uint64_t *ret_n)
{
        _cleanup_free_ char *detail = NULL;
        uint64_t n;
        int r;

        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = prepare(s, &st, "DELETE FROM records WHERE log = ? AND seq <= ?", "su", log,
                            anchor->seq);
                if (r < 0)
                        return r;
                r = step_done(st);
                if (r < 0)
                        return r;
                n = (uint64_t)sqlite3_changes(s->db);
        }
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = prepare(s, &st,
                            "INSERT INTO anchors (log, seq, hash, key, epochs) VALUES (?1,?2,?3,?4,?5)"
                            " ON CONFLICT(log) DO UPDATE SET seq = ?2, hash = ?3, key = ?4, epochs = ?5",
                            "susbu", log, anchor->seq, anchor->hash, (const void *)anchor->key,
                            (size_t)ED25519_KEY_SIZE, (uint64_t)anchor->epochs);
                if (r < 0)
                        return r;
                r = step_done(st);
                if (r < 0)
                        return r;
        }
        if (asprintf(&detail, "deleted %" PRIu64 " records, seq <= %" PRIu64 ", last hash %s", n,
                     anchor->seq, anchor->hash) < 0)
                return -ENOMEM;
        r = history_add(s, now_usec, "log", log, "retention", detail);
        if (r < 0)
                return r;
        if (ret_n)
                *ret_n = n;
        return 0;
}

int store_log_anchor(Store *s, const char *log, StoreAnchor *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        StoreAnchor a = {};
        int r = prepare(s, &st, "SELECT seq, hash, key, epochs FROM anchors WHERE log = ?", "s", log);
        if (r < 0)
                return r;
        r = step_row(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        const char *h = col_text(st, 1);
        if (strlen(h) != SHA256_HEX_MAX - 1 || sqlite3_column_bytes(st, 2) != ED25519_KEY_SIZE)
                return -EIO;
        a.seq = (uint64_t)sqlite3_column_int64(st, 0);
        memcpy(a.hash, h, SHA256_HEX_MAX);
        memcpy(a.key, sqlite3_column_blob(st, 2), ED25519_KEY_SIZE);
        a.epochs = (uint32_t)sqlite3_column_int64(st, 3);
        *ret = a;
        return 0;
}
