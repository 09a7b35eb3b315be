/* Fuzz target: arbitrary bytes through the JSON parser; anything accepted must survive a JCS round trip, and
 * the canonical mode must accept exactly the inputs that are their own JCS serialisation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/jcs.h"
#include "mamori/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const JsonValue *v)
{
        const char *s;
        int64_t i;
        bool b;

        (void)json_get_string(v, &s, NULL);
        (void)json_get_integer(v, &i);
        (void)json_get_boolean(v, &b);
        for (size_t k = 0; k < json_array_size(v); k++)
                walk(json_array_get(v, k));
        for (size_t k = 0; k < json_object_size(v); k++) {
                /* lookup by key must find this very member (keys are unique and NUL-free) */
                if (json_object_get(v, v->object.members[k].key) != v->object.members[k].value)
                        abort();
                walk(v->object.members[k].value);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_json_ JsonValue *v = NULL, *w = NULL, *copy = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;
        size_t la, lb, off;
        JsonLimits lim = {.max_size = 1u << 20, .max_depth = 32, .max_members = 4096, .max_string = 65536};
        int r;

        {
                /* canonical mode == parse, serialise, compare (the way it was checked before the mode) */
                _cleanup_json_ JsonValue *c = NULL, *plain = NULL;
                _cleanup_free_ char *jcs = NULL;
                size_t jl = 0;
                bool canonical = json_parse(data, size, &lim, JSON_PARSE_CANONICAL, &c, NULL) >= 0;
                bool same = json_parse(data, size, &lim, 0, &plain, NULL) >= 0 &&
                            jcs_serialize(plain, NULL, &jcs, &jl) >= 0 && jl == size &&
                            memcmp(jcs, data, size) == 0;
                if (canonical != same)
                        abort();
                if (canonical && !json_value_equal(c, plain))
                        abort();
        }

        r = json_parse(data, size, &lim, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, &off);
        if (r < 0) {
                if (off > size)
                        abort(); /* the error offset points into the input */
                return 0;
        }
        walk(v);

        if (json_value_copy(v, &copy) < 0 || !json_value_equal(v, copy))
                abort();

        r = jcs_serialize(v, NULL, &a, &la);
        if (r == -ERANGE)
                return 0; /* an int64 outside ±2^53: legal JSON, not representable in JCS */
        if (r < 0)
                abort();
        /* JCS output is itself valid input, means the same thing, and is a fixed point */
        if (json_parse(a, la, &lim, 0, &w, NULL) < 0 || !json_value_equal(v, w))
                abort();
        if (jcs_serialize(w, NULL, &b, &lb) < 0 || la != lb || memcmp(a, b, la) != 0)
                abort();
        return 0;
}
