/* Private to the card layer: the Card object and the APDU exchange engine used by the profiles. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/card.h"
#include "card-profile.h"

struct Card {
        const struct card_transport *transport;
        const struct card_profile *profile;
        unsigned exchanges;
        int tries_left; /* from the last 63 Cx, -1 if none */
};

/* Sends one command and assembles the response.
 * - 61 xx: GET RESPONSE rounds appending to out, bounded by out_cap (≤ APDU_MAX_ASSEMBLED) and
 *   APDU_MAX_ROUNDS; with out == NULL the card's extra data is not wanted and 61 xx counts as
 *   90 00 without fetching it (saves an exchange, e.g. on SELECT).
 * - 6C xx: the command is sent once more with Le = xx.
 * Returns 0 with the final status word in *ret_sw and the data length in *ret_len (either may be
 * NULL), or a transport error / CARD_E_TOO_BIG / CARD_E_MALFORMED (response shorter than SW). */
int card_transceive(Card *c, const uint8_t *capdu, size_t clen, uint8_t *out, size_t out_cap,
                    size_t *ret_len, uint16_t *ret_sw);
