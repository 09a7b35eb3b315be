/* The vein thread: a biometric plugin (auth/bio-plugin.h) driven off the event loop, cancellable. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "bio-plugin-load.h"

/*
 * One thread owns the plugin's device: it opens it, runs one enroll or match at a time (the plugin
 * may block there until a hand is presented) and reports through the thread mailbox, so results
 * run the given callback on the event loop's thread. Jobs are cancellable at any time
 * (vein_worker_cancel(): the plugin's cancel entry point, from the loop), and vein_worker_stop()
 * cancels whatever runs: a pending scan never blocks the daemon. Same shape as finger-worker.h, so
 * the session code treats both modalities alike.
 */

#define VEIN_OPERATOR_MAX 65     /* operator id + NUL, as the session's */
#define VEIN_GALLERY_MAX  10000u /* templates in one match */

typedef struct VeinWorker VeinWorker;

struct vein_device_info {
        bool present;      /* the plugin opened its reader */
        bool can_identify; /* 1:N (MAMORI_BIO_CAN_IDENTIFY); else 1:1 only */
};

/* One template of a gallery: whose it is and the plugin's bytes (borrowed; the worker copies). */
struct vein_template_ref {
        const char *operator_id;
        const uint8_t *data;
        size_t size;
};

enum vein_event_kind {
        VEIN_EVENT_PROGRESS, /* enroll: a capture done */
        VEIN_EVENT_DONE,     /* the job ended; the last event of the job */
};

struct vein_event {
        uint64_t id;
        enum vein_event_kind kind;
        /* DONE: 0, or -ECANCELED, -ENODEV (no reader, or it went away), -EAGAIN (no usable scan),
         * -ETIMEDOUT, -EOPNOTSUPP (1:N on a reader that only verifies), -EINVAL, -EIO. */
        int result;
        bool matched;                        /* match: a template of the gallery matched */
        char operator_id[VEIN_OPERATOR_MAX]; /* match: whose */
        int stage, stages;                   /* enroll PROGRESS: captures done, needed */
        uint8_t *template;                   /* enroll DONE: the template (owned by the worker) */
        size_t template_size;
        uint64_t elapsed_usec; /* DONE: from the job's start on the thread to its end */
        uint64_t prepare_usec; /* DONE, match from the store: reading the templates */
        size_t gallery;        /* DONE, match: templates compared with */
};

typedef void (*vein_event_fn)(void *userdata, const struct vein_event *ev);

/* Loads the plugin (bio_plugin_load(): refused with why), starts the thread, which opens the
 * reader with options, and hooks its mailbox into e. */
int vein_worker_start(sd_event *e, const char *plugin_path, const char *options, VeinWorker **ret,
                      char why[BIO_PLUGIN_WHY_MAX]);
/* Cancels the job in progress, closes the reader, joins the thread, unloads the plugin. Pending
 * callbacks are dropped. NULL is fine. */
VeinWorker *vein_worker_stop(VeinWorker *w);

/* What the reader is, as far as known now (a snapshot; present is false until open returned). */
void vein_worker_device(VeinWorker *w, struct vein_device_info *ret);

/* Enrols operator_id: PROGRESS per capture, DONE with the template. -EBUSY while another job runs. */
int vein_worker_enroll(VeinWorker *w, uint64_t id, const char *operator_id, vein_event_fn cb,
                       void *userdata);
/* One scan against the gallery (copied): identify when the reader can, else verify against the only
 * template given (-EOPNOTSUPP for more). DONE says whether and whose template matched. -EBUSY while
 * another job runs, -EINVAL for an empty or oversized gallery. */
int vein_worker_match(VeinWorker *w, uint64_t id, const struct vein_template_ref *gallery, size_t n,
                      vein_event_fn cb, void *userdata);
/* One scan against the vein templates stored in dir (print-store.h) of the operators in allowed
 * (copied): read on the thread, not on the event loop; 1:N where the reader can identify, else 1:1
 * against the first template of the first operator allowed. No template to compare with is no
 * match, without a capture. -EBUSY while another job runs, -EINVAL for a bad id. */
int vein_worker_match_stored(VeinWorker *w, uint64_t id, const char *dir, char *const *allowed,
                             size_t n_allowed, vein_event_fn cb, void *userdata);
/* Cancels job id if it still runs: its DONE then says -ECANCELED. Unknown ids are ignored. */
void vein_worker_cancel(VeinWorker *w, uint64_t id);
/* Whether job id still runs (its DONE not yet delivered to the loop). */
bool vein_worker_running(VeinWorker *w, uint64_t id);
