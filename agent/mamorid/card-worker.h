/* The card-login thread: drives the card-login engine (and PIN changes) off the event loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "mamori/card-login.h"
#include "mamori/card.h"

/* Longest PIN the card thread takes (it copies PINs into fixed buffers); callers refuse longer ones. */
#define CARD_WORKER_PIN_MAX 16

enum card_job_kind {
        CARD_JOB_LOGIN,      /* prepare at once, verify once the PIN comes (card_worker_start_login) */
        CARD_JOB_CHANGE_PIN, /* select, CHANGE REFERENCE DATA (card_worker_change_pin) */
};

struct card_job_result {
        uint64_t id;        /* the login id given to card_worker_start_login(), 0 for a PIN change */
        int result;         /* 0, CARD_E_* of the first failing step, or -ECANCELED (login cancelled) */
        int tries_left;     /* after CARD_E_PIN_WRONG, else -1 */
        unsigned exchanges; /* APDUs sent */
        uint64_t elapsed_usec;
        CardLogin *login; /* login jobs: the engine with what the card said (freed after done returns) */
};

typedef void (*card_job_done_fn)(void *userdata, const struct card_job_result *r);

typedef struct CardWorker CardWorker;

/* Starts the thread (its own PC/SC context) and hooks its completion eventfd into e. */
int card_worker_start(sd_event *e, CardWorker **ret);
/* Stops the thread; a login waiting for its PIN releases the card. Pending callbacks are dropped. */
CardWorker *card_worker_stop(CardWorker *w);

/* Queues a login on reader and takes l (precheck done, allowed). The thread connects, holds the
 * card (a PC/SC transaction) and runs card_login_prepare() at once, while the operator types; it
 * then waits for card_worker_answer_pin() (or a cancel), runs card_login_verify(), reports to
 * done, and only after that resets the card and ends the transaction: the answer does not wait
 * for the reset, and no other PC/SC client gets the card before it. */
int card_worker_start_login(CardWorker *w, const char *reader, CardLogin *l, uint64_t id,
                            card_job_done_fn done, void *userdata);
/* The PIN for login id (copied, wiped after use). -ESRCH when no such login waits for one. */
int card_worker_answer_pin(CardWorker *w, uint64_t id, const char *pin);
/* Cancels login id if it has not taken its PIN yet: done then reports -ECANCELED. */
void card_worker_cancel_login(CardWorker *w, uint64_t id);

/* Queues a PIN change (select, CHANGE REFERENCE DATA); -EBUSY while a login holds the card for
 * its PIN. PINs are copied and wiped. done is called on the event loop's thread. */
int card_worker_change_pin(CardWorker *w, const char *reader, const char *old_pin, const char *new_pin,
                           card_job_done_fn done, void *userdata);
