/* Unit tests for the password failure file (agent/mamorid/password-failures.c): the codec's bounds and
 * refusals, the round trip, and that only a root-only regular file is believed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "password-failures.h"

#define GOOD                                                                                          \
        "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 3 1764370000000000 1764370004000000\nop " \
        "OP0002 1 1764370000000000 1764370001000000\n"

static int parse(const char *text, struct password_failure_file *f)
{
        return password_failure_file_parse(text, strlen(text), f);
}

/* Field by field (a whole-struct compare would read the padding after operator_id, which nothing sets). */
static void assert_entry_equal(const struct password_failure_entry *a,
                               const struct password_failure_entry *b)
{
        assert_string_equal(a->operator_id, b->operator_id);
        assert_int_equal(a->count, b->count);
        assert_int_equal(a->last_usec, b->last_usec);
        assert_int_equal(a->next_usec, b->next_usec);
}

static void assert_file_equal(const struct password_failure_file *a, const struct password_failure_file *b)
{
        assert_entry_equal(&a->floor, &b->floor);
        assert_int_equal(a->n, b->n);
        for (size_t i = 0; i < a->n; i++)
                assert_entry_equal(&a->entries[i], &b->entries[i]);
}

static void test_parse_good(void **state)
{
        struct password_failure_file f;

        assert_int_equal(parse(GOOD, &f), 0);
        assert_int_equal(f.n, 2);
        assert_string_equal(f.floor.operator_id, "");
        assert_int_equal(f.floor.count, 0);
        assert_string_equal(f.entries[0].operator_id, "OP0001");
        assert_int_equal(f.entries[0].count, 3);
        assert_int_equal(f.entries[0].last_usec, INT64_C(1764370000000000));
        assert_int_equal(f.entries[0].next_usec, INT64_C(1764370004000000));
        assert_string_equal(f.entries[1].operator_id, "OP0002");

        assert_int_equal(parse("mamori-password-failures 1\nfloor 6 5 37\n", &f), 0);
        assert_int_equal(f.n, 0);
        assert_int_equal(f.floor.count, 6);
        assert_int_equal(f.floor.next_usec, 37);
}

static void test_parse_refusals(void **state)
{
        static const char *const bad[] = {
                "",
                "\n",
                "mamori-password-failures 1\n",                               /* no floor */
                "mamori-password-failures 2\nfloor 0 0 0\n",                  /* other version */
                "mamori-password-failures 1\nfloor 0 0 0",                    /* no newline */
                "mamori-password-failures 1\nfloor 0 0 0\n\n",                /* empty line */
                "mamori-password-failures 1\nfloor 0 0\n",                    /* short floor */
                "mamori-password-failures 1\nop OP0001 1 1 1\nfloor 0 0 0\n", /* floor not second */
                "mamori-password-failures 1\nfloor 0 0 0\nfloor 0 0 0\n",     /* two floors */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 1 1 1\nop OP0001 2 2 2\n", /* twice */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 33 1 1\n", /* count over 32 */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 -1 1 1\n",
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 1 9223372036854775808 1\n", /* > int64 */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 01 1 1\n", /* not canonical */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 1 1 1x\n",
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001  1 1 1\n",   /* two spaces */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 1 1 1 \n",   /* trailing space */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP0001 1 1 1 1\n",  /* one field more */
                "mamori-password-failures 1\nfloor 0 0 0\nop .failures 1 1 1\n", /* not an operator id */
                "mamori-password-failures 1\nfloor 0 0 0\nop OP/1 1 1 1\n",
                "mamori-password-failures 1\nfloor 0 0 0\nuser OP0001 1 1 1\n",
                "mamori-password-failures 1\r\nfloor 0 0 0\n",
        };
        struct password_failure_file f = {.n = 99};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse(bad[i], &f) != -EBADMSG)
                        fail_msg("accepted (or wrong error): %s", bad[i]);
        assert_int_equal(f.n, 99); /* untouched on failure */
        /* A NUL inside. */
        assert_int_equal(password_failure_file_parse("mamori-password-failures 1\nfloor 0\0 0 0\n", 40, &f),
                         -EBADMSG);
}

static void test_parse_bounds(void **state)
{
        struct password_failure_file f;
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&text, &size);

        /* 64 operators are accepted, the 65th is not. */
        fprintf(out, "mamori-password-failures 1\nfloor 0 0 0\n");
        for (int i = 0; i < PASSWORD_FAILURE_ENTRIES_MAX; i++)
                fprintf(out, "op OP%04d 1 1 1\n", i);
        fflush(out);
        assert_int_equal(password_failure_file_parse(text, size, &f), 0);
        assert_int_equal(f.n, PASSWORD_FAILURE_ENTRIES_MAX);
        fprintf(out, "op OP9999 1 1 1\n");
        fclose(out);
        assert_int_equal(password_failure_file_parse(text, size, &f), -EBADMSG);
        free(text);

        /* Over the size bound: refused before it is read. */
        size = PASSWORD_FAILURES_FILE_MAX + 1;
        text = malloc(size);
        assert_non_null(text);
        memset(text, '\n', size);
        assert_int_equal(password_failure_file_parse(text, size, &f), -E2BIG);
        free(text);
}

