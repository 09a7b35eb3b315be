/* gettext set-up and the per-thread message language of pam_mamori.so (see mamori/i18n.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/i18n.h"
#include "mamori/macro.h"

#ifndef MAMORI_LOCALEDIR
#error "MAMORI_LOCALEDIR must be defined by the build"
#endif

/* The languages po/ ships a catalogue for, and the locale that selects it. English is the msgids. */
static const struct {
        const char *language; /* ISO 639 code as it starts a locale name */
        const char *locale;
} catalogues[] = {
        {"ja", "ja_JP.UTF-8"},
};

void i18n_init(void)
{
        const char *dir = secure_getenv("MAMORI_LOCALEDIR");

        (void)bindtextdomain(MAMORI_TEXTDOMAIN, dir && dir[0] == '/' ? dir : MAMORI_LOCALEDIR);
        (void)bind_textdomain_codeset(MAMORI_TEXTDOMAIN, "UTF-8");
}

const char *i18n_language_locale(const char *value)
{
        size_t n;

        if (!value)
                return "C";
        /* language[_territory][.codeset][@modifier]; only the language matters, and it must be 2–3
         * lower-case letters followed by the end or a separator (no path, no "..", no junk). */
        n = strspn(value, "abcdefghijklmnopqrstuvwxyz");
        if (n < 2 || n > 3 || (value[n] != '\0' && !strchr("_.@", value[n])))
                return "C";
        for (size_t i = 0; i < ELEMENTSOF(catalogues); i++)
                if (strlen(catalogues[i].language) == n && strneq(value, catalogues[i].language, n))
                        return catalogues[i].locale;
        return "C";
}

int i18n_scope_enter(const char *locale_name, I18nScope *scope)
{
        locale_t l;
        int r = 0;

        *scope = (I18nScope){};
        l = newlocale(LC_MESSAGES_MASK, locale_name, (locale_t)0);
        if (!l) {
                r = errno == ENOENT ? -ENOENT : -(errno ? errno : EINVAL);
                if (r != -ENOENT)
                        return r;
                /* Not installed: English, whatever the host process runs in. */
                l = newlocale(LC_MESSAGES_MASK, "C", (locale_t)0);
                if (!l)
                        return -errno;
        }
        scope->ours = l;
        scope->previous = uselocale(l);
        if (scope->previous == (locale_t)0) {
                freelocale(l);
                *scope = (I18nScope){};
                return -EINVAL;
        }
        return r;
}

void i18n_scope_leave(I18nScope *scope)
{
        if (!scope || !scope->ours)
                return;
        (void)uselocale(scope->previous);
        freelocale(scope->ours);
        *scope = (I18nScope){};
}
