/* LogParallel runners for unit tests: the jobs of a batch split over three threads, a third each. */
#pragma once

#include <stddef.h>

#include "mamori/oplog-verify.h"

/* Three threads, each a third of the jobs in order: the last third is the third thread's. */
void run_thirds(size_t n, log_job_fn job, void *job_userdata, void *userdata);
/* The same thirds, each thread from its last job to its first: within a thread's share a later record
 * is checked before an earlier one. */
void run_thirds_backwards(size_t n, log_job_fn job, void *job_userdata, void *userdata);
