/* The centre's store interface: records, logs, alerts, terminals, the registry and policy bundles. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/json.h"
#include "mamori/macro.h"

/*
 * One implementation per backend (store-sqlite.c today; a libpq one can follow with the same
 * functions). A Store is one connection, used by one thread at a time; several processes may open
 * the same database. Errors: -ENOENT not found, -EEXIST already there, -EBUSY locked for too long,
 * -EIO backend failure, -ENOMEM. Writes made between store_begin() and store_commit() are durable
 * when store_commit() returns 0 (SQLite: WAL + synchronous=FULL).
 */
typedef struct Store Store;

int store_open(const char *path, Store **ret);
Store *store_close(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_close);
#define _cleanup_store_ _cleanup_(store_closep)

int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* ---- terminals ---- */
int store_terminal_add(Store *s, int64_t now_usec, const char *id, const char *office,
                       const char *identity_pem);
/* *ret_identity_pem malloc'd; -ENOENT for an unknown terminal. */
int store_terminal_identity(Store *s, const char *id, char **ret_identity_pem);
int store_terminal_touch(Store *s, const char *id, int64_t now_usec);

/* ---- logs and records ---- */
typedef struct StoreLog {
        char log[ID128_STRING_MAX];
        char term[65];
        uint64_t last_seq; /* highest seq stored, no gap below */
        char last_hash[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE]; /* current epoch key */
        uint32_t epochs;
} StoreLog;

int store_log_get(Store *s, const char *log, StoreLog *ret);
/* Insert or update. */
int store_log_put(Store *s, const StoreLog *l, int64_t now_usec);
int store_log_count_for_terminal(Store *s, const char *term, uint64_t *ret);
/* Line hash of a stored record; -ENOENT if not stored. */
int store_record_hash(Store *s, const char *log, uint64_t seq, char ret[SHA256_HEX_MAX]);
int store_record_put(Store *s, const char *log, uint64_t seq, const char *line, size_t len,
                     const char *hash);

/* Every log (ordered by log id) and every record of one log (ascending seq). cb < 0 stops. */
typedef int (*store_log_fn)(const StoreLog *l, void *userdata);
int store_logs_foreach(Store *s, store_log_fn cb, void *userdata);
typedef int (*store_record_fn)(uint64_t seq, const char *line, size_t len, void *userdata);
int store_records_foreach(Store *s, const char *log, store_record_fn cb, void *userdata);
int store_record_count(Store *s, uint64_t *ret);

/* ---- alerts ---- */
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
int store_office_ensure(Store *s, const char *id);
/* offices and members are space-separated id lists (ids never contain spaces). */
int store_operator_add(Store *s, int64_t now_usec, const char *id, const char *name, const char *offices);
int store_operator_set_status(Store *s, int64_t now_usec, const char *id, const char *status,
                              const char *reason);
int store_group_add(Store *s, int64_t now_usec, const char *id, const char *offices, const char *members);
int store_card_issue(Store *s, int64_t now_usec, const char *card_id, const char *cert_pem,
                     const char *operator_id, const char *group_id);
/* status: active | suspended | returned. -ENOENT unknown card. */
int store_card_set_status(Store *s, int64_t now_usec, const char *card_id, const char *status,
                          const char *reason);
/* One history row for a change that is not a registry row (the emergency flag). */
int store_history_add(Store *s, int64_t now_usec, const char *object, const char *id, const char *action,
                      const char *detail);
typedef int (*store_history_fn)(int64_t ts, const char *object, const char *id, const char *action,
                                const char *detail, void *userdata);
/* History rows, oldest first; object/id NULL = all. */
int store_history_foreach(Store *s, const char *object, const char *id, store_history_fn cb, void *userdata);
/* Adds the arrays "offices", "terminals", "operators", "groups", "cards" of §8 to bundle. */
int store_registry_to_policy(Store *s, JsonValue *bundle);

/* ---- policy bundles ---- */
int store_policy_add(Store *s, int64_t serial, int64_t now_usec, const char *body, size_t len);
/* The highest serial; -ENOENT none. ret_body may be NULL. */
int store_policy_latest(Store *s, int64_t *ret_serial, char **ret_body, size_t *ret_len);
