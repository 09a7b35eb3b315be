/* A snapshot of the registry the audit reads: terminal → office, office hours, group cards, members, roles.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

typedef struct Entry {
        char *id;
        char *a, *b; /* terminal: office; office: hours; card: group, operator; group: members, offices;
                      * operator: roles, offices */
        int64_t n;   /* terminal: last seen */
} Entry;

typedef struct Table {
        Entry *e;
        size_t n, allocated;
} Table;

struct AuditRegistry {
        Table terminals, offices, cards, groups, operators;
        Table calendars;  /* office: days (n = mask), holidays */
        char *bad_office; /* while loading: the office whose days could not be read */
};

static int table_add(Table *t, const char *id, const char *a, const char *b, int64_t n)
{
        if (t->n == t->allocated) {
                size_t m = t->allocated ? t->allocated * 2 : 32;
                Entry *ne = realloc(t->e, m * sizeof(Entry));
                if (!ne)
                        return -ENOMEM;
                t->e = ne;
                t->allocated = m;
        }
        Entry *e = &t->e[t->n];
        *e = (Entry){.id = strdup(id), .a = a ? strdup(a) : NULL, .b = b ? strdup(b) : NULL, .n = n};
        if (!e->id || (a && !e->a) || (b && !e->b)) {
                free(e->id);
                free(e->a);
                free(e->b);
                return -ENOMEM;
        }
        t->n++;
        return 0;
}

static void table_free(Table *t)
{
        for (size_t i = 0; i < t->n; i++) {
                free(t->e[i].id);
                free(t->e[i].a);
                free(t->e[i].b);
        }
        free(t->e);
}

static int entry_cmp(const void *a, const void *b)
{
        return strcmp(((const Entry *)a)->id, ((const Entry *)b)->id);
}

static const Entry *table_find(const Table *t, const char *id)
{
        Entry key = {.id = (char *)id};
        return id && t->n ? bsearch(&key, t->e, t->n, sizeof(Entry), entry_cmp) : NULL;
}

static int on_terminal(const char *id, const char *office, int64_t last_seen, void *userdata)
{
        AuditRegistry *reg = userdata;
        return table_add(&reg->terminals, id, office, NULL, last_seen);
}

static int on_office(const char *id, const char *hours, void *userdata)
{
        AuditRegistry *reg = userdata;
        return table_add(&reg->offices, id, hours, NULL, 0);
}

static int on_card(const char *id, const char *op, const char *group, const char *status, void *userdata)
{
        AuditRegistry *reg = userdata;
        return table_add(&reg->cards, id, group, op, 0);
}

static int on_group(const char *id, const char *offices, const char *members, void *userdata)
{
        AuditRegistry *reg = userdata;
        return table_add(&reg->groups, id, members, offices, 0);
}

static int on_operator(const char *id, const char *offices, const char *status, const char *roles,
                       void *userdata)
{
        AuditRegistry *reg = userdata;
        return table_add(&reg->operators, id, roles, offices, 0);
}

static int on_calendar(const char *office, const char *days, const char *holidays, void *userdata)
{
        AuditRegistry *reg = userdata;
        unsigned mask;
        /* Written by mamori-admin office days (checked there); anything else would be a damaged store. */
        if (audit_parse_days(days, &mask) < 0) {
                free(reg->bad_office);
                reg->bad_office = strdup(office);
                return reg->bad_office ? -EBADMSG : -ENOMEM;
        }
        return table_add(&reg->calendars, office, days, holidays, mask);
}

int audit_registry_load(Store *s, AuditRegistry **ret, char **reterr_bad_office)
{
        _cleanup_audit_registry_ AuditRegistry *reg = calloc(1, sizeof(AuditRegistry));
        int r;

        if (!reg)
                return -ENOMEM;
        if ((r = store_terminals_foreach(s, on_terminal, reg)) < 0 ||
            (r = store_offices_foreach(s, on_office, reg)) < 0 ||
            (r = store_cards_foreach(s, on_card, reg)) < 0 ||
            (r = store_groups_foreach(s, on_group, reg)) < 0 ||
            (r = store_operators_foreach(s, on_operator, reg)) < 0 ||
            (r = store_office_calendars_foreach(s, on_calendar, reg)) < 0) {
                if (r == -EBADMSG && reterr_bad_office)
                        *reterr_bad_office = TAKE_PTR(reg->bad_office);
                return r;
        }
        /* The store lists by id already; sort anyway so lookups never depend on the backend's order. */
        Table *all[] = {&reg->terminals, &reg->offices,   &reg->cards,
                        &reg->groups,    &reg->operators, &reg->calendars};
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                if (all[i]->n)
                        qsort(all[i]->e, all[i]->n, sizeof(Entry), entry_cmp);
        *ret = TAKE_PTR(reg);
        return 0;
}

