/* The centre's store interface: records, logs, alerts, terminals, the registry and policy bundles. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "register-chain.h"

/*
 * One interface, two backends (store-backend.h): SQLite (WAL, synchronous=FULL), the default, and
 * PostgreSQL (libpq) for several collectors in front of one database. A Store is one connection,
 * used by one thread at a time; several processes may open the same database. Errors: -ENOENT not
 * found, -EEXIST already there, -EBUSY locked for too long, -EIO backend failure, -ENOMEM. Writes
 * made between store_begin() and store_commit() are durable when store_commit() returns 0.
 *
 * PostgreSQL: any call may also answer -ECONNRESET, the session with the server lost (a restart, a
 * failover, pg_terminate_backend()). Transient, as -EBUSY: the caller tries again later, and a server
 * answers 503 "try again", never 4xx, and acknowledges nothing the call was to store. Inside the caller's
 * transaction (store_begin() until store_commit() or store_rollback()) every later call answers it too,
 * until the caller rolls back: the transaction is gone, nothing of it stored (store_commit() failing so
 * may have stored it: see there); run it again whole. Outside one, a read, and any call whose session the
 * server had ended while the connection was idle, goes to a connection made again and does not fail
 * (store-pg.c ensure_session()); a write that failed as its session ended answers -ECONNRESET (it may
 * have been done) and the next call makes the connection again (-ECONNREFUSED when it cannot). A store
 * that holds a run lock is not made again: -ENOLCK (store_run_lock()).
 */
typedef struct Store Store;

/*
 * url: "sqlite:PATH" or a bare PATH (SQLite; ":memory:" for tests), "postgresql://…" /
 * "postgres://…" or a libpq conninfo ("host=/run/postgresql dbname=mamori"). Makes the schema.
 */
int store_open(const char *url, Store **ret);
Store *store_close(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_close);
#define _cleanup_store_ _cleanup_(store_closep)
/* Which backend url names ("sqlite" | "postgresql") and what it is given; -EINVAL empty. */
int store_url_backend(const char *url, const char **ret_name, const char **ret_target);
/* url for messages, with any password replaced by '*' (malloc'd). */
char *store_url_display(const char *url);
const char *store_backend_name(Store *s);
/*
 * What a program does with the store, for the privileges of its database role (PostgreSQL; README,
 * "PostgreSQL roles"). READ: mamori-admin's reports (SELECT on every table). INGEST: a collector (what it
 * reads and inserts, and mamori_records_maintain(); never DELETE on records). REGISTER: mamori-admin's
 * changes of the register and the policy. OWNER: retention (drops months' partitions): the tables' owner
 * only.
 */
typedef enum StoreAccess {
        STORE_ACCESS_READ,
        STORE_ACCESS_INGEST,
        STORE_ACCESS_REGISTER,
        STORE_ACCESS_OWNER,
} StoreAccess;
/* Checked before anything is done: 0, or -EACCES and *ret_why (malloc'd): the first privilege the role lacks
 * and the GRANT that gives what `need` needs. SQLite: always 0 (the file's permissions decide). */
int store_check_access(Store *s, StoreAccess need, char **ret_why);
/*
 * What a program opens the store with: store_open(), with store_check_access(s, need) before anything of the
 * store's is read (the history's older rows chained). -errno (PostgreSQL: -EACCES for want of a privilege of
 * the database role, or for a role that may not bring an older store up to date) and *ret_why (malloc'd; not
 * written for -ENOMEM): the whole message after the program's prefix ("mamori-admin: verify: "), which says
 * what failed and what to do — the GRANT to run, the role to open it as, or to check [Store] URL=.
 */
int store_open_checked(const char *url, StoreAccess need, Store **ret, char **ret_why);
/*
 * Privileges the role holds that a program doing `need` must not (PostgreSQL, INGEST: the rights of the
 * tables' owner, or DELETE or TRUNCATE on records: a collector that could destroy records; README,
 * "PostgreSQL roles"). 1 and *ret_why (malloc'd): which, and the REVOKE or the role to use; 0 none (SQLite
 * always: it has no roles).
 */
