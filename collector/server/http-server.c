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
#include <unistd.h>

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
#include "verify-pool.h"

/* A request's answer, made by a worker and sent by the server thread. */
typedef struct Answer {
        unsigned status;
        char *body; /* malloc'd; NULL: empty */
        size_t len;
        bool json;                     /* Content-Type: application/json */
        char etag[SHA256_HEX_MAX + 2]; /* "" none */
} Answer;

/* Per-request state, freed by request_completed(). */
typedef struct Request {
        char *body;
        size_t len, cap;
        bool too_big;
        uint64_t started_usec;
        /* Once the request is in, the server thread fills these, suspends the connection and queues
         * the request; a worker answers it and resumes the connection. */
        struct MHD_Connection *connection;
        char cn[RECORD_ID_MAX + 2], cert_sha256[SHA256_HEX_MAX];
        char *url, *content_type, *if_none_match;
        bool post, get;
        bool handed_off, answered;
        Answer answer;
        struct Request *next;
} Request;

/* A worker thread and its own store connection. */
typedef struct Worker {
        HttpServer *server;
        Store *store;
        pthread_t thread;
        bool have_thread;
} Worker;

struct HttpServer {
        struct MHD_Daemon *daemon;
        HttpServerConfig config;
        gnutls_pcert_st pcert;
        bool have_pcert;
        gnutls_privkey_t pkey;
        uint16_t port;
        /* One thread runs MHD (external epoll loop: TLS, reading requests, sending answers) and the
         * guard, so both see the same state; no other thread touches either. */
        ConnGuard *guard;
        pthread_t thread;
        bool have_thread;
        atomic_bool stop;
        /* Workers answer complete requests (store, verification, receipt), several at once. */
        Worker *workers;
        unsigned n_workers;
        pthread_mutex_t queue_mutex;
        pthread_cond_t queue_cond;
        Request *queue_head, *queue_tail;
        bool queue_stop;
        bool have_queue;
        VerifyPool *verify;
        pthread_mutex_t write_lock; /* SQLite: one writer of this process at a time */
        IngestOptions ingest;
};

/* What the guard keeps per connection (its userdata). */
typedef struct GuardedConn {
        struct MHD_Connection *connection;
        int fd;
        GuardConn *entry;
} GuardedConn;

#define LOOP_TICK_MSEC 100 /* how often deadlines are checked: their precision */

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

