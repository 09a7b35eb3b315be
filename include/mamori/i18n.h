/* Operator-facing words through gettext: _()/N_()/P_() in the text domain "mamori" (common/i18n.c). */
#pragma once

/*
 * Every sentence an operator or a counter clerk reads is written in English inside _("…") (or N_()
 * in a table, translated where it is shown) and translated through the catalogues in po/. Logs,
 * records and D-Bus error messages stay English: they are for administrators and programs.
 *
 * Which language: mamorictl follows its own locale (LC_ALL, LC_MESSAGES, LANG, LANGUAGE, as every
 * gettext program). pam_mamori.so lives in someone else's process and does not touch that
 * process's locale: for each PAM call it picks the language from the PAM environment (then the
 * process environment), see i18n_language_locale(), and switches only its own thread's messages
 * with uselocale() for the time of the call (I18nScope).
 */

#include <libintl.h>
#include <locale.h>

#define MAMORI_TEXTDOMAIN "mamori"

#define _(s)        dgettext(MAMORI_TEXTDOMAIN, s)
#define N_(s)       s
#define P_(s, p, n) dngettext(MAMORI_TEXTDOMAIN, s, p, (unsigned long)(n))

/* Binds the domain to the installed catalogues (LOCALEDIR of the build, or $MAMORI_LOCALEDIR for
 * tests — read with secure_getenv, so never in a setuid or setgid process) with UTF-8 output.
 * Cheap and idempotent: call it before the first _(). */
void i18n_init(void);

/* The locale that gives mamori's messages in the language a locale value asks for: "ja_JP.UTF-8"
 * for "ja_JP.UTF-8", "ja_JP.eucJP", "ja" …; "C" (English, the msgids) for "C", "POSIX", "", NULL,
 * a language without a catalogue, or anything that is not a well-formed locale name. */
const char *i18n_language_locale(const char *value);

/* This thread's message language for the time of a scope; the rest of the process is untouched. */
typedef struct I18nScope {
        locale_t previous; /* (locale_t)0: nothing to restore */
        locale_t ours;
} I18nScope;

/* Switches this thread's LC_MESSAGES to locale_name (from i18n_language_locale()). -ENOENT when that
 * locale is not installed (the scope then gives English, and is still ended with i18n_scope_leave),
 * -errno on other failures (nothing switched). */
int i18n_scope_enter(const char *locale_name, I18nScope *scope);
void i18n_scope_leave(I18nScope *scope);
