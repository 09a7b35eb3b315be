/* Unit tests for the refusal-reason table: complete, unique, and every lookup round-trips.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>

#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"

static bool is_gap(int r)
{
        return r == _AUTH_REASON_MAX; /* the end marker of auth_decide()'s outcomes */
}

/* Every enum value has a row; every refusal has a name, a D-Bus error of our API and words. */
static void test_complete(void **state)
{
        assert_string_equal(auth_reason_to_string(AUTH_ALLOW), "allow");
        assert_null(auth_reason_to_dbus_error(AUTH_ALLOW));
        assert_null(auth_reason_to_words(AUTH_ALLOW));

        for (int r = AUTH_ALLOW + 1; r < _AUTH_REFUSAL_MAX; r++) {
                if (is_gap(r))
                        continue;
                const char *name = auth_reason_to_string(r), *err = auth_reason_to_dbus_error(r),
                           *words = auth_reason_to_words(r);

                assert_non_null(name);
                assert_non_null(err);
                assert_non_null(words);
                if (!name[0] || !words[0])
                        fail_msg("reason %d has an empty field", r);
                if (strncmp(err, MAMORI_DBUS_ERROR_PREFIX, strlen(MAMORI_DBUS_ERROR_PREFIX)) != 0 ||
                    !err[strlen(MAMORI_DBUS_ERROR_PREFIX)])
                        fail_msg("%s: D-Bus error %s is not one of org.mamori.Agent1's", name, err);
                /* Names are the words of records: lower case and dashes only. */
                if (strspn(name, "abcdefghijklmnopqrstuvwxyz-") != strlen(name))
                        fail_msg("%s: not a record word", name);
        }
}

/* No two rows share a name or a D-Bus error, so each lookup has one answer. */
static void test_unique(void **state)
{
        for (int a = AUTH_ALLOW; a < _AUTH_REFUSAL_MAX; a++)
                for (int b = a + 1; b < _AUTH_REFUSAL_MAX; b++) {
                        if (is_gap(a) || is_gap(b))
                                continue;
                        if (streq(auth_reason_to_string(a), auth_reason_to_string(b)))
                                fail_msg("reasons %d and %d share the name %s", a, b,
                                         auth_reason_to_string(a));
                        if (a != AUTH_ALLOW &&
                            streq(auth_reason_to_dbus_error(a), auth_reason_to_dbus_error(b)))
                                fail_msg("%s and %s share the D-Bus error %s", auth_reason_to_string(a),
                                         auth_reason_to_string(b), auth_reason_to_dbus_error(a));
                }
}

static void test_round_trip(void **state)
{
        for (int r = AUTH_ALLOW; r < _AUTH_REFUSAL_MAX; r++) {
                if (is_gap(r))
                        continue;
                assert_int_equal(auth_reason_from_string(auth_reason_to_string(r)), r);
                if (r != AUTH_ALLOW)
                        assert_int_equal(auth_reason_from_dbus_error(auth_reason_to_dbus_error(r)), r);
        }
        /* Not a reason: the fallbacks. */
        assert_string_equal(auth_reason_to_string(_AUTH_REASON_MAX), "card-error");
        assert_string_equal(auth_reason_to_string(_AUTH_REFUSAL_MAX), "card-error");
        assert_string_equal(auth_reason_to_string(-1), "card-error");
        assert_null(auth_reason_to_dbus_error(_AUTH_REASON_MAX));
        assert_null(auth_reason_to_words(_AUTH_REFUSAL_MAX));
        assert_int_equal(auth_reason_from_string(NULL), -EINVAL);
        assert_int_equal(auth_reason_from_string(""), -EINVAL);
        assert_int_equal(auth_reason_from_string("pin-wrong-format"), -EINVAL);
        assert_int_equal(auth_reason_from_string("Pin-Wrong"), -EINVAL);
        assert_int_equal(auth_reason_from_dbus_error(NULL), -EINVAL);
        assert_int_equal(auth_reason_from_dbus_error("org.example.PinWrong"), -EINVAL);
        assert_int_equal(auth_reason_from_dbus_error(MAMORI_DBUS_ERROR_PREFIX), -EINVAL);
}

