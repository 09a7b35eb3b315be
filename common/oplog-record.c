/* Operation-log records (DESIGN.md §6): JSON mapping, signing, strict line parsing, chain hashes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/jcs.h"
#include "mamori/oplog-record.h"
#include "mamori/signed-json.h"

static const char *const known_events[] = {
        "agent.start",   "agent.stop",    "log.open",        "key.rotate", "reader.added",
        "reader.lost",   "card.inserted", "card.removed",    "card.left",  "auth.ok",
        "auth.fail",     "session.start", "session.end",     "lock",       "unlock",
        "pin.change",    "pin.blocked",   "password.change", "enroll",     "policy.load",
        "policy.reject", "policy.stale",  "emergency.lock",  "app.op",     "clock.jump",
};

bool record_event_known(const char *ev)
{
        if (!ev)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(known_events); i++)
                if (streq(ev, known_events[i]))
                        return true;
        return false;
}

int record_new(Record **ret)
{
        _cleanup_record_ Record *r = NULL;
        int k;

        if (!ret)
                return -EINVAL;
        r = calloc(1, sizeof(Record));
        if (!r)
                return -ENOMEM;
        k = json_new_object(&r->data);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

Record *record_free(Record *r)
{
        if (!r)
                return NULL;
        free(r->term);
        free(r->ev);
        free(r->op);
        free(r->card);
        json_value_free(r->data);
        free(r);
        return NULL;
}

static bool id_valid(const char *s)
{
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > RECORD_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr("._:@-", c)))
                        return false;
        }
        return true;
}

static bool ev_valid(const char *s)
{
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > RECORD_EV_MAX || s[0] < 'a' || s[0] > 'z')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("._-", c)))
                        return false;
        }
        return true;
}

int record_validate(const Record *r)
{
        if (!r)
                return -EINVAL;
        if (!hex_lower_valid(r->log, 32) || !hex_lower_valid(r->boot, 32) || !hex_lower_valid(r->prev, 64))
                return -EBADMSG;
        if (r->seq < 1 || r->seq > (uint64_t)RECORD_INT_MAX)
                return -EBADMSG;
        if (r->ts < 0 || r->ts > RECORD_INT_MAX || r->mono < 0 || r->mono > RECORD_INT_MAX)
                return -EBADMSG;
        if (!id_valid(r->term) || !ev_valid(r->ev))
                return -EBADMSG;
        if (r->op && !id_valid(r->op))
                return -EBADMSG;
        if (r->card && !hex_lower_valid(r->card, 64))
                return -EBADMSG;
        if (!r->data || r->data->type != JSON_OBJECT)
                return -EBADMSG;
        if (r->seq == 1 && !streq(r->prev, RECORD_PREV_FIRST))
                return -EBADMSG;
        return 0;
}

static int set_string_or_null(JsonValue *o, const char *key, const char *s)
{
        return s ? json_object_set_string(o, key, s) : json_object_set_null(o, key);
}

int record_to_json(const Record *r, bool with_sig, JsonValue **ret)
{
        _cleanup_json_ JsonValue *o = NULL;
        JsonValue *data = NULL;
        int k;

        k = record_validate(r);
        if (k < 0)
                return k;
        if (with_sig && !r->has_sig)
                return -EINVAL;
        k = json_new_object(&o);
        if (k < 0)
                return k;
        if ((k = json_object_set_integer(o, "v", RECORD_VERSION)) < 0 ||
            (k = json_object_set_string(o, "log", r->log)) < 0 ||
            (k = json_object_set_integer(o, "seq", (int64_t)r->seq)) < 0 ||
            (k = json_object_set_integer(o, "ts", r->ts)) < 0 ||
            (k = json_object_set_string(o, "boot", r->boot)) < 0 ||
            (k = json_object_set_integer(o, "mono", r->mono)) < 0 ||
            (k = json_object_set_string(o, "term", r->term)) < 0 ||
            (k = json_object_set_string(o, "ev", r->ev)) < 0 ||
            (k = set_string_or_null(o, "op", r->op)) < 0 ||
            (k = set_string_or_null(o, "card", r->card)) < 0 || (k = json_value_copy(r->data, &data)) < 0 ||
            (k = json_object_set(o, "data", data)) < 0 ||
            (k = json_object_set_string(o, "prev", r->prev)) < 0)
                return k;
        if (with_sig) {
                _cleanup_free_ char *b64 = NULL;
                k = base64_encode(r->sig, sizeof(r->sig), &b64);
                if (k < 0)
                        return k;
                k = json_object_set_string(o, "sig", b64);
                if (k < 0)
                        return k;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int record_signed_bytes(const Record *r, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        int k = record_to_json(r, false, &o);
        if (k < 0)
                return k;
        return jcs_serialize(o, NULL, ret, ret_len);
}

int record_format_line(const Record *r, char **ret, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        _cleanup_free_ char *line = NULL;
        size_t len;
        int k;

        if (!r || !ret)
                return -EINVAL;
        k = record_to_json(r, true, &o);
        if (k < 0)
                return k;
        k = jcs_serialize(o, NULL, &line, &len);
        if (k < 0)
                return k;
        if (len > RECORD_LINE_MAX)
                return -E2BIG;
        *ret = TAKE_PTR(line);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int record_sign(Record *r, EVP_PKEY *key, char **ret_line, size_t *ret_len)
{
        _cleanup_json_ JsonValue *o = NULL;
        _cleanup_free_ char *line = NULL;
        uint8_t sig[ED25519_SIG_SIZE];
        size_t len;
        int k;

        if (!r || !key)
                return -EINVAL;
        k = record_to_json(r, false, &o);
        if (k < 0)
                return k;
        k = signed_json_sign(o, key, sig);
        if (k < 0)
                return k;
        k = jcs_serialize(o, NULL, &line, &len);
        if (k < 0)
                return k;
        if (len > RECORD_LINE_MAX)
                return -E2BIG;
        memcpy(r->sig, sig, sizeof(sig));
        r->has_sig = true;
        if (ret_line)
                *ret_line = TAKE_PTR(line);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int record_verify_signed(const Record *r, const char *signed_bytes, size_t signed_len, EVP_PKEY *key)
{
        _cleanup_free_ char *rebuilt = NULL;
        int k;

        if (!r || !key)
                return -EINVAL;
        if (!r->has_sig)
                return -EBADMSG;
        if (!signed_bytes) {
                k = record_signed_bytes(r, &rebuilt, &signed_len);
                if (k < 0)
                        return k;
                signed_bytes = rebuilt;
        }
        return ed25519_verify(key, signed_bytes, signed_len, r->sig);
}

int record_verify(const Record *r, EVP_PKEY *key)
{
        return record_verify_signed(r, NULL, 0, key);
}

static int get_fixed_string(const JsonValue *o, const char *key, char *buf, size_t n_chars)
{
        const char *s;
        int k = json_object_get_string(o, key, &s);
        if (k < 0)
                return -EBADMSG;
        if (!hex_lower_valid(s, n_chars))
                return -EBADMSG;
        memcpy(buf, s, n_chars + 1);
        return 0;
}

/* The string of key, taken out of the parsed tree o (which is thrown away after): no copy. */
static int take_string(JsonValue *o, const char *key, bool nullable, char **ret)
{
        JsonValue *m = (JsonValue *)json_object_get(o, key);

        if (!m)
                return -EBADMSG;
        if (nullable && json_is_null(m)) {
                *ret = NULL;
                return 0;
        }
        return json_string_take(m, ret) < 0 ? -EBADMSG : 0;
}

