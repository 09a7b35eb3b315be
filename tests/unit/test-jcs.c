/* Unit tests for the RFC 8785 serialiser: the RFC's own examples (integer-free ones) and hand-checked cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mamori/jcs.h"
#include "mamori/json.h"

static void check(const char *in, const char *expected)
{
        _cleanup_json_ JsonValue *v = NULL;
        _cleanup_free_ char *out = NULL;
        size_t len;

        assert_int_equal(json_parse(in, strlen(in), NULL, 0, &v, NULL), 0);
        assert_int_equal(jcs_serialize(v, NULL, &out, &len), 0);
        assert_int_equal(len, strlen(expected));
        assert_string_equal(out, expected);
}

/* RFC 8785 §3.2.3: the sorting example (all strings). */
static void test_rfc_sorting(void **state)
{
        check("{\n"
              "  \"\\u20ac\": \"Euro Sign\",\n"
              "  \"\\r\": \"Carriage Return\",\n"
              "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
              "  \"1\": \"One\",\n"
              "  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n"
              "  \"\\u0080\": \"Control\",\n"
              "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n"
              "}",
              "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
              "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
              "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
              "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* RFC 8785 §3.2.2: the serialisation example without its "numbers" member (floats). */
static void test_rfc_strings_literals(void **state)
{
        check("{\n"
              "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
              "  \"literals\": [null, true, false]\n"
              "}",
              "{\"literals\":[null,true,false],\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

static void test_escapes(void **state)
{
        /* Every control character: the five short forms, the rest \u00xx lowercase; DEL and
         * U+2028/U+2029 stay literal as in JSON.stringify. */
        check("\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u000e\\u001f\\u001F \\u007f\\u2028\\u2029\"",
              "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u000e\\u001f\\u001f \x7f\xe2\x80\xa8\xe2\x80\xa9\"");
        check("\"\\/\\u00e9\\u3042\"", "\"/\xc3\xa9\xe3\x81\x82\"");
        check("\"\"", "\"\"");
}

static void test_nonbmp_key_order(void **state)
{
        /* UTF-8 (code point) order would put U+FF61 before U+1F600; UTF-16 order puts the surrogate
         * pair D83D DE00 first, because 0xD83D < 0xFF61. U+E000 and U+FFFF sit after surrogates too. */
        check("{\"\\uff61\":1,\"\\ud83d\\ude00\":2,\"\\ue000\":3,\"\\ud7ff\":4,\"\\uffff\":5,"
              "\"\\ud800\\udc00\":6}",
              "{\"\xed\x9f\xbf\":4,\"\xf0\x90\x80\x80\":6,\"\xf0\x9f\x98\x80\":2,\"\xee\x80\x80\":3,"
              "\"\xef\xbd\xa1\":1,\"\xef\xbf\xbf\":5}");
        assert_true(jcs_key_compare("\xf0\x9f\x98\x80", 4, "\xef\xbd\xa1", 3) < 0);
        assert_true(jcs_key_compare("a", 1, "ab", 2) < 0);
        assert_true(jcs_key_compare("ab", 2, "a", 1) > 0);
        assert_int_equal(jcs_key_compare("", 0, "", 0), 0);
        /* prefixes and nesting: only the top-level order changes, arrays keep their order */
        check("{\"b\":[3,1,2],\"a\":{\"y\":null,\"x\":{}},\"aa\":[],\"A\":0}",
              "{\"A\":0,\"a\":{\"x\":{},\"y\":null},\"aa\":[],\"b\":[3,1,2]}");
}

static void test_integers(void **state)
{
        _cleanup_json_ JsonValue *v = NULL;
        _cleanup_free_ char *out = NULL;

        check("[0,-1,1,1763880000000000,9007199254740991,-9007199254740991]",
              "[0,-1,1,1763880000000000,9007199254740991,-9007199254740991]");

        /* beyond 2^53-1 an ECMAScript verifier cannot reproduce the digits: refuse */
        assert_int_equal(json_new_integer(INT64_C(9007199254740992), &v), 0);
        assert_int_equal(jcs_serialize(v, NULL, &out, NULL), -ERANGE);
        assert_null(out);
        v = json_value_free(v);
        assert_int_equal(json_new_integer(INT64_MIN, &v), 0);
        assert_int_equal(jcs_serialize(v, NULL, &out, NULL), -ERANGE);
}

static void test_skip_key(void **state)
{
        _cleanup_json_ JsonValue *v = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;
        const char *in = "{\"z\":{\"sig\":1},\"sig\":\"abc\",\"a\":1}";

        assert_int_equal(json_parse(in, strlen(in), NULL, 0, &v, NULL), 0);
        assert_int_equal(jcs_serialize(v, "sig", &a, NULL), 0);
        /* only the top-level member goes; a nested "sig" is data */
        assert_string_equal(a, "{\"a\":1,\"z\":{\"sig\":1}}");
        assert_int_equal(jcs_serialize(v, "nope", &b, NULL), 0);
        assert_string_equal(b, "{\"a\":1,\"sig\":\"abc\",\"z\":{\"sig\":1}}");
}

static void test_roundtrip_idempotent(void **state)
{
        /* JCS output parsed again must serialise to the same bytes. */
        const char *in = "{\"k\":[\"\\u0007\",{\"\\u00e9\":\"\\\"\"},-42,true],\"e\":\"\\ud83d\\ude00\"}";
        _cleanup_json_ JsonValue *v = NULL, *w = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;
        size_t la, lb;

        assert_int_equal(json_parse(in, strlen(in), NULL, 0, &v, NULL), 0);
        assert_int_equal(jcs_serialize(v, NULL, &a, &la), 0);
        assert_int_equal(json_parse(a, la, NULL, 0, &w, NULL), 0);
        assert_int_equal(jcs_serialize(w, NULL, &b, &lb), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        assert_true(json_value_equal(v, w));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc_sorting),
                cmocka_unit_test(test_rfc_strings_literals),
                cmocka_unit_test(test_escapes),
                cmocka_unit_test(test_nonbmp_key_order),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_skip_key),
                cmocka_unit_test(test_roundtrip_idempotent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
