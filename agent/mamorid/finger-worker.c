/* The fingerprint thread: owns GLib's default main context and drives libfprint asynchronously; results
 * go back to the event loop through the thread mailbox. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fprint.h>
#include <gio/gio.h>
#include <glib.h>

#include "finger-worker.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "print-store.h"
#include "thread-mailbox.h"

#define MAILBOX_CAPACITY 64
#define STOP_GRACE_MS    3000 /* the sensor gets this long to close at stop */

enum job_kind { JOB_ENROLL, JOB_MATCH };

struct job {
        FingerWorker *w;
        uint64_t id;
        enum job_kind kind;
        char operator_id[FINGER_OPERATOR_MAX]; /* enroll */
        char *dir;                             /* match: where the prints are */
        char **allowed;                        /* match: operators whose prints count, sorted */
        size_t n_allowed;
        GPtrArray *prints; /* match: the gallery as FpPrint, on the thread */
        GCancellable *cancellable;
        finger_event_fn cb;
        void *userdata;
        int retries;
        uint64_t started_usec;
        uint64_t prepare_usec;
};

struct item {
        struct finger_event ev;
        finger_event_fn cb;
        void *userdata;
};

struct FingerWorker {
        pthread_t thread;
        bool started;
        ThreadMailbox *events;

        pthread_mutex_t lock; /* guards info, current, stopping */
        struct finger_device_info info;
        struct job *current; /* submitted and not yet DONE */
        bool stopping;

        /* The thread's own. */
        GMainContext *ctx;
        GMainLoop *loop;
        FpContext *fp;
        FpDevice *dev;
        bool opening;
};

static void request_cancel(FingerWorker *w, uint64_t id, bool any);

static void job_free(struct job *j)
{
        if (!j)
                return;
        for (size_t i = 0; i < j->n_allowed; i++)
                free(j->allowed[i]);
        free(j->allowed);
        free(j->dir);
        if (j->prints)
                g_ptr_array_unref(j->prints);
        if (j->cancellable)
                g_object_unref(j->cancellable);
        free(j);
}

/* ---- to the event loop ---- */

static void post(FingerWorker *w, struct job *j, struct finger_event *ev)
{
        struct item it = {.ev = *ev, .cb = j->cb, .userdata = j->userdata};

        it.ev.id = j->id;
        if (thread_mailbox_post(w->events, &it) < 0)
                free(it.ev.print); /* stopping: nobody waits for it */
}

/* The job's last event; the job is freed here. */
static void finish(FingerWorker *w, struct job *j, struct finger_event *ev)
{
        ev->kind = FINGER_EVENT_DONE;
        ev->elapsed_usec = now_mono_usec() - j->started_usec;
        ev->prepare_usec = j->prepare_usec;
        ev->gallery = j->prints ? j->prints->len : 0;
        pthread_mutex_lock(&w->lock);
        if (w->current == j)
                w->current = NULL;
        bool stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        post(w, j, ev);
        job_free(j);
        if (stopping)
                g_main_loop_quit(w->loop);
}

static void dispatch_item(void *item, void *userdata)
{
        struct item *it = item;

        if (it->cb)
                it->cb(it->userdata, &it->ev);
        free(it->ev.print);
}

static void free_item(void *item)
{
        free(((struct item *)item)->ev.print);
}

/* ---- the sensor (thread only) ---- */

static void set_info(FingerWorker *w, const struct finger_device_info *info)
{
        pthread_mutex_lock(&w->lock);
        w->info = *info;
        pthread_mutex_unlock(&w->lock);
}

static void on_closed(GObject *source, GAsyncResult *res, gpointer userdata)
{
        g_autoptr(GError) error = NULL;
        (void)fp_device_close_finish(FP_DEVICE(source), res, &error);
        g_object_unref(source);
}

/* Forgets the sensor (it went away, or failed to open); a later request looks again. */
static void drop_device(FingerWorker *w)
{
        set_info(w, &(struct finger_device_info){0});
        if (!w->dev)
                return;
        FpDevice *dev = g_steal_pointer(&w->dev);
        if (fp_device_is_open(dev))
                fp_device_close(dev, NULL, on_closed, NULL);
        else
                g_object_unref(dev);
}

