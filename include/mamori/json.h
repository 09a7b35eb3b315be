/* Strict, bounded JSON parser and tree (integers only) for mamori's records, policy and IPC bodies. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/macro.h"

/*
 * Ownership: every JsonValue is owned by exactly one parent (an array or object) or by the caller
 * that got it from json_parse() / json_new_*(). json_value_free() frees a value and all its
 * children. Pointers returned by getters borrow from the tree and live as long as it does.
 *
 * Errors: -EBADMSG malformed input (syntax, bad UTF-8, lone surrogate, raw control character,
 * duplicate key, fraction/exponent, leading zero, "-0", trailing bytes, wrong type in a getter),
 * -E2BIG a bound was exceeded (size, depth, members, string length), -ERANGE integer outside
 * int64, -ENOENT missing key/index, -ENOMEM.
 */

typedef enum JsonType {
        JSON_NULL,
        JSON_BOOLEAN,
        JSON_INTEGER,
        JSON_STRING,
        JSON_ARRAY,
        JSON_OBJECT,
} JsonType;

typedef struct JsonValue JsonValue;

typedef struct JsonMember {
        char *key; /* UTF-8, NUL-terminated, never contains NUL */
        size_t key_len;
        JsonValue *value;
        bool key_in_value; /* parsed: key's bytes are in value's allocation, and go with it (json.c) */
} JsonMember;

struct JsonValue {
        JsonType type;
        bool data_inline; /* a parsed string: its bytes are in this node's allocation (json.c) */
        union {
                bool boolean;
                int64_t integer;
                struct {
                        char *data; /* UTF-8, NUL-terminated; may contain NUL (\u0000) */
                        size_t len;
                } string;
                struct {
                        JsonValue **items;
                        size_t n, allocated;
                } array;
                struct {
                        JsonMember *members; /* input (or insertion) order */
                        size_t n, allocated;
                } object;
        };
};

typedef struct JsonLimits {
        size_t max_size;    /* input bytes, including an allowed final "\n" */
        unsigned max_depth; /* nesting of arrays/objects; a scalar at top level is depth 0 */
        size_t max_members; /* per array or object */
        size_t max_string;  /* decoded bytes per string or key */
} JsonLimits;

#define JSON_DEFAULT_MAX_SIZE    (1024u * 1024u)
#define JSON_DEFAULT_MAX_DEPTH   32u
#define JSON_DEFAULT_MAX_MEMBERS 4096u
#define JSON_DEFAULT_MAX_STRING  (64u * 1024u)

typedef enum JsonParseFlags {
        JSON_PARSE_ALLOW_FINAL_NEWLINE = 1 << 0, /* accept exactly one "\n" after the value (log lines) */
        /* Accept only bytes that are the RFC 8785 (JCS) serialisation of what they parse to, as
         * jcs_serialize() writes it: no whitespace, members in ascending UTF-16 key order, escapes only
         * where JCS escapes (\uXXXX lowercase, for control characters without a short form),
         * integers within ±JCS_MAX_SAFE_INTEGER. Checked while parsing: nothing is serialised again. */
        JSON_PARSE_CANONICAL = 1 << 1,
} JsonParseFlags;

/*
 * Parse exactly one JSON value from data[0..size). limits NULL means the defaults above.
 * Whitespace (space, tab, CR, LF) is allowed between tokens as RFC 8259 says.
 * On failure, if error_offset is not NULL it receives the byte offset where parsing stopped.
 * On success *ret is a new tree owned by the caller.
 */
int json_parse(const void *data, size_t size, const JsonLimits *limits, JsonParseFlags flags,
               JsonValue **ret, size_t *error_offset);

JsonValue *json_value_free(JsonValue *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(JsonValue *, json_value_free);
#define _cleanup_json_ _cleanup_(json_value_freep)

/* Deep copy. */
int json_value_copy(const JsonValue *v, JsonValue **ret);
/* Structural equality (object members compared as sets). */
bool json_value_equal(const JsonValue *a, const JsonValue *b);

static inline bool json_is_null(const JsonValue *v)
{
        return v && v->type == JSON_NULL;
}

/* Accessors. They fail with -EBADMSG when v is NULL or not of the asked type; nothing is copied. */
int json_get_boolean(const JsonValue *v, bool *ret);
int json_get_integer(const JsonValue *v, int64_t *ret);
/* NUL-terminated string; -EBADMSG if it contains an embedded NUL. ret_len may be NULL. */
int json_get_string(const JsonValue *v, const char **ret, size_t *ret_len);
size_t json_array_size(const JsonValue *v);                    /* 0 when not an array */
size_t json_object_size(const JsonValue *v);                   /* 0 when not an object */
const JsonValue *json_array_get(const JsonValue *v, size_t i); /* NULL if out of range / not array */

/* Member lookup by key; NULL when v is not an object or has no such key. */
const JsonValue *json_object_get(const JsonValue *v, const char *key);

/* Typed member getters: -ENOENT when missing, -EBADMSG when of another type (or v not an object). */
int json_object_get_boolean(const JsonValue *v, const char *key, bool *ret);
int json_object_get_integer(const JsonValue *v, const char *key, int64_t *ret);
int json_object_get_string(const JsonValue *v, const char *key, const char **ret);
int json_object_get_array(const JsonValue *v, const char *key, const JsonValue **ret);
int json_object_get_object(const JsonValue *v, const char *key, const JsonValue **ret);
/* A string member without NUL bytes copied into buf (with its NUL); -EBADMSG when missing, of another
 * type, or size bytes or longer. */
int json_object_copy_string(const JsonValue *v, const char *key, char *buf, size_t size);

/* A small file of one flat object (a final newline allowed) whose members are all among keys[n_keys]:
 * parsed within limits, else -EBADMSG. */
int json_parse_flat_object(const void *data, size_t size, const JsonLimits *limits, const char *const *keys,
                           size_t n_keys, JsonValue **ret);

/* Builders. Strings must be valid UTF-8 (-EINVAL otherwise); keys must not contain NUL. */
int json_new_null(JsonValue **ret);
int json_new_boolean(bool b, JsonValue **ret);
int json_new_integer(int64_t i, JsonValue **ret);
int json_new_string(const char *s, JsonValue **ret);
int json_new_string_len(const char *s, size_t len, JsonValue **ret);
int json_new_array(JsonValue **ret);
int json_new_object(JsonValue **ret);

/*
 * Append/insert. These always take ownership of value: on failure it is freed, so the caller
 * never frees it after the call. value NULL yields -EINVAL. Duplicate key: -EEXIST.
 */
int json_array_append(JsonValue *array, JsonValue *value);
int json_object_set(JsonValue *object, const char *key, JsonValue *value);
int json_object_set_string(JsonValue *object, const char *key, const char *s);
int json_object_set_integer(JsonValue *object, const char *key, int64_t i);
int json_object_set_boolean(JsonValue *object, const char *key, bool b);
int json_object_set_null(JsonValue *object, const char *key);
/* Remove and free a member; -ENOENT if absent. */
int json_object_remove(JsonValue *object, const char *key);
/* Removes key's member and hands its value to the caller (-ENOENT without one): no copy. */
int json_object_take(JsonValue *object, const char *key, JsonValue **ret);
/* As json_get_string() (no NUL inside), and hands the string's buffer to the caller, who frees it;
 * v becomes null. */
int json_string_take(JsonValue *v, char **ret);
