/* mamori-admin policy verbs: build the §8 bundle from the registry, sign it with the policy key, publish. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/jcs.h"
#include "mamori/policy.h"
#include "mamori/signed-json.h"

static int load_policy_key(AdminContext *ctx, EVP_PKEY **ret)
{
        _cleanup_free_ char *path = collector_state_path(&ctx->config, "policy.key");
        if (!path)
                return -ENOMEM;
        int r = pem_load_private_key(path, ret);
        if (r < 0)
                fprintf(stderr, "mamori-admin: cannot load %s: %s\n", path, strerror(-r));
        return r;
}

int admin_policy_signer(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *path = collector_state_path(&ctx->config, "policy-signer.pub");
        _cleanup_free_ char *pem = NULL;
        size_t size;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin policy signer\n");
                return 2;
        }
        if (!path)
                return 1;
        r = read_file_bounded(path, PEM_FILE_MAX, &pem, &size);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot read %s: %s\n", path, strerror(-r));
                return 1;
        }
        fwrite(pem, 1, size, stdout);
        return 0;
}

int admin_policy_publish(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"emergency", no_argument, NULL, 'e'},
                {"out", required_argument, NULL, 'o'},
                {},
        };
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_json_ JsonValue *bundle = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_policy_ Policy *check = NULL;
        const char *out = NULL;
        bool emergency = false;
        int64_t serial = 0, now = admin_now_usec();
        size_t len;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "eo:", options, NULL)) >= 0)
                switch (c) {
                case 'e':
                        emergency = true;
                        break;
                case 'o':
                        out = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "usage: mamori-admin policy publish [--emergency] [--out FILE]\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0 || load_policy_key(ctx, &key) < 0)
                return 1;

        r = store_begin(s);
        if (r < 0)
                goto fail;
        r = store_policy_latest(s, &serial, NULL, NULL);
        if (r < 0 && r != -ENOENT)
                goto fail;
        serial = r == -ENOENT ? 1 : serial + 1;
        if ((r = json_new_object(&bundle)) < 0 ||
            (r = json_object_set_integer(bundle, "v", POLICY_VERSION)) < 0 ||
            (r = json_object_set_integer(bundle, "serial", serial)) < 0 ||
            (r = json_object_set_integer(bundle, "issued", now)) < 0 ||
            (r = json_object_set_integer(bundle, "expires",
                                         now + (int64_t)ctx->config.policy_validity_usec)) < 0 ||
            (r = json_object_set_boolean(bundle, "emergency", emergency)) < 0 ||
            (r = store_registry_to_policy(s, bundle)) < 0 || (r = signed_json_sign(bundle, key, NULL)) < 0 ||
            (r = jcs_serialize(bundle, NULL, &text, &len)) < 0)
                goto fail;
        /* What terminals will run must parse: check with the same codec before publishing. */
        r = policy_parse(text, len, key, &check);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: the bundle does not pass the policy codec: %s\n",
                        policy_error_reason(r));
                goto fail;
        }
        r = store_policy_add(s, serial, now, text, len);
        if (r < 0)
                goto fail;
        r = store_commit(s);
        if (r < 0)
                goto fail;
        if (out) {
                r = write_file_atomic(out, text, len, 0644);
                if (r < 0) {
                        fprintf(stderr, "mamori-admin: cannot write %s: %s\n", out, strerror(-r));
                        return 1;
                }
        }
        printf("published policy serial %lld (%zu operators, %zu cards)\n", (long long)serial,
               check->n_operators, check->n_cards);
        return 0;
fail:
        store_rollback(s);
        fprintf(stderr, "mamori-admin: policy publish failed: %s\n", strerror(-r));
        return 1;
}

int admin_policy_show(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *body = NULL;
        size_t len;
        Store *s;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin policy show\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        r = store_policy_latest(s, NULL, &body, &len);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: no policy published: %s\n", strerror(-r));
                return 1;
        }
        fwrite(body, 1, len, stdout);
        putchar('\n');
        return 0;
}
