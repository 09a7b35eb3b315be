/* The collector's connection guard: unauthenticated caps (oldest dropped first) and request deadlines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn-guard.h"
#include "mamori/macro.h"

struct GuardConn {
        GuardConn *prev, *next; /* in accept order: the oldest first */
        uint8_t addr[GUARD_ADDR_MAX];
        size_t addr_len;
        uint64_t deadline_start_usec; /* accept, then the end of the previous request */
        bool authenticated, dropped;
        void *userdata;
};

struct ConnGuard {
        ConnGuardLimits limits;
        guard_progress_fn progress;
        GuardConn *head, *tail;
        ConnGuardStats stats;
};

int conn_guard_new(const ConnGuardLimits *limits, guard_progress_fn progress, ConnGuard **ret)
{
        ConnGuard *g;

        if (!limits || !progress || !ret || limits->max_unauth == 0 || limits->max_unauth_per_addr == 0 ||
            limits->request_usec == 0)
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->limits = *limits;
        g->progress = progress;
        *ret = g;
        return 0;
}

ConnGuard *conn_guard_free(ConnGuard *g)
{
        if (!g)
                return NULL;
        while (g->head)
                conn_guard_remove(g, g->head);
        free(g);
        return NULL;
}

int conn_guard_add(ConnGuard *g, const void *addr, size_t addr_len, uint64_t now_usec, void *userdata,
                   GuardConn **ret)
{
        GuardConn *c;

        if (!g || (!addr && addr_len > 0) || addr_len > GUARD_ADDR_MAX || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        if (addr_len > 0)
                memcpy(c->addr, addr, addr_len);
        c->addr_len = addr_len;
        c->deadline_start_usec = now_usec;
        c->userdata = userdata;
        c->prev = g->tail;
        if (g->tail)
                g->tail->next = c;
        else
                g->head = c;
        g->tail = c;
        g->stats.open++;
        g->stats.unauthenticated++;
        *ret = c;
        return 0;
}

void conn_guard_remove(ConnGuard *g, GuardConn *c)
{
        if (!g || !c)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                g->head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                g->tail = c->prev;
        g->stats.open--;
        if (!c->authenticated && !c->dropped)
                g->stats.unauthenticated--;
        free(c);
}

void conn_guard_set_authenticated(ConnGuard *g, GuardConn *c)
{
        if (!g || !c || c->authenticated)
                return;
        c->authenticated = true;
        if (!c->dropped)
                g->stats.unauthenticated--;
}

void conn_guard_request_done(ConnGuard *g, GuardConn *c, uint64_t now_usec)
{
        if (c)
                c->deadline_start_usec = now_usec;
}

static bool same_addr(const GuardConn *a, const GuardConn *b)
{
        return a->addr_len == b->addr_len && memcmp(a->addr, b->addr, a->addr_len) == 0;
}

static GuardConn *drop(ConnGuard *g, GuardConn *c, bool unauth)
{
        if (!c->authenticated)
                g->stats.unauthenticated--;
        c->dropped = true;
        if (unauth)
                g->stats.dropped_unauth++;
        else
                g->stats.dropped_deadline++;
        return c;
}

/* Whom to push out among the unauthenticated: a silent one (a plain connect, nothing sent) before
 * one whose handshake is under way, the oldest first within each. */
typedef struct Pick {
        GuardConn *silent, *any;
        unsigned n;
} Pick;

static void pick_add(Pick *p, GuardConn *c, bool silent)
{
        p->n++;
        if (!p->any)
                p->any = c;
        if (silent && !p->silent)
                p->silent = c;
}

static GuardConn *pick_victim(const Pick *p)
{
        return p->silent ?: p->any;
}

GuardConn *conn_guard_next_victim(ConnGuard *g, const GuardConn *new, uint64_t now_usec)
{
        Pick all = {}, here = {};

        if (!g)
                return NULL;
        /* How far each unauthenticated one has come: ask before pushing anyone out. */
        for (GuardConn *c = g->head; c; c = c->next) {
                if (c->authenticated || c->dropped)
                        continue;
                GuardProgress p = g->progress(c->userdata);
                if (p == GUARD_AUTHENTICATED) {
                        conn_guard_set_authenticated(g, c);
                        continue;
                }
                pick_add(&all, c, p == GUARD_SILENT);
                if (new &&same_addr(c, new))
                        pick_add(&here, c, p == GUARD_SILENT);
        }
        if (here.n > g->limits.max_unauth_per_addr)
                return drop(g, pick_victim(&here), true);
        if (all.n > g->limits.max_unauth)
                return drop(g, pick_victim(&all), true);
        for (GuardConn *c = g->head; c; c = c->next)
                if (!c->dropped && now_usec > c->deadline_start_usec &&
                    now_usec - c->deadline_start_usec > g->limits.request_usec)
                        return drop(g, c, false);
        return NULL;
}

void *guard_conn_userdata(const GuardConn *c)
{
        return c ? c->userdata : NULL;
}

void conn_guard_stats(const ConnGuard *g, ConnGuardStats *ret)
{
        *ret = g->stats;
}