int store_check_excess(Store *s, StoreAccess need, char **ret_why);
/* Bytes the centre's data takes on disk; -EOPNOTSUPP for an in-memory database. */
int store_size(Store *s, uint64_t *ret);

/*
 * Housekeeping a backend needs now and then (PostgreSQL: the month partitions of records for this month
 * and the next two, and records that arrived for a month up to then without a partition, which wait in the
 * default partition, moved into theirs; later months get none), and one clock-ahead alert per log with
 * records filed after those months (both backends). Runs in transactions of its own.
 */
int store_maintain(Store *s, int64_t now_usec);
/*
 * Outside a transaction: take the lock `name` (not a log id: "#retention") for as long as this store stays
 * open, without waiting. -EBUSY: another open store holds it, in any process on any host of the deployment
 * (PostgreSQL: a session advisory lock, lost with the connection: every call after the connection dropped
 * fails with -ENOLCK instead of reconnecting, since another run may have held the lock meanwhile. SQLite:
 * flock() on DATABASE-NAME.lock beside the database); -EOPNOTSUPP: a database in memory.
 */
int store_run_lock(Store *s, const char *name);

int store_begin(Store *s);
/* -ECONNRESET (PostgreSQL): the session ended before or during COMMIT; if during, the transaction may be
 * stored. Acknowledge nothing (the collector answers 503): what a terminal sends again is compared with what
 * is stored, and stored once. */
int store_commit(Store *s);
void store_rollback(Store *s);

/* ---- terminals ---- */
int store_terminal_add(Store *s, int64_t now_usec, const char *id, const char *office,
                       const char *identity_pem);
/* *ret_identity_pem malloc'd; -ENOENT for an unknown terminal. */
int store_terminal_identity(Store *s, const char *id, char **ret_identity_pem);
int store_terminal_touch(Store *s, const char *id, int64_t now_usec);
/*
 * Terminal lifecycle (DESIGN §11). enrol: store_terminal_add() plus the one certificate (hex SHA-256
 * of its DER) the collector accepts for it. get: office, identity and whether it is retired (each
 * ret_* may be NULL). rekey: that certificate replaces the previous one (-EKEYREVOKED retired).
 * retire: -EALREADY when it is. Each is a history row. -ENOENT unknown terminal.
 */
int store_terminal_enrol(Store *s, int64_t now_usec, const char *id, const char *office,
                         const char *identity_pem, const char *cert_sha256);
int store_terminal_get(Store *s, const char *id, char **ret_office, char **ret_identity_pem,
                       bool *ret_retired);
int store_terminal_rekey(Store *s, int64_t now_usec, const char *id, const char *cert_sha256);
int store_terminal_retire(Store *s, int64_t now_usec, const char *id, const char *reason);
/*
 * May the holder of the certificate with this SHA-256 (hex of the DER) act as terminal id? 0 yes
 * (also for a terminal enrolled before certificates were pinned, and for an unknown id: ingest
 * answers those), -EKEYREVOKED retired, -EKEYREJECTED a certificate that was replaced (rekey).
 */
int store_terminal_access(Store *s, const char *id, const char *cert_sha256);

/* ---- logs and records ---- */
typedef struct StoreLog {
        char log[ID128_STRING_MAX];
        char term[65];
        uint64_t last_seq; /* highest seq stored, no gap below */
        char last_hash[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE]; /* current epoch key */
        uint32_t epochs;
        int64_t last_ts; /* the time (StoreRecord.ts) of its last stored record, 0 before any */
} StoreLog;

int store_log_get(Store *s, const char *log, StoreLog *ret);
/* The same inside a transaction, and every other writer of this log waits until it ends: what the
 * ingest of one batch reads before it decides (two collectors racing one log store it once). -EINVAL
 * outside a transaction; PostgreSQL: -EIO when a statement of the transaction already failed, -ECONNRESET
 * when its session is gone (both: roll back). */
