/* Collector receipts (DESIGN.md §7): the JSON mapping, signing, strict parsing and the terminal's checks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/jcs.h"
#include "mamori/oplog-verify.h"
#include "mamori/receipt.h"

#define RECEIPT_MEMBERS 8

static bool name_valid(const char *s)
{
        size_t n = strnlen(s, RECORD_ID_MAX + 1);

        if (n == 0 || n > RECORD_ID_MAX)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") == n;
}

int receipt_validate(const Receipt *r)
{
        if (!r)
                return -EINVAL;
        if (!memchr(r->collector, '\0', sizeof(r->collector)) || !name_valid(r->collector))
                return -EINVAL;
        if (!memchr(r->log, '\0', sizeof(r->log)) || !hex_lower_valid(r->log, ID128_STRING_MAX - 1))
                return -EINVAL;
        if (!memchr(r->line, '\0', sizeof(r->line)) || !hex_lower_valid(r->line, SHA256_HEX_MAX - 1))
                return -EINVAL;
        if (r->acked > (uint64_t)RECORD_INT_MAX || r->ts < 0 || r->ts > RECORD_INT_MAX)
                return -EINVAL;
        /* Nothing acknowledged: the line before seq 1. */
        if (r->acked == 0 && !streq(r->line, RECORD_PREV_FIRST))
                return -EINVAL;
        return 0;
}

int receipt_to_json(const Receipt *r, bool with_sig, JsonValue **ret)
{
        _cleanup_json_ JsonValue *o = NULL;
        _cleanup_free_ char *key = NULL, *sig = NULL;
        int k;

        if (!ret || receipt_validate(r) < 0 || (with_sig && !r->has_sig))
                return -EINVAL;
        k = base64_encode(r->key, sizeof(r->key), &key);
        if (k < 0)
                return k;
        if (with_sig) {
                k = base64_encode(r->sig, sizeof(r->sig), &sig);
                if (k < 0)
                        return k;
        }
        k = json_new_object(&o);
        if (k >= 0)
                k = json_object_set_integer(o, "v", RECEIPT_VERSION);
        if (k >= 0)
                k = json_object_set_string(o, "collector", r->collector);
        if (k >= 0)
                k = json_object_set_string(o, "log", r->log);
        if (k >= 0)
                k = json_object_set_integer(o, "acked", (int64_t)r->acked);
        if (k >= 0)
                k = json_object_set_string(o, "line", r->line);
        if (k >= 0)
                k = json_object_set_string(o, "key", key);
        if (k >= 0)
                k = json_object_set_integer(o, "ts", r->ts);
        if (k >= 0 && with_sig)
                k = json_object_set_string(o, "sig", sig);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(o);
        return 0;
}

static int signed_bytes(const Receipt *r, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        int k = receipt_to_json(r, false, &o);

        if (k < 0)
                return k;
        return jcs_serialize(o, NULL, ret, ret_len);
}

int receipt_sign(Receipt *r, EVP_PKEY *key, char **ret_json, size_t *ret_len)
{
        _cleanup_free_ char *bytes = NULL;
        Receipt copy;
        size_t len;
        int k;

        if (!r || !key)
                return -EINVAL;
        k = signed_bytes(r, &bytes, &len);
        if (k < 0)
                return k;
        copy = *r;
        k = ed25519_sign(key, bytes, len, copy.sig);
        if (k < 0)
                return k;
        copy.has_sig = true;
        if (ret_json) {
                k = receipt_format(&copy, ret_json, ret_len);
                if (k < 0)
                        return k;
        }
        *r = copy;
        return 0;
}

int receipt_format(const Receipt *r, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        int k;

        if (!ret)
                return -EINVAL;
        k = receipt_to_json(r, true, &o);
        if (k < 0)
                return k;
        return jcs_serialize(o, NULL, ret, ret_len);
}

static int why(const char **ret_why, const char *reason)
{
        if (ret_why)
                *ret_why = reason;
        return -EBADMSG;
}

