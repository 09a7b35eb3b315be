/* The card-login decision (DESIGN.md §3): facts about card, PIN and policy in, allow or a named refusal out.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mamori/agent-config.h"
#include "mamori/auth-reasons.h"
#include "mamori/policy.h"

/* What the login learnt about the card. Steps not taken yet are AUTH_STEP_NOT_DONE. */
#define AUTH_STEP_NOT_DONE 1

struct auth_card_facts {
        bool card_present;
        int card_error;      /* < 0 when select or certificate read failed (CARD_E_*) */
        const char *card_id; /* hex SHA-256 of the certificate, when read */
        int cert_result;     /* CERT_CHECK_* from cert_check_verify(), or < 0 if it could not run */
        int pin_result;  /* 0 verified, CARD_E_PIN_WRONG, CARD_E_PIN_BLOCKED, other CARD_E_*, or NOT_DONE */
        int tries_left;  /* with CARD_E_PIN_WRONG: tries the card reported, -1 unknown */
        int auth_result; /* 0 signature verified, CARD_E_SIG_INVALID, other CARD_E_*, or NOT_DONE */
};

struct auth_context {
        const Policy *policy;    /* NULL when no valid bundle was ever loaded */
        const char *terminal_id; /* [Terminal] Id */
        const char *office;      /* [Terminal] Office, used when the bundle does not list the terminal */
        int64_t now_usec;
        enum stale_policy stale_policy;
};

struct auth_decision {
        enum auth_reason reason;
        int tries_left;          /* for AUTH_PIN_WRONG, else -1 */
        const char *operator_id; /* individual card: its operator (borrowed from the policy) */
        const char *group_id;    /* group card: its group; a member must still identify */
        bool policy_stale;       /* allowed under StalePolicy=warn with a stale bundle */
};

/* Everything that can be decided before the PIN goes to the card: policy, emergency, certificate,
 * card and operator status, office. AUTH_ALLOW here means "go on and verify the PIN". Checking
 * this first spares a PIN try on a card that would be refused anyway. */
struct auth_decision auth_decide_precheck(const struct auth_card_facts *f, const struct auth_context *c);

/* An open session of card_id for operator_id, checked again against a newly loaded bundle: AUTH_ALLOW
 * while that card and operator may still work at this terminal, else what a login would now be
 * refused for (card-suspended, card-returned, unknown-card, operator-suspended, operator-retired,
 * wrong-office, emergency, policy-stale; for a group card also not-group-member). The certificate
 * was checked at login and is not here. The same question decides whether the member named after a
 * group card's PIN may log in with it. */
enum auth_reason auth_decide_session(const struct auth_context *c, const char *card_id,
                                     const char *operator_id);

/* Without a card of their own (finger+password, a group card's member): may operator_id log in at
 * this terminal now? Policy present, no emergency, not stale (or StalePolicy=warn: *ret_stale set),
 * operator known, active and allowed at this office. operator_id NULL: the terminal-wide checks
 * only. An operator the bundle does not know is operator-retired. */
enum auth_reason auth_decide_operator(const struct auth_context *c, const char *operator_id,
                                      bool *ret_stale);

/* The whole decision: precheck, then PIN, then the challenge signature. A step still NOT_DONE
 * refuses (as card-error), so a caller cannot allow by forgetting a step. */
struct auth_decision auth_decide(const struct auth_card_facts *f, const struct auth_context *c);
