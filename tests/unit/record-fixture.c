/* Helpers for unit tests that build signed logs (see record-fixture.h); failures end the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mamori/encoding.h"
#include "mamori/json.h"
#include "record-fixture.h"

EVP_PKEY *fixture_key_from_byte(uint8_t b)
{
        uint8_t seed[ED25519_KEY_SIZE];
        EVP_PKEY *k = NULL;
        memset(seed, b, sizeof(seed));
        assert_int_equal(ed25519_from_seed(seed, &k), 0);
        return k;
}

void fixture_set_data_key(Record *r, EVP_PKEY *k)
{
        uint8_t raw[ED25519_KEY_SIZE];
        char *b64 = NULL;
        assert_int_equal(ed25519_public_to_raw(k, raw), 0);
        assert_int_equal(base64_encode(raw, sizeof(raw), &b64), 0);
        assert_int_equal(json_object_set_string(r->data, "key", b64), 0);
        free(b64);
}
