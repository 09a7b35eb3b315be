/* mamori-admin office hours / operator roles: the registry facts the audit judges by. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

static int commit_or_report(Store *s, int r, const char *what, const char *id)
{
        if (r < 0) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: %s %s: %s\n", what, id,
                        r == -ENOENT ? "not registered" : strerror(-r));
                return 1;
        }
        r = store_commit(s);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: %s: commit failed: %s\n", what, strerror(-r));
                return 1;
        }
        return 0;
}

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
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        if (commit_or_report(s, store_office_set_hours(s, admin_now_usec(), argv[1], argv[2]), "office",
                             argv[1]))
                return 1;
        printf("office %s: hours %s\n", argv[1], argv[2]);
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
        if (admin_store(ctx, &s) < 0 || store_begin(s) < 0)
                return 1;
        if (commit_or_report(s, store_operator_set_roles(s, admin_now_usec(), argv[1], roles), "operator",
                             argv[1]))
                return 1;
        printf("operator %s: roles %s\n", argv[1], roles);
        return 0;
}
