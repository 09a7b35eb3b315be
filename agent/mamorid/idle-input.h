/* IdleSource=input: notices keyboard/mouse activity by reading the evdev devices directly. */
#pragma once

#include <systemd/sd-event.h>

typedef struct IdleInput IdleInput;

/* activity is called (at most once a second) whenever any device under directory produced input. */
typedef void (*idle_input_fn)(void *userdata);

/* Opens every event* device in directory. Returns the number opened; 0 devices is not an error
 * (the caller warns: nothing can then prove the operator is present, so idle lock still fires). */
int idle_input_start(sd_event *e, const char *directory, idle_input_fn activity, void *userdata,
                     IdleInput **ret);
IdleInput *idle_input_free(IdleInput *w);
