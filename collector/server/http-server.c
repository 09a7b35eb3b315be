/* HTTPS server of mamori-collector: libmicrohttpd with GnuTLS, client certificate required and
 * verified against the terminal CA during the handshake, CN = terminal id, routes of DESIGN.md §7. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "conn-guard.h"
#include "http-server.h"
#include "ingest.h"
#include "mamori/crypto-util.h"
#include "mamori/oplog-record.h"
#include "mamori/parse-util.h"
#include "mamori/receipt.h"

struct HttpServer {
        struct MHD_Daemon *daemon;
        HttpServerConfig config;
        gnutls_pcert_st pcert;
        bool have_pcert;
        gnutls_privkey_t pkey;
        uint16_t port;
        /* One thread runs MHD (external epoll loop) and the guard, so both see the same state. */
        ConnGuard *guard;
        pthread_t thread;
        bool have_thread;
        atomic_bool stop;
};

/* What the guard keeps per connection (its userdata). */
typedef struct GuardedConn {
        struct MHD_Connection *connection;
        int fd;
        GuardConn *entry;
} GuardedConn;

#define LOOP_TICK_MSEC 100 /* how often deadlines are checked: their precision */

/* Per-request state, freed by request_completed(). */
typedef struct Request {
        char *body;
        size_t len, cap;
        bool too_big;
        uint64_t started_usec;
} Request;

static uint64_t now_usec(clock_t clock)
{
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * The server-certificate callback runs during every full handshake, after the ClientHello and
 * before the CertificateRequest is sent: the one place MHD lets us turn its optional client
 * certificate request into a mandatory one, verified by GnuTLS against the trust list.
 */
static HttpServer *cert_cb_server; /* one server per process */

static int retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                         unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
        HttpServer *s = cert_cb_server;
        if (!s)
                return -1;
        gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(session, NULL, 0);
        *pcert = &s->pcert;
        *pcert_length = 1;
        *pkey = s->pkey;
        return 0;
}

/* Terminal id from the verified peer certificate and the hex SHA-256 of its DER; -EACCES when there
 * is none or it does not verify. */
