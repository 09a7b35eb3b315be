/* IdleSource=input: presence from keyboards, pointers and touch devices under /dev/input, through libevdev.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <libevdev/libevdev.h>

#include "idle-input.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"

#define MAX_DEVICES 32
/* A chatty device must not hold the loop. */
#define EVENTS_PER_WAKE 256
/* µs: one activity report per second is plenty for a minutes-long timer. */
#define REPORT_INTERVAL 1000000u

struct device {
        IdleInput *owner;
        char *name; /* file name in the directory, e.g. "event3" */
        struct libevdev *evdev;
        bool touch_gated; /* has BTN_TOUCH: absolute motion counts only while touched */
        int fd;
        sd_event_source *source;
};

struct IdleInput {
        sd_event *event;
        char *directory;
        sd_event_source *inotify;
        struct device *devices[MAX_DEVICES];
        size_t n;
        idle_input_fn activity;
        void *userdata;
        uint64_t last_report;
};

static bool has_key_in(const struct libevdev *e, unsigned first, unsigned last)
{
        for (unsigned c = first; c <= last; c++)
                if (libevdev_has_event_code(e, EV_KEY, c))
                        return true;
        return false;
}

/* Only what an operator's hands move: a device that reports by itself (an accelerometer, a lid
 * switch, a power button, a sensor) must not keep the session open. */
static bool is_operator_device(const struct libevdev *e)
{
        if (libevdev_has_property(e, INPUT_PROP_ACCELEROMETER))
                return false;
        /* Keyboard: a key of the main block or the numeric keypad (a barcode scanner is one too). */
        if (libevdev_has_event_type(e, EV_KEY) && has_key_in(e, KEY_ESC, KEY_KPDOT))
                return true;
        /* Pointer: mouse, trackball, touchpad in relative mode. */
        if (libevdev_has_event_code(e, EV_REL, REL_X) && libevdev_has_event_code(e, EV_REL, REL_Y))
                return true;
        /* Touch screen, tablet, absolute pointer: absolute axes plus a touch, tool or button. */
        bool axes =
                (libevdev_has_event_code(e, EV_ABS, ABS_X) && libevdev_has_event_code(e, EV_ABS, ABS_Y)) ||
                (libevdev_has_event_code(e, EV_ABS, ABS_MT_POSITION_X) &&
                 libevdev_has_event_code(e, EV_ABS, ABS_MT_POSITION_Y));
        return axes &&
               (libevdev_has_event_code(e, EV_KEY, BTN_TOUCH) ||
                libevdev_has_event_code(e, EV_KEY, BTN_TOOL_PEN) ||
                libevdev_has_event_code(e, EV_KEY, BTN_TOOL_FINGER) ||
                libevdev_has_event_code(e, EV_KEY, BTN_LEFT) ||
                libevdev_has_property(e, INPUT_PROP_DIRECT) || libevdev_has_property(e, INPUT_PROP_POINTER));
}

/* Key, relative and absolute events count; EV_SYN, EV_MSC, switches, LEDs, sound do not. */
static bool is_presence(const struct device *d, const struct input_event *ev)
{
        switch (ev->type) {
        case EV_KEY:
        case EV_REL:
                return true;
        case EV_ABS:
                /* A jittery touch controller moves its axes without a finger on it. */
                return !d->touch_gated || libevdev_get_event_value(d->evdev, EV_KEY, BTN_TOUCH) > 0;
        default:
                return false;
        }
}

static struct device *device_free(struct device *d)
{
        if (!d)
                return NULL;
        d->source = sd_event_source_disable_unref(d->source);
        libevdev_free(d->evdev);
        safe_close(d->fd);
        free(d->name);
        free(d);
        return NULL;
}

static void drop_device(IdleInput *w, size_t i)
{
        device_free(w->devices[i]);
        w->devices[i] = w->devices[--w->n];
}

static void report(IdleInput *w)
{
        uint64_t now = now_mono_usec();
        if (now - w->last_report >= REPORT_INTERVAL) {
                w->last_report = now;
                w->activity(w->userdata);
        }
}

