/* mamori-vein-test.so: a simulated vein reader behind the plugin ABI (auth/bio-plugin.h), driven over a
 * socket. */

/*
 * Like libfprint's virtual device: options is "SOCKET [verify-only]"; the plugin listens on the
 * Unix stream socket SOCKET and takes one ASCII command per connection:
 *   SCAN id     a hand is presented: the hand of id (its template is "vein-test:1:id")
 *   RETRY       an unusable capture (the call returns -EAGAIN)
 *   GONE        the reader is unplugged (-ENODEV)
 *   STAGES n    enrol needs n captures from now on (default 3)
 * A capture waits for a command until cancelled (mamori_bio_cancel, through an eventfd). Every
 * command is answered "ok\n" once taken. Built also as hostile variants for the loader's tests:
 * -DVEIN_TEST_ABI=N (another ABI version), -DVEIN_TEST_NO_IDENTIFY (an entry point missing),
 * -DVEIN_TEST_NO_VERSION (no version symbol).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAMORI_BIO_PLUGIN
#include "bio-plugin.h"

#define EXPORT MAMORI_BIO_EXPORT

#ifndef VEIN_TEST_ABI
#define VEIN_TEST_ABI MAMORI_BIO_ABI_VERSION
#endif

#define TEMPLATE_PREFIX "vein-test:1:"

struct mamori_bio_device {
        int listen_fd;
        int cancel_fd; /* eventfd: readable while a cancel is pending */
        unsigned stages;
        char path[108];
};

#ifndef VEIN_TEST_NO_VERSION
const uint32_t mamori_bio_abi_version = VEIN_TEST_ABI;
#endif

static void set_err(char *err, const char *what)
{
        snprintf(err, MAMORI_BIO_ERROR_MAX, "vein-test: %s: %s", what, strerror(errno));
}

EXPORT int mamori_bio_open(const char *options, mamori_bio_device **ret_device, unsigned *ret_flags,
                           char err[MAMORI_BIO_ERROR_MAX])
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        mamori_bio_device *d;
        const char *sp = strchr(options, ' ');
        size_t n = sp ? (size_t)(sp - options) : strlen(options);

        if (n == 0 || n >= sizeof(sa.sun_path)) {
                snprintf(err, MAMORI_BIO_ERROR_MAX, "vein-test: options must start with a socket path");
                return -EINVAL;
        }
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->stages = 3;
        memcpy(d->path, options, n);
        memcpy(sa.sun_path, options, n);
        d->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (d->cancel_fd < 0 || d->listen_fd < 0) {
                set_err(err, "socket");
                goto fail;
        }
        (void)unlink(d->path);
        if (bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(d->listen_fd, 8) < 0) {
                set_err(err, d->path);
                goto fail;
        }
        *ret_device = d;
        *ret_flags = (sp && strstr(sp, "verify-only")) ? 0 : MAMORI_BIO_CAN_IDENTIFY;
        return 0;
fail:
        if (d->listen_fd >= 0)
                close(d->listen_fd);
        if (d->cancel_fd >= 0)
                close(d->cancel_fd);
        free(d);
        return -EIO;
}

/* Waits for one command that presents a hand: 0 and the hand's id, or a negative errno. */
static int capture(mamori_bio_device *d, char *id, size_t id_size)
{
        for (;;) {
                struct pollfd p[2] = {{d->listen_fd, POLLIN, 0}, {d->cancel_fd, POLLIN, 0}};
                char line[128];
                ssize_t k;
                size_t got = 0;
                int c;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -EIO;
                }
                if (p[1].revents) {
                        uint64_t v;
                        (void)!read(d->cancel_fd, &v, sizeof(v));
                        return -ECANCELED;
                }
                c = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                while (got < sizeof(line) - 1 && (k = read(c, line + got, sizeof(line) - 1 - got)) > 0) {
                        got += (size_t)k;
                        if (memchr(line, '\n', got))
                                break;
                }
                line[got] = '\0';
                line[strcspn(line, "\r\n")] = '\0';
                (void)!send(c, "ok\n", 3, MSG_NOSIGNAL); /* the client may be gone: no SIGPIPE in mamorid */
                close(c);
                if (strncmp(line, "SCAN ", 5) == 0 && line[5]) {
                        snprintf(id, id_size, "%s", line + 5);
                        return 0;
                }
                if (strcmp(line, "RETRY") == 0)
                        return -EAGAIN;
                if (strcmp(line, "GONE") == 0)
                        return -ENODEV;
                if (strncmp(line, "STAGES ", 7) == 0) {
                        int v = atoi(line + 7);
                        if (v >= 1 && v <= 10)
                                d->stages = (unsigned)v;
                }
                /* anything else: keep waiting */
        }
}

EXPORT int mamori_bio_enroll(mamori_bio_device *d, mamori_bio_progress_fn progress, void *userdata,
                             uint8_t *buf, size_t buf_size, size_t *ret_size)
{
        char first[128] = "", id[128];
        int n;

        for (unsigned i = 0; i < d->stages; i++) {
                int r = capture(d, id, sizeof(id));
                if (r < 0)
                        return r;
                if (i == 0)
                        snprintf(first, sizeof(first), "%s", id);
                else if (strcmp(first, id) != 0)
                        return -EAGAIN; /* another hand in the middle of an enrolment */
                if (progress)
                        progress(userdata, i + 1, d->stages);
        }
        n = snprintf((char *)buf, buf_size, TEMPLATE_PREFIX "%s", first);
        if (n < 0 || (size_t)n >= buf_size)
                return -EIO;
        *ret_size = (size_t)n;
        return 0;
}

static int template_is(const struct mamori_bio_template *t, const char *id)
{
        size_t pre = strlen(TEMPLATE_PREFIX), n = strlen(id);

        return t->size == pre + n && memcmp(t->data, TEMPLATE_PREFIX, pre) == 0 &&
               memcmp(t->data + pre, id, n) == 0;
}

static int template_ok(const struct mamori_bio_template *t)
{
        size_t pre = strlen(TEMPLATE_PREFIX);

        return t->size > pre && memcmp(t->data, TEMPLATE_PREFIX, pre) == 0;
}

EXPORT int mamori_bio_verify(mamori_bio_device *d, const struct mamori_bio_template *t)
{
        char id[128];
        int r;

        if (!template_ok(t))
                return -EINVAL;
        r = capture(d, id, sizeof(id));
        if (r < 0)
                return r;
        return template_is(t, id) ? 1 : 0;
}

#ifndef VEIN_TEST_NO_IDENTIFY
EXPORT int mamori_bio_identify(mamori_bio_device *d, const struct mamori_bio_template *gallery, size_t n,
                               size_t *ret_index)
{
        char id[128];
        int r;

        for (size_t i = 0; i < n; i++)
                if (!template_ok(&gallery[i]))
                        return -EINVAL;
        r = capture(d, id, sizeof(id));
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (template_is(&gallery[i], id)) {
                        *ret_index = i;
                        return 1;
                }
        return 0;
}
#endif

EXPORT void mamori_bio_cancel(mamori_bio_device *d)
{
        uint64_t one = 1;

        (void)!write(d->cancel_fd, &one, sizeof(one));
}

EXPORT void mamori_bio_close(mamori_bio_device *d)
{
        if (!d)
                return;
        close(d->listen_fd);
        close(d->cancel_fd);
        (void)unlink(d->path);
        free(d);
}
