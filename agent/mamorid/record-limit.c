/* Bounds records that repeat: per cause, the first of a burst in full, the rest counted into one summary. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event-data.h"
#include "mamori/macro.h"
#include "record-limit.h"

#define CAUSES_MAX 32 /* distinct causes followed at once; reasons are a short table, cards physical */

void burst_init(struct burst *b, uint64_t interval_usec, burst_summary_fn summary, void *userdata)
{
        *b = (struct burst){.interval_usec = interval_usec, .summary = summary, .userdata = userdata};
}

void burst_flush(struct burst *b)
{
        struct burst_summary sum;

        b->timer = sd_event_source_disable_unref(b->timer);
        if (b->repeats == 0)
                return;
        sum = (struct burst_summary){
                .repeats = b->repeats,
                .after_usec = b->first_mono_usec - b->recorded_mono_usec,
                .period_usec = b->last_mono_usec - b->first_mono_usec,
        };
        /* The next interval runs from the last occurrence counted here. */
        b->recorded_mono_usec = b->last_mono_usec;
        b->repeats = 0;
        b->summary(b->userdata, &sum);
}

void burst_done(struct burst *b)
{
        burst_flush(b);
        b->timer = sd_event_source_disable_unref(b->timer);
}

static int on_burst_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        burst_flush(userdata);
        return 0;
}

bool burst_admit(struct burst *b, sd_event *e, uint64_t mono_usec)
{
        /* The interval's summary is due (its timer has not run yet): written first. */
        if (b->repeats > 0 &&
            (mono_usec < b->recorded_mono_usec || mono_usec - b->recorded_mono_usec >= b->interval_usec))
                burst_flush(b);
        /* A burst ends after an interval without the cause: then the next one is recorded in
         * full; an occurrence closer than that to the last one recorded or counted is counted. */
        if (b->recorded_mono_usec == 0 || mono_usec < b->recorded_mono_usec ||
            mono_usec - b->recorded_mono_usec >= b->interval_usec) {
                burst_flush(b);
                b->recorded_mono_usec = mono_usec;
                return true;
        }
        if (b->repeats++ == 0)
                b->first_mono_usec = mono_usec;
        b->last_mono_usec = mono_usec;
        if (!b->timer && e)
                (void)sd_event_add_time(e, &b->timer, CLOCK_MONOTONIC,
                                        b->recorded_mono_usec + b->interval_usec, 0, on_burst_timer, b);
        return false;
}

/* ---- bursts keyed by cause ---- */

struct cause {
        RecordLimit *owner;
        bool used;
        char ev[32], reason[64], method[32], op[72], card[72];
        int64_t tries; /* auth.fail pin-wrong: each try the card counted is its own fact; -1 none */
        struct burst burst;
};

struct RecordLimit {
        sd_event *event;
        uint64_t interval_usec;
        record_limit_write_fn write;
        void *userdata;
        struct cause causes[CAUSES_MAX];
};

static void cause_summary(void *userdata, const struct burst_summary *sum)
{
        struct cause *c = userdata;
        char repeats[24], after[24], period[24], tries[24];

        snprintf(repeats, sizeof(repeats), "#%u", sum->repeats);
        snprintf(after, sizeof(after), "#%" PRIu64, sum->after_usec);
        snprintf(period, sizeof(period), "#%" PRIu64, sum->period_usec);
        snprintf(tries, sizeof(tries), "#%" PRId64, c->tries);
        c->owner->write(c->owner->userdata, c->ev, c->op[0] ? c->op : NULL, c->card[0] ? c->card : NULL,
                        agent_data("reason", c->reason[0] ? c->reason : NULL, "method",
                                   c->method[0] ? c->method : NULL, "tries", c->tries >= 0 ? tries : NULL,
                                   "repeats", repeats, "after_us", after, "period_us", period, NULL));
}

int record_limit_new(sd_event *e, uint64_t interval_usec, record_limit_write_fn write, void *userdata,
                     RecordLimit **ret)
{
        RecordLimit *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(e);
        l->interval_usec = interval_usec;
        l->write = write;
        l->userdata = userdata;
        *ret = l;
        return 0;
}

RecordLimit *record_limit_free(RecordLimit *l)
{
        if (!l)
                return NULL;
        for (size_t i = 0; i < CAUSES_MAX; i++)
                if (l->causes[i].used)
                        burst_done(&l->causes[i].burst);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}

#define COPY(dst, src) (snprintf((dst), sizeof(dst), "%s", (src)) < (int)sizeof(dst))

/* A free slot, else the one recorded longest ago (its pending count is written first). */
static struct cause *cause_slot(RecordLimit *l)
{
        struct cause *oldest = &l->causes[0];

        for (size_t i = 0; i < CAUSES_MAX; i++) {
                struct cause *c = &l->causes[i];
                if (!c->used)
                        return c;
                if (c->burst.recorded_mono_usec < oldest->burst.recorded_mono_usec)
                        oldest = c;
        }
        burst_done(&oldest->burst);
        return oldest;
}

bool record_limit_admit(RecordLimit *l, const char *ev, const char *op, const char *card,
                        const JsonValue *data, uint64_t mono_usec)
{
        const char *reason = NULL, *method = NULL;
        struct cause key = {.tries = -1}, *c = NULL;

        if (data && data->type == JSON_OBJECT) {
                (void)json_object_get_string(data, "reason", &reason);
                (void)json_object_get_string(data, "method", &method);
                (void)json_object_get_integer(data, "tries", &key.tries);
        }
        /* Names longer than any of ours are no cause that can be told apart: record them. */
        if (!COPY(key.ev, ev) || !COPY(key.reason, reason ?: "") || !COPY(key.method, method ?: "") ||
            !COPY(key.op, op ?: "") || !COPY(key.card, card ?: ""))
                return true;
        for (size_t i = 0; i < CAUSES_MAX && !c; i++) {
                struct cause *s = &l->causes[i];
                if (s->used && streq(s->ev, key.ev) && streq(s->reason, key.reason) &&
                    streq(s->method, key.method) && streq(s->op, key.op) && streq(s->card, key.card) &&
                    s->tries == key.tries)
                        c = s;
        }
        if (!c) {
                c = cause_slot(l);
                *c = key;
                c->owner = l;
                c->used = true;
                burst_init(&c->burst, l->interval_usec, cause_summary, c);
        }
        return burst_admit(&c->burst, l->event, mono_usec);
}
