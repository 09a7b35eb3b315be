/* Operator card API (DESIGN.md §3): card operations over a transport, PC/SC transport, card id. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <PCSC/winscard.h>

/* Errors, all negative errno values. card_strerror() gives the named reason for logs and UIs.
 * Card (status word) errors: */
#define CARD_E_PIN_WRONG    (-EACCES) /* 63 Cx: wrong PIN, card_tries_left() says x */
#define CARD_E_PIN_BLOCKED  (-EPERM)  /* 69 83 (or 63 C0): PIN blocked */
#define CARD_E_NOT_VERIFIED (-ENOKEY) /* 69 82: security status not satisfied */
#define CARD_E_NOT_FOUND    (-ENOENT) /* 6A 82 / 6A 88: application or object absent */
#define CARD_E_REJECTED     (-EPROTO) /* 67 00 / 6A 80 / 6A 86: card refused the command */
#define CARD_E_UNSUPPORTED                                                                    \
        (-EOPNOTSUPP)                      /* 6A 81 / 6D 00 / 6E 00 / 68 84, or a key type we \
                                              don't support (only P-256, P-384, RSA-2048) */
#define CARD_E_CARD_ERROR  (-EIO)          /* any other status word */
#define CARD_E_MALFORMED   (-EBADMSG)      /* response or certificate could not be parsed */
#define CARD_E_TOO_BIG     (-E2BIG)        /* response exceeds the size or round caps */
#define CARD_E_SIG_INVALID (-EKEYREJECTED) /* the card's signature does not verify */
#define CARD_E_BAD_PIN     (-EINVAL)       /* PIN not 6-8 digits: never sent to the card */
/* Transport (PC/SC) errors: */
#define CARD_E_REMOVED    (-ENODEV)       /* SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD */
#define CARD_E_NO_SERVICE (-ECONNREFUSED) /* SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED */
#define CARD_E_NO_READER  (-ENXIO)        /* SCARD_E_UNKNOWN_READER, SCARD_E_READER_UNAVAILABLE */
#define CARD_E_RESET      (-ECONNRESET)   /* SCARD_W_RESET_CARD: someone reset the card */
#define CARD_E_BUSY       (-EBUSY)        /* SCARD_E_SHARING_VIOLATION */
#define CARD_E_TIMEOUT    (-ETIMEDOUT)    /* SCARD_E_TIMEOUT */
#define CARD_E_UNRESPONSIVE                                                                 \
        (-EHOSTDOWN)                  /* SCARD_W_UNRESPONSIVE_CARD, SCARD_W_UNPOWERED_CARD, \
                                         SCARD_E_PROTO_MISMATCH, ... (card mute) */
#define CARD_E_CANCELLED (-ECANCELED) /* SCARD_E_CANCELLED */

/* Named reason of a card/transport error, e.g. "pin-wrong", "card-removed"; "error" if unknown. */
const char *card_strerror(int r);

/* How the card layer talks to a card. transmit() sends capdu and writes the response (data +
 * SW1 SW2) into rapdu; *rlen is the capacity on input (at least 258) and the length on output.
 * Returns 0 or a negative errno (CARD_E_* transport errors). */
struct card_transport {
        int (*transmit)(void *userdata, const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t *rlen);
        void *userdata;
};

typedef struct Card Card;

/* Card id: lowercase hex SHA-256 of the DER certificate, NUL-terminated. */
#define CARD_ID_LEN 64
int card_id_from_cert(const uint8_t *der, size_t der_len, char ret_id[CARD_ID_LEN + 1]);

/* A card handle over a transport. profile is a card profile name ("piv"), NULL for the default.
 * The transport (and its userdata) must outlive the Card. -ENOENT for an unknown profile. */
int card_new(const struct card_transport *transport, const char *profile, Card **ret);
Card *card_free(Card *c);
static inline void card_freep(Card **c)
{
        if (*c)
                card_free(*c);
}

