/* Writes one event both ways, a readable line for the journal/stderr and a signed operation-log record;
 * bounds repeats. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal.h"
#include "mamorid.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define MAX_LINE_FIELDS 14

/* The event line: op, card, then the data's scalar fields. */
static void log_line(const char *ev, const char *op, const char *card, const JsonValue *data)
{
        const char *keys[MAX_LINE_FIELDS], *values[MAX_LINE_FIELDS];
        char ints[MAX_LINE_FIELDS][24];
        size_t n = 0;

        if (op) {
                keys[n] = "op";
                values[n++] = op;
        }
        if (card) {
                keys[n] = "card";
                values[n++] = card;
        }
        for (size_t i = 0; data && data->type == JSON_OBJECT && i < data->object.n && n < MAX_LINE_FIELDS;
             i++) {
                const JsonMember *m = &data->object.members[i];
                if (m->value->type == JSON_STRING)
                        values[n] = m->value->string.data;
                else if (m->value->type == JSON_INTEGER) {
                        snprintf(ints[n], sizeof(ints[n]), "%" PRId64, m->value->integer);
                        values[n] = ints[n];
                } else if (m->value->type == JSON_BOOLEAN)
                        values[n] = m->value->boolean ? "true" : "false";
                else
                        continue;
                keys[n++] = m->key;
        }
        agent_log_event_fields(ev, keys, values, n);
}

/* Every record's completion passes here, so any failed write locks the terminal (fail closed),
 * whoever asked for the record. */
struct record_done {
        struct agent *a;
        oplog_done_fn done;
        void *userdata;
};

static void on_record_done(int result, uint64_t seq, void *userdata)
{
        struct record_done rd = *(struct record_done *)userdata;

        free(userdata);
        if (rd.done)
                rd.done(result, seq, rd.userdata);
        else if (result < 0)
                session_on_log_health(&rd.a->session, result);
}

static int record_now(struct agent *a, const char *ev, const char *op, const char *card, JsonValue *data,
                      oplog_done_fn done, void *userdata);

static void write_summary(void *userdata, const char *ev, const char *op, const char *card, JsonValue *data)
{
        (void)record_now(userdata, ev, op, card, data, NULL, NULL);
}

/* Refusals and rejected bundles are what a local caller or the uploader's directory can repeat
 * at will: bounded per cause (record-limit.h), so a flood can neither fill the disk nor hold
 * back a record of another cause. */
static bool counted(struct agent *a, const char *ev, const char *op, const char *card, const JsonValue *data)
{
        if (!streq(ev, "auth.fail") && !streq(ev, "policy.reject"))
                return false;
        if (!a->limit &&
            (!a->event || record_limit_new(a->event, RECORD_LIMIT_USEC, write_summary, a, &a->limit) < 0))
                return false; /* no limiter: every record is written */
        return !record_limit_admit(a->limit, ev, op, card, data, now_mono_usec());
}

int agent_record(struct agent *a, const char *ev, const char *op, const char *card, JsonValue *data,
                 oplog_done_fn done, void *userdata)
{
        if (counted(a, ev, op, card, data)) {
                /* In its cause's summary record, later: nothing is granted on it, so the caller
                 * hears its refusal now. */
                json_value_free(data);
                if (done)
                        done(0, 0, userdata);
                return 0;
        }
        return record_now(a, ev, op, card, data, done, userdata);
}

static int record_now(struct agent *a, const char *ev, const char *op, const char *card, JsonValue *data,
                      oplog_done_fn done, void *userdata)
{
        struct record_done *rd;
        int r;

        if (!data && json_new_object(&data) < 0) {
                if (done)
                        done(-ENOMEM, 0, userdata);
                return -ENOMEM;
        }
        log_line(ev, op, card, data);
        /* A PIN or password changed here counts at once for its age (DESIGN §4, secret-age.h). */
        if (op && a->secrets && (streq(ev, "pin.change") || streq(ev, "password.change")))
                (void)secret_age_note(a->secrets, op, now_realtime_usec());
        if (!a->log) {
                /* No operation log (it could not be opened): nothing can be committed. */
                json_value_free(data);
                if (done)
                        done(-EIO, 0, userdata);
                return -EIO;
        }
        rd = malloc(sizeof(*rd));
        if (!rd) {
                json_value_free(data);
                if (done)
                        done(-ENOMEM, 0, userdata);
                return -ENOMEM;
        }
        *rd = (struct record_done){.a = a, .done = done, .userdata = userdata};
        r = oplog_submit(a->log, ev, op, card, data, on_record_done, rd);
        if (r < 0)
                on_record_done(r, 0, rd);
        return r;
}
