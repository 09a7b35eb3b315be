/* mamorictl prints list|delete: the fingerprints enrolled on this terminal (root). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"

static int fail(const char *what, const sd_bus_error *error, int r)
{
        struct agent_error_info info;
        char text[256];

        agent_error_classify(error, r, &info);
        fprintf(stderr, "mamorictl: %s failed: %s (%s)\n", what,
                agent_error_format(&info, text, sizeof(text)),
                sd_bus_error_is_set(error) ? error->message : strerror(-r));
        return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
}

static int list(sd_bus *bus, bool json)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *op;
        uint32_t slot;
        int64_t mtime;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "ListPrints",
                               &error, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sux)");
        if (r < 0)
                return fail("prints list", &error, r);
        if (json)
                printf("[");
        else
                printf("%-24s %-6s %s\n", "OPERATOR", "FINGER", "ENROLLED");
        while ((r = sd_bus_message_read(reply, "(sux)", &op, &slot, &mtime)) > 0) {
                time_t t = (time_t)(mtime / 1000000);
                struct tm tm;
                char when[32] = "-";
                if (localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
                if (json)
                        /* Operator ids are [A-Za-z0-9._:@-]: nothing to escape. */
                        printf("%s{\"operator\":\"%s\",\"finger\":%" PRIu32 ",\"enrolled_us\":%" PRId64 "}",
                               n ? "," : "", op, slot, mtime);
                else
                        printf("%-24s %-6" PRIu32 " %s\n", op, slot, when);
                n++;
        }
        if (json)
                printf("]\n");
        return r < 0 ? fail("prints list", &error, r) : 0;
}

static int delete (sd_bus *bus, const char *op)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t n = 0;
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                               "DeletePrints", &error, &reply, "s", op);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &n);
        if (r < 0)
                return fail("prints delete", &error, r);
        if (n == 0)
                printf("Operator %s had no enrolled prints.\n", op);
        else
                printf("Deleted %" PRIu32 " print%s of operator %s (recorded).\n", n, n == 1 ? "" : "s", op);
        return 0;
}

int ctl_prints(int argc, char **argv)
{
        static const struct option options[] = {
                {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        bool json = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: mamorictl prints list [--json]\n"
                               "       mamorictl prints delete OPERATOR\n"
                               "List the fingerprints enrolled on this terminal, or delete an operator's "
                               "(root; recorded).\n");
                        return 0;
                }
                if (c == 'j')
                        json = true;
                else
                        return 2;
        }
        bool is_list = optind < argc && streq(argv[optind], "list") && optind + 1 == argc;
        bool is_delete = optind < argc && streq(argv[optind], "delete") && optind + 2 == argc && !json;
        if (!is_list && !is_delete) {
                fprintf(stderr,
                        "mamorictl: usage: mamorictl prints list [--json] | prints delete OPERATOR\n");
                return 2;
        }
        r = agent_bus_open(&bus);
        if (r < 0)
                return fail("prints", NULL, r);
        return is_list ? list(bus, json) : delete (bus, argv[optind + 1]);
}
