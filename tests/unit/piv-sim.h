/* A software PIV card behind a card transport, for the unit tests of the card layer and the login engine. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/card.h"

struct sim {
        EVP_PKEY *key;
        uint8_t *der;
        size_t der_len;
        uint8_t obj[8192];
        size_t obj_len;
        char pin[9];
        int tries, max_tries;
        bool verified;
        uint8_t pending[8192];
        size_t pending_len, pending_off;
        uint8_t chain[1024];
        size_t chain_len;
        size_t chunk; /* max data bytes per response */
        bool corrupt_sig;
        bool select_61; /* answer SELECT with 61 xx only, as a T=0 card does */
        bool wrong_le_once;
        unsigned exchanges;
};

/* kind: "P-256", "P-384", "rsa" or "ed25519". */
EVP_PKEY *gen_key(const char *kind);
/* A self-signed certificate (CN OP0001, serial 7, valid for a year) of key; OPENSSL_free() it. */
uint8_t *make_cert(EVP_PKEY *key, size_t *ret_len);
/* The PIV certificate object 53 { 70 cert, 71 info, FE }. */
size_t build_obj(uint8_t *out, size_t cap, const uint8_t *cert, size_t n, uint8_t info);
/* A card of that kind, PIN 123456, 3 tries. */
void sim_init(struct sim *s, const char *kind);
void sim_done(struct sim *s);
int sim_transmit(void *ud, const uint8_t *c, size_t clen, uint8_t *r, size_t *rlen);
/* A Card on s through t (t must outlive it). */
Card *sim_card(struct sim *s, struct card_transport *t);
