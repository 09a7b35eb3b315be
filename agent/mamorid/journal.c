/* Writes mamorid's events and diagnostics to the journal, or as one plain line each to stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "journal.h"

#define MAX_FIELDS 16

static bool to_journal;

void agent_log_init(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;
        unsigned long long dev, ino;

        to_journal = false;
        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return;
        if (fstat(STDERR_FILENO, &st) < 0)
                return;
        to_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool agent_log_to_journal(void)
{
        return to_journal;
}

static bool needs_quotes(const char *v)
{
        if (!*v)
                return true;
        for (const char *p = v; *p; p++)
                if (*p == ' ' || *p == '"' || *p == '\\' || *p == '=' || (unsigned char)*p < 0x20)
                        return true;
        return false;
}

/* Appends value to f, quoted and escaped where needed, so each event stays on one line. */
static void put_value(FILE *f, const char *v)
{
        if (!needs_quotes(v)) {
                fputs(v, f);
                return;
        }
        fputc('"', f);
        for (const char *p = v; *p; p++) {
                unsigned char c = (unsigned char)*p;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

static void event_to_journal(const char *name, const char *const keys[], const char *const values[],
                             size_t n)
{
        struct iovec iov[MAX_FIELDS + 4];
        char buf[MAX_FIELDS + 4][512];
        size_t k = 0;
        /* MESSAGE escapes values as the stderr line does: a value cannot forge fields or lines. */
        FILE *f = fmemopen(buf[0], sizeof(buf[0]) - 1, "w");

        if (!f)
                return;
        fprintf(f, "MESSAGE=%s", name);
        for (size_t i = 0; i < n; i++) {
                fprintf(f, " %s=", keys[i]);
                put_value(f, values[i]);
        }
        fclose(f);
        buf[0][sizeof(buf[0]) - 1] = '\0';
        k++;
        snprintf(buf[k], sizeof(buf[k]), "MAMORI_EVENT=%s", name);
        k++;
        const char *id = mamori_event_message_id(name);
        if (id) {
                snprintf(buf[k], sizeof(buf[k]), "MESSAGE_ID=%s", id);
                k++;
        }
        snprintf(buf[k], sizeof(buf[k]), "PRIORITY=%d", LOG_INFO);
        k++;
        for (size_t i = 0; i < n; i++, k++) {
                int l = snprintf(buf[k], sizeof(buf[k]), "MAMORI_");
                for (const char *p = keys[i]; *p && l < 64; p++)
                        buf[k][l++] =
                                (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : (*p == '-' ? '_' : *p);
                snprintf(buf[k] + l, sizeof(buf[k]) - (size_t)l, "=%s", values[i]);
        }
        for (size_t i = 0; i < k; i++)
                iov[i] = (struct iovec){.iov_base = buf[i], .iov_len = strlen(buf[i])};
        sd_journal_sendv(iov, (int)k);
}

void agent_log_event(const char *name, ...)
{
        const char *keys[MAX_FIELDS], *values[MAX_FIELDS];
        size_t n = 0;
        va_list ap;

        va_start(ap, name);
        for (;;) {
                const char *k = va_arg(ap, const char *);
                if (!k)
                        break;
                const char *v = va_arg(ap, const char *);
                if (v && n < MAX_FIELDS) {
                        keys[n] = k;
                        values[n] = v;
                        n++;
                }
        }
        va_end(ap);
        agent_log_event_fields(name, keys, values, n);
}

void agent_log_event_fields(const char *name, const char *const keys[], const char *const values[], size_t n)
{
        if (n > MAX_FIELDS)
                n = MAX_FIELDS;
        if (to_journal) {
                event_to_journal(name, keys, values, n);
                return;
        }
        flockfile(stderr);
        fputs(name, stderr);
        for (size_t i = 0; i < n; i++) {
                fprintf(stderr, " %s=", keys[i]);
                put_value(stderr, values[i]);
        }
        fputc('\n', stderr);
        funlockfile(stderr);
        fflush(stderr);
}

static void log_message(const char *message_id, int priority, const char *fmt, va_list ap)
{
        char msg[1024];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (to_journal) {
                if (message_id)
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority, "MESSAGE_ID=%s",
                                        message_id, NULL);
                else
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority, NULL);
                return;
        }
        static const char *const names[] = {"emerg",   "alert",  "crit", "error",
                                            "warning", "notice", "info", "debug"};
        fprintf(stderr, "mamorid: %s: %s\n", names[priority & 7], msg);
        fflush(stderr);
}

void agent_log(int priority, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_message(NULL, priority, fmt, ap);
        va_end(ap);
}

void agent_log_id(const char *message_id, int priority, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_message(message_id, priority, fmt, ap);
        va_end(ap);
}
