/* A fixed pool of threads sharing the signature checks of the batches in flight (see verify-pool.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "verify-pool.h"

/* One verify_pool_run() call: indexes are taken one at a time, by the caller and any pool thread. */
typedef struct Batch {
        size_t n;
        atomic_size_t next;
        log_job_fn job;
        void *userdata;
        unsigned active;     /* pool threads working on it; under the pool's mutex */
        pthread_cond_t idle; /* active dropped to 0 */
        struct Batch *prev_batch, *next_batch;
} Batch;

struct VerifyPool {
        pthread_mutex_t mutex;
        pthread_cond_t work; /* a batch was added, or stop */
        Batch *head, *tail;  /* batches with indexes left, oldest first */
        bool stop;
        pthread_t *threads;
        unsigned n_threads;
};

static void unlink_batch(VerifyPool *p, Batch *b)
{
        if (b->prev_batch)
                b->prev_batch->next_batch = b->next_batch;
        else if (p->head == b)
                p->head = b->next_batch;
        else
                return; /* not linked */
        if (b->next_batch)
                b->next_batch->prev_batch = b->prev_batch;
        else
                p->tail = b->prev_batch;
        b->prev_batch = b->next_batch = NULL;
}

/* Takes indexes of b until none are left. */
static void drain(Batch *b)
{
        for (;;) {
                size_t i = atomic_fetch_add(&b->next, 1);
                if (i >= b->n)
                        return;
                b->job(i, b->userdata);
        }
}

static void *worker(void *userdata)
{
        VerifyPool *p = userdata;

        pthread_mutex_lock(&p->mutex);
        for (;;) {
                Batch *b;

                while (!p->stop && !p->head)
                        pthread_cond_wait(&p->work, &p->mutex);
                if (p->stop)
                        break;
                b = p->head;
                if (atomic_load(&b->next) >= b->n) {
                        /* Every index taken: nothing left for a newcomer. */
                        unlink_batch(p, b);
                        continue;
                }
                b->active++;
                pthread_mutex_unlock(&p->mutex);
                drain(b);
                pthread_mutex_lock(&p->mutex);
                unlink_batch(p, b);
                if (--b->active == 0)
                        pthread_cond_signal(&b->idle);
        }
        pthread_mutex_unlock(&p->mutex);
        return NULL;
}

void verify_pool_run(VerifyPool *p, size_t n, log_job_fn job, void *job_userdata)
{
        Batch b = {.n = n, .job = job, .userdata = job_userdata};

        if (n == 0)
                return;
        atomic_init(&b.next, 0);
        if (!p || p->n_threads == 0 || n == 1) {
                drain(&b);
                return;
        }
        pthread_cond_init(&b.idle, NULL);
        pthread_mutex_lock(&p->mutex);
        b.prev_batch = p->tail;
        if (p->tail)
                p->tail->next_batch = &b;
        else
                p->head = &b;
        p->tail = &b;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mutex);

        drain(&b);

        /* Every index is taken; wait for those a pool thread is still checking. Unlinked under the
         * mutex, no pool thread can pick the batch up afterwards. */
        pthread_mutex_lock(&p->mutex);
        unlink_batch(p, &b);
        while (b.active > 0)
                pthread_cond_wait(&b.idle, &p->mutex);
        pthread_mutex_unlock(&p->mutex);
        pthread_cond_destroy(&b.idle);
}

static void run_parallel(size_t n, log_job_fn job, void *job_userdata, void *userdata)
{
        verify_pool_run(userdata, n, job, job_userdata);
}

LogParallel verify_pool_parallel(VerifyPool *p)
{
        return (LogParallel){.run = run_parallel, .userdata = p};
}

unsigned verify_pool_default_threads(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        /* The caller works on its batch too. */
        return n > 1 ? (unsigned)(n > 256 ? 255 : n - 1) : 0;
}

int verify_pool_new(unsigned n_threads, VerifyPool **ret)
{
        VerifyPool *p;
        int r;

        if (!ret)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->mutex, NULL);
        pthread_cond_init(&p->work, NULL);
        if (n_threads > 0) {
                p->threads = calloc(n_threads, sizeof(pthread_t));
                if (!p->threads) {
                        verify_pool_free(p);
                        return -ENOMEM;
                }
        }
        for (; p->n_threads < n_threads; p->n_threads++) {
                r = -pthread_create(&p->threads[p->n_threads], NULL, worker, p);
                if (r < 0) {
                        verify_pool_free(p);
                        return r;
                }
        }
        *ret = p;
        return 0;
}

VerifyPool *verify_pool_free(VerifyPool *p)
{
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->mutex);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mutex);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        free(p->threads);
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mutex);
        free(p);
        return NULL;
}
