/* Fuzz target: arbitrary bytes as a password verifier line; an accepted one must format back to the same
 * bytes and parse again to the same values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/macro.h"
#include "mamori/password-verifier.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct password_verifier v, again;
        _cleanup_free_ char *out = NULL;
        const char *why = NULL;
        int r;

        r = password_verifier_parse((const char *)data, size, &v, &why);
        if (r < 0) {
                if (!why) /* every refusal says why */
                        abort();
                return 0;
        }
        if (password_verifier_format(&v, &out) < 0)
                abort();
        /* base64 is strict (one encoding per byte string) and numbers have no leading zeros: the
         * text is canonical, so what parsed is exactly what formats. */
        if (strlen(out) != size || memcmp(out, data, size) != 0)
                abort();
        if (password_verifier_parse(out, strlen(out), &again, NULL) < 0 ||
            memcmp(&v.params, &again.params, sizeof(v.params)) != 0 ||
            memcmp(v.salt, again.salt, v.params.salt_len) != 0 ||
            memcmp(v.hash, again.hash, v.params.hash_len) != 0)
                abort();
        return 0;
}
