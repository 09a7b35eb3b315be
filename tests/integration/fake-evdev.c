/* Test stand-in for the kernel's evdev ioctls on FIFOs, so libevdev runs unchanged where no uinput exists.
 *
 * This machine has no /dev/uinput (nor uhid, nor CUSE), so no real evdev device can be made. The
 * test puts FIFOs named event* in a directory and exports FAKE_EVDEV_DIR=<that directory>; for a
 * FIFO <dir>/eventN described by <dir>/spec.eventN, this ioctl() answers what the kernel would
 * for such a device (EVIOCGBIT, EVIOCGNAME, EVIOCGPROP, EVIOCGABS …), and the test writes
 * struct input_event records into the FIFO. Everything above the ioctl — libevdev_new_from_fd(),
 * libevdev_has_event_type(), libevdev_next_event() and mamorid's own code — is the real thing.
 * A FIFO without a spec answers ENOTTY, like any file that is not an evdev device.
 *
 * Used two ways: linked into a unit test (the executable's ioctl() comes first), or loaded with
 * LD_PRELOAD into mamorid for the integration tests.
 *
 * Spec lines:  name TEXT | prop N | key CODE | rel CODE | msc CODE | sw CODE | led CODE |
 *              abs CODE MIN MAX
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <linux/input.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BITS_BYTES(max) (((max) + 8) / 8)

struct fake_device {
        char name[256];
        uint8_t ev[BITS_BYTES(EV_MAX)];
        uint8_t props[BITS_BYTES(INPUT_PROP_MAX)];
        uint8_t key[BITS_BYTES(KEY_MAX)], rel[BITS_BYTES(REL_MAX)], abs[BITS_BYTES(ABS_MAX)];
        uint8_t msc[BITS_BYTES(MSC_MAX)], sw[BITS_BYTES(SW_MAX)], led[BITS_BYTES(LED_MAX)];
        struct input_absinfo absinfo[ABS_CNT];
};

static void set_bit(uint8_t *bits, size_t nbytes, unsigned bit)
{
        if (bit / 8 < nbytes)
                bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* Loads the spec of fd's file: true if fd is one of the test's fake devices. */
static bool load_spec(int fd, struct fake_device *d)
{
        const char *dir = getenv("FAKE_EVDEV_DIR");
        char link[64], path[PATH_MAX], spec[PATH_MAX + 16], line[256];
        const char *base;
        ssize_t n;
        FILE *f;

        if (!dir || !*dir)
                return false;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n <= 0)
                return false;
        path[n] = '\0';
        base = strrchr(path, '/');
        if (!base || (size_t)(base - path) != strlen(dir) || strncmp(path, dir, strlen(dir)) != 0)
                return false;
        snprintf(spec, sizeof(spec), "%s/spec.%s", dir, base + 1);
        f = fopen(spec, "re");
        if (!f)
                return false;
        memset(d, 0, sizeof(*d));
        set_bit(d->ev, sizeof(d->ev), EV_SYN);
        while (fgets(line, sizeof(line), f)) {
                unsigned code;
                int min, max;
                line[strcspn(line, "\n")] = '\0';
                if (strncmp(line, "name ", 5) == 0)
                        snprintf(d->name, sizeof(d->name), "%s", line + 5);
                else if (sscanf(line, "prop %u", &code) == 1)
                        set_bit(d->props, sizeof(d->props), code);
                else if (sscanf(line, "key %u", &code) == 1) {
                        set_bit(d->ev, sizeof(d->ev), EV_KEY);
                        set_bit(d->key, sizeof(d->key), code);
                } else if (sscanf(line, "rel %u", &code) == 1) {
                        set_bit(d->ev, sizeof(d->ev), EV_REL);
                        set_bit(d->rel, sizeof(d->rel), code);
                } else if (sscanf(line, "msc %u", &code) == 1) {
                        set_bit(d->ev, sizeof(d->ev), EV_MSC);
                        set_bit(d->msc, sizeof(d->msc), code);
                } else if (sscanf(line, "sw %u", &code) == 1) {
                        set_bit(d->ev, sizeof(d->ev), EV_SW);
                        set_bit(d->sw, sizeof(d->sw), code);
                } else if (sscanf(line, "led %u", &code) == 1) {
                        set_bit(d->ev, sizeof(d->ev), EV_LED);
                        set_bit(d->led, sizeof(d->led), code);
                } else if (sscanf(line, "abs %u %d %d", &code, &min, &max) == 3 && code < ABS_CNT) {
                        set_bit(d->ev, sizeof(d->ev), EV_ABS);
                        set_bit(d->abs, sizeof(d->abs), code);
                        d->absinfo[code] = (struct input_absinfo){.minimum = min, .maximum = max};
                }
        }
        fclose(f);
        return true;
}

