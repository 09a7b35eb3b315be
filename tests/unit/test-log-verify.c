/* Unit tests of the log verifier: the committed vectors verify; each kind of tampering is caught with its
 * reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mamori/fileio.h"
#include "mamori/oplog-verify.h"

#define N_LINES 5

static char *lines[N_LINES];
static size_t lens[N_LINES];
static EVP_PKEY *identity;

static EVP_PKEY *key_from_keys_txt(const char *label)
{
        char *buf = NULL, *p;
        size_t n;
        uint8_t seed[32];
        EVP_PKEY *k = NULL;

        assert_int_equal(read_file_bounded(VECTORS_DIR "/keys.txt", 4096, &buf, &n), 0);
        p = strstr(buf, label);
        assert_non_null(p);
        p = strstr(p, "seed=");
        assert_non_null(p);
        assert_int_equal(hex_decode_exact(p + 5, 64, seed, sizeof(seed)), 0);
        assert_int_equal(ed25519_from_seed(seed, &k), 0);
        free(buf);
        return k;
}

static int setup(void **state)
{
        char *buf = NULL, *p;
        size_t n;

        assert_int_equal(read_file_bounded(VECTORS_DIR "/records.jsonl", 1 << 20, &buf, &n), 0);
        p = buf;
        for (int i = 0; i < N_LINES; i++) {
                char *nl = memchr(p, '\n', n - (size_t)(p - buf));
                assert_non_null(nl);
                lens[i] = (size_t)(nl - p);
                lines[i] = strndup(p, lens[i]);
                p = nl + 1;
        }
        free(buf);
        identity = key_from_keys_txt("identity");
        return 0;
}

static int teardown(void **state)
{
        for (int i = 0; i < N_LINES; i++)
                free(lines[i]);
        EVP_PKEY_free(identity);
        return 0;
}

/* Push lines in the given order; returns the index of the first refused one (-1 = all good). */
static int push_all(const char *const *ls, const size_t *ln, int n, EVP_PKEY *id, char *reason, size_t rn)
{
        LogVerifier *v = NULL;
        int bad = -1;

        assert_int_equal(log_verifier_new(id, &v), 0);
        for (int i = 0; i < n; i++)
                if (log_verifier_push(v, ls[i], ln[i], NULL) < 0) {
                        bad = i;
                        break;
                }
        if (reason)
                snprintf(reason, rn, "%s", log_verifier_reason(v));
        log_verifier_free(v);
        return bad;
}

static void test_vectors_verify(void **state)
{
        LogVerifier *v = NULL;
        uint8_t raw[32];

        assert_int_equal(log_verifier_new(identity, &v), 0);
        for (int i = 0; i < N_LINES; i++)
                assert_int_equal(log_verifier_push(v, lines[i], lens[i], NULL), 0);
        assert_int_equal(log_verifier_last_seq(v), 5);
        assert_int_equal(log_verifier_epochs(v), 2);
        assert_string_equal(log_verifier_log_id(v), "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60");
        assert_int_equal(log_verifier_current_key(v, raw), 0);
        assert_string_equal(log_verifier_reason(v), "");
        log_verifier_free(v);
}

static void test_wrong_identity(void **state)
{
        EVP_PKEY *other = key_from_keys_txt("epoch1");
        char why[256];
        assert_int_equal(push_all((const char *const *)lines, lens, N_LINES, other, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "identity key"));
        EVP_PKEY_free(other);
}

static void test_flipped_byte(void **state)
{
        for (int line = 0; line < N_LINES; line++)
                for (size_t pos = 0; pos < lens[line]; pos += 7) {
                        char *copy[N_LINES];
                        for (int i = 0; i < N_LINES; i++)
                                copy[i] = lines[i];
                        copy[line] = strndup(lines[line], lens[line]);
                        copy[line][pos] ^= 0x01;
                        /* Refused at that line (or, for the first one's sig, there) — never accepted. */
                        assert_int_equal(
                                push_all((const char *const *)copy, lens, N_LINES, identity, NULL, 0), line);
                        free(copy[line]);
                }
}

