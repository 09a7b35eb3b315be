/* Unit tests for the strict JSON parser: accepted forms, every rejection class, bounds, builders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/macro.h"

static int parse(const char *s, JsonValue **ret)
{
        return json_parse(s, strlen(s), NULL, 0, ret, NULL);
}

static void test_rejects(void **state)
{
        static const struct {
                const char *in;
                int err;
        } table[] = {
                {"", -EBADMSG},
                {" ", -EBADMSG},
                {"{", -EBADMSG},
                {"{\"a\":1,}", -EBADMSG},
                {"[1,]", -EBADMSG},
                {"[1 2]", -EBADMSG},
                {"{\"a\" 1}", -EBADMSG},
                {"{a:1}", -EBADMSG},
                {"'a'", -EBADMSG},
                {"tru", -EBADMSG},
                {"nul", -EBADMSG},
                {"1.0", -EBADMSG},
                {"1e3", -EBADMSG},
                {"1E3", -EBADMSG},
                {"-", -EBADMSG},
                {"+1", -EBADMSG},
                {"01", -EBADMSG},
                {"-01", -EBADMSG},
                {"-0", -EBADMSG},
                {"9223372036854775808", -ERANGE},
                {"-9223372036854775809", -ERANGE},
                {"99999999999999999999999", -ERANGE},
                {"{\"a\":1,\"a\":2}", -EBADMSG},
                {"{\"a\":1,\"b\":2,\"\\u0061\":3}", -EBADMSG}, /* duplicate after unescaping */
                {"\"\\ud800\"", -EBADMSG},                     /* lone high surrogate */
                {"\"\\udc00\"", -EBADMSG},                     /* lone low surrogate */
                {"\"\\ud800\\u0041\"", -EBADMSG},              /* high + non-low */
                {"\"\\ud83d\"x", -EBADMSG},
                {"\"\\x\"", -EBADMSG},
                {"\"\\u12\"", -EBADMSG},
                {"\"\\u12g4\"", -EBADMSG},
                {"\"a\tb\"", -EBADMSG}, /* raw control character */
                {"\"a\nb\"", -EBADMSG},
                {"\"\xc3\"", -EBADMSG},     /* truncated UTF-8 */
                {"\"\xc0\xaf\"", -EBADMSG}, /* overlong */
                {"\"\xe0\x80\xaf\"", -EBADMSG},
                {"\"\xed\xa0\x80\"", -EBADMSG},     /* UTF-8-encoded surrogate */
                {"\"\xf4\x90\x80\x80\"", -EBADMSG}, /* > U+10FFFF */
                {"\"\xff\"", -EBADMSG},
                {"\"abc", -EBADMSG},
                {"\"abc\\", -EBADMSG},
                {"1 ", -EBADMSG},
                {" 1", -EBADMSG},
                {"1\n", -EBADMSG}, /* newline only with the flag */
                {"{} {}", -EBADMSG},
                {"{\"a\\u0000b\":1}", -EBADMSG}, /* NUL in a key */
                {"[\"a\"]x", -EBADMSG},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                JsonValue *v = NULL;
                int r = parse(table[i].in, &v);
                if (r != table[i].err)
                        print_error("input #%zu '%s': got %d\n", i, table[i].in, r);
                assert_int_equal(r, table[i].err);
                assert_null(v);
        }
}

/* A string's bytes are scanned 8 at a time: a byte that ends, escapes or breaks the string is seen at
 * every place of a word, in strings shorter and longer than one. */
static void test_string_bytes_every_position(void **state)
{
        static const struct {
                const char *at;  /* put at the place */
                int err;         /* 0: accepted */
                const char *dec; /* what it decodes to */
        } cases[] = {
                {"\x01", -EBADMSG, NULL},
                {"\x1f", -EBADMSG, NULL},
                {"\x80", -EBADMSG, NULL},
                {"\xff", -EBADMSG, NULL},
                {"\"", -EBADMSG, NULL},
                {"\\", -EBADMSG, NULL},
                {" ", 0, " "},
                {"\x7f", 0, "\x7f"},
                {"\\n", 0, "\n"},
                {"\\\"", 0, "\""},
                {"\xc3\xa9", 0, "\xc3\xa9"},
                {"\\u0041", 0, "A"},
        };

        for (size_t len = 1; len <= 24; len++)
                for (size_t pos = 0; pos < len; pos++)
                        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                                char in[64], want[64];
                                JsonValue *v = NULL;
                                const char *got;
                                size_t got_len;

                                memset(want, 'x', len);
                                memcpy(want + pos, cases[i].dec ? cases[i].dec : "",
                                       cases[i].dec ? strlen(cases[i].dec) : 0);
                                want[pos + (cases[i].dec ? strlen(cases[i].dec) : 0)] = '\0';
                                snprintf(in, sizeof(in), "\"%.*s%s%.*s\"", (int)pos,
                                         "xxxxxxxxxxxxxxxxxxxxxxxx", cases[i].at, (int)(len - pos - 1),
                                         "xxxxxxxxxxxxxxxxxxxxxxxx");
                                if (cases[i].dec) {
                                        size_t head = strlen(want);
                                        memset(want + head, 'x', len - pos - 1);
                                        want[head + len - pos - 1] = '\0';
                                }
                                int r = parse(in, &v);
                                if (r != cases[i].err)
                                        print_error("'%s': %d\n", in, r);
                                assert_int_equal(r, cases[i].err);
                                if (r == 0) {
                                        assert_int_equal(json_get_string(v, &got, &got_len), 0);
                                        assert_string_equal(got, want);
                                }
                                json_value_free(v);
                        }
}

