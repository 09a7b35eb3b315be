/* Keeps mamorid's policy current: loads at start, reloads when policy.json is replaced (inotify). */
#pragma once

#include <systemd/sd-event.h>

#include "mamori/policy-store.h"

typedef struct PolicyWatch PolicyWatch;

/* Called after every (re)load attempt with what happened; current may be NULL. */
typedef void (*policy_changed_fn)(void *userdata, const struct policy_load_result *result,
                                  const Policy *current);

/* Opens the store, loads once (reporting through cb) and watches the directory. Fails when the
 * signer key is unusable: the caller fails closed. */
int policy_watch_start(sd_event *e, const struct agent_config *config, policy_changed_fn cb, void *userdata,
                       PolicyWatch **ret);
PolicyWatch *policy_watch_free(PolicyWatch *w);

/* Reloads now (also what inotify triggers). */
int policy_watch_reload(PolicyWatch *w);

const Policy *policy_watch_current(const PolicyWatch *w);
