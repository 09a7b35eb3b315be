/* The password thread: one queue of jobs (check, set, remove) against the store; results via the mailbox. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mamori/macro.h"
#include "mamori/password-verifier.h"
#include "password-store.h"
#include "password-worker.h"
#include "thread-mailbox.h"

#define QUEUE_MAX 4

enum job_kind {
        JOB_CHECK,
        JOB_SET,
        JOB_REMOVE,
};

struct job {
        struct job *next;
        enum job_kind kind;
        uint64_t id;
        char operator_id[65];
        char *password, *new_password; /* wiped and freed with the job */
        password_done_fn done;
        void *userdata;
        int result;
};

struct PasswordWorker {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stop;
        struct job *queue; /* guarded by lock */
        size_t queued;
        char *directory;
        ThreadMailbox *finished; /* struct job *, to the event loop */
};

static void secret_free(char *s)
{
        if (s) {
                OPENSSL_cleanse(s, strlen(s));
                free(s);
        }
}

static struct job *job_free(struct job *j)
{
        if (j) {
                secret_free(j->password);
                secret_free(j->new_password);
                free(j);
        }
        return NULL;
}

static int run_check(PasswordWorker *w, struct job *j)
{
        _cleanup_free_ char *verifier = NULL;
        int64_t changed;
        int r;

        r = password_store_read(w->directory, j->operator_id, &verifier, &changed);
        if (r < 0)
                return r;
        r = password_verifier_check(verifier, strlen(verifier), j->password);
        OPENSSL_cleanse(verifier, strlen(verifier));
        return r;
}

static int run_set(PasswordWorker *w, struct job *j)
{
        _cleanup_free_ char *verifier = NULL;
        int r;

        if (j->password) {
                /* The current password, when one is set; "" matches only when none is. */
                _cleanup_free_ char *old = NULL;
                int64_t changed;
                r = password_store_read(w->directory, j->operator_id, &old, &changed);
                if (r >= 0) {
                        r = j->password[0] ? password_verifier_check(old, strlen(old), j->password)
                                           : -EACCES;
                        OPENSSL_cleanse(old, strlen(old));
                        if (r < 0)
                                return r;
                } else if (r != -ENOENT)
                        return r;
        }
        r = password_verifier_make(j->new_password, NULL, &verifier);
        if (r < 0)
                return r;
        return password_store_write(w->directory, j->operator_id, verifier);
}

static void *worker_thread(void *userdata)
{
        PasswordWorker *w = userdata;

        for (;;) {
                struct job *j;

                pthread_mutex_lock(&w->lock);
                while (!w->stop && !w->queue)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->stop) {
                        pthread_mutex_unlock(&w->lock);
                        return NULL;
                }
                j = w->queue;
                w->queue = j->next;
                w->queued--;
                pthread_mutex_unlock(&w->lock);

                j->result = j->kind == JOB_SET      ? run_set(w, j)
                            : j->kind == JOB_REMOVE ? password_store_remove(w->directory, j->operator_id)
                                                    : run_check(w, j);
                secret_free(TAKE_PTR(j->password));
                secret_free(TAKE_PTR(j->new_password));
                if (thread_mailbox_post(w->finished, &j) < 0)
                        job_free(j); /* stopping: nobody waits for it */
        }
}

static void dispatch_finished(void *item, void *userdata)
{
        struct job *j = *(struct job **)item;

        if (j->done)
                j->done(j->userdata, j->id, j->result);
        job_free(j);
}

static void free_finished(void *item)
{
        job_free(*(struct job **)item);
}

static int submit(PasswordWorker *w, enum job_kind kind, uint64_t id, const char *operator_id,
                  const char *password, const char *new_password, password_done_fn done, void *userdata)
{
        struct job *j;

        if (strlen(operator_id) >= sizeof(j->operator_id))
                return -EINVAL;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (struct job){.kind = kind, .id = id, .done = done, .userdata = userdata};
        strcpy(j->operator_id, operator_id);
        if ((password && !(j->password = strdup(password))) ||
            (new_password && !(j->new_password = strdup(new_password)))) {
                job_free(j);
                return -ENOMEM;
        }
        pthread_mutex_lock(&w->lock);
        if (w->queued >= QUEUE_MAX) {
                pthread_mutex_unlock(&w->lock);
                job_free(j);
                return -EBUSY;
        }
        struct job **tail = &w->queue;
        while (*tail)
                tail = &(*tail)->next;
        *tail = j;
        w->queued++;
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

int password_worker_check(PasswordWorker *w, uint64_t id, const char *operator_id, const char *password,
                          password_done_fn done, void *userdata)
{
        return submit(w, JOB_CHECK, id, operator_id, password, NULL, done, userdata);
}

int password_worker_set(PasswordWorker *w, uint64_t id, const char *operator_id, const char *old_password,
                        const char *new_password, password_done_fn done, void *userdata)
{
        return submit(w, JOB_SET, id, operator_id, old_password, new_password, done, userdata);
}

int password_worker_remove(PasswordWorker *w, uint64_t id, const char *operator_id, password_done_fn done,
                           void *userdata)
{
        return submit(w, JOB_REMOVE, id, operator_id, NULL, NULL, done, userdata);
}

int password_worker_start(sd_event *e, const char *directory, PasswordWorker **ret)
{
        PasswordWorker *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        w->directory = strdup(directory);
        r = w->directory ? 0 : -ENOMEM;
        if (r >= 0)
                r = thread_mailbox_new(sizeof(struct job *), QUEUE_MAX + 2, dispatch_finished, free_finished,
                                       w, &w->finished);
        if (r >= 0)
                r = thread_mailbox_attach_event(w->finished, e);
        if (r >= 0) {
                r = -pthread_create(&w->thread, NULL, worker_thread, w);
                w->started = r >= 0;
        }
        if (r < 0) {
                password_worker_stop(w);
                return r;
        }
        *ret = w;
        return 0;
}

PasswordWorker *password_worker_stop(PasswordWorker *w)
{
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stop = true;
                pthread_cond_broadcast(&w->wake);
                pthread_mutex_unlock(&w->lock);
                thread_mailbox_shutdown(w->finished);
                pthread_join(w->thread, NULL);
        }
        while (w->queue) {
                struct job *j = w->queue;
                w->queue = j->next;
                job_free(j);
        }
        w->finished = thread_mailbox_free(w->finished);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w->directory);
        free(w);
        return NULL;
}
