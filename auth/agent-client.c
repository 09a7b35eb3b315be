/* Thin sd-bus client of org.mamori.Agent1 for pam_mamori.so and mamorictl: errors in words, properties. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/agent-client.h"
#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/i18n.h"
#include "mamori/parse-util.h"

/* What a caller does about each of mamorid's refusals; the rest are AGENT_ERROR_REFUSED. */
static enum agent_error_class reason_class(enum auth_reason r)
{
        switch (r) {
        case AUTH_NO_CARD:
                return AGENT_ERROR_NO_CARD;
        case AUTH_PIN_WRONG:
                return AGENT_ERROR_PIN_WRONG;
        case AUTH_PIN_FORMAT:
                return AGENT_ERROR_PIN_FORMAT;
        case AUTH_PIN_BLOCKED:
                return AGENT_ERROR_PIN_BLOCKED;
        case AUTH_PASSWORD_WRONG:
                return AGENT_ERROR_PASSWORD_WRONG;
        case AUTH_PASSWORD_TOO_SHORT:
                return AGENT_ERROR_PASSWORD_TOO_SHORT;
        case AUTH_WRONG_USER:
                return AGENT_ERROR_WRONG_USER;
        case AUTH_PERMISSION_DENIED:
                return AGENT_ERROR_PERMISSION;
        case AUTH_NOT_ACTIVE:
                return AGENT_ERROR_NOT_ACTIVE;
        case AUTH_NOT_PENDING:
                return AGENT_ERROR_NOT_PENDING;
        case AUTH_BUSY:
                return AGENT_ERROR_BUSY;
        case AUTH_INVALID_ARGUMENT:
        case AUTH_PIN_TOO_SHORT: /* a new PIN the agent or the card refused: type another */
        case AUTH_PIN_INVALID:
                return AGENT_ERROR_INVALID;
        default:
                return AGENT_ERROR_REFUSED;
        }
}

/* The bus's own errors that mean "the agent is not there" (mamorid's are in common/auth-reasons.c). */
static const struct bus_error_entry {
        const char *dbus_name;
        const char *sentence;
} bus_unavailable_errors[] = {
        {SD_BUS_ERROR_SERVICE_UNKNOWN,
         N_("The access-control agent is not running — call your system administrator")},
        {SD_BUS_ERROR_NAME_HAS_NO_OWNER,
         N_("The access-control agent is not running — call your system administrator")},
        {SD_BUS_ERROR_NO_REPLY,
         N_("The access-control agent did not answer — try again, then call your system administrator")},
        {SD_BUS_ERROR_TIMEOUT,
         N_("The access-control agent did not answer — try again, then call your system administrator")},
        {SD_BUS_ERROR_DISCONNECTED,
         N_("The access-control agent is not reachable — call your system administrator")},
        {SD_BUS_ERROR_UNKNOWN_OBJECT,
         N_("The access-control agent does not offer logins yet — call your system administrator")},
        {SD_BUS_ERROR_UNKNOWN_INTERFACE,
         N_("The access-control agent does not offer logins yet — call your system administrator")},
        {SD_BUS_ERROR_UNKNOWN_METHOD,
         N_("The access-control agent does not offer logins yet — call your system administrator")},
};

int agent_parse_tries(const char *message)
{
        return agent_parse_count(message, "tries");
}

int agent_parse_count(const char *message, const char *key)
{
        char digits[21], pattern[32];
        const char *p;
        uint64_t v;
        size_t n;

        if (!message || (size_t)snprintf(pattern, sizeof(pattern), "%s=", key) >= sizeof(pattern))
                return -1;
        p = strstr(message, pattern);
        if (!p)
                return -1;
        p += strlen(pattern);
        /* The count ends the message or is followed by a separator: "pin-wrong tries=2 (…)". */
        n = strspn(p, "0123456789");
        if (n == 0 || n >= sizeof(digits) || (p[n] != '\0' && !strchr(" ,)", p[n])))
                return -1;
        memcpy(digits, p, n);
        digits[n] = '\0';
        if (parse_uint64(digits, streq(key, "tries") ? 99 : 999999, &v) < 0)
                return -1;
        return (int)v;
}

static bool transport_errno(int r)
{
        switch (-r) {
        case ECONNREFUSED:
        case ECONNRESET:
        case ENOENT:
        case ENOTCONN:
        case ETIMEDOUT:
        case EPIPE:
        case ESHUTDOWN:
        case EHOSTDOWN:
        case ENXIO:
                return true;
        default:
                return false;
        }
}

