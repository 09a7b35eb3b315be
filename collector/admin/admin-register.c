/* mamori-admin register verbs (the 発行簿): operators, cards, groups, their history, its verification and
 * the card lists (unreturned, unused). Every change is a history row with who, when and why. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin-pki.h"
#include "admin.h"
#include "mamori/cert-check.h"
#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/json.h"
#include "register-rules.h"

static void fmt_time(int64_t usec, char buf[32])
{
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Appends the id to a space-separated list. */
static int list_append(char **list, const char *id)
{
        char *n;
        if (asprintf(&n, "%s%s%s", *list ? *list : "", *list ? " " : "", id) < 0)
                return -ENOMEM;
        free(*list);
        *list = n;
        return 0;
}

/* ---- operators ---- */

int admin_operator_add(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"name", required_argument, NULL, 'n'},
                {"office", required_argument, NULL, 'o'},
                {"reason", required_argument, NULL, 'r'},
                {},
        };
        _cleanup_free_ char *offices = NULL;
        const char *name = NULL, *reason = NULL;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "n:o:r:", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        name = optarg;
                        break;
                case 'o':
                        if (!admin_check_id("office", optarg) || list_append(&offices, optarg) < 0)
                                return 2;
                        break;
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || !offices) {
                fprintf(stderr, "usage: mamori-admin operator add ID [--name N] --office O [--office O…] "
                                "[--reason TEXT]\n");
                return 2;
        }
        if (!admin_check_id("operator id", argv[optind]))
                return 2;
        if (name && (strlen(name) > 256 || !admin_utf8_ok(name))) {
                fprintf(stderr, "mamori-admin: the name must be at most 256 bytes of UTF-8\n");
                return 2;
        }
        const AdminChange change = {.what = "operator add", .id = argv[optind]};
        r = admin_change_begin(ctx, reason, &change, &s);
        if (r != 0)
                return r;
        if (admin_change_end(s, store_operator_add(s, admin_now_usec(), argv[optind], name, offices),
                             &change))
                return 1;
        printf("operator %s added\n", argv[optind]);
        return 0;
}

/* Common to the status verbs: "VERB ID --reason TEXT" (the reason is optional where reason_optional). */
static int parse_status_args(int argc, char **argv, const char *noun, bool reason_optional,
                             const char **ret_id, const char **ret_reason)
{
        static const struct option options[] = {
                {"reason", required_argument, NULL, 'r'},
                {},
        };
        const char *reason = NULL;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "r:", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || (!reason_optional && !reason)) {
                fprintf(stderr, "usage: mamori-admin %s %s %s %s\n", noun, argv[0],
                        streq(noun, "card") ? "CARD_ID" : "ID",
                        reason_optional ? "[--reason TEXT]" : "--reason TEXT");
                if (!reason_optional && !reason)
                        fprintf(stderr,
                                "(the reason is kept in the register history with who made the change)\n");
                return 2;
        }
        *ret_id = argv[optind];
        *ret_reason = reason;
        return 0;
}

static int card_move(Store *s, int64_t now, const char *card_id, const char *to, const char *reason)
{
        StoreCard card;
        const char *why;
        int r = store_card_get(s, card_id, &card);
        if (r == -ENOENT) {
                fprintf(stderr, "mamori-admin: card %s is not in the register (see mamori-admin cards)\n",
                        card_id);
                return r;
        }
        if (r < 0)
                return r;
        why = register_move_refusal("card", card.status, to);
        if (why) {
                fprintf(stderr, "mamori-admin: card %s is %s: %s\n", card_id, card.status, why);
                return -EPERM;
        }
        return store_card_set_status(s, now, card_id, to, reason);
}

/* card suspend|return|resume CARD_ID [--reason TEXT] */
static int card_status(AdminContext *ctx, int argc, char **argv, const char *to, bool reason_optional)
{
        const char *id, *reason;
        Store *s;
        int r;

        r = parse_status_args(argc, argv, "card", reason_optional, &id, &reason);
        if (r != 0)
                return r;
        if (!hex_lower_valid(id, 64)) {
                fprintf(stderr, "mamori-admin: invalid card id (64 lowercase hex) '%s'\n", id);
                return 2;
        }
        const AdminChange change = {.what = "card", .id = id};
        r = admin_change_begin(ctx, reason, &change, &s);
        if (r != 0)
                return r;
        r = card_move(s, admin_now_usec(), id, to, NULL);
        if (r == -EPERM || r == -ENOENT) {
                store_rollback(s);
                return 1;
        }
        if (admin_change_end(s, r, &change))
                return 1;
        printf("card %s is now %s; publish it with: mamori-admin policy publish\n", id, to);
        return 0;
}

