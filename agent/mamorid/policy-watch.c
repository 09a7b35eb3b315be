/* inotify on [Policy] Directory: a new policy.json (renamed into place) is loaded at once. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "mamori/macro.h"
#include "policy-watch.h"

struct PolicyWatch {
        PolicyStore *store;
        sd_event_source *io;
        int inotify_fd;
        policy_changed_fn cb;
        void *userdata;
};

PolicyWatch *policy_watch_free(PolicyWatch *w)
{
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->io);
        safe_close(w->inotify_fd);
        policy_store_free(w->store);
        free(w);
        return NULL;
}

int policy_watch_reload(PolicyWatch *w)
{
        struct policy_load_result res;
        int r = policy_store_reload(w->store, &res);

        if (r < 0)
                return r;
        w->cb(w->userdata, &res, policy_store_current(w->store));
        return 0;
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        PolicyWatch *w = userdata;
        _Alignas(struct inotify_event) char buf[4096];
        bool relevant = false;

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *ev = (struct inotify_event *)p;
                        /* Only a complete file counts: a rename into place or a closed write. */
                        if (ev->len > 0 && streq(ev->name, POLICY_STORE_FILE))
                                relevant = true;
                        if (ev->mask & IN_Q_OVERFLOW)
                                relevant = true;
                        p += sizeof(*ev) + ev->len;
                }
        }
        if (relevant)
                (void)policy_watch_reload(w);
        return 0;
}

int policy_watch_start(sd_event *e, const struct agent_config *config, policy_changed_fn cb, void *userdata,
                       PolicyWatch **ret)
{
        PolicyWatch *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->inotify_fd = -EBADF;
        w->cb = cb;
        w->userdata = userdata;
        r = policy_store_open(config, &w->store);
        if (r < 0)
                goto fail;
        w->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (w->inotify_fd < 0) {
                r = negative_errno();
                goto fail;
        }
        /* A missing directory is not fatal: the policy stays absent (logins refused) until it exists
         * and the agent restarts; the package creates it. */
        if (inotify_add_watch(w->inotify_fd, config->policy_directory, IN_MOVED_TO | IN_CLOSE_WRITE) < 0 &&
            errno != ENOENT) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(e, &w->io, w->inotify_fd, EPOLLIN, on_inotify, w);
        if (r < 0)
                goto fail;
        r = policy_watch_reload(w);
        if (r < 0)
                goto fail;
        *ret = w;
        return 0;
fail:
        policy_watch_free(w);
        return r;
}

const Policy *policy_watch_current(const PolicyWatch *w)
{
        return policy_store_current(w->store);
}
