/* mamorictl: the terminal's command line (verb dispatcher; each verb lives in its own ctl-*.c). */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "ctl-verbs.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"

static const struct ctl_verb verbs[] = {
        /* Add verbs here, one line each, implemented in agent/ctl-<verb>.c. */
        {"help", "show this help", ctl_help},
        {"auth-test", "one card login in this process: allow OPERATOR or refuse REASON", ctl_auth_test},
        {"log", "verify or export an operation-log directory; quarantine a damaged log", ctl_log},
        {"identity", "print the terminal identity public key (PEM)", ctl_identity},
        {"enroll-request", "make this terminal's TLS key and its enrolment request for the centre",
         ctl_enroll_request},
        {"enroll-install", "install the centre's enrolment file (certificate, collector CA, keys)",
         ctl_enroll_install},
        {"status", "agent state, operator, card, reader, policy serial, last upload (--json)", ctl_status},
        {"lock", "end the active session and lock the screen now", ctl_lock},
        {"passwd", "change the inserted card's PIN", ctl_passwd},
        {"enroll", "enrol a fingerprint or a vein pattern for the operator of the active card session",
         ctl_enroll},
        {"prints", "list or delete the fingerprints and vein patterns enrolled on this terminal (root)",
         ctl_prints},
        {"password", "reset an operator's forgotten password on this terminal (root)", ctl_password},
};

int ctl_help(int argc, char **argv)
{
        printf("Usage: mamorictl VERB [ARGS…]\n\nVerbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-12s %s\n", verbs[i].name, verbs[i].summary);
        return 0;
}

int main(int argc, char **argv)
{
        /* Messages and their charset follow the caller's locale; numbers, times and JSON stay "C". */
        (void)setlocale(LC_MESSAGES, "");
        (void)setlocale(LC_CTYPE, "");
        i18n_init();
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h"))
                return ctl_help(argc, argv) < 0 ? 1 : (argc < 2 ? 2 : 0);
        if (streq(argv[1], "--version")) {
                printf("mamorictl %s\n", MAMORI_VERSION);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[1]))
                        return verbs[i].run(argc - 1, argv + 1);
        fprintf(stderr, "mamorictl: unknown verb '%s' (see mamorictl help)\n", argv[1]);
        return 2;
}