int admin_card_suspend(AdminContext *ctx, int argc, char **argv)
{
        return card_status(ctx, argc, argv, "suspended", false);
}

int admin_card_return(AdminContext *ctx, int argc, char **argv)
{
        return card_status(ctx, argc, argv, "returned", true);
}

int admin_card_resume(AdminContext *ctx, int argc, char **argv)
{
        return card_status(ctx, argc, argv, "active", false);
}

/* The operator's active cards, suspended with the operator (retire). */
typedef struct OperatorCards {
        const char *op;
        char (*ids)[65];
        size_t n, cap;
} OperatorCards;

static int collect_operator_card(const char *id, const char *operator_id, const char *group_id,
                                 const char *status, void *userdata)
{
        OperatorCards *oc = userdata;
        if (!operator_id || !streq(operator_id, oc->op) || streq(status, "returned"))
                return 0;
        if (oc->n == oc->cap) {
                size_t nc = oc->cap ? oc->cap * 2 : 8;
                void *p = realloc(oc->ids, nc * sizeof(*oc->ids));
                if (!p)
                        return -ENOMEM;
                oc->ids = p;
                oc->cap = nc;
        }
        snprintf(oc->ids[oc->n++], 65, "%s", id);
        return 0;
}

static int operator_status(AdminContext *ctx, int argc, char **argv, const char *to)
{
        _cleanup_free_ char *card_reason = NULL;
        OperatorCards oc = {};
        const char *id, *reason, *why;
        StoreOperator op;
        int64_t now = admin_now_usec();
        Store *s;
        int r;

        r = parse_status_args(argc, argv, "operator", false, &id, &reason);
        if (r != 0)
                return r;
        if (!admin_check_id("operator id", id))
                return 2;
        const AdminChange change = {.what = "operator", .id = id};
        r = admin_change_begin(ctx, reason, &change, &s);
        if (r != 0)
                return r;
        r = store_operator_get(s, id, &op);
        if (r == -ENOENT) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: operator %s is not in the register\n", id);
                return 1;
        }
        if (r < 0)
                return admin_change_end(s, r, &change);
        why = register_move_refusal("operator", op.status, to);
        if (why) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: operator %s is %s: %s\n", id, op.status, why);
                return 1;
        }
        r = store_operator_set_status(s, now, id, to, NULL);
        if (r >= 0 && streq(to, "retired")) {
                /* A retired operator's cards must not stay usable: each one still out is suspended and
                 * listed, to be collected (mamori-admin cards --unreturned). */
                oc.op = id;
                r = store_cards_foreach(s, collect_operator_card, &oc);
                if (r >= 0 && asprintf(&card_reason, "operator %s retired: %s", id, reason) < 0)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && i < oc.n; i++) {
                        StoreCard card;
                        r = store_card_get(s, oc.ids[i], &card);
                        if (r >= 0 && streq(card.status, "active"))
                                r = store_card_set_status(s, now, oc.ids[i], "suspended", card_reason);
                }
        }
        if (admin_change_end(s, r, &change)) {
                free(oc.ids);
                return 1;
        }
        printf("operator %s is now %s; publish it with: mamori-admin policy publish\n", id, to);
        if (streq(to, "retired")) {
                for (size_t i = 0; i < oc.n; i++)
                        printf("card %s suspended: collect it, then mamori-admin card return %s\n",
                               oc.ids[i], oc.ids[i]);
                if (oc.n == 0)
                        printf("no card of %s is out\n", id);
        }
        free(oc.ids);
        return 0;
}

int admin_operator_suspend(AdminContext *ctx, int argc, char **argv)
{
        return operator_status(ctx, argc, argv, "suspended");
}

int admin_operator_retire(AdminContext *ctx, int argc, char **argv)
{
        return operator_status(ctx, argc, argv, "retired");
}

int admin_operator_resume(AdminContext *ctx, int argc, char **argv)
{
        return operator_status(ctx, argc, argv, "active");
}

