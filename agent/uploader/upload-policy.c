/* Fetches the signed policy bundle for mamorid: conditional GET, verify, atomic install. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/policy-store.h"
#include "mamori/policy.h"
#include "upload-policy.h"

struct UploadPolicy {
        char *signer_path;
        char *policy_path, *etag_path;
        EVP_PKEY *signer;
        char etag[160];
};

UploadPolicy *upload_policy_free(UploadPolicy *p)
{
        if (!p)
                return NULL;
        EVP_PKEY_free(p->signer);
        free(p->signer_path);
        free(p->policy_path);
        free(p->etag_path);
        free(p);
        return NULL;
}

/* The ETag is only trusted while policy.json is there: without the file we must fetch it again. */
static void load_etag(UploadPolicy *p)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ char *pol = NULL;
        size_t n = 0;

        p->etag[0] = 0;
        if (read_file_bounded(p->etag_path, sizeof(p->etag) - 1, &buf, &n) < 0)
                return;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                n--;
        if (n == 0 || memchr(buf, 0, n) || memchr(buf, '\n', n) || memchr(buf, '\r', n))
                return;
        if (read_file_bounded(p->policy_path, POLICY_FILE_MAX, &pol, NULL) < 0)
                return;
        memcpy(p->etag, buf, n);
        p->etag[n] = 0;
}

int upload_policy_new(const char *dir, const char *signer_path, UploadPolicy **ret)
{
        _cleanup_(upload_policy_freep) UploadPolicy *p = NULL;

        if (!dir || !signer_path || !ret)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->signer_path = strdup(signer_path);
        if (!p->signer_path || asprintf(&p->policy_path, "%s/%s", dir, POLICY_STORE_FILE) < 0 ||
            asprintf(&p->etag_path, "%s/%s", dir, UPLOAD_POLICY_ETAG_FILE) < 0)
                return -ENOMEM;
        load_etag(p);
        *ret = TAKE_PTR(p);
        return 0;
}

/* Serial of the installed bundle when it verifies; -1 when there is none (or it is not valid). */
static int64_t installed_serial(UploadPolicy *p, const char *body, size_t len, bool *ret_same)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_policy_ Policy *cur = NULL;
        size_t n;

        *ret_same = false;
        if (read_file_bounded(p->policy_path, POLICY_FILE_MAX, &buf, &n) < 0)
                return -1;
        *ret_same = n == len && memcmp(buf, body, n) == 0;
        if (policy_parse(buf, n, p->signer, &cur) < 0)
                return -1;
        return cur->serial;
}

int upload_policy_poll(UploadPolicy *p, UploadHttp *h, struct upload_policy_result *ret,
                       const char **ret_detail)
{
        _cleanup_policy_ Policy *pol = NULL;
        UploadResponse resp = {};
        struct upload_policy_result res = {};
        int64_t cur;
        bool same;
        int k;

        if (!p || !h || !ret)
                return -EINVAL;
        if (!p->signer) {
                k = pem_load_public_key(p->signer_path, &p->signer);
                if (k < 0)
                        return -ENOKEY;
        }
        k = upload_http_request(h, "/v1/policy", NULL, NULL, 0, p->etag[0] ? p->etag : NULL, POLICY_FILE_MAX,
                                &resp, ret_detail);
        if (k < 0)
                return k;
        res.status = resp.status;
        if (resp.status == 304) {
                res.outcome = UPLOAD_POLICY_UNCHANGED;
                goto done;
        }
        if (resp.status == 404) {
                res.outcome = UPLOAD_POLICY_NONE;
                goto done;
        }
        if (resp.status != 200 || !resp.body) {
                res.outcome = UPLOAD_POLICY_REFUSED;
                /* The centre retired this terminal (DESIGN §11): said with its own MESSAGE_ID. */
                res.reason = resp.status == 403 && resp.body &&
                                             memmem(resp.body, resp.len, "\"terminal-retired\"",
                                                    strlen("\"terminal-retired\""))
                                     ? "terminal-retired"
                                     : "http-status";
                goto done;
        }
        /* Never install what mamorid would reject: a bundle that does not verify, or an older one. */
        k = policy_parse(resp.body, resp.len, p->signer, &pol);
        if (k < 0) {
                res.outcome = UPLOAD_POLICY_REFUSED;
                res.reason = policy_error_reason(k);
                k = 0;
                goto done;
        }
        res.serial = pol->serial;
        cur = installed_serial(p, resp.body, resp.len, &same);
        if (same) {
                res.outcome = UPLOAD_POLICY_UNCHANGED;
        } else if (cur > pol->serial) {
                res.outcome = UPLOAD_POLICY_REFUSED;
                res.reason = "rollback";
                goto done;
        } else {
                /* 0644: mamorid runs as root without CAP_DAC_OVERRIDE and reads it as "other". */
                k = write_file_atomic(p->policy_path, resp.body, resp.len, 0644);
                if (k < 0)
                        goto done;
                res.outcome = UPLOAD_POLICY_INSTALLED;
        }
        /* The ETag after the bundle: a crash in between only costs one more download. */
        if (resp.etag[0] && !streq(resp.etag, p->etag)) {
                _cleanup_free_ char *line = NULL;
                if (asprintf(&line, "%s\n", resp.etag) < 0) {
                        k = -ENOMEM;
                        goto done;
                }
                if (write_file_atomic(p->etag_path, line, strlen(line), 0644) >= 0)
                        snprintf(p->etag, sizeof(p->etag), "%s", resp.etag);
        }
        k = 0;
done:
        upload_response_done(&resp);
        if (k < 0)
                return k;
        *ret = res;
        return 0;
}
