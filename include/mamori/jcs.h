/* RFC 8785 JSON Canonicalization Scheme serialiser for mamori's integer-only JSON trees. */
#pragma once

#include <stddef.h>

#include "mamori/json.h"

/* Largest integer magnitude JCS can carry exactly (ECMAScript Number.MAX_SAFE_INTEGER). */
#define JCS_MAX_SAFE_INTEGER INT64_C(9007199254740991)

/*
 * Serialise v as RFC 8785 bytes: object members sorted by the UTF-16 code units of their keys,
 * strings escaped as ECMAScript JSON.stringify does, integers in plain decimal, no whitespace.
 * If skip_key is not NULL, a member of that name in the top-level object is left out (this is how
 * the signed bytes of a record or policy bundle, "everything but sig", are made).
 *
 * On success *ret is a malloc'd NUL-terminated buffer owned by the caller and *ret_len its length
 * without the NUL (ret_len may be NULL). Errors: -ERANGE for an integer outside
 * ±JCS_MAX_SAFE_INTEGER (an ECMAScript-based verifier could not reproduce it), -EINVAL for a
 * malformed tree (invalid UTF-8 in a string), -ENOMEM.
 */
int jcs_serialize(const JsonValue *v, const char *skip_key, char **ret, size_t *ret_len);

/* Compare two UTF-8 strings by UTF-16 code units as RFC 8785 §3.2.3 orders keys; <0, 0, >0. */
int jcs_key_compare(const char *a, size_t a_len, const char *b, size_t b_len);
