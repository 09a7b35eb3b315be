/* The password thread: scrypt checks and changes against the password store, off the event loop. */
#pragma once

/*
 * scrypt costs tens of milliseconds and tens of MiB by design; on the loop it would stall card
 * removal and D-Bus answers. One thread runs the jobs in order; results come back on the event
 * loop through the thread mailbox. Passwords are copied, and wiped as soon as they are used.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

/* Runs on the event loop. result: 0 the password matches (check) or the new one is stored (set);
 * -EACCES wrong password; -ENOENT no password set (check); other -errno: the store failed. */
typedef void (*password_done_fn)(void *userdata, uint64_t id, int result);

typedef struct PasswordWorker PasswordWorker;

/* directory: [Secrets] PasswordDirectory (copied). */
int password_worker_start(sd_event *e, const char *directory, PasswordWorker **ret);
/* Joins the thread; results not delivered yet are dropped. NULL is fine. */
PasswordWorker *password_worker_stop(PasswordWorker *w);

/* Checks password against operator_id's verifier. -EBUSY when the queue is full. */
int password_worker_check(PasswordWorker *w, uint64_t id, const char *operator_id, const char *password,
                          password_done_fn done, void *userdata);
/* Stores a new verifier for new_password; when old_password is not NULL and a verifier exists, it
 * must match first (-EACCES otherwise, nothing changed). */
int password_worker_set(PasswordWorker *w, uint64_t id, const char *operator_id, const char *old_password,
                        const char *new_password, password_done_fn done, void *userdata);
/* Removes operator_id's verifier (an administrator's reset), in order with the checks and sets queued
 * before it. result: 0 removed, -ENOENT none was set. */
int password_worker_remove(PasswordWorker *w, uint64_t id, const char *operator_id, password_done_fn done,
                           void *userdata);
