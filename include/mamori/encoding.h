/* Strict text encodings for mamori's formats: base64 (RFC 4648, padded), lowercase hex, 128-bit ids. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the padded base64 text for n bytes, without NUL. */
#define BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Encode; *ret is malloc'd, NUL-terminated, owned by the caller. -ENOMEM. */
int base64_encode(const void *data, size_t size, char **ret);

/*
 * Strict decode of padded standard-alphabet base64: length a multiple of 4, '=' only as final
 * padding, no whitespace, unused bits zero (so every byte string has exactly one encoding).
 * -EBADMSG otherwise. *ret is malloc'd (size+1, NUL-terminated for convenience), owned by caller.
 */
int base64_decode(const char *s, size_t len, void **ret, size_t *ret_size);

/* As base64_decode, into a caller buffer of exactly `size` bytes: -EBADMSG unless it decodes to that. */
int base64_decode_exact(const char *s, size_t len, void *buf, size_t size);

/* Lowercase hex of data into out, which must hold 2*size+1 bytes. */
void hex_encode(const void *data, size_t size, char *out);

/* Exactly 2*size lowercase hex digits → size bytes. -EBADMSG otherwise (uppercase refused). */
int hex_decode_exact(const char *s, size_t len, void *buf, size_t size);

/* true when s is exactly n lowercase hex digits (NUL-terminated). */
bool hex_lower_valid(const char *s, size_t n);

/* A 128-bit id (log id, boot id) as 32 lowercase hex digits, NUL-terminated. */
#define ID128_STRING_MAX 33
int id128_from_string(const char *s, uint8_t ret[16]);
void id128_to_string(const uint8_t id[16], char ret[ID128_STRING_MAX]);
