/* mamorictl passwd [--password]: change the inserted card's PIN, or the logged-in operator's password,
 * through the agent (prompts without echo, or lines on stdin). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ctl-verbs.h"
#include "mamori/agent-client.h"
#include "mamori/dbus-api.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"

#define PIN_LINE_MAX      64
#define PASSWORD_LINE_MAX 1026 /* mamori's 1024-byte maximum, a CR and the NUL */

/* One line from fd, read byte by byte so no stdio buffer keeps a copy of the PIN. 1 line, 0 EOF. */
static int read_line_fd(int fd, char *buf, size_t size)
{
        size_t n = 0;

        for (;;) {
                char ch;
                ssize_t k = read(fd, &ch, 1);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0) {
                        if (n == 0)
                                return 0;
                        break;
                }
                if (ch == '\n')
                        break;
                if (n + 1 >= size) {
                        explicit_bzero(buf, size);
                        return -E2BIG;
                }
                buf[n++] = ch;
        }
        if (n > 0 && buf[n - 1] == '\r')
                n--;
        buf[n] = '\0';
        return 1;
}

/* Prompts on stderr and reads a line from the terminal on stdin with echo off. */
static int ask_tty(const char *prompt, char *buf, size_t size)
{
        struct termios old, quiet;
        int r;

        fputs(prompt, stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) < 0)
                return -errno;
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
                return -errno;
        r = read_line_fd(STDIN_FILENO, buf, size);
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
        return r;
}

static int ask(bool tty, const char *prompt, char *buf, size_t size)
{
        int r = tty ? ask_tty(prompt, buf, size) : read_line_fd(STDIN_FILENO, buf, size);

        return r == 0 ? -ENODATA : r;
}

static int run_passwd(bool tty, char *old_pin, char *new_pin, char *again)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_error_info info;
        char text[256];
        int r;

        r = ask(tty, _("Current PIN: "), old_pin, PIN_LINE_MAX);
        if (r >= 0)
                r = ask(tty, _("New PIN (6–8 digits): "), new_pin, PIN_LINE_MAX);
        if (r < 0) {
                fprintf(stderr, _("mamorictl: cannot read the PIN: %s\n"),
                        r == -ENODATA ? _("end of input") : strerror(-r));
                return 2;
        }
        if (!agent_pin_format_ok(new_pin)) {
                fprintf(stderr, "%s\n",
                        _("mamorictl: the new PIN must be 6 to 8 digits; the PIN was not changed"));
                return 1;
        }
        /* The repetition is asked on a terminal; on a pipe it is optional (two or three lines). */
        r = ask(tty, _("Repeat new PIN: "), again, PIN_LINE_MAX);
        if (r == -ENODATA && !tty)
                strcpy(again, new_pin);
        else if (r < 0) {
                fprintf(stderr, _("mamorictl: cannot read the PIN: %s\n"),
                        r == -ENODATA ? _("end of input") : strerror(-r));
                return 2;
        }
        if (!streq(new_pin, again)) {
                fprintf(stderr, "%s\n", _("mamorictl: the new PINs do not match; the PIN was not changed"));
                return 1;
        }

        r = agent_bus_open(&bus);
        if (r >= 0)
                r = agent_change_pin(bus, old_pin, new_pin, &error);
        if (r < 0) {
                agent_error_classify(&error, r, &info);
                fprintf(stderr, _("mamorictl: %s (%s); the PIN was not changed\n"),
                        agent_error_format(&info, text, sizeof(text)),
                        sd_bus_error_is_set(&error) ? error.name : strerror(-r));
                return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
        }
        printf("%s\n", _("PIN changed."));
        return 0;
}

static int run_password(bool tty, char *old_pw, char *new_pw, char *again)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_error_info info;
        int days = -1, max_days, warn_days;
        char text[256];
        int r;

        r = agent_bus_open(&bus);
        /* Whether one is set decides whether the current one is asked: a first password has none. */
        if (r >= 0)
                r = agent_password_age(bus, &error, &days, &max_days, &warn_days);
        if (r < 0) {
                agent_error_classify(&error, r, &info);
                fprintf(stderr, _("mamorictl: %s (%s); the password was not changed\n"),
                        info.class == AGENT_ERROR_NOT_ACTIVE
                                ? _("No operator is logged in — log in with your own card first")
                                : agent_error_format(&info, text, sizeof(text)),
                        sd_bus_error_is_set(&error) ? error.name : strerror(-r));
                return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
        }
        sd_bus_error_free(&error);
        r = days >= 0 ? ask(tty, _("Current password: "), old_pw, PASSWORD_LINE_MAX) : 0;
        if (r >= 0)
                r = ask(tty, _("New password: "), new_pw, PASSWORD_LINE_MAX);
        if (r >= 0)
                r = ask(tty, _("Repeat new password: "), again, PASSWORD_LINE_MAX);
        if (r < 0) {
                fprintf(stderr, _("mamorictl: cannot read the password: %s\n"),
                        r == -ENODATA ? _("end of input") : strerror(-r));
                return 2;
        }
        if (!streq(new_pw, again)) {
                fprintf(stderr, "%s\n",
                        _("mamorictl: the new passwords do not match; the password was not changed"));
                return 1;
        }
        r = agent_change_password(bus, old_pw, new_pw, &error);
        if (r < 0) {
                agent_error_classify(&error, r, &info);
                fprintf(stderr, _("mamorictl: %s (%s); the password was not changed\n"),
                        agent_error_format(&info, text, sizeof(text)),
                        sd_bus_error_is_set(&error) ? error.name : strerror(-r));
                return info.class == AGENT_ERROR_UNAVAILABLE ? 3 : 1;
        }
        printf("%s\n", _("Password changed."));
        return 0;
}

int ctl_passwd(int argc, char **argv)
{
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"password", no_argument, NULL, 'p'},
                {},
        };
        char old_pin[PIN_LINE_MAX], new_pin[PIN_LINE_MAX], again[PIN_LINE_MAX];
        bool password = false;
        int c, ret;

        optind = 1;
        while ((c = getopt_long(argc, argv, "hp", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: mamorictl passwd [--password]\n"
                               "Change the PIN of the inserted operator card. On a terminal the current "
                               "PIN\n"
                               "and the new PIN (twice) are asked without echo; otherwise they are read as\n"
                               "two or three lines from standard input (current, new[, new again]).\n\n"
                               "  -p, --password  set or change the logged-in operator's password on this\n"
                               "                  terminal instead (for group cards and finger+password):\n"
                               "                  only in a session with the operator's card inserted or "
                               "one\n"
                               "                  opened with that password; lines: current (only when one\n"
                               "                  is set), new, new again\n");
                        return 0;
                }
                if (c == 'p') {
                        password = true;
                        continue;
                }
                return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (password) {
                char *old_pw = calloc(3, PASSWORD_LINE_MAX);
                if (!old_pw) {
                        fprintf(stderr, "mamorictl: out of memory\n");
                        return 1;
                }
                ret = run_password(isatty(STDIN_FILENO) == 1, old_pw, old_pw + PASSWORD_LINE_MAX,
                                   old_pw + 2 * PASSWORD_LINE_MAX);
                explicit_bzero(old_pw, 3 * PASSWORD_LINE_MAX);
                free(old_pw);
                return ret;
        }
        old_pin[0] = new_pin[0] = again[0] = '\0';
        ret = run_passwd(isatty(STDIN_FILENO) == 1, old_pin, new_pin, again);
        explicit_bzero(old_pin, sizeof(old_pin));
        explicit_bzero(new_pin, sizeof(new_pin));
        explicit_bzero(again, sizeof(again));
        return ret;
}
