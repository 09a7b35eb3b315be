/* Fuzz target: arbitrary bytes as the upload cursor file; an accepted cursor must format to a
 * canonical line that parses back to the same cursor. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/macro.h"
#include "mamori/upload-cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char line[UPLOAD_CURSOR_LINE_MAX];
        UploadCursor c, back;
        int n;

        if (upload_cursor_parse(data, size, &c) < 0)
                return 0;
        if (size > UPLOAD_CURSOR_SIZE_MAX || c.acked > UINT64_C(9007199254740991))
                abort();
        n = upload_cursor_format(&c, line);
        if (n <= 0 || (size_t)n >= sizeof(line) || line[n - 1] != '\n')
                abort();
        if (upload_cursor_parse(line, (size_t)n, &back) < 0 || !streq(back.log, c.log) ||
            back.acked != c.acked)
                abort();
        /* the canonical line is also accepted without its "\n" */
        if (upload_cursor_parse(line, (size_t)n - 1, &back) < 0)
                abort();
        return 0;
}
