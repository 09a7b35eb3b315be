/* Unit tests for the strict number, duration and boolean parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mamori/macro.h"
#include "mamori/parse-util.h"

static void test_uint64(void **state)
{
        static const struct {
                const char *in;
                uint64_t max;
                int ret;
                uint64_t val;
        } cases[] = {
                {"0", UINT64_MAX, 0, 0},
                {"300", UINT64_MAX, 0, 300},
                {"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
                {"18446744073709551616", UINT64_MAX, -ERANGE, 0},
                {"99999999999999999999999", UINT64_MAX, -ERANGE, 0},
                {"4294967296", UINT32_MAX, -ERANGE, 0},
                {"", UINT64_MAX, -EINVAL, 0},
                {"-1", UINT64_MAX, -EINVAL, 0},
                {"+1", UINT64_MAX, -EINVAL, 0},
                {" 1", UINT64_MAX, -EINVAL, 0},
                {"1 ", UINT64_MAX, -EINVAL, 0},
                {"0x10", UINT64_MAX, -EINVAL, 0},
                {"12abc", UINT64_MAX, -EINVAL, 0},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = 4242;
                int r = parse_uint64(cases[i].in, cases[i].max, &v);
                assert_int_equal(r, cases[i].ret);
                if (r == 0)
                        assert_int_equal(v, cases[i].val);
                else
                        assert_int_equal(v, 4242); /* untouched on failure */
        }
}

static void test_duration(void **state)
{
        static const struct {
                const char *in;
                int ret;
                uint64_t usec;
        } cases[] = {
                {"300", 0, 300 * USEC_PER_SEC},
                {"5min", 0, 300 * USEC_PER_SEC},
                {"1h", 0, 3600 * USEC_PER_SEC},
                {"1h 30min", 0, 5400 * USEC_PER_SEC},
                {"250ms", 0, 250 * USEC_PER_MSEC},
                {"2s", 0, 2 * USEC_PER_SEC},
                {"1d", 0, 86400 * USEC_PER_SEC},
                {"0", 0, 0},
                {"", -EINVAL, 0},
                {"min", -EINVAL, 0},
                {"5 30", -EINVAL, 0},
                {"5years", -EINVAL, 0},
                {"-5s", -EINVAL, 0},
                {"1.5h", -EINVAL, 0},
                {"5min,", -EINVAL, 0},
                {"99999999999999999999s", -ERANGE, 0},
                {"9999999999999999d", -ERANGE, 0},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = 7;
                int r = parse_duration_usec(cases[i].in, &v);
                assert_int_equal(r, cases[i].ret);
                assert_int_equal(v, r == 0 ? cases[i].usec : 7);
        }
}

static void test_boolean(void **state)
{
        bool b = false;
        assert_int_equal(parse_boolean("yes", &b), 0);
        assert_true(b);
        assert_int_equal(parse_boolean("OFF", &b), 0);
        assert_false(b);
        assert_int_equal(parse_boolean("maybe", &b), -EINVAL);
        assert_int_equal(parse_boolean("", &b), -EINVAL);
}

/* The PIN format: exact digit counts, nothing else, and never a read past max + 1 bytes. */
static void test_pin_format(void **state)
{
        static const char unterminated[9] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};

        assert_int_equal(pin_check_format("123456", PIN_DIGITS_MIN, PIN_DIGITS_MAX), 0);
        assert_int_equal(pin_check_format("00000000", PIN_DIGITS_MIN, PIN_DIGITS_MAX), 0);
        assert_int_equal(pin_check_format("12345", PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format("123456789", PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format("12345a", PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format("+123456", PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format("123 456", PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format("", PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format(NULL, PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
        assert_int_equal(pin_check_format("1234", 4, 4), 0);
        /* Nine digits and no NUL: too long, found without reading a tenth byte (ASan checks). */
        assert_int_equal(pin_check_format(unterminated, PIN_DIGITS_MIN, PIN_DIGITS_MAX), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_uint64),
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_boolean),
                cmocka_unit_test(test_pin_format),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
