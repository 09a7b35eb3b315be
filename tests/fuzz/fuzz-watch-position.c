/* Fuzz target: arbitrary bytes as watch's position file; an accepted position must format to a text that
 * parses back to the same position. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "watch-position.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        WatchPosition p, back;
        char *text = NULL;
        size_t n;

        if (watch_position_parse((const char *)data, size, &p) < 0)
                return 0;
        if (p.alert < 0 || p.n > WATCH_POSITION_LOGS)
                abort();
        if (watch_position_format(p.alert, p.logs, p.n, &text, &n) < 0)
                abort();
        if (watch_position_parse(text, n, &back) < 0 || back.alert != p.alert || back.n != p.n)
                abort();
        for (unsigned i = 0; i < p.n; i++)
                if (strcmp(back.logs[i].log, p.logs[i].log) != 0 || back.logs[i].after != p.logs[i].after ||
                    strlen(p.logs[i].log) != 32)
                        abort();
        free(text);
        watch_position_done(&back);
        watch_position_done(&p);
        return 0;
}
