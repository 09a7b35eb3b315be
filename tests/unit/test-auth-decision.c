/* Table-driven tests of the card-login decision: every refusal reason, and the order they win in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mamori/auth-decision.h"
#include "mamori/card.h"
#include "mamori/cert-check.h"
#include "mamori/macro.h"

#define NOW  INT64_C(1763880000000000)
#define HOUR INT64_C(3600000000)
/* Card ids, sorted as the policy keeps them. */
#define CARD_A       "1111111111111111111111111111111111111111111111111111111111111111" /* OP0001, active */
#define CARD_B       "2222222222222222222222222222222222222222222222222222222222222222" /* OP0001, suspended */
#define CARD_C       "3333333333333333333333333333333333333333333333333333333333333333" /* OP0001, returned */
#define CARD_D       "4444444444444444444444444444444444444444444444444444444444444444" /* OP0002 suspended */
#define CARD_E       "5555555555555555555555555555555555555555555555555555555555555555" /* OP0003 retired */
#define CARD_F       "6666666666666666666666666666666666666666666666666666666666666666" /* OP0004 other office */
#define CARD_G       "7777777777777777777777777777777777777777777777777777777777777777" /* group, chuo */
#define CARD_H       "8888888888888888888888888888888888888888888888888888888888888888" /* group, tax */
#define CARD_UNKNOWN "9999999999999999999999999999999999999999999999999999999999999999"

static char *chuo_offices[] = {"chuo"};
static char *tax_offices[] = {"tax"};
static char *members[] = {"OP0001", "OP0002"};

static PolicyOperator operators[] = {
        {.id = "OP0001", .offices = chuo_offices, .n_offices = 1, .status = POLICY_STATUS_ACTIVE},
        {.id = "OP0002", .offices = chuo_offices, .n_offices = 1, .status = POLICY_STATUS_SUSPENDED},
        {.id = "OP0003", .offices = chuo_offices, .n_offices = 1, .status = POLICY_STATUS_RETIRED},
        {.id = "OP0004", .offices = tax_offices, .n_offices = 1, .status = POLICY_STATUS_ACTIVE},
};
static PolicyGroup groups[] = {
        {.id = "G-chuo", .offices = chuo_offices, .n_offices = 1, .members = members, .n_members = 2},
        {.id = "G-tax", .offices = tax_offices, .n_offices = 1, .members = members, .n_members = 2},
};
static PolicyCard cards[] = {
        {CARD_A, POLICY_CARD_INDIVIDUAL, "OP0001", NULL, POLICY_STATUS_ACTIVE},
        {CARD_B, POLICY_CARD_INDIVIDUAL, "OP0001", NULL, POLICY_STATUS_SUSPENDED},
        {CARD_C, POLICY_CARD_INDIVIDUAL, "OP0001", NULL, POLICY_STATUS_RETURNED},
        {CARD_D, POLICY_CARD_INDIVIDUAL, "OP0002", NULL, POLICY_STATUS_ACTIVE},
        {CARD_E, POLICY_CARD_INDIVIDUAL, "OP0003", NULL, POLICY_STATUS_ACTIVE},
        {CARD_F, POLICY_CARD_INDIVIDUAL, "OP0004", NULL, POLICY_STATUS_ACTIVE},
        {CARD_G, POLICY_CARD_GROUP, NULL, "G-chuo", POLICY_STATUS_ACTIVE},
        {CARD_H, POLICY_CARD_GROUP, NULL, "G-tax", POLICY_STATUS_ACTIVE},
};
static PolicyOffice offices[] = {{.id = "chuo"}, {.id = "tax"}};
static PolicyTerminal terminals[] = {{.id = "T-0001", .office = "chuo"}};

static Policy policy(bool emergency, int64_t expires)
{
        return (Policy){
                .serial = 42,
                .issued = NOW - HOUR,
                .expires = expires,
                .emergency = emergency,
                .offices = offices,
                .n_offices = ELEMENTSOF(offices),
                .terminals = terminals,
                .n_terminals = ELEMENTSOF(terminals),
                .operators = operators,
                .n_operators = ELEMENTSOF(operators),
                .groups = groups,
                .n_groups = ELEMENTSOF(groups),
                .cards = cards,
                .n_cards = ELEMENTSOF(cards),
        };
}

/* A login where every step succeeded with CARD_A; cases change one thing. */
static struct auth_card_facts good(void)
{
        return (struct auth_card_facts){
                .card_present = true,
                .card_id = CARD_A,
                .cert_result = CERT_CHECK_OK,
                .pin_result = 0,
                .tries_left = -1,
                .auth_result = 0,
        };
}

enum policy_kind { P_OK, P_NONE, P_EMERGENCY, P_STALE };

struct decision_case {
        const char *name;
        enum policy_kind policy;
        enum stale_policy stale;
        const char *terminal;
        const char *card_id;
        bool absent;
        int card_error, cert, pin, tries, sig;
        enum auth_reason want;
        int want_tries;
        const char *want_operator, *want_group;
        bool want_stale_flag;
};