static void on_opened(GObject *source, GAsyncResult *res, gpointer userdata)
{
        FingerWorker *w = userdata;
        g_autoptr(GError) error = NULL;
        FpDevice *dev = FP_DEVICE(source);
        struct finger_device_info info = {0};

        w->opening = false;
        if (!fp_device_open_finish(dev, res, &error)) {
                g_warning("cannot open fingerprint sensor %s: %s", fp_device_get_name(dev), error->message);
                if (w->dev == dev)
                        drop_device(w);
                return;
        }
        if (w->dev != dev)
                return;
        info.present = true;
        info.can_identify = fp_device_has_feature(dev, FP_DEVICE_FEATURE_IDENTIFY);
        info.enroll_stages = fp_device_get_nr_enroll_stages(dev);
        snprintf(info.driver, sizeof(info.driver), "%s", fp_device_get_driver(dev));
        set_info(w, &info);
}

static void open_device(FingerWorker *w, FpDevice *dev)
{
        if (w->dev || w->opening)
                return;
        w->dev = g_object_ref(dev);
        w->opening = true;
        fp_device_open(dev, NULL, on_opened, w);
}

static void on_device_added(FpContext *fp, FpDevice *dev, gpointer userdata)
{
        open_device(userdata, dev);
}

static void on_device_removed(FpContext *fp, FpDevice *dev, gpointer userdata)
{
        FingerWorker *w = userdata;
        if (w->dev == dev && !w->current)
                drop_device(w);
}

/* Enumerates (again, with a fresh context: the virtual devices are found only at enumeration) and
 * opens the first sensor. */
static gboolean find_device(gpointer userdata)
{
        FingerWorker *w = userdata;
        GPtrArray *devices;

        if (w->dev || w->opening)
                return G_SOURCE_REMOVE;
        if (w->fp) {
                g_signal_handlers_disconnect_by_data(w->fp, w);
                g_clear_object(&w->fp);
        }
        w->fp = fp_context_new();
        g_signal_connect(w->fp, "device-added", G_CALLBACK(on_device_added), w);
        g_signal_connect(w->fp, "device-removed", G_CALLBACK(on_device_removed), w);
        fp_context_enumerate(w->fp);
        devices = fp_context_get_devices(w->fp);
        if (devices && devices->len > 0)
                open_device(w, g_ptr_array_index(devices, 0));
        return G_SOURCE_REMOVE;
}

static int error_to_errno(const GError *e)
{
        if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return -ECANCELED;
        if (e->domain == FP_DEVICE_RETRY)
                return -EAGAIN;
        if (g_error_matches(e, FP_DEVICE_ERROR, FP_DEVICE_ERROR_REMOVED) ||
            g_error_matches(e, FP_DEVICE_ERROR, FP_DEVICE_ERROR_NOT_OPEN))
                return -ENODEV;
        if (g_error_matches(e, FP_DEVICE_ERROR, FP_DEVICE_ERROR_DATA_DUPLICATE))
                return -EEXIST;
        if (g_error_matches(e, FP_DEVICE_ERROR, FP_DEVICE_ERROR_NOT_SUPPORTED))
                return -EOPNOTSUPP;
        return -EIO;
}

/* A job that failed: DONE with the error; a sensor that went away is forgotten. */
static void fail(FingerWorker *w, struct job *j, int r)
{
        struct finger_event ev = {.result = r};

        if (r == -ENODEV)
                drop_device(w);
        finish(w, j, &ev);
}

/* ---- enrolment ---- */

static void on_enroll_progress(FpDevice *dev, gint stages, FpPrint *print, gpointer userdata, GError *error)
{
        struct job *j = userdata;
        struct finger_event ev = {
                .kind = FINGER_EVENT_PROGRESS,
                .stage = stages,
                .stages = fp_device_get_nr_enroll_stages(dev),
                .retry = error != NULL,
        };
        post(j->w, j, &ev);
}

static void on_enrolled(GObject *source, GAsyncResult *res, gpointer userdata)
{
        struct job *j = userdata;
        FingerWorker *w = j->w;
        g_autoptr(GError) error = NULL;
        g_autoptr(FpPrint) print = fp_device_enroll_finish(FP_DEVICE(source), res, &error);
        g_autofree guchar *data = NULL;
        gsize size = 0;
        struct finger_event ev = {0};

        if (!print)
                return fail(w, j, error_to_errno(error));
        if (!fp_print_serialize(print, &data, &size, &error) || size == 0 || size > PRINT_FINGER_MAX)
                return fail(w, j, -EIO);
        ev.print = malloc(size);
        if (!ev.print)
                return fail(w, j, -ENOMEM);
        memcpy(ev.print, data, size);
        ev.print_size = size;
        ev.stages = ev.stage = fp_device_get_nr_enroll_stages(FP_DEVICE(source));
        finish(w, j, &ev);
}

