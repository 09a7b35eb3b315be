/* mamorictl identity: print the terminal identity public key (PEM) for enrolment at the collector. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl-verbs.h"
#include "mamori/agent-config.h"
#include "mamori/crypto-util.h"
#include "mamori/macro.h"
#include "oplog-keys.h"

static void diag(void *userdata, enum conf_level level, const char *file, unsigned line, const char *message)
{
        fprintf(stderr, "%s:%u: %s\n", file, line, message);
}

int ctl_identity(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_free_ char *pem = NULL;
        const char *config = AGENT_CONFIG_PATH;
        struct agent_config cfg;
        int c, k;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                if (c == 'c')
                        config = optarg;
                else if (c == 'h') {
                        printf("Usage: mamorictl identity [--config FILE]\n"
                               "Print the public half of [Terminal] IdentityKey= as PEM (never creates "
                               "it).\n");
                        return 0;
                } else
                        return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        k = agent_config_load(config, diag, NULL, &cfg);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot use configuration %s: %s\n", config, strerror(-k));
                return 2;
        }
        k = pem_load_private_key(cfg.identity_key, &key);
        if (k == -ENOENT)
                fprintf(stderr,
                        "mamorictl: the identity key %s does not exist yet (mamorid creates it at its first "
                        "start)\n",
                        cfg.identity_key);
        else if (k < 0)
                fprintf(stderr, "mamorictl: cannot read the identity key %s: %s\n", cfg.identity_key,
                        strerror(-k));
        else if ((k = ed25519_check(key)) < 0)
                fprintf(stderr, "mamorictl: %s is not an Ed25519 key\n", cfg.identity_key);
        agent_config_free(&cfg);
        if (k < 0)
                return 1;
        k = oplog_public_pem(key, &pem);
        if (k < 0) {
                fprintf(stderr, "mamorictl: %s\n", strerror(-k));
                return 1;
        }
        fputs(pem, stdout);
        return 0;
}
