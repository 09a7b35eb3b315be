/* Who may hold a collector connection: caps on unauthenticated ones, one deadline per request. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Pure bookkeeping, no sockets: http-server.c tells the guard about every connection (accepted,
 * request completed, closed) and drops the ones the guard names. Two rules (issue 11 "no
 * starving"):
 *  - a connection that has not completed a TLS handshake with a valid client certificate is
 *    "unauthenticated"; at most max_unauth of them in all and max_unauth_per_addr from one address
 *    are kept: a new one pushes out the oldest (of its address first) that has not even started a
 *    handshake, else the oldest, so a flood of half-open connections cannot keep a terminal with
 *    a certificate out;
 *  - every request must be answered within request_usec of the accept, or of the end of the
 *    previous request on the same connection: a deadline that trickling bytes cannot stretch.
 * Entries are owned by the guard; a dropped entry stays until conn_guard_remove() (the close).
 */
typedef struct ConnGuard ConnGuard;
typedef struct GuardConn GuardConn;

/* Asked (with the entry's userdata) how far a connection counted unauthenticated has come. */
typedef enum GuardProgress {
        GUARD_SILENT,        /* no TLS handshake message received yet */
        GUARD_HANDSHAKE,     /* a handshake is under way */
        GUARD_AUTHENTICATED, /* the handshake finished: a valid client certificate */
} GuardProgress;
typedef GuardProgress (*guard_progress_fn)(void *userdata);

typedef struct ConnGuardLimits {
        unsigned max_unauth;          /* > 0 */
        unsigned max_unauth_per_addr; /* > 0 */
        uint64_t request_usec;        /* > 0 */
} ConnGuardLimits;

int conn_guard_new(const ConnGuardLimits *limits, guard_progress_fn progress, ConnGuard **ret);
ConnGuard *conn_guard_free(ConnGuard *g);

#define GUARD_ADDR_MAX 16u /* an IPv6 address */

/* A new connection from addr (the raw IPv4/IPv6 address bytes), accepted at now_usec. */
int conn_guard_add(ConnGuard *g, const void *addr, size_t addr_len, uint64_t now_usec, void *userdata,
                   GuardConn **ret);
void conn_guard_remove(ConnGuard *g, GuardConn *c);
/* The connection completed its handshake and made a request with a valid certificate. */
void conn_guard_set_authenticated(ConnGuard *g, GuardConn *c);
/* A request was answered: the next one on this connection gets a fresh deadline. */
void conn_guard_request_done(ConnGuard *g, GuardConn *c, uint64_t now_usec);

/* The next connection to drop, marked dropped (it no longer counts), or NULL: first the
 * unauthenticated ones over the caps (of new's address, then of all; new may be NULL; the oldest
 * silent one, else the oldest), then, with now_usec, every connection past its request deadline. The caller
 * closes the returned connection's socket and calls again until NULL. */
GuardConn *conn_guard_next_victim(ConnGuard *g, const GuardConn *new, uint64_t now_usec);
void *guard_conn_userdata(const GuardConn *c);

/* Counters, for logs and tests. */
typedef struct ConnGuardStats {
        unsigned open, unauthenticated;
        uint64_t dropped_unauth, dropped_deadline;
} ConnGuardStats;
void conn_guard_stats(const ConnGuard *g, ConnGuardStats *ret);
