/* Table tests of which accounts pam_mamori governs: group membership through a stand-in NSS, and each
 * phase's answer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <security/_pam_types.h>

#include "mamori/macro.h"
#include "pam-governed.h"

/* The stand-in user database: a few accounts, and knobs that make it fail the way NSS can. */
struct fake_user {
        const char *name;
        gid_t gid;
        gid_t supplementary[4];
        size_t n_supplementary;
};

static const struct fake_user users[] = {
        {"counter", 1000, {1001, 999}, 2},   /* supplementary member of mamori-counter (999) */
        {"kiosk", 999, {0}, 0},              /* primary group mamori-counter */
        {"alice", 1002, {27, 100}, 2},       /* ordinary user, other groups */
        {"root", 0, {0}, 0},                 /* root is nobody special */
        {"admin", 1003, {0, 27, 4, 100}, 4}, /* in root's group and sudo, not in mamori-counter */
};

static struct {
        int pw_error;        /* getpwnam_r returns this (0: normal) */
        int gr_error;        /* getgrnam_r returns this */
        bool no_group;       /* the group mamori-counter does not exist */
        int erange_rounds;   /* how many calls answer ERANGE before the real answer */
        int huge_groups;     /* getgrouplist claims this many groups (0: the real count) */
        int grouplist_calls; /* counted */
        size_t largest_buffer;
} nss;

static int erange(size_t size)
{
        if (size > nss.largest_buffer)
                nss.largest_buffer = size;
        if (nss.erange_rounds < 0)
                return ERANGE; /* always: the entry never fits */
        if (nss.erange_rounds > 0) {
                nss.erange_rounds--;
                return ERANGE;
        }
        return 0;
}

static int fake_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, struct passwd **ret)
{
        *ret = NULL;
        if (nss.pw_error)
                return nss.pw_error;
        if (erange(size))
                return ERANGE;
        for (size_t i = 0; i < ELEMENTSOF(users); i++)
                if (streq(users[i].name, name)) {
                        memset(pw, 0, sizeof(*pw));
                        pw->pw_name = buf;
                        strncpy(buf, name, size - 1);
                        pw->pw_gid = users[i].gid;
                        pw->pw_uid = 1000 + (uid_t)i;
                        *ret = pw;
                        return 0;
                }
        return 0;
}

static int fake_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, struct group **ret)
{
        *ret = NULL;
        if (nss.gr_error)
                return nss.gr_error;
        if (erange(size))
                return ERANGE;
        if (nss.no_group || !streq(name, "mamori-counter"))
                return 0;
        memset(gr, 0, sizeof(*gr));
        gr->gr_name = buf;
        strncpy(buf, name, size - 1);
        gr->gr_gid = 999;
        *ret = gr;
        return 0;
}

static int fake_getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
        const struct fake_user *u = NULL;
        int n;

        nss.grouplist_calls++;
        for (size_t i = 0; i < ELEMENTSOF(users); i++)
                if (streq(users[i].name, user))
                        u = &users[i];
        assert_non_null(u);
        n = nss.huge_groups ? nss.huge_groups : 1 + (int)u->n_supplementary;
        if (n > *ngroups) {
                *ngroups = n;
                return -1;
        }
        groups[0] = group;
        for (size_t i = 0; i < u->n_supplementary; i++)
                groups[1 + i] = u->supplementary[i];
        for (int i = 1 + (int)u->n_supplementary; i < n; i++)
                groups[i] = 5000 + (gid_t)i; /* padding groups, never mamori-counter */
        *ngroups = n;
        return n;
}

static const struct nss_ops fake_ops = {
        .getpwnam_r = fake_getpwnam_r,
        .getgrnam_r = fake_getgrnam_r,
        .getgrouplist = fake_getgrouplist,
};

static int reset(void **state)
{
        memset(&nss, 0, sizeof(nss));
        return 0;
}

