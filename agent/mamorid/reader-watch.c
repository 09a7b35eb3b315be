/* PC/SC watcher thread: card insert/pull, readers coming and going, pcscd dying and returning. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "reader-watch.h"
#include "thread-mailbox.h"

#define MAX_READERS      16
#define QUEUE_SIZE       256
#define READER_LIST_MAX  (MAX_READERS * READER_NAME_MAX)
#define PCSC_RETRY_MSEC  250
#define PNP_NOTIFICATION "\\\\?PnP?\\Notification"

struct known_reader {
        char name[READER_NAME_MAX];
        DWORD state; /* last dwEventState */
        bool present;
        char card_id[CARD_ID_LEN + 1]; /* of the card present now, "" if unknown */
        bool unavailable;              /* pcscd lists it but cannot use it (reported lost) */
};

struct ReaderWatch {
        pthread_t thread;
        bool thread_started;
        atomic_bool stop;
        int stop_fd; /* wakes the thread from its retry sleep */
        char *filter;
        ThreadMailbox *mailbox; /* struct reader_event, to the event loop */
        reader_event_fn on_event;
        void *userdata;

        pthread_mutex_t lock; /* guards ctx */
        SCARDCONTEXT ctx;
        bool ctx_valid;

        /* Thread-private. */
        struct known_reader readers[MAX_READERS];
        size_t n_readers;
};

const char *reader_event_name(enum reader_event_type t)
{
        static const char *const names[] = {
                [READER_EVENT_ADDED] = "reader.added",     [READER_EVENT_LOST] = "reader.lost",
                [READER_EVENT_INSERTED] = "card.inserted", [READER_EVENT_REMOVED] = "card.removed",
                [READER_EVENT_PCSC_GONE] = "pcscd.lost",   [READER_EVENT_PCSC_BACK] = "pcscd.back",
        };
        return (unsigned)t < ELEMENTSOF(names) ? names[t] : "unknown";
}

/* Queues an event; waits for room rather than dropping one: no card event may be lost. */
static void post_der(ReaderWatch *w, enum reader_event_type type, const struct known_reader *r, int error,
                     uint8_t *der, size_t der_len, int pin_tries)
{
        struct reader_event ev = {.type = type,
                                  .error = error,
                                  .mono_usec = now_mono_usec(),
                                  .der = der,
                                  .der_len = der_len,
                                  .pin_tries = pin_tries};

        if (r) {
                memcpy(ev.reader, r->name, sizeof(ev.reader));
                memcpy(ev.card_id, r->card_id, sizeof(ev.card_id));
        }
        if (thread_mailbox_post(w->mailbox, &ev) < 0)
                free(ev.der); /* only when stopping */
}

static void post(ReaderWatch *w, enum reader_event_type type, const struct known_reader *r, int error)
{
        post_der(w, type, r, error, NULL, 0, -1);
}

static void dispatch_event(void *item, void *userdata)
{
        ReaderWatch *w = userdata;
        w->on_event(w->userdata, item); /* takes ev->der */
}

static void free_event(void *item)
{
        struct reader_event *ev = item;
        free(ev->der);
}

/* Sleeps up to msec, or less when asked to stop. */
static void pause_unless_stopped(ReaderWatch *w, int msec)
{
        struct pollfd p = {.fd = w->stop_fd, .events = POLLIN};
        (void)poll(&p, 1, msec);
}

static bool wanted(const ReaderWatch *w, const char *name)
{
        return !w->filter || !*w->filter || strstr(name, w->filter);
}

static void card_inserted(ReaderWatch *w, struct known_reader *r, SCARDCONTEXT ctx)
{
        int error = 0;
        uint8_t *der = NULL;
        size_t der_len = 0;
        int tries = -1;

        r->present = true;
        r->card_id[0] = '\0';
        if (r->state & SCARD_STATE_MUTE)
                error = CARD_E_UNRESPONSIVE;
        else
                error = card_pcsc_read_card(ctx, r->name, r->card_id, &der, &der_len, &tries);
        if (error >= 0)
                error = 0;
        else {
                r->card_id[0] = '\0';
                der = NULL;
                der_len = 0;
        }
        post_der(w, READER_EVENT_INSERTED, r, error, der, der_len, tries);
}

static void card_removed(ReaderWatch *w, struct known_reader *r)
{
        r->present = false;
        post(w, READER_EVENT_REMOVED, r, 0);
        r->card_id[0] = '\0';
}

