/* Strict parsers for numbers, durations, booleans and PINs: reject junk, signs, overflow. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* Decimal unsigned integer, no sign, no whitespace, no leading "0x", ≤ max. -EINVAL or -ERANGE. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret);

/* Duration such as "300", "5min", "1h 30min", "250ms"; bare numbers are seconds. Result in µs. */
int parse_duration_usec(const char *s, uint64_t *ret_usec);

/* yes/no/true/false/on/off/1/0. */
int parse_boolean(const char *s, bool *ret);

/* mamori's PIN: 6-8 ASCII digits, as PIV cards take it. */
#define PIN_DIGITS_MIN 6
#define PIN_DIGITS_MAX 8

/* 0 when pin is min_digits..max_digits ASCII digits, else -EINVAL. Reads at most max_digits + 1
 * bytes of pin, so a PIN that is not terminated where it should be is still bounded. */
int pin_check_format(const char *pin, size_t min_digits, size_t max_digits);
