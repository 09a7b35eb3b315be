/* IdleSource=input: notices keyboard, pointer and touch activity by reading the evdev devices directly. */
#pragma once

#include <systemd/sd-event.h>

typedef struct IdleInput IdleInput;

/* activity is called (at most once a second) whenever an operator's device produced input. */
typedef void (*idle_input_fn)(void *userdata);

/*
 * Watches the event* devices in directory through libevdev. Only keyboards, pointers and touch
 * devices are read (never an accelerometer, a switch or a power button), and only their key,
 * relative and absolute events count (not EV_SYN, EV_MSC, LEDs …; a touch device's axes only
 * while touched). Devices that appear later (inotify on directory) are followed; unplugged ones
 * are dropped. Returns the number of such devices at start; 0 is not an error (the caller warns:
 * nothing can then prove the operator is present, so idle lock still fires).
 */
int idle_input_start(sd_event *e, const char *directory, idle_input_fn activity, void *userdata,
                     IdleInput **ret);
IdleInput *idle_input_free(IdleInput *w);