static int peer_terminal_id(struct MHD_Connection *c, char *buf, size_t size,
                            char ret_sha256[SHA256_HEX_MAX])
{
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t session;
        const gnutls_datum_t *certs;
        unsigned n = 0, status = 0;
        gnutls_x509_crt_t crt;
        size_t len = size;
        int r;

        if (!info || !info->tls_session)
                return -EACCES;
        session = (gnutls_session_t)info->tls_session;
        /* Already verified during the handshake; checked again so no path can skip it. */
        if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0)
                return -EACCES;
        certs = gnutls_certificate_get_peers(session, &n);
        if (!certs || n == 0)
                return -EACCES;
        if (gnutls_x509_crt_init(&crt) < 0)
                return -ENOMEM;
        r = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
        if (r >= 0)
                r = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len);
        if (r >= 0) {
                /* Exactly one CN. */
                char extra[8];
                size_t elen = sizeof(extra);
                if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, extra, &elen) !=
                    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        r = -1;
        }
        gnutls_x509_crt_deinit(crt);
        if (r < 0 || len == 0 || len >= size || strlen(buf) != len || len > RECORD_ID_MAX)
                return -EACCES;
        if (sha256_hex(certs[0].data, certs[0].size, ret_sha256) < 0)
                return -EACCES;
        for (size_t i = 0; i < len; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-", buf[i]))
                        return -EACCES;
        return 0;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, const char *body)
{
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* {"acked":N,"log":L,"receipt":{…}}: the acknowledgement with the signed receipt of DESIGN.md §7. */
static int receipt_body(HttpServer *s, const IngestAck *ack, char **ret)
{
        _cleanup_free_ char *json = NULL;
        Receipt r = {.acked = ack->acked, .ts = (int64_t)now_usec(CLOCK_REALTIME)};
        int k;

        snprintf(r.collector, sizeof(r.collector), "%s", s->config.name);
        memcpy(r.log, ack->log, sizeof(r.log));
        memcpy(r.line, ack->line, sizeof(r.line));
        memcpy(r.key, ack->key, sizeof(r.key));
        k = receipt_sign(&r, s->config.receipt_key, &json, NULL);
        if (k < 0)
                return k;
        if (asprintf(ret, "{\"acked\":%" PRIu64 ",\"log\":\"%s\",\"receipt\":%s}", r.acked, r.log, json) < 0)
                return -ENOMEM;
        return 0;
}

static enum MHD_Result send_answer(HttpServer *s, struct MHD_Connection *c, int r, IngestAnswer *a)
{
        _cleanup_free_ char *body = NULL;
        enum MHD_Result ret;

        if (r < 0) {
                fprintf(stderr, "mamori-collector: store failure: %s\n", strerror(-r));
                return send_json(c, 503, "{\"error\":\"store\"}");
        }
        if (a->status == 200 && a->ack.valid) {
                /* No acknowledgement without its receipt. */
                r = receipt_body(s, &a->ack, &body);
                if (r < 0) {
                        fprintf(stderr, "mamori-collector: cannot sign a receipt: %s\n", strerror(-r));
                        ingest_answer_done(a);
                        return send_json(c, 503, "{\"error\":\"receipt\"}");
                }
        }
        ret = send_json(c, a->status, body ? body : a->body);
        ingest_answer_done(a);
        return ret;
}

static enum MHD_Result serve_policy(HttpServer *s, struct MHD_Connection *c)
{
        _cleanup_free_ char *body = NULL;
        char etag[SHA256_HEX_MAX + 2];
        char hex[SHA256_HEX_MAX];
        struct MHD_Response *resp;
        enum MHD_Result ret;
        const char *inm;
        size_t len;
        int64_t serial;
        int r;

        r = store_policy_latest(s->config.store, &serial, &body, &len);
        if (r == -ENOENT)
                return send_json(c, 404, "{\"error\":\"no-policy\"}");
        if (r < 0 || sha256_hex(body, len, hex) < 0)
                return send_json(c, 503, "{\"error\":\"store\"}");
        snprintf(etag, sizeof(etag), "\"%s\"", hex);
        inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
        if (inm && (streq(inm, etag) || streq(inm, "*"))) {
                resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                if (!resp)
                        return MHD_NO;
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
                ret = MHD_queue_response(c, MHD_HTTP_NOT_MODIFIED, resp);
                MHD_destroy_response(resp);
                return ret;
        }
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return MHD_NO;
        body = NULL;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
        ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* "/v1/logs/{L}/acked" → L (32 chars) into buf; false when url has another shape. */
static bool parse_acked_url(const char *url, char buf[ID128_STRING_MAX])
{
        static const char prefix[] = "/v1/logs/", suffix[] = "/acked";
        size_t n = strlen(url);

        if (n != strlen(prefix) + 32 + strlen(suffix) || !strneq(url, prefix, strlen(prefix)) ||
            !streq(url + strlen(prefix) + 32, suffix))
                return false;
        memcpy(buf, url + strlen(prefix), 32);
        buf[32] = 0;
        return true;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
        HttpServer *s = cls;
        Request *req = *con_cls;
        char cn[RECORD_ID_MAX + 2], cert_sha256[SHA256_HEX_MAX];
        IngestAnswer a = {};
        bool post = streq(method, MHD_HTTP_METHOD_POST);
        int r;

        if (!req) {
                const char *cl;
                uint64_t clen;

                req = calloc(1, sizeof(Request));
                if (!req)
                        return MHD_NO;
                req->started_usec = now_usec(CLOCK_MONOTONIC);
                *con_cls = req;
                /* Refuse an announced oversized body before reading any of it. */
                cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl) {
                        if (parse_uint64(cl, s->config.max_body, &clen) < 0)
                                return send_json(c, 413, "{\"error\":\"body-too-large\"}");
                }
                return MHD_YES;
        }

        if (s->config.request_timeout_sec > 0 && now_usec(CLOCK_MONOTONIC) - req->started_usec >
                                                         (uint64_t)s->config.request_timeout_sec * 1000000u)
                return MHD_NO; /* a slow sender: drop the connection */

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (!post || req->too_big || n > s->config.max_body - req->len) {
                        req->too_big = true;
                        free(req->body);
                        req->body = NULL;
                        req->len = req->cap = 0;
                        return MHD_YES;
                }
                if (req->len + n > req->cap) {
                        size_t nc = req->cap ? req->cap : 64 * 1024;
                        while (nc < req->len + n)
                                nc *= 2;
                        if (nc > s->config.max_body)
                                nc = s->config.max_body;
                        char *nb = realloc(req->body, nc);
                        if (!nb)
                                return MHD_NO;
                        req->body = nb;
                        req->cap = nc;
                }
                memcpy(req->body + req->len, upload_data, n);
                req->len += n;
                return MHD_YES;
        }

        /* The whole request is in. */
        if (peer_terminal_id(c, cn, sizeof(cn), cert_sha256) < 0)
                return send_json(c, 403, "{\"error\":\"client-certificate\"}");
        /* Retire and rekey take effect at once: the register is read at every request. */
        r = store_terminal_access(s->config.store, cn, cert_sha256);
        if (r == -EKEYREVOKED) {
                fprintf(stderr, "mamori-collector: %s: 403 terminal-retired\n", cn);
                return send_json(c, 403, "{\"error\":\"terminal-retired\"}");
        }
        if (r == -EKEYREJECTED) {
                fprintf(stderr,
                        "mamori-collector: %s: 403 certificate-replaced (the terminal was rekeyed)\n", cn);
                return send_json(c, 403, "{\"error\":\"certificate-replaced\"}");
        }
        if (r < 0)
                return send_json(c, 503, "{\"error\":\"store\"}");

        if (streq(url, "/v1/records")) {
                const char *ct;
                if (!post)
                        return send_json(c, 405, "{\"error\":\"method\"}");
                if (req->too_big)
                        return send_json(c, 413, "{\"error\":\"body-too-large\"}");
                ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
                if (!ct || !strneq(ct, "application/x-ndjson", strlen("application/x-ndjson")))
                        return send_json(c, 415, "{\"error\":\"content-type\"}");
                r = ingest_batch(s->config.store, cn, req->body, req->len, s->config.max_records,
                                 (int64_t)now_usec(CLOCK_REALTIME), &a);
                if (r >= 0 && a.status != 200)
                        fprintf(stderr, "mamori-collector: %s: %u %s\n", cn, a.status, a.body);
                return send_answer(s, c, r, &a);
        }
        if (!streq(method, MHD_HTTP_METHOD_GET) || req->len > 0 || req->too_big)
                return send_json(c, 405, "{\"error\":\"method\"}");
        if (streq(url, "/v1/policy"))
                return serve_policy(s, c);
        char log[ID128_STRING_MAX];
        if (parse_acked_url(url, log)) {
                r = ingest_acked(s->config.store, cn, log, &a);
                return send_answer(s, c, r, &a);
        }
        return send_json(c, 404, "{\"error\":\"not-found\"}");
}

