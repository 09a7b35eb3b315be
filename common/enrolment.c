/* Enrolment request and answer files: format and strict parse (no private key ever passes). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/enrolment.h"
#include "mamori/fileio.h"
#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/macro.h"

#define REQUEST_TYPE   "mamori-enrolment-request"
#define ENROLMENT_TYPE "mamori-enrolment"

static bool id_valid(const char *s)
{
        size_t n = strlen(s);
        return n > 0 && n <= RECORD_ID_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") == n;
}

/* One PEM text whose first block is "-----BEGIN <label>-----"; printable ASCII and newlines only;
 * nothing that names a private key. */
static bool pem_valid(const char *s, const char *label)
{
        char begin[64];
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > ENROLMENT_PEM_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '\n' || s[i] == '\r' || (s[i] >= 0x20 && s[i] < 0x7f)))
                        return false;
        if (strstr(s, "PRIVATE KEY"))
                return false;
        snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
        return strneq(s, begin, strlen(begin)) && strstr(s, "-----END ");
}

static bool url_valid(const char *s)
{
        size_t n = strlen(s);
        if (n <= strlen("https://") || n > ENROLMENT_URL_MAX || !strneq(s, "https://", strlen("https://")))
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] <= 0x20 || s[i] >= 0x7f)
                        return false;
        return true;
}

static bool request_valid(const struct enrolment_request *r)
{
        return id_valid(r->terminal) && pem_valid(r->identity_pem, "PUBLIC KEY") &&
               pem_valid(r->csr_pem, "CERTIFICATE REQUEST");
}

static bool enrolment_valid(const struct enrolment *e)
{
        return id_valid(e->terminal) && id_valid(e->office) && (!e->url || url_valid(e->url)) &&
               pem_valid(e->certificate_pem, "CERTIFICATE") &&
               pem_valid(e->collector_ca_pem, "CERTIFICATE") &&
               pem_valid(e->receipt_key_pem, "PUBLIC KEY") && pem_valid(e->policy_signer_pem, "PUBLIC KEY");
}

void enrolment_request_done(struct enrolment_request *r)
{
        if (!r)
                return;
        free(r->identity_pem);
        free(r->csr_pem);
        r->identity_pem = r->csr_pem = NULL;
}

void enrolment_done(struct enrolment *e)
{
        if (!e)
                return;
        free(e->url);
        free(e->certificate_pem);
        free(e->collector_ca_pem);
        free(e->receipt_key_pem);
        free(e->policy_signer_pem);
        e->url = e->certificate_pem = e->collector_ca_pem = e->receipt_key_pem = e->policy_signer_pem = NULL;
}

/* Serialise o with JCS and a final newline. */
static int finish(JsonValue *o, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *text = NULL;
        size_t len;
        char *nl;
        int k;

        k = jcs_serialize(o, NULL, &text, &len);
        if (k < 0)
                return k;
        nl = realloc(text, len + 2);
        if (!nl)
                return -ENOMEM;
        text = nl;
        text[len] = '\n';
        text[len + 1] = '\0';
        *ret = TAKE_PTR(text);
        *ret_len = len + 1;
        return 0;
}

int enrolment_request_format(const struct enrolment_request *r, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        int k;

        if (!r || !ret || !ret_len || !request_valid(r))
                return -EINVAL;
        k = json_new_object(&o);
        if (k >= 0)
                k = json_object_set_integer(o, "v", 1);
        if (k >= 0)
                k = json_object_set_string(o, "type", REQUEST_TYPE);
        if (k >= 0)
                k = json_object_set_string(o, "terminal", r->terminal);
        if (k >= 0)
                k = json_object_set_string(o, "identity", r->identity_pem);
        if (k >= 0)
                k = json_object_set_string(o, "csr", r->csr_pem);
        if (k < 0)
                return k;
        return finish(o, ret, ret_len);
}

int enrolment_format(const struct enrolment *e, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        int k;

        if (!e || !ret || !ret_len || !enrolment_valid(e))
                return -EINVAL;
        k = json_new_object(&o);
        if (k >= 0)
                k = json_object_set_integer(o, "v", 1);
        if (k >= 0)
                k = json_object_set_string(o, "type", ENROLMENT_TYPE);
        if (k >= 0)
                k = json_object_set_string(o, "terminal", e->terminal);
        if (k >= 0)
                k = json_object_set_string(o, "office", e->office);
        if (k >= 0 && e->url)
                k = json_object_set_string(o, "url", e->url);
        if (k >= 0)
                k = json_object_set_string(o, "certificate", e->certificate_pem);
        if (k >= 0)
                k = json_object_set_string(o, "collector_ca", e->collector_ca_pem);
        if (k >= 0)
                k = json_object_set_string(o, "receipt_key", e->receipt_key_pem);
        if (k >= 0)
                k = json_object_set_string(o, "policy_signer", e->policy_signer_pem);
        if (k < 0)
                return k;
        return finish(o, ret, ret_len);
}