/* On the server thread: the worker's answer, as MHD wants it. */
static enum MHD_Result send_answer(struct MHD_Connection *c, Answer *a)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (a->body) {
                resp = MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
                if (resp)
                        a->body = NULL;
        } else
                resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (a->json)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (a->etag[0])
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
        ret = MHD_queue_response(c, a->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static void answer_done(Answer *a)
{
        free(a->body);
        *a = (Answer){};
}

/* A JSON answer (body copied); without memory, a bare 503. Returns 0, for the callers' tail calls. */
static int answer_json(Answer *a, unsigned status, const char *body)
{
        answer_done(a);
        a->body = strdup(body);
        a->len = a->body ? strlen(body) : 0;
        a->status = a->body ? status : 503;
        a->json = a->body != NULL;
        return 0;
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

/* What ingest answered (r < 0: the store failed), with the receipt of a 200. */
static int answer_ingest(HttpServer *s, int r, IngestAnswer *a, Answer *ret)
{
        _cleanup_free_ char *body = NULL;

        if (r < 0) {
                fprintf(stderr, "mamori-collector: store failure: %s\n", strerror(-r));
                return answer_json(ret, 503, "{\"error\":\"store\"}");
        }
        if (a->status == 200 && a->ack.valid) {
                /* No acknowledgement without its receipt. */
                r = receipt_body(s, &a->ack, &body);
                if (r < 0) {
                        fprintf(stderr, "mamori-collector: cannot sign a receipt: %s\n", strerror(-r));
                        ingest_answer_done(a);
                        return answer_json(ret, 503, "{\"error\":\"receipt\"}");
                }
        }
        (void)answer_json(ret, a->status, body ? body : a->body);
        ingest_answer_done(a);
        return 0;
}

static int serve_policy(Store *store, const Request *req, Answer *ret)
{
        _cleanup_free_ char *body = NULL;
        char hex[SHA256_HEX_MAX];
        size_t len;
        int64_t serial;
        int r;

        r = store_policy_latest(store, &serial, &body, &len);
        if (r == -ENOENT)
                return answer_json(ret, 404, "{\"error\":\"no-policy\"}");
        if (r < 0 || sha256_hex(body, len, hex) < 0)
                return answer_json(ret, 503, "{\"error\":\"store\"}");
        answer_done(ret);
        snprintf(ret->etag, sizeof(ret->etag), "\"%s\"", hex);
        if (req->if_none_match && (streq(req->if_none_match, ret->etag) || streq(req->if_none_match, "*"))) {
                ret->status = MHD_HTTP_NOT_MODIFIED;
                return 0;
        }
        ret->status = MHD_HTTP_OK;
        ret->json = true;
        ret->body = TAKE_PTR(body);
        ret->len = len;
        return 0;
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

/* On a worker: the answer to a complete request, from the terminal register on. */
static int serve(Worker *w, Request *req)
{
        HttpServer *s = w->server;
        IngestAnswer a = {};
        char log[ID128_STRING_MAX];
        Answer *ret = &req->answer;
        int r;

        /* Retire and rekey take effect at once: the register is read at every request. */
        r = store_terminal_access(w->store, req->cn, req->cert_sha256);
        if (r == -EKEYREVOKED) {
                fprintf(stderr, "mamori-collector: %s: 403 terminal-retired\n", req->cn);
                return answer_json(ret, 403, "{\"error\":\"terminal-retired\"}");
        }
        if (r == -EKEYREJECTED) {
                fprintf(stderr,
                        "mamori-collector: %s: 403 certificate-replaced (the terminal was rekeyed)\n",
                        req->cn);
                return answer_json(ret, 403, "{\"error\":\"certificate-replaced\"}");
        }
        if (r < 0)
                return answer_json(ret, 503, "{\"error\":\"store\"}");

        if (streq(req->url, "/v1/records")) {
                if (!req->post)
                        return answer_json(ret, 405, "{\"error\":\"method\"}");
                if (req->too_big)
                        return answer_json(ret, 413, "{\"error\":\"body-too-large\"}");
                if (!req->content_type ||
                    !strneq(req->content_type, "application/x-ndjson", strlen("application/x-ndjson")))
                        return answer_json(ret, 415, "{\"error\":\"content-type\"}");
                r = ingest_batch(w->store, &s->ingest, req->cn, req->body, req->len, s->config.max_records,
                                 (int64_t)now_usec(CLOCK_REALTIME), &a);
                if (r >= 0 && a.status != 200)
                        fprintf(stderr, "mamori-collector: %s: %u %s\n", req->cn, a.status, a.body);
                return answer_ingest(s, r, &a, ret);
        }
        if (!req->get || req->len > 0 || req->too_big)
                return answer_json(ret, 405, "{\"error\":\"method\"}");
        if (streq(req->url, "/v1/policy"))
                return serve_policy(w->store, req, ret);
        if (parse_acked_url(req->url, log)) {
                r = ingest_acked(w->store, req->cn, log, &a);
                return answer_ingest(s, r, &a, ret);
        }
        return answer_json(ret, 404, "{\"error\":\"not-found\"}");
}

static void *worker_loop(void *userdata)
{
        Worker *w = userdata;
        HttpServer *s = w->server;

        for (;;) {
                Request *req;
                struct MHD_Connection *c;

                pthread_mutex_lock(&s->queue_mutex);
                while (!s->queue_stop && !s->queue_head)
                        pthread_cond_wait(&s->queue_cond, &s->queue_mutex);
                if (s->queue_stop) {
                        /* What is still queued is answered by http_server_stop(). */
                        pthread_mutex_unlock(&s->queue_mutex);
                        return NULL;
                }
                req = s->queue_head;
                s->queue_head = req->next;
                if (!s->queue_head)
                        s->queue_tail = NULL;
                req->next = NULL;
                pthread_mutex_unlock(&s->queue_mutex);

                (void)serve(w, req);
                req->answered = true;
                /* The last touch of req here: once resumed, the server thread sends the answer and
                 * may free req. */
                c = req->connection;
                MHD_resume_connection(c);
        }
}

/* On the server thread: the request is in; a worker takes it from here. */
static enum MHD_Result hand_off(HttpServer *s, struct MHD_Connection *c, Request *req)
{
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
        if ((ct && !(req->content_type = strdup(ct))) || (inm && !(req->if_none_match = strdup(inm))))
                return MHD_NO;
        req->connection = c;
        req->handed_off = true;
        MHD_suspend_connection(c);
        pthread_mutex_lock(&s->queue_mutex);
        if (s->queue_tail)
                s->queue_tail->next = req;
        else
                s->queue_head = req;
        s->queue_tail = req;
        pthread_cond_signal(&s->queue_cond);
        pthread_mutex_unlock(&s->queue_mutex);
        return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
        HttpServer *s = cls;
        Request *req = *con_cls;

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

        /* Back from a worker (resumed): its answer, whatever time it took (it may have stored). */
        if (req->answered)
                return send_answer(c, &req->answer);
        if (req->handed_off)
                return MHD_YES;

        if (s->config.request_timeout_sec > 0 && now_usec(CLOCK_MONOTONIC) - req->started_usec >
                                                         (uint64_t)s->config.request_timeout_sec * 1000000u)
                return MHD_NO; /* a slow sender: drop the connection */

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (!streq(method, MHD_HTTP_METHOD_POST) || req->too_big ||
                    n > s->config.max_body - req->len) {
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

        /* The whole request is in. The certificate is read here, on the thread that owns the TLS
         * session; everything that needs the store runs on a worker. */
        if (peer_terminal_id(c, req->cn, sizeof(req->cn), req->cert_sha256) < 0)
                return send_json(c, 403, "{\"error\":\"client-certificate\"}");
        req->url = strdup(url);
        if (!req->url)
                return MHD_NO;
        req->post = streq(method, MHD_HTTP_METHOD_POST);
        req->get = streq(method, MHD_HTTP_METHOD_GET);
        return hand_off(s, c, req);
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
        free(req->url);
        free(req->content_type);
        free(req->if_none_match);
        answer_done(&req->answer);
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

unsigned http_server_default_workers(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        /* Enough to keep every core verifying while others wait for a commit. */
        return n > 1 ? (unsigned)(n > 64 ? 128 : 2 * n) : 2;
}

/* The workers, each with its store connection (opened one after the other: the schema is made once),
 * the verify pool they share and, for SQLite, their write lock. */
static int start_workers(HttpServer *s)
{
        unsigned n = s->config.workers ?: http_server_default_workers();
        int r;

        pthread_mutex_init(&s->queue_mutex, NULL);
        pthread_cond_init(&s->queue_cond, NULL);
        pthread_mutex_init(&s->write_lock, NULL);
        s->have_queue = true;
        r = verify_pool_new(s->config.verify_threads == COLLECTOR_VERIFY_THREADS_AUTO
                                    ? verify_pool_default_threads()
                                    : s->config.verify_threads,
                            &s->verify);
        if (r < 0)
                return r;
        s->ingest.parallel = verify_pool_parallel(s->verify);
        s->workers = calloc(n, sizeof(Worker));
        if (!s->workers)
                return -ENOMEM;
        for (; s->n_workers < n; s->n_workers++) {
                Worker *w = &s->workers[s->n_workers];
                w->server = s;
                r = store_open(s->config.store_url, &w->store);
                if (r < 0)
                        return r;
        }
        /* PostgreSQL orders writers of one log itself (a lock per log); SQLite has one write lock for
         * the database, which its writers here take in turn without polling. */
        if (streq(store_backend_name(s->workers[0].store), "sqlite"))
                s->ingest.write_lock = &s->write_lock;
        for (unsigned i = 0; i < s->n_workers; i++) {
                r = -pthread_create(&s->workers[i].thread, NULL, worker_loop, &s->workers[i]);
                if (r < 0)
                        return r;
                s->workers[i].have_thread = true;
        }
        return 0;
}

/* After the server thread: the workers finish what they hold, queued requests get a 503. */
static void stop_workers(HttpServer *s)
{
        Request *req;

        if (!s->have_queue)
                return;
        pthread_mutex_lock(&s->queue_mutex);
        s->queue_stop = true;
        pthread_cond_broadcast(&s->queue_cond);
        pthread_mutex_unlock(&s->queue_mutex);
        for (unsigned i = 0; i < s->n_workers; i++)
                if (s->workers[i].have_thread)
                        pthread_join(s->workers[i].thread, NULL);
        while ((req = s->queue_head)) {
                s->queue_head = req->next;
                req->next = NULL;
                (void)answer_json(&req->answer, 503, "{\"error\":\"stopping\"}");
                req->answered = true;
                MHD_resume_connection(req->connection);
        }
        s->queue_tail = NULL;
        for (unsigned i = 0; i < s->n_workers; i++)
                store_close(s->workers[i].store);
        free(s->workers);
        s->workers = NULL;
        s->n_workers = 0;
        s->verify = verify_pool_free(s->verify);
}

int http_server_start(const HttpServerConfig *c, HttpServer **ret)
{
        HttpServer *s;
        struct sockaddr_storage sa = {};
        const union MHD_DaemonInfo *info;
        int r;

        if (!c || !c->address || !c->cert_pem || !c->key_pem || !c->trust_pem || !c->store_url ||
            !c->receipt_key || !c->name || !ret || cert_cb_server)
                return -EINVAL;
        s = calloc(1, sizeof(HttpServer));
        if (!s)
                return -ENOMEM;
        s->config = *c;
        r = load_server_key(s);
        if (r >= 0)
                r = start_workers(s);
        if (r < 0) {
                http_server_stop(s);
                return r;
        }

        struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        /* No MHD thread: server_loop() runs MHD and the guard in one thread of ours. */
        unsigned flags = MHD_USE_TLS | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
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
        stop_workers(s); /* resumes every suspended connection, as MHD_stop_daemon() requires */
        if (s->daemon)
                MHD_stop_daemon(s->daemon); /* closes every connection: CLOSED notifications */
        conn_guard_free(s->guard);
        if (s->have_pcert)
                gnutls_pcert_deinit(&s->pcert);
        if (s->pkey)
                gnutls_privkey_deinit(s->pkey);
        if (cert_cb_server == s)
                cert_cb_server = NULL;
        if (s->have_queue) {
                pthread_mutex_destroy(&s->queue_mutex);
                pthread_cond_destroy(&s->queue_cond);
                pthread_mutex_destroy(&s->write_lock);
        }
        free(s);
        return NULL;
}