static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
        HttpServer *s = cls;
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        Request *req = *con_cls;

        /* The next request on this connection gets its own deadline. */
        if (info && info->socket_context)
                conn_guard_request_done(s->guard, ((GuardedConn *)info->socket_context)->entry,
                                        now_usec(CLOCK_MONOTONIC));
        if (!req)
                return;
        free(req->body);
        free(req);
        *con_cls = NULL;
}

/* How far this connection's TLS handshake has come. The handshake requires and verifies the client
 * certificate (retrieve_cert), so a finished one means a valid terminal certificate. GnuTLS
 * resets the last received handshake message to -1 when the handshake finishes (as before the
 * first one); the peer's certificate, received during the handshake, tells the two apart. */
static GuardProgress tls_progress(void *userdata)
{
        GuardedConn *gc = userdata;
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(gc->connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t session;
        unsigned n = 0;

        if (!info || !info->tls_session)
                return GUARD_SILENT;
        session = (gnutls_session_t)info->tls_session;
        if ((int)gnutls_handshake_get_last_in(session) != -1)
                return GUARD_HANDSHAKE;
        return gnutls_certificate_get_peers(session, &n) && n > 0 ? GUARD_AUTHENTICATED : GUARD_SILENT;
}

/* Drops what the guard names: shutdown() makes MHD read EOF and close the connection itself
 * (the fd stays MHD's; it is closed, and the entry removed, in the CLOSED notification). */
static void guard_enforce(HttpServer *s, const GuardConn *new)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        GuardConn *victim;

        while ((victim = conn_guard_next_victim(s->guard, new, now))) {
                GuardedConn *gc = guard_conn_userdata(victim);
                (void)shutdown(gc->fd, SHUT_RDWR);
        }
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
        HttpServer *s = cls;
        GuardedConn *gc = *socket_context;

        if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (gc) {
                        conn_guard_remove(s->guard, gc->entry);
                        free(gc);
                        *socket_context = NULL;
                }
                return;
        }
        /* STARTED */
        const union MHD_ConnectionInfo *fd_info =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr_info =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const void *addr = NULL;
        size_t addr_len = 0;

        if (!fd_info)
                return;
        if (addr_info && addr_info->client_addr) {
                const struct sockaddr *sa = addr_info->client_addr;
                if (sa->sa_family == AF_INET) {
                        addr = &((const struct sockaddr_in *)sa)->sin_addr;
                        addr_len = 4;
                } else if (sa->sa_family == AF_INET6) {
                        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
                        addr_len = 16;
                }
        }
        gc = calloc(1, sizeof(*gc));
        if (!gc || conn_guard_add(s->guard, addr, addr_len, now_usec(CLOCK_MONOTONIC), gc, &gc->entry) < 0) {
                /* Untracked connections would escape every bound: refuse this one. */
                (void)shutdown(fd_info->connect_fd, SHUT_RDWR);
                free(gc);
                return;
        }
        gc->connection = c;
        gc->fd = fd_info->connect_fd;
        *socket_context = gc;
        guard_enforce(s, gc->entry);
}

