/* Decides a card login from card facts, PIN and signature results, the policy and the terminal. */
#include "mamori/auth-decision.h"
#include "mamori/card.h"
#include "mamori/cert-check.h"
#include "mamori/macro.h"

static struct auth_decision refuse(enum auth_reason r)
{
        return (struct auth_decision){.reason = r, .tries_left = -1};
}

/* The office this terminal belongs to: the bundle is authoritative, the config a fallback. */
static const char *terminal_office(const struct auth_context *c)
{
        const PolicyTerminal *t = c->terminal_id ? policy_find_terminal(c->policy, c->terminal_id) : NULL;
        return t ? t->office : c->office;
}

static enum auth_reason operator_verdict(const PolicyOperator *op, const char *office)
{
        if (!op)
                return AUTH_UNKNOWN_CARD;
        switch (op->status) {
        case POLICY_STATUS_ACTIVE:
                break;
        case POLICY_STATUS_SUSPENDED:
                return AUTH_OPERATOR_SUSPENDED;
        default:
                return AUTH_OPERATOR_RETIRED;
        }
        if (!office || !policy_operator_in_office(op, office))
                return AUTH_WRONG_OFFICE;
        return AUTH_ALLOW;
}

struct auth_decision auth_decide_precheck(const struct auth_card_facts *f, const struct auth_context *c)
{
        struct auth_decision d = refuse(AUTH_ALLOW);

        if (!c->policy)
                return refuse(AUTH_POLICY_STALE);
        /* Emergency wins over everything: protection before service. */
        if (c->policy->emergency)
                return refuse(AUTH_EMERGENCY);
        if (policy_is_stale(c->policy, c->now_usec)) {
                if (c->stale_policy == STALE_POLICY_DENY)
                        return refuse(AUTH_POLICY_STALE);
                d.policy_stale = true;
        }
        if (!f->card_present)
                return refuse(AUTH_NO_CARD);
        if (f->card_error < 0 || !f->card_id)
                return refuse(AUTH_CARD_ERROR);
        switch (f->cert_result) {
        case CERT_CHECK_OK:
                break;
        case CERT_CHECK_EXPIRED:
                return refuse(AUTH_CERT_EXPIRED);
        case CERT_CHECK_UNTRUSTED:
        case CERT_CHECK_BAD_USAGE:
        case CERT_CHECK_MALFORMED:
                return refuse(AUTH_CERT_UNTRUSTED);
        default:
                return refuse(AUTH_CARD_ERROR); /* the check itself failed, or was never run */
        }

        const PolicyCard *card = policy_find_card(c->policy, f->card_id);
        if (!card)
                return refuse(AUTH_UNKNOWN_CARD);
        if (card->status == POLICY_STATUS_SUSPENDED)
                return refuse(AUTH_CARD_SUSPENDED);
        if (card->status != POLICY_STATUS_ACTIVE)
                return refuse(AUTH_CARD_RETURNED);

        const char *office = terminal_office(c);
        if (card->kind == POLICY_CARD_INDIVIDUAL) {
                enum auth_reason r =
                        operator_verdict(policy_find_operator(c->policy, card->operator), office);
                if (r != AUTH_ALLOW)
                        return refuse(r);
                d.operator_id = card->operator;
        } else {
                const PolicyGroup *g = policy_find_group(c->policy, card->group);
                if (!g)
                        return refuse(AUTH_UNKNOWN_CARD);
                if (!office || !policy_group_in_office(g, office))
                        return refuse(AUTH_WRONG_OFFICE);
                d.group_id = card->group;
        }
        return d;
}

enum auth_reason auth_decide_session(const struct auth_context *c, const char *card_id,
                                     const char *operator_id)
{
        const struct auth_card_facts f = {
                .card_present = true,
                .card_id = card_id,
                .cert_result = CERT_CHECK_OK,
        };
        struct auth_decision d;

        if (!card_id || !operator_id)
                return AUTH_CARD_ERROR;
        d = auth_decide_precheck(&f, c);
        if (d.reason != AUTH_ALLOW)
                return d.reason;
        if (d.operator_id) /* an individual card now given to someone else is not this session's */
                return streq(d.operator_id, operator_id) ? AUTH_ALLOW : AUTH_UNKNOWN_CARD;
        /* A group card: the member who identified must still be one, and allowed here. */
        if (!policy_group_has_member(policy_find_group(c->policy, d.group_id), operator_id))
                return AUTH_NOT_GROUP_MEMBER;
        return operator_verdict(policy_find_operator(c->policy, operator_id), terminal_office(c));
}

enum auth_reason auth_decide_operator(const struct auth_context *c, const char *operator_id, bool *ret_stale)
{
        bool stale = false;

        if (!c->policy)
                return AUTH_POLICY_STALE;
        if (c->policy->emergency)
                return AUTH_EMERGENCY;
        if (policy_is_stale(c->policy, c->now_usec)) {
                if (c->stale_policy == STALE_POLICY_DENY)
                        return AUTH_POLICY_STALE;
                stale = true;
        }
        if (operator_id) {
                const PolicyOperator *op = policy_find_operator(c->policy, operator_id);
                enum auth_reason r = op ? operator_verdict(op, terminal_office(c)) : AUTH_OPERATOR_RETIRED;
                if (r != AUTH_ALLOW)
                        return r;
        }
        if (ret_stale)
                *ret_stale = stale;
        return AUTH_ALLOW;
}

struct auth_decision auth_decide(const struct auth_card_facts *f, const struct auth_context *c)
{
        struct auth_decision d = auth_decide_precheck(f, c);

        if (d.reason != AUTH_ALLOW)
                return d;
        if (f->pin_result == CARD_E_PIN_WRONG) {
                struct auth_decision w = refuse(AUTH_PIN_WRONG);
                w.tries_left = f->tries_left;
                return w;
        }
        if (f->pin_result == CARD_E_PIN_BLOCKED)
                return refuse(AUTH_PIN_BLOCKED);
        if (f->pin_result != 0)
                return refuse(AUTH_CARD_ERROR);
        if (f->auth_result == CARD_E_SIG_INVALID)
                return refuse(AUTH_SIGNATURE_INVALID);
        if (f->auth_result != 0)
                return refuse(AUTH_CARD_ERROR);
        return d;
}