/* A parsed tree keeps strings and member keys in its values' nodes: taking values and strings out of it,
 * moving them into built trees and freeing all in any order leaves nothing behind and nothing freed
 * twice (ASan checks both). */
static void test_parsed_values_taken_and_moved(void **state)
{
        static const char in[] =
                "{\"a\":\"one\",\"b\":{\"c\":[1,\"two\"]},\"d\\u0041\":true,\"e\":\"x\\ny\"}";
        JsonValue *v = NULL, *b = NULL, *built = NULL, *e = NULL;
        const JsonValue *got;
        bool t = false;
        char *s = NULL;

        assert_int_equal(parse(in, &v), 0);
        assert_string_equal(v->object.members[2].key, "dA");
        assert_int_equal(json_string_take((JsonValue *)json_object_get(v, "a"), &s), 0);
        assert_string_equal(s, "one");
        free(s);
        assert_int_equal(json_object_take(v, "b", &b), 0); /* its key's bytes go with it */
        assert_int_equal(json_new_object(&built), 0);
        assert_int_equal(json_object_set(built, "moved", b), 0);
        /* a member's value taken straight out of the array, as a caller copying members does */
        assert_string_equal(v->object.members[1].key, "dA");
        e = TAKE_PTR(v->object.members[1].value);
        assert_int_equal(json_object_set(built, v->object.members[1].key, e), 0);
        json_value_free(v);
        assert_int_equal(json_object_get_boolean(built, "dA", &t), 0);
        assert_true(t);
        assert_int_equal(json_object_get_array(json_object_get(built, "moved"), "c", &got), 0);
        assert_int_equal(json_array_size(got), 2);
        assert_non_null(json_object_get(built, "moved"));
        json_value_free(built);
}

static void test_accepts(void **state)
{
        _cleanup_json_ JsonValue *v = NULL;
        const char *in = "{\"s\":\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\xe2\x82\xac\","
                         "\"i\":-9223372036854775808,\"j\":9223372036854775807,\"z\":0,"
                         "\"t\":true,\"f\":false,\"n\":null,\"a\":[ 1 , [ ] , { } ],"
                         "\"nul\":\"x\\u0000y\"}";
        const char *s;
        size_t len;
        int64_t i;
        bool b;

        assert_int_equal(parse(in, &v), 0);
        assert_int_equal(v->type, JSON_OBJECT);
        assert_int_equal(json_object_size(v), 9);
        /* members keep input order */
        assert_string_equal(v->object.members[0].key, "s");
        assert_string_equal(v->object.members[8].key, "nul");

        assert_int_equal(json_object_get_string(v, "s", &s), 0);
        assert_string_equal(s, "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac");
        assert_int_equal(json_object_get_integer(v, "i", &i), 0);
        assert_true(i == INT64_MIN);
        assert_int_equal(json_object_get_integer(v, "j", &i), 0);
        assert_true(i == INT64_MAX);
        assert_int_equal(json_object_get_boolean(v, "t", &b), 0);
        assert_true(b);
        assert_int_equal(json_object_get_boolean(v, "f", &b), 0);
        assert_false(b);
        assert_true(json_is_null(json_object_get(v, "n")));
        assert_int_equal(json_array_size(json_object_get(v, "a")), 3);

        /* embedded NUL: not handed out as a C string, but the bytes are kept */
        const JsonValue *nul = json_object_get(v, "nul");
        assert_int_equal(json_get_string(nul, &s, &len), -EBADMSG);
        assert_int_equal(nul->string.len, 3);
        assert_memory_equal(nul->string.data, "x\0y", 3);

        /* wrong types and missing keys fail cleanly and leave the out-param alone */
        i = 77;
        assert_int_equal(json_object_get_integer(v, "s", &i), -EBADMSG);
        assert_int_equal(i, 77);
        assert_int_equal(json_object_get_string(v, "i", &s), -EBADMSG);
        assert_int_equal(json_object_get_string(v, "missing", &s), -ENOENT);
        assert_int_equal(json_object_get_integer(json_object_get(v, "a"), "x", &i), -EBADMSG);
        assert_null(json_object_get(json_object_get(v, "a"), "x"));
        assert_null(json_array_get(json_object_get(v, "a"), 3));
}

