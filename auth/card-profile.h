/* Card profiles: one small table entry per card application (PIV now, JPKI later). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Card Card;

enum card_key_type {
        CARD_KEY_P256,
        CARD_KEY_P384,
        CARD_KEY_RSA2048,
};

/* Modelled on OpenSSH's Authmethod table: callers go through card.c, which dispatches here;
 * adding a profile adds an entry, not a caller change. All functions follow the CARD_E_* error
 * convention of mamori/card.h. */
struct card_profile {
        const char *name;
        const uint8_t *aid;
        size_t aid_len;
        unsigned pin_min, pin_max; /* PIN length in digits */

        int (*select)(Card *c);
        int (*read_certificate)(Card *c, uint8_t **ret_der, size_t *ret_der_len);
        int (*pin_tries)(Card *c, unsigned *ret_tries);
        int (*verify_pin)(Card *c, const char *pin);
        int (*change_pin)(Card *c, const char *old_pin, const char *new_pin);
        /* Signs a digest (SHA-256 for P-256 and RSA-2048, SHA-384 for P-384) with the
         * authentication key; *ret_sig is malloc'ed, in the encoding EVP verification expects
         * (DER ECDSA-Sig-Value, raw RSA signature). */
        int (*sign)(Card *c, enum card_key_type type, const uint8_t *digest, size_t digest_len,
                    uint8_t **ret_sig, size_t *ret_sig_len);
};

extern const struct card_profile card_profile_piv;

/* NULL or "" gives the default (piv). NULL if unknown. */
const struct card_profile *card_profile_find(const char *name);
