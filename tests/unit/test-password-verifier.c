/* Unit tests of the scrypt password verifiers: known answers from Python's hashlib.scrypt, tampered
 * parameters, the parser's bounds and errors, and the round trip of a fresh verifier. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamori/password-verifier.h"

/* Made with /usr/bin/python3: hashlib.scrypt(pw, salt=…, n=2**ln, r=…, p=…, dklen=…), base64. */
static const struct {
        const char *password;
        const char *verifier;
} known[] = {
        {"password",
         "$mamori-scrypt$v=1$ln=10,r=8,p=16$TmFDbE5hQ2xOYUNsTmFDbA==$ruflYSr7JKwcyP4taFgPBJI7nqmwRV"
         "vjonthQb2MSCL0ow/fg2vyqDTmljA7ecL+mO3o4sE2TAlRA7f3Ju4phw=="},
        {"correct horse battery staple", "$mamori-scrypt$v=1$ln=15,r=8,p=1$AAECAwQFBgcICQoLDA0ODw==$"
                                         "eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg="},
        {"\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89", /* パスワード in UTF-8 */
         "$mamori-scrypt$v=1$ln=12,r=4,p=2$bWFtb3JpLXNhbHQtMDAwMQ==$"
         "MW9lkEkLDiDkTG7wibkEnh1H0N0clLRcic71SgrI53qU"
         "vaUDiESWkwQLAcEdJb67"},
};

static int check(const char *verifier, const char *password)
{
        return password_verifier_check(verifier, strlen(verifier), password);
}

static void test_known_answers(void **state)
{
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
                assert_int_equal(check(known[i].verifier, known[i].password), 0);
                assert_int_equal(check(known[i].verifier, "Password"), -EACCES);
        }
        /* One byte more or less is another password. */
        assert_int_equal(check(known[1].verifier, "correct horse battery staple "), -EACCES);
        assert_int_equal(check(known[1].verifier, "correct horse battery stapl"), -EACCES);
}

/* verifier with the first occurrence of from replaced by to. */
static char *edit(const char *verifier, const char *from, const char *to)
{
        const char *at = strstr(verifier, from);
        char *out;

        assert_non_null(at);
        assert_true(asprintf(&out, "%.*s%s%s", (int)(at - verifier), verifier, to, at + strlen(from)) > 0);
        return out;
}

static void test_tampered_parameters_do_not_verify(void **state)
{
        const char *v = known[0].verifier, *pw = known[0].password;
        const struct {
                const char *from, *to;
        } edits[] = {
                {"ln=10", "ln=11"},       /* N doubled */
                {"r=8", "r=7"},           /* block size */
                {"p=16", "p=15"},         /* parallelism */
                {"TmFDbE5h", "TmFDbE5i"}, /* salt */
                {"ruflYSr7", "ruflYSr8"}, /* hash */
        };

        for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
                char *t = edit(v, edits[i].from, edits[i].to);
                assert_int_equal(check(t, pw), -EACCES);
                free(t);
        }
        /* A shorter hash (its first 32 bytes) is a different verifier, not a prefix match. */
        char *t = edit(
                known[1].verifier, "eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg=",
                "eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg=eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg=");
        assert_int_equal(check(t, known[1].password), -EBADMSG); /* "=" inside base64 */
        free(t);
}

