/* org.mamori.Agent1 on the system bus: properties, the PAM conversation, Lock, ChangePin, RecordOperation.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "journal.h"
#include "mamorid.h"
#include "mamori/auth-decision.h"
#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define USER_MAX      64
#define OP_KIND_MAX   64
#define OP_FIELDS_MAX 16
#define OP_KEY_MAX    64
#define OP_VALUE_MAX  256
#define APPS_GROUP    "mamori-apps"
#define UID_INVALID   ((uid_t)-1)

static bool printable(const char *s);

const char *agent_error_name(const char *reason)
{
        int r = auth_reason_from_string(reason);
        /* Not a reason of the table: a login aborted because the card went away, was cancelled, … */
        return r > AUTH_ALLOW ? auth_reason_to_dbus_error(r) : MAMORI_ERROR_CARD_ERROR;
}

static int prop_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *v = "";

        if (streq(property, "State"))
                v = session_state_to_string(a->state);
        else if (streq(property, "Operator"))
                v = a->state == SESSION_ACTIVE ? a->operator_id : "";
        else if (streq(property, "Method"))
                v = a->state == SESSION_ACTIVE ? a->method : "";
        else if (streq(property, "Card"))
                v = a->card.present ? a->card.card_id : "";
        else if (streq(property, "Reader"))
                v = a->card.present ? a->card.reader : "";
        return sd_bus_message_append(reply, "s", v);
}

static int prop_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        int v = 0;

        if (streq(property, "CardPresent"))
                v = a->card.present && !a->readers_lost;
        else if (streq(property, "Emergency"))
                v = a->emergency;
        else if (streq(property, "LogWritable"))
                v = a->log && oplog_writable(a->log);
        return sd_bus_message_append(reply, "b", v);
}

static int prop_serial(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        return sd_bus_message_append(reply, "x", (int64_t)a->policy_serial);
}

static int method_start_login(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *user, *err = NULL, *msg = NULL;
        char card_id[CARD_ID_LEN + 1] = "";
        int tries = -1, r;

        r = sd_bus_message_read(m, "s", &user);
        if (r < 0)
                return r;
        if (strlen(user) > USER_MAX || !printable(user))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "user: up to 64 printable bytes");
        r = agent_start_login(a, m, user, card_id, &tries, &err, &msg);
        if (r < 0)
                return r;
        if (r > 0)
                return 1; /* answered once the refusal is on record */
        if (err)
                return sd_bus_error_set(error, err, msg);
        return sd_bus_reply_method_return(m, "si", card_id, tries);
}

static int method_answer_pin(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *pin, *err = NULL, *msg = NULL;
        int r;

        r = sd_bus_message_read(m, "s", &pin);
        if (r < 0)
                return r;
        /* The method is SENSITIVE: sd-bus erases the message, PIN included, when it is freed. */
        r = agent_answer_pin(a, m, pin, &err, &msg);
        if (r < 0)
                return r;
        if (r > 0)
                return 1;
        return sd_bus_error_set(error, err, msg);
}

static int method_cancel_login(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *err = NULL;

        agent_cancel_login(a, sd_bus_message_get_sender(m), &err);
        if (err)
                return sd_bus_error_set(error, err, "no login of yours is in progress");
        return sd_bus_reply_method_return(m, "");
}

static int method_lock(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;

        return agent_lock_and_reply(a, m);
}

static int caller_may_change_pin(struct agent *a, sd_bus_message *m)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *session = NULL;
        char active[64];
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_SESSION | SD_BUS_CREDS_AUGMENT,
                                      &creds);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_euid(creds, &uid) >= 0 && uid == 0)
                return 1;
        if (a->state != SESSION_ACTIVE || !a->card.present || !streq(a->card.card_id, a->session_card))
                return 0;
        if (sd_bus_creds_get_session(creds, &session) < 0 || !a->logind ||
            logind_active_session_id(a->logind, active, sizeof(active)) < 0)
                return 0;
        return streq(session, active);
}

static int method_change_pin(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *old_pin, *new_pin, *err = NULL, *msg = NULL;
        int r;

        r = sd_bus_message_read(m, "ss", &old_pin, &new_pin);
        if (r < 0)
                return r;
        /* Only root, or a process of the seat's active (operator) session while that session
         * holds this very card: nobody else may spend the card's PIN tries. */
        r = caller_may_change_pin(a, m);
        if (r < 0)
                return r;
        if (r == 0)
                return sd_bus_error_set(error, MAMORI_ERROR_PERMISSION,
                                        "the PIN can be changed only in the card's own session");
        r = agent_change_pin(a, m, old_pin, new_pin, &err, &msg);
        if (r < 0)
                return r;
        if (r > 0)
                return 1;
        return sd_bus_error_set(error, err, msg);
}

/* Root, or a member of mamori-apps (primary or supplementary group of the sender). */
static int caller_may_record(sd_bus_message *m)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const gid_t *gids = NULL;
        uid_t euid;
        gid_t gid;
        int r, n;

        r = sd_bus_query_sender_creds(m,
                                      SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID |
                                              SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_AUGMENT,
                                      &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &euid);
        if (r < 0)
                return r;
        if (euid == 0)
                return 1;
        struct group *g = getgrnam(APPS_GROUP);
        if (!g)
                return 0;
        if (sd_bus_creds_get_egid(creds, &gid) >= 0 && gid == g->gr_gid)
                return 1;
        n = sd_bus_creds_get_supplementary_gids(creds, &gids);
        for (int i = 0; i < n; i++)
                if (gids[i] == g->gr_gid)
                        return 1;
        return 0;
}

struct op_reply {
        sd_bus_message *m;
        struct agent *a;
};

