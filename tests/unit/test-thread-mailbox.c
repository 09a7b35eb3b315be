/* Unit tests of the thread → event-loop mailbox: order, no loss, full queue, shutdown, ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "thread-mailbox.h"

#define PRODUCERS          4
#define ITEMS_PER_PRODUCER 20000

/* An item that owns memory, so a lost or doubly released one shows under ASan. */
struct item {
        unsigned producer;
        uint64_t seq;
        uint64_t *payload; /* malloc'd, holds seq */
};

struct consumer {
        uint64_t next[PRODUCERS]; /* next seq expected from each producer */
        uint64_t received, freed;
        bool out_of_order;
        sd_event *event; /* exit when everything arrived */
        uint64_t expect;
        ThreadMailbox *self; /* for re-entrant posts */
};

static void consume(void *p, void *userdata)
{
        struct item *it = p;
        struct consumer *c = userdata;

        /* cmocka's asserts are not for use off the main thread; record and check afterwards. */
        if (it->producer >= PRODUCERS || it->seq != c->next[it->producer] || *it->payload != it->seq)
                c->out_of_order = true;
        else
                c->next[it->producer]++;
        free(it->payload);
        c->received++;
        if (c->event && c->received == c->expect)
                (void)sd_event_exit(c->event, 0);
}

static uint64_t items_freed;

static void free_item(void *p)
{
        struct item *it = p;
        free(it->payload);
        items_freed++;
}

static struct item make_item(unsigned producer, uint64_t seq)
{
        struct item it = {.producer = producer, .seq = seq, .payload = malloc(sizeof(uint64_t))};
        assert_non_null(it.payload);
        *it.payload = seq;
        return it;
}

struct producer {
        ThreadMailbox *m;
        unsigned id;
        uint64_t n;
        int error; /* first failure */
};

static void *produce(void *userdata)
{
        struct producer *p = userdata;

        for (uint64_t i = 0; i < p->n; i++) {
                struct item it = {.producer = p->id, .seq = i, .payload = malloc(sizeof(uint64_t))};
                int r;
                if (!it.payload) {
                        p->error = -ENOMEM;
                        break;
                }
                *it.payload = i;
                r = thread_mailbox_post(p->m, &it);
                if (r < 0) {
                        free(it.payload); /* refused: still ours */
                        p->error = r;
                        break;
                }
        }
        return NULL;
}

