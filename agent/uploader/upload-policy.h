/* mamori-uploader's policy fetch: GET /v1/policy with If-None-Match, verified, installed by rename. */
#pragma once

#include <stdint.h>

#include "mamori/macro.h"
#include "upload-http.h"

#define UPLOAD_POLICY_ETAG_FILE "policy.json.etag" /* beside policy.json */

typedef struct UploadPolicy UploadPolicy;

struct upload_policy_result {
        enum {
                UPLOAD_POLICY_UNCHANGED, /* 304, or the same bundle again */
                UPLOAD_POLICY_INSTALLED, /* a new policy.json was renamed into place */
                UPLOAD_POLICY_NONE,      /* the collector has no bundle yet (404) */
                UPLOAD_POLICY_REFUSED,   /* the answer was not installed: reason says why */
        } outcome;
        long status;        /* HTTP status */
        int64_t serial;     /* INSTALLED/REFUSED when the bundle parsed */
        const char *reason; /* REFUSED: "bad-signature", "malformed", "rollback", "http-status"… */
};

/* dir is [Policy] Directory, signer the path of [Policy] SignerKey (read at every poll until it
 * loads, so a missing key is not fatal). */
int upload_policy_new(const char *dir, const char *signer_path, UploadPolicy **ret);
UploadPolicy *upload_policy_free(UploadPolicy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(UploadPolicy *, upload_policy_free);

/*
 * One poll. A 200 answer is installed only when it parses and its signature verifies with the
 * signer key (policy_parse) and its serial is not lower than the installed bundle's; then it is
 * written to a temporary file, fsync'd and renamed over Directory/policy.json (mamorid reloads on
 * the rename), and the ETag is kept beside it. Returns 0 with *ret filled, or -errno: the
 * transport errors of upload_http_request(), -ENOKEY when the signer key cannot be read, file
 * system errors while installing.
 */
int upload_policy_poll(UploadPolicy *p, UploadHttp *h, struct upload_policy_result *ret,
                       const char **ret_detail);
