/* The register's hash chain: the one definition of a history row's hash, shared by every store backend. */
#pragma once

#include <stdint.h>

#include "mamori/crypto-util.h"

/* A history row of the register (発行簿). Strings are "" when absent, never NULL. */
typedef struct RegisterRow {
        int64_t id; /* 1, 2, 3 … in the order written, no gaps */
        int64_t ts; /* µs since the epoch */
        const char *object, *object_id, *action, *detail;
        const char *actor, *reason;
        const char *prev; /* hash of row id - 1; REGISTER_PREV_FIRST for row 1 */
        const char *hash; /* as stored (register_row_hash() of the row when intact) */
} RegisterRow;

#define REGISTER_PREV_FIRST "0000000000000000000000000000000000000000000000000000000000000000"

/*
 * hex SHA-256 of the RFC 8785 JCS bytes of {"action","actor","detail","id","object","object_id","prev",
 * "reason","ts","v":1} of row (row->hash is not read). -EINVAL for a NULL field or a negative id/ts.
 */
int register_row_hash(const RegisterRow *row, char ret[SHA256_HEX_MAX]);
