/* Policy bundle (DESIGN.md §8): verify the signature, then decode every field strictly into structs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/json.h"
#include "mamori/policy.h"
#include "mamori/signed-json.h"

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

Policy *policy_free(Policy *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_offices; i++) {
                free(p->offices[i].id);
                free(p->offices[i].hours);
        }
        free(p->offices);
        for (size_t i = 0; i < p->n_terminals; i++) {
                free(p->terminals[i].id);
                free(p->terminals[i].office);
        }
        free(p->terminals);
        for (size_t i = 0; i < p->n_operators; i++) {
                PolicyOperator *o = &p->operators[i];
                free(o->id);
                free(o->name);
                strv_free(o->offices, o->n_offices);
                strv_free(o->roles, o->n_roles);
        }
        free(p->operators);
        for (size_t i = 0; i < p->n_groups; i++) {
                free(p->groups[i].id);
                strv_free(p->groups[i].offices, p->groups[i].n_offices);
                strv_free(p->groups[i].members, p->groups[i].n_members);
        }
        free(p->groups);
        for (size_t i = 0; i < p->n_cards; i++) {
                free(p->cards[i].operator);
                free(p->cards[i].group);
        }
        free(p->cards);
        free(p);
        return NULL;
}

/* ---- field decoders: all return -EBADMSG for a wrong type or format ---- */

static bool id_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > POLICY_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr("._:@-", c)))
                        return false;
        }
        return true;
}

static bool name_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > POLICY_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

static bool hours_valid(const char *s)
{
        unsigned t[4];

        /* HH:MM-HH:MM, 00:00 … 24:00, start before end */
        if (strlen(s) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':')
                return false;
        for (size_t i = 0; i < 4; i++) {
                const char *d = s + i * 3;
                if (d[0] < '0' || d[0] > '9' || d[1] < '0' || d[1] > '9')
                        return false;
                t[i] = (unsigned)(d[0] - '0') * 10 + (unsigned)(d[1] - '0');
        }
        if (t[0] > 24 || t[2] > 24 || t[1] > 59 || t[3] > 59 || (t[0] == 24 && t[1]) || (t[2] == 24 && t[3]))
                return false;
        return t[0] * 60 + t[1] < t[2] * 60 + t[3];
}

static int check_keys(const JsonValue *o, const char *const *allowed, size_t n_allowed)
{
        if (!o || o->type != JSON_OBJECT)
                return -EBADMSG;
        for (size_t i = 0; i < o->object.n; i++) {
                bool ok = false;
                for (size_t j = 0; j < n_allowed && !ok; j++)
                        ok = streq(o->object.members[i].key, allowed[j]);
                if (!ok)
                        return -EBADMSG;
        }
        return 0;
}