static void test_removed_and_swapped(void **state)
{
        const char *ls[N_LINES];
        size_t ln[N_LINES];
        char why[256];

        /* seq 3 removed */
        for (int i = 0, j = 0; i < N_LINES; i++)
                if (i != 2) {
                        ls[j] = lines[i];
                        ln[j++] = lens[i];
                }
        assert_int_equal(push_all(ls, ln, N_LINES - 1, identity, why, sizeof(why)), 2);
        assert_non_null(strstr(why, "records missing"));

        /* seq 4 and 5 swapped */
        for (int i = 0; i < N_LINES; i++) {
                ls[i] = lines[i];
                ln[i] = lens[i];
        }
        ls[3] = lines[4], ln[3] = lens[4];
        ls[4] = lines[3], ln[4] = lens[3];
        assert_int_equal(push_all(ls, ln, N_LINES, identity, why, sizeof(why)), 3);
}

static void test_resigned_with_identity(void **state)
{
        Record *r = NULL;
        char *line = NULL;
        size_t len;
        const char *ls[N_LINES];
        size_t ln[N_LINES];
        char why[256];

        /* seq 4 comes after the rotation: a thief holding only the identity key re-signs it. */
        assert_int_equal(record_parse_line(lines[3], lens[3], &r), 0);
        assert_int_equal(record_sign(r, identity, &line, &len), 0);
        for (int i = 0; i < N_LINES; i++) {
                ls[i] = lines[i];
                ln[i] = lens[i];
        }
        ls[3] = line;
        ln[3] = len;
        assert_int_equal(push_all(ls, ln, 4, identity, why, sizeof(why)), 3);
        assert_non_null(strstr(why, "signature"));
        record_free(r);
        free(line);
}

static int collect(const char *line, size_t len, uint64_t offset, void *userdata)
{
        int *n = userdata;
        (*n)++;
        return 0;
}

static void test_segment_reader(void **state)
{
        int fd = memfd_create("seg", MFD_CLOEXEC);
        uint64_t tail = 99;
        int n = 0;
        char *big;

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "a\nbb\ntorn", 9), 9);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(log_segment_read_fd(fd, collect, &n, &tail), 0);
        assert_int_equal(n, 2);
        assert_int_equal(tail, 4);

        /* An over-long line is reported once (truncated), then reading goes on after it. */
        big = malloc(RECORD_LINE_MAX * 3);
        memset(big, 'x', RECORD_LINE_MAX * 3);
        big[RECORD_LINE_MAX * 3 - 1] = '\n';
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(write(fd, big, RECORD_LINE_MAX * 3), RECORD_LINE_MAX * 3);
        assert_int_equal(write(fd, "ok\n", 3), 3);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        n = 0;
        assert_int_equal(log_segment_read_fd(fd, collect, &n, &tail), 0);
        assert_int_equal(n, 2);
        assert_int_equal(tail, 0);
        free(big);
        close(fd);
}

static void test_segment_names(void **state)
{
        char name[LOG_SEGMENT_NAME_MAX];
        uint64_t s = 0;

        log_segment_name(42, name);
        assert_string_equal(name, "seg-00000000000000000042.log");
        assert_true(log_segment_name_parse(name, &s));
        assert_int_equal(s, 42);
        assert_false(log_segment_name_parse("seg-00000000000000000000.log", NULL));
        assert_false(log_segment_name_parse("seg-0000000000000000004x.log", NULL));
        assert_false(log_segment_name_parse("seg-42.log", NULL));
        assert_false(log_segment_name_parse("seg-99999999999999999999.log", NULL));
        assert_false(log_segment_name_parse(".lock", NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vectors_verify),         cmocka_unit_test(test_wrong_identity),
                cmocka_unit_test(test_flipped_byte),           cmocka_unit_test(test_removed_and_swapped),
                cmocka_unit_test(test_resigned_with_identity), cmocka_unit_test(test_segment_reader),
                cmocka_unit_test(test_segment_names),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
