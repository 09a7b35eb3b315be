/* Fuzz target: policy bundles, both as received (signature path) and re-signed so the field decoder is
 * reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/policy.h"
#include "mamori/signed-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *key;

static void exercise(const Policy *p)
{
        for (size_t i = 0; i < p->n_cards; i++) {
                const PolicyCard *c = &p->cards[i];
                if (policy_find_card(p, c->id) != c)
                        abort(); /* sorted and unique: every card is found at its own place */
                if (c->kind == POLICY_CARD_INDIVIDUAL ? !policy_find_operator(p, c->operator)
                                                      : !policy_find_group(p, c->group))
                        abort(); /* references were checked */
        }
        for (size_t i = 0; i < p->n_operators; i++)
                if (policy_find_operator(p, p->operators[i].id) != &p->operators[i])
                        abort();
        for (size_t i = 0; i < p->n_terminals; i++)
                if (!policy_find_office(p, p->terminals[i].office))
                        abort();
        for (size_t i = 0; i < p->n_groups; i++)
                for (size_t j = 0; j < p->groups[i].n_members; j++)
                        if (!policy_find_operator(p, p->groups[i].members[j]))
                                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_json_ JsonValue *v = NULL;
        _cleanup_free_ char *signed_text = NULL;
        Policy *p = NULL;
        size_t len;

        if (!key) {
                static const uint8_t seed[ED25519_KEY_SIZE] = {4, 5, 6};
                if (ed25519_from_seed(seed, &key) < 0)
                        abort();
        }

        /* As received: almost always refused by the signature check, which must not crash. */
        if (policy_parse(data, size, key, &p) >= 0) {
                exercise(p);
                p = policy_free(p);
        }

        /* Re-signed with the trusted key: now the structure decoder sees the fuzzer's input. */
        if (json_parse(data, size, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL) < 0 ||
            v->type != JSON_OBJECT)
                return 0;
        if (signed_json_sign(v, key, NULL) < 0)
                return 0;
        if (jcs_serialize(v, NULL, &signed_text, &len) < 0)
                abort();
        int r = policy_parse(signed_text, len, key, &p);
        if (r == -EKEYREJECTED || r == -ENOKEY)
                abort(); /* we just signed it */
        if (r >= 0) {
                exercise(p);
                policy_free(p);
        }
        return 0;
}
