/* Loads the signed policy bundle from its directory: verify, refuse rollback, keep the last good one. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/policy-store.h"

struct PolicyStore {
        char *directory;
        char *bundle_path;
        char *serial_path; /* root-only, beside the identity key: the uploader cannot lower it */
        char *copy_path;   /* the last accepted bundle, same place */
        EVP_PKEY *signer;
        Policy *current;
        uint8_t current_hash[SHA256_SIZE];
        int64_t accepted_serial; /* -1: none yet */
};

PolicyStore *policy_store_free(PolicyStore *s)
{
        if (!s)
                return NULL;
        free(s->directory);
        free(s->bundle_path);
        free(s->serial_path);
        free(s->copy_path);
        EVP_PKEY_free(s->signer);
        policy_free(s->current);
        free(s);
        return NULL;
}

static char *join(const char *dir, const char *name)
{
        char *p;
        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static char *sibling_of(const char *path, const char *name)
{
        const char *slash = strrchr(path, '/');
        char *p;
        int len = slash ? (int)(slash - path) : 1;
        return asprintf(&p, "%.*s/%s", len, slash ? path : ".", name) < 0 ? NULL : p;
}

static int read_accepted_serial(PolicyStore *s)
{
        _cleanup_free_ char *text = NULL;
        size_t size;
        uint64_t v;
        int r = read_file_bounded(s->serial_path, 32, &text, &size);

        if (r == -ENOENT) {
                s->accepted_serial = -1;
                return 0;
        }
        if (r < 0)
                return r;
        if (size > 0 && text[size - 1] == '\n')
                text[size - 1] = '\0';
        r = parse_uint64(text, INT64_MAX, &v);
        if (r < 0)
                return -EBADMSG;
        s->accepted_serial = (int64_t)v;
        return 0;
}

/* Takes the saved copy of the last accepted bundle as current, when it verifies and is the
 * one the accepted serial names. A missing or bad copy just leaves no current bundle. */
static void load_accepted_copy(PolicyStore *s)
{
        _cleanup_free_ char *data = NULL;
        Policy *p = NULL;
        size_t size;

        if (read_file_bounded(s->copy_path, POLICY_FILE_MAX, &data, &size) < 0)
                return;
        if (policy_parse(data, size, s->signer, &p) < 0)
                return;
        if (p->serial != s->accepted_serial || sha256(data, size, s->current_hash) < 0) {
                policy_free(p);
                return;
        }
        s->current = p;
}

static int store_accepted_serial(PolicyStore *s, int64_t serial)
{
        char text[32];
        int n = snprintf(text, sizeof(text), "%" PRId64 "\n", serial);

        return write_file_atomic(s->serial_path, text, (size_t)n, 0600);
}

int policy_store_open(const struct agent_config *config, PolicyStore **ret)
{
        _cleanup_(policy_store_freep) PolicyStore *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->directory = strdup(config->policy_directory);
        s->bundle_path = join(config->policy_directory, POLICY_STORE_FILE);
        s->serial_path = sibling_of(config->identity_key, POLICY_STORE_SERIAL_FILE);
        s->copy_path = sibling_of(config->identity_key, POLICY_STORE_COPY_FILE);
        if (!s->directory || !s->bundle_path || !s->serial_path || !s->copy_path)
                return -ENOMEM;
        r = pem_load_public_key(config->policy_signer_key, &s->signer);
        if (r < 0)
                return r;
        r = read_accepted_serial(s);
        if (r < 0)
                return r;
        load_accepted_copy(s);
        *ret = TAKE_PTR(s);
        return 0;
}

int policy_store_reload(PolicyStore *s, struct policy_load_result *ret)
{
        _cleanup_free_ char *data = NULL;
        _cleanup_policy_ Policy *p = NULL;
        uint8_t hash[SHA256_SIZE];
        size_t size;
        int r;

        r = read_file_bounded(s->bundle_path, POLICY_FILE_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = (struct policy_load_result){
                        .outcome = POLICY_LOAD_MISSING, .reason = "missing", .serial = -1};
                return 0;
        }
        if (r < 0) {
                *ret = (struct policy_load_result){.outcome = POLICY_LOAD_REJECTED,
                                                   .reason = r == -E2BIG ? "too-large" : "unreadable",
                                                   .serial = -1};
                return 0;
        }
        r = sha256(data, size, hash);
        if (r < 0)
                return r;
        if (s->current && memcmp(hash, s->current_hash, sizeof(hash)) == 0) {
                *ret = (struct policy_load_result){.outcome = POLICY_LOAD_UNCHANGED,
                                                   .serial = s->current->serial};
                return 0;
        }
        r = policy_parse(data, size, s->signer, &p);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret = (struct policy_load_result){
                        .outcome = POLICY_LOAD_REJECTED, .reason = policy_error_reason(r), .serial = -1};
                return 0;
        }
        /* A lower serial is a replay of an older bundle (e.g. one where a lost card was still
         * active); the same serial with other bytes means the signer issued two different bundles. */
        if (p->serial < s->accepted_serial || (s->current && p->serial == s->current->serial)) {
                *ret = (struct policy_load_result){
                        .outcome = POLICY_LOAD_REJECTED,
                        .reason = p->serial < s->accepted_serial ? "rollback" : "serial-reused",
                        .serial = p->serial};
                return 0;
        }
        /* Not fatal when these writes fail: the bundle is valid and may suspend a lost card; only
         * the restart rollback guard is weaker until the next successful write. */
        _cleanup_free_ char *dir = sibling_of(s->serial_path, "");
        if (dir)
                (void)mkdir(dir, 0700);
        (void)write_file_atomic(s->copy_path, data, size, 0600);
        /* The guard in memory moves up even when the file could not be written. */
        if (p->serial > s->accepted_serial) {
                (void)store_accepted_serial(s, p->serial);
                s->accepted_serial = p->serial;
        }
        policy_free(s->current);
        s->current = TAKE_PTR(p);
        memcpy(s->current_hash, hash, sizeof(hash));
        *ret = (struct policy_load_result){.outcome = POLICY_LOAD_ACCEPTED, .serial = s->current->serial};
        return 0;
}

const Policy *policy_store_current(const PolicyStore *s)
{
        return s->current;
}

const char *policy_store_directory(const PolicyStore *s)
{
        return s->directory;
}