void agent_error_classify(const sd_bus_error *e, int r, struct agent_error_info *ret)
{
        struct agent_error_info info = {
                .class = AGENT_ERROR_PROTOCOL,
                .reason = -1,
                .name = "protocol-error",
                .sentence = N_("The access-control agent gave an answer this program does not understand — "
                               "call your system administrator"),
                .tries_left = -1,
                .delay_sec = -1,
                .min_length = -1,
        };

        if (e && sd_bus_error_is_set(e)) {
                /* The bus refusing our call is the same refusal as mamorid's own. */
                int reason = sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)
                                     ? AUTH_PERMISSION_DENIED
                                     : auth_reason_from_dbus_error(e->name);
                if (reason >= 0) {
                        info.class = reason_class(reason);
                        info.reason = reason;
                        info.name = auth_reason_to_string(reason);
                        info.sentence = auth_reason_to_words(reason);
                        if (reason == AUTH_PIN_WRONG)
                                info.tries_left = agent_parse_tries(e->message);
                        if (reason == AUTH_PASSWORD_WRONG)
                                info.delay_sec = agent_parse_count(e->message, "delay");
                        if (reason == AUTH_PASSWORD_TOO_SHORT || reason == AUTH_PIN_TOO_SHORT)
                                info.min_length = agent_parse_count(e->message, "min");
                        *ret = info;
                        return;
                }
                for (size_t i = 0; i < ELEMENTSOF(bus_unavailable_errors); i++)
                        if (sd_bus_error_has_name(e, bus_unavailable_errors[i].dbus_name)) {
                                info.class = AGENT_ERROR_UNAVAILABLE;
                                info.name = "agent-unavailable";
                                info.sentence = bus_unavailable_errors[i].sentence;
                                *ret = info;
                                return;
                        }
                /* sd-bus reports a failed transport as "System.Error.E…": look at the errno. */
                r = -sd_bus_error_get_errno(e);
        }
        if (transport_errno(r)) {
                info.class = AGENT_ERROR_UNAVAILABLE;
                info.name = "agent-unavailable";
                info.sentence =
                        N_("The access-control agent is not reachable — call your system administrator");
        }
        *ret = info;
}

const char *agent_error_format(const struct agent_error_info *info, char *buf, size_t size)
{
        if (size == 0)
                return buf;
        if (info->reason == AUTH_PIN_WRONG && info->tries_left >= 0)
                snprintf(buf, size,
                         P_("PIN wrong, %d try left", "PIN wrong, %d tries left", info->tries_left),
                         info->tries_left);
        else if (info->reason == AUTH_PIN_TOO_SHORT && info->min_length >= 0)
                snprintf(buf, size,
                         P_("The new PIN is too short — use at least %d digit",
                            "The new PIN is too short — use at least %d digits", info->min_length),
                         info->min_length);
        else if (info->reason == AUTH_PASSWORD_TOO_SHORT && info->min_length >= 0)
                snprintf(buf, size,
                         P_("The new password is too short — use at least %d character",
                            "The new password is too short — use at least %d characters", info->min_length),
                         info->min_length);
        else
                snprintf(buf, size, "%s", _(info->sentence));
        return buf;
}

int agent_bus_open(sd_bus **ret)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        (void)sd_bus_set_description(bus, "mamori-agent-client");
        *ret = TAKE_PTR(bus);
        return 0;
}

int agent_is_running(sd_bus *bus)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has, r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", MAMORI_DBUS_NAME);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "b", &has);
        if (r < 0)
                return r;
        return has ? 1 : 0;
}