static void test_format_round_trip(void **state)
{
        struct password_failure_file f, back;
        char *text;
        size_t n;

        assert_int_equal(parse(GOOD, &f), 0);
        assert_int_equal(password_failure_file_format(&f, &text, &n), 0);
        assert_int_equal(n, strlen(GOOD));
        assert_string_equal(text, GOOD);
        assert_int_equal(password_failure_file_parse(text, n, &back), 0);
        assert_file_equal(&back, &f);
        free(text);

        /* What the parser would refuse is not written either. */
        f.entries[1].count = PASSWORD_FAILURE_COUNT_MAX + 1;
        assert_int_equal(password_failure_file_format(&f, &text, &n), -EINVAL);
        f.entries[1].count = 1;
        snprintf(f.entries[1].operator_id, sizeof(f.entries[1].operator_id), ".x");
        assert_int_equal(password_failure_file_format(&f, &text, &n), -EINVAL);
}

static void test_load_believes_only_a_root_only_file(void **state)
{
        char dir[] = "/tmp/test-password-failures-XXXXXX", path[256], link[256];
        struct password_failure_file f, back;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(password_failure_file_path(dir, path, sizeof(path)), 0);
        assert_true(strstr(path, "/.failures") != NULL);
        assert_int_equal(password_failure_file_load(path, &back), -ENOENT);

        assert_int_equal(parse(GOOD, &f), 0);
        assert_int_equal(password_failure_file_save(path, &f), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(password_failure_file_load(path, &back), 0);
        assert_int_equal(back.n, 2);
        assert_int_equal(back.entries[0].count, 3);

        /* Readable by others: not believed. */
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(password_failure_file_load(path, &back), -EPERM);
        assert_int_equal(chmod(path, 0600), 0);
        /* Another owner: not believed. */
        if (geteuid() == 0) {
                assert_int_equal(chown(path, 65534, 65534), 0);
                assert_int_equal(password_failure_file_load(path, &back), -EPERM);
                assert_int_equal(chown(path, 0, 0), 0);
        }
        /* A symbolic link: not followed. */
        snprintf(link, sizeof(link), "%s/link", dir);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(password_failure_file_load(link, &back), -EPERM);
        unlink(link);
        /* A FIFO: refused at once, never waited on (mamorid's start would hang on it). */
        snprintf(link, sizeof(link), "%s/fifo", dir);
        assert_int_equal(mkfifo(link, 0600), 0);
        assert_int_equal(password_failure_file_load(link, &back), -EPERM);
        unlink(link);
        /* Garbage: the parser's error, for the caller to fail closed on. */
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "garbage\n", 8), 8);
        close(fd);
        assert_int_equal(password_failure_file_load(path, &back), -EBADMSG);

        unlink(path);
        rmdir(dir);
}

/* The entries of name in dir other than "." and "..". */
static size_t dir_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t n = 0;

        assert_non_null(d);
        while ((e = readdir(d)))
                if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* What a save leaves: the file as last saved and nothing else (a full one of 64 operators replaced by a
 * shorter one, not appended to; no temporary file), 0600 even over a file someone made readable, so the
 * next start believes it; a save the codec refuses leaves the last one in place. */
static void test_save_replaces_the_file(void **state)
{
        char dir[] = "/tmp/test-password-failures-XXXXXX", path[256];
        struct password_failure_file full = {.floor = {.count = 6, .last_usec = 1, .next_usec = 2}}, one,
                                     back;
        struct stat st;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(password_failure_file_path(dir, path, sizeof(path)), 0);
        full.n = PASSWORD_FAILURE_ENTRIES_MAX;
        for (size_t i = 0; i < full.n; i++) {
                full.entries[i] = (struct password_failure_entry){.count = 5,
                                                                  .last_usec = INT64_C(1764370000000000),
                                                                  .next_usec = INT64_C(1764370016000000)};
                snprintf(full.entries[i].operator_id, sizeof(full.entries[i].operator_id), "OP%05zu", i);
        }
        assert_int_equal(password_failure_file_save(path, &full), 0);
        assert_int_equal(password_failure_file_load(path, &back), 0);
        assert_file_equal(&back, &full);

        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(parse(GOOD, &one), 0);
        one.n = 1;
        one.entries[0].count = 7;
        assert_int_equal(password_failure_file_save(path, &one), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(password_failure_file_load(path, &back), 0);
        assert_file_equal(&back, &one);
        assert_int_equal(dir_entries(dir), 1);

        /* Refused by the codec: nothing written, the last save stands. */
        full.entries[3].count = PASSWORD_FAILURE_COUNT_MAX + 1;
        assert_int_equal(password_failure_file_save(path, &full), -EINVAL);
        assert_int_equal(password_failure_file_load(path, &back), 0);
        assert_file_equal(&back, &one);
        assert_int_equal(dir_entries(dir), 1);

        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_good),
                cmocka_unit_test(test_parse_refusals),
                cmocka_unit_test(test_parse_bounds),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_load_believes_only_a_root_only_file),
                cmocka_unit_test(test_save_replaces_the_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
