/* Unit tests for agent.conf parsing: values, defaults, drop-in order, and one clear error per mistake. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "mamori/agent-config.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"

struct diags {
        unsigned errors, warnings;
        char last[1024];
};

static void collect(void *ud, enum conf_level level, const char *file, unsigned line, const char *msg)
{
        struct diags *d = ud;
        if (level == CONF_ERROR)
                d->errors++;
        else
                d->warnings++;
        snprintf(d->last, sizeof(d->last), "%s:%u: %s", file, line, msg);
}

static int load(const char *text, struct diags *d, struct agent_config *c)
{
        memset(d, 0, sizeof(*d));
        return agent_config_load_buffer(text, strlen(text), collect, d, c);
}

static void test_defaults(void **state)
{
        struct agent_config c;
        struct diags d;
        assert_int_equal(load("", &d, &c), 0);
        assert_int_equal(c.idle_lock_usec, 300 * USEC_PER_SEC);
        assert_int_equal(c.max_age_days, 183);
        assert_int_equal(c.accounts, ACCOUNTS_SHARED);
        assert_int_equal(c.stale_policy, STALE_POLICY_DENY);
        assert_string_equal(c.log_directory, "/var/lib/mamori/log");
        assert_string_equal(c.policy_signer_key, "/etc/mamori/policy-signer.pub");
        assert_null(c.terminal_id);
        agent_config_free(&c);
}

static void test_values(void **state)
{
        struct agent_config c;
        struct diags d;
        const char *text = "# comment\n"
                           "; other comment\n"
                           "[Terminal]\n"
                           "Id = T-0001\n"
                           "Office=chuo-passport\r\n"
                           "\n"
                           "[Session]\n"
                           "IdleLockSec=5min\n"
                           "CardLeftSec=1h 30min\n"
                           "Accounts=per-operator\n"
                           "LockFallback=none\n"
                           "[Log]\n"
                           "Directory=/tmp/x/log\n"
                           "KeyRotateRecords=250\n"
                           "[Policy]\n"
                           "StalePolicy=warn\n";
        assert_int_equal(load(text, &d, &c), 0);
        assert_int_equal(d.errors + d.warnings, 0);
        assert_string_equal(c.terminal_id, "T-0001");
        assert_string_equal(c.office, "chuo-passport");
        assert_int_equal(c.idle_lock_usec, 300 * USEC_PER_SEC);
        assert_int_equal(c.card_left_usec, 5400 * USEC_PER_SEC);
        assert_int_equal(c.accounts, ACCOUNTS_PER_OPERATOR);
        assert_int_equal(c.lock_fallback, LOCK_FALLBACK_NONE);
        assert_string_equal(c.log_directory, "/tmp/x/log");
        assert_int_equal(c.key_rotate_records, 250);
        assert_int_equal(c.stale_policy, STALE_POLICY_WARN);
        agent_config_free(&c);
}

/* Each bad input gives exactly one error naming the line and, where there is one, the key. */
static void test_errors(void **state)
{
        static const struct {
                const char *text;
                const char *expect; /* substring of the message */
        } cases[] = {
                {"[Session\nIdleLockSec=5\n", "<buffer>:1: section header lacks its closing ']'"},
                {"[Session]\nIdleLockSec=99999999999999999999999\n",
                 "<buffer>:2: bad value for IdleLockSec"},
                {"[Session]\nIdleLockSec=5 parsecs\n", "IdleLockSec in [Session]: expected a duration"},
                {"[Session]\nIdleLockSec=-5\n", "bad value for IdleLockSec"},
                {"[Session]\nIdleLockSec=0\n", "must be longer than 0"},
                {"[Secrets]\nMaxAgeDays=4294967296\n", "MaxAgeDays in [Secrets]: number too large"},
                {"[Secrets]\nMaxAgeDays=12x\n", "<buffer>:2: bad value for MaxAgeDays"},
                {"[Log]\nDirectory=relative/path\n", "expected an absolute path"},
                {"[Terminal]\nId=T 0001\n", "bad value for Id"},
                {"Id=T-0001\n", "outside of a known [Section]"},
                {"[Session]\njust words\n", "<buffer>:2: expected Key=value"},
                {"[Session]\nAccounts=everyone\n", "expected shared or per-operator"},
                {"[Session]\nIdle Lock=5\n", "invalid key name"},
                {"[Session]\nIdleLockSec=5\x01\n", "control character"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct agent_config c = {0};
                struct diags d;
                assert_int_equal(load(cases[i].text, &d, &c), -EINVAL);
                assert_int_equal(d.errors, 1);
                if (!strstr(d.last, cases[i].expect))
                        fail_msg("case %zu: got '%s', want '%s'", i, d.last, cases[i].expect);
        }
}

static void test_warnings(void **state)
{
        struct agent_config c;
        struct diags d;
        assert_int_equal(load("[Session]\nIdleLockSec=10\nFrobnicate=yes\n[Nope]\nX=1\n", &d, &c), 0);
        assert_int_equal(d.errors, 0);
        assert_int_equal(d.warnings, 2);
        assert_non_null(strstr(d.last, "<buffer>:4: unknown section [Nope]"));
        assert_int_equal(c.idle_lock_usec, 10 * USEC_PER_SEC);
        agent_config_free(&c);
}

/* A misspelled key or section is a warning that names the one it probably meant. */
static void test_suggestions(void **state)
{
        static const struct {
                const char *text, *expect;
        } cases[] = {
                {"[Session]\nIdleLockSecs=60\n",
                 "<buffer>:2: unknown key IdleLockSecs in [Session], did you mean IdleLockSec?"},
                {"[Session]\nidlelocksec=60\n", "did you mean IdleLockSec?"},
                {"[Session]\nIdelLockSec=60\n", "did you mean IdleLockSec?"},
                {"[Secrets]\nIdleLockSec=60\n",
                 "unknown key IdleLockSec in [Secrets], did you mean IdleLockSec in [Session]?"},
                {"[Sesion]\nIdleLockSec=60\n",
                 "<buffer>:1: unknown section [Sesion], did you mean [Session]?"},
                {"[Colector]\nURL=https://c\n", "did you mean [Collector]?"},
                {"[Collector]\nURI=https://c\n", "did you mean URL?"},
                /* Too far from every name: no guess. */
                {"[Session]\nFrobnicate=yes\n", "unknown key Frobnicate in [Session], ignoring"},
                {"[Session]\nIdle=60\n", "unknown key Idle in [Session], ignoring"},
                {"[Nope]\nX=1\n", "unknown section [Nope], ignoring its keys"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct agent_config c;
                struct diags d;
                assert_int_equal(load(cases[i].text, &d, &c), 0);
                assert_int_equal(d.errors, 0);
                assert_int_equal(d.warnings, 1);
                if (!strstr(d.last, cases[i].expect))
                        fail_msg("case %zu: got '%s', want '%s'", i, d.last, cases[i].expect);
                /* The default stays in force: the misspelled line changed nothing. */
                assert_int_equal(c.idle_lock_usec, 300 * USEC_PER_SEC);
                agent_config_free(&c);
        }
}

static void test_huge_line(void **state)
{
        size_t n = CONF_MAX_LINE + 100;
        char *text = malloc(n + 32);
        struct agent_config c = {0};
        struct diags d;
        assert_non_null(text);
        strcpy(text, "[Terminal]\nId=");
        memset(text + strlen(text), 'A', n);
        text[14 + n] = '\0';
        assert_int_equal(load(text, &d, &c), -EINVAL);
        assert_int_equal(d.errors, 1);
        assert_non_null(strstr(d.last, "<buffer>:2: line longer than"));
        free(text);
}

static void test_nul_bytes(void **state)
{
        static const char text[] = "[Terminal]\nId=T\0-1\n";
        struct agent_config c = {0};
        struct diags d = {0};
        assert_int_equal(agent_config_load_buffer(text, sizeof(text) - 1, collect, &d, &c), -EINVAL);
        assert_non_null(strstr(d.last, "NUL"));
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_dropins(void **state)
{
        char dir[] = "/tmp/mamori-conf-XXXXXX";
        char path[256], dropdir[300], p[400];
        struct agent_config c;
        struct diags d = {0};

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/agent.conf", dir);
        snprintf(dropdir, sizeof(dropdir), "%s.d", path);
        write_file(path, "[Terminal]\nId=T-main\nOffice=main-office\n[Session]\nIdleLockSec=100\n");
        assert_int_equal(mkdir(dropdir, 0755), 0);
        /* Lexical order: 10 before 20, and "20" wins over "10" for the same key. */
        snprintf(p, sizeof(p), "%s/20-late.conf", dropdir);
        write_file(p, "[Terminal]\nId=T-late\n");
        snprintf(p, sizeof(p), "%s/10-early.conf", dropdir);
        write_file(p, "[Terminal]\nId=T-early\n[Session]\nIdleLockSec=200\n");
        snprintf(p, sizeof(p), "%s/99-ignored.txt", dropdir);
        write_file(p, "[Terminal]\nId=T-ignored\n");

        assert_int_equal(agent_config_load(path, collect, &d, &c), 0);
        assert_string_equal(c.terminal_id, "T-late");
        assert_string_equal(c.office, "main-office");
        assert_int_equal(c.idle_lock_usec, 200 * USEC_PER_SEC);
        agent_config_free(&c);

        /* An error in a drop-in names that file and line. */
        snprintf(p, sizeof(p), "%s/30-bad.conf", dropdir);
        write_file(p, "\n[Session]\nIdleLockSec=soon\n");
        memset(&d, 0, sizeof(d));
        assert_int_equal(agent_config_load(path, collect, &d, &c), -EINVAL);
        assert_non_null(strstr(d.last, "30-bad.conf:3: bad value for IdleLockSec"));

        /* A missing main file is an error; cleanup. */
        memset(&d, 0, sizeof(d));
        snprintf(p, sizeof(p), "%s/missing.conf", dir);
        assert_int_equal(agent_config_load(p, collect, &d, &c), -ENOENT);
        assert_int_equal(d.errors, 1);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),  cmocka_unit_test(test_values),
                cmocka_unit_test(test_errors),    cmocka_unit_test(test_warnings),
                cmocka_unit_test(test_huge_line), cmocka_unit_test(test_nul_bytes),
                cmocka_unit_test(test_dropins),   cmocka_unit_test(test_suggestions),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
