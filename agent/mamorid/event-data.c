/* The data object of an event record, built from key/value pairs. */
#include <stdarg.h>
#include <stdlib.h>

#include "event-data.h"

JsonValue *agent_data(const char *key, ...)
{
        JsonValue *o = NULL;
        va_list ap;

        if (json_new_object(&o) < 0)
                return NULL;
        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *)) {
                const char *v = va_arg(ap, const char *);
                int r;
                if (!v)
                        continue;
                if (v[0] == '#')
                        r = json_object_set_integer(o, k, strtoll(v + 1, NULL, 10));
                else
                        r = json_object_set_string(o, k, v);
                if (r < 0) {
                        va_end(ap);
                        return json_value_free(o);
                }
        }
        va_end(ap);
        return o;
}
