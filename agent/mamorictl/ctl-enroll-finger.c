/* mamorictl enroll finger: enrols a fingerprint for the operator of the active card session, with
 * progress in words. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define ENROLL_TIMEOUT_USEC (300ull * 1000000ull) /* five touches, at the operator's pace */

struct enroll_wait {
        bool done;
        int result;
        sd_bus_error error;
        char operator_id[65];
        uint32_t slot;
};

/* "Touch the sensor (1 of 5)", "Touch again, 2 of 5", "Not read — touch again, 2 of 5". */
static int on_progress(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        const char *op;
        int32_t stage, stages;
        int retry;

        if (sd_bus_message_read(m, "siib", &op, &stage, &stages, &retry) < 0 || stages <= 0)
                return 0;
        if (retry)
                printf("Not read — touch the sensor again, %d of %d\n", stage + 1, stages);
        else if (stage == 0)
                printf("Touch the sensor (1 of %d)\n", stages);
        else if (stage < stages)
                printf("Touch again, %d of %d\n", stage + 1, stages);
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
        struct agent_error_info info;
        char text[256];
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: mamorictl enroll finger\n"
                               "Enrol a fingerprint for the operator of the active card session: touch the "
                               "sensor as asked.\n");
                        return 0;
                }
                return 2;
        }
        if (optind >= argc || !streq(argv[optind], "finger") || optind + 1 < argc) {
                fprintf(stderr, "mamorictl: usage: mamorictl enroll finger\n");
                return 2;
        }

        r = agent_bus_open(&bus);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &signal_slot, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                        MAMORI_DBUS_INTERFACE, "EnrollProgress", on_progress, NULL);
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &call_slot, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                             MAMORI_DBUS_INTERFACE, "EnrollFinger", on_reply, &w, "");
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
                printf("Enrolled: finger %u of operator %s\n", w.slot, w.operator_id);
                sd_bus_error_free(&w.error);
                return 0;
        }
        agent_error_classify(&w.error, r < 0 ? r : w.result, &info);
        fprintf(stderr, "mamorictl: enrolment failed: %s (%s)\n",
                agent_error_format(&info, text, sizeof(text)),
                sd_bus_error_is_set(&w.error) ? w.error.message : strerror(-(r < 0 ? r : w.result)));
        sd_bus_error_free(&w.error);
        return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
}
