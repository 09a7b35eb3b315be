/* mamori-admin verbs shared between its files: the context every verb gets. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "collector-config.h"
#include "mamori/oplog-verify.h"
#include "store.h"

typedef struct AdminContext {
        struct collector_config config;
        Store *store;    /* opened lazily by admin_store() */
        bool keys_ready; /* admin_keys_prepare() ran */
        /* What the verb does with the store (its entry in mamori-admin.c's table): checked by admin_store()
         * before the verb reads or changes anything. */
        StoreAccess access;
        const char *command; /* "audit", "operator add": for messages */
} AdminContext;

/* Opens the store once, and checks that its database role may do what ctx->access says (printed why not);
 * every history row written through it carries admin_actor(). */
int admin_store(AdminContext *ctx, Store **ret);
int64_t admin_now_usec(void);

/* admin-change.c: every change of the store goes admin_change_begin() → store calls → admin_change_end(). */
/* Who runs mamori-admin, for the register: SUDO_USER, else the login name of the uid. malloc'd. */
char *admin_actor(void);
/* A reason for the register: one line of UTF-8, 1..1024 bytes, no tabs. false: printed why. */
bool admin_reason_valid(const char *reason);
bool admin_utf8_ok(const char *s);
/* A change of the store as what it says when the change fails names it: "WHAT[ ID]" (what NULL: nothing),
 * and what else the failure leaves beside the register: also when the change was not stored (e.g. "no
 * enrolment file was written"), also_maybe when it may have been (the connection lost at its COMMIT); NULL:
 * nothing. */
typedef struct AdminChange {
        const char *what, *id, *also, *also_maybe;
} AdminChange;
/* Checks the reason (NULL: none), opens the store, sets the reason of its history rows, begins.
 * Returns an exit code: 0 = in a transaction, 2 = bad reason, 1 = store failure (printed why, as
 * admin_change_end() does). */
int admin_change_begin(AdminContext *ctx, const char *reason, const AdminChange *c, Store **ret);
/* r >= 0: commits; r < 0 (the change's writes failed): rolls back. -EEXIST and -ENOENT are the register's
 * answers ("WHAT[ ID]: already exists" / "not registered"; callers print their own for other ones, first);
 * any other r, and a failed COMMIT, say once whether the change is stored (not, or maybe when the connection
 * was lost at COMMIT), what that leaves (c->also) and what to do next. Returns an exit code (0 or 1). */
int admin_change_end(Store *s, int r, const AdminChange *c);
/* What to look at when the store refused a change with r: what held it, its disk, the PostgreSQL server's
 * log (s NULL: a store that did not open). */
const char *admin_store_why(Store *s, int r);
/* Ids as DESIGN §6/§8 allow them; false: printed why. */
bool admin_check_id(const char *what, const char *s);

/* Verbs: argc/argv start at the verb's own arguments (argv[0] = the verb name). Exit codes. */
int admin_policy_publish(AdminContext *ctx, int argc, char **argv);
int admin_policy_refresh(AdminContext *ctx, int argc, char **argv);
int admin_emergency_clear(AdminContext *ctx, int argc, char **argv);
int admin_policy_signer(AdminContext *ctx, int argc, char **argv);
int admin_policy_show(AdminContext *ctx, int argc, char **argv);
int admin_verify(AdminContext *ctx, int argc, char **argv);
int admin_export(AdminContext *ctx, int argc, char **argv);
int admin_alerts(AdminContext *ctx, int argc, char **argv);

/* The register (admin-register.c): operators, cards, groups, history, register verify, card lists. */
int admin_operator_add(AdminContext *ctx, int argc, char **argv);
int admin_operator_suspend(AdminContext *ctx, int argc, char **argv);
int admin_operator_retire(AdminContext *ctx, int argc, char **argv);
int admin_operator_resume(AdminContext *ctx, int argc, char **argv);
int admin_operator_pin_reset(AdminContext *ctx, int argc, char **argv);
int admin_card_issue(AdminContext *ctx, int argc, char **argv);
int admin_card_suspend(AdminContext *ctx, int argc, char **argv);
int admin_card_return(AdminContext *ctx, int argc, char **argv);
int admin_card_resume(AdminContext *ctx, int argc, char **argv);
int admin_card_history(AdminContext *ctx, int argc, char **argv);
int admin_group_add(AdminContext *ctx, int argc, char **argv);
int admin_history(AdminContext *ctx, int argc, char **argv);
int admin_register_verify(AdminContext *ctx, int argc, char **argv);
int admin_cards(AdminContext *ctx, int argc, char **argv);

