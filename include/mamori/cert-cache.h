/* Certificate cache by card id: one GET DATA identifies a known card instead of a full read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/card.h"

/*
 * Certificate cache, keyed by card id. Layout of the directory:
 *   <card id>.der      the DER certificate (its SHA-256 is the file name: checked on every read)
 *   <head hash>.head   the card id whose certificate object starts with these bytes
 * The "head" is the data of the first response to GET DATA (the first ≤ 256 bytes of the
 * certificate object, which hold the issuer and the serial number): one exchange identifies
 * the card instead of the 3–5 a full read costs. The cache only saves the read: the cached
 * certificate is checked against TrustAnchors= and the card's signature over a fresh challenge
 * is verified with its key on every login, so a card that fakes a head is refused
 * (signature-invalid), never let in.
 */
#define CERT_CACHE_HEAD_MAX 256u

/* Finds the certificate whose object starts with head. 0 with *ret_der (malloc'ed) and ret_id,
 * -ENOENT on a miss (also when an entry is damaged: the caller reads the card and overwrites). */
int cert_cache_lookup(const char *dir, const uint8_t *head, size_t head_len, uint8_t **ret_der,
                      size_t *ret_der_len, char ret_id[CARD_ID_LEN + 1]);
/* Stores der under its card id and head → card id; files written by rename, mode 0644. The
 * directory is created (0755) when missing. */
int cert_cache_store(const char *dir, const uint8_t *head, size_t head_len, const uint8_t *der,
                     size_t der_len);
