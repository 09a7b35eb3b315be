/* Unit tests of IdleSource=input: which devices and which events count, hotplug, through real libevdev. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idle-input.h"

/* tests/integration/fake-evdev.c (linked in) answers the evdev ioctls for FIFOs in FAKE_EVDEV_DIR. */

struct fixture {
        char dir[64];
        sd_event *event;
        IdleInput *input;
        int writers[8];
        unsigned n_writers;
        unsigned activity;
};

static const char keyboard[] = "name test keyboard\nkey 1\nkey 30\nkey 57\nmsc 4\nled 0\n";
static const char mouse[] = "name test mouse\nrel 0\nrel 1\nkey 272\n";
static const char touch[] = "name test touch\nabs 0 0 4095\nabs 1 0 4095\nkey 330\nprop 1\n";
static const char accelerometer[] =
        "name test accelerometer\nabs 0 -512 512\nabs 1 -512 512\nabs 2 -512 512\nprop 6\n";
/* Would pass for an absolute pointer but for INPUT_PROP_ACCELEROMETER. */
static const char accelerometer_with_button[] =
        "name test motion\nabs 0 -512 512\nabs 1 -512 512\nkey 272\nprop 6\n";
static const char msc_only[] = "name test msc\nmsc 4\n";
static const char lid_switch[] = "name test lid\nsw 0\n";
static const char power_button[] = "name test power\nkey 116\n";

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        strcpy(f->dir, "/tmp/test-idle-input-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(setenv("FAKE_EVDEV_DIR", f->dir, 1), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];

        f->input = idle_input_free(f->input);
        for (unsigned i = 0; i < f->n_writers; i++)
                close(f->writers[i]);
        sd_event_unref(f->event);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

/* A stand-in device: its spec, then the FIFO (so it is complete when inotify reports it). */
static int add_device(struct fixture *f, const char *name, const char *spec)
{
        char path[128];
        FILE *s;
        int fd;

        if (spec) {
                snprintf(path, sizeof(path), "%s/spec.%s", f->dir, name);
                s = fopen(path, "we");
                assert_non_null(s);
                fputs(spec, s);
                fclose(s);
        }
        snprintf(path, sizeof(path), "%s/%s", f->dir, name);
        assert_int_equal(mkfifo(path, 0600), 0);
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(f->n_writers < 8);
        f->writers[f->n_writers++] = fd;
        return fd;
}

static void emit(int fd, unsigned type, unsigned code, int value)
{
        struct input_event ev[2] = {{.type = type, .code = code, .value = value}, {.type = EV_SYN}};
        assert_int_equal(write(fd, ev, sizeof(ev)), (ssize_t)sizeof(ev));
}

static void on_activity(void *userdata)
{
        struct fixture *f = userdata;
        f->activity++;
}

/* Runs the loop until it has nothing more to do (inotify, input) for 50 ms. */
static void settle(struct fixture *f)
{
        while (sd_event_run(f->event, 50 * 1000) > 0)
                ;
}

static void start(struct fixture *f, int expect_devices)
{
        assert_int_equal(idle_input_start(f->event, f->dir, on_activity, f, &f->input), expect_devices);
        settle(f);
}

/* Restarts the watcher so the once-a-second report limit does not hide the next activity. */
static void restart(struct fixture *f, int expect_devices)
{
        f->input = idle_input_free(f->input);
        f->activity = 0;
        start(f, expect_devices);
}

static void test_operator_devices_count(void **state)
{
        struct fixture *f = *state;
        int kbd = add_device(f, "event0", keyboard);
        int ptr = add_device(f, "event1", mouse);
        int tch = add_device(f, "event2", touch);

        start(f, 3);
        assert_int_equal(f->activity, 0);
        emit(kbd, EV_KEY, KEY_A, 1);
        settle(f);
        assert_int_equal(f->activity, 1);

        restart(f, 3);
        emit(ptr, EV_REL, REL_X, 5);
        settle(f);
        assert_int_equal(f->activity, 1);

        restart(f, 3);
        emit(tch, EV_KEY, BTN_TOUCH, 1);
        settle(f);
        assert_int_equal(f->activity, 1);
}

static void test_other_devices_ignored(void **state)
{
        struct fixture *f = *state;
        int acc = add_device(f, "event0", accelerometer);
        int msc = add_device(f, "event1", msc_only);
        int lid = add_device(f, "event2", lid_switch);
        int pwr = add_device(f, "event3", power_button);
        (void)add_device(f, "event4", NULL); /* no spec: not an evdev device at all */
        int mot = add_device(f, "event5", accelerometer_with_button);

        start(f, 0);
        for (int i = 0; i < 20; i++) {
                emit(acc, EV_ABS, ABS_X, i);
                emit(msc, EV_MSC, MSC_SCAN, i);
                emit(lid, EV_SW, SW_LID, i & 1);
                emit(pwr, EV_KEY, KEY_POWER, i & 1);
                emit(mot, EV_ABS, ABS_Y, i);
        }
        settle(f);
        assert_int_equal(f->activity, 0);
}

/* A keyboard's own EV_MSC (scan codes), LEDs and SYN are not a keystroke. */
static void test_only_key_rel_abs_events_count(void **state)
{
        struct fixture *f = *state;
        int kbd = add_device(f, "event0", keyboard);
        int tch = add_device(f, "event1", touch);

        start(f, 2);
        for (int i = 0; i < 20; i++) {
                emit(kbd, EV_MSC, MSC_SCAN, 0x70004);
                emit(kbd, EV_LED, LED_NUML, i & 1);
                emit(kbd, EV_SYN, SYN_REPORT, 0);
                /* Axis jitter with no finger on the screen. */
                emit(tch, EV_ABS, ABS_X, 100 + (i & 1));
        }
        settle(f);
        assert_int_equal(f->activity, 0);
        emit(tch, EV_KEY, BTN_TOUCH, 1);
        settle(f);
        assert_int_equal(f->activity, 1);
        restart(f, 2);
        emit(tch, EV_ABS, ABS_X, 300); /* restart forgot the touch: reads as jitter again */
        settle(f);
        assert_int_equal(f->activity, 0);
}

static void test_hotplug(void **state)
{
        struct fixture *f = *state;
        char path[128];
        int kbd, acc, ptr;

        start(f, 0);
        kbd = add_device(f, "event7", keyboard);
        settle(f); /* inotify: IN_CREATE */
        emit(kbd, EV_KEY, KEY_SPACE, 1);
        settle(f);
        assert_int_equal(f->activity, 1);

        /* Unplugged: the node goes away and is no longer read (past the once-a-second limit). */
        snprintf(path, sizeof(path), "%s/event7", f->dir);
        assert_int_equal(unlink(path), 0);
        snprintf(path, sizeof(path), "%s/spec.event7", f->dir);
        assert_int_equal(unlink(path), 0);
        settle(f);
        usleep(1100 * 1000);
        emit(kbd, EV_KEY, KEY_SPACE, 0);
        settle(f);
        assert_int_equal(f->activity, 1);

        /* A device of another kind takes the name: not followed. A mouse plugged in next is. */
        acc = add_device(f, "event7", accelerometer);
        settle(f);
        emit(acc, EV_ABS, ABS_Y, 7);
        settle(f);
        assert_int_equal(f->activity, 1);
        ptr = add_device(f, "event8", mouse);
        settle(f);
        emit(ptr, EV_REL, REL_Y, -3);
        settle(f);
        assert_int_equal(f->activity, 2);
}

static void test_missing_directory(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(idle_input_start(f->event, "/nonexistent/input", on_activity, f, &f->input), 0);
        settle(f);
        assert_int_equal(f->activity, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_operator_devices_count, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_devices_ignored, setup, teardown),
                cmocka_unit_test_setup_teardown(test_only_key_rel_abs_events_count, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hotplug, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
