/* Progress of long audit runs on a terminal: stderr, only when it is a tty; quiet when piped. */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "audit.h"
#include "mamori/time-util.h"

void audit_progress_init(AuditProgress *p, const char *what, uint64_t total)
{
        *p = (AuditProgress){
                .what = what, .total = total, .next_check = 4096, .enabled = what && isatty(STDERR_FILENO)};
}

void audit_progress_step(AuditProgress *p)
{
        if (++p->done < p->next_check || !p->enabled)
                return;
        p->next_check = p->done + 4096;
        int64_t now = (int64_t)now_mono_usec();
        if (now - p->last_print < 250000)
                return;
        p->last_print = now;
        if (p->total)
                fprintf(stderr, "\r%s: %" PRIu64 " / %" PRIu64 " records (%" PRIu64 " %%)", p->what, p->done,
                        p->total, p->done * 100 / p->total);
        else
                fprintf(stderr, "\r%s: %" PRIu64 " records", p->what, p->done);
}

void audit_progress_end(AuditProgress *p, int r)
{
        if (p->enabled && p->last_print)
                fprintf(stderr, "\r%s: %" PRIu64 " records, %s%20s\n", p->what, p->done,
                        r < 0 ? "failed" : "done", "");
}
