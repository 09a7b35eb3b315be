/* Bounds records that repeat: per cause, the first of a burst in full, the rest counted into one summary. */
#pragma once

/*
 * A burst is one cause recurring within interval_usec of its last occurrence. The first
 * occurrence is recorded in full (burst_admit() says true); the following ones are only counted,
 * and every interval_usec one summary record says how many there were (repeats), how long after
 * the last record the first of them came (after_us) and over how long they came (period_us).
 * After an interval without the cause the next occurrence starts a new burst, in full. A flood
 * therefore costs one record per interval and cause, and hides nothing: every occurrence is in a
 * full record or in a count, and a different cause is never held back by another's burst.
 *
 * struct burst is one cause (the bypass re-locks of session-logic.c use one); RecordLimit keys
 * bursts by (event, reason, method, tries, operator, card) for agent_record() (auth.fail,
 * policy.reject).
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "mamori/json.h"

#define RECORD_LIMIT_USEC (5 * UINT64_C(1000000)) /* one full record per cause per 5 s */

struct burst_summary {
        unsigned repeats;     /* occurrences not recorded one by one */
        uint64_t after_usec;  /* from the last record to the first of them */
        uint64_t period_usec; /* from the first of them to the last */
};

typedef void (*burst_summary_fn)(void *userdata, const struct burst_summary *sum);

struct burst {
        uint64_t interval_usec;
        burst_summary_fn summary; /* writes the summary record */
        void *userdata;
        uint64_t recorded_mono_usec; /* the last record (full or summary); 0: none yet */
        uint64_t first_mono_usec, last_mono_usec;
        unsigned repeats;
        sd_event_source *timer; /* the end of the interval, while occurrences are counted */
};

void burst_init(struct burst *b, uint64_t interval_usec, burst_summary_fn summary, void *userdata);
/* An occurrence at mono_usec (CLOCK_MONOTONIC). true: record it in full now; false: it is counted
 * and a summary follows at the end of the interval (a timer on e; without one, at the next
 * admitted occurrence or burst_flush()). */
bool burst_admit(struct burst *b, sd_event *e, uint64_t mono_usec);
/* Writes the summary of what is counted now (nothing when nothing is). */
void burst_flush(struct burst *b);
/* Flushes and releases the timer. */
void burst_done(struct burst *b);

typedef struct RecordLimit RecordLimit;

/* Writes one summary record: ev, op and card of its cause, data {reason, method, tries, repeats,
 * after_us, period_us} (taken). */
typedef void (*record_limit_write_fn)(void *userdata, const char *ev, const char *op, const char *card,
                                      JsonValue *data);

int record_limit_new(sd_event *e, uint64_t interval_usec, record_limit_write_fn write, void *userdata,
                     RecordLimit **ret);
/* Writes the summaries still pending, then frees. */
RecordLimit *record_limit_free(RecordLimit *l);
/* Whether the record (ev, op, card, data) at mono_usec is written in full (true) or counted into
 * the summary of its cause (false). The cause is ev, data's "reason", "method" and "tries" (a PIN
 * try the card counted is a fact of its own; the card bounds them), op and card. */
bool record_limit_admit(RecordLimit *l, const char *ev, const char *op, const char *card,
                        const JsonValue *data, uint64_t mono_usec);