static void run_enroll(FingerWorker *w, struct job *j)
{
        FpPrint *template = fp_print_new(w->dev);

        fp_print_set_username(template, j->operator_id);
        fp_print_set_description(template, "mamori");
        fp_device_enroll(w->dev, template, j->cancellable, on_enroll_progress, j, NULL, on_enrolled, j);
}

/* ---- matching ---- */

static void run_match(FingerWorker *w, struct job *j);

/* The touch could not be read: try again (and say so), up to FINGER_RETRIES_MAX times. */
static bool retry_scan(FingerWorker *w, struct job *j)
{
        if (++j->retries > FINGER_RETRIES_MAX || g_cancellable_is_cancelled(j->cancellable))
                return false;
        struct finger_event ev = {.kind = FINGER_EVENT_PROGRESS, .retry = true, .stage = j->retries};
        post(w, j, &ev);
        run_match(w, j);
        return true;
}

static void matched(FingerWorker *w, struct job *j, FpPrint *match)
{
        struct finger_event ev = {0};
        guint idx;

        if (match && g_ptr_array_find(j->prints, match, &idx)) {
                ev.matched = true;
                snprintf(ev.operator_id, sizeof(ev.operator_id), "%s",
                         (const char *)g_object_get_data(G_OBJECT(match), "mamori-operator"));
        }
        finish(w, j, &ev);
}

static void on_identified(GObject *source, GAsyncResult *res, gpointer userdata)
{
        struct job *j = userdata;
        FingerWorker *w = j->w;
        g_autoptr(GError) error = NULL;
        g_autoptr(FpPrint) match = NULL;

        if (!fp_device_identify_finish(FP_DEVICE(source), res, &match, NULL, &error)) {
                int r = error_to_errno(error);
                if (r == -EAGAIN && retry_scan(w, j))
                        return;
                return fail(w, j, r);
        }
        matched(w, j, match);
}

static void on_verified(GObject *source, GAsyncResult *res, gpointer userdata)
{
        struct job *j = userdata;
        FingerWorker *w = j->w;
        g_autoptr(GError) error = NULL;
        gboolean match = FALSE;

        if (!fp_device_verify_finish(FP_DEVICE(source), res, &match, NULL, &error)) {
                int r = error_to_errno(error);
                if (r == -EAGAIN && retry_scan(w, j))
                        return;
                return fail(w, j, r);
        }
        matched(w, j, match ? g_ptr_array_index(j->prints, 0) : NULL);
}