/* Copies a bitmap the way the kernel does: at most len bytes, the rest of the caller's buffer zeroed. */
static int copy_out(void *arg, size_t len, const void *src, size_t src_len)
{
        memset(arg, 0, len);
        memcpy(arg, src, len < src_len ? len : src_len);
        return (int)(len < src_len ? len : src_len);
}

static int fail(int error)
{
        errno = error;
        return -1;
}

static int fake_ioctl(const struct fake_device *d, unsigned long request, void *arg)
{
        unsigned nr = _IOC_NR(request);
        size_t len = _IOC_SIZE(request);

        if (_IOC_TYPE(request) != 'E')
                return fail(ENOTTY);
        if (request == EVIOCGVERSION) {
                *(int *)arg = EV_VERSION;
                return 0;
        }
        if (request == EVIOCGID) {
                *(struct input_id *)arg =
                        (struct input_id){.bustype = BUS_VIRTUAL, .vendor = 1, .product = 1};
                return 0;
        }
        if (request == EVIOCGREP) {
                ((unsigned *)arg)[0] = 250;
                ((unsigned *)arg)[1] = 33;
                return 0;
        }
        if (request == EVIOCGRAB || request == EVIOCSCLOCKID)
                return 0;
        if (_IOC_DIR(request) != _IOC_READ)
                return fail(EINVAL);
        switch (nr) {
        case 0x06: /* EVIOCGNAME */
                return copy_out(arg, len, d->name, strlen(d->name) + 1);
        case 0x07: /* EVIOCGPHYS */
        case 0x08: /* EVIOCGUNIQ */
                return fail(ENOENT);
        case 0x09: /* EVIOCGPROP */
                return copy_out(arg, len, d->props, sizeof(d->props));
        case 0x18: /* EVIOCGKEY: no key held */
        case 0x19: /* EVIOCGLED */
        case 0x1a: /* EVIOCGSND */
        case 0x1b: /* EVIOCGSW */
                memset(arg, 0, len);
                return (int)len;
        case 0x20 + 0:
                return copy_out(arg, len, d->ev, sizeof(d->ev));
        case 0x20 + EV_KEY:
                return copy_out(arg, len, d->key, sizeof(d->key));
        case 0x20 + EV_REL:
                return copy_out(arg, len, d->rel, sizeof(d->rel));
        case 0x20 + EV_ABS:
                return copy_out(arg, len, d->abs, sizeof(d->abs));
        case 0x20 + EV_MSC:
                return copy_out(arg, len, d->msc, sizeof(d->msc));
        case 0x20 + EV_SW:
                return copy_out(arg, len, d->sw, sizeof(d->sw));
        case 0x20 + EV_LED:
                return copy_out(arg, len, d->led, sizeof(d->led));
        default:
                if (nr >= 0x20 && nr < 0x20 + EV_CNT) { /* EV_SND, EV_FF …: none */
                        memset(arg, 0, len);
                        return (int)len;
                }
                if (nr >= 0x40 && nr < 0x40 + ABS_CNT && len == sizeof(struct input_absinfo)) {
                        *(struct input_absinfo *)arg = d->absinfo[nr - 0x40];
                        return 0;
                }
                return fail(EINVAL);
        }
}

int ioctl(int fd, unsigned long request, ...)
{
        static int (*real_ioctl)(int, unsigned long, ...);
        struct fake_device d;
        va_list ap;
        void *arg;

        va_start(ap, request);
        arg = va_arg(ap, void *);
        va_end(ap);
        if (_IOC_TYPE(request) == 'E' && load_spec(fd, &d))
                return fake_ioctl(&d, request, arg);
        if (!real_ioctl)
                real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
        if (!real_ioctl)
                return fail(ENOSYS);
        return real_ioctl(fd, request, arg);
}
