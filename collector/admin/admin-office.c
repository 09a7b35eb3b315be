/* mamori-admin office hours|days|holidays / operator roles: the registry facts the audit judges by. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

int admin_office_hours(AdminContext *ctx, int argc, char **argv)
{
        int open, close;
        Store *s;

        if (argc != 3 || audit_parse_hours(argv[2], &open, &close) < 0) {
                fprintf(stderr,
                        "usage: mamori-admin office hours OFFICE HH:MM-HH:MM   (e.g. 08:30-17:15, local "
                        "time; audit flags sessions that start outside them)\n");
                return 2;
        }
        const AdminChange change = {.what = "office", .id = argv[1]};
        if (admin_change_begin(ctx, NULL, &change, &s) != 0)
                return 1;
        if (admin_change_end(s, store_office_set_hours(s, admin_now_usec(), argv[1], argv[2]), &change))
                return 1;
        printf("office %s: hours %s\n", argv[1], argv[2]);
        return 0;
}

int admin_office_days(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *joined = NULL;
        char days[32];
        size_t len = 0;
        unsigned mask;
        Store *s;

        for (int i = 2; i < argc; i++) {
                size_t n = strlen(argv[i]);
                char *nj = realloc(joined, len + n + 2);
                if (!nj)
                        return 1;
                joined = nj;
                if (len)
                        joined[len++] = ' ';
                memcpy(joined + len, argv[i], n + 1);
                len += n;
        }
        if (argc < 3 || audit_parse_days(joined, &mask) < 0) {
                fprintf(stderr,
                        "usage: mamori-admin office days OFFICE DAY…   (mon … sun, or a range such as "
                        "mon-fri or mon-sat; audit flags sessions on other days as outside hours)\n");
                return 2;
        }
        audit_format_days(mask, days, sizeof(days));
        const AdminChange change = {.what = "office", .id = argv[1]};
        if (admin_change_begin(ctx, NULL, &change, &s) != 0)
                return 1;
        if (admin_change_end(s, store_office_set_calendar(s, admin_now_usec(), argv[1], days, NULL),
                             &change))
                return 1;
        printf("office %s: working days %s\n", argv[1], days);
        return 0;
}

static int date_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int admin_office_holidays(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *list = NULL;
        size_t n = argc > 2 ? (size_t)argc - 2 : 0, len = 0;
        Store *s;

        if (argc < 2 || n > 3660) {
                fprintf(stderr,
                        "usage: mamori-admin office holidays OFFICE [YYYY-MM-DD…]   (replaces the "
                        "office's holiday list; none clears it; audit flags sessions on them as outside "
                        "hours)\n");
                return 2;
        }
        for (size_t i = 0; i < n; i++) {
                int64_t t;
                if (audit_parse_date(argv[2 + i], &t) < 0) {
                        fprintf(stderr, "mamori-admin: '%s' is not a date YYYY-MM-DD; nothing was changed\n",
                                argv[2 + i]);
                        return 2;
                }
        }
        /* Sorted and without repeats, so the history shows the list as it stands. */
        qsort(argv + 2, n, sizeof(char *), date_cmp);
        list = calloc(n * 11 + 1, 1);
        if (!list)
                return 1;
        for (size_t i = 0; i < n; i++) {
                if (i && streq(argv[2 + i], argv[1 + i]))
                        continue;
                len += (size_t)sprintf(list + len, "%s%s", len ? " " : "", argv[2 + i]);
        }
        const AdminChange change = {.what = "office", .id = argv[1]};
        if (admin_change_begin(ctx, NULL, &change, &s) != 0)
                return 1;
        if (admin_change_end(s, store_office_set_calendar(s, admin_now_usec(), argv[1], NULL, list),
                             &change))
                return 1;
        printf("office %s: holidays %s\n", argv[1], len ? list : "(none)");
        return 0;
}

int admin_operator_roles(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *roles = NULL;
        size_t len = 0;
        Store *s;

        if (argc < 3) {
                fprintf(stderr,
                        "usage: mamori-admin operator roles ID ROLE [ROLE…]   (e.g. counter, supervisor; "
                        "audit compares an operator's app operations with peers of the same office and "
                        "first role)\n");
                return 2;
        }
        for (int i = 2; i < argc; i++) {
                size_t n = strlen(argv[i]);
                if (n == 0 || n > RECORD_ID_MAX ||
                    strspn(argv[i], "abcdefghijklmnopqrstuvwxyz0123456789-_") != n) {
                        fprintf(stderr, "mamori-admin: invalid role '%s' (1..64 of a-z 0-9 - _)\n", argv[i]);
                        return 2;
                }
                char *nr = realloc(roles, len + n + 2);
                if (!nr)
                        return 1;
                roles = nr;
                if (len)
                        roles[len++] = ' ';
                memcpy(roles + len, argv[i], n + 1);
                len += n;
        }
        const AdminChange change = {.what = "operator", .id = argv[1]};
        if (admin_change_begin(ctx, NULL, &change, &s) != 0)
                return 1;
        if (admin_change_end(s, store_operator_set_roles(s, admin_now_usec(), argv[1], roles), &change))
                return 1;
        printf("operator %s: roles %s\n", argv[1], roles);
        return 0;
}