static void *server_loop(void *userdata)
{
        HttpServer *s = userdata;

        while (!atomic_load(&s->stop)) {
                (void)MHD_run_wait(s->daemon, LOOP_TICK_MSEC);
                guard_enforce(s, NULL);
        }
        return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        fputs("mamori-collector: http: ", stderr);
        vfprintf(stderr, fmt, ap);
}

static int load_server_key(HttpServer *s)
{
        gnutls_datum_t cert = {.data = (unsigned char *)s->config.cert_pem,
                               .size = (unsigned)strlen(s->config.cert_pem)};
        gnutls_datum_t key = {.data = (unsigned char *)s->config.key_pem,
                              .size = (unsigned)strlen(s->config.key_pem)};

        if (gnutls_pcert_import_x509_raw(&s->pcert, &cert, GNUTLS_X509_FMT_PEM, 0) < 0)
                return -EINVAL;
        s->have_pcert = true;
        if (gnutls_privkey_init(&s->pkey) < 0)
                return -ENOMEM;
        if (gnutls_privkey_import_x509_raw(s->pkey, &key, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
                return -EINVAL;
        return 0;
}

int http_server_start(const HttpServerConfig *c, HttpServer **ret)
{
        HttpServer *s;
        struct sockaddr_storage sa = {};
        const union MHD_DaemonInfo *info;
        int r;

        if (!c || !c->address || !c->cert_pem || !c->key_pem || !c->trust_pem || !c->store ||
            !c->receipt_key || !c->name || !ret || cert_cb_server)
                return -EINVAL;
        s = calloc(1, sizeof(HttpServer));
        if (!s)
                return -ENOMEM;
        s->config = *c;
        r = load_server_key(s);
        if (r < 0) {
                http_server_stop(s);
                return r;
        }

        struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        /* No MHD thread: server_loop() runs MHD and the guard in one thread of ours. */
        unsigned flags = MHD_USE_TLS | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
        if (inet_pton(AF_INET, c->address, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons(c->port);
        } else if (inet_pton(AF_INET6, c->address, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(c->port);
                flags |= MHD_USE_IPv6;
        } else {
                http_server_stop(s);
                return -EINVAL;
        }

        r = conn_guard_new(&(ConnGuardLimits){.max_unauth = c->max_unauthenticated,
                                              .max_unauth_per_addr = c->max_per_ip,
                                              .request_usec = (uint64_t)c->request_timeout_sec * 1000000u},
                           tls_progress, &s->guard);
        if (r < 0) {
                http_server_stop(s);
                return r;
        }
        cert_cb_server = s;
        s->daemon = MHD_start_daemon(
                flags, c->port, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_HTTPS_MEM_KEY, c->key_pem,
                MHD_OPTION_HTTPS_MEM_CERT, c->cert_pem, MHD_OPTION_HTTPS_MEM_TRUST, c->trust_pem,
                MHD_OPTION_HTTPS_CERT_CALLBACK, retrieve_cert, MHD_OPTION_HTTPS_PRIORITIES,
                "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_CONNECTION_TIMEOUT,
                c->idle_timeout_sec, MHD_OPTION_CONNECTION_LIMIT, c->max_connections,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
                request_completed, s, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s, MHD_OPTION_END);
        if (!s->daemon) {
                http_server_stop(s);
                return -EADDRNOTAVAIL;
        }
        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : c->port;
        r = -pthread_create(&s->thread, NULL, server_loop, s);
        if (r < 0) {
                http_server_stop(s);
                return r;
        }
        s->have_thread = true;
        *ret = s;
        return 0;
}

uint16_t http_server_port(const HttpServer *s)
{
        return s->port;
}

HttpServer *http_server_stop(HttpServer *s)
{
        if (!s)
                return NULL;
        if (s->have_thread) {
                atomic_store(&s->stop, true);
                pthread_join(s->thread, NULL);
        }
        if (s->daemon)
                MHD_stop_daemon(s->daemon); /* closes every connection: CLOSED notifications */
        conn_guard_free(s->guard);
        if (s->have_pcert)
                gnutls_pcert_deinit(&s->pcert);
        if (s->pkey)
                gnutls_privkey_deinit(s->pkey);
        if (cert_cb_server == s)
                cert_cb_server = NULL;
        free(s);
        return NULL;
}
