/* The one bridge from worker threads to the sd-event loop: a bounded FIFO of fixed-size items + an eventfd.
 */
#pragma once

#include <stddef.h>

/* Only a pointer crosses this header, so tools without an event loop need no sd-event header. */
typedef struct sd_event sd_event;

/*
 * Worker threads post items (copied by value, item_size bytes); the consumer thread — the event
 * loop once attached, or whoever calls thread_mailbox_dispatch() — receives them in posting order.
 *
 * Ownership: whatever an item points to belongs to the poster until thread_mailbox_post()
 * returns 0, then to the mailbox, then to the dispatch callback (which must take or free it).
 * Items still queued when the mailbox is freed go to free_item instead, so nothing leaks.
 *
 * Full queue: thread_mailbox_post() waits for room (no event is ever dropped: a lost card.removed
 * would keep a session open); thread_mailbox_try_post() answers -EAGAIN instead.
 *
 * Shutdown: thread_mailbox_shutdown() wakes every waiting poster and refuses further posts with
 * -ESHUTDOWN (the item stays the poster's). What was queued before stays queued and can still be
 * dispatched (a closing owner flushes it in its own thread) or is released by thread_mailbox_free().
 */
typedef struct ThreadMailbox ThreadMailbox;

/* Largest item; items are copied through a stack buffer of this size on dispatch. */
#define THREAD_MAILBOX_ITEM_MAX 512

/* Runs on the consumer thread, once per item, in posting order. Must not free the mailbox. */
typedef void (*thread_mailbox_dispatch_fn)(void *item, void *userdata);
/* Releases what an item owns when it will never be dispatched. NULL: items own nothing. */
typedef void (*thread_mailbox_free_fn)(void *item);

/* -EINVAL for item_size 0 or > THREAD_MAILBOX_ITEM_MAX, capacity 0, or no dispatch callback. */
int thread_mailbox_new(size_t item_size, size_t capacity, thread_mailbox_dispatch_fn dispatch,
                       thread_mailbox_free_fn free_item, void *userdata, ThreadMailbox **ret);

/* Call only after every posting thread has ended. Detaches from the loop, passes each item still
 * queued to free_item, closes the eventfd. NULL is fine. Returns NULL. */
ThreadMailbox *thread_mailbox_free(ThreadMailbox *m);

/* From any thread: 0 (the mailbox took the item), -ESHUTDOWN. Waits while the queue is full. */
int thread_mailbox_post(ThreadMailbox *m, const void *item);
/* As thread_mailbox_post(), but -EAGAIN at once when the queue is full. */
int thread_mailbox_try_post(ThreadMailbox *m, const void *item);

/* Wakes waiting posters and refuses new posts. Idempotent; queued items stay. */
void thread_mailbox_shutdown(ThreadMailbox *m);

/* An eventfd that is readable exactly while items are queued (level-triggered: poll or epoll). */
int thread_mailbox_fd(ThreadMailbox *m);

/* Dispatches up to max queued items on the calling thread; returns how many. One consumer only. */
int thread_mailbox_dispatch(ThreadMailbox *m, size_t max);

/* Dispatches on e's thread whenever items arrive (at most capacity per wake-up, so a busy worker
 * cannot starve the other sources). The source belongs to the mailbox; -EBUSY if attached. */
int thread_mailbox_attach_event(ThreadMailbox *m, sd_event *e);
