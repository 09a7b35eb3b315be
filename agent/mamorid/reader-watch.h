/* The PC/SC thread: watches every reader with SCardGetStatusChange and reports to the event loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "mamori/card.h"

#define READER_NAME_MAX 128

enum reader_event_type {
        READER_EVENT_ADDED,    /* reader.added */
        READER_EVENT_LOST,     /* reader.lost (reader unplugged, or pcscd gone) */
        READER_EVENT_INSERTED, /* card.inserted; card_id set when the certificate could be read */
        READER_EVENT_REMOVED,  /* card.removed; card_id of the card that was read on insertion */
        READER_EVENT_PCSC_GONE,
        READER_EVENT_PCSC_BACK,
};

struct reader_event {
        enum reader_event_type type;
        char reader[READER_NAME_MAX];
        char card_id[CARD_ID_LEN + 1]; /* "" when unknown */
        int error;                     /* < 0: why the card id could not be read (card_strerror) */
        uint64_t mono_usec;            /* CLOCK_MONOTONIC when PC/SC reported the change */
        uint8_t *der;                  /* INSERTED: the certificate read (malloc'd, the receiver owns it) */
        int pin_tries;                 /* INSERTED: PIN tries the card reported, -1 unknown */
        size_t der_len;
};

typedef struct ReaderWatch ReaderWatch;

/* Called on e's thread, in the order the changes happened; takes ev->der. */
typedef void (*reader_event_fn)(void *userdata, struct reader_event *ev);

/* Starts the thread. reader_filter: only readers whose name contains it (NULL/"" = all).
 * Events reach on_event through the loop (agent/mamorid/thread-mailbox.h). */
int reader_watch_start(sd_event *e, const char *reader_filter, reader_event_fn on_event, void *userdata,
                       ReaderWatch **ret);

/* Stops the thread (SCardCancel + join) and frees everything, undelivered events too. NULL is fine. */
ReaderWatch *reader_watch_stop(ReaderWatch *w);

const char *reader_event_name(enum reader_event_type t);
