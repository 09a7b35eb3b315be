/* Thin sd-bus client of mamorid's org.mamori.Agent1 API, shared by pam_mamori.so and mamorictl. */
#pragma once

/*
 * No OpenSSL, PC/SC or logging here: this code runs inside login processes (display managers,
 * screen lockers). Every function returns >= 0 or -errno; ret_* are written only on success.
 * The bus is the system bus (sd_bus_open_system() honours DBUS_SYSTEM_BUS_ADDRESS, which the
 * tests point at a private bus). A connection is private to its caller: the agent binds a PIN
 * conversation to the connection that started it, so StartLogin and AnswerPin must share one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "mamori/macro.h"

/* Method calls that touch the card (AnswerPin, ChangePin) may wait for the card and the log commit. */
#define AGENT_CALL_TIMEOUT_USEC (30ull * 1000000ull)

/* What a caller should do about a failed call, independent of PAM. */
enum agent_error_class {
        AGENT_ERROR_REFUSED,            /* a named refusal (card, operator, policy, emergency, log …) */
        AGENT_ERROR_NO_CARD,            /* no card in a reader: ask for one and wait */
        AGENT_ERROR_PIN_WRONG,          /* tries_left says how many remain (-1 unknown) */
        AGENT_ERROR_PIN_FORMAT,         /* not 6-8 digits: nothing reached the card, the login still waits */
        AGENT_ERROR_PIN_BLOCKED,        /* the card's PIN is blocked */
        AGENT_ERROR_PASSWORD_WRONG,     /* the login still waits; delay says how long the answer took */
        AGENT_ERROR_PASSWORD_TOO_SHORT, /* a new password under MinLength (min_length says it) */
        AGENT_ERROR_WRONG_USER,         /* PAM user is not the card's operator (Accounts=per-operator) */
        AGENT_ERROR_PERMISSION,         /* the caller may not do this */
        AGENT_ERROR_NOT_ACTIVE,         /* no active session (Lock, PinAgeDays, ChangePin) */
        AGENT_ERROR_NOT_PENDING,        /* AnswerPin without a StartLogin that is still ours */
        AGENT_ERROR_BUSY,               /* another login is in progress */
        AGENT_ERROR_INVALID,            /* the agent rejected an argument (e.g. the new PIN's format) */
        AGENT_ERROR_UNAVAILABLE,        /* the agent is not on the bus, the bus is down, or no reply */
        AGENT_ERROR_PROTOCOL,           /* an answer we do not understand (unknown error name, bad type) */
};

struct agent_error_info {
        enum agent_error_class class;
        int reason;       /* the agent's refusal (enum auth_reason, mamori/auth-reasons.h); -1 when none */
        const char *name; /* short static name: the refusal reason ("pin-wrong") or "agent-unavailable" … */
        const char *sentence; /* static English msgid without tries ("Card suspended — call …"): show it
                               * through agent_error_format(), which translates */
        int tries_left;       /* PinWrong: N of "pin-wrong tries=N"; otherwise -1 */
        int delay_sec;        /* PasswordWrong: N of "password-wrong delay=N"; otherwise -1 */
        int min_length;       /* PasswordTooShort / PinTooShort: N of "…-too-short min=N"; otherwise -1 */
};

/* Classify a failed call: r is the call's return (< 0), e its error (may be unset or NULL). */
void agent_error_classify(const sd_bus_error *e, int r, struct agent_error_info *ret);

/* The operator-facing message ("PIN wrong, 2 tries left") in the current message language (mamori/i18n.h),
 * NUL-terminated in buf; returns buf. */
const char *agent_error_format(const struct agent_error_info *info, char *buf, size_t size);

/* A new private connection to the system bus. -errno when the bus cannot be reached. */
int agent_bus_open(sd_bus **ret);

/* > 0 when org.mamori.Agent1 has an owner on the bus, 0 when not, -errno on a bus failure. */
int agent_is_running(sd_bus *bus);

/* Every property of /org/mamori/Agent1 (GetAll). Strings are owned by the struct. */
struct agent_status {
        char *state;
        char *operator_id;
        char *method;
        char *card;
        char *reader;
        bool card_present;
        int64_t policy_serial;
        bool emergency;
        bool log_writable;
};

/* Fills *ret (unknown properties are skipped; missing ones stay ""/false/-1). error may be NULL. */
int agent_get_status(sd_bus *bus, sd_bus_error *error, struct agent_status *ret);
void agent_status_done(struct agent_status *s);

/* The CardPresent property alone. */
int agent_get_card_present(sd_bus *bus, sd_bus_error *error, bool *ret);

/* "pin-wrong tries=N" → N; -1 when the message carries no count. */
int agent_parse_tries(const char *message);
/* "… key=N" → N (0..999999); -1 when the message carries no such count. */
int agent_parse_count(const char *message, const char *key);

/* True when pin is 6–8 ASCII digits (the PIV PIN format mamori uses). */
bool agent_pin_format_ok(const char *pin);

/* ChangePin(old, new) on the agent, in a message sd-bus wipes when it frees it. */
int agent_change_pin(sd_bus *bus, const char *old_pin, const char *new_pin, sd_bus_error *error);

/* AnswerPin(pin) in a message sd-bus wipes: the card's operator ("" for a group card). */
int agent_answer_pin(sd_bus *bus, const char *pin, sd_bus_error *error, char **ret_operator);
/* AnswerPassword(operator_id, password) in a message sd-bus wipes: the session's operator. */
int agent_answer_password(sd_bus *bus, const char *operator_id, const char *password, sd_bus_error *error,
                          char **ret_operator);
/* ChangePassword(old, new) for the active operator ("" old when none is set yet). */
int agent_change_password(sd_bus *bus, const char *old_password, const char *new_password,
                          sd_bus_error *error);
/* PasswordAgeDays: the active operator's password age (-1: none set), MaxAgeDays and WarnDays. */
int agent_password_age(sd_bus *bus, sd_bus_error *error, int *ret_days, int *ret_max_days,
                       int *ret_warn_days);
/* ScanFinger("finger") (a touch may take a while: AGENT_SCAN_TIMEOUT_USEC): the operator it opened
 * the session for. */
#define AGENT_SCAN_TIMEOUT_USEC (120ull * 1000000ull)
int agent_scan_finger(sd_bus *bus, sd_bus_error *error, char **ret_operator);

/* A string property of the agent ("Step", "Method" …), malloc'd. */
int agent_get_string(sd_bus *bus, const char *property, sd_bus_error *error, char **ret);

/* The Sensors property: NULL-terminated, malloc'd (free with agent_strv_free); may be empty. */
int agent_get_sensors(sd_bus *bus, sd_bus_error *error, char ***ret);
void agent_strv_free(char **l);
static inline void agent_strv_freep(char ***l)
{
        agent_strv_free(*l);
}

/* Strdup/free for secrets: the free wipes the whole string first. */
void agent_secret_free(char *s);
static inline void agent_secret_freep(char **s)
{
        agent_secret_free(*s);
}
#define _cleanup_secret_ _cleanup_(agent_secret_freep)