int store_log_get_locked(Store *s, const char *log, StoreLog *ret);
/* Insert or update. */
int store_log_put(Store *s, const StoreLog *l, int64_t now_usec);
int store_log_count_for_terminal(Store *s, const char *term, uint64_t *ret);
/* Line hash of a stored record (made from its line: records are stored without it); -ENOENT if not stored.
 */
int store_record_hash(Store *s, const char *log, uint64_t seq, char ret[SHA256_HEX_MAX]);
/*
 * Records of one log (ascending seq) in one go: ingest stores a batch with one call (PostgreSQL: a COPY per
 * 250 rows), inside its transaction, which makes the call all or nothing.
 * ts is the record's time as the store files it (PostgreSQL partitions records by its month): the record's
 * own ts, but never earlier than the ts of the record before it in the log (the running maximum), so
 * every month holds a seq range of each log and retention deletes a prefix of the chain (a record written
 * after a clock jump back is filed, and kept, with the younger record before it).
 */
typedef struct StoreRecord {
        uint64_t seq;
        int64_t ts;
        const char *line;
        size_t len;
} StoreRecord;
/* The time to file a record at: the running maximum described above. */
static inline int64_t store_record_time(int64_t previous, int64_t record_ts)
{
        return record_ts > previous ? record_ts : previous;
}
int store_records_put(Store *s, const char *log, const StoreRecord *v, size_t n);

/* Every log (ordered by log id) and every record of one log (ascending seq). cb < 0 stops. */
typedef int (*store_log_fn)(const StoreLog *l, void *userdata);
int store_logs_foreach(Store *s, store_log_fn cb, void *userdata);
typedef int (*store_record_fn)(uint64_t seq, const char *line, size_t len, void *userdata);
int store_records_foreach(Store *s, const char *log, store_record_fn cb, void *userdata);
int store_record_count(Store *s, uint64_t *ret);
/* The records the logs hold by their state (last seq less what retention deleted): no table scan. */
int store_record_total(Store *s, uint64_t *ret);

/* ---- alerts ---- */
/* Inside a transaction (-EINVAL outside; PostgreSQL: -EIO a statement of it already failed, -ECONNRESET its
 * session gone): alert ids become visible in id order (see store.c). */
int store_alert_add(Store *s, int64_t now_usec, const char *kind, const char *term, const char *log,
                    uint64_t seq, const char *detail);
/* Identical alerts (kind, term, log, seq, detail) are folded into one row: ts is the first time,
 * last_seen the latest, count how many times it was raised. */
typedef int (*store_alert_fn)(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                              uint64_t seq, const char *detail, uint64_t count, int64_t last_seen,
                              void *userdata);
int store_alerts_foreach(Store *s, store_alert_fn cb, void *userdata);
/*
 * Raise one "silent" alert for every terminal that was seen once but not since now - silent_usec
 * and has no open silent alert; a terminal that posts again closes it. *ret_n: alerts raised.
 */
int store_alert_silent(Store *s, int64_t now_usec, uint64_t silent_usec, unsigned *ret_n);

/* ---- registry (mamori-admin); every change also appends a history row ---- */
/*
 * The register's history is append-only and hash-chained: each row carries the hash of the row before
 * it and its own, both computed with register_row_hash() (register-chain.h, shared by all backends)
 * when the row is written; rows are never updated or deleted (SQLite: triggers refuse it; PostgreSQL:
 * not yet enforced by the database). Every row written on this connection after store_set_actor()/
 * store_set_reason() carries that actor (who runs mamori-admin) and reason; NULL clears them. The strings
 * are copied.
 */
int store_set_actor(Store *s, const char *actor);
int store_set_reason(Store *s, const char *reason);