static void test_parser_bounds_and_errors(void **state)
{
        static const char *const salt = "AAECAwQFBgcICQoLDA0ODw==";
        static const char *const hash = "eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg=";
        const struct {
                const char *params; /* between the magic and the salt */
                const char *salt, *hash, *tail;
                int error;
        } cases[] = {
                {"ln=9,r=8,p=1", NULL, NULL, "", -ERANGE},
                {"ln=21,r=8,p=1", NULL, NULL, "", -ERANGE},
                {"ln=10,r=0,p=1", NULL, NULL, "", -EBADMSG}, /* 0 is a leading zero of nothing */
                {"ln=10,r=33,p=1", NULL, NULL, "", -ERANGE},
                {"ln=10,r=8,p=17", NULL, NULL, "", -ERANGE},
                {"ln=20,r=32,p=1", NULL, NULL, "", -ERANGE}, /* 4 GiB of memory */
                {"ln=015,r=8,p=1", NULL, NULL, "", -EBADMSG},
                {"ln=+15,r=8,p=1", NULL, NULL, "", -EBADMSG},
                {"ln=15,r=8", NULL, NULL, "", -EBADMSG},
                {"r=8,ln=15,p=1", NULL, NULL, "", -EBADMSG},
                {"ln=15,r=8,p=1,x=1", NULL, NULL, "", -EBADMSG},
                {"ln=99999999999999999999,r=8,p=1", NULL, NULL, "", -ERANGE},
                {"ln=15,r=8,p=1", "AAECAwQFBgcICQoL", NULL, "", -ERANGE},         /* 12-byte salt */
                {"ln=15,r=8,p=1", "AAECAwQFBgcICQoLDA0ODw", NULL, "", -EBADMSG},  /* no padding */
                {"ln=15,r=8,p=1", NULL, "AAECAwQFBgcICQoLDA0ODw==", "", -ERANGE}, /* 16-byte hash */
                {"ln=15,r=8,p=1", NULL, NULL, "$", -EBADMSG},
                {"ln=15,r=8,p=1", NULL, NULL, "\n", -EBADMSG},
                {"ln=15,r=8,p=1", NULL, NULL, " ", -EBADMSG},
                {"ln=15,r=8,p=1", "", NULL, "", -EBADMSG},
        };
        struct password_verifier v;
        const char *why;
        char line[512];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                snprintf(line, sizeof(line), "%s%s$%s$%s%s", PASSWORD_VERIFIER_MAGIC, cases[i].params,
                         cases[i].salt ? cases[i].salt : salt, cases[i].hash ? cases[i].hash : hash,
                         cases[i].tail);
                why = NULL;
                v.params.ln = 77; /* untouched on failure */
                assert_int_equal(password_verifier_parse(line, strlen(line), &v, &why), cases[i].error);
                assert_non_null(why);
                assert_int_equal(v.params.ln, 77);
                /* And check() refuses it before deriving anything. */
                assert_int_equal(check(line, "x"), cases[i].error);
        }
        /* Another scheme or version, and a line over the bound. */
        assert_int_equal(password_verifier_parse("$scrypt$ln=15,r=8,p=1$a$b", 26, &v, &why), -EBADMSG);
        assert_int_equal(password_verifier_parse("$mamori-scrypt$v=2$ln=15,r=8,p=1$", 33, &v, &why),
                         -EBADMSG);
        memset(line, 'A', sizeof(line));
        memcpy(line, PASSWORD_VERIFIER_MAGIC, strlen(PASSWORD_VERIFIER_MAGIC));
        assert_int_equal(password_verifier_parse(line, 257, &v, &why), -E2BIG);
        assert_string_equal(why, "verifier longer than 256 bytes");
        /* Only len bytes are read: the same line cut short is malformed, not read past. */
        assert_int_equal(password_verifier_parse(known[1].verifier, strlen(known[1].verifier) - 1, &v, &why),
                         -EBADMSG);
        assert_int_equal(password_verifier_parse(known[1].verifier, strlen(known[1].verifier), &v, &why), 0);
        assert_int_equal(v.params.ln, 15);
        assert_int_equal(v.params.r, 8);
        assert_int_equal(v.params.p, 1);
        assert_int_equal(v.params.salt_len, 16);
        assert_int_equal(v.params.hash_len, 32);
}

static void test_password_bounds(void **state)
{
        char *big = malloc(PASSWORD_MAX + 2);

        assert_non_null(big);
        assert_int_equal(check(known[1].verifier, ""), -EINVAL);
        memset(big, 'a', PASSWORD_MAX + 1);
        big[PASSWORD_MAX + 1] = '\0';
        assert_int_equal(check(known[1].verifier, big), -EINVAL);
        char *v = NULL;
        assert_int_equal(password_verifier_make(big, NULL, &v), -EINVAL);
        assert_null(v);
        free(big);
}

static void test_make_round_trip(void **state)
{
        struct password_params fast = password_params_default;
        char *a = NULL, *b = NULL, *again = NULL;
        struct password_verifier v;

        fast.ln = 10;
        assert_int_equal(password_verifier_make("s3cret-pass", &fast, &a), 0);
        assert_int_equal(password_verifier_make("s3cret-pass", &fast, &b), 0);
        assert_string_not_equal(a, b); /* fresh salt each time */
        assert_int_equal(check(a, "s3cret-pass"), 0);
        assert_int_equal(check(b, "s3cret-pass"), 0);
        assert_int_equal(check(a, "s3cret-pasS"), -EACCES);
        assert_int_equal(password_verifier_parse(a, strlen(a), &v, NULL), 0);
        assert_int_equal(password_verifier_format(&v, &again), 0);
        assert_string_equal(a, again);
        assert_true(strlen(a) <= PASSWORD_VERIFIER_MAX);
        free(a);
        free(b);
        free(again);

        /* The default parameters make what the known answer above uses. */
        assert_int_equal(password_verifier_make("x", NULL, &a), 0);
        assert_true(strncmp(a, "$mamori-scrypt$v=1$ln=15,r=8,p=1$", 33) == 0);
        assert_int_equal(check(a, "x"), 0);
        free(a);

        /* Parameters out of bounds are refused before any work. */
        fast.ln = 21;
        assert_int_equal(password_verifier_make("x", &fast, &a), -ERANGE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_answers),
                cmocka_unit_test(test_tampered_parameters_do_not_verify),
                cmocka_unit_test(test_parser_bounds_and_errors),
                cmocka_unit_test(test_password_bounds),
                cmocka_unit_test(test_make_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
