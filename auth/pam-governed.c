/* Which accounts pam_mamori governs (DESIGN.md §4): group= membership looked up through NSS, bounded. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <security/_pam_types.h>

#include "mamori/macro.h"
#include "pam-governed.h"

const struct nss_ops nss_ops_libc = {
        .getpwnam_r = getpwnam_r,
        .getgrnam_r = getgrnam_r,
        .getgrouplist = getgrouplist,
};

#define NSS_BUFFER_START 1024u
#define GROUPS_START     32

bool governed_group_name_valid(const char *group)
{
        size_t n;

        if (!group)
                return false;
        n = strnlen(group, PAM_GOVERNED_GROUP_MAX + 1);
        if (n == 0 || n > PAM_GOVERNED_GROUP_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)group[i] < 0x20 || group[i] == 0x7f || group[i] == ':')
                        return false;
        return true;
}

bool gid_list_contains(const gid_t *groups, size_t n, gid_t gid)
{
        for (size_t i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

/* One getpwnam_r or getgrnam_r with the buffer given: 0 found (*ret_gid), else the positive errno
 * it answered, ENOENT for "no entry" without an error. */
typedef int (*nss_getter)(const struct nss_ops *ops, const char *name, char *buf, size_t size,
                          gid_t *ret_gid);

static int get_user(const struct nss_ops *ops, const char *name, char *buf, size_t size, gid_t *ret_gid)
{
        struct passwd pw, *found = NULL;
        int r = ops->getpwnam_r(name, &pw, buf, size, &found);

        if (r == 0 && !found)
                return ENOENT;
        if (r == 0)
                *ret_gid = pw.pw_gid;
        return r;
}

static int get_group(const struct nss_ops *ops, const char *name, char *buf, size_t size, gid_t *ret_gid)
{
        struct group gr, *found = NULL;
        int r = ops->getgrnam_r(name, &gr, buf, size, &found);

        if (r == 0 && !found)
                return ENOENT;
        if (r == 0)
                *ret_gid = gr.gr_gid;
        return r;
}

/* A user's primary group or a group's id by name, the buffer doubled on ERANGE up to the bound:
 * 1 found (*ret_gid), 0 no such entry, -errno. POSIX lets "not found" be 0 or one of ENOENT,
 * ESRCH, EBADF, EPERM; only 0 and ENOENT/ESRCH (which nss_wrapper answers) are taken as "no such
 * entry" here; an unknown user is refused like every other lookup failure in the phases that
 * could authenticate. */
static int nss_lookup(const struct nss_ops *ops, nss_getter get, const char *name, gid_t *ret_gid)
{
        for (size_t size = NSS_BUFFER_START; size <= PAM_GOVERNED_NSS_BUFFER_MAX; size *= 2) {
                _cleanup_free_ char *buf = malloc(size);
                gid_t gid = 0;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = get(ops, name, buf, size, &gid);
                if (r == ERANGE)
                        continue;
                if (r == ENOENT || r == ESRCH)
                        return 0;
                if (r != 0)
                        return r > 0 ? -r : -EIO;
                *ret_gid = gid;
                return 1;
        }
        return -E2BIG;
}

/* Whether user (primary group primary_gid) belongs to gid: 1 yes, 0 no, -errno. */
static int user_in_group(const struct nss_ops *ops, const char *user, gid_t primary_gid, gid_t gid)
{
        int cap = GROUPS_START;

        if (primary_gid == gid)
                return 1;
        /* The group list can grow between two calls: retry a few times, never beyond the bound. */
        for (int attempt = 0; attempt < 4; attempt++) {
                _cleanup_free_ gid_t *groups = calloc((size_t)cap, sizeof(gid_t));
                int n = cap;

                if (!groups)
                        return -ENOMEM;
                if (ops->getgrouplist(user, primary_gid, groups, &n) >= 0) {
                        if (n < 0 || n > cap)
                                return -EIO;
                        return gid_list_contains(groups, (size_t)n, gid);
                }
                if (n <= cap)
                        return -EIO; /* "too small" without saying how big it must be */
                if (n > PAM_GOVERNED_GROUPS_MAX)
                        return -E2BIG;
                cap = n;
        }
        return -EAGAIN;
}

int account_classify(const struct nss_ops *ops, const char *user, const char *group, AccountClass *ret_class)
{
        gid_t primary_gid = 0, gid = 0;
        int r;

        if (!ops || !user || !governed_group_name_valid(group))
                return -EINVAL;
        if (user[0] == '\0') {
                *ret_class = ACCOUNT_UNKNOWN_USER;
                return 0;
        }
        r = nss_lookup(ops, get_user, user, &primary_gid);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_class = ACCOUNT_UNKNOWN_USER;
                return 0;
        }
        r = nss_lookup(ops, get_group, group, &gid);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_class = ACCOUNT_NO_GROUP;
                return 0;
        }
        r = user_in_group(ops, user, primary_gid, gid);
        if (r < 0)
                return r;
        *ret_class = r ? ACCOUNT_GOVERNED : ACCOUNT_OTHER;
        return 0;
}

/* One row per class, one column per phase. PAM_IGNORE lets the rest of the stack decide as if
 * mamori were not there; every other code ends the stack under the shipped profile
 * ([… ignore=ignore default=die]). setcred establishes nothing for anybody but a governed account,
 * so it stays out of the way whatever the class. */
static const int answers[_ACCOUNT_CLASS_MAX][_PAM_PHASE_MAX] = {
        [ACCOUNT_OTHER] = {PAM_IGNORE, PAM_IGNORE, PAM_IGNORE, PAM_IGNORE},
        [ACCOUNT_NO_GROUP] = {PAM_IGNORE, PAM_IGNORE, PAM_IGNORE, PAM_IGNORE},
        [ACCOUNT_GOVERNED] = {PAM_GOVERNED_PROCEED, PAM_GOVERNED_PROCEED, PAM_GOVERNED_PROCEED,
                              PAM_GOVERNED_PROCEED},
        [ACCOUNT_UNKNOWN_USER] = {PAM_USER_UNKNOWN, PAM_IGNORE, PAM_USER_UNKNOWN, PAM_USER_UNKNOWN},
        [ACCOUNT_LOOKUP_FAILED] = {PAM_AUTHINFO_UNAVAIL, PAM_IGNORE, PAM_PERM_DENIED, PAM_TRY_AGAIN},
};

int governed_answer(PamPhase phase, AccountClass c)
{
        if ((unsigned)phase >= _PAM_PHASE_MAX || (unsigned)c >= _ACCOUNT_CLASS_MAX)
                return PAM_SERVICE_ERR;
        return answers[c][phase];
}

const char *account_class_to_string(AccountClass c)
{
        static const char *const names[_ACCOUNT_CLASS_MAX] = {
                [ACCOUNT_OTHER] = "other",
                [ACCOUNT_GOVERNED] = "governed",
                [ACCOUNT_UNKNOWN_USER] = "unknown-user",
                [ACCOUNT_NO_GROUP] = "no-group",
                [ACCOUNT_LOOKUP_FAILED] = "lookup-failed",
        };
        return (unsigned)c < _ACCOUNT_CLASS_MAX ? names[c] : "invalid";
}
