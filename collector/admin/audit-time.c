/* Dates and clock times of the audit, in the centre's local time zone (DESIGN §12: DATE is YYYY-MM-DD). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"

static bool digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static int num(const char *s, size_t n)
{
        int v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        return v;
}

int audit_parse_date(const char *s, int64_t *ret)
{
        struct tm tm = {.tm_isdst = -1};
        time_t t;

        if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4) || !digits(s + 5, 2) ||
            !digits(s + 8, 2))
                return -EINVAL;
        tm.tm_year = num(s, 4) - 1900;
        tm.tm_mon = num(s + 5, 2) - 1;
        tm.tm_mday = num(s + 8, 2);
        if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
                return -EINVAL;
        int mon = tm.tm_mon, mday = tm.tm_mday;
        t = mktime(&tm);
        if (t == (time_t)-1 || tm.tm_mon != mon || tm.tm_mday != mday) /* 2025-02-30 normalises: refuse */
                return -EINVAL;
        *ret = (int64_t)t * 1000000;
        return 0;
}

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int day_index(const char *s, size_t n)
{
        if (n != 3)
                return -1;
        for (int i = 0; i < 7; i++)
                if (memcmp(s, day_names[i], 3) == 0)
                        return i;
        return -1;
}

int audit_parse_days(const char *s, unsigned *ret_mask)
{
        unsigned mask = 0;

        if (!s)
                return -EINVAL;
        while (*s) {
                size_t n = strcspn(s, " ,");
                if (n == 0) {
                        s++;
                        continue;
                }
                const char *dash = memchr(s, '-', n);
                int a = day_index(s, dash ? (size_t)(dash - s) : n);
                int b = dash ? day_index(dash + 1, n - (size_t)(dash - s) - 1) : a;
                if (a < 0 || b < 0)
                        return -EINVAL;
                /* "mon-fri"; "fri-mon" wraps over the weekend. */
                for (int d = a;; d = (d + 1) % 7) {
                        mask |= 1u << d;
                        if (d == b)
                                break;
                }
                s += n;
        }
        if (!mask)
                return -EINVAL;
        *ret_mask = mask;
        return 0;
}

void audit_format_days(unsigned mask, char *buf, size_t size)
{
        size_t o = 0;
        if (size == 0)
                return;
        buf[0] = 0;
        /* Monday first, as offices write them. */
        for (int k = 1; k <= 7; k++) {
                int d = k % 7;
                if (mask & (1u << d)) {
                        int w = snprintf(buf + o, size - o, "%s%s", o ? " " : "", day_names[d]);
                        if (w < 0 || (size_t)w >= size - o)
                                return;
                        o += (size_t)w;
                }
        }
}

const char *audit_day_name(int wday)
{
        return wday >= 0 && wday < 7 ? day_names[wday] : "?";
}

int audit_parse_hours(const char *s, int *ret_open, int *ret_close)
{
        if (!s || strlen(s) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':' || !digits(s, 2) ||
            !digits(s + 3, 2) || !digits(s + 6, 2) || !digits(s + 9, 2))
                return -EINVAL;
        int o = num(s, 2) * 60 + num(s + 3, 2), c = num(s + 6, 2) * 60 + num(s + 9, 2);
        if (num(s, 2) > 23 || num(s + 3, 2) > 59 || num(s + 6, 2) > 24 || num(s + 9, 2) > 59 ||
            c > 24 * 60 || o >= c)
                return -EINVAL;
        *ret_open = o;
        *ret_close = c;
        return 0;
}

static void local(int64_t usec, struct tm *tm)
{
        static bool tz_loaded;
        time_t t = (time_t)(usec / 1000000);
        /* localtime_r(), unlike localtime(), need not read TZ: load it once. */
        if (!tz_loaded) {
                tzset();
                tz_loaded = true;
        }
        localtime_r(&t, tm);
}

void audit_format_time(int64_t usec, char *buf, size_t size)
{
        struct tm tm;
        local(usec, &tm);
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

void audit_format_date(int64_t usec, char *buf, size_t size)
{
        struct tm tm;
        local(usec, &tm);
        strftime(buf, size, "%Y-%m-%d", &tm);
}

int audit_local_minutes(int64_t usec)
{
        struct tm tm;
        local(usec, &tm);
        return tm.tm_hour * 60 + tm.tm_min;
}

int audit_local_wday(int64_t usec)
{
        struct tm tm;
        local(usec, &tm);
        return tm.tm_wday;
}

int64_t audit_local_day(int64_t usec)
{
        struct tm tm;
        local(usec, &tm);
        return (usec / 1000000 + tm.tm_gmtoff) / 86400;
}

int audit_local_month(int64_t usec, int *ret_year)
{
        struct tm tm;
        local(usec, &tm);
        if (ret_year)
                *ret_year = tm.tm_year + 1900;
        return tm.tm_mon;
}

int audit_parse_window(const char *from_s, const char *to_s, int64_t *ret_from, int64_t *ret_to)
{
        int64_t from = 0, to = INT64_MAX;
        if (from_s && audit_parse_date(from_s, &from) < 0)
                return -EINVAL;
        if (to_s) {
                /* --to is inclusive: the window ends at the next local midnight. */
                struct tm tm = {.tm_isdst = -1};
                int64_t day;
                if (audit_parse_date(to_s, &day) < 0)
                        return -EINVAL;
                time_t t = (time_t)(day / 1000000);
                localtime_r(&t, &tm);
                tm.tm_mday++;
                tm.tm_isdst = -1;
                to = (int64_t)mktime(&tm) * 1000000;
        }
        if (to <= from)
                return -ERANGE;
        *ret_from = from;
        *ret_to = to;
        return 0;
}
