/* The register's rules for status moves of cards and operators (the one place they are decided). */
#pragma once

/*
 * object "card" (active | suspended | returned) or "operator" (active | suspended | retired).
 * NULL when the move from → to is allowed, else one line for the operator saying why not and what to
 * do instead. returned and retired are final.
 */
const char *register_move_refusal(const char *object, const char *from, const char *to);
