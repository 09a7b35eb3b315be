/* Table of agent.conf keys → parser → field, with DESIGN.md §9 defaults. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/agent-config.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"

#define SEC(n) ((uint64_t)(n)*USEC_PER_SEC)

/* The enums' values are their index in these lists. */
static int parse_accounts(const char *v, void *data, const char **why)
{
        static const char *const names[] = {
                [ACCOUNTS_SHARED] = "shared", [ACCOUNTS_PER_OPERATOR] = "per-operator", NULL};
        return conf_parse_choice(v, names, data, "expected shared or per-operator", why);
}

static int parse_idle_source(const char *v, void *data, const char **why)
{
        static const char *const names[] = {
                [IDLE_SOURCE_LOGIND] = "logind", [IDLE_SOURCE_INPUT] = "input", NULL};
        return conf_parse_choice(v, names, data, "expected logind or input", why);
}

static int parse_lock_fallback(const char *v, void *data, const char **why)
{
        static const char *const names[] = {
                [LOCK_FALLBACK_TERMINATE] = "terminate", [LOCK_FALLBACK_NONE] = "none", NULL};
        return conf_parse_choice(v, names, data, "expected terminate or none", why);
}

static int parse_stale_policy(const char *v, void *data, const char **why)
{
        static const char *const names[] = {
                [STALE_POLICY_DENY] = "deny", [STALE_POLICY_WARN] = "warn", NULL};
        return conf_parse_choice(v, names, data, "expected deny or warn", why);
}

static int parse_group_member(const char *v, void *data, const char **why)
{
        static const char *const names[] = {
                [GROUP_MEMBER_PASSWORD] = "password", [GROUP_MEMBER_FINGER] = "finger", NULL};
        return conf_parse_choice(v, names, data, "expected password or finger", why);
}

/* Identifiers end up in log records and file names: keep them to a safe alphabet. */
static int parse_identifier(const char *v, void *data, const char **why)
{
        size_t n = strlen(v);
        if (n == 0 || n > 64) {
                *why = "expected 1 to 64 characters";
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                char c = v[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.')) {
                        *why = "allowed characters are A-Z a-z 0-9 - _ .";
                        return -EINVAL;
                }
        }
        return conf_parse_string(v, data, why);
}

#define F(field) offsetof(struct agent_config, field)

static const struct conf_item agent_items[] = {
        {"Terminal", "Id", parse_identifier, F(terminal_id)},
        {"Terminal", "Office", parse_identifier, F(office)},
        {"Terminal", "IdentityKey", conf_parse_path, F(identity_key)},
        {"Card", "TrustAnchors", conf_parse_path, F(trust_anchors)},
        {"Card", "Readers", conf_parse_string, F(readers)},
        {"Session", "Accounts", parse_accounts, F(accounts)},
        {"Session", "IdleLockSec", conf_parse_positive_seconds, F(idle_lock_usec)},
        {"Session", "IdleSource", parse_idle_source, F(idle_source)},
        {"Session", "InputDirectory", conf_parse_path, F(input_directory)},
        {"Session", "CardLeftSec", conf_parse_positive_seconds, F(card_left_usec)},
        {"Session", "LockVerifySec", conf_parse_positive_seconds, F(lock_verify_usec)},
        {"Session", "LockFallback", parse_lock_fallback, F(lock_fallback)},
        {"Session", "GroupMember", parse_group_member, F(group_member)},
        {"Session", "RequireFingerWithCard", conf_parse_bool, F(require_finger_with_card)},
        {"Finger", "PrintsDirectory", conf_parse_path, F(prints_directory)},
        {"Secrets", "MaxAgeDays", conf_parse_positive_uint32, F(max_age_days)},
        {"Secrets", "WarnDays", conf_parse_uint32, F(warn_days)},
        {"Secrets", "MinLength", conf_parse_positive_uint32, F(min_length)},
        {"Secrets", "PasswordDirectory", conf_parse_path, F(password_directory)},
        {"Log", "Directory", conf_parse_path, F(log_directory)},
        {"Log", "KeyRotateRecords", conf_parse_positive_uint32, F(key_rotate_records)},
        {"Log", "KeyRotateSec", conf_parse_positive_seconds, F(key_rotate_usec)},
        {"Log", "LocalRetentionDays", conf_parse_uint32, F(local_retention_days)},
        {"Collector", "URL", conf_parse_string, F(collector_url)},
        {"Collector", "CA", conf_parse_path, F(collector_ca)},
        {"Collector", "ClientCert", conf_parse_path, F(client_cert)},
        {"Collector", "ClientKey", conf_parse_path, F(client_key)},
        {"Collector", "ReceiptKey", conf_parse_path, F(receipt_key)},
        {"Collector", "PollSec", conf_parse_positive_seconds, F(poll_usec)},
        {"Policy", "Directory", conf_parse_path, F(policy_directory)},
        {"Policy", "SignerKey", conf_parse_path, F(policy_signer_key)},
        {"Policy", "StalePolicy", parse_stale_policy, F(stale_policy)},
        {"Biometric", "VeinPlugin", conf_parse_path, F(vein_plugin)},
        {"Biometric", "VeinPluginOptions", conf_parse_string, F(vein_plugin_options)},
};

