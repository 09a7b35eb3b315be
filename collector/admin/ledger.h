/* The usage ledger (使用簿): one row per session with the kinds of the findings that touch it. */
#pragma once

#include <stdio.h>

#include "audit-report.h"

typedef struct LedgerRow {
        AuditSession s;
        uint32_t violations; /* bit per AuditKind */
} LedgerRow;

typedef struct Ledger {
        AuditReport rep; /* findings and per-day counts of the same run */
        LedgerRow *rows;
        size_t n, allocated;
        int error;
} Ledger;

void ledger_on_session(const AuditSession *s, void *userdata);
void ledger_on_finding(const AuditFinding *f, void *userdata);
/* After the run: rows in start order, violations attached. */
void ledger_finish(Ledger *l);
void ledger_csv(FILE *f, const Ledger *l);
void ledger_json(FILE *f, const Ledger *l);
void ledger_html(FILE *f, const Ledger *l);
/* "card-left outside-hours" style list of the bits, into buf. */
void ledger_violations_string(uint32_t bits, char *buf, size_t size);
