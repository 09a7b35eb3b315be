/* The terminal's policy bundle on disk: [Policy] Directory/policy.json, verified, never rolled back. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mamori/agent-config.h"
#include "mamori/policy.h"

#define POLICY_STORE_FILE        "policy.json"
#define POLICY_STORE_SERIAL_FILE "accepted-serial"      /* highest serial ever accepted, survives restarts */
#define POLICY_STORE_COPY_FILE   "accepted-policy.json" /* the last accepted bundle, root-only */

typedef struct PolicyStore PolicyStore;

/* What one (re)load did, for the policy.load / policy.reject / policy.stale records. */
struct policy_load_result {
        enum {
                POLICY_LOAD_ACCEPTED,  /* a new bundle is now current */
                POLICY_LOAD_UNCHANGED, /* same serial as the current one: nothing to do */
                POLICY_LOAD_REJECTED,  /* the file is bad: the previous bundle (if any) stays */
                POLICY_LOAD_MISSING,   /* no policy.json (yet) */
        } outcome;
        const char
                *reason; /* REJECTED: "bad-signature", "malformed", "rollback", "too-big", "unreadable"… */
        int64_t serial;  /* of the file that was looked at, when it could be parsed */
};

/* Reads the signer key (SignerKey=), the accepted-serial file and the copy of the last accepted
 * bundle (kept beside the identity key, out of the uploader's reach), which becomes current when
 * it still verifies: a replayed older policy.json then cannot displace it, even after a restart.
 * -ENOENT/-EBADMSG when the signer key is missing or unreadable: the caller must fail closed. */
int policy_store_open(const struct agent_config *config, PolicyStore **ret);
PolicyStore *policy_store_free(PolicyStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PolicyStore *, policy_store_free);

/* (Re)reads Directory/policy.json. A bundle replaces the current one only when it parses, its
 * signature verifies with the signer key, and its serial is not lower than the highest ever
 * accepted; then the accepted serial is stored durably. Returns 0 with *ret filled (whatever the
 * outcome), or -errno when even the attempt failed (-ENOMEM). */
int policy_store_reload(PolicyStore *s, struct policy_load_result *ret);

/* The current bundle, NULL when none was accepted. Borrowed: valid until the next reload. */
const Policy *policy_store_current(const PolicyStore *s);

/* The directory watched (for inotify) and the file name inside it. */
const char *policy_store_directory(const PolicyStore *s);
