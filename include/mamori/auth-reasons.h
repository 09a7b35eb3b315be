/* The refusal reasons of mamori, shared by mamorid, pam_mamori.so and mamorictl (table:
 * common/auth-reasons.c).
 */
#pragma once

/*
 * Each reason has one row: its name (what auth.fail records and the D-Bus error message starts
 * with), its D-Bus error (include/mamori/dbus-api.h) and the words an operator at the counter
 * reads, which say what to do next. No OpenSSL, no logging: this is linked into pam_mamori.so.
 */

/* The closed set of outcomes of a login. */
enum auth_reason {
        AUTH_ALLOW = 0,

        /* What auth_decide() answers (auth/auth-decision.c). */
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
        _AUTH_REASON_MAX,        /* end of auth_decide()'s outcomes; itself not a reason */

        /* What mamorid refuses on its own, around the decision: refusals of the call, not the card. */
        AUTH_WRONG_USER,        /* "wrong-user": Accounts=per-operator, PAM user ≠ card's operator */
        AUTH_LOG_UNWRITABLE,    /* "log-unwritable": fail closed, nothing granted off the record */
        AUTH_BUSY,              /* "busy": another login or PIN check is in progress */
        AUTH_NOT_PENDING,       /* "not-pending": AnswerPin/CancelLogin without our StartLogin */
        AUTH_NOT_ACTIVE,        /* "not-active": no operator is logged in */
        AUTH_PERMISSION_DENIED, /* "permission-denied": this caller may not call this method */
        AUTH_INVALID_ARGUMENT,  /* "invalid-argument" */
        AUTH_PIN_FORMAT,  /* "pin-format": not 6-8 digits; never sent to the card, login stays pending */
        AUTH_LOG_DAMAGED, /* "log-damaged": the log's last records do not verify; nothing is built on them */
        AUTH_TERMINAL_UNCONFIGURED, /* "terminal-unconfigured": no [Terminal] Id yet, nothing is recorded */
        /* Fingerprint (DESIGN §4). */
        AUTH_FINGER_NO_MATCH,   /* "finger-no-match": the touch matched no print that may log in here */
        AUTH_FINGER_UNREADABLE, /* "finger-unreadable": no usable touch after the sensor's retries */
        AUTH_BIO_UNAVAILABLE,   /* "bio-unavailable": no sensor (or vein reader), or it went away during the
                                   scan */
        AUTH_LENDING_SUSPECTED, /* "lending-suspected": card of one operator, finger of another */
        AUTH_NOT_GROUP_MEMBER, /* "not-group-member": the operator named after a group card is not its member
                                */
        AUTH_PASSWORD_WRONG,   /* "password-wrong": the login still waits; answered after a growing delay */
        AUTH_PASSWORD_UNSET,   /* "password-unset": the operator has no password on this terminal */
        AUTH_PASSWORD_TOO_SHORT, /* "password-too-short": a new password under [Secrets] MinLength */
        /* Vein (DESIGN §4, a plugin of auth/bio-plugin.h). */
        AUTH_VEIN_NO_MATCH,   /* "vein-no-match": the hand matched no template that may log in here */
        AUTH_VEIN_UNREADABLE, /* "vein-unreadable": the reader took no usable capture */
        /* Ends of a login or a PIN change that are not about the card or the operator. */
        AUTH_CANCELLED,     /* "cancelled": CancelLogin, a lock or the agent stopping ended the login */
        AUTH_PIN_TOO_SHORT, /* "pin-too-short": a new PIN under [Secrets] MinLength, never sent to the card
                             */
        AUTH_PIN_INVALID,   /* "pin-invalid": the card refused the new PIN's format */
        _AUTH_REFUSAL_MAX,
};

/* "card-suspended"; "allow" for AUTH_ALLOW; "card-error" for a value that is not a reason. */
const char *auth_reason_to_string(enum auth_reason r);

/* org.mamori.Agent1.Error.CardSuspended; NULL for AUTH_ALLOW and for a value that is not a reason. */
const char *auth_reason_to_dbus_error(enum auth_reason r);

/* "Card suspended — call your security manager"; NULL for AUTH_ALLOW and for a non-reason. */
const char *auth_reason_to_words(enum auth_reason r);

/* The reverse lookups: the reason (>= 0), or -EINVAL when s / name is not in the table (or NULL). */
int auth_reason_from_string(const char *s);
int auth_reason_from_dbus_error(const char *name);
