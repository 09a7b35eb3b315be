/* The one table of refusal reasons: name ↔ D-Bus error ↔ operator words (see mamori/auth-reasons.h). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"

static const struct {
        const char *name;       /* auth.fail's reason, the D-Bus error message */
        const char *dbus_error; /* what mamorid answers */
        const char *words;      /* what the operator reads: what happened, what to do next (English
                                 * msgid: clients show _(words), po/ holds the translations) */
} reasons[_AUTH_REFUSAL_MAX] = {
        [AUTH_ALLOW] = {"allow", NULL, NULL},
        [AUTH_NO_CARD] = {"no-card", MAMORI_ERROR_NO_CARD, N_("Insert your operator card")},
        [AUTH_UNKNOWN_CARD] = {"unknown-card", MAMORI_ERROR_UNKNOWN_CARD,
                               N_("This card is not registered — call your security manager")},
        [AUTH_CARD_SUSPENDED] = {"card-suspended", MAMORI_ERROR_CARD_SUSPENDED,
                                 N_("Card suspended — call your security manager")},
        [AUTH_CARD_RETURNED] =
                {"card-returned", MAMORI_ERROR_CARD_RETURNED,
                 N_("This card was returned and is no longer valid — call your security manager")},
        [AUTH_OPERATOR_SUSPENDED] = {"operator-suspended", MAMORI_ERROR_OPERATOR_SUSPENDED,
                                     N_("Operator suspended — call your security manager")},
        [AUTH_OPERATOR_RETIRED] = {"operator-retired", MAMORI_ERROR_OPERATOR_RETIRED,
                                   N_("This operator is no longer registered — call your security manager")},
        [AUTH_WRONG_OFFICE] = {"wrong-office", MAMORI_ERROR_WRONG_OFFICE,
                               N_("This card is not allowed at this office — call your security manager")},
        [AUTH_CERT_UNTRUSTED] = {"cert-untrusted", MAMORI_ERROR_CERT_UNTRUSTED,
                                 N_("Card certificate not trusted — call your security manager")},
        [AUTH_CERT_EXPIRED] = {"cert-expired", MAMORI_ERROR_CERT_EXPIRED,
                               N_("Certificate expired — call your security manager")},
        [AUTH_PIN_WRONG] = {"pin-wrong", MAMORI_ERROR_PIN_WRONG,
                            N_("PIN wrong")}, /* the client adds the tries */
        [AUTH_PIN_BLOCKED] = {"pin-blocked", MAMORI_ERROR_PIN_BLOCKED,
                              N_("PIN blocked — call your security manager")},
        [AUTH_SIGNATURE_INVALID] = {"signature-invalid", MAMORI_ERROR_SIGNATURE_INVALID,
                                    N_("The card failed its identity check — call your security manager")},
        [AUTH_POLICY_STALE] =
                {"policy-stale", MAMORI_ERROR_POLICY_STALE,
                 N_("Access policy out of date — logins are suspended; call your system administrator")},
        [AUTH_EMERGENCY] = {"emergency", MAMORI_ERROR_EMERGENCY,
                            N_("Emergency lock in force — logins are suspended until your system "
                               "administrator lifts it")},
        [AUTH_CARD_ERROR] = {"card-error", MAMORI_ERROR_CARD_ERROR,
                             N_("Card could not be read — reinsert it")},

        [AUTH_WRONG_USER] = {"wrong-user", MAMORI_ERROR_WRONG_USER,
                             N_("This card belongs to another operator — log in with your own card")},
        [AUTH_LOG_UNWRITABLE] =
                {"log-unwritable", MAMORI_ERROR_LOG_UNWRITABLE,
                 N_("The operation log cannot be written — logins are suspended; call your system "
                    "administrator")},
        [AUTH_BUSY] = {"busy", MAMORI_ERROR_BUSY,
                       N_("Another login or session is in progress — remove your card and insert it again")},
        [AUTH_NOT_PENDING] = {"not-pending", MAMORI_ERROR_NOT_PENDING,
                              N_("The login was cancelled — try again")},
        [AUTH_NOT_ACTIVE] = {"not-active", MAMORI_ERROR_NOT_ACTIVE,
                             N_("No operator is logged in — log in with your card first")},
        [AUTH_PERMISSION_DENIED] = {"permission-denied", MAMORI_ERROR_PERMISSION,
                                    N_("Not allowed for this user — ask your system administrator")},
        [AUTH_INVALID_ARGUMENT] =
                {"invalid-argument", MAMORI_ERROR_INVALID,
                 N_("The request was refused as invalid — check what was typed and try again")},
        [AUTH_PIN_FORMAT] = {"pin-format", MAMORI_ERROR_PIN_FORMAT,
                             N_("The PIN is 6 to 8 digits — type it again")},
        [AUTH_LOG_DAMAGED] = {"log-damaged", MAMORI_ERROR_LOG_DAMAGED,
                              N_("The operation log is damaged — logins are suspended; call your system "
                                 "administrator")},
        [AUTH_TERMINAL_UNCONFIGURED] = {"terminal-unconfigured", MAMORI_ERROR_TERMINAL_UNCONFIGURED,
                                        N_("This terminal is not enrolled yet — logins are suspended; call "
                                           "your system administrator")},
        [AUTH_NOT_GROUP_MEMBER] =
                {"not-group-member", MAMORI_ERROR_NOT_GROUP_MEMBER,
                 N_("This operator is not a member of this card's group — use your own card "
                    "or call your security manager")},
        [AUTH_PASSWORD_WRONG] =
                {"password-wrong", MAMORI_ERROR_PASSWORD_WRONG,
                 N_("Password wrong — type it again (each wrong try makes the next answer wait "
                    "longer)")},
        [AUTH_PASSWORD_UNSET] =
                {"password-unset", MAMORI_ERROR_PASSWORD_UNSET,
                 N_("No password is set for this operator on this terminal — log in with your "
                    "own card and set one with mamorictl passwd --password")},
        [AUTH_FINGER_NO_MATCH] = {"finger-no-match", MAMORI_ERROR_FINGER_NO_MATCH,
                                  N_("Finger not recognised — touch the sensor again, or use your card")},
        [AUTH_FINGER_UNREADABLE] = {"finger-unreadable", MAMORI_ERROR_FINGER_UNREADABLE,
                                    N_("The sensor could not read your finger — clean it and try again")},
        [AUTH_BIO_UNAVAILABLE] = {"bio-unavailable", MAMORI_ERROR_BIO_UNAVAILABLE,
                                  N_("The fingerprint or vein reader is not available — use your card, or "
                                     "call your system administrator")},
        [AUTH_LENDING_SUSPECTED] = {"lending-suspected", MAMORI_ERROR_LENDING_SUSPECTED,
                                    N_("The finger is not the card holder's — cards are personal; use "
                                       "your own card")},
        [AUTH_PASSWORD_TOO_SHORT] = {"password-too-short", MAMORI_ERROR_PASSWORD_TOO_SHORT,
                                     N_("The new password is too short — choose a longer one")},
        [AUTH_VEIN_NO_MATCH] = {"vein-no-match", MAMORI_ERROR_VEIN_NO_MATCH,
                                N_("Hand not recognised — place your hand on the vein reader again, or use "
                                   "your card")},
        [AUTH_VEIN_UNREADABLE] = {"vein-unreadable", MAMORI_ERROR_VEIN_UNREADABLE,
                                  N_("The vein reader could not read your hand — hold it flat and still, "
                                     "and try again")},
        [AUTH_CANCELLED] = {"cancelled", MAMORI_ERROR_CANCELLED,
                            N_("The login was stopped before it finished — start it again")},
        [AUTH_PIN_TOO_SHORT] = {"pin-too-short", MAMORI_ERROR_PIN_TOO_SHORT,
                                N_("The new PIN is too short — choose a longer one")}, /* client adds min */
        [AUTH_PIN_INVALID] = {"pin-invalid", MAMORI_ERROR_PIN_INVALID,
                              N_("The card refused the new PIN — use 6 to 8 digits and try again")},
};

/* _AUTH_REASON_MAX is a gap in the enum: its row is empty, like any value that is not a reason. */
static bool is_reason(enum auth_reason r)
{
        return (unsigned)r < ELEMENTSOF(reasons) && reasons[r].name;
}

const char *auth_reason_to_string(enum auth_reason r)
{
        return is_reason(r) ? reasons[r].name : reasons[AUTH_CARD_ERROR].name;
}

const char *auth_reason_to_dbus_error(enum auth_reason r)
{
        return is_reason(r) ? reasons[r].dbus_error : NULL;
}

const char *auth_reason_to_words(enum auth_reason r)
{
        return is_reason(r) ? reasons[r].words : NULL;
}

int auth_reason_from_string(const char *s)
{
        if (s)
                for (size_t i = 0; i < ELEMENTSOF(reasons); i++)
                        if (reasons[i].name && streq(s, reasons[i].name))
                                return (int)i;
        return -EINVAL;
}

int auth_reason_from_dbus_error(const char *name)
{
        if (name)
                for (size_t i = 0; i < ELEMENTSOF(reasons); i++)
                        if (reasons[i].dbus_error && streq(name, reasons[i].dbus_error))
                                return (int)i;
        return -EINVAL;
}
