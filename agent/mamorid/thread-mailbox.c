/* Worker thread → event loop bridge: bounded FIFO of fixed-size items, an eventfd, sd-event dispatch. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <systemd/sd-event.h>

#include "mamori/macro.h"
#include "thread-mailbox.h"

struct ThreadMailbox {
        pthread_mutex_t lock; /* guards ring, head, count, shut and the eventfd's counter */
        pthread_cond_t room;  /* an item was taken, or shutdown */
        uint8_t *ring;        /* capacity * item_size bytes */
        size_t item_size, capacity, head, count;
        bool shut;
        int event_fd; /* counter 1 while count > 0, else 0 */

        thread_mailbox_dispatch_fn dispatch;
        thread_mailbox_free_fn free_item;
        void *userdata;
        sd_event_source *source;
};

int thread_mailbox_new(size_t item_size, size_t capacity, thread_mailbox_dispatch_fn dispatch,
                       thread_mailbox_free_fn free_item, void *userdata, ThreadMailbox **ret)
{
        ThreadMailbox *m;

        if (item_size == 0 || item_size > THREAD_MAILBOX_ITEM_MAX || capacity == 0 ||
            capacity > SIZE_MAX / item_size || !dispatch || !ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        pthread_cond_init(&m->room, NULL);
        m->item_size = item_size;
        m->capacity = capacity;
        m->dispatch = dispatch;
        m->free_item = free_item;
        m->userdata = userdata;
        m->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->event_fd < 0) {
                int r = negative_errno();
                thread_mailbox_free(m);
                return r;
        }
        m->ring = malloc(capacity * item_size);
        if (!m->ring) {
                thread_mailbox_free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

ThreadMailbox *thread_mailbox_free(ThreadMailbox *m)
{
        if (!m)
                return NULL;
        m->source = sd_event_source_disable_unref(m->source);
        if (m->free_item)
                for (size_t i = 0; i < m->count; i++)
                        m->free_item(m->ring + ((m->head + i) % m->capacity) * m->item_size);
        safe_close(m->event_fd);
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->room);
        free(m->ring);
        free(m);
        return NULL;
}

static int post(ThreadMailbox *m, const void *item, bool wait)
{
        int r = 0;

        assert(m);
        assert(item);
        pthread_mutex_lock(&m->lock);
        while (wait && m->count == m->capacity && !m->shut)
                pthread_cond_wait(&m->room, &m->lock);
        if (m->shut)
                r = -ESHUTDOWN;
        else if (m->count == m->capacity)
                r = -EAGAIN;
        else {
                memcpy(m->ring + ((m->head + m->count) % m->capacity) * m->item_size, item, m->item_size);
                if (m->count++ == 0)
                        (void)eventfd_write(m->event_fd, 1);
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

int thread_mailbox_post(ThreadMailbox *m, const void *item)
{
        return post(m, item, true);
}

int thread_mailbox_try_post(ThreadMailbox *m, const void *item)
{
        return post(m, item, false);
}

void thread_mailbox_shutdown(ThreadMailbox *m)
{
        if (!m)
                return;
        pthread_mutex_lock(&m->lock);
        m->shut = true;
        pthread_cond_broadcast(&m->room);
        pthread_mutex_unlock(&m->lock);
}

int thread_mailbox_fd(ThreadMailbox *m)
{
        return m ? m->event_fd : -EBADF;
}

/* Takes the oldest item into buf: true if there was one. */
static bool take(ThreadMailbox *m, void *buf)
{
        eventfd_t v;
        bool got = false;

        pthread_mutex_lock(&m->lock);
        if (m->count > 0) {
                memcpy(buf, m->ring + m->head * m->item_size, m->item_size);
                m->head = (m->head + 1) % m->capacity;
                if (--m->count == 0)
                        (void)eventfd_read(m->event_fd, &v);
                pthread_cond_signal(&m->room);
                got = true;
        }
        pthread_mutex_unlock(&m->lock);
        return got;
}

int thread_mailbox_dispatch(ThreadMailbox *m, size_t max)
{
        /* On the stack, not in m: a callback may dispatch again (a completion that closes its owner). */
        alignas(max_align_t) uint8_t buf[THREAD_MAILBOX_ITEM_MAX];
        int n = 0;

        if (!m)
                return -EINVAL;
        /* The lock is not held while the callback runs: it may post, or wait for a worker. */
        while ((size_t)n < max && n < INT32_MAX && take(m, buf)) {
                m->dispatch(buf, m->userdata);
                n++;
        }
        return n;
}

static int on_event_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        ThreadMailbox *m = userdata;
        (void)thread_mailbox_dispatch(m, m->capacity);
        return 0;
}

int thread_mailbox_attach_event(ThreadMailbox *m, sd_event *e)
{
        if (!m || !e)
                return -EINVAL;
        if (m->source)
                return -EBUSY;
        return sd_event_add_io(e, &m->source, m->event_fd, EPOLLIN, on_event_fd, m);
}
