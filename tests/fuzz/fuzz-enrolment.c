/* Fuzz target: arbitrary bytes as an enrolment request and as an enrolment answer; what parses must
 * format back to bytes that parse the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/enrolment.h"
#include "mamori/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct enrolment_request r = {}, r2 = {};
        struct enrolment e = {}, e2 = {};

        if (enrolment_request_parse(data, size, &r) >= 0) {
                _cleanup_free_ char *out = NULL, *out2 = NULL;
                size_t len, len2;
                if (enrolment_request_format(&r, &out, &len) < 0 ||
                    enrolment_request_parse(out, len, &r2) < 0 ||
                    enrolment_request_format(&r2, &out2, &len2) < 0 || len != len2 ||
                    memcmp(out, out2, len) != 0)
                        abort();
        }
        if (enrolment_parse(data, size, &e) >= 0) {
                _cleanup_free_ char *out = NULL, *out2 = NULL;
                size_t len, len2;
                if (enrolment_format(&e, &out, &len) < 0 || enrolment_parse(out, len, &e2) < 0 ||
                    enrolment_format(&e2, &out2, &len2) < 0 || len != len2 || memcmp(out, out2, len) != 0)
                        abort();
        }
        enrolment_request_done(&r);
        enrolment_request_done(&r2);
        enrolment_done(&e);
        enrolment_done(&e2);
        return 0;
}