/* operator pin-reset ID --reason TEXT [--expired]: the PIN (or password) was reset at the centre. */
int admin_operator_pin_reset(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"reason", required_argument, NULL, 'r'},
                {"expired", no_argument, NULL, 'e'},
                {},
        };
        const char *reason = NULL;
        bool expired = false;
        int64_t now = admin_now_usec();
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "r:e", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        reason = optarg;
                        break;
                case 'e':
                        expired = true;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || !reason) {
                fprintf(stderr, "usage: mamori-admin operator pin-reset ID --reason TEXT [--expired]\n");
                return 2;
        }
        if (!admin_check_id("operator id", argv[optind]))
                return 2;
        const AdminChange change = {.what = "operator pin-reset", .id = argv[optind]};
        r = admin_change_begin(ctx, reason, &change, &s);
        if (r != 0)
                return r;
        /* --expired: a PIN the administrator set must be changed by its operator at the next login. */
        r = store_secret_reset(s, now, argv[optind], expired ? 0 : now);
        if (r == -ENOENT) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: operator %s is not in the register\n", argv[optind]);
                return 1;
        }
        if (admin_change_end(s, r, &change))
                return 1;
        printf("operator %s: PIN %s; publish it with: mamori-admin policy publish\n", argv[optind],
               expired ? "reset, to be changed at the next login" : "reset, its age counts from now");
        return 0;
}

/* ---- cards ---- */

/* The certificate must chain to the operator CA the terminals trust ([Card] TrustAnchors=): the same
 * check as a login (auth/cert-check.c). 0 ok, else printed. */
static int check_card_cert(AdminContext *ctx, X509 *cert)
{
        __attribute__((cleanup(cert_check_freep))) CertCheck *cc = NULL;
        _cleanup_free_ unsigned char *der = NULL;
        int len, r;

        len = i2d_X509(cert, &der);
        if (len <= 0)
                return -ENOMEM;
        r = cert_check_new(&cc);
        if (r < 0)
                return r;
        r = cert_check_add_anchors_file(cc, ctx->config.operator_ca);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: cannot read the operator CA %s: %s. Set [Cards] OperatorCA= in "
                        "collector.conf to the CA file the terminals trust as [Card] TrustAnchors=\n",
                        ctx->config.operator_ca, strerror(-r));
                return -EINVAL;
        }
        r = cert_check_verify(cc, der, (size_t)len, (uint64_t)admin_now_usec());
        if (r < 0)
                return r;
        if (r != CERT_CHECK_OK) {
                fprintf(stderr,
                        "mamori-admin: the certificate is refused (%s): %s. Nothing was issued; terminals "
                        "would refuse this card\n",
                        cert_check_reason_to_string(r),
                        r == CERT_CHECK_UNTRUSTED
                                ? "it does not chain to the operator CA of [Cards] OperatorCA="
                        : r == CERT_CHECK_EXPIRED   ? "it is outside its validity period"
                        : r == CERT_CHECK_BAD_USAGE ? "its keyUsage lacks digitalSignature"
                                                    : "it is malformed");
                return -EPERM;
        }
        return 0;
}