void agent_config_free(struct agent_config *c)
{
        if (!c)
                return;
        char **strings[] = {
                &c->terminal_id,       &c->office,        &c->identity_key,       &c->trust_anchors,
                &c->readers,           &c->log_directory, &c->input_directory,    &c->collector_url,
                &c->collector_ca,      &c->client_cert,   &c->client_key,         &c->policy_directory,
                &c->policy_signer_key, &c->receipt_key,   &c->password_directory, &c->prints_directory,
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                free(*strings[i]);
                *strings[i] = NULL;
        }
        free(c->vein_plugin);
        free(c->vein_plugin_options);
        c->vein_plugin = c->vein_plugin_options = NULL;
}

int agent_config_defaults(struct agent_config *c)
{
        static const struct {
                size_t offset;
                const char *value;
        } paths[] = {
                {F(identity_key), "/var/lib/mamori/keys/identity.pem"},
                {F(input_directory), "/dev/input"},
                {F(trust_anchors), "/etc/mamori/operator-ca.pem"},
                {F(log_directory), "/var/lib/mamori/log"},
                {F(collector_ca), "/etc/mamori/collector-ca.pem"},
                {F(client_cert), "/var/lib/mamori/keys/client.pem"},
                {F(client_key), "/var/lib/mamori/keys/client.key"},
                {F(receipt_key), "/etc/mamori/receipt.pub"},
                {F(policy_directory), "/var/lib/mamori/policy"},
                {F(policy_signer_key), "/etc/mamori/policy-signer.pub"},
                {F(prints_directory), "/var/lib/mamori/prints"},
                {F(password_directory), "/var/lib/mamori/passwords"},
        };

        *c = (struct agent_config){
                .accounts = ACCOUNTS_SHARED,
                .idle_lock_usec = SEC(300),
                .idle_source = IDLE_SOURCE_LOGIND,
                .card_left_usec = SEC(60),
                .lock_verify_usec = SEC(2),
                .lock_fallback = LOCK_FALLBACK_TERMINATE,
                .group_member = GROUP_MEMBER_PASSWORD,
                .max_age_days = 183,
                .warn_days = 14,
                .min_length = 6,
                .key_rotate_records = 1000,
                .key_rotate_usec = SEC(3600),
                .local_retention_days = 90,
                .poll_usec = SEC(60),
                .stale_policy = STALE_POLICY_DENY,
        };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                char *s = strdup(paths[i].value);
                if (!s) {
                        agent_config_free(c);
                        return -ENOMEM;
                }
                *(char **)((uint8_t *)c + paths[i].offset) = s;
        }
        return 0;
}

static int finish(struct conf_context *ctx, int r, struct agent_config *c, struct agent_config *ret)
{
        if (r >= 0 && ctx->n_errors > 0)
                r = -EINVAL;
        if (r < 0) {
                agent_config_free(c);
                return r;
        }
        *ret = *c;
        return 0;
}

int agent_config_load(const char *path, conf_diag_fn diag, void *userdata, struct agent_config *ret)
{
        struct agent_config c;
        char dropins[4096];
        int r;

        if ((size_t)snprintf(dropins, sizeof(dropins), "%s.d", path) >= sizeof(dropins))
                return -ENAMETOOLONG;
        r = agent_config_defaults(&c);
        if (r < 0)
                return r;
        struct conf_context ctx = {
                .items = agent_items,
                .n_items = ELEMENTSOF(agent_items),
                .target = &c,
                .diag = diag,
                .userdata = userdata,
        };
        r = conf_parse_with_dropins(&ctx, path, dropins);
        return finish(&ctx, r, &c, ret);
}

int agent_config_load_buffer(const char *buf, size_t size, conf_diag_fn diag, void *userdata,
                             struct agent_config *ret)
{
        struct agent_config c;
        int r = agent_config_defaults(&c);

        if (r < 0)
                return r;
        struct conf_context ctx = {
                .items = agent_items,
                .n_items = ELEMENTSOF(agent_items),
                .target = &c,
                .diag = diag,
                .userdata = userdata,
        };
        r = conf_parse_buffer(&ctx, "<buffer>", buf, size);
        return finish(&ctx, r, &c, ret);
}
