/* A small string-keyed hash map for the audit's per-terminal, per-operator and per-burst state. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit-map.h"

typedef struct Slot {
        char *key;
        void *value;
} Slot;

struct AuditMap {
        size_t value_size;
        Slot *slots; /* open addressing, linear probing; size a power of two */
        size_t size, n;
        void **order; /* values in insertion order, for iteration */
        const char **order_keys;
};

static uint64_t hash(const char *s)
{
        uint64_t h = UINT64_C(1469598103934665603);
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
        return h;
}

int audit_map_new(size_t value_size, AuditMap **ret)
{
        AuditMap *m = calloc(1, sizeof(AuditMap));
        if (!m)
                return -ENOMEM;
        m->value_size = value_size;
        *ret = m;
        return 0;
}

AuditMap *audit_map_free(AuditMap *m)
{
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->size; i++)
                if (m->slots[i].key) {
                        free(m->slots[i].key);
                        free(m->slots[i].value);
                }
        free(m->slots);
        free(m->order);
        free(m->order_keys);
        free(m);
        return NULL;
}

static int grow(AuditMap *m)
{
        size_t size = m->size ? m->size * 2 : 64;
        Slot *slots = calloc(size, sizeof(Slot));
        void **order = realloc(m->order, size * sizeof(void *));
        if (order)
                m->order = order;
        const char **keys = realloc(m->order_keys, size * sizeof(char *));
        if (keys)
                m->order_keys = keys;
        if (!slots || !order || !keys) {
                free(slots);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->size; i++)
                if (m->slots[i].key) {
                        size_t j = hash(m->slots[i].key) & (size - 1);
                        while (slots[j].key)
                                j = (j + 1) & (size - 1);
                        slots[j] = m->slots[i];
                }
        free(m->slots);
        m->slots = slots;
        m->size = size;
        return 0;
}

void *audit_map_get(AuditMap *m, const char *key, bool create)
{
        if (m->size) {
                for (size_t j = hash(key) & (m->size - 1); m->slots[j].key; j = (j + 1) & (m->size - 1))
                        if (streq(m->slots[j].key, key))
                                return m->slots[j].value;
        }
        if (!create)
                return NULL;
        if ((m->n + 1) * 2 > m->size && grow(m) < 0)
                return NULL;
        size_t j = hash(key) & (m->size - 1);
        while (m->slots[j].key)
                j = (j + 1) & (m->size - 1);
        char *k = strdup(key);
        void *v = calloc(1, m->value_size);
        if (!k || !v) {
                free(k);
                free(v);
                return NULL;
        }
        m->slots[j] = (Slot){.key = k, .value = v};
        m->order[m->n] = v;
        m->order_keys[m->n] = k;
        m->n++;
        return v;
}

size_t audit_map_size(const AuditMap *m)
{
        return m->n;
}

void *audit_map_at(const AuditMap *m, size_t i, const char **ret_key)
{
        if (i >= m->n)
                return NULL;
        if (ret_key)
                *ret_key = m->order_keys[i];
        return m->order[i];
}
