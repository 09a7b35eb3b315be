/* Private UTF-8 helpers for the JSON parser and the JCS serialiser (strict RFC 3629 decoding). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decode one code point from s[0..len). Returns the number of bytes used (1..4), or -EBADMSG for
 * an invalid sequence: truncated, overlong, surrogate (U+D800..U+DFFF) or above U+10FFFF.
 */
int utf8_decode(const uint8_t *s, size_t len, uint32_t *ret_cp);

/* Encode cp (must be a valid scalar value) into buf (≥ 4 bytes); returns the byte count. */
size_t utf8_encode(uint32_t cp, uint8_t *buf);

bool utf8_is_valid(const char *s, size_t len);