static int on_input(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct device *d = userdata;
        IdleInput *w = d->owner;
        struct input_event ev;
        bool presence = false, gone = false;
        int r = 0;

        for (unsigned i = 0; i < EVENTS_PER_WAKE; i++) {
                r = libevdev_next_event(d->evdev, LIBEVDEV_READ_FLAG_NORMAL, &ev);
                if (r == LIBEVDEV_READ_STATUS_SYNC) {
                        /* The kernel dropped events (our reader fell behind): catch up on the device
                         * state, without counting the replay as presence. */
                        while (r == LIBEVDEV_READ_STATUS_SYNC)
                                r = libevdev_next_event(d->evdev, LIBEVDEV_READ_FLAG_SYNC, &ev);
                        continue;
                }
                if (r == -EAGAIN)
                        break;
                if (r < 0) {
                        gone = true; /* -ENODEV: unplugged */
                        break;
                }
                if (is_presence(d, &ev))
                        presence = true;
        }
        if (presence)
                report(w);
        if (gone || (r == -EAGAIN && (revents & (EPOLLHUP | EPOLLERR))))
                for (size_t i = 0; i < w->n; i++)
                        if (w->devices[i] == d) {
                                drop_device(w, i);
                                break;
                        }
        return 0;
}

static ssize_t find_device(IdleInput *w, const char *name)
{
        for (size_t i = 0; i < w->n; i++)
                if (streq(w->devices[i]->name, name))
                        return (ssize_t)i;
        return -1;
}

/* Opens <directory>/<name> if it is an operator's input device: 1 watched, 0 not one, -errno. */
static int add_device(IdleInput *w, int dir_fd, const char *name)
{
        struct device *d;
        int r;

        if (!strneq(name, "event", 5) || find_device(w, name) >= 0)
                return 0;
        if (w->n == MAX_DEVICES)
                return -ENOSPC;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->owner = w;
        d->fd = openat(dir_fd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (d->fd < 0) {
                r = negative_errno();
                device_free(d);
                return r;
        }
        d->name = strdup(name);
        if (!d->name) {
                device_free(d);
                return -ENOMEM;
        }
        r = libevdev_new_from_fd(d->fd, &d->evdev);
        if (r < 0 || !is_operator_device(d->evdev)) {
                device_free(d); /* not evdev, or nothing an operator touches */
                return 0;
        }
        d->touch_gated = libevdev_has_event_code(d->evdev, EV_KEY, BTN_TOUCH);
        r = sd_event_add_io(w->event, &d->source, d->fd, EPOLLIN, on_input, d);
        if (r < 0) {
                device_free(d);
                return r;
        }
        w->devices[w->n++] = d;
        return 1;
}

static int scan(IdleInput *w)
{
        DIR *dir = opendir(w->directory);
        struct dirent *de;

        if (!dir)
                return -errno;
        while ((de = readdir(dir)))
                (void)add_device(w, dirfd(dir), de->d_name);
        closedir(dir);
        return 0;
}

static int on_directory(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
        IdleInput *w = userdata;

        if (ev->mask & IN_Q_OVERFLOW) {
                (void)scan(w);
                return 0;
        }
        if (ev->len == 0)
                return 0;
        if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
                ssize_t i = find_device(w, ev->name);
                if (i >= 0)
                        drop_device(w, (size_t)i);
        } else if (ev->mask & (IN_CREATE | IN_ATTRIB | IN_MOVED_TO)) {
                /* udev creates the node, then sets its mode: IN_ATTRIB retries what IN_CREATE could not
                 * open. */
                int dir_fd = open(w->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd >= 0) {
                        (void)add_device(w, dir_fd, ev->name);
                        safe_close(dir_fd);
                }
        }
        return 0;
}

IdleInput *idle_input_free(IdleInput *w)
{
        if (!w)
                return NULL;
        while (w->n > 0)
                drop_device(w, w->n - 1);
        w->inotify = sd_event_source_disable_unref(w->inotify);
        free(w->directory);
        free(w);
        return NULL;
}

int idle_input_start(sd_event *e, const char *directory, idle_input_fn activity, void *userdata,
                     IdleInput **ret)
{
        IdleInput *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->event = e;
        w->activity = activity;
        w->userdata = userdata;
        w->directory = strdup(directory);
        if (!w->directory) {
                idle_input_free(w);
                return -ENOMEM;
        }
        /* Watch first, then list: a device plugged in between is seen by one or the other (or both:
         * add_device() skips what it already has). A missing directory leaves nothing to follow. */
        (void)sd_event_add_inotify(e, &w->inotify, directory,
                                   IN_CREATE | IN_ATTRIB | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
                                           IN_ONLYDIR,
                                   on_directory, w);
        (void)scan(w);
        *ret = w;
        return (int)w->n;
}
