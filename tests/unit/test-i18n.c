/* Unit tests for the operator's language: which locale a LANG value selects, and that the ja catalogue
 * translates every refusal of the one reason table and the client's counted messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mamori/auth-reasons.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"

static void test_language_locale(void **state)
{
        static const struct {
                const char *value, *locale;
        } cases[] = {
                {"ja_JP.UTF-8", "ja_JP.UTF-8"},
                {"ja_JP.utf8", "ja_JP.UTF-8"},
                {"ja_JP.eucJP", "ja_JP.UTF-8"},
                {"ja", "ja_JP.UTF-8"},
                {"ja@x", "ja_JP.UTF-8"},
                {"C", "C"},
                {"C.UTF-8", "C"},
                {"POSIX", "C"},
                {"", "C"},
                {NULL, "C"},
                {"en_US.UTF-8", "C"},
                {"fr_FR.UTF-8", "C"},
                {"jaa_JP", "C"}, /* another language that starts with "ja" */
                {"j", "C"},
                {"JA_JP.UTF-8", "C"}, /* not a locale name glibc would take either */
                {"ja/../../tmp", "C"},
                {"../ja_JP", "C"},
                {"jajaja", "C"},
                {"ja JP", "C"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (!streq(i18n_language_locale(cases[i].value), cases[i].locale))
                        fail_msg("%s → %s, expected %s", cases[i].value ? cases[i].value : "(null)",
                                 i18n_language_locale(cases[i].value), cases[i].locale);
}

/* Japanese from the catalogue built in build/po, on C.UTF-8 with LANGUAGE (no ja locale needed). */
static int setup_japanese(void **state)
{
        I18nScope *scope = malloc(sizeof(*scope));

        assert_non_null(scope);
        assert_int_equal(setenv("MAMORI_LOCALEDIR", BUILD_PO_DIR, 1), 0);
        assert_int_equal(setenv("LANGUAGE", "ja", 1), 0);
        i18n_init();
        assert_int_equal(i18n_scope_enter("C.UTF-8", scope), 0);
        *state = scope;
        return 0;
}

static int teardown_japanese(void **state)
{
        i18n_scope_leave(*state);
        free(*state);
        unsetenv("LANGUAGE");
        return 0;
}

/* Every refusal an operator can read has its Japanese words, and they say what to do next. */
static void test_every_reason_is_translated(void **state)
{
        for (int r = AUTH_ALLOW + 1; r < _AUTH_REFUSAL_MAX; r++) {
                const char *words = auth_reason_to_words(r), *ja;

                if (!words)
                        continue; /* the gap after auth_decide()'s outcomes */
                ja = _(words);
                if (ja == words || streq(ja, words))
                        fail_msg("reason %s has no Japanese words in po/ja.po: \"%s\"",
                                 auth_reason_to_string(r), words);
                /* Japanese sentences, not a copy of the English with a dash. */
                if (!strstr(ja, "\xe3\x81") && !strstr(ja, "\xe3\x82") && !strstr(ja, "\xe3\x83"))
                        fail_msg("reason %s: \"%s\" is not Japanese", auth_reason_to_string(r), ja);
        }
        assert_string_equal(_("Card suspended — call your security manager"),
                            "このカードは利用停止中です。セキュリティ管理者に連絡してください");
}

static void test_plural_forms(void **state)
{
        char buf[128];

        for (int n = 0; n <= 3; n++) {
                char expected[128];

                snprintf(buf, sizeof(buf), P_("PIN wrong, %d try left", "PIN wrong, %d tries left", n), n);
                snprintf(expected, sizeof(expected), "暗証番号が違います（残り%d回）", n);
                assert_string_equal(buf, expected);
        }
}

/* Leaving the scope gives back the thread's own language: C, the English msgids. */
static void test_scope_leave_restores(void **state)
{
        I18nScope scope;

        assert_int_equal(i18n_scope_enter("C", &scope), 0);
        assert_string_equal(_("PIN wrong"), "PIN wrong");
        i18n_scope_leave(&scope);
        assert_string_equal(_("PIN wrong"), "暗証番号が違います");
        /* A locale that is not installed: English for the scope, and said so. */
        assert_int_equal(i18n_scope_enter("xx_YY.UTF-8", &scope), -ENOENT);
        assert_string_equal(_("PIN wrong"), "PIN wrong");
        i18n_scope_leave(&scope);
        i18n_scope_leave(&scope); /* idempotent */
        assert_string_equal(_("PIN wrong"), "暗証番号が違います");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_language_locale),
                cmocka_unit_test_setup_teardown(test_every_reason_is_translated, setup_japanese,
                                                teardown_japanese),
                cmocka_unit_test_setup_teardown(test_plural_forms, setup_japanese, teardown_japanese),
                cmocka_unit_test_setup_teardown(test_scope_leave_restores, setup_japanese,
                                                teardown_japanese),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
