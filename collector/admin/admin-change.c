/* mamori-admin's one way to change the centre's store: who, why, begin, commit or roll back and say why. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "mamori/json.h"

bool admin_utf8_ok(const char *s)
{
        _cleanup_json_ JsonValue *v = NULL;
        return json_new_string(s, &v) >= 0;
}

char *admin_actor(void)
{
        /* The person behind sudo, else the login name of the uid (DESIGN §11: who made the change). */
        const char *sudo = secure_getenv("SUDO_USER");
        const struct passwd *pw;
        char *a;

        if (sudo && sudo[0] && strlen(sudo) <= 64 && !strpbrk(sudo, " \t\n\r"))
                return strdup(sudo);
        pw = getpwuid(geteuid());
        if (pw && pw->pw_name[0])
                return strdup(pw->pw_name);
        if (asprintf(&a, "uid:%u", (unsigned)geteuid()) < 0)
                return NULL;
        return a;
}

bool admin_reason_valid(const char *reason)
{
        if (reason[0] && strlen(reason) <= 1024 && !strpbrk(reason, "\n\r\t") && admin_utf8_ok(reason))
                return true;
        fprintf(stderr,
                "mamori-admin: the reason must be one line of 1 to 1024 bytes of UTF-8, without tabs\n");
        return false;
}

int admin_change_begin(AdminContext *ctx, const char *reason, Store **ret)
{
        Store *s;
        int r;

        if (reason && !admin_reason_valid(reason))
                return 2;
        if (admin_store(ctx, &s) < 0)
                return 1;
        r = store_set_reason(s, reason);
        if (r >= 0)
                r = store_begin(s);
        if (r < 0) { /* store_begin() says nothing itself */
                admin_change_failed(s, r, ADMIN_CHANGE_BEGIN, NULL, NULL, NULL);
                return 1;
        }
        *ret = s;
        return 0;
}

int admin_change_end(Store *s, int r, const char *what, const char *id)
{
        if (r < 0) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: %s%s%s: %s\n", what, id ? " " : "", id ?: "",
                        r == -EEXIST   ? "already exists"
                        : r == -ENOENT ? "not registered"
                                       : strerror(-r));
                return 1;
        }
        r = store_commit(s);
        if (r < 0) {
                admin_change_failed(s, r, ADMIN_CHANGE_COMMIT, what, id, NULL);
                return 1;
        }
        return 0;
}

const char *admin_store_why(Store *s, int r)
{
        if (r == -EBUSY)
                return "see what else holds the database that long (a retention run, another mamori-admin)";
        if (r == -ENOSPC)
                return "free space on the database's disk";
        if (!s)
                return "the database's own log or disk says why";
        if (streq(store_backend_name(s), "postgresql"))
                return "the PostgreSQL server's log says why";
        return "check the disk that holds the database file (free space, I/O errors in the kernel log)";
}

void admin_change_failed(Store *s, int r, AdminChangeStep step, const char *what, const char *id,
                         const char *also)
{
        static const char *const how[] = {
                [ADMIN_CHANGE_BEGIN] = "could not start it",
                [ADMIN_CHANGE_WRITE] = "refused it",
                [ADMIN_CHANGE_COMMIT] = "refused to commit it",
        };
        char who[160] = "";

        if (what)
                snprintf(who, sizeof(who), "%s%s%s: ", what, id ? " " : "", id ?: "");
        /* store.h: the server may have committed before the session went */
        if (step == ADMIN_CHANGE_COMMIT && r == -ECONNRESET)
                fprintf(stderr,
                        "mamori-admin: %sthe connection to the database was lost as the change was "
                        "committed: it may or may not be stored%s%s. See mamori-admin history%s%s before "
                        "making it again\n",
                        who, also ? "; " : "", also ?: "", id ? " " : "", id ?: "");
        else
                fprintf(stderr,
                        "mamori-admin: %sthe change was not stored: the database %s (%s)%s, the register is "
                        "as it was%s%s. Run the same command again; if it fails the same way, %s\n",
                        who, how[step], strerror(-r),
                        step == ADMIN_CHANGE_BEGIN ? "" : " and it was rolled back", also ? "; " : "",
                        also ?: "", admin_store_why(s, r));
}
