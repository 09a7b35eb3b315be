/* Which accounts pam_mamori governs (DESIGN.md §4): members of its group=, and each PAM phase's answer. */
#pragma once

#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PAM_GOVERNED_DEFAULT_GROUP "mamori-counter"
/* Longest group= value accepted (Linux user and group names are at most 32 bytes; leave room). */
#define PAM_GOVERNED_GROUP_MAX 256
/* The kernel's NGROUPS_MAX: a user in more groups than this cannot be looked up (refused). */
#define PAM_GOVERNED_GROUPS_MAX 65536
/* Largest buffer handed to getpwnam_r/getgrnam_r (a group with many members needs a big one). */
#define PAM_GOVERNED_NSS_BUFFER_MAX (4u * 1024u * 1024u)

typedef enum AccountClass {
        ACCOUNT_OTHER,         /* exists and is not a member: not mamori's business */
        ACCOUNT_GOVERNED,      /* member of the group, as primary or supplementary group */
        ACCOUNT_UNKNOWN_USER,  /* the user database does not know the name */
        ACCOUNT_NO_GROUP,      /* the group does not exist: nobody is governed (a deployment mistake) */
        ACCOUNT_LOOKUP_FAILED, /* the user or group database could not answer: fail closed */
        _ACCOUNT_CLASS_MAX,
} AccountClass;

typedef enum PamPhase {
        PAM_PHASE_AUTH,     /* pam_sm_authenticate */
        PAM_PHASE_SETCRED,  /* pam_sm_setcred */
        PAM_PHASE_ACCOUNT,  /* pam_sm_acct_mgmt */
        PAM_PHASE_PASSWORD, /* pam_sm_chauthtok */
        _PAM_PHASE_MAX,
} PamPhase;

/* governed_answer() for an account the module acts for: go on with the card login / PIN age / PIN change. */
#define PAM_GOVERNED_PROCEED (-1)

/* The user and group database, so that tests can stand in for NSS. */
struct nss_ops {
        int (*getpwnam_r)(const char *name, struct passwd *pw, char *buf, size_t size, struct passwd **ret);
        int (*getgrnam_r)(const char *name, struct group *gr, char *buf, size_t size, struct group **ret);
        int (*getgrouplist)(const char *user, gid_t group, gid_t *groups, int *ngroups);
};
extern const struct nss_ops nss_ops_libc;

/* A group= value worth looking up: 1 to PAM_GOVERNED_GROUP_MAX bytes, no ':', no control characters. */
bool governed_group_name_valid(const char *group);

/* True when gid is among groups[0..n). */
bool gid_list_contains(const gid_t *groups, size_t n, gid_t gid);

/* Classifies user against group: 0 and *ret_class, or -errno when the database could not answer
 * (the caller then treats the account as ACCOUNT_LOOKUP_FAILED). Every buffer is bounded by the
 * limits above. */
int account_classify(const struct nss_ops *ops, const char *user, const char *group,
                     AccountClass *ret_class);

/* The PAM code a phase answers for a class, or PAM_GOVERNED_PROCEED for a governed account. Never
 * PAM_SUCCESS for an account that is not governed: nothing but a card login authenticates. */
int governed_answer(PamPhase phase, AccountClass c);

const char *account_class_to_string(AccountClass c);