static void on_op_recorded(int result, uint64_t seq, void *userdata)
{
        struct op_reply *o = userdata;

        if (result < 0) {
                (void)sd_bus_reply_method_errorf(o->m, auth_reason_to_dbus_error(AUTH_LOG_UNWRITABLE), "%s",
                                                 auth_reason_to_string(AUTH_LOG_UNWRITABLE));
                agent_on_log_health(o->a, result);
        } else
                (void)sd_bus_reply_method_return(o->m, "t", seq);
        sd_bus_message_unref(o->m);
        free(o);
}

/* Text that goes into records and the ledger: no control characters (C0, DEL, C1), no line or
 * paragraph separators and no bidi controls, which could make a ledger line read as another.
 * D-Bus already guarantees valid UTF-8. */
static bool printable(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p == 0x7f)
                        return false;
                if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* U+0080..U+009F */
                        return false;
                if (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xa8 && p[2] <= 0xae) /* U+2028..U+202E */
                        return false;
                if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9) /* U+2066..U+2069 */
                        return false;
        }
        return true;
}

static int method_record_operation(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        _cleanup_json_ JsonValue *data = NULL, *fields = NULL;
        const char *kind, *subject, *k, *v;
        unsigned n = 0;
        int r;

        r = caller_may_record(m);
        if (r < 0)
                return r;
        if (r == 0)
                return sd_bus_error_set(error, MAMORI_ERROR_PERMISSION,
                                        "only root and members of " APPS_GROUP " may record operations");
        r = sd_bus_message_read(m, "ss", &kind, &subject);
        if (r < 0)
                return r;
        if (!*kind || strlen(kind) > OP_KIND_MAX || strlen(subject) > OP_KIND_MAX || !printable(kind) ||
            !printable(subject))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "kind/subject: 1-64 printable bytes");
        if (json_new_object(&fields) < 0)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "{ss}", &k, &v)) > 0) {
                if (++n > OP_FIELDS_MAX || !*k || strlen(k) > OP_KEY_MAX || strlen(v) > OP_VALUE_MAX ||
                    !printable(k) || !printable(v))
                        return sd_bus_error_set(
                                error, MAMORI_ERROR_INVALID,
                                "fields: at most 16, keys 1-64 and values up to 256 printable bytes");
                r = json_object_set_string(fields, k, v);
                if (r == -EEXIST)
                        return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "duplicate field");
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (a->state != SESSION_ACTIVE)
                return sd_bus_error_set(error, MAMORI_ERROR_NOT_ACTIVE, "no operator is logged in");

        data = agent_data("kind", kind, "subject", subject, NULL);
        if (!data || json_object_set(data, "fields", TAKE_PTR(fields)) < 0)
                return -ENOMEM;
        struct op_reply *o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->m = sd_bus_message_ref(m);
        o->a = a;
        agent_record(a, "app.op", a->operator_id, a->session_card, TAKE_PTR(data), on_op_recorded, o);
        return 1;
}

static int method_pin_age(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const Policy *p = a->policy ? policy_watch_current(a->policy) : NULL;
        const PolicyOperator *op;
        int days = -1;

        if (a->state != SESSION_ACTIVE)
                return sd_bus_error_set(error, MAMORI_ERROR_NOT_ACTIVE, "no operator is logged in");
        op = p ? policy_find_operator(p, a->operator_id) : NULL;
        if (op && op->pin_changed >= 0) {
                int64_t now = now_realtime_usec();
                days = now > op->pin_changed ? (int)((now - op->pin_changed) / (INT64_C(86400) * 1000000))
                                             : 0;
        }
        return sd_bus_reply_method_return(m, "ii", days, (int)a->config.max_age_days);
}

static const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Operator", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Method", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Card", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Reader", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CardPresent", "b", prop_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PolicySerial", "x", prop_serial, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Emergency", "b", prop_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LogWritable", "b", prop_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("StartLogin", "s", "si", method_start_login, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("AnswerPin", "s", "s", method_answer_pin,
                      SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD("CancelLogin", "", "", method_cancel_login, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Lock", "", "", method_lock, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ChangePin", "ss", "", method_change_pin,
                      SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD("RecordOperation", "ssa{ss}", "t", method_record_operation,
                      SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("PinAgeDays", "", "ii", method_pin_age, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL("StateChanged", "sss", 0),
        SD_BUS_VTABLE_END,
};

void agent_dbus_properties_changed(struct agent *a)
{
        if (!a->bus)
                return;
        (void)sd_bus_emit_properties_changed(a->bus, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "State",
                                             "Operator", "Method", "Card", "Reader", "CardPresent",
                                             "PolicySerial", "Emergency", "LogWritable", NULL);
}

void agent_dbus_state_changed(struct agent *a, const char *reason)
{
        if (!a->bus)
                return;
        agent_dbus_properties_changed(a);
        (void)sd_bus_emit_signal(a->bus, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "StateChanged", "sss",
                                 session_state_to_string(a->state),
                                 a->state == SESSION_ACTIVE ? a->operator_id : "", reason);
}

/* A PAM client that disappears mid-login cancels it. */
static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *name, *old_owner, *new_owner;
        const char *err;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*old_owner && !*new_owner && a->login.sender && streq(name, a->login.sender))
                agent_cancel_login(a, name, &err);
        return 0;
}

int agent_dbus_start(struct agent *a)
{
        int r;

        r = sd_bus_open_system(&a->bus);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(a->bus, NULL, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, agent_vtable, a);
        if (r >= 0)
                r = sd_bus_match_signal(a->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed,
                                        a);
        if (r >= 0)
                r = sd_bus_attach_event(a->bus, a->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_request_name(a->bus, MAMORI_DBUS_NAME, 0);
        if (r < 0) {
                a->bus = sd_bus_flush_close_unref(a->bus);
                return r;
        }
        return 0;
}
