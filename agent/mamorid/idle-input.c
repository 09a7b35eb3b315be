/* Reads /dev/input/event* (or [Session] InputDirectory) to tell when an operator last touched the terminal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "idle-input.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define MAX_DEVICES 32
#define REPORT_INTERVAL                                                                    \
        1000000u /* µs: one activity report per second is plenty for a minutes-long timer \
                  */

struct device {
        int fd;
        sd_event_source *source;
};

struct IdleInput {
        struct device devices[MAX_DEVICES];
        size_t n;
        idle_input_fn activity;
        void *userdata;
        uint64_t last_report;
};

static void drop_device(struct device *d)
{
        d->source = sd_event_source_disable_unref(d->source);
        d->fd = safe_close(d->fd);
}

static int on_input(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        IdleInput *w = userdata;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (revents & (EPOLLHUP | EPOLLERR))) {
                /* Device unplugged: stop watching it. */
                for (size_t i = 0; i < w->n; i++)
                        if (w->devices[i].fd == fd)
                                drop_device(&w->devices[i]);
                return 0;
        }
        if (n > 0) {
                uint64_t now = now_mono_usec();
                if (now - w->last_report >= REPORT_INTERVAL) {
                        w->last_report = now;
                        w->activity(w->userdata);
                }
        }
        return 0;
}

IdleInput *idle_input_free(IdleInput *w)
{
        if (!w)
                return NULL;
        for (size_t i = 0; i < w->n; i++)
                drop_device(&w->devices[i]);
        free(w);
        return NULL;
}

int idle_input_start(sd_event *e, const char *directory, idle_input_fn activity, void *userdata,
                     IdleInput **ret)
{
        IdleInput *w = calloc(1, sizeof(*w));
        DIR *d;
        struct dirent *de;

        if (!w)
                return -ENOMEM;
        w->activity = activity;
        w->userdata = userdata;
        d = opendir(directory);
        if (!d) {
                *ret = w;
                return 0;
        }
        while ((de = readdir(d)) && w->n < MAX_DEVICES) {
                if (strncmp(de->d_name, "event", 5) != 0)
                        continue;
                int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        continue;
                struct device *dev = &w->devices[w->n];
                dev->fd = fd;
                if (sd_event_add_io(e, &dev->source, fd, EPOLLIN, on_input, w) < 0) {
                        close(fd);
                        continue;
                }
                w->n++;
        }
        closedir(d);
        *ret = w;
        return (int)w->n;
}
