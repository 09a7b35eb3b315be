/* What a store backend (store-sqlite.c, store-pg.c) gives store.c: a connection, transactions, queries. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * store.c holds every query of the centre once, in the SQL that SQLite and PostgreSQL share:
 * parameters are "?" (numbered in order) or "?N"; the PostgreSQL backend turns them into "$N".
 * A backend makes its own schema (types differ) and maps its errors to the -errno of store.h:
 * a unique-key violation is -EEXIST, a lock or serialisation timeout -EBUSY, a session the server ended
 * or a connection lost -ECONNRESET (store.h), the rest -EIO.
 */

/* One query parameter: 's' text (p NULL = SQL NULL), 't' text of len bytes, 'b' blob, 'i' int64. */
typedef struct StoreArg {
        char type;
        const void *p;
        size_t len;
        int64_t i;
} StoreArg;

#define STORE_ARGS_MAX 12

/* A running query: rows are read with step(); column pointers stay valid until the next step. */
typedef struct StoreQuery StoreQuery;

/*
 * Months made ahead of this one (PostgreSQL partitions of records); a record filed after them (a clock far
 * ahead) raises a clock-ahead alert at store_maintain(), and PostgreSQL keeps it in the default partition.
 */
#define STORE_MONTHS_AHEAD 2

typedef struct StoreBackend {
        const char *name;    /* "sqlite", "postgresql" */
        bool filed_by_month; /* records partitioned by StoreRecord.ts: a range of it reads only its months */
        /* target: a file path (SQLite) or a URL/conninfo (PostgreSQL); makes the schema. *ret_why: see
         * store_open_checked() (written only with -EACCES). */
        int (*open)(const char *target, void **ret_conn, char **ret_why);
        void (*close)(void *conn);
        int (*begin)(void *conn);
        int (*commit)(void *conn); /* durable when it returns 0; rolled back when it fails */
        void (*rollback)(void *conn);
        /*
         * Serialise writers of one log until the end of the transaction, so that two collectors
         * storing batches of the same log one after the other see each other's rows (SQLite: the
         * write transaction already holds the database; PostgreSQL: a transaction advisory lock).
         */
        int (*lock_log)(void *conn, const char *log);
        int (*query)(void *conn, const char *sql, const StoreArg *args, size_t n_args, StoreQuery **ret);
        int (*step)(StoreQuery *q); /* 1 a row, 0 done, < 0 error */
        bool (*is_null)(StoreQuery *q, int col);
        /* Text or blob bytes of a column ("" for NULL); *ret_len its length. */
        const void *(*bytes)(StoreQuery *q, int col, size_t *ret_len);
        int64_t (*int64)(StoreQuery *q, int col);
        uint64_t (*changes)(StoreQuery *q); /* rows changed by an INSERT/UPDATE/DELETE just run */
        void (*free)(StoreQuery *q);
        /* Insert records of one log; NULL: store.c inserts them one by one. */
        int (*put_records)(void *conn, const char *log, const StoreRecord *v, size_t n);
        /* Bytes the centre's data takes on disk (records included); -EOPNOTSUPP when unknown. */
        int (*size)(void *conn, uint64_t *ret);
        /* store_records_drop_month(); NULL: -EOPNOTSUPP. */
        int (*drop_month)(void *conn, int64_t month_usec, uint64_t expected);
        /* store_reclaim(), store_reclaimable(); NULL: -EOPNOTSUPP. */
        int (*reclaim)(void *conn, bool full, uint64_t step_pages, store_reclaim_fn cb, void *userdata);
        int (*reclaimable)(void *conn, uint64_t *ret_free, uint64_t *ret_page_size, bool *ret_incremental);
        /* store_maintain(); NULL: nothing to do. */
        int (*maintain)(void *conn, int64_t now_usec);
        /* store_records_compact(); NULL: -EOPNOTSUPP. */
        int (*compact)(void *conn, int64_t now_usec, bool dry_run, store_compact_fn cb, void *userdata);
        /* store_run_lock(); NULL: -EOPNOTSUPP. */
        int (*run_lock)(void *conn, const char *name);
        /* store_check_access(); NULL: everything allowed. */
        int (*access)(void *conn, StoreAccess need, char **ret_why);
        /* store_check_excess(); NULL: nothing in excess. */
        int (*excess)(void *conn, StoreAccess need, char **ret_why);
        /* Before store_open() chains history rows written before the register's hash chain: 0 when this
         * role may, else -EACCES and *ret_why (who may). NULL: always may. */
        int (*may_chain)(void *conn, char **ret_why);
} StoreBackend;

struct Store {
        const StoreBackend *be;
        void *conn;
        char *actor, *reason; /* carried by every history row written (store_set_actor/reason) */
};

extern const StoreBackend store_backend_sqlite;
extern const StoreBackend store_backend_postgresql;