int admin_card_issue(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"cert", required_argument, NULL, 'c'},
                {"operator", required_argument, NULL, 'o'},
                {"group", required_argument, NULL, 'g'},
                {"reason", required_argument, NULL, 'r'},
                {},
        };
        const char *cert_path = NULL, *op = NULL, *group = NULL, *reason = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        _cleanup_free_ char *pem = NULL;
        char card_id[SHA256_HEX_MAX], when[32];
        StoreCard existing;
        size_t size;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:o:g:r:", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        cert_path = optarg;
                        break;
                case 'o':
                        op = optarg;
                        break;
                case 'g':
                        group = optarg;
                        break;
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || !cert_path || !!op == !!group) {
                fprintf(stderr, "usage: mamori-admin card issue --cert CERT.pem (--operator ID | --group G) "
                                "[--reason TEXT]\n");
                return 2;
        }
        if (!admin_check_id(op ? "operator id" : "group id", op ?: group))
                return 2;
        r = pki_load_cert(cert_path, &cert);
        if (r >= 0)
                r = pki_cert_sha256_hex(cert, card_id);
        if (r >= 0)
                r = read_file_bounded(cert_path, PEM_FILE_MAX, &pem, &size);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot read certificate %s: %s\n", cert_path, strerror(-r));
                return 1;
        }
        if (check_card_cert(ctx, cert) < 0)
                return 1;
        const AdminChange change = {.what = "card issue", .id = card_id};
        r = admin_change_begin(ctx, reason, &change, &s);
        if (r != 0)
                return r;
        r = store_card_get(s, card_id, &existing);
        if (r >= 0) {
                store_rollback(s);
                fmt_time(existing.issued, when);
                fprintf(stderr,
                        "mamori-admin: this certificate was already issued as card %s on %s to %s %s (now "
                        "%s): a certificate is issued once. See mamori-admin card history %s\n",
                        card_id, when, existing.operator_id[0] ? "operator" : "group",
                        existing.operator_id[0] ? existing.operator_id : existing.group_id, existing.status,
                        card_id);
                return 1;
        }
        if (r != -ENOENT)
                return admin_change_end(s, r, &change);
        r = 0;
        if (op) {
                StoreOperator o;
                r = store_operator_get(s, op, &o);
                if (r >= 0 && !streq(o.status, "active")) {
                        store_rollback(s);
                        fprintf(stderr, "mamori-admin: operator %s is %s: no card is issued to them\n", op,
                                o.status);
                        return 1;
                }
        }
        if (r >= 0)
                r = store_card_issue(s, admin_now_usec(), card_id, pem, op, group);
        if (r == -ENOENT) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: %s %s is not registered\n", op ? "operator" : "group",
                        op ?: group);
                return 1;
        }
        if (admin_change_end(s, r, &change))
                return 1;
        printf("%s\n", card_id);
        return 0;
}

/* ---- groups ---- */

int admin_group_add(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"office", required_argument, NULL, 'o'},
                {"member", required_argument, NULL, 'm'},
                {"reason", required_argument, NULL, 'r'},
                {},
        };
        _cleanup_free_ char *offices = NULL, *members = NULL;
        const char *reason = NULL;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:m:r:", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        if (!admin_check_id("office", optarg) || list_append(&offices, optarg) < 0)
                                return 2;
                        break;
                case 'm':
                        if (!admin_check_id("operator id", optarg) || list_append(&members, optarg) < 0)
                                return 2;
                        break;
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return 2;
                }
        /* "--member A B C": the ids after the group id are members too. */
        if (optind >= argc || !offices) {
                fprintf(stderr,
                        "usage: mamori-admin group add G --office O --member ID [ID…] [--reason TEXT]\n");
                return 2;
        }
        const char *id = argv[optind];
        if (!admin_check_id("group id", id))
                return 2;
        for (int i = optind + 1; i < argc; i++)
                if (!admin_check_id("operator id", argv[i]) || list_append(&members, argv[i]) < 0)
                        return 2;
        if (!members) {
                fprintf(stderr, "mamori-admin: a group needs at least one --member\n");
                return 2;
        }
        const AdminChange change = {.what = "group add", .id = id};
        r = admin_change_begin(ctx, reason, &change, &s);
        if (r != 0)
                return r;
        r = store_group_add(s, admin_now_usec(), id, offices, members);
        if (r == -ENOENT) {
                store_rollback(s);
                fprintf(stderr,
                        "mamori-admin: group add %s: a member is not a registered operator; nothing was "
                        "changed. Add them first (mamori-admin operator add), or leave them out\n",
                        id);
                return 1;
        }
        if (admin_change_end(s, r, &change))
                return 1;
        printf("group %s added\n", id);
        return 0;
}

/* ---- history and its verification ---- */

static int print_history(const RegisterRow *row, void *userdata)
{
        char when[32];

        fmt_time(row->ts, when);
        printf("%s\t%s\t%s\t%s\t%s\tby=%s\t%s\n", when, row->object, row->object_id, row->action,
               row->detail, row->actor[0] ? row->actor : "-", row->reason[0] ? row->reason : "-");
        return 0;
}

