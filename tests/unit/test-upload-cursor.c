/* Unit tests of the upload cursor module: strict parse, canonical format, load of hostile files,
 * durable save. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/macro.h"
#include "mamori/upload-cursor.h"

#define LOG_A "0123456789abcdef0123456789abcdef"
#define LOG_B "fedcba9876543210fedcba9876543210"

struct fixture {
        char dir[64];
        char path[128];
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/mamori-cursor-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/cursor", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", f->dir) > 0);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static void write_bytes(const char *path, const void *data, size_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t)size);
        assert_int_equal(close(fd), 0);
}

static void write_str(const char *path, const char *s)
{
        write_bytes(path, s, strlen(s));
}

/* A valid cursor of exactly n bytes: whitespace between its members. */
static char *padded_cursor(size_t n)
{
        static const char head[] = "{\"log\":\"" LOG_A "\",", tail[] = "\"acked\":5}";
        char *p = malloc(n);

        assert_non_null(p);
        assert_true(n >= sizeof(head) + sizeof(tail));
        memset(p, ' ', n);
        memcpy(p, head, strlen(head));
        memcpy(p + n - strlen(tail), tail, strlen(tail));
        return p;
}

static void test_parse_table(void **state)
{
        static const struct {
                const char *in;
                int ret;
                uint64_t acked;
        } cases[] = {
                /* what the uploader writes, and what a person (or Python's json.dumps) writes */
                {"{\"log\":\"" LOG_A "\",\"acked\":0}\n", 0, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":42}", 0, 42},
                {"{\"acked\": 7, \"log\": \"" LOG_A "\"}\n", 0, 7},
                {"{\r\n\t\"log\" : \"" LOG_A "\" , \"acked\" : 9007199254740991 }\n", 0, 9007199254740991},
                {" {\"log\":\"" LOG_A "\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1} ", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1}\r\n", -EBADMSG, 0},
                /* junk */
                {"", -EBADMSG, 0},
                {"\n", -EBADMSG, 0},
                {"42\n", -EBADMSG, 0},
                {"null", -EBADMSG, 0},
                {"[\"" LOG_A "\",1]", -EBADMSG, 0},
                {"{}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1}x", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1}\n\n", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1}{\"log\":\"" LOG_A "\",\"acked\":2}", -EBADMSG, 0},
                /* overflow and out of range */
                {"{\"log\":\"" LOG_A "\",\"acked\":9007199254740992}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":18446744073709551615}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":99999999999999999999999999}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":-1}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":-0}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1.0}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1e3}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":01}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":\"1\"}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":true}", -EBADMSG, 0},
                /* the log id: 32 lowercase hex, nothing else */
                {"{\"log\":\"0123456789ABCDEF0123456789ABCDEF\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"0123456789abcdef0123456789abcde\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"0123456789abcdef0123456789abcdef0\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"0123456789abcdef0123456789abcdeg\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"0123456789abcdef0123456789abcde\\u0000\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"\",\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":1,\"acked\":1}", -EBADMSG, 0},
                /* exactly these two keys, once each */
                {"{\"log\":\"" LOG_A "\"}", -EBADMSG, 0},
                {"{\"acked\":1}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":1,\"x\":0}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"ack\":1}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"log\":\"" LOG_B "\"}", -EBADMSG, 0},
                {"{\"log\":\"" LOG_A "\",\"acked\":{\"n\":1}}", -EBADMSG, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                UploadCursor c = {.log = "untouched", .acked = 4242};
                int r = upload_cursor_parse(cases[i].in, strlen(cases[i].in), &c);

                if (r != cases[i].ret)
                        fail_msg("case %zu (%s): %d, expected %d", i, cases[i].in, r, cases[i].ret);
                if (r == 0) {
                        assert_string_equal(c.log, LOG_A);
                        assert_int_equal(c.acked, cases[i].acked);
                } else {
                        /* ret_* untouched on failure */
                        assert_string_equal(c.log, "untouched");
                        assert_int_equal(c.acked, 4242);
                }
        }
}

