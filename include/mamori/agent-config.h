/* The agent's configuration (/etc/mamori/agent.conf + agent.conf.d), DESIGN.md §9. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mamori/conf-parser.h"

#define AGENT_CONFIG_PATH "/etc/mamori/agent.conf"

enum accounts_mode { ACCOUNTS_SHARED, ACCOUNTS_PER_OPERATOR };
enum idle_source { IDLE_SOURCE_LOGIND, IDLE_SOURCE_INPUT };
enum lock_fallback { LOCK_FALLBACK_TERMINATE, LOCK_FALLBACK_NONE };
enum stale_policy { STALE_POLICY_DENY, STALE_POLICY_WARN };
enum group_member { GROUP_MEMBER_PASSWORD, GROUP_MEMBER_FINGER }; /* how a group card's member identifies */

/* Owns every string; free with agent_config_free(). Durations are in microseconds. */
struct agent_config {
        /* [Terminal] */
        char *terminal_id;
        char *office;
        char *identity_key;
        /* [Card] */
        char *trust_anchors;
        char *readers; /* reader-name substring filter; NULL or empty = every reader */
        /* [Session] */
        enum accounts_mode accounts;
        uint64_t idle_lock_usec;
        enum idle_source idle_source;
        char *input_directory; /* IdleSource=input reads event* devices here (default /dev/input) */
        uint64_t card_left_usec;
        uint64_t lock_verify_usec;
        enum lock_fallback lock_fallback;
        bool require_finger_with_card; /* card+pin then the card's operator's finger (lending check) */
        /* [Finger] */
        char *prints_directory;         /* enrolled prints, one root-only directory per operator */
        enum group_member group_member; /* after a group card's PIN (default password) */
        /* [Secrets] */
        uint32_t max_age_days;
        uint32_t warn_days;
        uint32_t min_length;      /* of a new password, in bytes */
        char *password_directory; /* the terminal's password verifiers, root-only */
        /* [Log] */
        char *log_directory;
        uint32_t key_rotate_records;
        uint64_t key_rotate_usec;
        uint32_t local_retention_days;
        /* [Collector] */
        char *collector_url;
        char *collector_ca;
        char *client_cert;
        char *client_key;
        char *receipt_key; /* the collector's public receipt key (DESIGN.md §7) */
        uint64_t poll_usec;
        /* [Policy] */
        char *policy_directory;
        char *policy_signer_key;
        enum stale_policy stale_policy;
        /* [Biometric] */
        char *vein_plugin;         /* a plugin of auth/bio-plugin.h's ABI; NULL: no vein reader */
        char *vein_plugin_options; /* passed to the plugin's open as it is; NULL: "" */
};

/* Fills every field with its default. Returns -ENOMEM on allocation failure. */
int agent_config_defaults(struct agent_config *c);

/* Loads defaults, then path and path + ".d/" drop-ins. Diagnostics go to diag (may be NULL).
 * Returns 0, or -EINVAL when the files had errors (ret untouched), -ENOENT if path is missing. */
int agent_config_load(const char *path, conf_diag_fn diag, void *userdata, struct agent_config *ret);

/* Same, from an in-memory buffer (for tests and the fuzz target); no drop-ins. */
int agent_config_load_buffer(const char *buf, size_t size, conf_diag_fn diag, void *userdata,
                             struct agent_config *ret);

void agent_config_free(struct agent_config *c);
