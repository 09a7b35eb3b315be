/* The centre store's queries, written once for every backend (store-backend.h), and the URL dispatch. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-backend.h"

/* ---- opening: which backend a URL names ---- */

static bool has_prefix(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

int store_url_backend(const char *url, const char **ret_name, const char **ret_target)
{
        const char *name, *target = url;

        if (!url || !*url)
                return -EINVAL;
        if (has_prefix(url, "sqlite:")) {
                name = "sqlite";
                target = url + strlen("sqlite:");
                if (!*target)
                        return -EINVAL;
        } else if (has_prefix(url, "postgresql://") || has_prefix(url, "postgres://"))
                name = "postgresql";
        else if (url[0] != '/' && url[0] != '.' && strchr(url, '='))
                name = "postgresql"; /* a libpq conninfo: "host=/run/postgresql dbname=mamori" */
        else
                name = "sqlite"; /* a bare path, as Database= has always been */
        if (ret_name)
                *ret_name = name;
        if (ret_target)
                *ret_target = target;
        return 0;
}

char *store_url_display(const char *url)
{
        const char *name, *target;
        char *d, *p;

        if (store_url_backend(url, &name, &target) < 0)
                return strdup("(invalid store URL)");
        d = strdup(url);
        if (!d || streq(name, "sqlite"))
                return d;
        /* postgresql://user:SECRET@host/… */
        p = strstr(d, "://");
        if (p) {
                char *at = strchr(p + 3, '@'), *colon = strchr(p + 3, ':');
                if (at && colon && colon < at)
                        memset(colon + 1, '*', (size_t)(at - colon - 1));
        }
        /* password=SECRET in a conninfo or in URL parameters */
        for (p = strstr(d, "password="); p; p = strstr(p, "password=")) {
                p += strlen("password=");
                while (*p && *p != ' ' && *p != '&')
                        *p++ = '*';
        }
        return d;
}

static int history_chain_rows(Store *s, char **ret_why);

/* The backend's connection (and its schema), before anything of the store's is read. */
static int store_connect(const char *url, Store **ret, char **ret_why)
{
        const char *name, *target;
        Store *s;
        int r;

        if (!url || !ret)
                return -EINVAL;
        r = store_url_backend(url, &name, &target);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(Store));
        if (!s)
                return -ENOMEM;
        s->be = streq(name, "sqlite") ? &store_backend_sqlite : &store_backend_postgresql;
        r = s->be->open(target, &s->conn, ret_why);
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

/* History rows written before the register's hash chain are chained as they are. */
static int history_chain(Store *s, char **ret_why)
{
        int r = store_begin(s);
        if (r < 0)
                return r;
        r = history_chain_rows(s, ret_why);
        if (r >= 0)
                r = store_commit(s);
        else
                store_rollback(s);
        return r;
}

int store_open(const char *url, Store **ret)
{
        _cleanup_store_ Store *s = NULL;
        int r = store_connect(url, &s, NULL);
        if (r >= 0)
                r = history_chain(s, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* printf into a new string (malloc'd), or NULL. */
_printf_(1, 2) static char *message(const char *fmt, ...)
{
        va_list ap;
        char *m;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&m, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : m;
}

/* What to do when url could not be opened (r; why: the backend's own words, or NULL). */
static char *open_failed(const char *url, int r, const char *why)
{
        _cleanup_free_ char *shown = NULL;

        if (why)
                return message("cannot open the store: %s", why);
        shown = store_url_display(url);
        /* Opening chains the history in a transaction: SQLite waits 10 s for the write lock. */
        if (r == -EBUSY)
                return message(
                        "cannot open the store %s: %s: another client held it longer than %s waits; "
                        "nothing was done. Run the same command again; if it fails the same way, see "
                        "what else holds the database that long (a retention run, another mamori-admin)",
                        shown ? shown : "?", strerror(-r), program_invocation_short_name);
        return message(
                "cannot open the store %s: %s (check [Store] URL= in collector.conf and that the database "
                "is reachable)",
                shown ? shown : "?", strerror(-r));
}

int store_open_checked(const char *url, StoreAccess need, Store **ret, char **ret_why)
{
        _cleanup_store_ Store *s = NULL;
        _cleanup_free_ char *why = NULL;
        char *msg;
        int r;

        r = store_connect(url, &s, &why);
        if (r >= 0) {
                /* Before anything is read or changed (the history chained): a role that may not do it all
                 * changes nothing. */
                r = store_check_access(s, need, &why);
                if (r < 0) {
                        msg = why ? TAKE_PTR(why)
                                  : message("cannot check the store's privileges: %s", strerror(-r));
                        goto fail;
                }
                r = history_chain(s, &why);
        }
        if (r >= 0) {
                *ret = TAKE_PTR(s);
                return 0;
        }
        msg = open_failed(url, r, why);
fail:
        if (!msg)
                return -ENOMEM;
        *ret_why = msg;
        return r;
}

int store_check_excess(Store *s, StoreAccess need, char **ret_why)
{
        return s->be->excess ? s->be->excess(s->conn, need, ret_why) : 0;
}

Store *store_close(Store *s)
{
        if (!s)
                return NULL;
        s->be->close(s->conn);
        free(s->actor);
        free(s->reason);
        free(s);
        return NULL;
}

const char *store_backend_name(Store *s)
{
        return s->be->name;
}

int store_begin(Store *s)
{
        return s->be->begin(s->conn);
}

int store_commit(Store *s)
{
        return s->be->commit(s->conn);
}

void store_rollback(Store *s)
{
        s->be->rollback(s->conn);
}

int store_size(Store *s, uint64_t *ret)
{
        return s->be->size(s->conn, ret);
}

/* ---- queries ---- */

/* The backend that made a query: kept beside it so that a cleanup needs nothing else. */
typedef struct Q {
        const StoreBackend *be;
        StoreQuery *q;
} Q;

static void q_done(Q *q)
{
        if (q->q)
                q->be->free(q->q);
        q->q = NULL;
}
#define _cleanup_q_ _cleanup_(q_done)

/*
 * Run sql with the arguments described by fmt: 's' string (NULL = SQL NULL), 'i' int64, 'u' uint64,
 * 'b' blob (pointer, size_t), 't' text (pointer, size_t).
 */
static int vquery(Store *s, Q *ret, const char *sql, const char *fmt, va_list ap)
{
        StoreArg args[STORE_ARGS_MAX];
        size_t n = 0;
        int r;

        for (; fmt && *fmt; fmt++) {
                StoreArg *a = &args[n];
                assert(n < STORE_ARGS_MAX);
                *a = (StoreArg){.type = *fmt};
                switch (*fmt) {
                case 's':
                        a->p = va_arg(ap, const char *);
                        a->len = a->p ? strlen(a->p) : 0;
                        break;
                case 'i':
                        a->i = va_arg(ap, int64_t);
                        break;
                case 'u':
                        a->type = 'i';
                        a->i = (int64_t)va_arg(ap, uint64_t);
                        break;
                case 'b':
                case 't':
                        a->p = va_arg(ap, const void *);
                        a->len = va_arg(ap, size_t);
                        break;
                default:
                        return -EINVAL;
                }
                n++;
        }
        *ret = (Q){.be = s->be};
        r = s->be->query(s->conn, sql, args, n, &ret->q);
        return r < 0 ? r : 0;
}

static int query(Store *s, Q *ret, const char *sql, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = vquery(s, ret, sql, fmt, ap);
        va_end(ap);
        return r;
}

static int step_row(Q *q)
{
        return q->be->step(q->q);
}

/*
 * The foreach loop of every listing: run sql (arguments as for query()) and hand each row to row(), which
 * reads its columns and calls cb (the caller's store_*_fn, cast back by row()) with userdata; the first
 * error (or cb's < 0) stops it. The row's columns are valid only during the call.
 */
typedef void (*any_fn)(void);
typedef int (*row_fn)(Q *q, any_fn cb, void *userdata);

static int query_each(Store *s, row_fn row, any_fn cb, void *userdata, const char *sql, const char *fmt, ...)
{
        _cleanup_q_ Q q = {};
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vquery(s, &q, sql, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        while ((r = step_row(&q)) > 0) {
                r = row(&q, cb, userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

/* Run a statement that returns no rows. */
static int step_done(Q *q)
{
        int r = q->be->step(q->q);
        return r < 0 ? r : 0;
}

static bool col_null(Q *q, int i)
{
        return q->be->is_null(q->q, i);
}

static const char *col_text(Q *q, int i)
{
        size_t n;
        return q->be->bytes(q->q, i, &n);
}

static const char *col_text_or_null(Q *q, int i)
{
        return col_null(q, i) ? NULL : col_text(q, i);
}

static const void *col_blob(Q *q, int i, size_t *ret_len)
{
        return q->be->bytes(q->q, i, ret_len);
}

static size_t col_len(Q *q, int i)
{
        size_t n;
        (void)q->be->bytes(q->q, i, &n);
        return n;
}

static int64_t col_int64(Q *q, int i)
{
        return q->be->int64(q->q, i);
}

static uint64_t changes(Q *q)
{
        return q->be->changes(q->q);
}

/* Run a statement with no rows and give back how many rows it changed. */
#define EXEC_CHANGES(s, ret_n, sql, fmt, ...)                  \
        ({                                                     \
                _cleanup_q_ Q _q = {};                         \
                int _r = query(s, &_q, sql, fmt, __VA_ARGS__); \
                if (_r >= 0)                                   \
                        _r = step_done(&_q);                   \
                if (_r >= 0)                                   \
                        *(ret_n) = changes(&_q);               \
                _r;                                            \
        })

/* Run a statement with no rows. */
#define EXEC(s, sql, fmt, ...)                                 \
        ({                                                     \
                _cleanup_q_ Q _q = {};                         \
                int _r = query(s, &_q, sql, fmt, __VA_ARGS__); \
                _r < 0 ? _r : step_done(&_q);                  \
        })

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
        _cleanup_q_ Q q = {};
        const char *h;
        int r = query(s, &q, "SELECT id, coalesce(hash, '') FROM history ORDER BY id DESC LIMIT 1", NULL);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_id = 0;
                memcpy(ret_hash, REGISTER_PREV_FIRST, SHA256_HEX_MAX);
                return 0;
        }
        h = col_text(&q, 1);
        if (strlen(h) != SHA256_HEX_MAX - 1)
                return -EIO; /* an unchained row at the head: store_open() chains every row */
        *ret_id = col_int64(&q, 0);
        memcpy(ret_hash, h, SHA256_HEX_MAX);
        return 0;
}

/*
 * Rows written before the chain existed (hash NULL) are chained in id order, as they are, from the first
 * such row on (one query when there is none): one row read at a time, so no statement is open while a row
 * is updated (on every backend). Changing them is for a role that may (PostgreSQL: the tables' owner);
 * another is told to open the store once as the owner (-EACCES, *ret_why) and changes nothing.
 */
static int history_chain_rows(Store *s, char **ret_why)
{
        char prev[SHA256_HEX_MAX] = REGISTER_PREV_FIRST;
        int64_t after;
        int r;

        {
                _cleanup_q_ Q q = {};
                r = query(s, &q,
                          "SELECT h.id, coalesce((SELECT p.hash FROM history p WHERE p.id < h.id"
                          " ORDER BY p.id DESC LIMIT 1), '') FROM history h WHERE coalesce(h.hash, '') = ''"
                          " ORDER BY h.id LIMIT 1",
                          NULL);
                if (r >= 0)
                        r = step_row(&q);
                if (r <= 0)
                        return r;
                after = col_int64(&q, 0) - 1;
                const char *before = col_text(&q, 1);
                if (before[0]) {
                        if (strlen(before) != SHA256_HEX_MAX - 1)
                                return -EIO;
                        memcpy(prev, before, SHA256_HEX_MAX);
                }
        }
        r = s->be->may_chain ? s->be->may_chain(s->conn, ret_why) : 0;
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_q_ Q q = {};
                RegisterRow row;
                char hash[SHA256_HEX_MAX];
                _cleanup_free_ char *object = NULL, *object_id = NULL, *action = NULL, *detail = NULL,
                                    *actor = NULL, *reason = NULL;

                r = query(s, &q,
                          "SELECT id, ts, object, object_id, action, coalesce(detail, ''), coalesce(actor, "
                          "''),"
                          " coalesce(reason, ''), coalesce(hash, '') FROM history WHERE id > ? ORDER BY id"
                          " LIMIT 1",
                          "i", after);
                if (r < 0)
                        return r;
                r = step_row(&q);
                if (r <= 0)
                        return r;
                after = col_int64(&q, 0);
                const char *stored = col_text(&q, 8);
                if (stored[0]) {
                        if (strlen(stored) != SHA256_HEX_MAX - 1)
                                return -EIO;
                        memcpy(prev, stored, SHA256_HEX_MAX);
                        continue;
                }
                object = strdup(col_text(&q, 2));
                object_id = strdup(col_text(&q, 3));
                action = strdup(col_text(&q, 4));
                detail = strdup(col_text(&q, 5));
                actor = strdup(col_text(&q, 6));
                reason = strdup(col_text(&q, 7));
                if (!object || !object_id || !action || !detail || !actor || !reason)
                        return -ENOMEM;
                row = (RegisterRow){
                        .id = after,
                        .ts = col_int64(&q, 1),
                        .object = object,
                        .object_id = object_id,
                        .action = action,
                        .detail = detail,
                        .actor = actor,
                        .reason = reason,
                        .prev = prev,
                };
                q_done(&q);
                r = register_row_hash(&row, hash);
                if (r < 0)
                        return r;
                r = EXEC(s, "UPDATE history SET actor = ?, reason = ?, prev = ?, hash = ? WHERE id = ?",
                         "ssssi", row.actor, row.reason, prev, hash, row.id);
                if (r < 0)
                        return r;
                memcpy(prev, hash, SHA256_HEX_MAX);
        }
}

/* One chained row: the next id after the head, its prev the head's hash. reason NULL: the connection's. */
static int history_add_reason(Store *s, int64_t now, const char *object, const char *id, const char *action,
                              const char *detail, const char *reason)
{
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
        return EXEC(
                s,
                "INSERT INTO history (id, ts, object, object_id, action, detail, actor, reason, prev, hash)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                "iissssssss", row.id, now, object, id, action, row.detail, row.actor, row.reason, prev,
                hash);
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
        int r;

        r = store_office_ensure(s, office);
        if (r < 0)
                return r;
        r = EXEC(s, "INSERT INTO terminals (id, office, identity_pem, created) VALUES (?,?,?,?)", "sssi", id,
                 office, identity_pem, now_usec);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "terminal", id, "add", office);
}

static int terminal_cert_put(Store *s, int64_t now_usec, const char *id, const char *status,
                             const char *cert_sha256)
{
        return EXEC(s,
                    "INSERT INTO terminal_certs (id, status, cert_sha256, changed) VALUES (?,?,?,?)"
                    " ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
                    " cert_sha256 = coalesce(excluded.cert_sha256, terminal_certs.cert_sha256),"
                    " changed = excluded.changed",
                    "sssi", id, status, cert_sha256, now_usec);
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
        _cleanup_q_ Q q = {};
        _cleanup_free_ char *office = NULL, *pem = NULL;
        int r = query(s, &q,
                      "SELECT t.office, t.identity_pem, coalesce(c.status, 'active') FROM terminals t"
                      " LEFT JOIN terminal_certs c ON c.id = t.id WHERE t.id = ?",
                      "s", id);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        office = strdup(col_text(&q, 0));
        pem = strdup(col_text(&q, 1));
        if (!office || !pem)
                return -ENOMEM;
        if (ret_office)
                *ret_office = TAKE_PTR(office);
        if (ret_identity_pem)
                *ret_identity_pem = TAKE_PTR(pem);
        if (ret_retired)
                *ret_retired = streq(col_text(&q, 2), "retired");
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
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT status, cert_sha256 FROM terminal_certs WHERE id = ?", "s", id);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r; /* no row: enrolled before certificates were pinned, or unknown */
        if (streq(col_text(&q, 0), "retired"))
                return -EKEYREVOKED;
        if (!col_null(&q, 1) && !streq(col_text(&q, 1), cert_sha256))
                return -EKEYREJECTED;
        return 0;
}

int store_terminal_identity(Store *s, const char *id, char **ret_identity_pem)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT identity_pem FROM terminals WHERE id = ?", "s", id);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        char *p = strdup(col_text(&q, 0));
        if (!p)
                return -ENOMEM;
        *ret_identity_pem = p;
        return 0;
}

int store_terminal_touch(Store *s, const char *id, int64_t now_usec)
{
        return EXEC(s, "UPDATE terminals SET last_seen = ?, silent_alerted = 0 WHERE id = ?", "is", now_usec,
                    id);
}

/* ---- logs and records ---- */

static int log_from_row(Q *q, StoreLog *l)
{
        const char *id = col_text(q, 0), *term = col_text(q, 1), *hash = col_text(q, 3);
        size_t keylen;
        const void *key = col_blob(q, 4, &keylen);

        if (strlen(id) >= sizeof(l->log) || strlen(term) >= sizeof(l->term) ||
            strlen(hash) >= sizeof(l->last_hash) || keylen != ED25519_KEY_SIZE)
                return -EIO;
        *l = (StoreLog){
                .last_seq = (uint64_t)col_int64(q, 2),
                .epochs = (uint32_t)col_int64(q, 5),
                .last_ts = col_int64(q, 6),
        };
        strcpy(l->log, id);
        strcpy(l->term, term);
        strcpy(l->last_hash, hash);
        memcpy(l->key, key, ED25519_KEY_SIZE);
        return 0;
}

int store_log_get(Store *s, const char *log, StoreLog *ret)
{
        _cleanup_q_ Q q = {};
        StoreLog l;
        int r;

        r = query(s, &q, "SELECT id, term, last_seq, last_hash, key, epochs, last_ts FROM logs WHERE id = ?",
                  "s", log);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = log_from_row(&q, &l);
        if (r < 0)
                return r;
        *ret = l;
        return 0;
}

int store_log_get_locked(Store *s, const char *log, StoreLog *ret)
{
        int r = s->be->lock_log(s->conn, log);
        return r < 0 ? r : store_log_get(s, log, ret);
}

int store_log_put(Store *s, const StoreLog *l, int64_t now_usec)
{
        return EXEC(s,
                    "INSERT INTO logs (id, term, last_seq, last_hash, key, epochs, first_seen, last_seen, "
                    "last_ts)"
                    " VALUES (?1,?2,?3,?4,?5,?6,?7,?7,?8) ON CONFLICT(id) DO UPDATE SET"
                    " last_seq = ?3, last_hash = ?4, key = ?5, epochs = ?6, last_seen = ?7, last_ts = ?8",
                    "ssusbuii", l->log, l->term, l->last_seq, l->last_hash, (const void *)l->key,
                    (size_t)ED25519_KEY_SIZE, (uint64_t)l->epochs, now_usec, l->last_ts);
}

int store_log_count_for_terminal(Store *s, const char *term, uint64_t *ret)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT count(*) FROM logs WHERE term = ?", "s", term);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = (uint64_t)col_int64(&q, 0);
        return 0;
}

int store_record_hash(Store *s, const char *log, uint64_t seq, char ret[SHA256_HEX_MAX])
{
        _cleanup_q_ Q q = {};
        size_t len;
        /* Only a resent record is compared, so the hash is made from the line, not stored beside it. */
        int r = query(s, &q, "SELECT line FROM records WHERE log = ? AND seq = ?", "su", log, seq);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        const void *line = col_blob(&q, 0, &len);
        return sha256_hex(line, len, ret);
}

static int record_put(Store *s, const char *log, const StoreRecord *v)
{
        return EXEC(s, "INSERT INTO records (log, seq, ts, line) VALUES (?,?,?,?)", "suit", log, v->seq,
                    v->ts, v->line, v->len);
}

int store_records_put(Store *s, const char *log, const StoreRecord *v, size_t n)
{
        int r;

        if (n == 0)
                return 0;
        if (s->be->put_records)
                return s->be->put_records(s->conn, log, v, n);
        for (size_t i = 0; i < n; i++) {
                r = record_put(s, log, &v[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int each_log(Q *q, any_fn cb, void *userdata)
{
        StoreLog l;
        int r = log_from_row(q, &l);
        return r < 0 ? r : ((store_log_fn)cb)(&l, userdata);
}

int store_logs_foreach(Store *s, store_log_fn cb, void *userdata)
{
        return query_each(s, each_log, (any_fn)cb, userdata,
                          "SELECT id, term, last_seq, last_hash, key, epochs, last_ts FROM logs ORDER BY id",
                          NULL);
}

int store_records_foreach(Store *s, const char *log, store_record_fn cb, void *userdata)
{
        _cleanup_store_cursor_ StoreCursor *c = NULL;
        const char *line;
        uint64_t seq;
        size_t len;
        int r;

        r = store_cursor_open(s, log, 0, &c);
        if (r < 0)
                return r;
        while ((r = store_cursor_next(c, &seq, &line, &len)) > 0) {
                r = cb(seq, line, len, userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_record_count(Store *s, uint64_t *ret)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT count(*) FROM records", NULL);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = (uint64_t)col_int64(&q, 0);
        return 0;
}

int store_record_total(Store *s, uint64_t *ret)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q,
                      "SELECT coalesce(sum(l.last_seq - coalesce(a.seq, 0)), 0) FROM logs l"
                      " LEFT JOIN anchors a ON a.log = l.id",
                      NULL);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = (uint64_t)col_int64(&q, 0);
        return 0;
}

/* ---- alerts ---- */

/*
 * Writers of alerts take one lock until their transaction ends, before their row takes its id: so
 * alert ids become visible in id order even with several collectors on one PostgreSQL, and a reader
 * that follows ids (mamori-admin watch) never steps over a row still to be committed. The name cannot
 * be a log id (DESIGN §6: 32 hex characters), so no log writer shares the lock. Alerts are rare.
 */
#define ALERTS_LOCK "#alerts"

static int lock_alerts(Store *s)
{
        return s->be->lock_log(s->conn, ALERTS_LOCK);
}

int store_alert_add(Store *s, int64_t now_usec, const char *kind, const char *term, const char *log,
                    uint64_t seq, const char *detail)
{
        uint64_t n = 0;
        int r;

        r = lock_alerts(s);
        if (r < 0)
                return r;
        /* A terminal retrying the same refused batch raises the same alert each time: fold it into
         * the first row (count, last_seen) instead of a new row per retry. */
        r = EXEC_CHANGES(
                s, &n,
                "UPDATE alerts SET count = count + 1, last_seen = ?1 WHERE id = (SELECT id FROM alerts"
                " WHERE kind = ?2 AND term IS NOT DISTINCT FROM ?3 AND log IS NOT DISTINCT FROM ?4"
                " AND seq IS NOT DISTINCT FROM ?5 AND detail IS NOT DISTINCT FROM ?6"
                " ORDER BY id DESC LIMIT 1)",
                "isssus", now_usec, kind, term, log, seq, detail);
        if (r < 0 || n > 0)
                return r;
        return EXEC(s,
                    "INSERT INTO alerts (ts, kind, term, log, seq, detail, count, last_seen)"
                    " VALUES (?1,?2,?3,?4,?5,?6,1,?1)",
                    "isssus", now_usec, kind, term, log, seq, detail);
}

/* The start of the UTC month `ahead` months after the one that holds usec. */
static int64_t month_start(int64_t usec, int ahead)
{
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;

        if (!gmtime_r(&t, &tm))
                return INT64_MAX;
        tm = (struct tm){.tm_year = tm.tm_year, .tm_mon = tm.tm_mon + ahead, .tm_mday = 1};
        return (int64_t)timegm(&tm) * 1000000;
}

#define CLOCK_AHEAD_MAX 64 /* logs alerted in one run; the next run takes the rest */

/*
 * A log whose records are filed after the months the store makes ahead (its terminal's clock is far
 * ahead: every later record of it is filed there too) raises one clock-ahead alert, from its first such
 * record. Its filing time (logs.last_ts) finds it without reading records. Several collectors maintain
 * at once: each checks again, holding the alerts' lock until its commit, that no clock-ahead alert of the
 * log is there (the detail counts records, so a second alert would not fold into the first). Its records
 * are read before that lock is taken: a transaction holding the alerts' lock touches no records partition,
 * so it never waits for a partition maker (ACCESS EXCLUSIVE on records_default) while an ingest holding
 * records_default waits for the alerts' lock (a new log's alert) — the one lock order is records, then
 * alerts.
 */
static int alert_clock_ahead(Store *s, int64_t now_usec)
{
        const int64_t after = month_start(now_usec, STORE_MONTHS_AHEAD + 1);
        char *logs[CLOCK_AHEAD_MAX] = {}, *terms[CLOCK_AHEAD_MAX] = {};
        uint64_t seqs[CLOCK_AHEAD_MAX] = {}, counts[CLOCK_AHEAD_MAX] = {};
        size_t n = 0;
        int r;

        {
                _cleanup_q_ Q q = {};
                r = query(s, &q,
                          "SELECT id, term FROM logs WHERE last_ts >= ? AND NOT EXISTS (SELECT 1 FROM alerts"
                          " WHERE kind = 'clock-ahead' AND alerts.log = logs.id) ORDER BY id LIMIT ?",
                          "ii", after, (int64_t)CLOCK_AHEAD_MAX);
                while (r >= 0 && n < CLOCK_AHEAD_MAX && (r = step_row(&q)) > 0) {
                        logs[n] = strdup(col_text(&q, 0));
                        terms[n] = strdup(col_text(&q, 1));
                        if (!logs[n++] || !terms[n - 1])
                                r = -ENOMEM;
                }
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_q_ Q q = {};
                r = query(s, &q, "SELECT min(seq), count(*) FROM records WHERE log = ? AND ts >= ?", "si",
                          logs[i], after);
                if (r >= 0)
                        r = step_row(&q);
                if (r > 0 && !col_null(&q, 0)) {
                        seqs[i] = (uint64_t)col_int64(&q, 0);
                        counts[i] = (uint64_t)col_int64(&q, 1);
                }
        }
        if (r >= 0 && n > 0) {
                r = store_begin(s);
                if (r >= 0)
                        r = lock_alerts(s);
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_q_ Q q = {};
                _cleanup_free_ char *detail = NULL;
                time_t t = (time_t)(after / 1000000);
                char month[16] = "";
                struct tm tm;

                if (counts[i] == 0) /* none left */
                        continue;
                r = query(s, &q, "SELECT count(*) FROM alerts WHERE kind = 'clock-ahead' AND log = ?", "s",
                          logs[i]);
                if (r >= 0)
                        r = step_row(&q);
                if (r <= 0 || col_int64(&q, 0) > 0) /* alerted by another collector */
                        continue;
                if (gmtime_r(&t, &tm))
                        (void)strftime(month, sizeof(month), "%Y-%m", &tm);
                if (asprintf(&detail,
                             "%" PRIu64 " records from seq %" PRIu64 " on filed in %s or later, beyond"
                             " the months the store makes ahead: the terminal's clock is ahead; kept"
                             " (PostgreSQL: in records_default until their month); set the terminal's"
                             " time and check these records' times",
                             counts[i], seqs[i], month) < 0)
                        r = -ENOMEM;
                else
                        r = store_alert_add(s, now_usec, "clock-ahead", terms[i], logs[i], seqs[i], detail);
        }
        if (n > 0) {
                if (r >= 0)
                        r = store_commit(s);
                else
                        store_rollback(s);
        }
        for (size_t i = 0; i < n; i++) {
                free(logs[i]);
                free(terms[i]);
        }
        return r < 0 ? r : 0;
}

int store_records_compact(Store *s, int64_t now_usec, bool dry_run, store_compact_fn cb, void *userdata)
{
        return s->be->compact ? s->be->compact(s->conn, now_usec, dry_run, cb, userdata) : -EOPNOTSUPP;
}

int store_run_lock(Store *s, const char *name)
{
        return s->be->run_lock ? s->be->run_lock(s->conn, name) : -EOPNOTSUPP;
}

int store_check_access(Store *s, StoreAccess need, char **ret_why)
{
        return s->be->access ? s->be->access(s->conn, need, ret_why) : 0;
}

int store_maintain(Store *s, int64_t now_usec)
{
        int r = s->be->maintain ? s->be->maintain(s->conn, now_usec) : 0;
        return r < 0 ? r : alert_clock_ahead(s, now_usec);
}

static int each_alert(Q *q, any_fn cb, void *userdata)
{
        return ((store_alert_fn)cb)(col_int64(q, 0), col_int64(q, 1), col_text(q, 2), col_text(q, 3),
                                    col_text(q, 4), (uint64_t)col_int64(q, 5), col_text(q, 6),
                                    (uint64_t)col_int64(q, 7), col_int64(q, 8), userdata);
}

int store_alerts_foreach(Store *s, store_alert_fn cb, void *userdata)
{
        return store_alerts_after(s, INT64_MIN, cb, userdata);
}

int store_alerts_after(Store *s, int64_t after_id, store_alert_fn cb, void *userdata)
{
        return query_each(
                s, each_alert, (any_fn)cb, userdata,
                "SELECT id, ts, kind, term, log, seq, detail, count, coalesce(last_seen, ts) FROM alerts"
                " WHERE id > ? ORDER BY id",
                "i", after_id);
}

typedef struct Silent {
        char *term;
        int64_t last_seen;
} Silent;

int store_alert_silent(Store *s, int64_t now_usec, uint64_t silent_usec, unsigned *ret_n)
{
        int64_t limit = now_usec - (int64_t)silent_usec;
        Silent *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_begin(s);
        if (r < 0)
                return r;
        {
                /* Mark first: of two collectors checking at once, the second waits for the first's
                 * row locks, then finds the terminals marked and raises nothing twice. */
                _cleanup_q_ Q q = {};
                r = query(s, &q,
                          "UPDATE terminals SET silent_alerted = 1"
                          " WHERE last_seen IS NOT NULL AND last_seen < ? AND silent_alerted = 0"
                          " RETURNING id, last_seen",
                          "i", limit);
                while (r >= 0 && (r = step_row(&q)) > 0) {
                        if (n == cap) {
                                size_t nc = cap ? cap * 2 : 16;
                                Silent *nv = realloc(v, nc * sizeof(Silent));
                                if (!nv) {
                                        r = -ENOMEM;
                                        break;
                                }
                                v = nv;
                                cap = nc;
                        }
                        v[n] = (Silent){.term = strdup(col_text(&q, 0)), .last_seen = col_int64(&q, 1)};
                        if (!v[n].term) {
                                r = -ENOMEM;
                                break;
                        }
                        n++;
                }
        }
        if (r >= 0 && n > 0)
                r = lock_alerts(s);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char detail[64];
                snprintf(detail, sizeof(detail), "no post since %" PRIi64, v[i].last_seen);
                r = EXEC(s, "INSERT INTO alerts (ts, kind, term, detail) VALUES (?, 'silent', ?, ?)", "iss",
                         now_usec, v[i].term, detail);
        }
        for (size_t i = 0; i < n; i++)
                free(v[i].term);
        free(v);
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        r = store_commit(s);
        if (r < 0)
                return r;
        if (ret_n)
                *ret_n = (unsigned)n;
        return 0;
}

/* ---- registry ---- */

int store_office_ensure(Store *s, const char *id)
{
        return EXEC(s, "INSERT INTO offices (id) VALUES (?) ON CONFLICT (id) DO NOTHING", "s", id);
}

/* 1 when table has a row with this id, 0 when not. table is one of ours, never user input. */
static int row_exists(Store *s, const char *table, const char *id)
{
        _cleanup_q_ Q q = {};
        char sql[96];
        int r;

        snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE id = ?", table);
        r = query(s, &q, sql, "s", id);
        return r < 0 ? r : step_row(&q);
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
        int r = offices_ensure(s, offices);
        if (r < 0)
                return r;
        r = EXEC(s, "INSERT INTO operators (id, name, offices, status) VALUES (?,?,?,'active')", "sss", id,
                 name, offices);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "operator", id, "add", offices);
}

int store_operator_set_status(Store *s, int64_t now_usec, const char *id, const char *status,
                              const char *reason)
{
        uint64_t n = 0;
        int r = EXEC_CHANGES(s, &n, "UPDATE operators SET status = ? WHERE id = ?", "ss", status, id);
        if (r < 0)
                return r;
        if (n == 0)
                return -ENOENT;
        return history_add_reason(s, now_usec, "operator", id, status, NULL, reason);
}

int store_operator_get(Store *s, const char *id, StoreOperator *ret)
{
        _cleanup_q_ Q q = {};
        StoreOperator o = {};
        int r = query(s, &q, "SELECT status FROM operators WHERE id = ?", "s", id);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (strlen(col_text(&q, 0)) >= sizeof(o.status))
                return -EIO;
        strcpy(o.status, col_text(&q, 0));
        *ret = o;
        return 0;
}

int store_group_add(Store *s, int64_t now_usec, const char *id, const char *offices, const char *members)
{
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
        r = EXEC(s, "INSERT INTO groups_ (id, offices, members) VALUES (?,?,?)", "sss", id, offices,
                 members);
        if (r < 0)
                return r;
        if (asprintf(&detail, "offices=%s members=%s", offices, members) < 0)
                return -ENOMEM;
        return history_add(s, now_usec, "group", id, "add", detail);
}

int store_card_issue(Store *s, int64_t now_usec, const char *card_id, const char *cert_pem,
                     const char *operator_id, const char *group_id)
{
        _cleanup_free_ char *detail = NULL;
        int r = row_exists(s, operator_id ? "operators" : "groups_", operator_id ?: group_id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = EXEC(s, "INSERT INTO cards (id, cert_pem, operator, group_, status) VALUES (?,?,?,?,'active')",
                 "ssss", card_id, cert_pem, operator_id, group_id);
        if (r < 0)
                return r;
        if (asprintf(&detail, "%s=%s", operator_id ? "operator" : "group", operator_id ?: group_id) < 0)
                return -ENOMEM;
        return history_add(s, now_usec, "card", card_id, "issue", detail);
}

int store_card_set_status(Store *s, int64_t now_usec, const char *card_id, const char *status,
                          const char *reason)
{
        uint64_t n = 0;
        int r = EXEC_CHANGES(s, &n, "UPDATE cards SET status = ? WHERE id = ?", "ss", status, card_id);
        if (r < 0)
                return r;
        if (n == 0)
                return -ENOENT;
        return history_add_reason(s, now_usec, "card", card_id, status, NULL, reason);
}

int store_card_get(Store *s, const char *card_id, StoreCard *ret)
{
        _cleanup_q_ Q q = {};
        StoreCard c = {};
        int r = query(s, &q,
                      "SELECT coalesce(operator, ''), coalesce(group_, ''), status, coalesce((SELECT ts FROM"
                      " history WHERE object = 'card' AND object_id = cards.id AND action = 'issue'"
                      " ORDER BY id LIMIT 1), 0) FROM cards WHERE id = ?",
                      "s", card_id);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (strlen(col_text(&q, 0)) >= sizeof(c.operator_id) ||
            strlen(col_text(&q, 1)) >= sizeof(c.group_id) || strlen(col_text(&q, 2)) >= sizeof(c.status))
                return -EIO;
        strcpy(c.operator_id, col_text(&q, 0));
        strcpy(c.group_id, col_text(&q, 1));
        strcpy(c.status, col_text(&q, 2));
        c.issued = col_int64(&q, 3);
        *ret = c;
        return 0;
}

/* ---- PIN/password age ---- */

int store_secret_changed(Store *s, const char *operator_id, int64_t ts)
{
        /* The later of the two: CASE, as SQLite's max() and PostgreSQL's greatest() differ. */
        return EXEC(
                s,
                "INSERT INTO secret_changes (operator, ts) VALUES (?1, CAST(?2 AS BIGINT))"
                " ON CONFLICT(operator) DO UPDATE SET ts = CASE WHEN CAST(?2 AS BIGINT) > secret_changes.ts"
                " THEN CAST(?2 AS BIGINT) ELSE secret_changes.ts END",
                "si", operator_id, ts);
}

int store_secret_reset(Store *s, int64_t now_usec, const char *operator_id, int64_t ts)
{
        char detail[64];
        int r = row_exists(s, "operators", operator_id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = EXEC(s,
                 "INSERT INTO secret_changes (operator, ts) VALUES (?1, CAST(?2 AS BIGINT))"
                 " ON CONFLICT(operator) DO UPDATE SET ts = CAST(?2 AS BIGINT)",
                 "si", operator_id, ts);
        if (r < 0)
                return r;
        snprintf(detail, sizeof(detail), "pin_changed=%" PRId64, ts);
        return history_add(s, now_usec, "operator", operator_id, "pin-reset", detail);
}

int store_secret_get(Store *s, const char *operator_id, int64_t *ret_ts)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT ts FROM secret_changes WHERE operator = ?", "s", operator_id);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret_ts = col_int64(&q, 0);
        return 0;
}

static int each_history(Q *q, any_fn cb, void *userdata)
{
        RegisterRow row = {
                .id = col_int64(q, 0),
                .ts = col_int64(q, 1),
                .object = col_text(q, 2),
                .object_id = col_text(q, 3),
                .action = col_text(q, 4),
                .detail = col_text(q, 5),
                .actor = col_text(q, 6),
                .reason = col_text(q, 7),
                .prev = col_text(q, 8),
                .hash = col_text(q, 9),
        };
        return ((store_history_fn)cb)(&row, userdata);
}

int store_history_foreach(Store *s, const char *object, const char *id, store_history_fn cb, void *userdata)
{
        return query_each(
                s, each_history, (any_fn)cb, userdata,
                "SELECT id, ts, object, object_id, action, coalesce(detail, ''), coalesce(actor, ''),"
                " coalesce(reason, ''), coalesce(prev, ''), coalesce(hash, '') FROM history"
                " WHERE (CAST(?1 AS TEXT) IS NULL OR object = ?1)"
                " AND (CAST(?2 AS TEXT) IS NULL OR object_id = ?2) ORDER BY id",
                "ss", object, id);
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
typedef int (*row_to_json_fn)(Q *q, JsonValue *o);

static int each_json_object(Q *q, any_fn cb, void *userdata)
{
        _cleanup_json_ JsonValue *o = NULL;
        int r = json_new_object(&o);
        if (r < 0)
                return r;
        r = ((row_to_json_fn)cb)(q, o);
        if (r < 0)
                return r;
        return json_array_append(userdata, TAKE_PTR(o));
}

static int add_list(Store *s, JsonValue *bundle, const char *key, const char *sql, row_to_json_fn build)
{
        _cleanup_json_ JsonValue *a = NULL;
        int r;

        r = json_new_array(&a);
        if (r < 0)
                return r;
        r = query_each(s, each_json_object, (any_fn)build, a, sql, NULL);
        if (r < 0)
                return r;
        return json_object_set(bundle, key, TAKE_PTR(a));
}

static int office_row(Q *q, JsonValue *o)
{
        int r = json_object_set_string(o, "id", col_text(q, 0));
        if (r >= 0 && !col_null(q, 1))
                r = json_object_set_string(o, "hours", col_text(q, 1));
        return r;
}

static int terminal_row(Q *q, JsonValue *o)
{
        int r = json_object_set_string(o, "id", col_text(q, 0));
        return r < 0 ? r : json_object_set_string(o, "office", col_text(q, 1));
}

static int operator_row(Q *q, JsonValue *o)
{
        JsonValue *offices;
        int r = json_object_set_string(o, "id", col_text(q, 0));
        if (r >= 0 && !col_null(q, 1))
                r = json_object_set_string(o, "name", col_text(q, 1));
        if (r >= 0)
                r = id_list_to_json(col_text(q, 2), &offices);
        if (r >= 0)
                r = json_object_set(o, "offices", offices);
        if (r >= 0)
                r = json_object_set_string(o, "status", col_text(q, 3));
        if (r >= 0 && !col_null(q, 4))
                r = json_object_set_integer(o, "pin_changed", col_int64(q, 4));
        return r;
}

static int group_row(Q *q, JsonValue *o)
{
        JsonValue *v;
        int r = json_object_set_string(o, "id", col_text(q, 0));
        if (r >= 0)
                r = id_list_to_json(col_text(q, 1), &v);
        if (r >= 0)
                r = json_object_set(o, "offices", v);
        if (r >= 0)
                r = id_list_to_json(col_text(q, 2), &v);
        if (r >= 0)
                r = json_object_set(o, "members", v);
        return r;
}

static int card_row(Q *q, JsonValue *o)
{
        bool individual = !col_null(q, 1);
        int r = json_object_set_string(o, "id", col_text(q, 0));
        if (r >= 0)
                r = json_object_set_string(o, "kind", individual ? "individual" : "group");
        if (r >= 0)
                r = json_object_set_string(o, individual ? "operator" : "group",
                                           col_text(q, individual ? 1 : 2));
        if (r >= 0)
                r = json_object_set_string(o, "status", col_text(q, 3));
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
        return EXEC(s, "INSERT INTO policies (serial, published, body) VALUES (?,?,?)", "iib", serial,
                    now_usec, (const void *)body, len);
}

int store_policy_latest(Store *s, int64_t *ret_serial, char **ret_body, size_t *ret_len)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT serial, body FROM policies ORDER BY serial DESC LIMIT 1", NULL);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (ret_body) {
                size_t n;
                const void *p = col_blob(&q, 1, &n);
                char *b = malloc(n + 1);
                if (!b)
                        return -ENOMEM;
                if (n)
                        memcpy(b, p, n);
                b[n] = 0;
                *ret_body = b;
                if (ret_len)
                        *ret_len = n;
        }
        if (ret_serial)
                *ret_serial = col_int64(&q, 0);
        return 0;
}

/* ---- reading for the audit ---- */

static int each_terminal(Q *q, any_fn cb, void *userdata)
{
        return ((store_terminal_fn)cb)(col_text(q, 0), col_text(q, 1), col_int64(q, 2), userdata);
}

int store_terminals_foreach(Store *s, store_terminal_fn cb, void *userdata)
{
        return query_each(s, each_terminal, (any_fn)cb, userdata,
                          "SELECT id, office, coalesce(last_seen, 0) FROM terminals ORDER BY id", NULL);
}

static int each_office(Q *q, any_fn cb, void *userdata)
{
        return ((store_office_fn)cb)(col_text(q, 0), col_text_or_null(q, 1), userdata);
}

int store_offices_foreach(Store *s, store_office_fn cb, void *userdata)
{
        return query_each(s, each_office, (any_fn)cb, userdata, "SELECT id, hours FROM offices ORDER BY id",
                          NULL);
}

static int each_operator(Q *q, any_fn cb, void *userdata)
{
        return ((store_operator_fn)cb)(col_text(q, 0), col_text(q, 1), col_text(q, 2), col_text(q, 3),
                                       userdata);
}

int store_operators_foreach(Store *s, store_operator_fn cb, void *userdata)
{
        return query_each(s, each_operator, (any_fn)cb, userdata,
                          "SELECT o.id, o.offices, o.status, coalesce(r.roles, '') FROM operators o"
                          " LEFT JOIN operator_roles r ON r.id = o.id ORDER BY o.id",
                          NULL);
}

static int each_group(Q *q, any_fn cb, void *userdata)
{
        return ((store_group_fn)cb)(col_text(q, 0), col_text(q, 1), col_text(q, 2), userdata);
}

int store_groups_foreach(Store *s, store_group_fn cb, void *userdata)
{
        return query_each(s, each_group, (any_fn)cb, userdata,
                          "SELECT id, offices, members FROM groups_ ORDER BY id", NULL);
}

static int each_card(Q *q, any_fn cb, void *userdata)
{
        return ((store_card_fn)cb)(col_text(q, 0), col_text_or_null(q, 1), col_text_or_null(q, 2),
                                   col_text(q, 3), userdata);
}

int store_cards_foreach(Store *s, store_card_fn cb, void *userdata)
{
        return query_each(s, each_card, (any_fn)cb, userdata,
                          "SELECT id, operator, group_, status FROM cards ORDER BY id", NULL);
}

int store_office_set_hours(Store *s, int64_t now_usec, const char *id, const char *hours)
{
        uint64_t n = 0;
        int r = EXEC_CHANGES(s, &n, "UPDATE offices SET hours = ? WHERE id = ?", "ss", hours, id);
        if (r < 0)
                return r;
        if (n == 0)
                return -ENOENT;
        return history_add(s, now_usec, "office", id, "hours", hours);
}

int store_office_set_calendar(Store *s, int64_t now_usec, const char *id, const char *days,
                              const char *holidays)
{
        int r = row_exists(s, "offices", id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        /* NULL keeps what is set; a new row starts from the defaults (CAST: PostgreSQL must type them). */
        r = EXEC(s,
                 "INSERT INTO office_calendar (id, days, holidays)"
                 " VALUES (?1, coalesce(CAST(?2 AS TEXT), CAST(?4 AS TEXT)), coalesce(CAST(?3 AS TEXT), ''))"
                 " ON CONFLICT(id) DO UPDATE SET days = coalesce(CAST(?2 AS TEXT), office_calendar.days),"
                 " holidays = coalesce(CAST(?3 AS TEXT), office_calendar.holidays)",
                 "ssss", id, days, holidays, STORE_DEFAULT_DAYS);
        if (r < 0)
                return r;
        if (days) {
                r = history_add(s, now_usec, "office", id, "days", days);
                if (r < 0)
                        return r;
        }
        return holidays ? history_add(s, now_usec, "office", id, "holidays", holidays) : 0;
}

static int each_calendar(Q *q, any_fn cb, void *userdata)
{
        return ((store_calendar_fn)cb)(col_text(q, 0), col_text(q, 1), col_text(q, 2), userdata);
}

int store_office_calendars_foreach(Store *s, store_calendar_fn cb, void *userdata)
{
        return query_each(s, each_calendar, (any_fn)cb, userdata,
                          "SELECT id, days, holidays FROM office_calendar ORDER BY id", NULL);
}

int store_operator_set_roles(Store *s, int64_t now_usec, const char *id, const char *roles)
{
        int r = row_exists(s, "operators", id);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = EXEC(s,
                 "INSERT INTO operator_roles (id, roles) VALUES (?1, ?2)"
                 " ON CONFLICT(id) DO UPDATE SET roles = ?2",
                 "ss", id, roles);
        if (r < 0)
                return r;
        return history_add(s, now_usec, "operator", id, "roles", roles);
}

/*
 * A cursor reads one page of rows at a time and asks for the next page after the last seq it gave
 * out (the primary key's order), so it holds no statement open between pages and other queries on
 * the same connection may run while it is open, on every backend.
 *
 * Filed by month (PostgreSQL): a log's filing time never decreases along its seqs (store.h), so the page
 * after a record filed at ts lies at ts or later, and a page asks only for [ts, ts + CURSOR_WINDOW): the
 * executor then reads the index of one or two monthly partitions instead of every month kept (7 years:
 * 85). Such a page is trusted only while its seqs follow each other from the last one given out; a gap, or
 * a page that ends short (the log's end, or a log silent longer than the window), is asked again without
 * the range, so a record is never skipped even if its filing time broke the rule.
 */
#define CURSOR_PAGE   512
#define CURSOR_WINDOW (31 * 24 * 3600 * INT64_C(1000000))

struct StoreCursor {
        Store *store;
        char *log;
        Q q;
        uint64_t last_seq;
        int64_t last_ts; /* filing time of last_seq; 0 before the first record */
        unsigned in_page;
        bool in_range; /* the page was asked for ts in [last_ts, last_ts + CURSOR_WINDOW) */
        bool end;
};

static int cursor_page(StoreCursor *c, bool in_range)
{
        q_done(&c->q);
        c->in_page = 0;
        c->in_range = in_range;
        /* One statement with or without the range (then the whole int64 line): with generic plans
         * PostgreSQL prunes the months outside the range at execution, and reads every month's index
         * as before without it; SQLite searches its (log, seq) key either way. */
        return query(c->store, &c->q,
                     "SELECT seq, line, ts FROM records WHERE log = ? AND seq > ? AND ts >= ? AND ts <= ?"
                     " ORDER BY seq LIMIT ?",
                     "suiii", c->log, c->last_seq, in_range ? c->last_ts : INT64_MIN,
                     in_range ? c->last_ts + CURSOR_WINDOW - 1 : INT64_MAX, (int64_t)CURSOR_PAGE);
}

int store_cursor_open(Store *s, const char *log, uint64_t after_seq, StoreCursor **ret)
{
        StoreCursor *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (StoreCursor){.store = s, .log = strdup(log), .last_seq = after_seq};
        if (!c->log) {
                free(c);
                return -ENOMEM;
        }
        r = cursor_page(c, false);
        if (r < 0) {
                store_cursor_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int store_cursor_next(StoreCursor *c, uint64_t *ret_seq, const char **ret_line, size_t *ret_len)
{
        uint64_t seq;
        int r;

        if (c->end)
                return 0;
        for (;;) {
                r = step_row(&c->q);
                if (r < 0)
                        return r;
                if (r == 0) {
                        bool full = c->in_page == CURSOR_PAGE;
                        if (!full && !c->in_range) {
                                c->end = true;
                                return 0;
                        }
                        /* The next page: in range after a full one, else once more without the range. */
                        r = cursor_page(c, full && c->store->be->filed_by_month && c->last_ts > 0 &&
                                                   c->last_ts < INT64_MAX - CURSOR_WINDOW);
                        if (r < 0)
                                return r;
                        continue;
                }
                seq = (uint64_t)col_int64(&c->q, 0);
                if (c->in_range && seq != c->last_seq + 1) {
                        r = cursor_page(c, false);
                        if (r < 0)
                                return r;
                        continue;
                }
                break;
        }
        c->in_page++;
        c->last_seq = seq;
        c->last_ts = col_int64(&c->q, 2);
        *ret_seq = seq;
        *ret_line = col_text(&c->q, 1);
        *ret_len = col_len(&c->q, 1);
        return 1;
}

int64_t store_cursor_ts(const StoreCursor *c)
{
        return c->end ? 0 : c->last_ts;
}

StoreCursor *store_cursor_free(StoreCursor *c)
{
        if (!c)
                return NULL;
        q_done(&c->q);
        free(c->log);
        free(c);
        return NULL;
}

int store_log_seq_filed_before(Store *s, const char *log, int64_t ts, uint64_t *ret_seq)
{
        _cleanup_q_ Q q = {};
        int r;

        if (!s->be->filed_by_month)
                return -EOPNOTSUPP;
        r = query(s, &q, "SELECT coalesce(max(seq), 0) FROM records WHERE log = ? AND ts < ?", "si", log,
                  ts);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret_seq = (uint64_t)col_int64(&q, 0);
        return 0;
}

int store_log_seq_range(Store *s, const char *log, uint64_t *ret_first, uint64_t *ret_last)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT min(seq), max(seq) FROM records WHERE log = ?", "s", log);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r < 0)
                return r;
        if (r == 0 || col_null(&q, 0))
                return -ENOENT;
        *ret_first = (uint64_t)col_int64(&q, 0);
        *ret_last = (uint64_t)col_int64(&q, 1);
        return 0;
}

int store_record_line(Store *s, const char *log, uint64_t seq, char **ret_line, size_t *ret_len)
{
        _cleanup_q_ Q q = {};
        int r = query(s, &q, "SELECT line FROM records WHERE log = ? AND seq = ?", "su", log, seq);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        size_t n;
        const char *l = col_blob(&q, 0, &n);
        char *p = malloc(n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, l, n);
        p[n] = 0;
        *ret_line = p;
        if (ret_len)
                *ret_len = n;
        return 0;
}

/* ---- retention ---- */

int store_records_delete_below(Store *s, int64_t now_usec, const char *log, const StoreAnchor *anchor,
                               const char *note, uint64_t *ret_n)
{
        uint64_t n = 0;
        int r;

        r = EXEC_CHANGES(s, &n, "DELETE FROM records WHERE log = ? AND seq <= ?", "su", log, anchor->seq);
        if (r < 0)
                return r;
        r = store_log_anchor_set(s, now_usec, log, anchor, n, note);
        if (r < 0)
                return r;
        if (ret_n)
                *ret_n = n;
        return 0;
}

int store_log_anchor_set(Store *s, int64_t now_usec, const char *log, const StoreAnchor *anchor, uint64_t n,
                         const char *note)
{
        _cleanup_free_ char *detail = NULL;
        uint64_t changed = 0;
        int r;

        /* An anchor only moves forward: one behind the stored one would hide what was deleted up to it
         * (a run working from a stale plan); -ESTALE, and the caller's transaction rolls back. */
        r = EXEC_CHANGES(s, &changed,
                         "INSERT INTO anchors (log, seq, hash, key, epochs) VALUES (?1,?2,?3,?4,?5)"
                         " ON CONFLICT(log) DO UPDATE SET seq = ?2, hash = ?3, key = ?4, epochs = ?5"
                         " WHERE anchors.seq <= ?2",
                         "susbu", log, anchor->seq, anchor->hash, (const void *)anchor->key,
                         (size_t)ED25519_KEY_SIZE, (uint64_t)anchor->epochs);
        if (r < 0)
                return r;
        if (changed == 0)
                return -ESTALE;
        if (asprintf(&detail, "deleted %" PRIu64 " records, seq <= %" PRIu64 ", last hash %s%s%s", n,
                     anchor->seq, anchor->hash, note ? "; " : "", note ?: "") < 0)
                return -ENOMEM;
        return history_add(s, now_usec, "log", log, "retention", detail);
}

int store_records_drop_month(Store *s, int64_t month_usec, uint64_t expected)
{
        return s->be->drop_month ? s->be->drop_month(s->conn, month_usec, expected) : -EOPNOTSUPP;
}

bool store_drops_months(Store *s)
{
        return s->be->drop_month != NULL;
}

int store_reclaim(Store *s, bool full, uint64_t step_pages, store_reclaim_fn cb, void *userdata)
{
        return s->be->reclaim ? s->be->reclaim(s->conn, full, step_pages, cb, userdata) : -EOPNOTSUPP;
}

int store_reclaimable(Store *s, uint64_t *ret_free, uint64_t *ret_page_size, bool *ret_incremental)
{
        return s->be->reclaimable ? s->be->reclaimable(s->conn, ret_free, ret_page_size, ret_incremental)
                                  : -EOPNOTSUPP;
}

int store_log_anchor(Store *s, const char *log, StoreAnchor *ret)
{
        _cleanup_q_ Q q = {};
        StoreAnchor a = {};
        size_t keylen;
        int r = query(s, &q, "SELECT seq, hash, key, epochs FROM anchors WHERE log = ?", "s", log);
        if (r < 0)
                return r;
        r = step_row(&q);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        const char *h = col_text(&q, 1);
        const void *key = col_blob(&q, 2, &keylen);
        if (strlen(h) != SHA256_HEX_MAX - 1 || keylen != ED25519_KEY_SIZE)
                return -EIO;
        a.seq = (uint64_t)col_int64(&q, 0);
        memcpy(a.hash, h, SHA256_HEX_MAX);
        memcpy(a.key, key, ED25519_KEY_SIZE);
        a.epochs = (uint32_t)col_int64(&q, 3);
        *ret = a;
        return 0;
}