static void run_match(FingerWorker *w, struct job *j)
{
        if (!w->dev)
                return fail(w, j, -ENODEV);
        if (fp_device_has_feature(w->dev, FP_DEVICE_FEATURE_IDENTIFY))
                fp_device_identify(w->dev, j->prints, j->cancellable, NULL, NULL, NULL, on_identified, j);
        else if (j->prints->len == 1)
                fp_device_verify(w->dev, g_ptr_array_index(j->prints, 0), j->cancellable, NULL, NULL, NULL,
                                 on_verified, j);
        else
                fail(w, j, -EOPNOTSUPP);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The prints of the allowed operators, read here (blocking I/O stays off the event loop) and made
 * prints of this sensor. A print that does not parse, belongs to another sensor, or names another
 * operator than its directory says is left out. A sensor that cannot identify gets one print. */
static int load_gallery(FingerWorker *w, struct job *j)
{
        struct print_set set = {0};
        bool one = !fp_device_has_feature(w->dev, FP_DEVICE_FEATURE_IDENTIFY);
        int r;

        j->prints = g_ptr_array_new_with_free_func(g_object_unref);
        /* Only the allowed operators' files are opened (the store filters by directory). */
        r = print_store_load(j->dir, BIO_MODALITY_FINGER, j->allowed, j->n_allowed, &set);
        if (r < 0)
                return r;
        for (size_t i = 0; i < set.n && !(one && j->prints->len > 0); i++) {
                g_autoptr(GError) error = NULL;
                const char *op = set.items[i].operator_id, *user;
                FpPrint *p;

                p = fp_print_deserialize(set.items[i].data, set.items[i].size, &error);
                if (!p)
                        continue;
                user = fp_print_get_username(p);
                if (!user || !streq(user, op) || !fp_print_compatible(p, w->dev)) {
                        g_object_unref(p);
                        continue;
                }
                g_object_set_data_full(G_OBJECT(p), "mamori-operator", g_strdup(op), g_free);
                g_ptr_array_add(j->prints, p);
        }
        print_set_done(&set);
        return j->prints->len > 0 ? 0 : -ENOENT;
}

/* ---- jobs arrive here, on the thread ---- */

static gboolean run_job(gpointer userdata)
{
        struct job *j = userdata;
        FingerWorker *w = j->w;

        j->started_usec = now_mono_usec();
        if (g_cancellable_is_cancelled(j->cancellable)) {
                fail(w, j, -ECANCELED);
                return G_SOURCE_REMOVE;
        }
        if (!w->dev || !fp_device_is_open(w->dev)) {
                fail(w, j, -ENODEV);
                return G_SOURCE_REMOVE;
        }
        if (j->kind == JOB_ENROLL) {
                run_enroll(w, j);
                return G_SOURCE_REMOVE;
        }
        int r = load_gallery(w, j);
        j->prepare_usec = now_mono_usec() - j->started_usec;
        if (r < 0) {
                /* Nothing this sensor can compare with: a touch could never match. */
                struct finger_event ev = {0};
                finish(w, j, &ev);
        } else
                run_match(w, j);
        return G_SOURCE_REMOVE;
}

static gboolean stop_loop(gpointer userdata)
{
        FingerWorker *w = userdata;
        g_main_loop_quit(w->loop);
        return G_SOURCE_REMOVE;
}

static void on_closed_at_stop(GObject *source, GAsyncResult *res, gpointer userdata)
{
        FingerWorker *w = userdata;
        g_autoptr(GError) error = NULL;
        (void)fp_device_close_finish(FP_DEVICE(source), res, &error);
        g_main_loop_quit(w->loop);
}

static gboolean begin_stop(gpointer userdata)
{
        FingerWorker *w = userdata;

        /* A job still running was cancelled: its completion quits the loop (finish()). */
        pthread_mutex_lock(&w->lock);
        bool busy = w->current != NULL;
        pthread_mutex_unlock(&w->lock);
        if (!busy)
                g_main_loop_quit(w->loop);
        return G_SOURCE_REMOVE;
}

static void *worker_thread(void *userdata)
{
        FingerWorker *w = userdata;

        g_main_context_acquire(w->ctx);
        g_idle_add(find_device, w);
        g_main_loop_run(w->loop);

        /* Close the sensor, bounded: a driver that never answers does not hold the agent. */
        if (w->dev && fp_device_is_open(w->dev)) {
                GSource *t = g_timeout_source_new(STOP_GRACE_MS);
                g_source_set_callback(t, stop_loop, w, NULL);
                g_source_attach(t, w->ctx);
                fp_device_close(w->dev, NULL, on_closed_at_stop, w);
                g_main_loop_run(w->loop);
                g_source_destroy(t);
                g_source_unref(t);
        }
        g_clear_object(&w->dev);
        if (w->fp)
                g_signal_handlers_disconnect_by_data(w->fp, w);
        g_clear_object(&w->fp);
        /* Let whatever the closing left behind run once, without blocking. */
        while (g_main_context_iteration(w->ctx, FALSE))
                ;
        g_main_context_release(w->ctx);
        return NULL;
}

/* ---- the event loop's side ---- */

int finger_worker_start(sd_event *e, FingerWorker **ret)
{
        FingerWorker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        w->ctx = g_main_context_default();
        w->loop = g_main_loop_new(w->ctx, FALSE);
        r = thread_mailbox_new(sizeof(struct item), MAILBOX_CAPACITY, dispatch_item, free_item, w,
                               &w->events);
        if (r >= 0)
                r = thread_mailbox_attach_event(w->events, e);
        if (r >= 0)
                r = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (r < 0) {
                finger_worker_stop(w);
                return r;
        }
        w->started = true;
        *ret = w;
        return 0;
}

FingerWorker *finger_worker_stop(FingerWorker *w)
{
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stopping = true;
                pthread_mutex_unlock(&w->lock);
                thread_mailbox_shutdown(w->events);
                request_cancel(w, 0, true);
                g_main_context_invoke(w->ctx, begin_stop, w);
                pthread_join(w->thread, NULL);
        }
        w->events = thread_mailbox_free(w->events);
        if (w->loop)
                g_main_loop_unref(w->loop);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

void finger_worker_device(FingerWorker *w, struct finger_device_info *ret)
{
        if (!w) {
                *ret = (struct finger_device_info){0};
                return;
        }
        pthread_mutex_lock(&w->lock);
        *ret = w->info;
        pthread_mutex_unlock(&w->lock);
}

static int submit(FingerWorker *w, struct job *j)
{
        pthread_mutex_lock(&w->lock);
        if (w->stopping || w->current) {
                bool stopping = w->stopping;
                pthread_mutex_unlock(&w->lock);
                job_free(j);
                return stopping ? -ESHUTDOWN : -EBUSY;
        }
        if (!w->info.present) {
                pthread_mutex_unlock(&w->lock);
                job_free(j);
                g_main_context_invoke(w->ctx, find_device, w); /* look again, for the next request */
                return -ENODEV;
        }
        w->current = j;
        pthread_mutex_unlock(&w->lock);
        g_main_context_invoke(w->ctx, run_job, j);
        return 0;
}

static struct job *job_new(FingerWorker *w, uint64_t id, enum job_kind kind, finger_event_fn cb,
                           void *userdata)
{
        struct job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        *j = (struct job){.w = w, .id = id, .kind = kind, .cb = cb, .userdata = userdata};
        j->cancellable = g_cancellable_new();
        return j;
}

int finger_worker_enroll(FingerWorker *w, uint64_t id, const char *operator_id, finger_event_fn cb,
                         void *userdata)
{
        struct job *j;

        if (!w || !operator_id || !*operator_id || strlen(operator_id) >= FINGER_OPERATOR_MAX)
                return -EINVAL;
        j = job_new(w, id, JOB_ENROLL, cb, userdata);
        if (!j)
                return -ENOMEM;
        snprintf(j->operator_id, sizeof(j->operator_id), "%s", operator_id);
        return submit(w, j);
}

int finger_worker_match(FingerWorker *w, uint64_t id, const char *dir, char *const *allowed,
                        size_t n_allowed, finger_event_fn cb, void *userdata)
{
        struct job *j;

        if (!w || !dir || (n_allowed > 0 && !allowed))
                return -EINVAL;
        j = job_new(w, id, JOB_MATCH, cb, userdata);
        if (!j)
                return -ENOMEM;
        j->dir = strdup(dir);
        j->allowed = calloc(n_allowed ? n_allowed : 1, sizeof(char *));
        if (!j->dir || !j->allowed) {
                job_free(j);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_allowed; i++) {
                j->allowed[i] = strdup(allowed[i]);
                if (!j->allowed[i]) {
                        job_free(j);
                        return -ENOMEM;
                }
                j->n_allowed++;
        }
        qsort(j->allowed, j->n_allowed, sizeof(char *), cmp_str);
        return submit(w, j);
}

struct cancel_request {
        FingerWorker *w;
        uint64_t id;
        bool any;
};

/* On the thread: libfprint's cancellation handlers then run where its device lives. */
static gboolean cancel_on_thread(gpointer userdata)
{
        struct cancel_request *c = userdata;
        FingerWorker *w = c->w;
        GCancellable *cancellable = NULL;

        pthread_mutex_lock(&w->lock);
        if (w->current && (c->any || w->current->id == c->id))
                cancellable = g_object_ref(w->current->cancellable);
        pthread_mutex_unlock(&w->lock);
        if (cancellable) {
                g_cancellable_cancel(cancellable);
                g_object_unref(cancellable);
        }
        return G_SOURCE_REMOVE;
}

static void request_cancel(FingerWorker *w, uint64_t id, bool any)
{
        struct cancel_request *c = g_new0(struct cancel_request, 1);

        *c = (struct cancel_request){.w = w, .id = id, .any = any};
        g_main_context_invoke_full(w->ctx, G_PRIORITY_HIGH, cancel_on_thread, c, g_free);
}

void finger_worker_cancel(FingerWorker *w, uint64_t id)
{
        if (w && finger_worker_running(w, id))
                request_cancel(w, id, false);
}

bool finger_worker_running(FingerWorker *w, uint64_t id)
{
        bool r;

        if (!w)
                return false;
        pthread_mutex_lock(&w->lock);
        r = w->current && w->current->id == id;
        pthread_mutex_unlock(&w->lock);
        return r;
}
