/* The register: the history row hash against an independent vector, and the status-move table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "register-chain.h"
#include "register-rules.h"
#include "store.h"

/* Computed with Python's json.dumps(sort_keys=True, separators=(',', ':'), ensure_ascii=False) +
 * hashlib.sha256, from DESIGN-level words alone. */
static const char vector1[] = "b296afb259db7034a00ceeda00fa71f05be464d0fb1eb78960c9d2732f50f863";
static const char vector2[] = "ae1d354c97a7d356db4c3cc17bc83698b1c5d1015baa7d2e8a26d2c24b5c2161";

static RegisterRow row1(void)
{
        return (RegisterRow){
                .id = 1,
                .ts = INT64_C(1750000000000000),
                .object = "card",
                .object_id = "abc",
                .action = "suspended",
                .detail = "",
                .actor = "alice",
                .reason = "lost on the \xe9\x9b\xbb\xe8\xbb\x8a",
                .prev = REGISTER_PREV_FIRST,
        };
}

static void test_row_hash_vector(void **state)
{
        char h1[SHA256_HEX_MAX], h2[SHA256_HEX_MAX];
        RegisterRow r = row1();

        assert_int_equal(register_row_hash(&r, h1), 0);
        assert_string_equal(h1, vector1);
        r.id = 2;
        r.prev = h1;
        r.action = "active";
        r.reason = "found";
        assert_int_equal(register_row_hash(&r, h2), 0);
        assert_string_equal(h2, vector2);
}

static void test_row_hash_covers_every_field(void **state)
{
        char base[SHA256_HEX_MAX], h[SHA256_HEX_MAX];
        RegisterRow r = row1();

        assert_int_equal(register_row_hash(&r, base), 0);
        for (int field = 0; field < 9; field++) {
                RegisterRow m = row1();
                switch (field) {
                case 0:
                        m.id = 2;
                        break;
                case 1:
                        m.ts++;
                        break;
                case 2:
                        m.object = "operator";
                        break;
                case 3:
                        m.object_id = "abd";
                        break;
                case 4:
                        m.action = "returned";
                        break;
                case 5:
                        m.detail = "x";
                        break;
                case 6:
                        m.actor = "bob";
                        break;
                case 7:
                        m.reason = "lost";
                        break;
                case 8:
                        m.prev = vector1;
                        break;
                }
                assert_int_equal(register_row_hash(&m, h), 0);
                assert_string_not_equal(h, base);
        }
        /* Invalid rows are refused, never hashed. */
        r.id = 0;
        assert_int_equal(register_row_hash(&r, h), -EINVAL);
        r = row1();
        r.actor = NULL;
        assert_int_equal(register_row_hash(&r, h), -EINVAL);
        r = row1();
        r.reason = "\xff";
        assert_true(register_row_hash(&r, h) < 0);
}

static void test_status_moves(void **state)
{
        static const struct {
                const char *object, *from, *to;
                bool allowed;
        } cases[] = {
                {"card", "active", "suspended", true},       {"card", "suspended", "active", true},
                {"card", "active", "returned", true},        {"card", "suspended", "returned", true},
                {"card", "returned", "active", false},       {"card", "returned", "suspended", false},
                {"card", "returned", "returned", false},     {"card", "active", "active", false},
                {"card", "active", "retired", false},        {"operator", "active", "suspended", true},
                {"operator", "suspended", "active", true},   {"operator", "active", "retired", true},
                {"operator", "suspended", "retired", true},  {"operator", "retired", "active", false},
                {"operator", "retired", "suspended", false}, {"operator", "active", "returned", false},
                {"group", "active", "suspended", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *why = register_move_refusal(cases[i].object, cases[i].from, cases[i].to);
                if (cases[i].allowed)
                        assert_null(why);
                else
                        assert_non_null(why);
        }
        assert_non_null(strstr(register_move_refusal("card", "returned", "active"), "final"));
        assert_non_null(strstr(register_move_refusal("operator", "retired", "active"), "final"));
        assert_non_null(register_move_refusal(NULL, "active", "suspended"));
}

/* The SQLite backend writes the chain with the same function: two rows, linked, each verifying. */
static int collect(const RegisterRow *row, void *userdata)
{
        char want[SHA256_HEX_MAX];
        int *n = userdata;
        assert_int_equal(register_row_hash(row, want), 0);
        assert_string_equal(want, row->hash);
        assert_int_equal(row->id, *n + 1);
        (*n)++;
        return 0;
}

static void test_store_chains_rows(void **state)
{
        _cleanup_store_ Store *s = NULL;
        int n = 0;

        assert_int_equal(store_open(":memory:", &s), 0);
        assert_int_equal(store_set_actor(s, "alice"), 0);
        assert_int_equal(store_set_reason(s, "new office"), 0);
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_operator_add(s, 1, "OP1", NULL, "chuo"), 0);
        assert_int_equal(store_operator_set_status(s, 2, "OP1", "suspended", "leave"), 0);
        assert_int_equal(store_commit(s), 0);
        assert_int_equal(store_history_foreach(s, NULL, NULL, collect, &n), 0);
        assert_int_equal(n, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_row_hash_vector),
                cmocka_unit_test(test_row_hash_covers_every_field),
                cmocka_unit_test(test_status_moves),
                cmocka_unit_test(test_store_chains_rows),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
