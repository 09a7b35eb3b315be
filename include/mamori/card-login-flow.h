/* The whole card login on one reader (DESIGN.md §3): certificate (or cache), checks, precheck, PIN,
 * signature, decision. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <PCSC/winscard.h>

#include "mamori/auth-decision.h"
#include "mamori/card.h"
#include "mamori/cert-check.h"

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

struct card_login_request {
        SCARDCONTEXT ctx;
        const char *reader;    /* NULL when no reader has a card: the decision is then no-card */
        const char *pin;       /* borrowed; the caller wipes it */
        CertCheck *anchors;    /* TrustAnchors= */
        const char *cache_dir; /* NULL: always read the certificate from the card */
        const struct auth_context *auth;
};

struct card_login_result {
        struct auth_decision decision; /* operator_id/group_id borrow from auth->policy */
        char card_id[CARD_ID_LEN + 1]; /* "" when the certificate could not be read */
        int card_error;                /* the CARD_E_* behind a card-error refusal, else 0 */
        const char *failed_step;       /* "connect", "select", "certificate", "pin", "authenticate" */
        unsigned exchanges;            /* APDUs sent to the card */
        bool cert_from_cache;
        bool pin_sent; /* false when the precheck refused: no PIN try was spent */
};

/*
 * Connects (shared), then inside one PC/SC transaction: select, certificate (cache or card),
 * card id, certificate check, auth_decide_precheck(), and only if that allows: VERIFY PIN and
 * the challenge-response, then auth_decide(). Disconnects with a reset so the PIN-verified state
 * does not outlive the login. Returns 0 with *ret filled, or -ENOMEM, CARD_E_NO_SERVICE when
 * pcscd is gone (no decision can be made).
 */
int card_login_flow(const struct card_login_request *req, struct card_login_result *ret);