/* A string member of exactly the given length range, copied into buf (size includes the NUL). */
static int get_string(const JsonValue *o, const char *key, size_t min, size_t max, char *buf, size_t size)
{
        const char *s;
        size_t len;

        if (json_object_get_string(o, key, &s) < 0)
                return -EBADMSG;
        len = strlen(s);
        if (len < min || len > max || len >= size)
                return -EBADMSG;
        memcpy(buf, s, len + 1);
        return 0;
}

int receipt_from_json(const JsonValue *o, Receipt *ret, const char **ret_why)
{
        Receipt r = {};
        const char *b64;
        int64_t v, acked, ts;

        if (!ret)
                return -EINVAL;
        if (!o || o->type != JSON_OBJECT)
                return why(ret_why, "not a JSON object");
        if (json_object_size(o) != RECEIPT_MEMBERS)
                return why(ret_why, "not exactly the members v, collector, log, acked, line, key, ts, sig");
        if (json_object_get_integer(o, "v", &v) < 0 || v != RECEIPT_VERSION)
                return why(ret_why, "v is not 1");
        if (get_string(o, "collector", 1, RECORD_ID_MAX, r.collector, sizeof(r.collector)) < 0 ||
            !name_valid(r.collector))
                return why(ret_why, "collector is not 1..64 of A-Z a-z 0-9 . _ : @ -");
        if (get_string(o, "log", ID128_STRING_MAX - 1, ID128_STRING_MAX - 1, r.log, sizeof(r.log)) < 0 ||
            !hex_lower_valid(r.log, ID128_STRING_MAX - 1))
                return why(ret_why, "log is not 32 lowercase hex digits");
        if (json_object_get_integer(o, "acked", &acked) < 0 || acked < 0 || acked > RECORD_INT_MAX)
                return why(ret_why, "acked is not an integer 0..2^53-1");
        r.acked = (uint64_t)acked;
        if (get_string(o, "line", SHA256_HEX_MAX - 1, SHA256_HEX_MAX - 1, r.line, sizeof(r.line)) < 0 ||
            !hex_lower_valid(r.line, SHA256_HEX_MAX - 1))
                return why(ret_why, "line is not 64 lowercase hex digits");
        if (r.acked == 0 && !streq(r.line, RECORD_PREV_FIRST))
                return why(ret_why, "acked 0 with a line hash other than 64 zeros");
        if (json_object_get_string(o, "key", &b64) < 0 ||
            base64_decode_exact(b64, strlen(b64), r.key, sizeof(r.key)) < 0)
                return why(ret_why, "key is not the base64 of a 32-byte key");
        if (json_object_get_integer(o, "ts", &ts) < 0 || ts < 0 || ts > RECORD_INT_MAX)
                return why(ret_why, "ts is not an integer 0..2^53-1");
        r.ts = ts;
        if (json_object_get_string(o, "sig", &b64) < 0 ||
            base64_decode_exact(b64, strlen(b64), r.sig, sizeof(r.sig)) < 0)
                return why(ret_why, "sig is not the base64 of a 64-byte signature");
        r.has_sig = true;
        *ret = r;
        return 0;
}

int receipt_parse(const void *data, size_t size, Receipt *ret, const char **ret_why)
{
        static const JsonLimits limits = {
                .max_size = RECEIPT_SIZE_MAX,
                .max_depth = 1,
                .max_members = RECEIPT_MEMBERS,
                .max_string = 128,
        };
        _cleanup_json_ JsonValue *o = NULL;
        int k;

        if (!data || !ret)
                return -EINVAL;
        if (size > RECEIPT_SIZE_MAX) {
                if (ret_why)
                        *ret_why = "larger than a receipt";
                return -E2BIG;
        }
        k = json_parse(data, size, &limits, JSON_PARSE_ALLOW_FINAL_NEWLINE, &o, NULL);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return why(ret_why, "not a bounded JSON object");
        return receipt_from_json(o, ret, ret_why);
}

