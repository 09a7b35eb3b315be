/* Unit tests for the D-Bus client helpers of pam_mamori.so and mamorictl: error names → words and classes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mamori/agent-client.h"
#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"

static void test_classify_and_format(void **state)
{
        static const struct {
                const char *name; /* NULL: no D-Bus error, only r */
                const char *message;
                int r;
                enum agent_error_class class;
                int tries;
                const char *text;
        } cases[] = {
                {MAMORI_ERROR_PIN_WRONG, "pin-wrong tries=2", -EACCES, AGENT_ERROR_PIN_WRONG, 2,
                 "PIN wrong, 2 tries left"},
                {MAMORI_ERROR_PIN_WRONG, "pin-wrong tries=1", -EACCES, AGENT_ERROR_PIN_WRONG, 1,
                 "PIN wrong, 1 try left"},
                {MAMORI_ERROR_PIN_WRONG, "pin-wrong tries=0", -EACCES, AGENT_ERROR_PIN_WRONG, 0,
                 "PIN wrong, 0 tries left"},
                {MAMORI_ERROR_PIN_WRONG, "pin-wrong", -EACCES, AGENT_ERROR_PIN_WRONG, -1, "PIN wrong"},
                {MAMORI_ERROR_PIN_WRONG, "pin-wrong tries=2x", -EACCES, AGENT_ERROR_PIN_WRONG, -1,
                 "PIN wrong"},
                {MAMORI_ERROR_PIN_WRONG, "pin-wrong tries=-1", -EACCES, AGENT_ERROR_PIN_WRONG, -1,
                 "PIN wrong"},
                {MAMORI_ERROR_PIN_BLOCKED, "pin-blocked", -EACCES, AGENT_ERROR_PIN_BLOCKED, -1,
                 "PIN blocked — call your security manager"},
                {MAMORI_ERROR_CARD_SUSPENDED, "card-suspended", -EACCES, AGENT_ERROR_REFUSED, -1,
                 "Card suspended — call your security manager"},
                {MAMORI_ERROR_UNKNOWN_CARD, "unknown-card", -EACCES, AGENT_ERROR_REFUSED, -1,
                 "This card is not registered — call your security manager"},
                {MAMORI_ERROR_CERT_EXPIRED, "cert-expired", -EACCES, AGENT_ERROR_REFUSED, -1,
                 "Certificate expired — call your security manager"},
                {MAMORI_ERROR_EMERGENCY, "emergency", -EACCES, AGENT_ERROR_REFUSED, -1,
                 "Emergency lock in force — logins are suspended until your system administrator lifts it"},
                {MAMORI_ERROR_CARD_ERROR, "card-error", -EIO, AGENT_ERROR_REFUSED, -1,
                 "Card could not be read — reinsert it"},
                {MAMORI_ERROR_NO_CARD, "no-card", -ENODEV, AGENT_ERROR_NO_CARD, -1,
                 "Insert your operator card"},
                {MAMORI_ERROR_WRONG_USER, "wrong-user", -EPERM, AGENT_ERROR_WRONG_USER, -1,
                 "This card belongs to another operator — log in with your own card"},
                {MAMORI_ERROR_NOT_ACTIVE, "", -EPERM, AGENT_ERROR_NOT_ACTIVE, -1,
                 "No operator is logged in — log in with your card first"},
                {"org.freedesktop.DBus.Error.ServiceUnknown", "x", -EHOSTDOWN, AGENT_ERROR_UNAVAILABLE, -1,
                 "The access-control agent is not running — call your system administrator"},
                {"System.Error.ECONNREFUSED", "Connection refused", -ECONNREFUSED, AGENT_ERROR_UNAVAILABLE,
                 -1, "The access-control agent is not reachable — call your system administrator"},
                {"org.example.Unheard.Of", "?", -EIO, AGENT_ERROR_PROTOCOL, -1, NULL},
                /* Too short: the minimum the agent named, in the words of the secret it was. */
                {MAMORI_ERROR_PIN_TOO_SHORT, "pin-too-short min=8", -EINVAL, AGENT_ERROR_INVALID, -1,
                 "The new PIN is too short — use at least 8 digits"},
                {MAMORI_ERROR_PIN_TOO_SHORT, "pin-too-short", -EINVAL, AGENT_ERROR_INVALID, -1,
                 "The new PIN is too short — choose a longer one"},
                {MAMORI_ERROR_PASSWORD_TOO_SHORT, "password-too-short min=10", -EINVAL,
                 AGENT_ERROR_PASSWORD_TOO_SHORT, -1,
                 "The new password is too short — use at least 10 characters"},
                /* Another refusal of the same class with a "min=" in its message: no minimum is shown. */
                {MAMORI_ERROR_PIN_INVALID, "pin-invalid min=8", -EINVAL, AGENT_ERROR_INVALID, -1, NULL},
                /* A PIN-wrong look-alike from another service is not a PIN refusal. */
                {"org.example.PinWrong", "pin-wrong tries=2", -EIO, AGENT_ERROR_PROTOCOL, -1, NULL},
                {NULL, NULL, -ECONNREFUSED, AGENT_ERROR_UNAVAILABLE, -1, NULL},
                {NULL, NULL, -ETIMEDOUT, AGENT_ERROR_UNAVAILABLE, -1, NULL},
                {NULL, NULL, -EBADMSG, AGENT_ERROR_PROTOCOL, -1, NULL},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                struct agent_error_info info;
                char buf[256];

                if (cases[i].name)
                        assert_true(sd_bus_error_set(&e, cases[i].name, cases[i].message) < 0);
                agent_error_classify(&e, cases[i].r, &info);
                assert_int_equal(info.class, cases[i].class);
                assert_int_equal(info.tries_left, cases[i].tries);
                assert_non_null(info.name);
                /* The reason is the table's, looked up by the error's name; none without one of ours. */
                assert_int_equal(info.reason, cases[i].class == AGENT_ERROR_UNAVAILABLE ||
                                                              cases[i].class == AGENT_ERROR_PROTOCOL
                                                      ? -1
                                                      : auth_reason_from_dbus_error(cases[i].name));
                if (info.reason >= 0)
                        assert_string_equal(info.name, auth_reason_to_string(info.reason));
                agent_error_format(&info, buf, sizeof(buf));
                if (cases[i].text)
                        assert_string_equal(buf, cases[i].text);
                else
                        assert_true(buf[0] != '\0' && !strstr(buf, "at least"));
                sd_bus_error_free(&e);
        }
}