/* The centre's keys and terminals (admin-centre.c, admin-terminal.c). */
int admin_init(AdminContext *ctx, int argc, char **argv);
int admin_collector_renew(AdminContext *ctx, int argc, char **argv);
int admin_terminal_add(AdminContext *ctx, int argc, char **argv);
int admin_terminal_rekey(AdminContext *ctx, int argc, char **argv);
int admin_terminal_retire(AdminContext *ctx, int argc, char **argv);

/* The audit verbs (admin-findings.c, admin-ledger.c, admin-trace.c, admin-watch.c, admin-inspection.c,
 * admin-retention.c, admin-office.c). */
int admin_audit(AdminContext *ctx, int argc, char **argv);
int admin_ledger(AdminContext *ctx, int argc, char **argv);
int admin_trace(AdminContext *ctx, int argc, char **argv);
int admin_watch(AdminContext *ctx, int argc, char **argv);
int admin_self_inspection(AdminContext *ctx, int argc, char **argv);
int admin_retention(AdminContext *ctx, int argc, char **argv);
int admin_office_hours(AdminContext *ctx, int argc, char **argv);
int admin_office_days(AdminContext *ctx, int argc, char **argv);
int admin_office_holidays(AdminContext *ctx, int argc, char **argv);
int admin_operator_roles(AdminContext *ctx, int argc, char **argv);

/* Shared by those verbs (admin-findings.c). Each prints what went wrong. */
typedef struct AuditContext {
        Store *store; /* borrowed from AdminContext */
        AuditRegistry *reg;
        AuditStream *stream;
        AuditEngine *engine;
} AuditContext;
int admin_parse_days(const char *what, const char *s, int64_t *ret);
int admin_check_format(const char *format, const char *allowed);
int admin_parse_window(const char *from_s, const char *to_s, AuditOptions *o);
int admin_audit_setup(AuditContext *a, AdminContext *ctx, const AuditOptions *o, audit_finding_fn found,
                      audit_session_fn session, void *userdata, const char *what);
/* Says once on stderr why the run of what (the verb) failed with r, what that leaves (left, e.g. "no
 * report written") and what to do next: free memory, mamori-admin verify for a record that cannot be
 * read, the database's own check for a read that failed. */
void admin_run_failed(AdminContext *ctx, const char *what, const char *left, int r);
/* audit_registry_load() for the run of what; on failure says why as admin_run_failed() does, wording a
 * damaged entry as the register's (not as a stored record). */
int admin_registry_load(AdminContext *ctx, Store *s, const char *what, const char *left,
                        AuditRegistry **ret);
/* s quoted for a POSIX shell as Python's shlex.quote() does it: as it is when it holds only
 * [A-Za-z0-9@%+=:,./_-] (and is not empty), else in single quotes, each ' as '"'"'. malloc'd. */
char *admin_shell_quote(const char *s);
void admin_audit_done(AuditContext *a);

/* What the report verbs (audit, ledger, self-inspection) share (admin-findings.c): their common
 * options, the report set up for the window, the run, and the write-out. */
struct AuditReport;
typedef struct ReportArgs {
        const char *from, *to, *format;
} ReportArgs;
/* getopt's c for --office (o), --from (f), --to (t), --format (F): taken into o/args (true), else false. */
bool admin_report_option(int c, const char *arg, AuditOptions *o, ReportArgs *args);
/* Checks args->format against formats ("csv|html|json") and the window, then sets up rep (titles
 * NULL: none): 0, or the exit status after saying why. */
int admin_report_start(struct AuditReport *rep, AuditOptions *o, const ReportArgs *args, const char *formats,
                       const char *title_ja, const char *title_en);
/* Every stored record through an engine made for o into the callbacks, then the operator figures
 * into rep: 0, or -errno after saying why (what: the verb). */
int admin_report_run(AuditContext *a, AdminContext *ctx, const AuditOptions *o, struct AuditReport *rep,
                     audit_finding_fn found, audit_session_fn session, void *userdata, const char *what);
/* After the report is printed: 0, or 1 when stdout could not take it. */
int admin_report_written(void);
/* A chain verifier for a stored log: from seq 1, or from its retention anchor (admin-retention.c).
 * -EBADMSG with *ret_why when the log cannot be checked. */

int admin_log_verifier(Store *s, const StoreLog *l, LogVerifier **ret, const char **ret_why);
/* After retention's deletions (admin-space.c): a SQLite store gives back the space they freed, in short
 * steps (a file made incremental), or by one VACUUM of the whole file when vacuum; says what it gave back,
 * or what to do (a file made before: --vacuum once). dry_run: what is free, nothing given back. 0, or 1
 * after saying why it failed (nothing lost). */
int admin_store_space(Store *s, bool vacuum, bool dry_run);
