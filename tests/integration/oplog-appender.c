/* Test driver for the oplog crash/disk-full and retention tests: opens a log (pruning what a verified
 * receipt covers), appends from N threads, prints each acknowledged seq. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oplog-writer.h"

static OpLog *log_;
static long remaining; /* appends left (all threads), < 0 = unbounded */
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

/* One write(2) per line so a SIGKILL never leaves a half line on the pipe. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
        char buf[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n > 0)
                (void)!write(STDOUT_FILENO, buf, (size_t)n);
}

static bool take_one(void)
{
        bool ok;
        pthread_mutex_lock(&count_lock);
        ok = remaining != 0;
        if (remaining > 0)
                remaining--;
        pthread_mutex_unlock(&count_lock);
        return ok;
}

static void *worker(void *p)
{
        long id = (long)p;
        char op[16];

        snprintf(op, sizeof(op), "OP%04ld", id);
        while (take_one()) {
                uint64_t seq = 0;
                int k = oplog_append(log_, "app.op", op, NULL, NULL, &seq);
                if (k < 0) {
                        say("fail %d %s writable=%d\n", -k, strerror(-k), oplog_writable(log_));
                        usleep(20000);
                } else
                        say("ack %" PRIu64 "\n", seq);
        }
        return NULL;
}

int main(int argc, char **argv)
{
        struct oplog_params p = {.terminal_id = "T-CRASH", .rotate_records = 1000};
        struct oplog_recovery rec;
        pthread_t t[64];
        long threads = 1;
        int k;

        if (argc < 4) {
                fprintf(stderr,
                        "usage: oplog-appender DIR KEYS IDENTITY [THREADS [COUNT [ROTATE [SEGMENT]]]]\n");
                return 2;
        }
        p.directory = argv[1];
        p.keys_directory = argv[2];
        p.identity_key = argv[3];
        threads = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
        remaining = argc > 5 ? strtol(argv[5], NULL, 10) : -1;
        p.rotate_records = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 1000;
        p.segment_max_bytes = argc > 7 ? strtoull(argv[7], NULL, 10) : 0;
        if (threads < 1 || threads > 64)
                return 2;
        /* Retention (oplog_open prunes): the cursor and receipt key to believe, and the days to keep. */
        p.cursor_path = getenv("OPLOG_CURSOR");
        p.receipt_key = getenv("OPLOG_RECEIPT_KEY");
        p.retention_days = getenv("OPLOG_RETENTION_DAYS")
                                   ? (uint32_t)strtoul(getenv("OPLOG_RETENTION_DAYS"), NULL, 10)
                                   : 0;

        k = oplog_open(&p, &log_, &rec);
        if (k < 0) {
                say("open-failed %d %s\n", -k, strerror(-k));
                return 1;
        }
        say("open previous=%d last=%" PRIu64 " torn=%" PRIu64 " stale_keys=%d\n", (int)rec.previous,
            rec.last_seq, rec.torn_bytes, rec.stale_keys_destroyed);
        for (long i = 0; i < threads; i++)
                pthread_create(&t[i], NULL, worker, (void *)(i + 1));
        for (long i = 0; i < threads; i++)
                pthread_join(t[i], NULL);
        k = oplog_append(log_, "agent.stop", NULL, NULL, NULL, NULL);
        say("done %d\n", k);
        oplog_close(log_);
        return 0;
}
