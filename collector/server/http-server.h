/* The collector's HTTPS front (libmicrohttpd + GnuTLS): client-certificate TLS and the §7 routes. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "collector-config.h"
#include "store.h"

typedef struct HttpServerConfig {
        const char *address;            /* numeric IPv4 or IPv6 */
        uint16_t port;                  /* 0 = any free port (see http_server_port) */
        const char *cert_pem, *key_pem; /* server certificate chain and key, PEM text */
        const char *trust_pem;          /* terminal CA(s), PEM text */
        size_t max_body;                /* bytes of one request body */
        size_t max_records;             /* records of one batch */
        unsigned idle_timeout_sec;      /* inactivity on a connection */
        unsigned request_timeout_sec;   /* a whole request from accept (or the previous answer) */
        unsigned max_connections;       /* all connections */
        unsigned max_unauthenticated;   /* without a finished client-certificate handshake ... */
        unsigned max_per_ip;            /* ... and of those from one address; the oldest goes first */
        const char *store_url;          /* store_open(): one connection per worker */
        unsigned workers;               /* threads answering requests; 0: http_server_default_workers() */
        uint32_t verify_threads;        /* verify pool (verify-pool.h); COLLECTOR_VERIFY_THREADS_AUTO */
        EVP_PKEY *receipt_key; /* signs the receipt of every 200 acknowledgement; owned by the caller */
        const char *name;      /* "collector" of the receipts */
} HttpServerConfig;

typedef struct HttpServer HttpServer;

/*
 * Starts the server thread (MHD: TLS, reading requests, sending answers; the connection guard,
 * conn-guard.h) and the workers that answer complete requests, several at once, each on its own store
 * connection, verifying with a shared pool. -EINVAL bad config/PEM, -EADDRINUSE, -EIO, a store error.
 */
int http_server_start(const HttpServerConfig *c, HttpServer **ret);
uint16_t http_server_port(const HttpServer *s);
/* 2 × the online CPUs. */
unsigned http_server_default_workers(void);
HttpServer *http_server_stop(HttpServer *s);