/* o must be an object with only the keys in keys[] (n of them) and "v":1, "type":type. */
static int parse_object(const void *data, size_t size, const char *type, const char *const *keys, size_t n,
                        JsonValue **ret)
{
        static const JsonLimits limits = {
                .max_size = ENROLMENT_FILE_MAX,
                .max_depth = 1,
                .max_members = 16,
                .max_string = ENROLMENT_PEM_MAX,
        };
        _cleanup_json_ JsonValue *o = NULL;
        const char *t;
        int64_t v;
        int r;

        r = json_parse_flat_object(data, size, &limits, keys, n, &o);
        if (r < 0)
                return r;
        if (json_object_get_integer(o, "v", &v) < 0 || v != 1 || json_object_get_string(o, "type", &t) < 0 ||
            !streq(t, type))
                return -EBADMSG;
        *ret = TAKE_PTR(o);
        return 0;
}

/* A string member without NUL bytes, copied (malloc'd). */
static int dup_string(const JsonValue *o, const char *key, char **ret)
{
        const JsonValue *v = json_object_get(o, key);
        char *s;

        if (!v || v->type != JSON_STRING || memchr(v->string.data, '\0', v->string.len))
                return -EBADMSG;
        s = strndup(v->string.data, v->string.len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int enrolment_request_parse(const void *data, size_t size, struct enrolment_request *ret)
{
        static const char *const keys[] = {"v", "type", "terminal", "identity", "csr"};
        _cleanup_json_ JsonValue *o = NULL;
        struct enrolment_request r = {};
        int k;

        if (!ret)
                return -EINVAL;
        k = parse_object(data, size, REQUEST_TYPE, keys, ELEMENTSOF(keys), &o);
        if (k < 0)
                return k;
        if ((k = json_object_copy_string(o, "terminal", r.terminal, sizeof(r.terminal))) < 0 ||
            (k = dup_string(o, "identity", &r.identity_pem)) < 0 ||
            (k = dup_string(o, "csr", &r.csr_pem)) < 0)
                goto fail;
        if (!request_valid(&r)) {
                k = -EBADMSG;
                goto fail;
        }
        *ret = r;
        return 0;
fail:
        enrolment_request_done(&r);
        return k;
}

int enrolment_parse(const void *data, size_t size, struct enrolment *ret)
{
        static const char *const keys[] = {
                "v",           "type",         "terminal",    "office",       "url",
                "certificate", "collector_ca", "receipt_key", "policy_signer"};
        _cleanup_json_ JsonValue *o = NULL;
        struct enrolment e = {};
        int k;

        if (!ret)
                return -EINVAL;
        k = parse_object(data, size, ENROLMENT_TYPE, keys, ELEMENTSOF(keys), &o);
        if (k < 0)
                return k;
        if ((k = json_object_copy_string(o, "terminal", e.terminal, sizeof(e.terminal))) < 0 ||
            (k = json_object_copy_string(o, "office", e.office, sizeof(e.office))) < 0 ||
            (json_object_get(o, "url") && (k = dup_string(o, "url", &e.url)) < 0) ||
            (k = dup_string(o, "certificate", &e.certificate_pem)) < 0 ||
            (k = dup_string(o, "collector_ca", &e.collector_ca_pem)) < 0 ||
            (k = dup_string(o, "receipt_key", &e.receipt_key_pem)) < 0 ||
            (k = dup_string(o, "policy_signer", &e.policy_signer_pem)) < 0)
                goto fail;
        if (!enrolment_valid(&e)) {
                k = -EBADMSG;
                goto fail;
        }
        *ret = e;
        return 0;
fail:
        enrolment_done(&e);
        return k;
}

int enrolment_request_load(const char *path, struct enrolment_request *ret)
{
        _cleanup_free_ char *data = NULL;
        size_t n;
        int k = read_file_bounded(path, ENROLMENT_FILE_MAX, &data, &n);
        return k < 0 ? k : enrolment_request_parse(data, n, ret);
}

int enrolment_load(const char *path, struct enrolment *ret)
{
        _cleanup_free_ char *data = NULL;
        size_t n;
        int k = read_file_bounded(path, ENROLMENT_FILE_MAX, &data, &n);
        return k < 0 ? k : enrolment_parse(data, n, ret);
}
