/* The vein thread: runs a biometric plugin's blocking calls one at a time, results through the thread
 * mailbox. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "print-store.h"
#include "thread-mailbox.h"
#include "vein-worker.h"

/* The store's bound is the ABI's: a template the plugin may write is one the store keeps. */
_Static_assert(PRINT_VEIN_MAX == MAMORI_BIO_TEMPLATE_MAX, "vein template bound");
_Static_assert(VEIN_OPERATOR_MAX == PRINT_OPERATOR_MAX, "operator id bound");

#define VEIN_REOPEN_SEC 2 /* how often a missing reader is opened again */

enum job_kind { JOB_ENROLL, JOB_MATCH };

struct gallery_item {
        char operator_id[VEIN_OPERATOR_MAX];
        uint8_t *data;
        size_t size;
};

struct job {
        uint64_t id;
        enum job_kind kind;
        char operator_id[VEIN_OPERATOR_MAX]; /* enroll */
        struct gallery_item *gallery;        /* match (owned) */
        size_t n;
        char *dir;      /* match from the store: read on the thread (owned) */
        char **allowed; /* … of these operators, sorted (owned) */
        size_t n_allowed;
        bool cancelled; /* under the lock */
};

struct VeinWorker {
        BioPlugin *plugin;
        char *options;
        ThreadMailbox *mailbox;
        pthread_t thread;
        bool thread_started;

        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stopping;
        struct job *queued;  /* handed to the thread, not yet taken */
        struct job *running; /* inside a plugin call */
        mamori_bio_device *device;
        unsigned flags;
        bool opened; /* open returned (either way) */

        /* Loop thread only: the job whose DONE has not been delivered yet. */
        bool active;
        uint64_t active_id;
        vein_event_fn cb;
        void *userdata;
};

static void job_free(struct job *j)
{
        if (!j)
                return;
        for (size_t i = 0; i < j->n; i++) {
                explicit_bzero(j->gallery[i].data, j->gallery[i].size);
                free(j->gallery[i].data);
        }
        free(j->gallery);
        for (size_t i = 0; i < j->n_allowed; i++)
                free(j->allowed[i]);
        free(j->allowed);
        free(j->dir);
        free(j);
}

static void event_free(void *item)
{
        struct vein_event *ev = item;

        if (ev->template) {
                explicit_bzero(ev->template, ev->template_size);
                free(ev->template);
        }
}

/* On the loop: hand the event to the job's callback, if the job is still the one we run. */
static void dispatch(void *item, void *userdata)
{
        VeinWorker *w = userdata;
        struct vein_event *ev = item;

        if (w->active && w->active_id == ev->id) {
                vein_event_fn cb = w->cb;
                void *ud = w->userdata;

                if (ev->kind == VEIN_EVENT_DONE) {
                        w->active = false;
                        w->cb = NULL;
                        w->userdata = NULL;
                }
                if (cb)
                        cb(ud, ev);
        }
        event_free(ev);
}

struct progress_ctx {
        VeinWorker *w;
        uint64_t id;
};

static void on_progress(void *userdata, unsigned done, unsigned total)
{
        struct progress_ctx *c = userdata;
        struct vein_event ev = {
                .id = c->id,
                .kind = VEIN_EVENT_PROGRESS,
                .stage = (int)(done < 1000u ? done : 1000u),
                .stages = (int)(total < 1000u ? total : 1000u),
        };

        /* Progress is a courtesy: never let a slow loop stall the reader. */
        (void)thread_mailbox_try_post(c->w->mailbox, &ev);
}

static bool job_cancelled(VeinWorker *w, struct job *j)
{
        bool c;

        pthread_mutex_lock(&w->lock);
        c = j->cancelled || w->stopping;
        pthread_mutex_unlock(&w->lock);
        return c;
}