static bool fd_readable(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_invalid(void **state)
{
        ThreadMailbox *m = NULL;
        struct consumer c = {0};

        assert_int_equal(thread_mailbox_new(0, 4, consume, NULL, &c, &m), -EINVAL);
        assert_int_equal(thread_mailbox_new(THREAD_MAILBOX_ITEM_MAX + 1, 4, consume, NULL, &c, &m), -EINVAL);
        assert_int_equal(thread_mailbox_new(sizeof(struct item), 0, consume, NULL, &c, &m), -EINVAL);
        assert_int_equal(thread_mailbox_new(sizeof(struct item), 4, NULL, NULL, &c, &m), -EINVAL);
        assert_int_equal(thread_mailbox_new(8, SIZE_MAX, consume, NULL, &c, &m), -EINVAL);
        assert_null(m); /* untouched on failure */
        assert_null(thread_mailbox_free(NULL));
        thread_mailbox_shutdown(NULL);
        assert_int_equal(thread_mailbox_fd(NULL), -EBADF);
        assert_int_equal(thread_mailbox_dispatch(NULL, 1), -EINVAL);
}

/* The eventfd is readable exactly while something is queued; dispatch keeps order and honours max. */
static void test_fifo_and_fd(void **state)
{
        ThreadMailbox *m;
        struct consumer c = {0};

        assert_int_equal(thread_mailbox_new(sizeof(struct item), 16, consume, free_item, &c, &m), 0);
        assert_false(fd_readable(thread_mailbox_fd(m)));
        assert_int_equal(thread_mailbox_dispatch(m, SIZE_MAX), 0);
        for (uint64_t i = 0; i < 10; i++) {
                struct item it = make_item(0, i);
                assert_int_equal(thread_mailbox_post(m, &it), 0);
                assert_true(fd_readable(thread_mailbox_fd(m)));
        }
        assert_int_equal(thread_mailbox_dispatch(m, 3), 3);
        assert_int_equal(c.next[0], 3);
        assert_true(fd_readable(thread_mailbox_fd(m))); /* 7 still queued */
        assert_int_equal(thread_mailbox_dispatch(m, SIZE_MAX), 7);
        assert_false(fd_readable(thread_mailbox_fd(m)));
        assert_int_equal(c.next[0], 10);
        assert_false(c.out_of_order);
        /* Wrap around the ring a few times. */
        for (uint64_t i = 10; i < 100; i++) {
                struct item it = make_item(0, i);
                assert_int_equal(thread_mailbox_post(m, &it), 0);
                if (i % 7 == 0)
                        assert_true(thread_mailbox_dispatch(m, SIZE_MAX) > 0);
        }
        assert_true(thread_mailbox_dispatch(m, SIZE_MAX) > 0);
        assert_int_equal(c.next[0], 100);
        assert_false(c.out_of_order);
        thread_mailbox_free(m);
}

static void test_full(void **state)
{
        ThreadMailbox *m;
        struct consumer c = {0};
        struct item it;

        assert_int_equal(thread_mailbox_new(sizeof(struct item), 4, consume, free_item, &c, &m), 0);
        for (uint64_t i = 0; i < 4; i++) {
                it = make_item(0, i);
                assert_int_equal(thread_mailbox_try_post(m, &it), 0);
        }
        it = make_item(0, 4);
        assert_int_equal(thread_mailbox_try_post(m, &it), -EAGAIN); /* not taken: still ours */
        assert_int_equal(thread_mailbox_dispatch(m, 1), 1);
        assert_int_equal(thread_mailbox_try_post(m, &it), 0);
        assert_int_equal(thread_mailbox_dispatch(m, SIZE_MAX), 4);
        assert_int_equal(c.next[0], 5);
        assert_false(c.out_of_order);
        thread_mailbox_free(m);
}

/* Several threads post through a small queue (they wait for room) while this thread polls the fd. */
static void test_concurrent_poll(void **state)
{
        ThreadMailbox *m;
        struct consumer c = {0};
        struct producer p[PRODUCERS];
        pthread_t t[PRODUCERS];

        assert_int_equal(thread_mailbox_new(sizeof(struct item), 8, consume, free_item, &c, &m), 0);
        for (unsigned i = 0; i < PRODUCERS; i++) {
                p[i] = (struct producer){.m = m, .id = i, .n = ITEMS_PER_PRODUCER};
                assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
        }
        while (c.received < (uint64_t)PRODUCERS * ITEMS_PER_PRODUCER) {
                struct pollfd pfd = {.fd = thread_mailbox_fd(m), .events = POLLIN};
                assert_true(poll(&pfd, 1, 10000) == 1);
                assert_true(thread_mailbox_dispatch(m, SIZE_MAX) > 0); /* readable means non-empty */
        }
        for (unsigned i = 0; i < PRODUCERS; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(p[i].error, 0);
                assert_int_equal(c.next[i], ITEMS_PER_PRODUCER);
        }
        assert_false(c.out_of_order);
        assert_false(fd_readable(thread_mailbox_fd(m)));
        thread_mailbox_free(m);
}

/* The same through sd-event: the loop thread dispatches, nothing is lost, order per producer kept. */
static void test_concurrent_sd_event(void **state)
{
        ThreadMailbox *m;
        sd_event *e;
        struct consumer c = {.expect = (uint64_t)PRODUCERS * ITEMS_PER_PRODUCER};
        struct producer p[PRODUCERS];
        pthread_t t[PRODUCERS];

        assert_int_equal(sd_event_new(&e), 0);
        c.event = e;
        assert_int_equal(thread_mailbox_new(sizeof(struct item), 16, consume, free_item, &c, &m), 0);
        assert_int_equal(thread_mailbox_attach_event(m, e), 0);
        assert_int_equal(thread_mailbox_attach_event(m, e), -EBUSY);
        for (unsigned i = 0; i < PRODUCERS; i++) {
                p[i] = (struct producer){.m = m, .id = i, .n = ITEMS_PER_PRODUCER};
                assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
        }
        assert_int_equal(sd_event_loop(e), 0);
        for (unsigned i = 0; i < PRODUCERS; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(p[i].error, 0);
                assert_int_equal(c.next[i], ITEMS_PER_PRODUCER);
        }
        assert_int_equal(c.received, c.expect);
        assert_false(c.out_of_order);
        thread_mailbox_free(m); /* detaches its source before the loop goes */
        sd_event_unref(e);
}

/* A poster waiting for room is woken by shutdown and keeps its item; queued items stay deliverable. */
static void test_shutdown_wakes_poster(void **state)
{
        ThreadMailbox *m;
        struct consumer c = {0};
        struct producer p;
        pthread_t t;
        struct item it;

        assert_int_equal(thread_mailbox_new(sizeof(struct item), 2, consume, free_item, &c, &m), 0);
        p = (struct producer){.m = m, .id = 0, .n = 3}; /* the third post waits: capacity 2 */
        assert_int_equal(pthread_create(&t, NULL, produce, &p), 0);
        while (!fd_readable(thread_mailbox_fd(m)))
                (void)poll(NULL, 0, 1);
        (void)poll(NULL, 0, 50); /* let it reach the wait (the result is the same if it has not) */
        thread_mailbox_shutdown(m);
        thread_mailbox_shutdown(m); /* idempotent */
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(p.error, -ESHUTDOWN);
        it = make_item(0, 99);
        assert_int_equal(thread_mailbox_post(m, &it), -ESHUTDOWN);
        assert_int_equal(thread_mailbox_try_post(m, &it), -ESHUTDOWN);
        free(it.payload);
        /* What was queued before the shutdown is still delivered, in order. */
        assert_int_equal(thread_mailbox_dispatch(m, SIZE_MAX), 2);
        assert_int_equal(c.next[0], 2);
        assert_false(c.out_of_order);
        thread_mailbox_free(m);
}

/* Freeing with items queued hands each to free_item exactly once (ASan reports any leak). */
static void test_free_releases_queued(void **state)
{
        ThreadMailbox *m;
        struct consumer c = {0};

        items_freed = 0;
        assert_int_equal(thread_mailbox_new(sizeof(struct item), 8, consume, free_item, &c, &m), 0);
        for (uint64_t i = 0; i < 8; i++) {
                struct item it = make_item(0, i);
                assert_int_equal(thread_mailbox_post(m, &it), 0);
        }
        assert_int_equal(thread_mailbox_dispatch(m, 3), 3); /* head is now mid-ring */
        for (uint64_t i = 8; i < 11; i++) {
                struct item it = make_item(0, i);
                assert_int_equal(thread_mailbox_post(m, &it), 0);
        }
        thread_mailbox_free(m);
        assert_int_equal(items_freed, 8);
        assert_int_equal(c.received, 3);
}

/* The callback runs without the lock: it may post to the same mailbox. */
static void consume_and_repost(void *p, void *userdata)
{
        struct consumer *c = userdata;
        struct item *it = p;
        uint64_t seq = it->seq;

        consume(p, userdata);
        if (seq < 9) {
                struct item next = make_item(0, seq + 1);
                assert_int_equal(thread_mailbox_try_post(c->self, &next), 0);
        }
}

static void test_callback_may_post(void **state)
{
        ThreadMailbox *m;
        struct consumer c = {0};
        struct item it;

        assert_int_equal(thread_mailbox_new(sizeof(struct item), 1, consume_and_repost, free_item, &c, &m),
                         0);
        c.self = m;
        it = make_item(0, 0);
        assert_int_equal(thread_mailbox_post(m, &it), 0);
        assert_int_equal(thread_mailbox_dispatch(m, SIZE_MAX), 10);
        assert_int_equal(c.next[0], 10);
        assert_false(c.out_of_order);
        thread_mailbox_free(m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_fifo_and_fd),
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_concurrent_poll),
                cmocka_unit_test(test_concurrent_sd_event),
                cmocka_unit_test(test_shutdown_wakes_poster),
                cmocka_unit_test(test_free_releases_queued),
                cmocka_unit_test(test_callback_may_post),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