static void test_every_api_error_has_words(void **state)
{
        static const char *const names[] = {
                MAMORI_ERROR_NO_CARD,
                MAMORI_ERROR_UNKNOWN_CARD,
                MAMORI_ERROR_CARD_SUSPENDED,
                MAMORI_ERROR_CARD_RETURNED,
                MAMORI_ERROR_OPERATOR_SUSPENDED,
                MAMORI_ERROR_OPERATOR_RETIRED,
                MAMORI_ERROR_WRONG_OFFICE,
                MAMORI_ERROR_CERT_UNTRUSTED,
                MAMORI_ERROR_CERT_EXPIRED,
                MAMORI_ERROR_PIN_WRONG,
                MAMORI_ERROR_PIN_BLOCKED,
                MAMORI_ERROR_SIGNATURE_INVALID,
                MAMORI_ERROR_POLICY_STALE,
                MAMORI_ERROR_EMERGENCY,
                MAMORI_ERROR_CARD_ERROR,
                MAMORI_ERROR_WRONG_USER,
                MAMORI_ERROR_BUSY,
                MAMORI_ERROR_NOT_PENDING,
                MAMORI_ERROR_NOT_ACTIVE,
                MAMORI_ERROR_PERMISSION,
                MAMORI_ERROR_LOG_UNWRITABLE,
                MAMORI_ERROR_INVALID,
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                struct agent_error_info info;

                sd_bus_error_set(&e, names[i], "m");
                agent_error_classify(&e, -EIO, &info);
                assert_int_not_equal(info.class, AGENT_ERROR_PROTOCOL);
                assert_int_not_equal(info.class, AGENT_ERROR_UNAVAILABLE);
                sd_bus_error_free(&e);
        }
}

static void test_parse_tries_and_pin_format(void **state)
{
        assert_int_equal(agent_parse_tries(NULL), -1);
        assert_int_equal(agent_parse_tries("tries="), -1);
        assert_int_equal(agent_parse_tries("pin-wrong tries=3"), 3);
        assert_int_equal(agent_parse_tries("pin-wrong tries=100"), -1);
        assert_int_equal(agent_parse_tries("pin-wrong tries=+2"), -1);

        assert_true(agent_pin_format_ok("123456"));
        assert_true(agent_pin_format_ok("12345678"));
        assert_false(agent_pin_format_ok("12345"));
        assert_false(agent_pin_format_ok("123456789"));
        assert_false(agent_pin_format_ok("12345a"));
        assert_false(agent_pin_format_ok("123 456"));
        assert_false(agent_pin_format_ok(""));
        assert_false(agent_pin_format_ok(NULL));
}

/* The count after "tries=": digits only, at most 99, ended by the message or a separator. */
static void test_parse_tries_edges(void **state)
{
        assert_int_equal(agent_parse_tries("pin-wrong tries=0"), 0);
        assert_int_equal(agent_parse_tries("pin-wrong tries=99"), 99);
        assert_int_equal(agent_parse_tries("pin-wrong tries=02"), 2);
        assert_int_equal(agent_parse_tries("pin-wrong tries=2 left"), 2);
        assert_int_equal(agent_parse_tries("pin-wrong (tries=2)"), 2);
        assert_int_equal(agent_parse_tries("pin-wrong tries=2,"), 2);
        assert_int_equal(agent_parse_tries("pin-wrong tries=2x"), -1);
        assert_int_equal(agent_parse_tries("pin-wrong tries= 2"), -1);
        assert_int_equal(agent_parse_tries("pin-wrong tries=-1"), -1);
        assert_int_equal(agent_parse_tries("pin-wrong tries=99999999999999999999999"), -1);
        assert_int_equal(agent_parse_tries("pin-wrong"), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify_and_format),
                cmocka_unit_test(test_every_api_error_has_words),
                cmocka_unit_test(test_parse_tries_and_pin_format),
                cmocka_unit_test(test_parse_tries_edges),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
