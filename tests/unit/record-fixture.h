/* Helpers for unit tests that build signed logs: deterministic keys and the data.key of log.open/key.rotate.
 */
#pragma once

#include <stdint.h>

#include "mamori/crypto-util.h"
#include "mamori/oplog-record.h"

/* The Ed25519 key whose seed is 32 bytes of b; the caller frees it. */
EVP_PKEY *fixture_key_from_byte(uint8_t b);
/* Sets r's data.key to k's raw public key in base64, as log.open and key.rotate carry it. */
void fixture_set_data_key(Record *r, EVP_PKEY *k);
