/* After retention: a SQLite store gives the space its deletions freed back to the file system
 * (store_reclaim()). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "mamori/time-util.h"

/* A step of 16 MB: its write transaction lasts a fraction of a second, all the collector waits. */
#define STEP_BYTES (16u << 20)
/* A whole VACUUM, measured on the bench host: 1,468 MB in 16.8 s (README, Benchmarks), ~12 s a GB. */
#define VACUUM_SEC_PER_GB 12.0

typedef struct Space {
        uint64_t page_size;
        bool tty;
        uint64_t started, last_print; /* µs, monotonic */
        double estimate;              /* s, a VACUUM's */
} Space;

static double mb(uint64_t bytes)
{
        return (double)bytes / 1e6;
}

/* Progress on a terminal (stderr), at most four times a second; nothing when piped. */
static int progress(uint64_t done, uint64_t total, void *userdata)
{
        Space *p = userdata;
        uint64_t now = now_mono_usec();

        if (!p->tty || now - p->last_print < 250000)
                return 0;
        p->last_print = now;
        if (total)
                fprintf(stderr, "\rgiving space back: %.0f of %.0f MB (%u %%)", mb(done * p->page_size),
                        mb(total * p->page_size), (unsigned)(done * 100 / total));
        else
                fprintf(stderr, "\rVACUUM: %.0f s of about %.0f s", (double)(now - p->started) / 1e6,
                        p->estimate);
        return 0;
}

static void progress_end(Space *p)
{
        if (p->tty && p->last_print)
                fprintf(stderr, "\r%60s\r", "");
}

int admin_store_space(Store *s, bool vacuum, bool dry_run)
{
        Space p = {.tty = isatty(STDERR_FILENO), .started = now_mono_usec()};
        uint64_t free_bytes, before = 0, after = 0;
        bool incremental;
        int r;

        r = store_reclaimable(s, &free_bytes, &p.page_size, &incremental);
        if (r == -EOPNOTSUPP) {
                if (vacuum)
                        printf("store: --vacuum is for a SQLite store: PostgreSQL gives a dropped month's "
                               "space back at once; nothing to do\n");
                return 0;
        }
        if (r >= 0)
                r = store_size(s, &before);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: retention: cannot read how much of the store's file is free: %s; the "
                        "deletions above are done, and nothing was given back (new records reuse the "
                        "space). If it fails the same way, %s\n",
                        strerror(-r), admin_store_why(s, r));
                return 1;
        }
        p.estimate = mb(before) / 1000 * VACUUM_SEC_PER_GB + 1;
        if (dry_run) {
                if (vacuum || (!incremental && free_bytes > 0))
                        printf("store: %.1f MB of the %.1f MB file are free; --vacuum would VACUUM the "
                               "whole "
                               "file (about %.0f s)\n",
                               mb(free_bytes), mb(before), p.estimate);
                return 0;
        }
        if (!vacuum && !incremental) {
                if (free_bytes > 0)
                        printf("store: %.1f MB of the %.1f MB file are free; new records reuse them. This "
                               "file "
                               "was made before retention gave space back step by step: to give it back, "
                               "run "
                               "mamori-admin retention --vacuum once, at an hour when uploads may wait (a "
                               "VACUUM of the whole file, about %.0f s); from then on each run gives back "
                               "what it frees\n",
                               mb(free_bytes), mb(before), p.estimate);
                return 0;
        }
        if (!vacuum && free_bytes == 0)
                return 0;
        if (vacuum) {
                printf("store: VACUUM of the whole %.1f MB file, about %.0f s. Meanwhile the collector's "
                       "uploads wait, each answered 503 after 10 s: the terminals keep their records and "
                       "send "
                       "them again, nothing is lost. It needs free disk of about twice the file's size\n",
                       mb(before), p.estimate);
                fflush(stdout);
        }
        r = store_reclaim(s, vacuum, STEP_BYTES / p.page_size ?: 1, progress, &p);
        progress_end(&p);
        if (r < 0) {
                if (vacuum)
                        fprintf(stderr,
                                "mamori-admin: retention: the VACUUM failed: %s; the deletions above are "
                                "done "
                                "and nothing is lost: the file is as it was before the VACUUM (its free "
                                "space reused by new records). Run mamori-admin retention --vacuum again; "
                                "if it fails the same way, %s\n",
                                strerror(-r), admin_store_why(s, r));
                else
                        fprintf(stderr,
                                "mamori-admin: retention: giving the freed space back failed: %s; the "
                                "deletions above are done and nothing is lost: what is not given back stays "
                                "free inside the file, for new records. The next retention run gives it "
                                "back; "
                                "if it fails the same way, %s\n",
                                strerror(-r), admin_store_why(s, r));
                return 1;
        }
        if (store_size(s, &after) < 0)
                after = before;
        printf("store: gave back %.1f MB to the file system in %.1f s; the file is %.1f MB\n",
               mb(before > after ? before - after : 0), (double)(now_mono_usec() - p.started) / 1e6,
               mb(after));
        return 0;
}