static int get_int(const JsonValue *o, const char *key, int64_t min, int64_t *ret)
{
        int64_t i;
        if (json_object_get_integer(o, key, &i) < 0 || i < min || i > RECORD_INT_MAX)
                return -EBADMSG;
        *ret = i;
        return 0;
}

/*
 * The bytes the signature of a canonical line covers: the line without its ,"sig":"…" member. In
 * canonical key order "sig" is followed by "term", then only the integers "ts" and "v"; a raw quote
 * cannot stand inside a string, so the last ,"term":" of the line is that member's start.
 */
static int signed_bytes_of(const char *line, size_t body, const JsonValue *sig, char **ret, size_t *ret_len)
{
        static const char before[] = ",\"sig\":\"", after[] = ",\"term\":\"";
        size_t nb = strlen(before), na = strlen(after), member = nb + sig->string.len + 1, at = SIZE_MAX;
        char *out;

        for (size_t i = body >= na ? body - na + 1 : 0; i-- > 0;)
                if (memcmp(line + i, after, na) == 0) {
                        at = i;
                        break;
                }
        if (at == SIZE_MAX || at < member)
                return -EBADMSG;
        at -= member; /* where ,"sig":"…" starts */
        if (memcmp(line + at, before, nb) != 0 ||
            memcmp(line + at + nb, sig->string.data, sig->string.len) != 0 || line[at + member - 1] != '"')
                return -EBADMSG;
        out = malloc(body - member + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, line, at);
        memcpy(out + at, line + at + member, body - at - member);
        out[body - member] = '\0';
        *ret = out;
        *ret_len = body - member;
        return 0;
}