static int history(AdminContext *ctx, int argc, char **argv, const char *object)
{
        Store *s;
        if (argc > 2) {
                fprintf(stderr, "usage: mamori-admin %shistory [ID]\n", object ? "card " : "");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        return store_history_foreach(s, object, argc == 2 ? argv[1] : NULL, print_history, NULL) < 0 ? 1 : 0;
}

int admin_card_history(AdminContext *ctx, int argc, char **argv)
{
        return history(ctx, argc, argv, "card");
}

int admin_history(AdminContext *ctx, int argc, char **argv)
{
        return history(ctx, argc, argv, NULL);
}

typedef struct ChainCheck {
        int64_t last_id;
        char last_hash[SHA256_HEX_MAX];
        uint64_t rows, breaks;
} ChainCheck;

static void say_break(const RegisterRow *row, const char *why)
{
        char when[32];
        fmt_time(row->ts, when);
        printf("row %" PRId64 " (%s %s %s %s by %s): %s\n", row->id, when, row->object, row->object_id,
               row->action, row->actor[0] ? row->actor : "-", why);
}

static int check_row(const RegisterRow *row, void *userdata)
{
        ChainCheck *cc = userdata;
        char want[SHA256_HEX_MAX];
        RegisterRow content = *row;

        cc->rows++;
        if (row->id != cc->last_id + 1) {
                char why[160];
                if (row->id == cc->last_id + 2)
                        snprintf(why, sizeof(why),
                                 "row %" PRId64 " is missing before it (deleted from the history)",
                                 cc->last_id + 1);
                else
                        snprintf(why, sizeof(why),
                                 "rows %" PRId64 "..%" PRId64
                                 " are missing before it (deleted from the history)",
                                 cc->last_id + 1, row->id - 1);
                say_break(row, why);
                cc->breaks++;
        }
        if (!streq(row->prev, cc->last_hash)) {
                say_break(row,
                          row->id == cc->last_id + 1
                                  ? "its link (prev) is not the hash of the row before it: a row before "
                                    "it was changed, removed or inserted"
                                  : "its link (prev) does not continue the chain");
                cc->breaks++;
        }
        content.prev = row->prev;
        if (register_row_hash(&content, want) < 0 || !streq(want, row->hash)) {
                say_break(row,
                          "its content does not match its hash: the row was changed after it was written");
                cc->breaks++;
        }
        cc->last_id = row->id;
        snprintf(cc->last_hash, sizeof(cc->last_hash), "%s", row->hash);
        return 0;
}

int admin_register_verify(AdminContext *ctx, int argc, char **argv)
{
        ChainCheck cc = {.last_hash = REGISTER_PREV_FIRST};
        Store *s;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin register verify\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        r = store_history_foreach(s, NULL, NULL, check_row, &cc);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot read the register history: %s\n", strerror(-r));
                return 1;
        }
        if (cc.breaks > 0) {
                printf("register: %" PRIu64 " rows, the chain breaks at %" PRIu64
                       " place(s) listed above: rows from the first break on cannot be trusted. Compare "
                       "with a "
                       "backup of the database and with the head printed by earlier runs\n",
                       cc.rows, cc.breaks);
                return 1;
        }
        printf("register: %" PRIu64 " rows, chain intact; head row %" PRId64
               " hash %s (keep this line: a later "
               "run must show it again or continue from it)\n",
               cc.rows, cc.last_id, cc.last_hash);
        return 0;
}

/* ---- card lists ---- */

typedef struct CardRow {
        char id[65], owner[65], status[16];
        bool group, used;
} CardRow;

typedef struct CardList {
        CardRow *rows;
        size_t n, cap;
        bool unreturned;
        const char *op;
} CardList;

static int collect_card(const char *id, const char *operator_id, const char *group_id, const char *status,
                        void *userdata)
{
        CardList *cl = userdata;
        if (cl->unreturned && streq(status, "returned"))
                return 0;
        if (cl->op && !(operator_id && streq(operator_id, cl->op)))
                return 0;
        if (cl->n == cl->cap) {
                size_t nc = cl->cap ? cl->cap * 2 : 64;
                void *p = realloc(cl->rows, nc * sizeof(CardRow));
                if (!p)
                        return -ENOMEM;
                cl->rows = p;
                cl->cap = nc;
        }
        CardRow *c = &cl->rows[cl->n++];
        *c = (CardRow){.group = !operator_id};
        snprintf(c->id, sizeof(c->id), "%s", id);
        snprintf(c->owner, sizeof(c->owner), "%s", operator_id ?: group_id ?: "");
        snprintf(c->status, sizeof(c->status), "%s", status);
        return 0;
}