/* One plugin call for j; fills ev. Runs on the worker thread, with the device open. */
static int run_job(VeinWorker *w, struct job *j, struct vein_event *ev)
{
        const BioPlugin *p = w->plugin;
        int r;

        if (j->kind == JOB_ENROLL) {
                struct progress_ctx ctx = {w, j->id};
                uint8_t *buf = malloc(MAMORI_BIO_TEMPLATE_MAX);
                size_t size = 0;

                if (!buf)
                        return -ENOMEM;
                r = p->enroll(w->device, on_progress, &ctx, buf, MAMORI_BIO_TEMPLATE_MAX, &size);
                if (r >= 0 && (size == 0 || size > MAMORI_BIO_TEMPLATE_MAX))
                        r = -EIO; /* a plugin that claims more than it was given is broken */
                if (r < 0) {
                        explicit_bzero(buf, MAMORI_BIO_TEMPLATE_MAX);
                        free(buf);
                        return r < 0 ? r : -EIO;
                }
                ev->template = buf;
                ev->template_size = size;
                return 0;
        }

        if (w->flags & MAMORI_BIO_CAN_IDENTIFY) {
                _cleanup_free_ struct mamori_bio_template *t = calloc(j->n, sizeof(*t));
                size_t index = 0;

                if (!t)
                        return -ENOMEM;
                for (size_t i = 0; i < j->n; i++)
                        t[i] = (struct mamori_bio_template){j->gallery[i].data, j->gallery[i].size};
                r = p->identify(w->device, t, j->n, &index);
                if (r == 1) {
                        if (index >= j->n)
                                return -EIO;
                        ev->matched = true;
                        memcpy(ev->operator_id, j->gallery[index].operator_id, sizeof(ev->operator_id));
                        return 0;
                }
                return r == 0 ? 0 : (r < 0 ? r : -EIO);
        }
        if (j->n != 1)
                return -EOPNOTSUPP;
        struct mamori_bio_template t = {j->gallery[0].data, j->gallery[0].size};
        r = p->verify(w->device, &t);
        if (r == 1) {
                ev->matched = true;
                memcpy(ev->operator_id, j->gallery[0].operator_id, sizeof(ev->operator_id));
                return 0;
        }
        return r == 0 ? 0 : (r < 0 ? r : -EIO);
}

/* A match from the store: the allowed operators' templates, read here (blocking I/O stays off the
 * event loop) into j's gallery. A reader that only verifies gets the first template of the one
 * operator it compares with. Worker thread. */
static int load_gallery(VeinWorker *w, struct job *j)
{
        struct print_set set = {0};
        bool one = !(w->flags & MAMORI_BIO_CAN_IDENTIFY);
        int r;

        r = print_store_load(j->dir, BIO_MODALITY_VEIN, j->allowed, j->n_allowed, &set);
        if (r < 0)
                return r;
        size_t n = set.n < VEIN_GALLERY_MAX ? set.n : VEIN_GALLERY_MAX;
        if (one && n > 1)
                n = 1;
        j->gallery = calloc(n ? n : 1, sizeof(*j->gallery));
        if (!j->gallery) {
                print_set_done(&set);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                snprintf(j->gallery[i].operator_id, VEIN_OPERATOR_MAX, "%s", set.items[i].operator_id);
                j->gallery[i].data = TAKE_PTR(set.items[i].data);
                j->gallery[i].size = set.items[i].size;
                j->n = i + 1;
        }
        print_set_done(&set);
        return 0;
}

/* Opens the reader if it is not open: true when it is. Worker thread. */
static bool ensure_open(VeinWorker *w)
{
        mamori_bio_device *d = NULL;
        char err[MAMORI_BIO_ERROR_MAX] = "";
        unsigned flags = 0;
        int r;

        if (w->device)
                return true;
        r = w->plugin->open(w->options, &d, &flags, err);
        pthread_mutex_lock(&w->lock);
        w->opened = true;
        if (r >= 0 && d) {
                w->device = d;
                w->flags = flags;
        }
        pthread_mutex_unlock(&w->lock);
        return r >= 0 && d;
}

