/* Fuzz target: arbitrary bytes as quarantine.json; an accepted note must format back to what parses the
 * same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/macro.h"
#include "mamori/quarantine-info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct quarantine_info q, again;
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        size_t len, len2;

        if (quarantine_info_parse(data, size, &q) < 0)
                return 0;
        if (quarantine_info_format(&q, &out, &len) < 0)
                abort();
        if (quarantine_info_parse(out, len, &again) < 0 ||
            quarantine_info_format(&again, &out2, &len2) < 0 || len != len2 || memcmp(out, out2, len) != 0)
                abort();
        return 0;
}
