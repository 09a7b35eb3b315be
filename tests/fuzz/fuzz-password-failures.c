/* Fuzz target: arbitrary bytes as the password failure file; an accepted file formats to text that
 * parses back to the same counts, and formatting is idempotent. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/macro.h"
#include "password-failures.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_entry(const struct password_failure_entry *a, const struct password_failure_entry *b)
{
        return streq(a->operator_id, b->operator_id) && a->count == b->count &&
               a->last_usec == b->last_usec && a->next_usec == b->next_usec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct password_failure_file f, back;
        char *text = NULL, *again = NULL;
        size_t n, n2;

        if (password_failure_file_parse((const char *)data, size, &f) < 0)
                return 0;
        if (size > PASSWORD_FAILURES_FILE_MAX || f.n > PASSWORD_FAILURE_ENTRIES_MAX ||
            f.floor.count > PASSWORD_FAILURE_COUNT_MAX || f.floor.operator_id[0])
                abort();
        if (password_failure_file_format(&f, &text, &n) < 0 || n > PASSWORD_FAILURES_FILE_MAX)
                abort();
        if (password_failure_file_parse(text, n, &back) < 0 || back.n != f.n ||
            !same_entry(&back.floor, &f.floor))
                abort();
        for (size_t i = 0; i < f.n; i++)
                if (!same_entry(&back.entries[i], &f.entries[i]) ||
                    f.entries[i].count > PASSWORD_FAILURE_COUNT_MAX)
                        abort();
        /* The format is canonical: what was accepted is exactly what formatting gives. */
        if (n != size || memcmp(text, data, n) != 0)
                abort();
        if (password_failure_file_format(&back, &again, &n2) < 0 || n2 != n || memcmp(again, text, n) != 0)
                abort();
        free(text);
        free(again);
        return 0;
}
