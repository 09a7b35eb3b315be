/* Unit tests of the audit's progress line (audit-progress.c) on a pseudo-terminal: how it ends. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"

/* Runs n records through a progress line on a pty as stderr, ends it with r; what the pty shows. */
static void progress_on_pty(uint64_t n, int r, char *buf, size_t size)
{
        int master = posix_openpt(O_RDWR | O_NOCTTY), slave, saved;
        AuditProgress p;
        size_t len = 0;
        ssize_t k;

        assert_true(master >= 0);
        assert_int_equal(grantpt(master), 0);
        assert_int_equal(unlockpt(master), 0);
        slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        assert_true(slave >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(slave, STDERR_FILENO) >= 0);

        audit_progress_init(&p, "audit", n);
        for (uint64_t i = 0; i < n; i++)
                audit_progress_step(&p);
        audit_progress_end(&p, r);
        fflush(stderr);

        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(slave);
        assert_int_equal(fcntl(master, F_SETFL, O_NONBLOCK), 0);
        while (len + 1 < size && (k = read(master, buf + len, size - 1 - len)) > 0)
                len += (size_t)k;
        buf[len] = 0;
        close(master);
}

/* A long run's line counts its way up and ends with word, never with other. */
static void assert_line_ends(int r, const char *word, const char *other)
{
        char out[4096], last[64];

        progress_on_pty(5000, r, out, sizeof(out));
        snprintf(last, sizeof(last), "audit: 5000 records, %s", word);
        assert_non_null(strstr(out, "audit: 4096 / 5000 records"));
        assert_non_null(strstr(out, last));
        assert_null(strstr(out, other));
}

static void test_done(void **state)
{
        assert_line_ends(0, "done", "failed");
}

/* A run that failed does not end its line with "done". */
static void test_failed(void **state)
{
        assert_line_ends(-EIO, "failed", "done");
}

/* Short runs print no line at all. */
static void test_short_run_quiet(void **state)
{
        char out[4096];

        progress_on_pty(100, -EIO, out, sizeof(out));
        assert_string_equal(out, "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_done),
                cmocka_unit_test(test_failed),
                cmocka_unit_test(test_short_run_quiet),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
