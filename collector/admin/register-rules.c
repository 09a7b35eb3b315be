/* The register's rules for status moves: which moves exist, and the words when one does not. */
#include <stdbool.h>
#include <stddef.h>

#include "mamori/macro.h"
#include "register-rules.h"

static const struct {
        const char *object, *from, *to;
} moves[] = {
        {"card", "active", "suspended"},     {"card", "suspended", "active"},
        {"card", "active", "returned"},      {"card", "suspended", "returned"},
        {"operator", "active", "suspended"}, {"operator", "suspended", "active"},
        {"operator", "active", "retired"},   {"operator", "suspended", "retired"},
};

const char *register_move_refusal(const char *object, const char *from, const char *to)
{
        bool card;

        if (!object || !from || !to)
                return "unknown status";
        card = streq(object, "card");
        for (size_t i = 0; i < ELEMENTSOF(moves); i++)
                if (streq(moves[i].object, object) && streq(moves[i].from, from) && streq(moves[i].to, to))
                        return NULL;
        if (streq(from, to))
                return card ? "the card already has that status: nothing to change"
                            : "the operator already has that status: nothing to change";
        if (streq(from, "returned"))
                return "a returned card is final: it can never be used again; issue a new card "
                       "(mamori-admin card issue)";
        if (streq(from, "retired"))
                return "a retired operator is final; register the person again under a new operator id "
                       "(mamori-admin operator add)";
        return "this status change is not a move of the register";
}