static void test_classify_table(void **state)
{
        static const struct {
                const char *user, *group;
                int r;
                AccountClass c;
        } cases[] = {
                {"counter", "mamori-counter", 0, ACCOUNT_GOVERNED}, /* supplementary */
                {"kiosk", "mamori-counter", 0, ACCOUNT_GOVERNED},   /* primary */
                {"alice", "mamori-counter", 0, ACCOUNT_OTHER},
                {"root", "mamori-counter", 0,
                 ACCOUNT_OTHER}, /* root is never governed unless made a member */
                {"admin", "mamori-counter", 0, ACCOUNT_OTHER}, /* in gid 0 and sudo: still not governed */
                {"nosuchuser", "mamori-counter", 0, ACCOUNT_UNKNOWN_USER},
                {"", "mamori-counter", 0, ACCOUNT_UNKNOWN_USER},
                {"counter", "other-group", 0, ACCOUNT_NO_GROUP},
                {"nosuchuser", "other-group", 0, ACCOUNT_UNKNOWN_USER}, /* the user is asked first */
                {"counter", "", -EINVAL, 0},
                {"counter", "bad:group", -EINVAL, 0},
                {"counter", "bad\ngroup", -EINVAL, 0},
                {NULL, "mamori-counter", -EINVAL, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                AccountClass c = _ACCOUNT_CLASS_MAX;
                int r;

                reset(state);
                r = account_classify(&fake_ops, cases[i].user, cases[i].group, &c);
                if (r != cases[i].r || (r == 0 && c != cases[i].c))
                        fail_msg("case %zu (%s in %s): r=%d class=%s, want r=%d class=%s", i,
                                 cases[i].user ? cases[i].user : "(null)", cases[i].group, r,
                                 account_class_to_string(c), cases[i].r,
                                 account_class_to_string(cases[i].c));
                if (r < 0)
                        assert_int_equal(c, _ACCOUNT_CLASS_MAX); /* ret_class untouched on failure */
        }
}

static void test_primary_group_needs_no_group_list(void **state)
{
        AccountClass c;

        assert_int_equal(account_classify(&fake_ops, "kiosk", "mamori-counter", &c), 0);
        assert_int_equal(c, ACCOUNT_GOVERNED);
        assert_int_equal(nss.grouplist_calls, 0);
}

static void test_database_errors_fail_closed(void **state)
{
        static const struct {
                int pw_error, gr_error, want;
                AccountClass c;
        } cases[] = {
                {EIO, 0, -EIO, 0},
                {EMFILE, 0, -EMFILE, 0},
                {ENOENT, 0, 0, ACCOUNT_UNKNOWN_USER}, /* POSIX's other way of saying "no such user" */
                {ESRCH, 0, 0, ACCOUNT_UNKNOWN_USER},
                {0, ENOENT, 0, ACCOUNT_NO_GROUP}, /* POSIX's other "no such group" (nss_wrapper's) */
                {0, EAGAIN, -EAGAIN, 0},
                {0, EIO, -EIO, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                AccountClass c = _ACCOUNT_CLASS_MAX;
                int r;

                reset(state);
                nss.pw_error = cases[i].pw_error;
                nss.gr_error = cases[i].gr_error;
                r = account_classify(&fake_ops, "counter", "mamori-counter", &c);
                assert_int_equal(r, cases[i].want);
                if (r == 0)
                        assert_int_equal(c, cases[i].c);
                else
                        assert_int_equal(c, _ACCOUNT_CLASS_MAX);
        }
}

static void test_buffers_grow_and_are_bounded(void **state)
{
        AccountClass c;

        nss.erange_rounds = 3; /* 1 KiB, 2 KiB, 4 KiB refused, 8 KiB fits */
        assert_int_equal(account_classify(&fake_ops, "counter", "mamori-counter", &c), 0);
        assert_int_equal(c, ACCOUNT_GOVERNED);

        reset(state);
        nss.erange_rounds = -1; /* an entry that never fits: refused, not an endless allocation */
        assert_int_equal(account_classify(&fake_ops, "counter", "mamori-counter", &c), -E2BIG);
        assert_true(nss.largest_buffer <= PAM_GOVERNED_NSS_BUFFER_MAX);
        assert_true(nss.largest_buffer >= PAM_GOVERNED_NSS_BUFFER_MAX / 2);
}

static void test_group_list_grows_and_is_bounded(void **state)
{
        AccountClass c;

        nss.huge_groups = 1000; /* more than the first buffer: asked again with the size it needs */
        assert_int_equal(account_classify(&fake_ops, "counter", "mamori-counter", &c), 0);
        assert_int_equal(c, ACCOUNT_GOVERNED);
        assert_int_equal(nss.grouplist_calls, 2);

        reset(state);
        nss.huge_groups = 1000;
        assert_int_equal(account_classify(&fake_ops, "alice", "mamori-counter", &c), 0);
        assert_int_equal(c, ACCOUNT_OTHER);

        reset(state);
        nss.huge_groups = PAM_GOVERNED_GROUPS_MAX + 1; /* beyond the kernel's limit: refused */
        assert_int_equal(account_classify(&fake_ops, "counter", "mamori-counter", &c), -E2BIG);
        assert_int_equal(nss.grouplist_calls, 1);
}

static void test_answers_per_phase(void **state)
{
        static const int want[_ACCOUNT_CLASS_MAX][_PAM_PHASE_MAX] = {
                /*                       auth                  setcred               account password */
                [ACCOUNT_OTHER] = {PAM_IGNORE, PAM_IGNORE, PAM_IGNORE, PAM_IGNORE},
                [ACCOUNT_NO_GROUP] = {PAM_IGNORE, PAM_IGNORE, PAM_IGNORE, PAM_IGNORE},
                [ACCOUNT_GOVERNED] = {PAM_GOVERNED_PROCEED, PAM_GOVERNED_PROCEED, PAM_GOVERNED_PROCEED,
                                      PAM_GOVERNED_PROCEED},
                [ACCOUNT_UNKNOWN_USER] = {PAM_USER_UNKNOWN, PAM_IGNORE, PAM_USER_UNKNOWN, PAM_USER_UNKNOWN},
                [ACCOUNT_LOOKUP_FAILED] = {PAM_AUTHINFO_UNAVAIL, PAM_IGNORE, PAM_PERM_DENIED, PAM_TRY_AGAIN},
        };

        for (int c = 0; c < _ACCOUNT_CLASS_MAX; c++)
                for (int p = 0; p < _PAM_PHASE_MAX; p++) {
                        int got = governed_answer((PamPhase)p, (AccountClass)c);

                        if (got != want[c][p])
                                fail_msg("class %s phase %d: %d, want %d", account_class_to_string(c), p,
                                         got, want[c][p]);
                        /* Nothing but the card login itself may ever say "authenticated". */
                        assert_int_not_equal(got, PAM_SUCCESS);
                }
        assert_int_equal(governed_answer(_PAM_PHASE_MAX, ACCOUNT_OTHER), PAM_SERVICE_ERR);
        assert_int_equal(governed_answer(PAM_PHASE_AUTH, _ACCOUNT_CLASS_MAX), PAM_SERVICE_ERR);
}

static void test_group_names(void **state)
{
        char longest[PAM_GOVERNED_GROUP_MAX + 2];

        assert_true(governed_group_name_valid("mamori-counter"));
        assert_true(governed_group_name_valid("a"));
        assert_false(governed_group_name_valid(NULL));
        assert_false(governed_group_name_valid(""));
        assert_false(governed_group_name_valid("x:y"));
        assert_false(governed_group_name_valid("x\ty"));
        assert_false(governed_group_name_valid("x\x7fy"));
        memset(longest, 'g', sizeof(longest) - 1);
        longest[PAM_GOVERNED_GROUP_MAX] = '\0';
        assert_true(governed_group_name_valid(longest));
        longest[PAM_GOVERNED_GROUP_MAX] = 'g';
        longest[PAM_GOVERNED_GROUP_MAX + 1] = '\0';
        assert_false(governed_group_name_valid(longest));
        for (int c = 0; c <= _ACCOUNT_CLASS_MAX; c++)
                assert_non_null(account_class_to_string((AccountClass)c));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_classify_table, reset),
                cmocka_unit_test_setup(test_primary_group_needs_no_group_list, reset),
                cmocka_unit_test_setup(test_database_errors_fail_closed, reset),
                cmocka_unit_test_setup(test_buffers_grow_and_are_bounded, reset),
                cmocka_unit_test_setup(test_group_list_grows_and_is_bounded, reset),
                cmocka_unit_test_setup(test_answers_per_phase, reset),
                cmocka_unit_test_setup(test_group_names, reset),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