/* Number of transmit() calls made so far (every APDU, including GET RESPONSE and chaining). */
unsigned card_exchanges(const Card *c);
/* Tries left reported by the last 63 Cx, or -1 if none was seen. */
int card_tries_left(const Card *c);
/* Profile name ("piv"). */
const char *card_profile_name(const Card *c);

/* Selects the card application. */
int card_select(Card *c);

/* Reads the authentication certificate; *ret_der is malloc'ed DER (caller frees). A gzip'ed
 * certificate (bit 0 of tag 71) is inflated, bounded to 12 KiB. The caller may cache it by card
 * id and skip this call; card_authenticate() must still be called on every login (mamori/card-login.h). */
int card_read_certificate(Card *c, uint8_t **ret_der, size_t *ret_der_len);

/* PIN status without presenting a PIN: 1 = already verified in this card session, 0 = not
 * verified and *ret_tries holds the tries left (if the card reports them; else untouched),
 * CARD_E_PIN_BLOCKED, or another error. */
int card_pin_tries(Card *c, unsigned *ret_tries);

/* Presents the PIN (6-8 digits, else CARD_E_BAD_PIN without any exchange). 0 on success;
 * CARD_E_PIN_WRONG (card_tries_left() gives the count), CARD_E_PIN_BLOCKED, ... The card layer
 * wipes its own copies of the PIN; the caller wipes its string. */
int card_verify_pin(Card *c, const char *pin);

/* CHANGE REFERENCE DATA for the PIN. Same results as card_verify_pin(). */
int card_change_pin(Card *c, const char *old_pin, const char *new_pin);

/* Challenge-response with the PIV Authentication key: 32 fresh random bytes, signed on the card
 * (P-256 → SHA-256, P-384 → SHA-384, RSA-2048 → PKCS#1 v1.5 over SHA-256, as chosen by the
 * certificate's key), verified with the public key of cert (DER). 0 when the signature verifies,
 * CARD_E_SIG_INVALID when it does not, CARD_E_UNSUPPORTED for another key type, other CARD_E_*
 * for card or transport errors. The PIN must have been verified first. */
int card_authenticate(Card *c, const uint8_t *der, size_t der_len);

/* --- PC/SC transport (auth/card-pcsc.c) --- */

typedef struct CardPcsc CardPcsc;

/* SCardConnect in shared mode, T=0 or T=1. The context stays owned by the caller. */
int card_pcsc_connect(SCARDCONTEXT ctx, const char *reader, CardPcsc **ret);
/* Disconnects leaving the card as is. NULL is fine. */
CardPcsc *card_pcsc_free(CardPcsc *p);
/* Disconnects with a card reset, dropping the PIN-verified state (use after a login). */
CardPcsc *card_pcsc_free_reset(CardPcsc *p);
static inline void card_pcsc_freep(CardPcsc **p)
{
        if (*p)
                card_pcsc_free(*p);
}
const struct card_transport *card_pcsc_transport(CardPcsc *p);
/* SCardBeginTransaction/SCardEndTransaction, to keep a login sequence atomic. */
int card_pcsc_begin(CardPcsc *p);
int card_pcsc_end(CardPcsc *p);

/* PC/SC return code → 0 or CARD_E_* (see above). */
int card_pcsc_error_to_errno(LONG rv);

/* One call for the reader watcher: connect, select, read the certificate, compute the card id,
 * disconnect (leaving the card). ret_der/ret_der_len may be NULL if the DER is not wanted. */
int card_pcsc_read_card_id(SCARDCONTEXT ctx, const char *reader, char ret_id[CARD_ID_LEN + 1],
                           uint8_t **ret_der, size_t *ret_der_len);
/* The same, plus the PIN tries the card reports (ret_tries may be NULL; -1 when the card does not
 * say, 0 when blocked), at the cost of one more exchange. */
int card_pcsc_read_card(SCARDCONTEXT ctx, const char *reader, char ret_id[CARD_ID_LEN + 1],
                        uint8_t **ret_der, size_t *ret_der_len, int *ret_tries);
