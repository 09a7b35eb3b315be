/*
 * mamori-admin watch: follows new records as they are stored and prints findings live (text for a screen,
 * --format json one per line for a mail or chat hook). Its position (per log the last seq it has judged,
 * and the last collector alert) is its own file, written atomically after the findings are printed: a
 * restart goes on from there, so no record is ever skipped (a crash between printing and saving can print
 * a finding twice, never lose one). At start it replays the last WARMUP records of each log before its
 * position without printing, so sessions and bursts that span the restart are judged whole.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "mamori/fileio.h"
#include "mamori/parse-util.h"
#include "watch-position.h"

#define WARMUP 2000u

typedef struct Watch {
        AuditStreamStart *logs; /* after = last seq judged; log_index = index here */
        unsigned n, allocated;
        uint64_t *printed_after; /* a finding is new when its newest record is past this (the saved position)
                                  */
        int64_t alert;
        bool json;
        uint64_t printed;
} Watch;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        stop = 1;
}

static int watch_add_log(Watch *w, const char *log, uint64_t after)
{
        for (unsigned i = 0; i < w->n; i++)
                if (streq(w->logs[i].log, log))
                        return 0;
        if (w->n >= WATCH_POSITION_LOGS)
                return -E2BIG;
        if (w->n == w->allocated) {
                unsigned n = w->allocated ? w->allocated * 2 : 64;
                AuditStreamStart *nl = realloc(w->logs, n * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                w->logs = nl;
                uint64_t *np = realloc(w->printed_after, n * sizeof(uint64_t));
                if (!np)
                        return -ENOMEM;
                w->printed_after = np;
                w->allocated = n;
        }
        if (strlen(log) != ID128_STRING_MAX - 1)
                return -EBADMSG;
        memcpy(w->logs[w->n].log, log, ID128_STRING_MAX);
        w->logs[w->n].after = after;
        w->printed_after[w->n] = after;
        w->n++;
        return 1;
}

/* The position file (watch-position.c). Its logs are unique, so they are taken as they are. */
static int position_load(Watch *w, const char *path)
{
        _cleanup_free_ char *text = NULL;
        WatchPosition p;
        size_t size;
        int r;

        r = read_file_bounded(path, WATCH_POSITION_MAX, &text, &size);
        if (r < 0)
                return r;
        r = watch_position_parse(text, size, &p);
        if (r < 0)
                return r;
        w->alert = p.alert;
        for (unsigned i = 0; i < p.n && r >= 0; i++)
                r = watch_add_log(w, p.logs[i].log, p.logs[i].after);
        watch_position_done(&p);
        return r < 0 ? r : 0;
}

static int position_save(const Watch *w, const char *path)
{
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r = watch_position_format(w->alert, w->logs, w->n, &buf, &size);
        if (r < 0)
                return r;
        return write_file_atomic(path, buf, size, 0600);
}

/* Why the watch stops, and what its position file holds for the next one: saved (none: it was the first
 * save of a new position) or nothing. */
static void position_save_failed(const char *path, int r, bool saved)
{
        fprintf(stderr, "mamori-admin: watch stopped: cannot save its position to %s: %s. ", path,
                strerror(-r));
        if (saved)
                fputs("Nothing is skipped: the file keeps the position saved before, so the next watch "
                      "prints again the findings and alerts printed since then. ",
                      stderr);
        else
                fputs("No position was saved: the next watch starts from when it starts, and what is stored "
                      "until then is not watched (mamori-admin audit covers it). ",
                      stderr);
        fputs("Check that the file's directory is writable and its disk not full, then start the watch "
              "again\n",
              stderr);
}

/* Whether the position moved since it was saved (printed_after is what was saved). */
static bool position_changed(const Watch *w, int64_t saved_alert, unsigned saved_n)
{
        if (w->alert != saved_alert || w->n != saved_n)
                return true;
        for (unsigned i = 0; i < w->n; i++)
                if (w->logs[i].after != w->printed_after[i])
                        return true;
        return false;
}

static bool is_new(const Watch *w, const AuditFinding *f)
{
        if (f->n_refs == 0)
                return true;
        for (unsigned k = 0; k < f->n_refs; k++)
                for (unsigned i = 0; i < w->n; i++)
                        if (streq(w->logs[i].log, f->refs[k].log) && f->refs[k].seq > w->printed_after[i])
                                return true;
        return false;
}

static void on_finding(const AuditFinding *f, void *userdata)
{
        Watch *w = userdata;
        if (!is_new(w, f))
                return; /* judged again during the warm-up: printed before the restart */
        w->printed++;
        if (w->json) {
                audit_finding_json(stdout, f);
                putchar('\n');
        } else {
                char when[32];
                audit_format_time(f->ts, when, sizeof(when));
                printf("%s %-6s %-22s %-8s %-8s %s", when, audit_severity_name(f->severity),
                       audit_kind_name(f->kind), f->term[0] ? f->term : "-", f->op[0] ? f->op : "-", f->why);
                for (unsigned k = 0; k < f->n_refs; k++)
                        printf("%s%.8s:%" PRIu64, k ? " " : " [", f->refs[k].log, f->refs[k].seq);
                puts(f->n_refs ? "]" : "");
        }
}

static int on_alert(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                    uint64_t seq, const char *detail, uint64_t count, int64_t last_seen, void *userdata)
{
        AuditContext *a = userdata;
        return audit_engine_alert(a->engine, ts, kind, term, log, seq, detail);
}

static int max_alert(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                     uint64_t seq, const char *detail, uint64_t count, int64_t last_seen, void *userdata)
{
        *(int64_t *)userdata = id;
        return 0;
}

static int add_new_log(const StoreLog *l, void *userdata)
{
        int r = watch_add_log(userdata, l->log, 0);
        return r < 0 ? r : 0;
}

static int add_log_at_end(const StoreLog *l, void *userdata)
{
        int r = watch_add_log(userdata, l->log, l->last_seq);
        return r < 0 ? r : 0;
}

/* One pass: new logs, new records in time order, new alerts, silence at now. */
static int cycle(Watch *w, AuditContext *a, bool warmup)
{
        _cleanup_audit_stream_ AuditStream *st = NULL;
        _cleanup_free_ AuditStreamStart *starts = NULL;
        AuditRecord rec;
        int r;

        r = store_logs_foreach(a->store, add_new_log, w);
        if (r < 0)
                return r;
        r = audit_engine_grow(a->engine, w->n);
        if (r < 0)
                return r;
        starts = calloc(w->n ? w->n : 1, sizeof(*starts));
        if (!starts)
                return -ENOMEM;
        if (w->n) /* no logs yet: w->logs is NULL, which memcpy may not be given even for 0 bytes */
                memcpy(starts, w->logs, w->n * sizeof(*starts));
        if (warmup)
                for (unsigned i = 0; i < w->n; i++)
                        starts[i].after = starts[i].after > WARMUP ? starts[i].after - WARMUP : 0;
        r = audit_stream_open_from(a->store, starts, w->n, &st);
        if (r < 0)
                return r;
        while ((r = audit_stream_next(st, &rec)) > 0) {
                r = audit_engine_feed(a->engine, &rec);
                if (r < 0)
                        return r;
                if (rec.seq > w->logs[rec.log_index].after)
                        w->logs[rec.log_index].after = rec.seq;
        }
        if (r < 0)
                return r;
        r = store_alerts_after(a->store, w->alert, on_alert, a);
        if (r >= 0)
                r = store_alerts_after(a->store, w->alert, max_alert, &w->alert);
        if (r < 0)
                return r;
        audit_engine_check_silence(a->engine, admin_now_usec());
        return 0;
}

int admin_watch(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"format", required_argument, NULL, 'F'},      {"position", required_argument, NULL, 'p'},
                {"interval", required_argument, NULL, 'i'},    {"once", no_argument, NULL, '1'},
                {"silent-days", required_argument, NULL, 's'}, {},
        };
        const char *format = "text";
        _cleanup_free_ char *position = NULL;
        uint64_t interval = USEC_PER_SEC;
        bool once = false, fresh = false;
        AuditContext a = {};
        Watch w = {};
        int64_t saved_alert = -1; /* what the position file holds: nothing yet */
        unsigned saved_n = UINT_MAX;
        AuditOptions o;
        int c, r;

        audit_options_default(&o);
        o.live = true;
        optind = 0;
        while ((c = getopt_long(argc, argv, "F:p:i:1s:", options, NULL)) >= 0)
                switch (c) {
                case 'F':
                        format = optarg;
                        break;
                case 'p':
                        free(position);
                        position = strdup(optarg);
                        if (!position)
                                return 1;
                        break;
                case 'i':
                        if (parse_duration_usec(optarg, &interval) < 0 || interval < 10 * USEC_PER_MSEC) {
                                fprintf(stderr,
                                        "mamori-admin: --interval wants a duration of at least 10ms\n");
                                return 2;
                        }
                        break;
                case '1':
                        once = true;
                        break;
                case 's':
                        if (admin_parse_days("--silent-days", optarg, &o.silent_usec) < 0)
                                return 2;
                        break;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "usage: mamori-admin watch [--format text|json] [--position FILE] "
                                "[--interval DURATION] [--once] [--silent-days N]\n");
                return 2;
        }
        if (admin_check_format(format, "text|json") < 0)
                return 2;
        w.json = streq(format, "json");
        if (!position && !(position = collector_state_path(&ctx->config, "watch.position")))
                return 1;
        if (admin_store(ctx, &a.store) < 0)
                return 1;
        r = position_load(&w, position);
        if (r == -ENOENT) {
                /* First run: from now on (what is already stored is the audit's business). */
                fresh = true;
                r = store_logs_foreach(a.store, add_log_at_end, &w);
                if (r >= 0)
                        r = store_alerts_after(a.store, 0, max_alert, &w.alert);
        }
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: cannot read the watch position %s: %s (remove it to start from "
                        "now)\n",
                        position, strerror(-r));
                return 1;
        }
        r = admin_registry_load(ctx, a.store, "watch", "nothing watched", &a.reg);
        if (r < 0) {
                admin_audit_done(&a);
                return 1;
        }
        r = audit_engine_new(&o, a.reg, w.n, on_finding, NULL, &w, &a.engine);
        if (r < 0) {
                admin_run_failed(ctx, "watch", "nothing watched", r);
                admin_audit_done(&a);
                return 1;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        if (!w.json)
                fprintf(stderr, "watching %u logs from %s%s\n", w.n, position,
                        fresh ? " (new: from now)" : "");
        for (bool first = true; !stop; first = false) {
                r = cycle(&w, &a, first);
                if (r < 0) {
                        admin_run_failed(ctx, "watch", "its position stays where the last pass left it", r);
                        break;
                }
                if (fflush(stdout) != 0) {
                        fprintf(stderr, "mamori-admin: cannot write: %m\n");
                        r = -EIO;
                        break;
                }
                /* Saved only after the findings are out: never a record judged but unprinted. Only when it
                 * moved: an idle watch does not rewrite (and sync) its file at every interval. */
                r = position_changed(&w, saved_alert, saved_n) ? position_save(&w, position) : 0;
                if (r < 0) {
                        position_save_failed(position, r, !(fresh && saved_n == UINT_MAX));
                        break;
                }
                for (unsigned i = 0; i < w.n; i++)
                        w.printed_after[i] = w.logs[i].after;
                saved_alert = w.alert;
                saved_n = w.n;
                if (once)
                        break;
                struct timespec ts = {.tv_sec = (time_t)(interval / USEC_PER_SEC),
                                      .tv_nsec = (long)(interval % USEC_PER_SEC) * 1000};
                nanosleep(&ts, NULL);
        }
        admin_audit_done(&a);
        free(w.logs);
        free(w.printed_after);
        return r < 0 ? 1 : 0;
}