static void test_final_newline(void **state)
{
        JsonValue *v = NULL;

        assert_int_equal(json_parse("{}\n", 3, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL), 0);
        v = json_value_free(v);
        assert_int_equal(json_parse("{}\n\n", 4, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL), -EBADMSG);
        assert_int_equal(json_parse("{} \n", 4, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL), -EBADMSG);
        assert_int_equal(json_parse("{}\r\n", 4, NULL, JSON_PARSE_ALLOW_FINAL_NEWLINE, &v, NULL), -EBADMSG);
        assert_null(v);
}

static void test_bounds(void **state)
{
        JsonLimits lim = {.max_size = 16, .max_depth = 3, .max_members = 2, .max_string = 4};
        JsonValue *v = NULL;
        size_t off = 0;

        assert_int_equal(json_parse("[[[1]]]", 7, &lim, 0, &v, NULL), 0);
        v = json_value_free(v);
        assert_int_equal(json_parse("[[[[1]]]]", 9, &lim, 0, &v, &off), -E2BIG);
        assert_int_equal(json_parse("{\"a\":{\"b\":[{}]}}", 16, &lim, 0, &v, NULL), -E2BIG);
        assert_int_equal(json_parse("[1,2]", 5, &lim, 0, &v, NULL), 0);
        v = json_value_free(v);
        assert_int_equal(json_parse("[1,2,3]", 7, &lim, 0, &v, NULL), -E2BIG);
        assert_int_equal(json_parse("{\"a\":1,\"b\":2,\"c\":3}", 19, &lim, 0, &v, NULL), -E2BIG);
        assert_int_equal(json_parse("\"abcd\"", 6, &lim, 0, &v, NULL), 0);
        v = json_value_free(v);
        assert_int_equal(json_parse("\"abcde\"", 7, &lim, 0, &v, NULL), -E2BIG);
        assert_int_equal(json_parse("\"\\u00e9\\u00e9\\u00e9\"", 20, &lim, 0, &v, NULL), -E2BIG);
        assert_int_equal(json_parse("[1,1,1,1,1,1,1,11]", 18, &lim, 0, &v, &off), -E2BIG);
        assert_int_equal(off, 16);

        /* default depth 32: 32 nested arrays pass, 33 do not */
        char deep[80];
        memset(deep, '[', 32);
        memset(deep + 32, ']', 32);
        assert_int_equal(json_parse(deep, 64, NULL, 0, &v, NULL), 0);
        v = json_value_free(v);
        memset(deep, '[', 33);
        memset(deep + 33, ']', 33);
        assert_int_equal(json_parse(deep, 66, NULL, 0, &v, NULL), -E2BIG);
        assert_null(v);
}

static void test_error_offset(void **state)
{
        JsonValue *v = NULL;
        size_t off = 999;

        assert_int_equal(json_parse("{\"a\":1.5}", 9, NULL, 0, &v, &off), -EBADMSG);
        assert_int_equal(off, 6);
        assert_int_equal(json_parse("[true,fals]", 11, NULL, 0, &v, &off), -EBADMSG);
        assert_int_equal(off, 6);
        /* found by fuzz-json: a string ending in a backslash must not point past the input */
        assert_int_equal(json_parse("{\"\":\"\\", 6, NULL, 0, &v, &off), -EBADMSG);
        assert_int_equal(off, 6);
}

static void test_many_members_duplicates(void **state)
{
        /* Above the small-object threshold the duplicate check sorts: make sure it still catches. */
        char buf[2048];
        size_t n = 0;
        JsonValue *v = NULL;

        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{");
        for (int i = 0; i < 100; i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "}");
        assert_int_equal(json_parse(buf, n, NULL, 0, &v, NULL), 0);
        assert_int_equal(json_object_size(v), 100);
        v = json_value_free(v);

        n--; /* add a duplicate of k57 at the end */
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"k57\":1}");
        assert_int_equal(json_parse(buf, n, NULL, 0, &v, NULL), -EBADMSG);
}

