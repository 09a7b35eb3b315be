/* A fixed pool of threads that checks the record signatures of a batch in parallel (a LogParallel). */
#pragma once

#include <stddef.h>

#include "mamori/macro.h"
#include "mamori/oplog-verify.h"

/*
 * n_threads threads started at once and kept until verify_pool_free(). A batch handed to
 * verify_pool_run() is shared by the calling thread, which works on it too, and every pool thread
 * that is free: several batches (several terminals' requests) run at the same time, each as wide as
 * the free threads allow. Thread-safe; owned by whoever made it.
 */
typedef struct VerifyPool VerifyPool;

/* n_threads 0: none (every batch runs on its caller alone). */
int verify_pool_new(unsigned n_threads, VerifyPool **ret);
VerifyPool *verify_pool_free(VerifyPool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(VerifyPool *, verify_pool_free);
#define _cleanup_verify_pool_ _cleanup_(verify_pool_freep)

/* Runs job(i, job_userdata) for every i in [0, n) and returns when all have run. */
void verify_pool_run(VerifyPool *p, size_t n, log_job_fn job, void *job_userdata);
/* The pool as the chain verifier's runner (log_verifier_push_batch); p NULL: serial. */
LogParallel verify_pool_parallel(VerifyPool *p);
/* Threads of a pool sized for this machine: one per online CPU, the caller being one of them. */
unsigned verify_pool_default_threads(void);
