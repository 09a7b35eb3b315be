/* mamorictl enroll finger|vein: enrols a fingerprint or a hand's vein pattern for the operator of the
 * active card session, with progress in words (the operator's language). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/dbus-api.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define ENROLL_TIMEOUT_USEC (300ull * 1000000ull) /* five touches, at the operator's pace */

struct enroll_wait {
        bool vein;
        bool done;
        int result;
        sd_bus_error error;
        char operator_id[65];
        uint32_t slot;
};

/* "Touch the sensor (1 of 5)", "Touch again, 2 of 5", "Not read — touch again, 2 of 5"; for a vein
 * reader, which says how many captures it needs only with the first, "Place your hand on the vein
 * reader", "Place your hand again, 2 of 3". */
static int on_progress(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        const struct enroll_wait *w = userdata;
        const char *op;
        int32_t stage, stages;
        int retry;

        if (sd_bus_message_read(m, "siib", &op, &stage, &stages, &retry) < 0 || stage < 0 || stages < 0)
                return 0;
        if (w->vein) {
                if (stage == 0)
                        printf("%s\n", _("Place your hand on the vein reader"));
                else if (stage < stages)
                        printf(_("Place your hand again, %d of %d\n"), stage + 1, stages);
        } else if (stages > 0) {
                if (retry)
                        printf(_("Not read — touch the sensor again, %d of %d\n"), stage + 1, stages);
                else if (stage == 0)
                        printf(_("Touch the sensor (1 of %d)\n"), stages);
                else if (stage < stages)
                        printf(_("Touch again, %d of %d\n"), stage + 1, stages);
        }
        fflush(stdout);
        return 0;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        struct enroll_wait *w = userdata;
        const char *op;

        w->done = true;
        if (sd_bus_message_is_method_error(m, NULL)) {
                sd_bus_error_copy(&w->error, sd_bus_message_get_error(m));
                w->result = -EIO;
                return 0;
        }
        w->result = sd_bus_message_read(m, "su", &op, &w->slot);
        if (w->result >= 0)
                snprintf(w->operator_id, sizeof(w->operator_id), "%s", op);
        return 0;
}

int ctl_enroll(int argc, char **argv)
{
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *signal_slot = NULL, *call_slot = NULL;
        struct enroll_wait w = {.error = SD_BUS_ERROR_NULL};
        const char *usage = "mamorictl enroll finger|vein";
        struct agent_error_info info;
        char text[256];
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: %s\n"
                               "Enrol a fingerprint (finger) or a hand's vein pattern (vein) for the "
                               "operator "
                               "of the active card session: touch the sensor, or place the hand on the vein "
                               "reader, as asked.\n",
                               usage);
                        return 0;
                }
                return 2;
        }
        if (optind >= argc || !(streq(argv[optind], "finger") || streq(argv[optind], "vein")) ||
            optind + 1 < argc) {
                fprintf(stderr, "mamorictl: usage: %s\n", usage);
                return 2;
        }
        w.vein = streq(argv[optind], "vein");

        r = agent_bus_open(&bus);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &signal_slot, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                        MAMORI_DBUS_INTERFACE, "EnrollProgress", on_progress, &w);
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &call_slot, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                             MAMORI_DBUS_INTERFACE, w.vein ? "EnrollVein" : "EnrollFinger",
                                             on_reply, &w, "");
        uint64_t deadline = now_mono_usec() + ENROLL_TIMEOUT_USEC;
        while (r >= 0 && !w.done) {
                r = sd_bus_process(bus, NULL);
                if (r > 0 || r < 0)
                        continue;
                uint64_t now = now_mono_usec();
                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                r = sd_bus_wait(bus, deadline - now);
                if (r == -EINTR)
                        r = 0;
        }
        if (r >= 0 && w.result >= 0) {
                printf(w.vein ? _("Enrolled: vein pattern %u of operator %s\n")
                              : _("Enrolled: finger %u of operator %s\n"),
                       w.slot, w.operator_id);
                sd_bus_error_free(&w.error);
                return 0;
        }
        agent_error_classify(&w.error, r < 0 ? r : w.result, &info);
        fprintf(stderr, _("mamorictl: enrolment failed: %s (%s)\n"),
                agent_error_format(&info, text, sizeof(text)),
                sd_bus_error_is_set(&w.error) ? w.error.message : strerror(-(r < 0 ? r : w.result)));
        sd_bus_error_free(&w.error);
        return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
}
