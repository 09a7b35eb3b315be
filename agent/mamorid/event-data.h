/* The data object of an event record, built from key/value pairs. */
#pragma once

#include "mamori/json.h"

/* Builds {key: value, …} from NULL-terminated pairs; a value starting with '#' is an integer
 * ("#123"); a NULL value skips the key. NULL on allocation failure. */
JsonValue *agent_data(const char *key, ...) __attribute__((sentinel));
