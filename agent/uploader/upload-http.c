/* HTTPS client of mamori-uploader: a reused libcurl easy handle (keep-alive), TLS >= 1.2, client
 * certificate, the collector CA pinned as the only trust anchor, bounded answers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "upload-http.h"

struct UploadHttp {
        CURL *curl;
        char *url, *ca, *cert, *key;
        UploadHttpParams p;
        char errbuf[CURL_ERROR_SIZE];
        /* Per request. */
        UploadResponse *resp;
        size_t max_response;
        bool too_big;
};

void upload_response_done(UploadResponse *r)
{
        free(r->body);
        *r = (UploadResponse){};
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
        UploadHttp *h = userdata;
        UploadResponse *r = h->resp;
        size_t n = size * nmemb;

        if (n > h->max_response - r->len) {
                h->too_big = true;
                return 0; /* aborts the transfer */
        }
        char *nb = realloc(r->body, r->len + n + 1);
        if (!nb)
                return 0;
        memcpy(nb + r->len, data, n);
        r->len += n;
        nb[r->len] = 0;
        r->body = nb;
        return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
        UploadHttp *h = userdata;
        size_t n = size * nmemb;
        static const char name[] = "etag:";

        if (n > strlen(name) && strncasecmp(data, name, strlen(name)) == 0) {
                const char *v = data + strlen(name);
                size_t vl = n - strlen(name);
                while (vl > 0 && (*v == ' ' || *v == '\t'))
                        v++, vl--;
                while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                        vl--;
                if (vl < sizeof(h->resp->etag) && !memchr(v, 0, vl)) {
                        memcpy(h->resp->etag, v, vl);
                        h->resp->etag[vl] = 0;
                }
        }
        return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
        UploadHttp *h = userdata;
        return h->p.abort_cb && h->p.abort_cb(h->p.userdata) ? 1 : 0;
}

UploadHttp *upload_http_free(UploadHttp *h)
{
        if (!h)
                return NULL;
        if (h->curl)
                curl_easy_cleanup(h->curl);
        free(h->url);
        free(h->ca);
        free(h->cert);
        free(h->key);
        free(h);
        return NULL;
}

int upload_http_new(const UploadHttpParams *p, UploadHttp **ret)
{
        _cleanup_(upload_http_freep) UploadHttp *h = NULL;
        static bool global_done;
        size_t n;
        int ok = 0;

        if (!p || !p->url || !p->ca || !p->client_cert || !p->client_key || !ret)
                return -EINVAL;
        if (strncasecmp(p->url, "https://", 8) != 0)
                return -EINVAL;
        if (!global_done) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                global_done = true;
        }
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->p = *p;
        h->url = strdup(p->url);
        h->ca = strdup(p->ca);
        h->cert = strdup(p->client_cert);
        h->key = strdup(p->client_key);
        if (!h->url || !h->ca || !h->cert || !h->key)
                return -ENOMEM;
        n = strlen(h->url);
        while (n > 0 && h->url[n - 1] == '/')
                h->url[--n] = 0;
        h->curl = curl_easy_init();
        if (!h->curl)
                return -ENOMEM;

#define SET(opt, val) ok |= curl_easy_setopt(h->curl, opt, val)
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_PROTOCOLS_STR, "https");
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_CAINFO, h->ca);
        SET(CURLOPT_CAPATH, (char *)NULL); /* the pinned CA only, never the system store */
        SET(CURLOPT_SSLCERT, h->cert);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
        SET(CURLOPT_SSLKEY, h->key);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
        SET(CURLOPT_TCP_KEEPALIVE, 1L);
        SET(CURLOPT_TCP_NODELAY, 1L);
        SET(CURLOPT_CONNECTTIMEOUT_MS, p->connect_timeout_ms > 0 ? p->connect_timeout_ms : 10000L);
        SET(CURLOPT_TIMEOUT_MS, p->timeout_ms > 0 ? p->timeout_ms : 60000L);
        SET(CURLOPT_ERRORBUFFER, h->errbuf);
        SET(CURLOPT_WRITEFUNCTION, on_body);
        SET(CURLOPT_WRITEDATA, h);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, h);
        SET(CURLOPT_XFERINFOFUNCTION, on_progress);
        SET(CURLOPT_XFERINFODATA, h);
        SET(CURLOPT_NOPROGRESS, 0L);
        SET(CURLOPT_USERAGENT, "mamori-uploader");
#undef SET
        if (ok != CURLE_OK)
                return -EIO;
        *ret = TAKE_PTR(h);
        return 0;
}

static int map_error(CURLcode c)
{
        switch (c) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CLIENTCERT:
                return -EPROTO;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

int upload_http_request(UploadHttp *h, const char *path, const char *content_type, const void *body,
                        size_t len, const char *if_none_match, size_t max_response, UploadResponse *ret,
                        const char **ret_detail)
{
        _cleanup_free_ char *url = NULL, *ct = NULL, *inm = NULL;
        struct curl_slist *headers = NULL, *l;
        UploadResponse resp = {};
        CURLcode c;
        int r = 0;

        if (!h || !path || path[0] != '/' || !ret)
                return -EINVAL;
        if (asprintf(&url, "%s%s", h->url, path) < 0)
                return -ENOMEM;
        /* No "Expect: 100-continue" round trip: the collector answers after reading the body. */
        headers = curl_slist_append(headers, "Expect:");
        if (body && content_type) {
                if (asprintf(&ct, "Content-Type: %s", content_type) < 0)
                        r = -ENOMEM;
                else if ((l = curl_slist_append(headers, ct)))
                        headers = l;
                else
                        r = -ENOMEM;
        }
        if (r == 0 && if_none_match) {
                if (asprintf(&inm, "If-None-Match: %s", if_none_match) < 0)
                        r = -ENOMEM;
                else if ((l = curl_slist_append(headers, inm)))
                        headers = l;
                else
                        r = -ENOMEM;
        }
        if (r < 0 || !headers) {
                curl_slist_free_all(headers);
                return -ENOMEM;
        }

        h->resp = &resp;
        h->max_response = max_response;
        h->too_big = false;
        h->errbuf[0] = 0;
        curl_easy_setopt(h->curl, CURLOPT_URL, url);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
        if (body) {
                curl_easy_setopt(h->curl, CURLOPT_POST, 1L);
                curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        } else
                curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);

        c = curl_easy_perform(h->curl);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
        curl_slist_free_all(headers);
        h->resp = NULL;
        if (ret_detail)
                *ret_detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(c);
        if (c != CURLE_OK) {
                upload_response_done(&resp);
                if (h->too_big)
                        return -EFBIG;
                return map_error(c);
        }
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp.status);
        *ret = resp;
        return 0;
}
