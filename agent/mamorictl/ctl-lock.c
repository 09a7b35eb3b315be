/* mamorictl lock: end the active session now and lock the screen (D-Bus Lock, session.end reason "manual").
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/dbus-api.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"

int ctl_lock(int argc, char **argv)
{
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_error_info info;
        char text[256];
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: mamorictl lock\nEnd the active operator session and lock the "
                               "screen.\n");
                        return 0;
                }
                return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }

        r = agent_bus_open(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                       "Lock", &error, NULL, "");
        if (r >= 0)
                return 0;
        agent_error_classify(&error, r, &info);
        if (info.class == AGENT_ERROR_NOT_ACTIVE) {
                /* Nothing to end: the terminal is already locked, which is what was asked for. */
                printf("%s\n", _("No active session; the terminal is locked."));
                return 0;
        }
        fprintf(stderr, _("mamorictl: lock failed: %s (%s)\n"),
                agent_error_format(&info, text, sizeof(text)),
                sd_bus_error_is_set(&error) ? error.name : strerror(-r));
        return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
}