static void *worker_main(void *userdata)
{
        VeinWorker *w = userdata;

        (void)ensure_open(w);
        for (;;) {
                struct vein_event ev = {.kind = VEIN_EVENT_DONE};
                struct job *j;
                uint64_t t0;
                int r;

                pthread_mutex_lock(&w->lock);
                while (!w->stopping && !w->queued) {
                        if (w->device) {
                                pthread_cond_wait(&w->wake, &w->lock);
                                continue;
                        }
                        /* No reader (never opened, or it went away): try again every few seconds,
                         * so it is back (and in Sensors) without waiting for a login to ask. */
                        struct timespec at;
                        clock_gettime(CLOCK_MONOTONIC, &at);
                        at.tv_sec += VEIN_REOPEN_SEC;
                        if (pthread_cond_timedwait(&w->wake, &w->lock, &at) == ETIMEDOUT && !w->stopping &&
                            !w->queued) {
                                pthread_mutex_unlock(&w->lock);
                                (void)ensure_open(w);
                                pthread_mutex_lock(&w->lock);
                        }
                }
                if (w->stopping) {
                        pthread_mutex_unlock(&w->lock);
                        break;
                }
                j = TAKE_PTR(w->queued);
                w->running = j;
                pthread_mutex_unlock(&w->lock);

                t0 = now_mono_usec();
                ev.id = j->id;
                if (job_cancelled(w, j))
                        r = -ECANCELED;
                else if (!ensure_open(w))
                        r = -ENODEV;
                else if (j->dir) {
                        r = load_gallery(w, j);
                        ev.prepare_usec = now_mono_usec() - t0;
                } else
                        r = 0;
                if (r < 0 || (j->kind == JOB_MATCH && j->n == 0))
                        ; /* failed, or nothing to compare with: no hand could match, none is asked for */
                else {
                        r = run_job(w, j, &ev);
                        /* A cancel meant for the previous job may have reached the plugin after that
                         * job's call returned: this job was not cancelled, so run it once more. */
                        if (r == -ECANCELED && !job_cancelled(w, j))
                                r = run_job(w, j, &ev);
                }
                pthread_mutex_lock(&w->lock);
                w->running = NULL;
                if (r == -ENODEV && w->device) {
                        /* The reader went away: close it; the next job reopens it. */
                        w->plugin->close(w->device);
                        w->device = NULL;
                }
                pthread_mutex_unlock(&w->lock);
                if (r < 0) {
                        event_free(&ev);
                        ev.template = NULL;
                        ev.matched = false;
                        ev.operator_id[0] = '\0';
                }
                ev.result = r < 0 ? r : 0;
                ev.gallery = j->n;
                ev.elapsed_usec = now_mono_usec() - t0;
                job_free(j);
                if (thread_mailbox_post(w->mailbox, &ev) < 0)
                        event_free(&ev); /* shutting down: nobody waits for it */
        }
        pthread_mutex_lock(&w->lock);
        if (w->device)
                w->plugin->close(w->device);
        w->device = NULL;
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int vein_worker_start(sd_event *e, const char *plugin_path, const char *options, VeinWorker **ret,
                      char why[BIO_PLUGIN_WHY_MAX])
{
        VeinWorker *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&w->wake, &attr);
        pthread_condattr_destroy(&attr);
        r = bio_plugin_load(plugin_path, &w->plugin, why);
        if (r < 0)
                goto fail;
        w->options = strdup(options ? options : "");
        if (!w->options) {
                r = -ENOMEM;
                goto fail;
        }
        r = thread_mailbox_new(sizeof(struct vein_event), 16, dispatch, event_free, w, &w->mailbox);
        if (r >= 0 && e)
                r = thread_mailbox_attach_event(w->mailbox, e);
        if (r < 0) {
                snprintf(why, BIO_PLUGIN_WHY_MAX, "cannot set up the vein thread's mailbox: %s",
                         strerror(-r));
                goto fail;
        }
        r = -pthread_create(&w->thread, NULL, worker_main, w);
        if (r < 0) {
                snprintf(why, BIO_PLUGIN_WHY_MAX, "cannot start the vein thread: %s", strerror(-r));
                goto fail;
        }
        w->thread_started = true;
        *ret = w;
        return 0;
fail:
        vein_worker_stop(w);
        return r;
}

