/* A small string-keyed hash map: values are zeroed blocks of a fixed size, owned by the map, stable. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "mamori/macro.h"

typedef struct AuditMap AuditMap;

int audit_map_new(size_t value_size, AuditMap **ret);
AuditMap *audit_map_free(AuditMap *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditMap *, audit_map_free);
/* The value of key; with create, a new zeroed one when absent. NULL when absent (or out of memory). */
void *audit_map_get(AuditMap *m, const char *key, bool create);
/* Values in insertion order. */
size_t audit_map_size(const AuditMap *m);
void *audit_map_at(const AuditMap *m, size_t i, const char **ret_key);
