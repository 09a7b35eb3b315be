/* The fingerprint thread: libfprint's async API on GLib's default main context, off the event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/*
 * One thread owns g_main_context_default() and runs every libfprint call on it, asynchronously;
 * nothing GLib crosses this header. The event loop asks (enroll, match, cancel) through small
 * calls that queue work on that context; results come back through the thread mailbox and run
 * the given callback on the event loop's thread. One job at a time (a sensor does one thing): a
 * second one is -EBUSY. Every job holds a GCancellable that finger_worker_cancel() and
 * finger_worker_stop() cancel, so a pending scan never outlives the login it belonged to.
 */

#define FINGER_OPERATOR_MAX 65 /* operator id + NUL, as the session's */
#define FINGER_RETRIES_MAX  3  /* "touch again" answers before a scan gives up (-EAGAIN) */

typedef struct FingerWorker FingerWorker;

struct finger_device_info {
        bool present;      /* a sensor is open */
        bool can_identify; /* 1:N on the device (fp_device_identify) */
        int enroll_stages;
        char driver[32];
};

enum finger_event_kind {
        FINGER_EVENT_PROGRESS, /* enroll: a stage done (or a retry); match: a retry */
        FINGER_EVENT_DONE,     /* the job ended; the last event of the job */
};

struct finger_event {
        uint64_t id;
        enum finger_event_kind kind;
        /* DONE: 0, or -ECANCELED (cancelled), -ENODEV (no sensor, or it went away), -EAGAIN (no
         * readable touch after FINGER_RETRIES_MAX tries), -EOPNOTSUPP (1:N on a sensor that can
         * only verify), -EEXIST (enroll: this finger is already enrolled), -EIO (any other error). */
        int result;
        bool matched;                          /* match: a print of the gallery matched */
        char operator_id[FINGER_OPERATOR_MAX]; /* match: whose print */
        int stage, stages;                     /* enroll: stages done, stages needed */
        bool retry;                            /* PROGRESS: the touch was not usable, touch again */
        uint8_t *print;                        /* enroll DONE: serialized print (owned by the worker) */
        size_t print_size;
        uint64_t elapsed_usec; /* DONE: from the job's start on the thread to its end */
        uint64_t prepare_usec; /* DONE, match: turning the gallery into libfprint prints */
        size_t gallery;        /* DONE, match: prints compared with */
};

typedef void (*finger_event_fn)(void *userdata, const struct finger_event *ev);

/* Starts the thread and opens the first sensor libfprint finds (in the background). */
int finger_worker_start(sd_event *e, FingerWorker **ret);
/* Cancels the job in progress, closes the sensor, joins the thread. Pending callbacks are dropped. */
FingerWorker *finger_worker_stop(FingerWorker *w);

/* What the sensor is, as far as known now (a snapshot). */
void finger_worker_device(FingerWorker *w, struct finger_device_info *ret);

/* Enrols a finger for operator_id (the print carries it as its user name); PROGRESS per stage,
 * DONE with the serialized print. -EBUSY while another job runs, -ENODEV without a sensor. */
int finger_worker_enroll(FingerWorker *w, uint64_t id, const char *operator_id, finger_event_fn cb,
                         void *userdata);
/* One touch against the prints stored in dir (print-store.h) of the operators in allowed (copied;
 * sorted with strcmp): 1:N on a sensor that can identify, else 1:1 against the first print of the
 * only operator allowed. The prints are read and made ready on the thread, not on the event loop.
 * DONE says whether and whose print matched; no print to compare with is no match. */
int finger_worker_match(FingerWorker *w, uint64_t id, const char *dir, char *const *allowed,
                        size_t n_allowed, finger_event_fn cb, void *userdata);
/* Cancels job id if it is still running: its DONE then says -ECANCELED. Unknown ids are ignored. */
void finger_worker_cancel(FingerWorker *w, uint64_t id);
/* Whether job id is still running (its DONE not yet delivered to the loop). */
bool finger_worker_running(FingerWorker *w, uint64_t id);