VeinWorker *vein_worker_stop(VeinWorker *w)
{
        if (!w)
                return NULL;
        if (w->thread_started) {
                pthread_mutex_lock(&w->lock);
                w->stopping = true;
                if (w->running && w->device)
                        w->plugin->cancel(w->device);
                pthread_cond_signal(&w->wake);
                pthread_mutex_unlock(&w->lock);
                thread_mailbox_shutdown(w->mailbox);
                pthread_join(w->thread, NULL);
        }
        job_free(w->queued);
        thread_mailbox_free(w->mailbox);
        bio_plugin_unload(w->plugin);
        free(w->options);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

void vein_worker_device(VeinWorker *w, struct vein_device_info *ret)
{
        pthread_mutex_lock(&w->lock);
        *ret = (struct vein_device_info){
                .present = w->device != NULL,
                .can_identify = w->device && (w->flags & MAMORI_BIO_CAN_IDENTIFY),
        };
        pthread_mutex_unlock(&w->lock);
}

static int submit(VeinWorker *w, struct job *j, vein_event_fn cb, void *userdata)
{
        if (w->active) {
                job_free(j);
                return -EBUSY;
        }
        /* The loop's side first: once queued, the job belongs to the thread (and may be freed). */
        w->active = true;
        w->active_id = j->id;
        w->cb = cb;
        w->userdata = userdata;
        pthread_mutex_lock(&w->lock);
        w->queued = j;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static bool operator_ok(const char *s)
{
        return s && s[0] && strlen(s) < VEIN_OPERATOR_MAX;
}

int vein_worker_enroll(VeinWorker *w, uint64_t id, const char *operator_id, vein_event_fn cb, void *userdata)
{
        struct job *j;

        if (!operator_ok(operator_id))
                return -EINVAL;
        if (w->active)
                return -EBUSY;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->id = id;
        j->kind = JOB_ENROLL;
        snprintf(j->operator_id, sizeof(j->operator_id), "%s", operator_id);
        return submit(w, j, cb, userdata);
}

int vein_worker_match(VeinWorker *w, uint64_t id, const struct vein_template_ref *gallery, size_t n,
                      vein_event_fn cb, void *userdata)
{
        struct job *j;

        if (n == 0 || n > VEIN_GALLERY_MAX || !gallery)
                return -EINVAL;
        if (w->active)
                return -EBUSY;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->id = id;
        j->kind = JOB_MATCH;
        j->gallery = calloc(n, sizeof(*j->gallery));
        if (!j->gallery) {
                free(j);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if (!operator_ok(gallery[i].operator_id) || gallery[i].size == 0 ||
                    gallery[i].size > MAMORI_BIO_TEMPLATE_MAX) {
                        job_free(j);
                        return -EINVAL;
                }
                j->gallery[i].data = malloc(gallery[i].size);
                if (!j->gallery[i].data) {
                        job_free(j);
                        return -ENOMEM;
                }
                j->n = i + 1;
                memcpy(j->gallery[i].data, gallery[i].data, gallery[i].size);
                j->gallery[i].size = gallery[i].size;
                snprintf(j->gallery[i].operator_id, VEIN_OPERATOR_MAX, "%s", gallery[i].operator_id);
        }
        return submit(w, j, cb, userdata);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int vein_worker_match_stored(VeinWorker *w, uint64_t id, const char *dir, char *const *allowed,
                             size_t n_allowed, vein_event_fn cb, void *userdata)
{
        struct job *j;

        if (!w || !dir || (n_allowed > 0 && !allowed) || n_allowed > VEIN_GALLERY_MAX)
                return -EINVAL;
        if (w->active)
                return -EBUSY;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->id = id;
        j->kind = JOB_MATCH;
        j->dir = strdup(dir);
        j->allowed = calloc(n_allowed ? n_allowed : 1, sizeof(char *));
        if (!j->dir || !j->allowed) {
                job_free(j);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_allowed; i++) {
                if (!operator_ok(allowed[i]) || !(j->allowed[i] = strdup(allowed[i]))) {
                        int r = operator_ok(allowed[i]) ? -ENOMEM : -EINVAL;
                        job_free(j);
                        return r;
                }
                j->n_allowed++;
        }
        qsort(j->allowed, j->n_allowed, sizeof(char *), cmp_str);
        return submit(w, j, cb, userdata);
}

void vein_worker_cancel(VeinWorker *w, uint64_t id)
{
        if (!w || !w->active || w->active_id != id)
                return;
        pthread_mutex_lock(&w->lock);
        if (w->queued && w->queued->id == id)
                w->queued->cancelled = true;
        if (w->running && w->running->id == id) {
                w->running->cancelled = true;
                if (w->device)
                        w->plugin->cancel(w->device);
        }
        pthread_mutex_unlock(&w->lock);
}

bool vein_worker_running(VeinWorker *w, uint64_t id)
{
        return w && w->active && w->active_id == id;
}
