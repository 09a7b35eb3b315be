/* Ed25519 signatures over JSON objects as mamori signs records and policy bundles ("sig" over JCS without
 * "sig"). */
#pragma once

#include <openssl/evp.h>

#include "mamori/json.h"

#define SIGNED_JSON_SIG_KEY "sig"

/*
 * Compute the JCS bytes of obj without its top-level "sig" member, sign them with key and set
 * "sig" to the padded base64 signature (replacing an existing one). obj stays owned by the caller.
 * If ret_sig is not NULL it receives the raw 64-byte signature.
 */
int signed_json_sign(JsonValue *obj, EVP_PKEY *key, uint8_t *ret_sig);

/*
 * Check obj's "sig" against key. 0 valid; -ENOKEY no "sig" member; -EBADMSG obj is not an object
 * or "sig" is not a string holding canonical base64 of 64 bytes; -EKEYREJECTED the signature does
 * not verify (tampered content or another key); -ERANGE an integer JCS cannot carry; -ENOMEM.
 */
int signed_json_verify(const JsonValue *obj, EVP_PKEY *key);
