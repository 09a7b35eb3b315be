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

/* Where a change of the store failed: its store_begin(), a write inside it, or its store_commit(). */
typedef enum ChangeStep {
        CHANGE_BEGIN,
        CHANGE_WRITE,
        CHANGE_COMMIT,
} ChangeStep;

/* After the change c failed with r at step (and was rolled back): whether it is stored (not, or maybe when
 * the connection was lost at COMMIT), what else it leaves, and what to do. */
static void change_failed(Store *s, int r, ChangeStep step, const AdminChange *c)
{
        static const char *const how[] = {
                [CHANGE_BEGIN] = "could not start it",
                [CHANGE_WRITE] = "refused it",
                [CHANGE_COMMIT] = "refused to commit it",
        };
        const char *id = c->what ? c->id : NULL, *also;
        char who[160] = "";

        if (c->what)
                snprintf(who, sizeof(who), "%s%s%s: ", c->what, id ? " " : "", id ?: "");
        /* store.h: the server may have committed before the session went */
        if (step == CHANGE_COMMIT && r == -ECONNRESET) {
                also = c->also_maybe;
                fprintf(stderr,
                        "mamori-admin: %sthe connection to the database was lost as the change was "
                        "committed: it may or may not be stored%s%s. See mamori-admin history%s%s before "
                        "making it again\n",
                        who, also ? "; " : "", also ?: "", id ? " " : "", id ?: "");
                return;
        }
        also = c->also;
        fprintf(stderr,
                "mamori-admin: %sthe change was not stored: the database %s (%s)%s, the register is as it "
                "was%s%s. Run the same command again; if it fails the same way, %s\n",
                who, how[step], strerror(-r), step == CHANGE_BEGIN ? "" : " and it was rolled back",
                also ? "; " : "", also ?: "", admin_store_why(s, r));
}

int admin_change_begin(AdminContext *ctx, const char *reason, const AdminChange *c, Store **ret)
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
                change_failed(s, r, CHANGE_BEGIN, c);
                return 1;
        }
        *ret = s;
        return 0;
}

int admin_change_end(Store *s, int r, const AdminChange *c)
{
        const char *id = c->what ? c->id : NULL;

        if (r == -EEXIST || r == -ENOENT) { /* the register's answer, not the database failing */
                store_rollback(s);
                fprintf(stderr, "mamori-admin: %s%s%s: %s; nothing was changed%s%s\n", c->what ?: "change",
                        id ? " " : "", id ?: "", r == -EEXIST ? "already exists" : "not registered",
                        c->also ? "; " : "", c->also ?: "");
                return 1;
        }
        if (r < 0) {
                store_rollback(s);
                change_failed(s, r, CHANGE_WRITE, c);
                return 1;
        }
        r = store_commit(s);
        if (r < 0) {
                change_failed(s, r, CHANGE_COMMIT, c);
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
        if (r == -ENOMEM)
                return "free memory (on this machine, or the database server's)";
        if (!s)
                return "the database's own log or disk says why";
        if (streq(store_backend_name(s), "postgresql"))
                return "the PostgreSQL server's log says why";
        return "check the disk that holds the database file (free space, I/O errors in the kernel log)";
}