int store_office_ensure(Store *s, const char *id);
/* offices and members are space-separated id lists (ids never contain spaces). */
int store_operator_add(Store *s, int64_t now_usec, const char *id, const char *name, const char *offices);
/* reason: this row's reason (NULL: the connection's, see store_set_reason()). */
int store_operator_set_status(Store *s, int64_t now_usec, const char *id, const char *status,
                              const char *reason);
/* -ENOENT unknown operator. */
typedef struct StoreOperator {
        char status[16]; /* active | suspended | retired */
} StoreOperator;
int store_operator_get(Store *s, const char *id, StoreOperator *ret);
int store_group_add(Store *s, int64_t now_usec, const char *id, const char *offices, const char *members);
int store_card_issue(Store *s, int64_t now_usec, const char *card_id, const char *cert_pem,
                     const char *operator_id, const char *group_id);
/* status: active | suspended | returned. -ENOENT unknown card. reason as for operators. */
int store_card_set_status(Store *s, int64_t now_usec, const char *card_id, const char *status,
                          const char *reason);
/* -ENOENT unknown card. operator_id or group_id is "" (a card has exactly one of them). */
typedef struct StoreCard {
        char operator_id[65], group_id[65];
        char status[16];
        int64_t issued; /* µs, from its issue row */
} StoreCard;
int store_card_get(Store *s, const char *card_id, StoreCard *ret);
/* One history row for a change that is not a registry row (the emergency flag). */
int store_history_add(Store *s, int64_t now_usec, const char *object, const char *id, const char *action,
                      const char *detail);
typedef int (*store_history_fn)(const RegisterRow *row, void *userdata);
/* History rows in the order written (ascending id); object/id NULL = all. */
int store_history_foreach(Store *s, const char *object, const char *id, store_history_fn cb, void *userdata);

/*
 * PIN/password age (DESIGN §8 pin_changed). store_secret_changed(): a stored, verified pin.change or
 * password.change record of operator_id at ts (the collector's ingest): keeps the later of the stored
 * time and ts, no history row. store_secret_reset(): a reset at the centre sets it to ts (even
 * backwards: ts 0 makes the next login ask for a change) and writes a history row "operator ID
 * pin-reset". store_registry_to_policy() puts it into each operator's "pin_changed" when known.
 */
int store_secret_changed(Store *s, const char *operator_id, int64_t ts);
int store_secret_reset(Store *s, int64_t now_usec, const char *operator_id, int64_t ts);
/* -ENOENT when nothing is known of that operator. */
int store_secret_get(Store *s, const char *operator_id, int64_t *ret_ts);
/* Adds the arrays "offices", "terminals", "operators", "groups", "cards" of §8 to bundle. */
int store_registry_to_policy(Store *s, JsonValue *bundle);

/* ---- reading for the audit (mamori-admin ledger, audit, trace, watch): streams, never whole tables ---- */
typedef int (*store_terminal_fn)(const char *id, const char *office, int64_t last_seen, void *userdata);
int store_terminals_foreach(Store *s, store_terminal_fn cb, void *userdata);
/* hours: "HH:MM-HH:MM" or NULL when unset. */
typedef int (*store_office_fn)(const char *id, const char *hours, void *userdata);
int store_offices_foreach(Store *s, store_office_fn cb, void *userdata);
/* roles: space-separated, "" when none. */
typedef int (*store_operator_fn)(const char *id, const char *offices, const char *status, const char *roles,
                                 void *userdata);
int store_operators_foreach(Store *s, store_operator_fn cb, void *userdata);
typedef int (*store_group_fn)(const char *id, const char *offices, const char *members, void *userdata);
int store_groups_foreach(Store *s, store_group_fn cb, void *userdata);
/* operator or group is NULL (a card has exactly one of them). */
typedef int (*store_card_fn)(const char *id, const char *operator_id, const char *group_id,
                             const char *status, void *userdata);
