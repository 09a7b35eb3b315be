/* The card thread: one PC/SC context driving card logins and PIN changes, so cards never block the loop.
 * Requests reach it through a small queue; what it finished goes back through the thread mailbox. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "card-worker.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "thread-mailbox.h"

#define QUEUE_MAX 8

struct job {
        struct job *next;
        enum card_job_kind kind;
        uint64_t id; /* logins */
        char reader[256];
        char pin[CARD_WORKER_PIN_MAX + 1], new_pin[CARD_WORKER_PIN_MAX + 1];
        bool has_pin;   /* login: the PIN arrived */
        bool cancelled; /* login: cancelled before it took its PIN */
        CardLogin *login;
        card_job_done_fn done;
        void *userdata;
        struct card_job_result result;
};

struct CardWorker {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stop;
        ThreadMailbox *finished; /* struct job *, to the event loop */

        /* Guarded by lock. */
        struct job *queue;   /* FIFO to run */
        struct job *current; /* the job the thread runs, until it is posted */
        size_t queued;

        SCARDCONTEXT ctx;
        bool ctx_valid;
};

static struct job *job_free(struct job *j)
{
        if (!j)
                return NULL;
        OPENSSL_cleanse(j->pin, sizeof(j->pin));
        OPENSSL_cleanse(j->new_pin, sizeof(j->new_pin));
        card_login_free(j->login);
        free(j);
        return NULL;
}

static int ensure_context(CardWorker *w)
{
        if (w->ctx_valid && SCardIsValidContext(w->ctx) == SCARD_S_SUCCESS)
                return 0;
        if (w->ctx_valid)
                (void)SCardReleaseContext(w->ctx);
        w->ctx_valid = false;
        LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &w->ctx);
        if (rv != SCARD_S_SUCCESS)
                return card_pcsc_error_to_errno(rv);
        w->ctx_valid = true;
        return 0;
}

static void forget_context_if_gone(CardWorker *w, int r)
{
        if (r == CARD_E_NO_SERVICE && w->ctx_valid) {
                (void)SCardReleaseContext(w->ctx);
                w->ctx_valid = false;
        }
}

/* Hands a finished job to the event loop (it owns j from here on). */
static void post(CardWorker *w, struct job *j)
{
        pthread_mutex_lock(&w->lock);
        if (w->current == j)
                w->current = NULL;
        pthread_mutex_unlock(&w->lock);
        j->result.id = j->id;
        if (thread_mailbox_post(w->finished, &j) < 0)
                job_free(j); /* stopping: nobody waits for it */
}

