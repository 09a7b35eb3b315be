/* Fuzz target: arbitrary bytes as a stored record line for the audit's scanner. Whatever it accepts, the
 * strict JSON parser must read the same fields from (the scanner is a fast path, never another meaning). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The scanner's string (NULL for null) is the tree's. */
static bool same_string(const char *scanned, const JsonValue *tree, const char *key)
{
        const JsonValue *v = json_object_get(tree, key);
        const char *s;
        if (json_is_null(v))
                return !scanned;
        return scanned && json_get_string(v, &s, NULL) >= 0 && strcmp(s, scanned) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_json_ JsonValue *tree = NULL, *d = NULL;
        _cleanup_free_ char *scratch = malloc(size + 1);
        const JsonValue *dv;
        AuditRecord r;
        int64_t i;

        if (!scratch || audit_record_scan((const char *)data, size, scratch, size + 1, &r) < 0)
                return 0;
        if (json_parse(data, size, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &tree, NULL) < 0)
                return 0; /* e.g. invalid UTF-8 in a string the scanner skips: the collector never stores it
                           */
        if (json_object_get_integer(tree, "seq", &i) < 0 || (uint64_t)i != r.seq ||
            json_object_get_integer(tree, "ts", &i) < 0 || i != r.ts)
                abort();
        if (!r.term || !r.ev || !same_string(r.term, tree, "term") || !same_string(r.ev, tree, "ev") ||
            !same_string(r.op, tree, "op") || !same_string(r.card, tree, "card"))
                abort();
        if (json_object_get_object(tree, "data", &dv) < 0 || audit_record_data(&r, &d) < 0 ||
            !json_value_equal(d, dv))
                abort();
        const char *s;
        if ((json_object_get_string(dv, "reason", &s) >= 0) != (r.reason != NULL) ||
            (r.reason && strcmp(s, r.reason) != 0))
                abort();
        if ((json_object_get_string(dv, "method", &s) >= 0) != (r.method != NULL) ||
            (r.method && strcmp(s, r.method) != 0))
                abort();
        if (json_object_get_integer(dv, "repeats", &i) >= 0 ? r.repeats != (uint64_t)(i > 0 ? i : 0)
                                                            : r.repeats != 0)
                abort();
        return 0;
}