int store_cards_foreach(Store *s, store_card_fn cb, void *userdata);
/* Registry changes that the audit reads (with a history row each). -ENOENT unknown id. */
int store_office_set_hours(Store *s, int64_t now_usec, const char *id, const char *hours);
int store_operator_set_roles(Store *s, int64_t now_usec, const char *id, const char *roles);
/*
 * An office's calendar, for outside-hours: working days (space-separated "mon" … "sun") and holidays
 * (space-separated YYYY-MM-DD, local dates). NULL keeps what is set; an office never set has days
 * "mon tue wed thu fri" and no holidays. -ENOENT unknown office.
 */
#define STORE_DEFAULT_DAYS "mon tue wed thu fri"
int store_office_set_calendar(Store *s, int64_t now_usec, const char *id, const char *days,
                              const char *holidays);
/* Offices with a calendar set (the others have the defaults above). */
typedef int (*store_calendar_fn)(const char *office, const char *days, const char *holidays, void *userdata);
int store_office_calendars_foreach(Store *s, store_calendar_fn cb, void *userdata);

/* One log's records with seq > after_seq, ascending: a cursor holds one row at a time. */
typedef struct StoreCursor StoreCursor;
int store_cursor_open(Store *s, const char *log, uint64_t after_seq, StoreCursor **ret);
/* 1 with the next row (*ret_line borrowed until the next call), 0 at the end, < 0 error. */
int store_cursor_next(StoreCursor *c, uint64_t *ret_seq, const char **ret_line, size_t *ret_len);
/* The filing time (StoreRecord.ts) of the row store_cursor_next() gave last; 0 for rows stored before it. */
int64_t store_cursor_ts(const StoreCursor *c);
StoreCursor *store_cursor_free(StoreCursor *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(StoreCursor *, store_cursor_free);
#define _cleanup_store_cursor_ _cleanup_(store_cursor_freep)
/*
 * The highest seq of log filed (StoreRecord.ts) before ts, 0 when none: every later record is filed at
 * or after ts. Where records are filed by month (PostgreSQL) this reads only the months before ts;
 * elsewhere -EOPNOTSUPP (SQLite has no index on the time: search by seq instead).
 */
int store_log_seq_filed_before(Store *s, const char *log, int64_t ts, uint64_t *ret_seq);
/* Lowest and highest stored seq of a log; -ENOENT when it has none. */
int store_log_seq_range(Store *s, const char *log, uint64_t *ret_first, uint64_t *ret_last);
/* The line of one record, malloc'd and NUL-terminated; -ENOENT if not stored. */
int store_record_line(Store *s, const char *log, uint64_t seq, char **ret_line, size_t *ret_len);
/* Alerts with id > after_id, oldest first (watch follows them). */
int store_alerts_after(Store *s, int64_t after_id, store_alert_fn cb, void *userdata);

/* ---- retention ---- */
/*
 * Delete the records of log with seq <= anchor->seq and record the deletion in the history (with note,
 * when not NULL), with the verifier state at the cut (anchor: hex hash of record anchor->seq, the epoch
 * key that signs the next, the epoch count) so that the rest of the log still verifies. *ret_n: records
 * deleted.
 */
typedef struct StoreAnchor {
        uint64_t seq; /* last deleted seq: records > seq remain */
        char hash[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE];
        uint32_t epochs;
} StoreAnchor;
int store_records_delete_below(Store *s, int64_t now_usec, const char *log, const StoreAnchor *anchor,
                               const char *note, uint64_t *ret_n);
/* The anchor and history row of store_records_delete_below() alone, for n records deleted otherwise
 * (a whole month at once, store_records_drop_month()); note is added to the history row. Both: -ESTALE
 * when the log's stored anchor is further on (an anchor never moves back). */
int store_log_anchor_set(Store *s, int64_t now_usec, const char *log, const StoreAnchor *anchor, uint64_t n,
                         const char *note);
/*
 * Inside a transaction: delete every record filed (StoreRecord.ts) in the UTC month that starts at
 * month_usec at once, when there are exactly `expected` of them (the caller has anchored each log's part
 * of it). PostgreSQL drops the month's partition; -EOPNOTSUPP where records are not partitioned (SQLite:
 * delete them by rows), -ENOENT no such partition, -ESTALE another number of records, -EINVAL outside a
 * transaction, -EIO a statement of the transaction already failed or -ECONNRESET its session gone (both:
 * roll back; nothing was dropped).
 */
int store_records_drop_month(Store *s, int64_t month_usec, uint64_t expected);
/* Whether store_records_drop_month() can drop a month at all (PostgreSQL), asked before a caller writes the
 * anchors of one: SQLite keeps records in one table, and deletes them by rows. */
bool store_drops_months(Store *s);
/*
 * Outside a transaction: rebuild, one after the other, the key of every closed month (records filed before
 * the UTC month of now_usec) that was not rebuilt yet, without stopping ingest. Each log inserts into the
 * middle of a month's key, which leaves its pages about half full; a closed month gets few records more, so
 * its key, rebuilt once, stays dense. PostgreSQL: REINDEX TABLE CONCURRENTLY of the month's partition,
 * noted so that each month is rebuilt once; an invalid index that an interrupted REINDEX … CONCURRENTLY
 * left (…_ccnew, …_ccold) is dropped first. cb (< 0 stops) gets each month (its first instant), the bytes
 * of its indexes before and after, and kept_invalid: NULL, or an invalid index of the month that is not
 * such a leftover (a CREATE INDEX CONCURRENTLY that failed or still runs): left alone, and the month not
 * rebuilt (after == before; the next run tries again). dry_run: nothing is rebuilt or dropped, cb gets the
 * months it would rebuild (after 0). -EOPNOTSUPP where records are not kept by month (SQLite).
 */
typedef int (*store_compact_fn)(int64_t month_usec, uint64_t bytes_before, uint64_t bytes_after,
                                const char *kept_invalid, void *userdata);
int store_records_compact(Store *s, int64_t now_usec, bool dry_run, store_compact_fn cb, void *userdata);
/*
 * Outside a transaction: give the file system back the space that deleted records left free inside the
 * store's file (SQLite; -EOPNOTSUPP on PostgreSQL, which gives a dropped month's space back at once and
 * reuses deleted rows' space by its autovacuum). A file made with auto_vacuum=INCREMENTAL (each made by this
 * build) gives it back in steps of at most step_pages pages, each its own short write transaction, so the
 * collector waits for one step at most; full: one VACUUM of the whole file instead (the only way for a file
 * made before, which it turns incremental), holding the write lock throughout. cb (NULL: none; < 0 stops)
 * gets the pages given back and the pages free at the start; a VACUUM, which cannot tell how far it is,
 * calls it now and then with total 0. -EMEDIUMTYPE: not full, and the file is not incremental. The file
 * shrinks when its WAL is checkpointed (at the end, or at a later checkpoint if a reader holds the WAL).
 */
typedef int (*store_reclaim_fn)(uint64_t done, uint64_t total, void *userdata);
int store_reclaim(Store *s, bool full, uint64_t step_pages, store_reclaim_fn cb, void *userdata);
/* What store_reclaim() would give back: bytes free inside the file, its page size, and whether the file
 * gives them back in steps (auto_vacuum=INCREMENTAL). -EOPNOTSUPP as store_reclaim(). */
int store_reclaimable(Store *s, uint64_t *ret_free, uint64_t *ret_page_size, bool *ret_incremental);
/* The anchor of a log whose start was deleted; -ENOENT when the log is complete. */
int store_log_anchor(Store *s, const char *log, StoreAnchor *ret);

/* ---- policy bundles ---- */
int store_policy_add(Store *s, int64_t serial, int64_t now_usec, const char *body, size_t len);
/* The highest serial; -ENOENT none. ret_body may be NULL. */
int store_policy_latest(Store *s, int64_t *ret_serial, char **ret_body, size_t *ret_len);
