/* The table of card profiles; card_new() looks a profile up here by name. */
#include <string.h>

#include "card-profile.h"
#include "mamori/macro.h"

static const struct card_profile *const card_profiles[] = {
        &card_profile_piv,
        /* &card_profile_jpki, (JPKI user-authentication AP, RSA-2048, 4-digit PIN) — later */
};

const struct card_profile *card_profile_find(const char *name)
{
        if (!name || !*name)
                return card_profiles[0];
        for (size_t i = 0; i < ELEMENTSOF(card_profiles); i++)
                if (streq(card_profiles[i]->name, name))
                        return card_profiles[i];
        return NULL;
}
