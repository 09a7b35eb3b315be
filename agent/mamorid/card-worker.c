/* A thread that owns one PC/SC context for card logins, so PIN checks never block the event loop. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "card-worker.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define PIN_MAX 16

struct CardWorker {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stop, busy, has_job, has_result;
        int done_fd;
        sd_event_source *io;

        /* The job (guarded by lock until the thread takes it). */
        enum card_job_kind kind;
        char reader[256];
        char pin[PIN_MAX + 1], new_pin[PIN_MAX + 1];
        uint8_t *der;
        size_t der_len;
        card_job_done_fn done;
        void *userdata;
        struct card_job_result result;

        SCARDCONTEXT ctx;
        bool ctx_valid;
};

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

static void run_job(CardWorker *w)
{
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        _cleanup_(card_freep) Card *c = NULL;
        uint64_t t0 = now_mono_usec();
        int r;

        w->result = (struct card_job_result){.tries_left = -1};
        r = ensure_context(w);
        if (r >= 0)
                r = card_pcsc_connect(w->ctx, w->reader, &p);
        if (r >= 0)
                r = card_new(card_pcsc_transport(p), NULL, &c);
        /* Exclusive for the whole job; no transaction, no PIN. */
        if (r >= 0)
                r = card_pcsc_begin(p);
        if (r >= 0) {
                if (w->kind == CARD_JOB_LOGIN)
                        r = card_login(c, w->pin, w->der, w->der_len);
                else {
                        r = card_select(c);
                        if (r >= 0)
                                r = card_change_pin(c, w->pin, w->new_pin);
                }
                if (r == CARD_E_PIN_WRONG)
                        w->result.tries_left = card_tries_left(c);
                w->result.exchanges = card_exchanges(c);
                /* Disconnect with a reset while still holding the transaction: no other PC/SC client
                 * may get the card between our last APDU and the reset, with the PIN verified. */
                p = card_pcsc_free_reset(TAKE_PTR(p));
        }
        if (r == CARD_E_NO_SERVICE && w->ctx_valid) {
                (void)SCardReleaseContext(w->ctx);
                w->ctx_valid = false;
        }
        w->result.result = r < 0 ? r : 0;
        w->result.elapsed_usec = now_mono_usec() - t0;
}

static void *worker_thread(void *userdata)
{
        CardWorker *w = userdata;
        uint64_t one = 1;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->stop && !w->has_job)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->stop)
                        break;
                w->has_job = false;
                pthread_mutex_unlock(&w->lock);
                run_job(w);
                OPENSSL_cleanse(w->pin, sizeof(w->pin));
                OPENSSL_cleanse(w->new_pin, sizeof(w->new_pin));
                pthread_mutex_lock(&w->lock);
                w->has_result = true;
                (void)!write(w->done_fd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&w->lock);
        if (w->ctx_valid)
                (void)SCardReleaseContext(w->ctx);
        return NULL;
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        CardWorker *w = userdata;
        uint64_t v;
        struct card_job_result result;
        card_job_done_fn done;
        void *ud;

        (void)!read(fd, &v, sizeof(v));
        pthread_mutex_lock(&w->lock);
        if (!w->has_result) {
                pthread_mutex_unlock(&w->lock);
                return 0;
        }
        w->has_result = false;
        w->busy = false;
        result = w->result;
        done = w->done;
        ud = w->userdata;
        free(w->der);
        w->der = NULL;
        pthread_mutex_unlock(&w->lock);
        if (done)
                done(ud, &result);
        return 0;
}

int card_worker_submit(CardWorker *w, enum card_job_kind kind, const char *reader, const char *pin,
                       const char *new_pin, const uint8_t *der, size_t der_len, card_job_done_fn done,
                       void *userdata)
{
        if (!reader || strlen(reader) >= sizeof(w->reader) || !pin || strlen(pin) > PIN_MAX ||
            (new_pin && strlen(new_pin) > PIN_MAX))
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        if (w->busy) {
                pthread_mutex_unlock(&w->lock);
                return -EBUSY;
        }
        uint8_t *copy = NULL;
        if (der_len > 0) {
                copy = malloc(der_len);
                if (!copy) {
                        pthread_mutex_unlock(&w->lock);
                        return -ENOMEM;
                }
                memcpy(copy, der, der_len);
        }
        w->kind = kind;
        strcpy(w->reader, reader);
        strcpy(w->pin, pin);
        strcpy(w->new_pin, new_pin ? new_pin : "");
        w->der = copy;
        w->der_len = der_len;
        w->done = done;
        w->userdata = userdata;
        w->busy = w->has_job = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

int card_worker_start(sd_event *e, CardWorker **ret)
{
        CardWorker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        w->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->done_fd < 0) {
                r = negative_errno();
                card_worker_stop(w);
                return r;
        }
        r = sd_event_add_io(e, &w->io, w->done_fd, EPOLLIN, on_done, w);
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

CardWorker *card_worker_stop(CardWorker *w)
{
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stop = true;
                pthread_cond_signal(&w->wake);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->thread, NULL);
        }
        sd_event_source_disable_unref(w->io);
        safe_close(w->done_fd);
        OPENSSL_cleanse(w->pin, sizeof(w->pin));
        OPENSSL_cleanse(w->new_pin, sizeof(w->new_pin));
        free(w->der);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        return NULL;
}
