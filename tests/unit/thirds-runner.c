/* LogParallel runners for unit tests (see thirds-runner.h); a thread that cannot start ends the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>

#include "thirds-runner.h"

typedef struct Chunk {
        size_t from, to;
        bool backwards;
        log_job_fn job;
        void *userdata;
} Chunk;

static void *run_chunk(void *p)
{
        Chunk *c = p;

        if (c->backwards)
                for (size_t i = c->to; i-- > c->from;)
                        c->job(i, c->userdata);
        else
                for (size_t i = c->from; i < c->to; i++)
                        c->job(i, c->userdata);
        return NULL;
}

static void run_split(size_t n, bool backwards, log_job_fn job, void *job_userdata)
{
        pthread_t t[3];
        Chunk c[3];

        for (size_t k = 0; k < 3; k++) {
                c[k] = (Chunk){.from = n * k / 3,
                               .to = n * (k + 1) / 3,
                               .backwards = backwards,
                               .job = job,
                               .userdata = job_userdata};
                assert_int_equal(pthread_create(&t[k], NULL, run_chunk, &c[k]), 0);
        }
        for (size_t k = 0; k < 3; k++)
                pthread_join(t[k], NULL);
}

void run_thirds(size_t n, log_job_fn job, void *job_userdata, void *userdata)
{
        run_split(n, false, job, job_userdata);
}

void run_thirds_backwards(size_t n, log_job_fn job, void *job_userdata, void *userdata)
{
        run_split(n, true, job, job_userdata);
}
