/* Batch ingestion (DESIGN.md §7): verify a POSTed batch of record lines completely, then store it. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/oplog-verify.h"
#include "store.h"

#define INGEST_BODY_MAX_DEFAULT    (8u * 1024u * 1024u)
#define INGEST_RECORDS_MAX_DEFAULT 20000u

/* What a 200 acknowledges, for the receipt the server signs (DESIGN.md §7): the line hash of
 * record acked and the key that signs acked + 1. */
typedef struct IngestAck {
        bool valid;
        char log[ID128_STRING_MAX];
        uint64_t acked;
        char line[SHA256_HEX_MAX];
        uint8_t key[ED25519_KEY_SIZE];
} IngestAck;

/* What to send back: an HTTP status and a JSON body (malloc'd, owned by the answer). */
typedef struct IngestAnswer {
        unsigned status;
        char *body;
        IngestAck ack; /* set with every 200 {"log":L,"acked":N} */
} IngestAnswer;

void ingest_answer_done(IngestAnswer *a);

/* How ingest_batch() runs; NULL: the signature checks on the calling thread, no lock of its own. */
typedef struct IngestOptions {
        LogParallel parallel; /* runs the signature checks of a batch (verify-pool.h); .run NULL: serial */
        /* Held from BEGIN to COMMIT when not NULL: one process's SQLite writers queue here rather than
         * poll the database's write lock (its busy handler sleeps up to 100 ms between tries). */
        pthread_mutex_t *write_lock;
} IngestOptions;

/*
 * Verify body (record lines of one log, ascending seq, each ending with "\n") posted by the
 * terminal whose certificate CN is cn, and store the new records in one transaction. The new records
 * are verified before the transaction (against the log's state read then; again inside it when a
 * batch of the same log was stored meanwhile), so batches of several terminals verify at once:
 *   200 {"log":L,"acked":N}            stored (or already stored: identical resend), after COMMIT
 *   409 {"log":L,"acked":N}            gap before the first new seq
 *   409 {"error":"fork",...}           a stored seq with other bytes, or a chain that leaves ours (+alert)
 *   422 {"error":...}                  malformed, wrong term/order, bad signature/chain (+alert where
 *                                      it matters); nothing of the batch stored
 *   403 {"error":"unknown-terminal"}   cn is not registered
 *   413 {"error":"too-many-records"}
 * Returns 0 with *ret filled, or -errno when the store failed (the caller answers 503).
 */
int ingest_batch(Store *s, const IngestOptions *o, const char *cn, const char *body, size_t len,
                 size_t max_records, int64_t now_usec, IngestAnswer *ret);

/* GET /v1/logs/{log}/acked for terminal cn: 200 with acked (0 for an unknown log), 404 another
 * terminal's log, 400 a malformed log id. */
int ingest_acked(Store *s, const char *cn, const char *log, IngestAnswer *ret);
