/* The card-login decision (DESIGN.md §3): facts about card, PIN and policy in, allow or a named refusal out.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mamori/agent-config.h"
#include "mamori/policy.h"

/* The closed set of outcomes. Their strings are what auth.fail records and operators see. */
enum auth_reason {
        AUTH_ALLOW = 0,
        AUTH_NO_CARD,            /* "no-card" */
        AUTH_UNKNOWN_CARD,       /* "unknown-card": not in the policy bundle */
        AUTH_CARD_SUSPENDED,     /* "card-suspended": lost, 資格停止 */
        AUTH_CARD_RETURNED,      /* "card-returned" */
        AUTH_OPERATOR_SUSPENDED, /* "operator-suspended" */
        AUTH_OPERATOR_RETIRED,   /* "operator-retired" */
        AUTH_WRONG_OFFICE,       /* "wrong-office": not allowed at this terminal's office */
        AUTH_CERT_UNTRUSTED,     /* "cert-untrusted": no chain to TrustAnchors=, bad keyUsage, malformed */
        AUTH_CERT_EXPIRED,       /* "cert-expired": outside the validity period */
        AUTH_PIN_WRONG,          /* "pin-wrong": tries_left says how many remain */
        AUTH_PIN_BLOCKED,        /* "pin-blocked" */
        AUTH_SIGNATURE_INVALID,  /* "signature-invalid": the card does not hold the certificate's key */
        AUTH_POLICY_STALE,       /* "policy-stale": no bundle, or past expires with StalePolicy=deny */
        AUTH_EMERGENCY,          /* "emergency": emergency lock in force */
        AUTH_CARD_ERROR,         /* "card-error": the card or reader failed or answered garbage */
        _AUTH_REASON_MAX,
};

const char *auth_reason_to_string(enum auth_reason r);

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

/* The whole decision: precheck, then PIN, then the challenge signature. A step still NOT_DONE
 * refuses (as card-error), so a caller cannot allow by forgetting a step. */
struct auth_decision auth_decide(const struct auth_card_facts *f, const struct auth_context *c);