/* why: 0 when the reader was unplugged, CARD_E_NO_SERVICE when pcscd went away. */
static void forget_reader(ReaderWatch *w, size_t i, int why)
{
        struct known_reader *r = &w->readers[i];
        if (!r->unavailable)
                post(w, READER_EVENT_LOST, r, why);
        if (r->present)
                card_removed(w, r);
        w->readers[i] = w->readers[--w->n_readers];
}

/* Brings the known reader list in line with pcscd's. Returns a PC/SC error code. */
static LONG refresh_readers(ReaderWatch *w, SCARDCONTEXT ctx)
{
        char list[READER_LIST_MAX];
        DWORD len = sizeof(list);
        LONG rv = SCardListReaders(ctx, NULL, list, &len);

        if (rv == SCARD_E_NO_READERS_AVAILABLE) {
                list[0] = list[1] = '\0';
                len = 2;
        } else if (rv != SCARD_S_SUCCESS)
                return rv;
        if (len < 2 || list[len - 1] != '\0')
                return SCARD_E_INVALID_VALUE;

        /* Lost readers. */
        for (size_t i = 0; i < w->n_readers;) {
                bool found = false;
                for (const char *p = list; *p; p += strlen(p) + 1)
                        if (streq(p, w->readers[i].name))
                                found = true;
                if (found)
                        i++;
                else
                        forget_reader(w, i, 0);
        }
        /* New readers: their first state comes from the next SCardGetStatusChange. */
        for (const char *p = list; *p; p += strlen(p) + 1) {
                bool known = false;
                for (size_t i = 0; i < w->n_readers; i++)
                        if (streq(p, w->readers[i].name))
                                known = true;
                if (known || !wanted(w, p) || strlen(p) >= READER_NAME_MAX || w->n_readers == MAX_READERS)
                        continue;
                struct known_reader *r = &w->readers[w->n_readers++];
                *r = (struct known_reader){0};
                strcpy(r->name, p);
                r->state = SCARD_STATE_UNAWARE;
                post(w, READER_EVENT_ADDED, r, 0);
        }
        return SCARD_S_SUCCESS;
}

/* Applies one reader's new state: insertion, removal, or a quick pull-and-reinsert. */
static void apply_state(ReaderWatch *w, struct known_reader *r, DWORD event_state, SCARDCONTEXT ctx)
{
        bool present = event_state & SCARD_STATE_PRESENT;
        /* pcsc-lite counts card events in the upper 16 bits: a changed count while still present
         * means the card was swapped between two polls. */
        bool swapped = r->present && present && (event_state >> 16) != (r->state >> 16) &&
                       r->state != SCARD_STATE_UNAWARE;
        bool was_present = r->present;

        r->state = event_state & ~(DWORD)SCARD_STATE_CHANGED;
        if (was_present && (!present || swapped))
                card_removed(w, r);
        if (present && (!was_present || swapped))
                card_inserted(w, r, ctx);
}

/* Runs one pcscd connection until it fails or we are stopped. */
static void watch_connected(ReaderWatch *w, SCARDCONTEXT ctx)
{
        SCARD_READERSTATE states[MAX_READERS + 1];

        for (;;) {
                /* Learn the reader count first, so a reader added after the listing wakes us. */
                SCARD_READERSTATE pnp = {.szReader = PNP_NOTIFICATION,
                                         .dwCurrentState = SCARD_STATE_UNAWARE};
                LONG rv = SCardGetStatusChange(ctx, 0, &pnp, 1);
                if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT)
                        return;
                rv = refresh_readers(w, ctx);
                if (rv != SCARD_S_SUCCESS)
                        return;
                size_t n = w->n_readers;
                for (size_t i = 0; i < n; i++)
                        states[i] = (SCARD_READERSTATE){.szReader = w->readers[i].name,
                                                        .dwCurrentState = w->readers[i].state};
                states[n] = (SCARD_READERSTATE){.szReader = PNP_NOTIFICATION,
                                                .dwCurrentState =
                                                        pnp.dwEventState & ~(DWORD)SCARD_STATE_CHANGED};

                rv = SCardGetStatusChange(ctx, INFINITE, states, (DWORD)(n + 1));
                if (atomic_load(&w->stop))
                        return;
                if (rv == SCARD_E_TIMEOUT)
                        continue;
                if (rv == SCARD_E_UNKNOWN_READER || rv == SCARD_E_READER_UNAVAILABLE)
                        continue; /* a reader left while we built the list: refresh */
                if (rv != SCARD_S_SUCCESS)
                        return;
                for (size_t i = 0; i < n; i++) {
                        if (!(states[i].dwEventState & SCARD_STATE_CHANGED))
                                continue;
                        struct known_reader *r = &w->readers[i];
                        if (states[i].dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE)) {
                                /* Still listed but unusable: a pull could go unnoticed, so report it
                                 * lost once (fail closed) and wait for its next change. */
                                r->state = states[i].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
                                if (!r->unavailable) {
                                        r->unavailable = true;
                                        post(w, READER_EVENT_LOST, r, 0);
                                        if (r->present)
                                                card_removed(w, r);
                                }
                                continue;
                        }
                        if (r->unavailable) {
                                r->unavailable = false;
                                post(w, READER_EVENT_ADDED, r, 0);
                        }
                        apply_state(w, r, states[i].dwEventState, ctx);
                }
        }
}

