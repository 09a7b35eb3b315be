/* Runs the store through a findings engine: the collector's alerts, then every record in time order. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"

static int on_alert(int64_t id, int64_t ts, const char *kind, const char *term, const char *log,
                    uint64_t seq, const char *detail, uint64_t count, int64_t last_seen, void *userdata)
{
        return audit_engine_alert(userdata, ts, kind, term, log, seq, detail);
}

int audit_run_stream(Store *s, AuditStream *st, AuditEngine *e, const char *progress_what)
{
        AuditProgress p;
        AuditRecord rec;
        int r;

        r = store_alerts_foreach(s, on_alert, e);
        if (r < 0)
                return r;
        audit_progress_init(&p, progress_what, audit_stream_total(st));
        while ((r = audit_stream_next(st, &rec)) > 0) {
                r = audit_engine_feed(e, &rec);
                if (r < 0)
                        break;
                audit_progress_step(&p);
        }
        audit_progress_end(&p, r);
        if (r < 0)
                return r;
        return audit_engine_finish(e);
}