int receipt_verify(const Receipt *r, EVP_PKEY *key)
{
        _cleanup_free_ char *bytes = NULL;
        size_t len;
        int k;

        if (!key)
                return -EINVAL;
        if (!r || !r->has_sig || receipt_validate(r) < 0)
                return -EBADMSG;
        k = signed_bytes(r, &bytes, &len);
        if (k < 0)
                return k == -ENOMEM ? k : -EBADMSG;
        return ed25519_verify(key, bytes, len, r->sig);
}

int receipt_check_lines(const Receipt *r, EVP_PKEY *key, const char *log_id, const char *line_n,
                        size_t len_n, const char *line_next, size_t len_next, const char **ret_why)
{
        _cleanup_record_ Record *next = NULL;
        _cleanup_pkey_ EVP_PKEY *next_key = NULL;
        char hash[SHA256_HEX_MAX];
        int k;

        if (!r || !key || !log_id)
                return -EINVAL;
        k = receipt_verify(r, key);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return why(ret_why, "its signature is not by the collector's receipt key");
        if (!streq(r->log, log_id))
                return why(ret_why, "it is for another log");
        if (r->acked == 0)
                return 0;
        if (!line_n && !line_next) {
                if (ret_why)
                        *ret_why = "neither its record nor the next is in the local log (beyond its end, or "
                                   "pruned)";
                return -ENOENT;
        }
        if (line_n) {
                k = record_line_hash(line_n, len_n, hash);
                if (k < 0)
                        return k;
                if (!streq(hash, r->line))
                        return why(ret_why, "its line hash is not that of our own record of that seq");
        }
        if (line_next) {
                /* The next record continues the acknowledged line and is signed by the receipt's key:
                 * what a pruned log is verified with later. */
                k = record_parse_line(line_next, len_next, &next);
                if (k == -ENOMEM)
                        return k;
                if (k < 0 || next->seq != r->acked + 1)
                        return why(ret_why, "its next local record is malformed");
                if (!streq(next->prev, r->line))
                        return why(ret_why, "its line hash is not the prev of our next record");
                k = ed25519_public_from_raw(r->key, &next_key);
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        return why(ret_why, "its key is not an Ed25519 key");
                k = record_verify(next, next_key);
                if (k == -ENOMEM || k == -EIO)
                        return k;
                if (k < 0)
                        return why(ret_why, "its key does not sign our next record");
        }
        return 0;
}

int receipt_check_log(const Receipt *r, EVP_PKEY *key, const char *dir, const char *log_id,
                      const char **ret_why)
{
        _cleanup_free_ char *line_n = NULL, *line_next = NULL;
        size_t len_n = 0, len_next = 0;
        int k;

        if (!r || !key || !dir || !log_id)
                return -EINVAL;
        if (r->acked > 0) {
                k = log_read_line(dir, r->acked, &line_n, &len_n);
                if (k == -EBADMSG)
                        return why(ret_why, "the local log does not hold its record");
                if (k < 0 && k != -ENOENT)
                        return k;
                if (r->acked < (uint64_t)RECORD_INT_MAX) {
                        k = log_read_line(dir, r->acked + 1, &line_next, &len_next);
                        if (k == -EBADMSG)
                                return why(ret_why, "the local log does not hold its next record");
                        if (k < 0 && k != -ENOENT)
                                return k;
                }
        }
        return receipt_check_lines(r, key, log_id, line_n, len_n, line_next, len_next, ret_why);
}

int receipt_key_load(const char *path, EVP_PKEY **ret)
{
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        int k;

        if (!path || !ret)
                return -EINVAL;
        k = pem_load_public_key(path, &key);
        if (k < 0)
                return k;
        if (ed25519_check(key) < 0)
                return -EINVAL;
        *ret = TAKE_PTR(key);
        return 0;
}
