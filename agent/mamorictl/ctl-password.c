/* mamorictl password reset: an administrator removes an operator's forgotten password on this terminal
 * (root). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"

#define USAGE "mamorictl password reset OPERATOR"

static int reset(const char *op)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_error_info info;
        char text[256];
        int r;

        r = agent_bus_open(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                       "ResetPassword", &error, NULL, "s", op);
        if (r >= 0) {
                printf("The password of operator %s on this terminal is removed (recorded). Their next "
                       "login needs their card: they set a new password with `mamorictl passwd --password` "
                       "in that session.\n",
                       op);
                return 0;
        }
        agent_error_classify(&error, r, &info);
        if (info.class == AGENT_ERROR_PERMISSION)
                fprintf(stderr, "mamorictl: password reset: only root may reset a password — run it with "
                                "sudo\n");
        else if (info.reason == AUTH_PASSWORD_UNSET)
                fprintf(stderr,
                        "mamorictl: password reset: operator %s has no password on this terminal; "
                        "nothing to reset\n",
                        op);
        else
                fprintf(stderr, "mamorictl: password reset failed: %s (%s)\n",
                        agent_error_format(&info, text, sizeof(text)),
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
        return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
}

int ctl_password(int argc, char **argv)
{
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {},
        };
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: " USAGE "\n"
                               "Remove an operator's password on this terminal (they forgot it; root; "
                               "recorded). Their next password login is refused until they log in with "
                               "their card and set a new one, as the first time.\n");
                        return 0;
                }
                return 2;
        }
        if (!(optind + 2 == argc && streq(argv[optind], "reset"))) {
                fprintf(stderr, "mamorictl: usage: " USAGE "\n");
                return 2;
        }
        return reset(argv[optind + 1]);
}
