/* The one card-login engine (DESIGN.md §3), driven by mamorid's card thread and by mamorictl auth-test. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/auth-decision.h"
#include "mamori/card.h"
#include "mamori/cert-check.h"

/*
 * A login goes through these steps, in this order; the engine refuses to skip one:
 *
 *   1. certificate: known already (mamorid reads it when the card is inserted,
 *      card_login_set_card()) or, at card_login_prepare(), from the cache or the card;
 *   2. card_login_prepare(): everything on the card that needs no PIN (SELECT, certificate);
 *      mamorid runs it while the operator is still typing;
 *   3. card_login_precheck(): certificate check and the policy decision before the PIN;
 *   4. card_login_verify(): VERIFY PIN and the challenge signature, only after a precheck that
 *      allowed (a refused card never costs a PIN try);
 *   5. card_login_decide(): auth_decide() over everything learnt.
 *
 * Steps 2 and 3 may come in either order (mamorid decides before touching the card; auth-test
 * reads the certificate first). The engine itself never logs and never touches PC/SC: the caller
 * owns the transport (and the PC/SC transaction around steps 2–4) and resets the card after a
 * PIN was sent. Not thread-safe: one thread at a time, handed over with the object.
 */
typedef struct CardLogin CardLogin;

int card_login_new(CardLogin **ret);
CardLogin *card_login_free(CardLogin *l);
static inline void card_login_freep(CardLogin **l)
{
        if (*l)
                card_login_free(*l);
}

/* What the caller already knows about the card, before any exchange: present or not, why its
 * certificate could not be read (read_error < 0), or the certificate (copied; card id computed). */
int card_login_set_card(CardLogin *l, bool present, int read_error, const uint8_t *der, size_t der_len);

/* Step 2 over transport (borrowed until card_login_detach()): SELECT, then, unless the
 * certificate is known, the certificate from cache_dir (one GET DATA for its head) or the card.
 * Returns 0, or the CARD_E_* of the failing exchange (also kept as the card-error fact, so the
 * precheck refuses), or -ENOMEM. */
int card_login_prepare(CardLogin *l, const struct card_transport *transport, const char *cache_dir);

/* The certificate was checked by the caller (mamorid checks through its own TrustAnchors= hook):
 * CERT_CHECK_* or < 0. Used by card_login_precheck()/card_login_decide() called with anchors NULL. */
void card_login_set_cert_result(CardLogin *l, int cert_result);

/* Step 3: checks the certificate against anchors (NULL: the result given to
 * card_login_set_cert_result(), else untrusted), then
 * auth_decide_precheck(). Allowing here is what lets card_login_verify() send the PIN. A
 * certificate read from the card that chains to anchors is stored in the cache of step 2. */
struct auth_decision card_login_precheck(CardLogin *l, CertCheck *anchors, const struct auth_context *c);

/* Step 4: VERIFY PIN, then (if it verified) the challenge-response. Returns the first failure
 * (CARD_E_BAD_PIN before any exchange, CARD_E_PIN_WRONG, CARD_E_SIG_INVALID, …), -EPERM without an
 * allowing precheck, the prepare error after a failed prepare, or 0. The facts keep the outcome
 * for card_login_decide(). The PIN is borrowed; the caller wipes it. */
int card_login_verify(CardLogin *l, const char *pin);

/* Forgets the transport (before the caller closes it). The facts and counters stay. */
void card_login_detach(CardLogin *l);

/* Step 5: the whole decision with c as it is now (a card suspended while the PIN was typed
 * loses). With anchors, the certificate is checked again at c->now_usec. */
struct auth_decision card_login_decide(CardLogin *l, CertCheck *anchors, const struct auth_context *c);

struct card_login_info {
        char card_id[CARD_ID_LEN + 1]; /* "" while the certificate is unknown */
        int card_error;                /* the CARD_E_* behind a card-error refusal, else 0 */
        const char *failed_step;       /* "select", "certificate", "pin", "authenticate" or NULL */
        unsigned exchanges;            /* APDUs sent in this login */
        unsigned exchanges_after_pin;  /* of those, from VERIFY PIN on: the critical path */
        int tries_left;                /* after pin-wrong, -1 if unknown */
        bool cert_from_cache;
        bool pin_sent; /* a PIN went to the card: the caller must reset it */
};

const struct card_login_info *card_login_info(const CardLogin *l);