static int card_row_compare(const void *a, const void *b)
{
        return strcmp(((const CardRow *)a)->id, ((const CardRow *)b)->id);
}

/* Marks the cards that logged in (auth.ok or session.start naming the card) at or after since. */
static int mark_used(Store *s, CardList *cl, int64_t since)
{
        static const char *const needles[] = {"\"ev\":\"auth.ok\"", "\"ev\":\"session.start\""};
        _cleanup_audit_stream_ AuditStream *st = NULL;
        AuditRecord rec;
        int r;

        r = audit_stream_open(s, since, &st);
        if (r < 0)
                return r;
        audit_stream_set_filter(st, needles, ELEMENTSOF(needles));
        while ((r = audit_stream_next(st, &rec)) > 0) {
                if (rec.ts < since || !rec.card ||
                    !(streq(rec.ev, "auth.ok") || streq(rec.ev, "session.start")))
                        continue;
                CardRow key = {};
                snprintf(key.id, sizeof(key.id), "%s", rec.card);
                CardRow *c = bsearch(&key, cl->rows, cl->n, sizeof(CardRow), card_row_compare);
                if (c)
                        c->used = true;
        }
        return r;
}

int admin_cards(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"unreturned", no_argument, NULL, 'u'},
                {"unused-since", required_argument, NULL, 's'},
                {"operator", required_argument, NULL, 'o'},
                {"format", required_argument, NULL, 'F'},
                {},
        };
        const char *since_s = NULL, *format = "text";
        CardList cl = {};
        int64_t since = 0;
        size_t shown = 0;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "us:o:F:", options, NULL)) >= 0)
                switch (c) {
                case 'u':
                        cl.unreturned = true;
                        break;
                case 's':
                        since_s = optarg;
                        break;
                case 'o':
                        cl.op = optarg;
                        break;
                case 'F':
                        format = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr,
                        "usage: mamori-admin cards [--unreturned] [--unused-since DATE] [--operator ID] "
                        "[--format text|json]\n");
                return 2;
        }
        if (admin_check_format(format, "text|json") < 0 || (cl.op && !admin_check_id("operator id", cl.op)))
                return 2;
        if (since_s && audit_parse_date(since_s, &since) < 0) {
                fprintf(stderr, "mamori-admin: --unused-since wants a date YYYY-MM-DD (local time)\n");
                return 2;
        }
        /* An unused card is one still out (not returned) that nobody logged in with since DATE. */
        if (since_s)
                cl.unreturned = true;
        if (admin_store(ctx, &s) < 0)
                return 1;
        r = store_cards_foreach(s, collect_card, &cl);
        if (r >= 0 && cl.n > 0)
                qsort(cl.rows, cl.n, sizeof(CardRow), card_row_compare);
        if (r >= 0 && since_s)
                r = mark_used(s, &cl, since);
        if (r < 0) {
                free(cl.rows);
                fprintf(stderr, "mamori-admin: cannot read the store: %s\n", strerror(-r));
                return 1;
        }
        for (size_t i = 0; i < cl.n; i++) {
                const CardRow *row = &cl.rows[i];
                StoreOperator op = {};
                if (since_s && row->used)
                        continue;
                if (!row->group && store_operator_get(s, row->owner, &op) < 0)
                        snprintf(op.status, sizeof(op.status), "unknown");
                if (streq(format, "json"))
                        printf("{\"card\":\"%s\",\"%s\":\"%s\",\"status\":\"%s\"%s%s%s}\n", row->id,
                               row->group ? "group" : "operator", row->owner, row->status,
                               row->group ? "" : ",\"operator_status\":\"", row->group ? "" : op.status,
                               row->group ? "" : "\"");
                else
                        printf("%s\t%s %s\t%s%s%s\n", row->id, row->group ? "group" : "operator", row->owner,
                               row->status, row->group ? "" : "\toperator ", row->group ? "" : op.status);
                shown++;
        }
        free(cl.rows);
        if (streq(format, "text"))
                fprintf(stderr, "%zu cards%s%s%s\n", shown, cl.unreturned ? " not returned" : "",
                        since_s ? ", unused since " : "", since_s ?: "");
        return 0;
}