static void *watch_thread(void *userdata)
{
        ReaderWatch *w = userdata;
        bool gone_reported = false;

        while (!atomic_load(&w->stop)) {
                SCARDCONTEXT ctx;
                LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
                if (rv != SCARD_S_SUCCESS) {
                        if (!gone_reported) {
                                post(w, READER_EVENT_PCSC_GONE, NULL, CARD_E_NO_SERVICE);
                                gone_reported = true;
                        }
                        pause_unless_stopped(w, PCSC_RETRY_MSEC);
                        continue;
                }
                pthread_mutex_lock(&w->lock);
                w->ctx = ctx;
                w->ctx_valid = true;
                pthread_mutex_unlock(&w->lock);
                if (gone_reported)
                        post(w, READER_EVENT_PCSC_BACK, NULL, 0);
                gone_reported = false;

                if (!atomic_load(&w->stop))
                        watch_connected(w, ctx);

                pthread_mutex_lock(&w->lock);
                w->ctx_valid = false;
                pthread_mutex_unlock(&w->lock);
                (void)SCardReleaseContext(ctx);
                if (atomic_load(&w->stop))
                        break;

                /* The connection failed: every reader and card is gone with pcscd (fail closed). */
                while (w->n_readers > 0)
                        forget_reader(w, w->n_readers - 1, CARD_E_NO_SERVICE);
                post(w, READER_EVENT_PCSC_GONE, NULL, CARD_E_NO_SERVICE);
                gone_reported = true;
                pause_unless_stopped(w, PCSC_RETRY_MSEC);
        }
        return NULL;
}

int reader_watch_start(sd_event *e, const char *reader_filter, reader_event_fn on_event, void *userdata,
                       ReaderWatch **ret)
{
        ReaderWatch *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->stop_fd = -EBADF;
        w->on_event = on_event;
        w->userdata = userdata;
        pthread_mutex_init(&w->lock, NULL);
        if (reader_filter && !(w->filter = strdup(reader_filter))) {
                reader_watch_stop(w);
                return -ENOMEM;
        }
        r = thread_mailbox_new(sizeof(struct reader_event), QUEUE_SIZE, dispatch_event, free_event, w,
                               &w->mailbox);
        if (r >= 0)
                r = thread_mailbox_attach_event(w->mailbox, e);
        if (r < 0) {
                reader_watch_stop(w);
                return r;
        }
        w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->stop_fd < 0) {
                r = negative_errno();
                reader_watch_stop(w);
                return r;
        }
        r = -pthread_create(&w->thread, NULL, watch_thread, w);
        if (r < 0) {
                reader_watch_stop(w);
                return r;
        }
        w->thread_started = true;
        *ret = w;
        return 0;
}

ReaderWatch *reader_watch_stop(ReaderWatch *w)
{
        uint64_t one = 1;

        if (!w)
                return NULL;
        if (w->thread_started) {
                atomic_store(&w->stop, true);
                (void)!write(w->stop_fd, &one, sizeof(one));
                thread_mailbox_shutdown(w->mailbox); /* a post waiting for room gives up */
                /* The thread may be between two PC/SC calls when we cancel: repeat until it ends. */
                for (;;) {
                        struct timespec deadline;
                        pthread_mutex_lock(&w->lock);
                        if (w->ctx_valid)
                                (void)SCardCancel(w->ctx);
                        pthread_mutex_unlock(&w->lock);
                        clock_gettime(CLOCK_REALTIME, &deadline);
                        deadline.tv_nsec += 50 * 1000 * 1000;
                        if (deadline.tv_nsec >= 1000000000) {
                                deadline.tv_sec++;
                                deadline.tv_nsec -= 1000000000;
                        }
                        if (pthread_timedjoin_np(w->thread, NULL, &deadline) == 0)
                                break;
                }
        }
        w->mailbox = thread_mailbox_free(w->mailbox); /* frees the certificates of undelivered events */
        safe_close(w->stop_fd);
        pthread_mutex_destroy(&w->lock);
        free(w->filter);
        free(w);
        return NULL;
}