static const struct decision_case cases[] = {
        {"allow", .want = AUTH_ALLOW, .want_operator = "OP0001"},
        {"allow with stale policy under warn", .policy = P_STALE, .stale = STALE_POLICY_WARN,
         .want = AUTH_ALLOW, .want_operator = "OP0001", .want_stale_flag = true},
        {"group card allowed as group", .card_id = CARD_G, .want = AUTH_ALLOW, .want_group = "G-chuo"},
        {"no card", .absent = true, .want = AUTH_NO_CARD},
        {"unknown card", .card_id = CARD_UNKNOWN, .want = AUTH_UNKNOWN_CARD},
        {"card suspended", .card_id = CARD_B, .want = AUTH_CARD_SUSPENDED},
        {"card returned", .card_id = CARD_C, .want = AUTH_CARD_RETURNED},
        {"operator suspended", .card_id = CARD_D, .want = AUTH_OPERATOR_SUSPENDED},
        {"operator retired", .card_id = CARD_E, .want = AUTH_OPERATOR_RETIRED},
        {"operator of another office", .card_id = CARD_F, .want = AUTH_WRONG_OFFICE},
        {"group of another office", .card_id = CARD_H, .want = AUTH_WRONG_OFFICE},
        {"terminal unknown to policy uses config office", .terminal = "T-9999", .card_id = CARD_F,
         .want = AUTH_ALLOW, .want_operator = "OP0004"},
        {"cert untrusted", .cert = CERT_CHECK_UNTRUSTED, .want = AUTH_CERT_UNTRUSTED},
        {"cert without digitalSignature", .cert = CERT_CHECK_BAD_USAGE, .want = AUTH_CERT_UNTRUSTED},
        {"cert malformed", .cert = CERT_CHECK_MALFORMED, .want = AUTH_CERT_UNTRUSTED},
        {"cert expired", .cert = CERT_CHECK_EXPIRED, .want = AUTH_CERT_EXPIRED},
        {"cert check could not run", .cert = -ENOMEM, .want = AUTH_CARD_ERROR},
        {"pin wrong", .pin = CARD_E_PIN_WRONG, .tries = 2, .want = AUTH_PIN_WRONG, .want_tries = 2},
        {"pin blocked", .pin = CARD_E_PIN_BLOCKED, .want = AUTH_PIN_BLOCKED},
        {"pin step not done", .pin = AUTH_STEP_NOT_DONE, .want = AUTH_CARD_ERROR},
        {"card gone during pin", .pin = CARD_E_REMOVED, .want = AUTH_CARD_ERROR},
        {"signature invalid", .sig = CARD_E_SIG_INVALID, .want = AUTH_SIGNATURE_INVALID},
        {"signature step not done", .sig = AUTH_STEP_NOT_DONE, .want = AUTH_CARD_ERROR},
        {"card garbage during sign", .sig = CARD_E_MALFORMED, .want = AUTH_CARD_ERROR},
        {"certificate unreadable", .card_error = CARD_E_MALFORMED, .want = AUTH_CARD_ERROR},
        {"no policy", .policy = P_NONE, .want = AUTH_POLICY_STALE},
        {"stale policy under deny", .policy = P_STALE, .stale = STALE_POLICY_DENY,
         .want = AUTH_POLICY_STALE},
        {"emergency", .policy = P_EMERGENCY, .want = AUTH_EMERGENCY},
        /* Order: emergency beats a card that is also suspended; suspension beats a wrong PIN. */
        {"emergency beats suspended card", .policy = P_EMERGENCY, .card_id = CARD_B, .want = AUTH_EMERGENCY},
        {"suspended beats wrong pin", .card_id = CARD_B, .pin = CARD_E_PIN_WRONG, .tries = 1,
         .want = AUTH_CARD_SUSPENDED},
        {"expired cert beats unknown card", .card_id = CARD_UNKNOWN, .cert = CERT_CHECK_EXPIRED,
         .want = AUTH_CERT_EXPIRED},
};

