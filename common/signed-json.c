/* Sign and verify a JSON object's "sig" member over the RFC 8785 bytes of the rest of the object. */
#include <errno.h>
#include <string.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/jcs.h"
#include "mamori/signed-json.h"

int signed_json_sign(JsonValue *obj, EVP_PKEY *key, uint8_t *ret_sig)
{
        _cleanup_free_ char *bytes = NULL, *b64 = NULL;
        uint8_t sig[ED25519_SIG_SIZE];
        size_t len;
        int r;

        if (!obj || obj->type != JSON_OBJECT || !key)
                return -EINVAL;
        r = jcs_serialize(obj, SIGNED_JSON_SIG_KEY, &bytes, &len);
        if (r < 0)
                return r;
        r = ed25519_sign(key, bytes, len, sig);
        if (r < 0)
                return r;
        r = base64_encode(sig, sizeof(sig), &b64);
        if (r < 0)
                return r;
        (void)json_object_remove(obj, SIGNED_JSON_SIG_KEY);
        r = json_object_set_string(obj, SIGNED_JSON_SIG_KEY, b64);
        if (r < 0)
                return r;
        if (ret_sig)
                memcpy(ret_sig, sig, sizeof(sig));
        return 0;
}

int signed_json_verify(const JsonValue *obj, EVP_PKEY *key)
{
        _cleanup_free_ char *bytes = NULL;
        const JsonValue *s;
        uint8_t sig[ED25519_SIG_SIZE];
        size_t len;
        int r;

        if (!key)
                return -EINVAL;
        if (!obj || obj->type != JSON_OBJECT)
                return -EBADMSG;
        s = json_object_get(obj, SIGNED_JSON_SIG_KEY);
        if (!s)
                return -ENOKEY;
        if (s->type != JSON_STRING)
                return -EBADMSG;
        r = base64_decode_exact(s->string.data, s->string.len, sig, sizeof(sig));
        if (r < 0)
                return -EBADMSG;
        r = jcs_serialize(obj, SIGNED_JSON_SIG_KEY, &bytes, &len);
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        return ed25519_verify(key, bytes, len, sig);
}
