/* The virtual card's PIV application (SP 800-73-4 subset of DESIGN.md §3): C-APDU bytes in, R-APDU bytes
 * out. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* Longest R-APDU the applet produces: 256 data bytes + SW1 SW2 (short APDUs only). */
#define PIV_RAPDU_MAX 258
/* Longest ATR the applet answers with (ISO 7816-3 allows 33). */
#define PIV_ATR_MAX 33

#define PIV_PIN_MIN_LEN 6
#define PIV_PIN_MAX_LEN 8
#define PIV_TRIES_MAX   15

typedef struct PivApplet PivApplet;

/* Creates an applet holding the PIV Authentication key (slot 9A) and its certificate.
 * key: an EC P-256, EC P-384 or RSA-2048 private key; the applet takes a new reference.
 * cert_der: the DER certificate, copied. pin: 6–8 ASCII digits. max_tries: 1..15.
 * Returns 0 or -EINVAL (bad key type, bad PIN, bad size) / -ENOMEM. */
int piv_applet_new(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len, const char *pin,
                   unsigned max_tries, PivApplet **ret);
PivApplet *piv_applet_free(PivApplet *a);

/* Power off, warm reset, card pulled: forgets the PIN-verified state, pending response data and
 * an unfinished command chain. The PIN retry counter and the PIN survive (they are card memory). */
void piv_applet_reset(PivApplet *a);

/* The card's ATR; *ret_atr points into the applet. */
size_t piv_applet_atr(const PivApplet *a, const uint8_t **ret_atr);

/* Processes one C-APDU and writes the R-APDU (data + SW1 SW2) to rapdu, which must hold
 * PIV_RAPDU_MAX bytes. Every malformed input yields a status word, never an error; returns the
 * R-APDU length (>= 2). */
size_t piv_applet_process(PivApplet *a, const uint8_t *capdu, size_t capdu_len, uint8_t *rapdu);

/* Introspection for tests and tracing. */
unsigned piv_applet_tries_left(const PivApplet *a);
int piv_applet_verified(const PivApplet *a);