static void test_parse_hostile_bytes(void **state)
{
        static const char nul[] = "{\"log\":\"" LOG_A "\",\"acked\":1}\0";
        static const char bad_utf8[] = "{\"log\":\"" LOG_A "\",\"acked\":1,\"\xff\":0}";
        _cleanup_free_ char *big = NULL;
        UploadCursor c;
        size_t n;

        /* a NUL after the object, invalid UTF-8 */
        assert_int_equal(upload_cursor_parse(nul, sizeof(nul) - 1, &c), -EBADMSG);
        assert_int_equal(upload_cursor_parse(bad_utf8, strlen(bad_utf8), &c), -EBADMSG);
        /* a valid cursor padded past the size bound with whitespace inside */
        n = UPLOAD_CURSOR_SIZE_MAX + 1;
        big = padded_cursor(n);
        assert_int_equal(upload_cursor_parse(big, n, &c), -EBADMSG);
        free(big);
        big = padded_cursor(n - 1);
        assert_int_equal(upload_cursor_parse(big, n - 1, &c), 0);
        assert_int_equal(c.acked, 5);
        /* deep nesting is refused without recursion trouble */
        memset(big, '[', n - 1);
        assert_int_equal(upload_cursor_parse(big, n - 1, &c), -EBADMSG);
        assert_int_equal(upload_cursor_parse(NULL, 0, &c), -EINVAL);
}

static void test_format_round_trip(void **state)
{
        char line[UPLOAD_CURSOR_LINE_MAX];
        UploadCursor c = {.log = LOG_B, .acked = 9007199254740991}, back;
        UploadCursor bad_id = {.log = "0123456789ABCDEF0123456789ABCDEF", .acked = 1};
        UploadCursor too_far = {.log = LOG_A, .acked = UINT64_C(9007199254740992)};
        int n;

        n = upload_cursor_format(&c, line);
        assert_int_equal(n, (int)strlen(line));
        assert_string_equal(line, "{\"log\":\"" LOG_B "\",\"acked\":9007199254740991}\n");
        assert_int_equal(upload_cursor_parse(line, (size_t)n, &back), 0);
        assert_string_equal(back.log, c.log);
        assert_int_equal(back.acked, c.acked);

        assert_int_equal(upload_cursor_format(&bad_id, line), -EINVAL);
        assert_int_equal(upload_cursor_format(&too_far, line), -EINVAL);
        memset(bad_id.log, 'a', sizeof(bad_id.log)); /* not NUL-terminated */
        assert_int_equal(upload_cursor_format(&bad_id, line), -EINVAL);
}

static void test_load_missing(void **state)
{
        struct fixture *f = *state;
        UploadCursor c;
        uint64_t acked = 4242;

        assert_int_equal(upload_cursor_load(f->path, &c), -ENOENT);
        /* missing = nothing acknowledged */
        assert_int_equal(upload_cursor_acked(f->path, LOG_A, &acked), 0);
        assert_int_equal(acked, 0);
}