/* A string member; absent → NULL when optional. Validated by check(). */
static int get_str(const JsonValue *o, const char *key, bool optional, bool (*check)(const char *),
                   char **ret)
{
        const JsonValue *m = json_object_get(o, key);
        const char *s;
        char *d;

        if (!m) {
                if (!optional)
                        return -EBADMSG;
                *ret = NULL;
                return 0;
        }
        if (json_get_string(m, &s, NULL) < 0 || !check(s))
                return -EBADMSG;
        d = strdup(s);
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

static int strcmp_p(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* An array of ids, no duplicates; absent → empty when optional. */
static int get_id_list(const JsonValue *o, const char *key, bool optional, char ***ret, size_t *ret_n)
{
        const JsonValue *a = json_object_get(o, key);
        char **v;
        size_t n;

        if (!a) {
                if (!optional)
                        return -EBADMSG;
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (a->type != JSON_ARRAY)
                return -EBADMSG;
        n = a->array.n;
        if (n > POLICY_LIST_MAX)
                return -E2BIG;
        v = calloc(n ? n : 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *s;
                if (json_get_string(a->array.items[i], &s, NULL) < 0 || !id_valid(s)) {
                        strv_free(v, i);
                        return -EBADMSG;
                }
                v[i] = strdup(s);
                if (!v[i]) {
                        strv_free(v, i);
                        return -ENOMEM;
                }
        }
        if (n > 1) {
                char **sorted = calloc(n, sizeof(char *));
                if (!sorted) {
                        strv_free(v, n);
                        return -ENOMEM;
                }
                memcpy(sorted, v, n * sizeof(char *));
                qsort(sorted, n, sizeof(char *), strcmp_p);
                for (size_t i = 1; i < n; i++)
                        if (streq(sorted[i - 1], sorted[i])) {
                                free(sorted);
                                strv_free(v, n);
                                return -EBADMSG;
                        }
                free(sorted);
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static int get_time(const JsonValue *o, const char *key, int64_t *ret)
{
        int64_t i;
        if (json_object_get_integer(o, key, &i) < 0 || i < 0)
                return -EBADMSG;
        *ret = i;
        return 0;
}

/* Cards may be "returned", operators "retired"; both may be "active" or "suspended". */
static int get_status(const JsonValue *o, bool is_card, PolicyStatus *ret)
{
        const char *s;

        if (json_object_get_string(o, "status", &s) < 0)
                return -EBADMSG;
        if (streq(s, "active"))
                *ret = POLICY_STATUS_ACTIVE;
        else if (streq(s, "suspended"))
                *ret = POLICY_STATUS_SUSPENDED;
        else if (is_card && streq(s, "returned"))
                *ret = POLICY_STATUS_RETURNED;
        else if (!is_card && streq(s, "retired"))
                *ret = POLICY_STATUS_RETIRED;
        else
                return -EBADMSG;
        return 0;
}

/* ---- one decoder per list element ---- */

static int decode_office(const JsonValue *o, void *out)
{
        static const char *const keys[] = {"id", "hours"};
        PolicyOffice *x = out;
        int r;

        if ((r = check_keys(o, keys, ELEMENTSOF(keys))) < 0 ||
            (r = get_str(o, "id", false, id_valid, &x->id)) < 0 ||
            (r = get_str(o, "hours", true, hours_valid, &x->hours)) < 0)
                return r;
        return 0;
}

static int decode_terminal(const JsonValue *o, void *out)
{
        static const char *const keys[] = {"id", "office"};
        PolicyTerminal *x = out;
        int r;

        if ((r = check_keys(o, keys, ELEMENTSOF(keys))) < 0 ||
            (r = get_str(o, "id", false, id_valid, &x->id)) < 0 ||
            (r = get_str(o, "office", false, id_valid, &x->office)) < 0)
                return r;
        return 0;
}

static int decode_operator(const JsonValue *o, void *out)
{
        static const char *const keys[] = {"id", "name", "offices", "status", "roles", "pin_changed"};
        PolicyOperator *x = out;
        int r;

        x->pin_changed = -1;
        if ((r = check_keys(o, keys, ELEMENTSOF(keys))) < 0 ||
            (r = get_str(o, "id", false, id_valid, &x->id)) < 0 ||
            (r = get_str(o, "name", true, name_valid, &x->name)) < 0 ||
            (r = get_id_list(o, "offices", false, &x->offices, &x->n_offices)) < 0 ||
            (r = get_id_list(o, "roles", true, &x->roles, &x->n_roles)) < 0 ||
            (r = get_status(o, false, &x->status)) < 0)
                return r;
        if (json_object_get(o, "pin_changed") && (r = get_time(o, "pin_changed", &x->pin_changed)) < 0)
                return r;
        return 0;
}

static int decode_group(const JsonValue *o, void *out)
{
        static const char *const keys[] = {"id", "offices", "members"};
        PolicyGroup *x = out;
        int r;

        if ((r = check_keys(o, keys, ELEMENTSOF(keys))) < 0 ||
            (r = get_str(o, "id", false, id_valid, &x->id)) < 0 ||
            (r = get_id_list(o, "offices", false, &x->offices, &x->n_offices)) < 0 ||
            (r = get_id_list(o, "members", false, &x->members, &x->n_members)) < 0)
                return r;
        return 0;
}

static bool card_id_valid(const char *s)
{
        return hex_lower_valid(s, 64);
}

static int decode_card(const JsonValue *o, void *out)
{
        static const char *const keys[] = {"id", "kind", "operator", "group", "status"};
        PolicyCard *x = out;
        const char *id, *kind;
        int r;

        if ((r = check_keys(o, keys, ELEMENTSOF(keys))) < 0)
                return r;
        if (json_object_get_string(o, "id", &id) < 0 || !card_id_valid(id))
                return -EBADMSG;
        memcpy(x->id, id, 65);
        if (json_object_get_string(o, "kind", &kind) < 0)
                return -EBADMSG;
        if (streq(kind, "individual")) {
                x->kind = POLICY_CARD_INDIVIDUAL;
                if (json_object_get(o, "group"))
                        return -EBADMSG;
                r = get_str(o, "operator", false, id_valid, &x->operator);
        } else if (streq(kind, "group")) {
                x->kind = POLICY_CARD_GROUP;
                if (json_object_get(o, "operator"))
                        return -EBADMSG;
                r = get_str(o, "group", false, id_valid, &x->group);
        } else
                return -EBADMSG;
        if (r < 0)
                return r;
        return get_status(o, true, &x->status);
}

/* Entries are structs whose first field is the id (char * or char[65]). */
static const char *entry_id(const void *e, bool inline_id)
{
        return inline_id ? (const char *)e : *(char *const *)e;
}

typedef struct ListSpec {
        const char *key;
        size_t max, elem;
        bool inline_id;
        int (*decode)(const JsonValue *o, void *out);
} ListSpec;

static int entry_cmp(const void *a, const void *b, void *inline_id)
{
        return strcmp(entry_id(a, *(bool *)inline_id), entry_id(b, *(bool *)inline_id));
}

static int decode_list(const JsonValue *root, const ListSpec *spec, void **ret, size_t *ret_n)
{
        const JsonValue *a;
        uint8_t *v;
        size_t n;
        int r;

        if (json_object_get_array(root, spec->key, &a) < 0)
                return -EBADMSG;
        n = a->array.n;
        if (n > spec->max)
                return -E2BIG;
        v = calloc(n ? n : 1, spec->elem);
        if (!v)
                return -ENOMEM;
        /* The caller frees partially decoded entries through policy_free(): publish first. */
        *ret = v;
        *ret_n = n;
        for (size_t i = 0; i < n; i++) {
                r = spec->decode(a->array.items[i], v + i * spec->elem);
                if (r < 0)
                        return r;
        }
        if (n > 1) {
                bool inline_id = spec->inline_id;
                qsort_r(v, n, spec->elem, entry_cmp, &inline_id);
                for (size_t i = 1; i < n; i++)
                        if (streq(entry_id(v + (i - 1) * spec->elem, spec->inline_id),
                                  entry_id(v + i * spec->elem, spec->inline_id)))
                                return -EBADMSG; /* duplicate id */
        }
        return 0;
}

static int check_references(const Policy *p)
{
        for (size_t i = 0; i < p->n_terminals; i++)
                if (!policy_find_office(p, p->terminals[i].office))
                        return -EBADMSG;
        for (size_t i = 0; i < p->n_operators; i++)
                for (size_t j = 0; j < p->operators[i].n_offices; j++)
                        if (!policy_find_office(p, p->operators[i].offices[j]))
                                return -EBADMSG;
        for (size_t i = 0; i < p->n_groups; i++) {
                for (size_t j = 0; j < p->groups[i].n_offices; j++)
                        if (!policy_find_office(p, p->groups[i].offices[j]))
                                return -EBADMSG;
                for (size_t j = 0; j < p->groups[i].n_members; j++)
                        if (!policy_find_operator(p, p->groups[i].members[j]))
                                return -EBADMSG;
        }
        for (size_t i = 0; i < p->n_cards; i++) {
                const PolicyCard *c = &p->cards[i];
                if (c->kind == POLICY_CARD_INDIVIDUAL ? !policy_find_operator(p, c->operator)
                                                      : !policy_find_group(p, c->group))
                        return -EBADMSG;
        }
        return 0;
}

int policy_parse(const void *data, size_t size, EVP_PKEY *signer, Policy **ret)
{
        static const char *const keys[] = {"v",         "serial",  "issued",    "expires",
                                           "emergency", "offices", "terminals", "operators",
                                           "groups",    "cards",   "sig"};
        static const JsonLimits limits = {
                .max_size = POLICY_FILE_MAX,
                .max_depth = 8,
                .max_members = POLICY_CARDS_MAX,
                .max_string = 4096,
        };
        _cleanup_json_ JsonValue *root = NULL;
        _cleanup_policy_ Policy *p = NULL;
        int64_t v;
        int r;

        if ((!data && size > 0) || !signer || !ret)
                return -EINVAL;
        r = json_parse(data, size, &limits, JSON_PARSE_ALLOW_FINAL_NEWLINE, &root, NULL);
        if (r < 0)
                return r;
        if (root->type != JSON_OBJECT)
                return -EBADMSG;

        /* Authenticate before interpreting anything. */
        r = signed_json_verify(root, signer);
        if (r < 0)
                return r;

        r = check_keys(root, keys, ELEMENTSOF(keys));
        if (r < 0)
                return r;
        if (json_object_get_integer(root, "v", &v) < 0 || v != POLICY_VERSION)
                return -EBADMSG;

        p = calloc(1, sizeof(Policy));
        if (!p)
                return -ENOMEM;
        if ((r = get_time(root, "serial", &p->serial)) < 0 ||
            (r = get_time(root, "issued", &p->issued)) < 0 ||
            (r = get_time(root, "expires", &p->expires)) < 0)
                return r;
        if (p->expires < p->issued)
                return -EBADMSG;
        if (json_object_get_boolean(root, "emergency", &p->emergency) < 0)
                return -EBADMSG;

        const ListSpec specs[] = {
                {"offices", POLICY_OFFICES_MAX, sizeof(PolicyOffice), false, decode_office},
                {"terminals", POLICY_TERMINALS_MAX, sizeof(PolicyTerminal), false, decode_terminal},
                {"operators", POLICY_OPERATORS_MAX, sizeof(PolicyOperator), false, decode_operator},
                {"groups", POLICY_GROUPS_MAX, sizeof(PolicyGroup), false, decode_group},
                {"cards", POLICY_CARDS_MAX, sizeof(PolicyCard), true, decode_card},
        };
        void **dst[] = {(void **)&p->offices, (void **)&p->terminals, (void **)&p->operators,
                        (void **)&p->groups, (void **)&p->cards};
        size_t *dst_n[] = {&p->n_offices, &p->n_terminals, &p->n_operators, &p->n_groups, &p->n_cards};

        for (size_t i = 0; i < ELEMENTSOF(specs); i++) {
                r = decode_list(root, &specs[i], dst[i], dst_n[i]);
                if (r < 0)
                        return r;
        }
        r = check_references(p);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}

int policy_load_file(const char *path, EVP_PKEY *signer, Policy **ret)
{
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        r = read_file_bounded(path, POLICY_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        return policy_parse(buf, size, signer, ret);
}

const char *policy_error_reason(int err)
{
        switch (err) {
        case -EKEYREJECTED:
                return "bad-signature";
        case -ENOKEY:
                return "unsigned";
        case -E2BIG:
                return "too-large";
        case -EBADMSG:
        case -ERANGE:
                return "malformed";
        case -ENOENT:
                return "missing";
        case -ESTALE:
                return "serial-regression";
        default:
                return "error";
        }
}

/* ---- lookups ---- */

static const void *find(const void *base, size_t n, size_t elem, bool inline_id, const char *id)
{
        size_t lo = 0, hi = n;

        if (!id)
                return NULL;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const void *e = (const uint8_t *)base + mid * elem;
                int c = strcmp(id, entry_id(e, inline_id));
                if (c == 0)
                        return e;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

const PolicyCard *policy_find_card(const Policy *p, const char *id)
{
        return p ? find(p->cards, p->n_cards, sizeof(PolicyCard), true, id) : NULL;
}

const PolicyOperator *policy_find_operator(const Policy *p, const char *id)
{
        return p ? find(p->operators, p->n_operators, sizeof(PolicyOperator), false, id) : NULL;
}

const PolicyGroup *policy_find_group(const Policy *p, const char *id)
{
        return p ? find(p->groups, p->n_groups, sizeof(PolicyGroup), false, id) : NULL;
}

const PolicyTerminal *policy_find_terminal(const Policy *p, const char *id)
{
        return p ? find(p->terminals, p->n_terminals, sizeof(PolicyTerminal), false, id) : NULL;
}

const PolicyOffice *policy_find_office(const Policy *p, const char *id)
{
        return p ? find(p->offices, p->n_offices, sizeof(PolicyOffice), false, id) : NULL;
}

static bool strv_contains(char *const *v, size_t n, const char *s)
{
        if (!s)
                return false;
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

bool policy_operator_in_office(const PolicyOperator *op, const char *office)
{
        return op && strv_contains(op->offices, op->n_offices, office);
}

bool policy_group_has_member(const PolicyGroup *g, const char *operator_id)
{
        return g && strv_contains(g->members, g->n_members, operator_id);
}

bool policy_group_in_office(const PolicyGroup *g, const char *office)
{
        return g && strv_contains(g->offices, g->n_offices, office);
}

bool policy_is_stale(const Policy *p, int64_t now_usec)
{
        return !p || now_usec > p->expires;
}

int policy_check_serial(const Policy *current, const Policy *candidate)
{
        if (!candidate)
                return -EINVAL;
        if (current && candidate->serial < current->serial)
                return -ESTALE;
        return 0;
}
