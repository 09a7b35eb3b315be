/* Strict number, duration, boolean and PIN-format parsers used by every config, CLI and PIN reader. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "mamori/macro.h"
#include "mamori/parse-util.h"

int parse_uint64(const char *s, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        /* Leading zeros are tolerated ("007"), signs, spaces and hex are not. */
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        {"us", 1},
        {"usec", 1},
        {"ms", USEC_PER_MSEC},
        {"msec", USEC_PER_MSEC},
        {"s", USEC_PER_SEC},
        {"sec", USEC_PER_SEC},
        {"second", USEC_PER_SEC},
        {"seconds", USEC_PER_SEC},
        {"m", 60 * USEC_PER_SEC},
        {"min", 60 * USEC_PER_SEC},
        {"minute", 60 * USEC_PER_SEC},
        {"minutes", 60 * USEC_PER_SEC},
        {"h", 3600 * USEC_PER_SEC},
        {"hr", 3600 * USEC_PER_SEC},
        {"hour", 3600 * USEC_PER_SEC},
        {"hours", 3600 * USEC_PER_SEC},
        {"d", 86400 * USEC_PER_SEC},
        {"day", 86400 * USEC_PER_SEC},
        {"days", 86400 * USEC_PER_SEC},
};

static int unit_usec(const char *unit, size_t len, uint64_t *ret)
{
        if (len == 0) {
                *ret = USEC_PER_SEC; /* bare numbers are seconds */
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
                if (strlen(duration_units[i].suffix) == len && strneq(duration_units[i].suffix, unit, len)) {
                        *ret = duration_units[i].usec;
                        return 0;
                }
        return -EINVAL;
}

int parse_duration_usec(const char *s, uint64_t *ret_usec)
{
        uint64_t total = 0;
        const char *p = s;
        unsigned parts = 0;

        if (!s)
                return -EINVAL;
        for (;;) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                uint64_t n = 0;
                for (; *p >= '0' && *p <= '9'; p++) {
                        unsigned d = (unsigned)(*p - '0');
                        if (n > (UINT64_MAX - d) / 10)
                                return -ERANGE;
                        n = n * 10 + d;
                }
                const char *unit = p;
                while ((*p >= 'a' && *p <= 'z'))
                        p++;
                uint64_t mult;
                if (unit_usec(unit, (size_t)(p - unit), &mult) < 0)
                        return -EINVAL;
                /* A bare number may only stand alone: "5 30" is ambiguous. */
                if (p == unit && (parts > 0 || *p != '\0'))
                        return -EINVAL;
                if (n > UINT64_MAX / mult)
                        return -ERANGE;
                if (total > UINT64_MAX - n * mult)
                        return -ERANGE;
                total += n * mult;
                parts++;
                if (*p && *p != ' ')
                        return -EINVAL;
        }
        if (parts == 0)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

int parse_boolean(const char *s, bool *ret)
{
        static const char *const yes[] = {"1", "yes", "true", "on"};
        static const char *const no[] = {"0", "no", "false", "off"};

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int pin_check_format(const char *pin, size_t min_digits, size_t max_digits)
{
        size_t n;

        if (!pin)
                return -EINVAL;
        n = strnlen(pin, max_digits + 1);
        if (n < min_digits || n > max_digits)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (pin[i] < '0' || pin[i] > '9')
                        return -EINVAL;
        return 0;
}
