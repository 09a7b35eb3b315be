/* The card-login thread: PIN verify + challenge-response (and PIN change) off the event loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "mamori/card.h"

enum card_job_kind {
        CARD_JOB_LOGIN,      /* select, verify PIN, authenticate with the known certificate */
        CARD_JOB_CHANGE_PIN, /* select, CHANGE REFERENCE DATA */
};

struct card_job_result {
        int result;         /* 0 or CARD_E_* (first failing step) */
        int tries_left;     /* after CARD_E_PIN_WRONG, else -1 */
        unsigned exchanges; /* APDUs sent */
        uint64_t elapsed_usec;
};

typedef void (*card_job_done_fn)(void *userdata, const struct card_job_result *r);

typedef struct CardWorker CardWorker;

/* Starts the thread (its own PC/SC context) and hooks its completion eventfd into e. */
int card_worker_start(sd_event *e, CardWorker **ret);
CardWorker *card_worker_stop(CardWorker *w);

/* Queues a job; -EBUSY while one is running. The worker copies reader, PINs and certificate and
 * wipes its PIN copies when done. done is called on the event loop's thread. */
int card_worker_submit(CardWorker *w, enum card_job_kind kind, const char *reader, const char *pin,
                       const char *new_pin, const uint8_t *der, size_t der_len, card_job_done_fn done,
                       void *userdata);