/* Connects and takes the card for this job alone (transaction). */
static int take_card(CardWorker *w, const char *reader, CardPcsc **ret)
{
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        int r;

        r = ensure_context(w);
        if (r >= 0)
                r = card_pcsc_connect(w->ctx, reader, &p);
        if (r >= 0)
                r = card_pcsc_begin(p);
        if (r < 0) {
                forget_context_if_gone(w, r);
                return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

static void run_login(CardWorker *w, struct job *j)
{
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        uint64_t t0 = now_mono_usec();
        bool go;
        int r;

        /* Before the PIN: connect, hold, and everything that needs no PIN (SELECT). */
        r = take_card(w, j->reader, &p);
        if (r >= 0) {
                r = card_login_prepare(j->login, card_pcsc_transport(p), NULL);
                if (r < 0) { /* no PIN will go to this card: let others have it now */
                        card_login_detach(j->login);
                        (void)card_pcsc_end(p);
                        p = card_pcsc_free(TAKE_PTR(p));
                }
        } else
                (void)card_login_set_card(j->login, true, r, NULL, 0); /* card-error, as a failing SELECT */

        pthread_mutex_lock(&w->lock);
        while (!w->stop && !j->cancelled && !j->has_pin)
                pthread_cond_wait(&w->wake, &w->lock);
        go = !w->stop && !j->cancelled;
        pthread_mutex_unlock(&w->lock);

        if (!go) {
                card_login_detach(j->login);
                j->result = (struct card_job_result){.result = -ECANCELED, .tries_left = -1};
                post(w, j);
                if (p)
                        (void)card_pcsc_end(p); /* no PIN was sent: the card as it is */
                return;
        }

        /* After the PIN: only VERIFY and the signature are on the critical path. */
        if (p) {
                t0 = now_mono_usec();
                r = card_login_verify(j->login, j->pin);
        }
        OPENSSL_cleanse(j->pin, sizeof(j->pin));
        card_login_detach(j->login);
        const struct card_login_info *info = card_login_info(j->login);
        j->result.result = r < 0 ? r : 0;
        j->result.tries_left = r == CARD_E_PIN_WRONG ? info->tries_left : -1;
        j->result.exchanges = info->exchanges;
        j->result.elapsed_usec = now_mono_usec() - t0;
        j->result.login = j->login;
        bool reset = info->pin_sent;
        post(w, j); /* j belongs to the loop from here on */

        /* Reset while still holding the transaction: no other PC/SC client may get the card between
         * our last APDU and the reset, with the PIN verified. The answer did not wait for this. */
        if (p && reset)
                p = card_pcsc_free_reset(TAKE_PTR(p));
        else if (p)
                (void)card_pcsc_end(p);
}

static void run_change_pin(CardWorker *w, struct job *j)
{
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        _cleanup_(card_freep) Card *c = NULL;
        uint64_t t0 = now_mono_usec();
        int r;

        j->result.tries_left = -1;
        r = take_card(w, j->reader, &p);
        if (r >= 0)
                r = card_new(card_pcsc_transport(p), NULL, &c);
        if (r >= 0) {
                r = card_select(c);
                if (r >= 0)
                        r = card_change_pin(c, j->pin, j->new_pin);
                if (r == CARD_E_PIN_WRONG)
                        j->result.tries_left = card_tries_left(c);
                j->result.exchanges = card_exchanges(c);
                c = card_free(c);
                /* Reset before the transaction ends: the PIN-verified state dies with it. */
                p = card_pcsc_free_reset(TAKE_PTR(p));
        }
        OPENSSL_cleanse(j->pin, sizeof(j->pin));
        OPENSSL_cleanse(j->new_pin, sizeof(j->new_pin));
        j->result.result = r < 0 ? r : 0;
        j->result.elapsed_usec = now_mono_usec() - t0;
        post(w, j);
}

static void *worker_thread(void *userdata)
{
        CardWorker *w = userdata;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->stop && !w->queue)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->stop)
                        break;
                struct job *j = w->queue;
                w->queue = j->next;
                w->queued--;
                j->next = NULL;
                w->current = j;
                pthread_mutex_unlock(&w->lock);
                if (j->kind == CARD_JOB_LOGIN && j->cancelled) {
                        j->result.result = -ECANCELED;
                        j->result.tries_left = -1;
                        post(w, j);
                } else if (j->kind == CARD_JOB_LOGIN)
                        run_login(w, j);
                else
                        run_change_pin(w, j);
                pthread_mutex_lock(&w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        if (w->ctx_valid)
                (void)SCardReleaseContext(w->ctx);
        return NULL;
}

static void dispatch_finished(void *item, void *userdata)
{
        struct job *j = *(struct job **)item;

        if (j->done)
                j->done(j->userdata, &j->result);
        job_free(j);
}

static void free_finished(void *item)
{
        job_free(*(struct job **)item);
}

/* A login that will hold the card until its PIN comes. Called with the lock held. */
static bool login_waiting_locked(CardWorker *w)
{
        if (w->current && w->current->kind == CARD_JOB_LOGIN && !w->current->has_pin &&
            !w->current->cancelled)
                return true;
        for (struct job *j = w->queue; j; j = j->next)
                if (j->kind == CARD_JOB_LOGIN && !j->has_pin && !j->cancelled)
                        return true;
        return false;
}

static int enqueue(CardWorker *w, struct job *j)
{
        pthread_mutex_lock(&w->lock);
        if (w->queued >= QUEUE_MAX || (j->kind == CARD_JOB_CHANGE_PIN && login_waiting_locked(w))) {
                pthread_mutex_unlock(&w->lock);
                return -EBUSY;
        }
        struct job **tail = &w->queue;
        while (*tail)
                tail = &(*tail)->next;
        *tail = j;
        w->queued++;
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static int job_new(enum card_job_kind kind, const char *reader, card_job_done_fn done, void *userdata,
                   struct job **ret)
{
        struct job *j;

        if (!reader || strlen(reader) >= sizeof(j->reader))
                return -EINVAL;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->kind = kind;
        strcpy(j->reader, reader);
        j->done = done;
        j->userdata = userdata;
        *ret = j;
        return 0;
}

int card_worker_start_login(CardWorker *w, const char *reader, CardLogin *l, uint64_t id,
                            card_job_done_fn done, void *userdata)
{
        struct job *j = NULL;
        int r;

        if (!l || id == 0)
                return -EINVAL;
        r = job_new(CARD_JOB_LOGIN, reader, done, userdata, &j);
        if (r < 0)
                return r;
        j->id = id;
        j->login = l;
        r = enqueue(w, j);
        if (r < 0) {
                j->login = NULL; /* stays the caller's */
                job_free(j);
        }
        return r;
}

/* The login id, queued or waiting for its PIN. Called with the lock held. */
static struct job *find_login_locked(CardWorker *w, uint64_t id)
{
        if (w->current && w->current->kind == CARD_JOB_LOGIN && w->current->id == id)
                return w->current;
        for (struct job *j = w->queue; j; j = j->next)
                if (j->kind == CARD_JOB_LOGIN && j->id == id)
                        return j;
        return NULL;
}

int card_worker_answer_pin(CardWorker *w, uint64_t id, const char *pin)
{
        struct job *j;

        if (!pin || strlen(pin) > CARD_WORKER_PIN_MAX)
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        j = find_login_locked(w, id);
        if (!j || j->has_pin || j->cancelled) {
                pthread_mutex_unlock(&w->lock);
                return -ESRCH;
        }
        strcpy(j->pin, pin);
        j->has_pin = true;
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

void card_worker_cancel_login(CardWorker *w, uint64_t id)
{
        struct job *j;

        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        j = find_login_locked(w, id);
        if (j && !j->has_pin) {
                j->cancelled = true;
                pthread_cond_broadcast(&w->wake);
        }
        pthread_mutex_unlock(&w->lock);
}

int card_worker_change_pin(CardWorker *w, const char *reader, const char *old_pin, const char *new_pin,
                           card_job_done_fn done, void *userdata)
{
        struct job *j = NULL;
        int r;

        if (!old_pin || !new_pin || strlen(old_pin) > CARD_WORKER_PIN_MAX ||
            strlen(new_pin) > CARD_WORKER_PIN_MAX)
                return -EINVAL;
        r = job_new(CARD_JOB_CHANGE_PIN, reader, done, userdata, &j);
        if (r < 0)
                return r;
        strcpy(j->pin, old_pin);
        strcpy(j->new_pin, new_pin);
        r = enqueue(w, j);
        if (r < 0)
                job_free(j);
        return r;
}

int card_worker_start(sd_event *e, CardWorker **ret)
{
        CardWorker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        /* Room for every job that can be queued, running and cancelled at once: posts never wait. */
        r = thread_mailbox_new(sizeof(struct job *), QUEUE_MAX + 2, dispatch_finished, free_finished, w,
                               &w->finished);
        if (r >= 0)
                r = thread_mailbox_attach_event(w->finished, e);
        if (r < 0) {
                card_worker_stop(w);
                return r;
        }
        r = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (r < 0) {
                card_worker_stop(w);
                return r;
        }
        w->started = true;
        *ret = w;
        return 0;
}

static void free_list(struct job *j)
{
        while (j) {
                struct job *next = j->next;
                job_free(j);
                j = next;
        }
}

CardWorker *card_worker_stop(CardWorker *w)
{
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stop = true;
                pthread_cond_broadcast(&w->wake);
                pthread_mutex_unlock(&w->lock);
                thread_mailbox_shutdown(w->finished); /* a post waiting for room gives up */
                pthread_join(w->thread, NULL);
        }
        free_list(w->queue);
        w->finished = thread_mailbox_free(w->finished); /* undelivered results: callbacks dropped */
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        return NULL;
}