/* The exact words and names that clients, records and tests rely on. */
static void test_known_rows(void **state)
{
        static const struct {
                enum auth_reason r;
                const char *name, *dbus_error, *words;
        } rows[] = {
                {AUTH_NO_CARD, "no-card", MAMORI_ERROR_NO_CARD, "Insert your operator card"},
                {AUTH_CARD_SUSPENDED, "card-suspended", MAMORI_ERROR_CARD_SUSPENDED,
                 "Card suspended — call your security manager"},
                {AUTH_PIN_WRONG, "pin-wrong", MAMORI_ERROR_PIN_WRONG, "PIN wrong"},
                {AUTH_PIN_BLOCKED, "pin-blocked", MAMORI_ERROR_PIN_BLOCKED,
                 "PIN blocked — call your security manager"},
                {AUTH_CARD_ERROR, "card-error", MAMORI_ERROR_CARD_ERROR,
                 "Card could not be read — reinsert it"},
                {AUTH_WRONG_USER, "wrong-user", MAMORI_ERROR_WRONG_USER,
                 "This card belongs to another operator — log in with your own card"},
                {AUTH_LOG_UNWRITABLE, "log-unwritable", MAMORI_ERROR_LOG_UNWRITABLE, NULL},
                {AUTH_PERMISSION_DENIED, "permission-denied", MAMORI_ERROR_PERMISSION, NULL},
                {AUTH_INVALID_ARGUMENT, "invalid-argument", MAMORI_ERROR_INVALID, NULL},
                {AUTH_PIN_FORMAT, "pin-format", "org.mamori.Agent1.Error.PinFormat",
                 "The PIN is 6 to 8 digits — type it again"},
                /* The words of the ends that had none (a cancelled login answered "card-error",
                 * a short new PIN "invalid-argument"). */
                {AUTH_CANCELLED, "cancelled", "org.mamori.Agent1.Error.Cancelled",
                 "The login was stopped before it finished — start it again"},
                {AUTH_PIN_TOO_SHORT, "pin-too-short", "org.mamori.Agent1.Error.PinTooShort",
                 "The new PIN is too short — choose a longer one"},
                {AUTH_PIN_INVALID, "pin-invalid", "org.mamori.Agent1.Error.PinInvalid", NULL},
        };

        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                assert_string_equal(auth_reason_to_string(rows[i].r), rows[i].name);
                assert_string_equal(auth_reason_to_dbus_error(rows[i].r), rows[i].dbus_error);
                if (rows[i].words)
                        assert_string_equal(auth_reason_to_words(rows[i].r), rows[i].words);
        }
}

/* Every error that dbus-api.h defines has its row: read the header itself, so that a new error
 * added there without a row fails here (like systemd's test-login-tables). */
static void test_every_api_error_has_a_row(void **state)
{
        static const char tag[] = "MAMORI_DBUS_ERROR_PREFIX \"";
        char line[512];
        unsigned seen = 0, rows = 0;
        FILE *f = fopen(DBUS_API_H, "re");

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                const char *p = strstr(line, tag), *end;
                char name[256];

                /* "#define MAMORI_ERROR_X MAMORI_DBUS_ERROR_PREFIX "X"", or its continuation line. */
                if (!p || !(strneq(line, "#define MAMORI_ERROR_", 21) || line[0] == ' '))
                        continue;
                p += strlen(tag);
                end = strchr(p, '"');
                assert_non_null(end);
                snprintf(name, sizeof(name), "%s%.*s", MAMORI_DBUS_ERROR_PREFIX, (int)(end - p), p);
                if (auth_reason_from_dbus_error(name) < 0)
                        fail_msg("%s has no row in common/auth-reasons.c", name);
                seen++;
        }
        fclose(f);
        for (int r = AUTH_ALLOW + 1; r < _AUTH_REFUSAL_MAX; r++)
                rows += !is_gap(r);
        assert_int_equal(seen, rows);
}

/* ---- the places that produce reasons: every auth.fail takes its reason from the table ---- */

#define SOURCE_MAX (1024 * 1024)

