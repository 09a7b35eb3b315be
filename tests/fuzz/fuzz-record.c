/* Fuzz target: arbitrary bytes as an operation-log line; accepted lines must re-serialise to themselves
 * and the signed bytes the parse gives must be those rebuilt from the record. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/oplog-record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_record_ Record *r = NULL;
        _cleanup_free_ char *line = NULL, *signed_bytes = NULL, *rebuilt = NULL;
        size_t signed_len = 0, rebuilt_len = 0;
        char hash[SHA256_HEX_MAX];
        uint8_t raw[ED25519_KEY_SIZE];
        size_t len, body = size;

        if (!key) {
                static const uint8_t seed[ED25519_KEY_SIZE] = {1, 2, 3};
                if (ed25519_from_seed(seed, &key) < 0)
                        abort();
        }

        if (record_line_hash(data, size, hash) < 0)
                abort();
        if (record_parse_line_signed(data, size, &r, &signed_bytes, &signed_len) < 0)
                return 0;
        if (record_signed_bytes(r, &rebuilt, &rebuilt_len) < 0 || rebuilt_len != signed_len ||
            memcmp(rebuilt, signed_bytes, signed_len) != 0)
                abort();

        if (size > 0 && data[size - 1] == '\n')
                body--;
        /* the parser only accepts canonical lines: formatting the record gives the input back */
        if (record_format_line(r, &line, &len) < 0 || len != body || memcmp(line, data, len) != 0)
                abort();
        if (record_validate(r) < 0)
                abort();
        (void)record_verify(r, key);
        (void)record_verify_signed(r, signed_bytes, signed_len, key);
        (void)record_data_key(r, raw);
        (void)record_check_link(NULL, NULL, r);
        (void)record_event_known(r->ev);
        return 0;
}
