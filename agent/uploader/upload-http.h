/* mamori-uploader's HTTPS client (libcurl): one keep-alive connection to the collector, mutual TLS
 * with a pinned CA. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mamori/macro.h"

typedef struct UploadHttpParams {
        const char *url;         /* collector base URL, "https://host:port" (no trailing path) */
        const char *ca;          /* [Collector] CA: the only trust anchor (no system store) */
        const char *client_cert; /* PEM */
        const char *client_key;  /* PEM */
        long connect_timeout_ms;
        long timeout_ms; /* whole request */
        /* Called often during a transfer; returning true aborts it (-ECANCELED). May be NULL. */
        bool (*abort_cb)(void *userdata);
        void *userdata;
} UploadHttpParams;

typedef struct UploadResponse {
        long status;
        char *body; /* NUL-terminated, malloc'd; NULL when empty */
        size_t len;
        char etag[160]; /* "" when absent */
} UploadResponse;

void upload_response_done(UploadResponse *r);

typedef struct UploadHttp UploadHttp;

/* Copies the strings. -EINVAL when url is not https:// */
int upload_http_new(const UploadHttpParams *p, UploadHttp **ret);
UploadHttp *upload_http_free(UploadHttp *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(UploadHttp *, upload_http_free);

/*
 * One request on the kept-alive connection. body/len: POST body with content_type (NULL body =
 * GET). if_none_match may be NULL. The answer body is refused beyond max_response bytes (-EFBIG).
 * 0 with *ret filled when the server answered (any status); -ECONNREFUSED, -ETIMEDOUT,
 * -EPROTO (TLS: the collector's certificate is not from our CA, or ours refused), -EIO other
 * transport failures, -ECANCELED when abort_cb said so. *ret_detail (may be NULL) points to
 * libcurl's message for the last failure, valid until the next request.
 */
int upload_http_request(UploadHttp *h, const char *path, const char *content_type, const void *body,
                        size_t len, const char *if_none_match, size_t max_response, UploadResponse *ret,
                        const char **ret_detail);