static void test_load_hostile_files(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *huge = NULL, *target = NULL;
        UploadCursor c = {.acked = 4242};
        uint64_t acked = 4242;
        size_t n = 1024 * 1024;

        /* junk */
        write_bytes(f->path, "\x00\x01garbage\xff", 10);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);
        assert_true(upload_cursor_acked(f->path, LOG_A, &acked) < 0);
        assert_int_equal(acked, 4242);

        /* overflow */
        write_str(f->path, "{\"log\":\"" LOG_A "\",\"acked\":99999999999999999999}\n");
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);

        /* empty */
        write_bytes(f->path, "", 0);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);

        /* huge: a valid cursor padded to a megabyte */
        huge = padded_cursor(n);
        write_bytes(f->path, huge, n);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);
        free(huge);
        /* one byte over the bound, and exactly at it */
        huge = padded_cursor(UPLOAD_CURSOR_SIZE_MAX + 1);
        write_bytes(f->path, huge, UPLOAD_CURSOR_SIZE_MAX + 1);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);
        free(huge);
        huge = padded_cursor(UPLOAD_CURSOR_SIZE_MAX);
        write_bytes(f->path, huge, UPLOAD_CURSOR_SIZE_MAX);
        assert_int_equal(upload_cursor_load(f->path, &c), 0);
        assert_int_equal(c.acked, 5);
        assert_int_equal(unlink(f->path), 0);

        /* not a regular file */
        assert_int_equal(mkdir(f->path, 0755), 0);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);
        assert_int_equal(rmdir(f->path), 0);
        assert_int_equal(mkfifo(f->path, 0644), 0);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);
        assert_int_equal(unlink(f->path), 0);

        /* a symlink, even to a valid cursor, is not followed */
        assert_true(asprintf(&target, "%s/elsewhere", f->dir) > 0);
        write_str(target, "{\"log\":\"" LOG_A "\",\"acked\":5}\n");
        assert_int_equal(symlink(target, f->path), 0);
        assert_int_equal(upload_cursor_load(f->path, &c), -EBADMSG);
        assert_int_equal(unlink(f->path), 0);
        assert_int_equal(upload_cursor_load(target, &c), 0);
}

static void test_acked_of_log(void **state)
{
        struct fixture *f = *state;
        UploadCursor c = {.log = LOG_A, .acked = 30};
        uint64_t acked;

        assert_int_equal(upload_cursor_save(f->path, &c), 0);
        assert_int_equal(upload_cursor_acked(f->path, LOG_A, &acked), 0);
        assert_int_equal(acked, 30);
        /* another log's cursor acknowledges nothing of this one */
        assert_int_equal(upload_cursor_acked(f->path, LOG_B, &acked), 0);
        assert_int_equal(acked, 0);
        assert_int_equal(upload_cursor_acked(f->path, NULL, &acked), -EINVAL);
}

static void test_save(void **state)
{
        struct fixture *f = *state;
        UploadCursor c = {.log = LOG_A, .acked = 1}, back;
        UploadCursor bad = {.log = LOG_A, .acked = UINT64_MAX};
        char buf[256];
        struct stat st;
        struct dirent *de;
        DIR *d;
        int fd;
        ssize_t n;

        umask(0077);
        assert_int_equal(upload_cursor_save(f->path, &c), 0);
        c.acked = 12345;
        assert_int_equal(upload_cursor_save(f->path, &c), 0);

        /* the canonical bytes, readable by mamorid and mamorictl whatever the umask */
        fd = open(f->path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        assert_true(n > 0);
        buf[n] = 0;
        assert_string_equal(buf, "{\"log\":\"" LOG_A "\",\"acked\":12345}\n");
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(upload_cursor_load(f->path, &back), 0);
        assert_int_equal(back.acked, 12345);

        /* an invalid cursor is refused and the file stays as it was */
        assert_int_equal(upload_cursor_save(f->path, &bad), -EINVAL);
        assert_int_equal(upload_cursor_save(NULL, &c), -EINVAL);
        assert_int_equal(upload_cursor_load(f->path, &back), 0);
        assert_int_equal(back.acked, 12345);

        /* no temporary file left beside it */
        d = opendir(f->dir);
        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        assert_string_equal(de->d_name, "cursor");
        closedir(d);

        /* a directory that cannot be written: the error, and nothing changed */
        char missing[256];
        snprintf(missing, sizeof(missing), "%s/no-such-dir/cursor", f->dir);
        assert_int_equal(upload_cursor_save(missing, &c), -ENOENT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_table),
                cmocka_unit_test(test_parse_hostile_bytes),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test_setup_teardown(test_load_missing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_load_hostile_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_acked_of_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
