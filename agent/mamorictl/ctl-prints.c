/* mamorictl prints list|delete: the fingerprints and vein patterns enrolled on this terminal (root). */
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
        const char *modality, *op;
        uint32_t slot;
        int64_t mtime;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                               "ListTemplates", &error, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssux)");
        if (r < 0)
                return fail("prints list", &error, r);
        if (json)
                printf("[");
        else
                printf("%-24s %-8s %-5s %s\n", "OPERATOR", "MODALITY", "SLOT", "ENROLLED");
        while ((r = sd_bus_message_read(reply, "(ssux)", &modality, &op, &slot, &mtime)) > 0) {
                time_t t = (time_t)(mtime / 1000000);
                struct tm tm;
                char when[32] = "-";
                if (localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
                if (json)
                        /* Operator ids are [A-Za-z0-9._:@-], modalities "finger"/"vein": nothing to
                         * escape. */
                        printf("%s{\"operator\":\"%s\",\"modality\":\"%s\",\"slot\":%" PRIu32
                               ",\"enrolled_us\":%" PRId64 "}",
                               n ? "," : "", op, modality, slot, mtime);
                else
                        printf("%-24s %-8s %-5" PRIu32 " %s\n", op, modality, slot, when);
                n++;
        }
        if (json)
                printf("]\n");
        return r < 0 ? fail("prints list", &error, r) : 0;
}

/* Deletes op's templates of one modality: how many, or -errno (error set). */
static int delete_one(sd_bus *bus, const char *op, const char *modality, sd_bus_error *error,
                      uint32_t *ret_n)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                               "DeleteTemplates", error, &reply, "ss", op, modality);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", ret_n);
        return r;
}

static int delete (sd_bus *bus, const char *op, const char *only)
{
        static const char *const modalities[] = {"finger", "vein"};
        uint32_t total = 0;

        for (size_t i = 0; i < ELEMENTSOF(modalities); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                uint32_t n = 0;
                int r;

                if (only && !streq(only, modalities[i]))
                        continue;
                r = delete_one(bus, op, modalities[i], &error, &n);
                if (r < 0)
                        return fail("prints delete", &error, r);
                if (n > 0 && i == 0)
                        printf("Deleted %" PRIu32 " print%s of operator %s (recorded).\n", n,
                               n == 1 ? "" : "s", op);
                else if (n > 0)
                        printf("Deleted %" PRIu32 " vein pattern%s of operator %s (recorded).\n", n,
                               n == 1 ? "" : "s", op);
                total += n;
        }
        if (total == 0)
                printf("Operator %s had no enrolled %s.\n", op,
                       only && streq(only, "vein") ? "vein patterns"
                       : only                      ? "prints"
                                                   : "prints or vein patterns");
        return 0;
}

int ctl_prints(int argc, char **argv)
{
        static const struct option options[] = {
                {"json", no_argument, NULL, 'j'},
                {"modality", required_argument, NULL, 'm'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *only = NULL;
        bool json = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: mamorictl prints list [--json]\n"
                               "       mamorictl prints delete [--modality finger|vein] OPERATOR\n"
                               "List the fingerprints and vein patterns enrolled on this terminal, or "
                               "delete "
                               "an operator's (both, or one modality; root; recorded).\n");
                        return 0;
                }
                if (c == 'j')
                        json = true;
                else if (c == 'm' && (streq(optarg, "finger") || streq(optarg, "vein")))
                        only = optarg;
                else {
                        if (c == 'm')
                                fprintf(stderr, "mamorictl: --modality: finger or vein\n");
                        return 2;
                }
        }
        bool is_list = optind < argc && streq(argv[optind], "list") && optind + 1 == argc && !only;
        bool is_delete = optind < argc && streq(argv[optind], "delete") && optind + 2 == argc && !json;
        if (!is_list && !is_delete) {
                fprintf(stderr, "mamorictl: usage: mamorictl prints list [--json] | prints delete "
                                "[--modality finger|vein] OPERATOR\n");
                return 2;
        }
        r = agent_bus_open(&bus);
        if (r < 0)
                return fail("prints", NULL, r);
        return is_list ? list(bus, json) : delete (bus, argv[optind + 1], only);
}