AuditRegistry *audit_registry_free(AuditRegistry *reg)
{
        if (!reg)
                return NULL;
        table_free(&reg->terminals);
        table_free(&reg->offices);
        table_free(&reg->cards);
        table_free(&reg->groups);
        table_free(&reg->operators);
        table_free(&reg->calendars);
        free(reg->bad_office);
        free(reg);
        return NULL;
}

const char *audit_registry_office(const AuditRegistry *reg, const char *term)
{
        const Entry *e = table_find(&reg->terminals, term);
        return e ? e->a : NULL;
}

unsigned audit_registry_days(const AuditRegistry *reg, const char *office)
{
        const Entry *e = table_find(&reg->calendars, office);
        unsigned mask = 0;
        if (e)
                return (unsigned)e->n;
        (void)audit_parse_days(STORE_DEFAULT_DAYS, &mask);
        return mask;
}

bool audit_registry_holiday(const AuditRegistry *reg, const char *office, const char *date)
{
        const Entry *e = table_find(&reg->calendars, office);
        /* Holidays are whole 10-character tokens, and date holds no space: a hit is a whole token. */
        return e && e->b && strlen(date) == 10 && strstr(e->b, date);
}

bool audit_registry_office_exists(const AuditRegistry *reg, const char *office)
{
        return table_find(&reg->offices, office) != NULL;
}

bool audit_registry_hours(const AuditRegistry *reg, const char *office, int *ret_open, int *ret_close)
{
        const Entry *e = table_find(&reg->offices, office);
        return e && e->a && audit_parse_hours(e->a, ret_open, ret_close) >= 0;
}

const char *audit_registry_card_group(const AuditRegistry *reg, const char *card)
{
        const Entry *e = table_find(&reg->cards, card);
        return e ? e->a : NULL;
}

/* id is one of the space-separated words of list. */
static bool word_in(const char *list, const char *id)
{
        size_t n = strlen(id);
        for (const char *p = list; p && *p;) {
                const char *sp = strchr(p, ' ');
                size_t len = sp ? (size_t)(sp - p) : strlen(p);
                if (len == n && strneq(p, id, n))
                        return true;
                p = sp ? sp + 1 : NULL;
        }
        return false;
}

const char *audit_registry_card_operator(const AuditRegistry *reg, const char *card)
{
        const Entry *e = table_find(&reg->cards, card);
        return e ? e->b : NULL;
}

bool audit_registry_group_member(const AuditRegistry *reg, const char *group, const char *op)
{
        const Entry *e = table_find(&reg->groups, group);
        return e && op && word_in(e->a, op);
}

const char *audit_registry_role(const AuditRegistry *reg, const char *op)
{
        static _Thread_local char role[AUDIT_ID_MAX];
        const Entry *e = table_find(&reg->operators, op);
        if (!e || !e->a || !*e->a)
                return "counter";
        size_t n = strcspn(e->a, " ");
        if (n >= sizeof(role))
                n = sizeof(role) - 1;
        memcpy(role, e->a, n);
        role[n] = 0;
        return role;
}

size_t audit_registry_n_terminals(const AuditRegistry *reg)
{
        return reg->terminals.n;
}

const char *audit_registry_terminal(const AuditRegistry *reg, size_t i, const char **ret_office,
                                    int64_t *ret_last_seen)
{
        if (i >= reg->terminals.n)
                return NULL;
        if (ret_office)
                *ret_office = reg->terminals.e[i].a;
        if (ret_last_seen)
                *ret_last_seen = reg->terminals.e[i].n;
        return reg->terminals.e[i].id;
}

size_t audit_registry_cards_of(const AuditRegistry *reg, const char *op, const char **ret, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < reg->cards.n && n < max; i++)
                if (reg->cards.e[i].b && streq(reg->cards.e[i].b, op))
                        ret[n++] = reg->cards.e[i].id;
        return n;
}
