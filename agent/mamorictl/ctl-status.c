/* mamorictl status: the agent's state, operator, card, reader, policy serial and last upload (text or
 * --json). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/i18n.h"
#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "mamori/upload-cursor.h"

/* The uploader's cursor file: what it acknowledges and when it was last advanced. */
struct upload_info {
        bool known;                          /* the file exists */
        char cursor[UPLOAD_CURSOR_LINE_MAX]; /* canonical form, "" when it is not a cursor */
        UploadCursor parsed;                 /* valid when cursor[0] */
        int64_t mtime_usec;
};

static void upload_info_read(const char *path, struct upload_info *ret)
{
        struct upload_info u = {};
        UploadCursor c;
        struct stat st;

        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
                *ret = u;
                return;
        }
        u.known = true;
        u.mtime_usec = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
        /* Only a valid cursor is shown: the file is in the uploader's directory, not ours. */
        if (upload_cursor_load(path, &c) >= 0 && upload_cursor_format(&c, u.cursor) > 0) {
                u.cursor[strcspn(u.cursor, "\n")] = '\0';
                u.parsed = c;
        }
        *ret = u;
}

static const char *yes_no(bool b)
{
        return b ? _("yes") : _("no");
}

static int print_json(const struct agent_status *st, const struct upload_info *up)
{
        _cleanup_json_ JsonValue *root = NULL, *upload = NULL;
        _cleanup_free_ char *out = NULL;
        int r;

        r = json_new_object(&root);
        if (r < 0)
                return r;
        if ((r = json_object_set_string(root, "state", st->state)) < 0 ||
            (r = json_object_set_string(root, "operator", st->operator_id)) < 0 ||
            (r = json_object_set_string(root, "method", st->method)) < 0 ||
            (r = json_object_set_string(root, "card", st->card)) < 0 ||
            (r = json_object_set_string(root, "reader", st->reader)) < 0 ||
            (r = json_object_set_boolean(root, "card_present", st->card_present)) < 0 ||
            (r = json_object_set_integer(root, "policy_serial", st->policy_serial)) < 0 ||
            (r = json_object_set_boolean(root, "emergency", st->emergency)) < 0 ||
            (r = json_object_set_boolean(root, "log_writable", st->log_writable)) < 0)
                return r;
        if (!up->known)
                r = json_object_set_null(root, "last_upload");
        else {
                r = json_new_object(&upload);
                if (r < 0)
                        return r;
                r = json_object_set_integer(upload, "time_usec", up->mtime_usec);
                if (r >= 0 && up->cursor[0])
                        r = json_object_set_string(upload, "cursor", up->cursor);
                if (r < 0)
                        return r;
                r = json_object_set(root, "last_upload", TAKE_PTR(upload));
        }
        if (r < 0)
                return r;
        r = jcs_serialize(root, NULL, &out, NULL);
        if (r < 0)
                return r;
        printf("%s\n", out);
        return 0;
}

static void print_text(const struct agent_status *st, const struct upload_info *up)
{
        char when[64];

        /* The labels are for the operator (translated); the values are the agent's words, as in --json. */
        snprintf(when, sizeof(when), "%s", _("unknown"));
        printf(_("State: %s\n"), st->state);
        printf(_("Operator: %s\n"), st->operator_id[0] ? st->operator_id : "-");
        printf(_("Method: %s\n"), st->method[0] ? st->method : "-");
        printf(_("Card: %s\n"), st->card[0] ? st->card : "-");
        printf(_("Reader: %s\n"), st->reader[0] ? st->reader : "-");
        printf(_("Card present: %s\n"), yes_no(st->card_present));
        if (st->policy_serial >= 0)
                printf(_("Policy serial: %lld\n"), (long long)st->policy_serial);
        else
                printf("%s", _("Policy serial: none\n"));
        printf(_("Emergency lock: %s\n"), yes_no(st->emergency));
        printf(_("Log writable: %s\n"), yes_no(st->log_writable));
        if (up->known) {
                time_t t = (time_t)(up->mtime_usec / 1000000);
                struct tm tm;

                if (localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
        }
        printf(_("Last upload: %s"), when);
        if (up->known && up->cursor[0]) {
                if (up->parsed.has_receipt)
                        printf(_(" (log %s acknowledged up to seq %" PRIu64 ", receipt from %s)"),
                               up->parsed.log, up->parsed.acked, up->parsed.receipt.collector);
                else
                        printf(_(" (log %s acknowledged up to seq %" PRIu64 ", no receipt)"), up->parsed.log,
                               up->parsed.acked);
        }
        printf("\n");
}

int ctl_status(int argc, char **argv)
{
        static const struct option options[] = {
                {"json", no_argument, NULL, 'j'},
                {"cursor", required_argument, NULL, 'C'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_status st;
        struct upload_info up;
        struct agent_error_info info;
        const char *cursor = UPLOAD_CURSOR_PATH_DEFAULT;
        bool json = false;
        char text[256];
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "jC:h", options, NULL)) >= 0) {
                if (c == 'j')
                        json = true;
                else if (c == 'C')
                        cursor = optarg;
                else if (c == 'h') {
                        printf("Usage: mamorictl status [--json] [--cursor FILE]\n"
                               "Show the agent's state, operator, card, reader, policy serial and the last "
                               "upload\n(the uploader's cursor file, default %s).\n",
                               UPLOAD_CURSOR_PATH_DEFAULT);
                        return 0;
                } else
                        return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }

        r = agent_bus_open(&bus);
        if (r >= 0)
                r = agent_get_status(bus, &error, &st);
        if (r < 0) {
                agent_error_classify(&error, r, &info);
                fprintf(stderr, "mamorictl: %s (%s)\n", agent_error_format(&info, text, sizeof(text)),
                        sd_bus_error_is_set(&error) ? error.name : strerror(-r));
                /* Like systemctl status: 3 means "not running". */
                return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
        }
        upload_info_read(cursor, &up);
        if (json) {
                r = print_json(&st, &up);
                if (r < 0)
                        fprintf(stderr, "mamorictl: cannot format the status as JSON: %s\n", strerror(-r));
        } else
                print_text(&st, &up);
        agent_status_done(&st);
        return r < 0 ? 1 : 0;
}