/* The small-file reader both codecs (enrolment, quarantine info) use: only known keys, one object. */
static void test_flat_object(void **state)
{
        static const char *const keys[] = {"v", "name"};
        static const char ok[] = "{\"v\":1,\"name\":\"abc\"}\n";
        JsonValue *o = NULL;
        char buf[4];

        assert_int_equal(json_parse_flat_object(ok, strlen(ok), NULL, keys, 2, &o), 0);
        assert_int_equal(json_object_copy_string(o, "name", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "abc");
        /* No room for the NUL: refused. */
        assert_int_equal(json_object_copy_string(o, "name", buf, 3), -EBADMSG);
        assert_int_equal(json_object_copy_string(o, "v", buf, sizeof(buf)), -EBADMSG);
        assert_int_equal(json_object_copy_string(o, "missing", buf, sizeof(buf)), -EBADMSG);
        json_value_free(o);

        static const char *const bad[] = {"{\"v\":1,\"other\":2}", "[1]", "{\"v\":1",
                                          "{\"name\":\"a\\u0000b\"}"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                o = NULL;
                int r = json_parse_flat_object(bad[i], strlen(bad[i]), NULL, keys, 2, &o);
                if (r == 0) { /* the NUL case parses; copying it must refuse */
                        assert_int_equal(json_object_copy_string(o, "name", buf, sizeof(buf)), -EBADMSG);
                        json_value_free(o);
                } else
                        assert_int_equal(r, -EBADMSG);
        }
}

static void test_builders(void **state)
{
        _cleanup_json_ JsonValue *o = NULL, *copy = NULL, *parsed = NULL;
        JsonValue *a = NULL, *s = NULL;
        int64_t i;

        assert_int_equal(json_new_object(&o), 0);
        assert_int_equal(json_object_set_string(o, "name", "mamori"), 0);
        assert_int_equal(json_object_set_integer(o, "n", -5), 0);
        assert_int_equal(json_object_set_boolean(o, "b", true), 0);
        assert_int_equal(json_object_set_null(o, "z"), 0);
        assert_int_equal(json_new_array(&a), 0);
        assert_int_equal(json_new_integer(1, &s), 0);
        assert_int_equal(json_array_append(a, s), 0);
        assert_int_equal(json_object_set(o, "a", a), 0);
        assert_int_equal(json_object_set_integer(o, "n", 1), -EEXIST);
        assert_int_equal(json_object_set_string(o, "bad", "\xff"), -EINVAL);
        assert_int_equal(json_object_size(o), 5);
        assert_int_equal(json_object_get_integer(o, "n", &i), 0);
        assert_int_equal(i, -5);

        assert_int_equal(json_value_copy(o, &copy), 0);
        assert_true(json_value_equal(o, copy));
        assert_int_equal(json_object_remove(copy, "z"), 0);
        assert_int_equal(json_object_remove(copy, "z"), -ENOENT);
        assert_false(json_value_equal(o, copy));

        assert_int_equal(parse("{\"z\":null,\"a\":[1],\"b\":true,\"n\":-5,\"name\":\"mamori\"}", &parsed),
                         0);
        assert_true(json_value_equal(o, parsed));
}

static void test_canonical(void **state)
{
        static const char *const good[] = {
                "{}",
                "[]",
                "0",
                "-1",
                "\"a\"",
                "{\"a\":1,\"b\":[true,false,null]}",
                "\"\\u0000\\u001f\\b\\t\\n\\f\\r\\\"\\\\/\u00e9\"", /* JCS's own escapes, raw / and é */
                "{\"\u20ac\":1,\"\xf0\x9f\x98\x80\":2}", /* U+20AC before U+1F600 in UTF-16 order */
                "9007199254740991",
        };
        static const char *const bad[] = {
                " {}",
                "{} ",
                "{\"a\": 1}",
                "[1, 2]",
                "{\"b\":1,\"a\":2}",
                "{\"a\":1,\"a\":1}",
                "\"\\/\"",
                "\"\\u0041\"",
                "\"\\u001F\"",
                "\"\\u000a\"",
                "\"\\u00e9\"",
                "{\"\xf0\x9f\x98\x80\":2,\"\u20ac\":1}", /* code point order, not UTF-16 order */
                "9007199254740992",
                "-9007199254740992",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_json_ JsonValue *v = NULL;
                _cleanup_free_ char *out = NULL;
                size_t len;
                assert_int_equal(json_parse(good[i], strlen(good[i]), NULL, JSON_PARSE_CANONICAL, &v, NULL),
                                 0);
                /* what the mode accepts is exactly what JCS writes */
                assert_int_equal(jcs_serialize(v, NULL, &out, &len), 0);
                assert_int_equal(len, strlen(good[i]));
                assert_memory_equal(out, good[i], len);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_json_ JsonValue *v = NULL;
                assert_true(json_parse(bad[i], strlen(bad[i]), NULL, JSON_PARSE_CANONICAL, &v, NULL) < 0);
                assert_null(v);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_accepts),
                cmocka_unit_test(test_string_bytes_every_position),
                cmocka_unit_test(test_parsed_values_taken_and_moved),
                cmocka_unit_test(test_final_newline),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_error_offset),
                cmocka_unit_test(test_many_members_duplicates),
                cmocka_unit_test(test_builders),
                cmocka_unit_test(test_flat_object),
                cmocka_unit_test(test_canonical),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
