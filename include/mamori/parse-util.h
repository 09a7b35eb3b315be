/* Strict parsers for numbers, durations and booleans: reject junk, signs, overflow. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* Decimal unsigned integer, no sign, no whitespace, no leading "0x", ≤ max. -EINVAL or -ERANGE. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret);

/* Duration such as "300", "5min", "1h 30min", "250ms"; bare numbers are seconds. Result in µs. */
int parse_duration_usec(const char *s, uint64_t *ret_usec);

/* yes/no/true/false/on/off/1/0. */
int parse_boolean(const char *s, bool *ret);
