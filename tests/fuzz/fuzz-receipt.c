/* Fuzz target: arbitrary bytes as a collector receipt; an accepted receipt must format to its canonical
 * JCS bytes that parse back to the same receipt, and its signature check must not crash. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/macro.h"
#include "mamori/receipt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fixed_key(void)
{
        static EVP_PKEY *key;
        static const uint8_t seed[ED25519_KEY_SIZE] = {7};

        if (!key && ed25519_from_seed(seed, &key) < 0)
                abort();
        return key;
}

static bool same(const Receipt *a, const Receipt *b)
{
        return streq(a->collector, b->collector) && streq(a->log, b->log) && a->acked == b->acked &&
               streq(a->line, b->line) && memcmp(a->key, b->key, sizeof(a->key)) == 0 && a->ts == b->ts &&
               a->has_sig == b->has_sig && memcmp(a->sig, b->sig, sizeof(a->sig)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *bytes = NULL;
        Receipt r, back;
        const char *why = NULL;
        size_t len;
        int k;

        k = receipt_parse(data, size, &r, &why);
        if (k < 0) {
                if (!why && k != -ENOMEM)
                        abort(); /* every refusal names its reason */
                return 0;
        }
        if (size > RECEIPT_SIZE_MAX || !r.has_sig || receipt_validate(&r) < 0)
                abort();
        if (receipt_format(&r, &bytes, &len) < 0 || len > RECEIPT_SIZE_MAX)
                abort();
        if (receipt_parse(bytes, len, &back, NULL) < 0 || !same(&back, &r))
                abort();
        /* Not signed by this key (the odds of a forgery are nil): refused, never a crash. */
        if (receipt_verify(&r, fixed_key()) != -EKEYREJECTED)
                abort();
        return 0;
}
