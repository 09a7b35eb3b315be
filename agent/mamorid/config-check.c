/* mamorid --check-config: reports every configuration problem as file:line, starts nothing. */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "bio-plugin-load.h"
#include "config-check.h"
#include "mamori/agent-config.h"
#include "mamori/cert-check.h"
#include "mamori/conf-parser.h"
#include "mamori/crypto-util.h"

int mamorid_check_config(const char *path)
{
        struct agent_config c;
        unsigned problems = 0;
        CertCheck *anchors = NULL;
        EVP_PKEY *signer = NULL;
        int r;

        r = agent_config_load(path, conf_diag_print, &problems, &c);
        if (r < 0) {
                if (problems == 0)
                        fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(-r));
                return 1;
        }
        /* What mamorid would otherwise find out only at the first card: without anchors every
         * card is refused, without the signer key every policy and so every login. */
        r = cert_check_new(&anchors);
        if (r >= 0)
                r = cert_check_add_anchors_file(anchors, c.trust_anchors);
        if (r < 0) {
                fprintf(stderr,
                        "%s: error: [Card] TrustAnchors=%s cannot be loaded (%s): every card would be "
                        "refused\n",
                        path, c.trust_anchors, strerror(-r));
                problems++;
        }
        cert_check_free(anchors);
        r = pem_load_public_key(c.policy_signer_key, &signer);
        if (r < 0) {
                fprintf(stderr,
                        "%s: error: [Policy] SignerKey=%s cannot be loaded (%s): every login would be "
                        "refused\n",
                        path, c.policy_signer_key, strerror(-r));
                problems++;
        }
        EVP_PKEY_free(signer);
        if (c.vein_plugin) {
                char why[BIO_PLUGIN_WHY_MAX];
                BioPlugin *p = NULL;

                /* The same checks and load as mamorid's (the plugin's constructors run here too). */
                r = bio_plugin_load(c.vein_plugin, &p, why);
                if (r < 0) {
                        fprintf(stderr, "%s: error: [Biometric] VeinPlugin= refused: %s\n", path, why);
                        problems++;
                }
                bio_plugin_unload(p);
        }
        if (!c.terminal_id) {
                fprintf(stderr,
                        "%s: warning: [Terminal] Id= is not set: records will name the terminal "
                        "\"unconfigured\"\n",
                        path);
                problems++;
        }
        agent_config_free(&c);
        return problems > 0 ? 1 : 0;
}