int record_parse_line_signed(const void *line, size_t len, Record **ret, char **ret_signed,
                             size_t *ret_signed_len)
{
        static const char *const keys[] = {"v",  "log", "seq",  "ts",   "boot", "mono", "term",
                                           "ev", "op",  "card", "data", "prev", "sig"};
        static const JsonLimits limits = {
                .max_size = RECORD_LINE_MAX + 1,
                .max_depth = 16,
                .max_members = 1024,
                .max_string = RECORD_LINE_MAX,
        };
        _cleanup_json_ JsonValue *o = NULL;
        _cleanup_record_ Record *r = NULL;
        _cleanup_free_ char *canon = NULL;
        const JsonValue *sig, *data;
        size_t canon_len, body = len;
        int64_t v, seq;
        int k;

        if (!line || !ret)
                return -EINVAL;
        if (body > 0 && ((const char *)line)[body - 1] == '\n')
                body--;
        if (body > RECORD_LINE_MAX)
                return -E2BIG;

        /* The line must be canonical: otherwise two spellings of one record hash differently. */
        k = json_parse(line, body, &limits, JSON_PARSE_CANONICAL, &o, NULL);
        if (k < 0)
                return k == -ERANGE ? -EBADMSG : k;
        if (o->type != JSON_OBJECT || json_object_size(o) != ELEMENTSOF(keys))
                return -EBADMSG;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (!json_object_get(o, keys[i]))
                        return -EBADMSG; /* 13 distinct known keys present, so no unknown ones */

        r = calloc(1, sizeof(Record));
        if (!r)
                return -ENOMEM;
        sig = json_object_get(o, "sig");
        if (sig->type != JSON_STRING ||
            base64_decode_exact(sig->string.data, sig->string.len, r->sig, sizeof(r->sig)) < 0)
                return -EBADMSG;
        r->has_sig = true;

        if (json_object_get_integer(o, "v", &v) < 0 || v != RECORD_VERSION)
                return -EBADMSG;
        if ((k = get_fixed_string(o, "log", r->log, 32)) < 0 ||
            (k = get_fixed_string(o, "boot", r->boot, 32)) < 0 ||
            (k = get_fixed_string(o, "prev", r->prev, 64)) < 0 || (k = get_int(o, "seq", 1, &seq)) < 0 ||
            (k = get_int(o, "ts", 0, &r->ts)) < 0 || (k = get_int(o, "mono", 0, &r->mono)) < 0 ||
            (k = take_string(o, "term", false, &r->term)) < 0 ||
            (k = take_string(o, "ev", false, &r->ev)) < 0 || (k = take_string(o, "op", true, &r->op)) < 0 ||
            (k = take_string(o, "card", true, &r->card)) < 0)
                return k;
        r->seq = (uint64_t)seq;

        if (json_object_get_object(o, "data", &data) < 0)
                return -EBADMSG;
        k = json_object_take(o, "data", &r->data);
        if (k < 0)
                return k;

        k = record_validate(r);
        if (k < 0)
                return k;
        /* After the field checks: term a string, ts and v integers, as signed_bytes_of() relies on. */
        if (ret_signed) {
                k = signed_bytes_of(line, body, sig, &canon, &canon_len);
                if (k < 0)
                        return k;
        }
        *ret = TAKE_PTR(r);
        if (ret_signed) {
                *ret_signed = TAKE_PTR(canon);
                *ret_signed_len = canon_len;
        }
        return 0;
}

int record_parse_line(const void *line, size_t len, Record **ret)
{
        return record_parse_line_signed(line, len, ret, NULL, NULL);
}

int record_line_hash(const void *line, size_t len, char ret[SHA256_HEX_MAX])
{
        if (!line && len > 0)
                return -EINVAL;
        if (len > 0 && ((const char *)line)[len - 1] == '\n')
                len--;
        return sha256_hex(line, len, ret);
}

int record_data_key(const Record *r, uint8_t ret[ED25519_KEY_SIZE])
{
        const JsonValue *k;
        uint8_t raw[ED25519_KEY_SIZE];

        if (!r || !r->data || !ret)
                return -EINVAL;
        k = json_object_get(r->data, "key");
        if (!k)
                return -ENOENT;
        if (k->type != JSON_STRING ||
            base64_decode_exact(k->string.data, k->string.len, raw, sizeof(raw)) < 0)
                return -EBADMSG;
        memcpy(ret, raw, sizeof(raw));
        return 0;
}

int record_check_link(const Record *prev, const char *prev_hash, const Record *next)
{
        if (!next)
                return -EINVAL;
        if (!prev)
                return next->seq == 1 && streq(next->prev, RECORD_PREV_FIRST) ? 0 : -EBADMSG;
        if (!prev_hash || !streq(prev->log, next->log) || next->seq != prev->seq + 1 ||
            !streq(next->prev, prev_hash))
                return -EBADMSG;
        return 0;
}
