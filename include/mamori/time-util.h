/* Microsecond clocks for record timestamps, timers and latency figures. */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t now_usec(clockid_t clock)
{
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * UINT64_C(1000000) + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t now_mono_usec(void)
{
        return now_usec(CLOCK_MONOTONIC);
}

/* Signed, as records and policy bundles carry their times. */
static inline int64_t now_realtime_usec(void)
{
        return (int64_t)now_usec(CLOCK_REALTIME);
}