static int read_string_variant(sd_bus_message *m, char **field)
{
        const char *s;
        char *copy;
        int r;

        r = sd_bus_message_read(m, "v", "s", &s);
        if (r < 0)
                return r;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int read_bool_variant(sd_bus_message *m, bool *field)
{
        int b, r;

        r = sd_bus_message_read(m, "v", "b", &b);
        if (r < 0)
                return r;
        *field = b;
        return 0;
}

void agent_status_done(struct agent_status *s)
{
        if (!s)
                return;
        free(s->state);
        free(s->operator_id);
        free(s->method);
        free(s->card);
        free(s->reader);
        *s = (struct agent_status){.policy_serial = -1};
}

int agent_get_status(sd_bus *bus, sd_bus_error *error, struct agent_status *ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct agent_status st = {.policy_serial = -1};
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, "org.freedesktop.DBus.Properties",
                               "GetAll", error, &reply, "s", MAMORI_DBUS_INTERFACE);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        goto fail;
                if (streq(name, "State"))
                        r = read_string_variant(reply, &st.state);
                else if (streq(name, "Operator"))
                        r = read_string_variant(reply, &st.operator_id);
                else if (streq(name, "Method"))
                        r = read_string_variant(reply, &st.method);
                else if (streq(name, "Card"))
                        r = read_string_variant(reply, &st.card);
                else if (streq(name, "Reader"))
                        r = read_string_variant(reply, &st.reader);
                else if (streq(name, "CardPresent"))
                        r = read_bool_variant(reply, &st.card_present);
                else if (streq(name, "Emergency"))
                        r = read_bool_variant(reply, &st.emergency);
                else if (streq(name, "LogWritable"))
                        r = read_bool_variant(reply, &st.log_writable);
                else if (streq(name, "PolicySerial"))
                        r = sd_bus_message_read(reply, "v", "x", &st.policy_serial);
                else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        goto fail;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto fail;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                goto fail;
        /* Absent strings read as "" so callers never test for NULL. */
        char **strings[] = {&st.state, &st.operator_id, &st.method, &st.card, &st.reader};
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (!*strings[i]) {
                        *strings[i] = strdup("");
                        if (!*strings[i]) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
        *ret = st;
        return 0;
fail:
        agent_status_done(&st);
        return r;
}

int agent_get_card_present(sd_bus *bus, sd_bus_error *error, bool *ret)
{
        int b, r;

        r = sd_bus_get_property_trivial(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                        "CardPresent", error, 'b', &b);
        if (r < 0)
                return r;
        *ret = b;
        return 0;
}

bool agent_pin_format_ok(const char *pin)
{
        return pin_check_format(pin, PIN_DIGITS_MIN, PIN_DIGITS_MAX) >= 0;
}

void agent_secret_free(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

int agent_change_pin(sd_bus *bus, const char *old_pin, const char *new_pin, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                           MAMORI_DBUS_INTERFACE, "ChangePin");
        if (r < 0)
                return r;
        r = sd_bus_message_sensitive(m); /* sd-bus wipes the message when it frees it */
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", old_pin, new_pin);
        if (r < 0)
                return r;
        return sd_bus_call(bus, m, AGENT_CALL_TIMEOUT_USEC, error, NULL);
}

/* A method call whose reply is one operator id: AnswerPin, AnswerPassword, ScanFinger. A sensitive
 * one is wiped by sd-bus when freed (the secret it carries with it). */
static int call_for_operator(sd_bus *bus, const char *method, bool sensitive, uint64_t timeout_usec,
                             sd_bus_error *error, char **ret_operator, const char *types, ...)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *op;
        va_list ap;
        char *copy;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                           MAMORI_DBUS_INTERFACE, method);
        if (r < 0)
                return r;
        if (sensitive) {
                r = sd_bus_message_sensitive(m);
                if (r < 0)
                        return r;
        }
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, timeout_usec, error, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &op);
        if (r < 0)
                return r;
        copy = strdup(op);
        if (!copy)
                return -ENOMEM;
        *ret_operator = copy;
        return 0;
}

int agent_answer_pin(sd_bus *bus, const char *pin, sd_bus_error *error, char **ret_operator)
{
        return call_for_operator(bus, "AnswerPin", true, AGENT_CALL_TIMEOUT_USEC, error, ret_operator, "s",
                                 pin);
}

int agent_answer_password(sd_bus *bus, const char *operator_id, const char *password, sd_bus_error *error,
                          char **ret_operator)
{
        /* The answer to a wrong password comes after its delay (up to 32 s) plus the check. */
        return call_for_operator(bus, "AnswerPassword", true, AGENT_CALL_TIMEOUT_USEC + 40ull * 1000000ull,
                                 error, ret_operator, "ss", operator_id, password);
}

int agent_change_password(sd_bus *bus, const char *old_password, const char *new_password,
                          sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                           MAMORI_DBUS_INTERFACE, "ChangePassword");
        if (r < 0)
                return r;
        r = sd_bus_message_sensitive(m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", old_password, new_password);
        if (r < 0)
                return r;
        return sd_bus_call(bus, m, AGENT_CALL_TIMEOUT_USEC, error, NULL);
}

int agent_password_age(sd_bus *bus, sd_bus_error *error, int *ret_days, int *ret_max_days,
                       int *ret_warn_days)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int32_t days, max_days, warn_days;
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                               "PasswordAgeDays", error, &reply, "");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "iii", &days, &max_days, &warn_days);
        if (r < 0)
                return r;
        *ret_days = days;
        *ret_max_days = max_days;
        *ret_warn_days = warn_days;
        return 0;
}

int agent_get_string(sd_bus *bus, const char *property, sd_bus_error *error, char **ret)
{
        return sd_bus_get_property_string(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                          property, error, ret);
}

int agent_scan_finger(sd_bus *bus, sd_bus_error *error, char **ret_operator)
{
        return call_for_operator(bus, "ScanFinger", false, AGENT_SCAN_TIMEOUT_USEC, error, ret_operator, "s",
                                 "finger");
}

int agent_get_sensors(sd_bus *bus, sd_bus_error *error, char ***ret)
{
        return sd_bus_get_property_strv(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                        "Sensors", error, ret);
}

void agent_strv_free(char **l)
{
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}