static void test_every_reason(void **state)
{
        bool seen[_AUTH_REASON_MAX] = {false};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct decision_case *t = &cases[i];
                Policy p = policy(t->policy == P_EMERGENCY, t->policy == P_STALE ? NOW - 1 : NOW + HOUR);
                struct auth_card_facts f = good();
                struct auth_context c = {
                        .policy = t->policy == P_NONE ? NULL : &p,
                        .terminal_id = t->terminal ? t->terminal : "T-0001",
                        .office = "tax", /* only used when the bundle does not know the terminal */
                        .now_usec = NOW,
                        .stale_policy = t->stale,
                };
                if (t->card_id)
                        f.card_id = t->card_id;
                f.card_present = !t->absent;
                f.card_error = t->card_error;
                if (t->card_error)
                        f.card_id = NULL;
                f.cert_result = t->cert;
                f.pin_result = t->pin;
                if (t->pin == CARD_E_PIN_WRONG)
                        f.tries_left = t->tries;
                f.auth_result = t->sig;

                struct auth_decision d = auth_decide(&f, &c);
                if (d.reason != t->want)
                        fail_msg("%s: got %s, want %s", t->name, auth_reason_to_string(d.reason),
                                 auth_reason_to_string(t->want));
                seen[d.reason] = true;
                if (t->want == AUTH_PIN_WRONG)
                        assert_int_equal(d.tries_left, t->want_tries);
                if (t->want_operator)
                        assert_string_equal(d.operator_id, t->want_operator);
                if (t->want_group)
                        assert_string_equal(d.group_id, t->want_group);
                if (t->want == AUTH_ALLOW)
                        assert_int_equal(d.policy_stale, t->want_stale_flag);
                else {
                        assert_null(d.operator_id);
                        assert_null(d.group_id);
                }
        }
        for (int r = 0; r < _AUTH_REASON_MAX; r++)
                if (!seen[r])
                        fail_msg("no case covers %s", auth_reason_to_string(r));
}

/* The precheck refuses before any PIN is sent; it does not look at PIN or signature. */
static void test_precheck(void **state)
{
        Policy p = policy(false, NOW + HOUR);
        struct auth_context c = {.policy = &p, .terminal_id = "T-0001", .now_usec = NOW};
        struct auth_card_facts f = good();

        f.pin_result = AUTH_STEP_NOT_DONE;
        f.auth_result = AUTH_STEP_NOT_DONE;
        assert_int_equal(auth_decide_precheck(&f, &c).reason, AUTH_ALLOW);
        assert_int_equal(auth_decide(&f, &c).reason, AUTH_CARD_ERROR);
        f.card_id = CARD_B;
        assert_int_equal(auth_decide_precheck(&f, &c).reason, AUTH_CARD_SUSPENDED);
}

/* §5 lifecycle: an open session checked again against a newly loaded bundle. */
static void test_session_against_new_bundle(void **state)
{
        static const struct {
                const char *card, *op;
                enum auth_reason want;
        } rows[] = {
                {CARD_A, "OP0001", AUTH_ALLOW},
                {CARD_B, "OP0001", AUTH_CARD_SUSPENDED},
                {CARD_C, "OP0001", AUTH_CARD_RETURNED},
                {CARD_UNKNOWN, "OP0001", AUTH_UNKNOWN_CARD}, /* dropped from the bundle */
                {CARD_A, "OP0002", AUTH_UNKNOWN_CARD},       /* the card now belongs to another */
                {CARD_D, "OP0002", AUTH_OPERATOR_SUSPENDED},
                {CARD_E, "OP0003", AUTH_OPERATOR_RETIRED},
                {CARD_F, "OP0004", AUTH_WRONG_OFFICE},       /* this office removed from them */
                {CARD_G, "OP0001", AUTH_ALLOW},              /* group card, member active */
                {CARD_G, "OP0002", AUTH_OPERATOR_SUSPENDED}, /* group card, member suspended */
                {CARD_G, "OP9999", AUTH_NOT_GROUP_MEMBER},   /* group card, member gone */
                {CARD_G, "OP0003", AUTH_NOT_GROUP_MEMBER},   /* an operator, but not of the group */
                {CARD_H, "OP0001", AUTH_WRONG_OFFICE},
        };
        Policy p = policy(false, NOW + HOUR), e = policy(true, NOW + HOUR);
        struct auth_context c = {.policy = &p, .terminal_id = "T-0001", .now_usec = NOW};

        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                enum auth_reason r = auth_decide_session(&c, rows[i].card, rows[i].op);
                if (r != rows[i].want)
                        fail_msg("%s/%s: got %s, want %s", rows[i].card, rows[i].op,
                                 auth_reason_to_string(r), auth_reason_to_string(rows[i].want));
        }
        c.policy = &e;
        assert_int_equal(auth_decide_session(&c, CARD_A, "OP0001"), AUTH_EMERGENCY);
        assert_int_equal(auth_decide_session(&c, NULL, "OP0001"), AUTH_CARD_ERROR);
}

static void test_reason_strings(void **state)
{
        static const char *const want[] = {
                "allow",
                "no-card",
                "unknown-card",
                "card-suspended",
                "card-returned",
                "operator-suspended",
                "operator-retired",
                "wrong-office",
                "cert-untrusted",
                "cert-expired",
                "pin-wrong",
                "pin-blocked",
                "signature-invalid",
                "policy-stale",
                "emergency",
                "card-error",
        };
        assert_int_equal(ELEMENTSOF(want), _AUTH_REASON_MAX);
        for (int r = 0; r < _AUTH_REASON_MAX; r++)
                assert_string_equal(auth_reason_to_string(r), want[r]);
        assert_string_equal(auth_reason_to_string(_AUTH_REASON_MAX), "card-error");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_reason),
                cmocka_unit_test(test_precheck),
                cmocka_unit_test(test_session_against_new_bundle),
                cmocka_unit_test(test_reason_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