/* s with every run of white space made one space, in buf. */
static void squeeze(const char *s, size_t n, char *buf, size_t size)
{
        size_t o = 0;
        bool space = false;

        for (size_t i = 0; i < n && o + 2 < size; i++) {
                if (strchr(" \t\n", s[i])) {
                        space = true;
                        continue;
                }
                if (space && o > 0)
                        buf[o++] = ' ';
                space = false;
                buf[o++] = s[i];
        }
        buf[o] = '\0';
}

/* Counts the statements of path that write an auth.fail record (the event name as an argument:
 * "auth.fail" followed by a comma) and fails on one whose reason is not auth_reason_to_string(…) —
 * a literal or a variable could name a reason the table does not hold, which clients cannot put in
 * words and auditors cannot count. */
static unsigned check_file(const char *path)
{
        static char text[SOURCE_MAX + 1], statement[8192];
        FILE *f = fopen(path, "re");
        unsigned sites = 0;
        size_t n;

        assert_non_null(f);
        n = fread(text, 1, SOURCE_MAX, f);
        assert_false(ferror(f));
        assert_true(feof(f)); /* the whole file */
        fclose(f);
        text[n] = '\0';
        for (const char *p = text, *end; (end = strchr(p, ';')); p = end + 1) {
                const char *ev, *open;
                size_t id;

                squeeze(p, (size_t)(end - p), statement, sizeof(statement));
                ev = strstr(statement, "\"auth.fail\",");
                if (!ev)
                        continue;
                /* Only a call of a record function: "…record(" or "…record_then_answer(" before it. */
                for (open = ev; open > statement && *open != '('; open--)
                        ;
                for (id = 0; open - id > statement &&
                             (isalnum((unsigned char)open[-id - 1]) || open[-id - 1] == '_');
                     id++)
                        ;
                if (!(id >= 6 && (strneq(open - 6, "record", 6) ||
                                  (id >= 18 && strneq(open - 18, "record_then_answer", 18)))))
                        continue;
                sites++;
                if (!strstr(statement, "\"reason\", auth_reason_to_string("))
                        fail_msg("%s: an auth.fail whose reason is not auth_reason_to_string(…) of the "
                                 "table: %.300s",
                                 path, statement);
        }
        return sites;
}

static void test_every_recorded_reason_is_in_the_table(void **state)
{
        static const char *const dirs[] = {"agent/mamorid", "agent/mamorictl", "auth", "common"};
        unsigned sites = 0;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                char dir[4096];
                DIR *d;
                struct dirent *de;

                snprintf(dir, sizeof(dir), "%s/%s", SOURCE_ROOT, dirs[i]);
                d = opendir(dir);
                assert_non_null(d);
                while ((de = readdir(d))) {
                        size_t len = strlen(de->d_name);
                        char path[8192];

                        if (len < 3 || !streq(de->d_name + len - 2, ".c"))
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                        sites += check_file(path);
                }
                closedir(d);
        }
        /* The walk found the login, PIN, password, group and biometric refusals (not nothing). */
        if (sites < 13) /* the 13 of November 2026 */
                fail_msg("only %u auth.fail sites found under %s: the walk is broken", sites, SOURCE_ROOT);
}

/* The names auditors and tests look for in auth.fail records resolve to their rows. */
static void test_recorded_names_resolve(void **state)
{
        static const char *const names[] = {
                "pin-wrong",         "pin-blocked",     "pin-format",        "pin-too-short",
                "pin-invalid",       "password-wrong",  "password-unset",    "not-group-member",
                "lending-suspected", "finger-no-match", "finger-unreadable", "vein-no-match",
                "vein-unreadable",   "bio-unavailable", "wrong-user",        "cancelled",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (auth_reason_from_string(names[i]) <= AUTH_ALLOW)
                        fail_msg("%s is recorded or answered but has no row in common/auth-reasons.c",
                                 names[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_complete),
                cmocka_unit_test(test_unique),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_known_rows),
                cmocka_unit_test(test_every_api_error_has_a_row),
                cmocka_unit_test(test_every_recorded_reason_is_in_the_table),
                cmocka_unit_test(test_recorded_names_resolve),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
