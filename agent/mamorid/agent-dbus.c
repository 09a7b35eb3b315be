/* org.mamori.Agent1 on the system bus: the vtable, who may call what, and the replies to the session logic's
 * outcomes. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <syslog.h>

#include "journal.h"
#include "mamorid.h"
#include "mamori/auth-reasons.h"
#include "mamori/dbus-api.h"
#include "mamori/macro.h"
#include "password-store.h"
#include "print-store.h"

#define USER_MAX      64
#define OP_KIND_MAX   64
#define OP_FIELDS_MAX 16
#define OP_KEY_MAX    64
#define OP_VALUE_MAX  256
#define APPS_GROUP    "mamori-apps"

/* A call the session logic holds is the method call message itself, one reference per holder. */
static SessionCall *call_of(sd_bus_message *m)
{
        return (SessionCall *)sd_bus_message_ref(m);
}

static sd_bus_message *message_of(SessionCall *call)
{
        return (sd_bus_message *)call;
}

/* Text that goes into records and the ledger: no control characters (C0, DEL, C1), no line or
 * paragraph separators and no bidi controls, which could make a ledger line read as another.
 * D-Bus already guarantees valid UTF-8. */
static bool printable(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p == 0x7f)
                        return false;
                if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* U+0080..U+009F */
                        return false;
                if (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xa8 && p[2] <= 0xae) /* U+2028..U+202E */
                        return false;
                if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9) /* U+2066..U+2069 */
                        return false;
        }
        return true;
}

/* ---- the methods: read and check the arguments, hand over to the session logic ---- */

static int run_start_login(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *user;
        int r;

        r = sd_bus_message_read(m, "s", &user);
        if (r < 0)
                return r;
        if (strlen(user) > USER_MAX || !printable(user))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "user: up to 64 printable bytes");
        session_start_login(&a->session, call_of(m), sd_bus_message_get_sender(m), user);
        return 1;
}

static int run_answer_pin(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *pin;
        int r;

        /* The method is SENSITIVE: sd-bus erases the message, PIN included, when it is freed. */
        r = sd_bus_message_read(m, "s", &pin);
        if (r < 0)
                return r;
        session_answer_pin(&a->session, call_of(m), pin);
        return 1;
}

static int run_answer_password(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *operator_id, *password;
        int r;

        /* SENSITIVE, like AnswerPin: the password is erased with the message. */
        r = sd_bus_message_read(m, "ss", &operator_id, &password);
        if (r < 0)
                return r;
        if (strlen(operator_id) > USER_MAX || !printable(operator_id))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID,
                                        "operator id: up to 64 printable bytes");
        session_answer_password(&a->session, call_of(m), operator_id, password);
        return 1;
}

static int run_change_password(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *old_password, *new_password;
        int r;

        r = sd_bus_message_read(m, "ss", &old_password, &new_password);
        if (r < 0)
                return r;
        session_change_password(&a->session, call_of(m), old_password, new_password);
        return 1;
}

static int run_password_age(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        session_password_age(&a->session, call_of(m));
        return 1;
}

static int run_cancel_login(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        session_cancel_login(&a->session, call_of(m));
        return 1;
}

static int run_lock(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        session_lock_call(&a->session, call_of(m));
        return 1;
}

static int run_change_pin(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *old_pin, *new_pin;
        int r;

        r = sd_bus_message_read(m, "ss", &old_pin, &new_pin);
        if (r < 0)
                return r;
        session_change_pin(&a->session, call_of(m), old_pin, new_pin);
        return 1;
}

static int run_record_operation(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        _cleanup_json_ JsonValue *data = NULL, *fields = NULL;
        const char *kind, *subject, *k, *v;
        unsigned n = 0;
        int r;

        r = sd_bus_message_read(m, "ss", &kind, &subject);
        if (r < 0)
                return r;
        if (!*kind || strlen(kind) > OP_KIND_MAX || strlen(subject) > OP_KIND_MAX || !printable(kind) ||
            !printable(subject))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "kind/subject: 1-64 printable bytes");
        if (json_new_object(&fields) < 0)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "{ss}", &k, &v)) > 0) {
                if (++n > OP_FIELDS_MAX || !*k || strlen(k) > OP_KEY_MAX || strlen(v) > OP_VALUE_MAX ||
                    !printable(k) || !printable(v))
                        return sd_bus_error_set(
                                error, MAMORI_ERROR_INVALID,
                                "fields: at most 16, keys 1-64 and values up to 256 printable bytes");
                r = json_object_set_string(fields, k, v);
                if (r == -EEXIST)
                        return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "duplicate field");
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        data = agent_data("kind", kind, "subject", subject, NULL);
        if (!data || json_object_set(data, "fields", TAKE_PTR(fields)) < 0)
                return -ENOMEM;
        session_record_operation(&a->session, call_of(m), TAKE_PTR(data));
        return 1;
}

static int run_start_bio_login(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *user, *modality;
        int r;

        r = sd_bus_message_read(m, "ss", &user, &modality);
        if (r < 0)
                return r;
        if (strlen(user) > USER_MAX || !printable(user) || strlen(modality) > 16 || !printable(modality))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "user, modality: printable, bounded");
        session_start_bio_login(&a->session, call_of(m), sd_bus_message_get_sender(m), user, modality);
        return 1;
}

static int run_scan_finger(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *modality;
        int r;

        r = sd_bus_message_read(m, "s", &modality);
        if (r < 0)
                return r;
        if (strlen(modality) > 16 || !printable(modality))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "modality: finger or vein");
        session_scan_finger(&a->session, call_of(m), modality);
        return 1;
}

static int run_enroll_finger(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        session_enroll_finger(&a->session, call_of(m), sd_bus_message_get_sender(m));
        return 1;
}

static int run_enroll_vein(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        session_enroll_vein(&a->session, call_of(m), sd_bus_message_get_sender(m));
        return 1;
}

/* Read-only and local: answered here, from the template store (fingerprints only). */
static int run_list_prints(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct print_set set = {0};
        int r;

        r = print_store_list(a->config.prints_directory, BIO_MODALITY_FINGER, &set);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "cannot read %s", a->config.prints_directory);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sux)");
        for (size_t i = 0; r >= 0 && i < set.n; i++)
                r = sd_bus_message_append(reply, "(sux)", set.items[i].operator_id, set.items[i].slot,
                                          set.items[i].mtime_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        print_set_done(&set);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r < 0 ? r : 1;
}

/* Every modality's templates: (modality, operator, slot, enrolled µs). */
static int run_list_templates(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssux)");
        for (unsigned mod = 0; r >= 0 && mod < _BIO_MODALITY_MAX; mod++) {
                struct print_set set = {0};

                r = print_store_list(a->config.prints_directory, (enum bio_modality)mod, &set);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, -r, "cannot read %s",
                                                       a->config.prints_directory);
                for (size_t i = 0; r >= 0 && i < set.n; i++)
                        r = sd_bus_message_append(
                                reply, "(ssux)", bio_modality_to_string(set.items[i].modality),
                                set.items[i].operator_id, set.items[i].slot, set.items[i].mtime_usec);
                print_set_done(&set);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r < 0 ? r : 1;
}

static int run_delete_templates(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *op, *modality;
        int r, mod;

        r = sd_bus_message_read(m, "ss", &op, &modality);
        if (r < 0)
                return r;
        if (!print_store_id_ok(op))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "operator: an operator id");
        mod = bio_modality_from_string(modality);
        if (mod < 0)
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "modality: finger or vein");
        session_delete_templates(&a->session, call_of(m), op, (enum bio_modality)mod);
        return 1;
}

static int run_delete_prints(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        const char *op;
        int r;

        r = sd_bus_message_read(m, "s", &op);
        if (r < 0)
                return r;
        if (!print_store_id_ok(op))
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "operator: an operator id");
        session_delete_prints(&a->session, call_of(m), op);
        return 1;
}

static int run_reset_password(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *op;
        uid_t login_uid;
        int64_t who = -1;
        int r;

        r = sd_bus_message_read(m, "s", &op);
        if (r < 0)
                return r;
        if (password_store_check_id(op) < 0)
                return sd_bus_error_set(error, MAMORI_ERROR_INVALID, "operator: an operator id");
        /* Who ran it behind sudo (the audit login uid), for the record: root is many people. */
        if (sd_bus_query_sender_creds(m, SD_BUS_CREDS_AUDIT_LOGIN_UID | SD_BUS_CREDS_AUGMENT, &creds) >= 0 &&
            sd_bus_creds_get_audit_login_uid(creds, &login_uid) >= 0 && login_uid != (uid_t)-1)
                who = (int64_t)login_uid;
        session_reset_password(&a->session, call_of(m), op, who);
        return 1;
}

static int run_pin_age(struct agent *a, sd_bus_message *m, sd_bus_error *error)
{
        session_pin_age(&a->session, call_of(m));
        return 1;
}

/* ---- the replies to a granted call ---- */

static int reply_empty(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "");
}

static int reply_login_started(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "si", o->card_id, o->tries);
}

static int reply_operator(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "s", o->operator_id);
}

static int reply_operator_step(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "ss", o->operator_id, o->step);
}

static int reply_enrolled(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "su", o->operator_id, (uint32_t)o->tries);
}

static int reply_count(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "u", (uint32_t)o->tries);
}

static int reply_password_age(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "iii", o->pin_age_days, o->max_age_days, o->warn_days);
}

static int reply_seq(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "t", o->seq);
}

static int reply_pin_age(sd_bus_message *m, const struct session_outcome *o)
{
        return sd_bus_reply_method_return(m, "iii", o->pin_age_days, o->max_age_days, o->warn_days);
}

/* ---- who may call what: the one table, applied by dispatch() before any method runs ---- */

/* Properties (State, Operator, Method, Step, Card, Reader, CardPresent, PolicySerial, Emergency,
 * LogWritable, Sensors) are status that holds no secret: ANYONE may read them (Get, GetAll), as the
 * bus policy lets everybody; only root may Set, and none is writable. */

enum caller_kind {
        ANYONE = 1 << 0,       /* any process on the system bus */
        ROOT = 1 << 1,         /* effective uid 0 */
        SEAT = 1 << 2,         /* a process of the seat's active logind session (greeter, screen locker) */
        CARD_SESSION = 1 << 3, /* SEAT, while mamori's session holds the very card in the reader */
        APPS = 1 << 4,         /* group mamori-apps (primary or supplementary) */
};

typedef int (*run_fn)(struct agent *a, sd_bus_message *m, sd_bus_error *error);
typedef int (*reply_fn)(sd_bus_message *m, const struct session_outcome *o);

#define ACCESS_DENIED SD_BUS_ERROR_ACCESS_DENIED
#define NOT_SEAT      "only root and the seat's active session may drive a login"

static const struct method {
        const char *name;
        unsigned callers;         /* caller kinds that may call it; anyone else hears denied_* */
        const char *denied_error; /* D-Bus error name */
        const char *denied_message;
        const char *others_login; /* set: only the client that started the pending login may call
                                   * it; any other caller of the kinds above hears NotPending */
        run_fn run;
        reply_fn reply;
} methods[] = {
        /* DESIGN §5: a stranger is refused before the card is touched and before any record. */
        {"StartLogin", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT, NULL, run_start_login, reply_login_started},
        {"AnswerPin", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT, "no login of yours is waiting for a PIN",
         run_answer_pin, reply_operator},
        {"AnswerPassword", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT,
         "no login of yours is waiting for a password", run_answer_password, reply_operator},
        {"CancelLogin", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT, "no login of yours is in progress",
         run_cancel_login, reply_empty},
        {"Lock", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT, NULL, run_lock, reply_empty},
        /* Nobody else may spend the card's PIN tries. */
        {"ChangePin", ROOT | CARD_SESSION, MAMORI_ERROR_PERMISSION,
         "the PIN can be changed only in the card's own session", NULL, run_change_pin, reply_empty},
        {"RecordOperation", ROOT | APPS, MAMORI_ERROR_PERMISSION,
         "only root and members of " APPS_GROUP " may record operations", NULL, run_record_operation,
         reply_seq},
        {"PinAgeDays", ANYONE, NULL, NULL, NULL, run_pin_age, reply_pin_age},
        /* Fingerprints: a finger login drives the seat like a card login; ScanFinger goes on with
         * the login of the client that started it. */
        {"StartBioLogin", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT, NULL, run_start_bio_login,
         reply_operator_step},
        {"ScanFinger", ROOT | SEAT, ACCESS_DENIED, NOT_SEAT, "no login of yours is waiting for a finger",
         run_scan_finger, reply_operator},
        /* A print is bound to the card-verified operator of the session that enrols it. */
        {"EnrollFinger", ROOT | CARD_SESSION, MAMORI_ERROR_PERMISSION,
         "a finger can be enrolled only in the card's own session", NULL, run_enroll_finger, reply_enrolled},
        {"EnrollVein", ROOT | CARD_SESSION, MAMORI_ERROR_PERMISSION,
         "a hand can be enrolled only in the card's own session", NULL, run_enroll_vein, reply_enrolled},
        {"ListPrints", ROOT, MAMORI_ERROR_PERMISSION, "only root may list the enrolled prints", NULL,
         run_list_prints, reply_empty},
        {"DeletePrints", ROOT, MAMORI_ERROR_PERMISSION, "only root may delete prints", NULL,
         run_delete_prints, reply_count},
        {"ListTemplates", ROOT, MAMORI_ERROR_PERMISSION, "only root may list the enrolled templates", NULL,
         run_list_templates, reply_empty},
        {"DeleteTemplates", ROOT, MAMORI_ERROR_PERMISSION, "only root may delete templates", NULL,
         run_delete_templates, reply_count},
        /* The active operator's own password: the logic also wants the session's card in, or a
         * session opened with a password, and the current password when one is set. */
        {"ChangePassword", ROOT | SEAT, MAMORI_ERROR_PERMISSION,
         "the password can be changed only from the seat's active session", NULL, run_change_password,
         reply_empty},
        {"PasswordAgeDays", ANYONE, NULL, NULL, NULL, run_password_age, reply_password_age},
        /* An administrator's reset of a forgotten password (mamorictl password reset). */
        {"ResetPassword", ROOT, MAMORI_ERROR_PERMISSION, "only root may reset a password", NULL,
         run_reset_password, reply_empty},
};

static const struct method *method_find(const char *name)
{
        for (size_t i = 0; name && i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, name))
                        return &methods[i];
        return NULL;
}

static bool in_group(sd_bus_creds *creds, gid_t group)
{
        const gid_t *gids = NULL;
        gid_t gid;
        int n;

        if (sd_bus_creds_get_egid(creds, &gid) >= 0 && gid == group)
                return true;
        n = sd_bus_creds_get_supplementary_gids(creds, &gids);
        for (int i = 0; i < n; i++)
                if (gids[i] == group)
                        return true;
        return false;
}

/* Whether the sender belongs to the seat's active logind session. The bus names the sender's
 * process by the PID it had when it connected; a pidfd pins that PID while logind is asked, and
 * afterwards the process must still run, as the uid the bus saw connect. A PID recycled by another
 * process in the meantime therefore counts only if it runs as the same uid (which could have
 * driven the session's processes anyway). Any doubt is a no. */
static bool sender_in_active_session(struct agent *a, sd_bus_creds *creds)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *now = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        struct pollfd p;
        uid_t uid, uid_now;
        pid_t pid;
        int r;

        if (!a->logind || sd_bus_creds_get_pid(creds, &pid) < 0 || pid <= 1 ||
            sd_bus_creds_get_euid(creds, &uid) < 0)
                return false;
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
                return false; /* gone already */
        r = logind_pid_in_active_session(a->logind, pid);
        if (r < 0)
                agent_log(LOG_WARNING, "cannot ask logind for the session of PID %d (%s): caller refused",
                          (int)pid, strerror(-r));
        if (r <= 0)
                return false;
        if (sd_bus_creds_new_from_pid(&now, pid, SD_BUS_CREDS_EUID) < 0 ||
            sd_bus_creds_get_euid(now, &uid_now) < 0 || uid_now != uid)
                return false;
        p = (struct pollfd){.fd = pidfd, .events = POLLIN};
        return poll(&p, 1, 0) == 0; /* not readable: the process has not exited, the PID is still its */
}

/* 1 when the sender of m is one of kinds, 0 when not, < 0 when its credentials cannot be read. */
static int caller_is(struct agent *a, sd_bus_message *m, unsigned kinds)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uint64_t mask = SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT;
        uid_t uid;
        int r;

        if (kinds & ANYONE)
                return 1;
        if (kinds & (SEAT | CARD_SESSION))
                mask |= SD_BUS_CREDS_PID;
        if (kinds & APPS)
                mask |= SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS;
        r = sd_bus_query_sender_creds(m, mask, &creds);
        if (r < 0)
                return r;
        if ((kinds & ROOT) && sd_bus_creds_get_euid(creds, &uid) >= 0 && uid == 0)
                return 1;
        if ((kinds & SEAT) && sender_in_active_session(a, creds))
                return 1;
        if ((kinds & CARD_SESSION) && session_holds_inserted_card(&a->session) &&
            sender_in_active_session(a, creds))
                return 1;
        if (kinds & APPS) {
                struct group *g = getgrnam(APPS_GROUP);
                if (g && in_group(creds, g->gr_gid))
                        return 1;
        }
        return 0;
}

/* Every method of the vtable comes here: the table says whether the caller may, then it runs. */
static int dispatch(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const struct method *method = method_find(sd_bus_message_get_member(m));
        int r;

        if (!method)
                return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_METHOD, "no such method");
        r = caller_is(a, m, method->callers);
        if (r < 0)
                return r;
        if (r == 0)
                return sd_bus_error_set(error, method->denied_error, method->denied_message);
        /* A login goes on only with the client that started it (the same connection, so the same
         * process the table let in). */
        if (method->others_login && session_login_pending(&a->session) &&
            !session_login_started_by(&a->session, sd_bus_message_get_sender(m)))
                return sd_bus_error_set(error, auth_reason_to_dbus_error(AUTH_NOT_PENDING),
                                        method->others_login);
        return method->run(a, m, error);
}

void agent_dbus_answer(struct agent *a, SessionCall *call, const struct session_outcome *o)
{
        sd_bus_message *m = message_of(call);
        const struct method *method = method_find(sd_bus_message_get_member(m));

        if (o->error < 0)
                (void)sd_bus_reply_method_errno(m, -o->error, NULL);
        else if (o->reason != AUTH_ALLOW)
                (void)sd_bus_reply_method_errorf(m, auth_reason_to_dbus_error(o->reason), "%s", o->message);
        else if (method)
                (void)method->reply(m, o);
        sd_bus_message_unref(m);
}

/* ---- properties and signals ---- */

static int prop_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        const struct session *s = &((struct agent *)userdata)->session;
        const char *v = "";

        if (streq(property, "State"))
                v = session_state_to_string(s->state);
        else if (streq(property, "Operator"))
                v = s->state == SESSION_ACTIVE ? s->operator_id : "";
        else if (streq(property, "Method"))
                v = s->state == SESSION_ACTIVE ? s->method : "";
        else if (streq(property, "Card"))
                v = s->card.present ? s->card.card_id : "";
        else if (streq(property, "Reader"))
                v = s->card.present ? s->card.reader : "";
        else if (streq(property, "Step"))
                v = session_step(s);
        return sd_bus_message_append(reply, "s", v);
}

static int prop_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        int v = 0;

        if (streq(property, "CardPresent"))
                v = a->session.card.present && !a->session.readers_lost;
        else if (streq(property, "Emergency"))
                v = a->emergency;
        else if (streq(property, "LogWritable"))
                v = a->log && oplog_writable(a->log);
        return sd_bus_message_append(reply, "b", v);
}

static int prop_serial(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        return sd_bus_message_append(reply, "x", (int64_t)a->policy_serial);
}

/* Sensors: what a login without a card can use now, in the order a login screen should offer them. */
static int prop_sensors(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        struct finger_device_info finger = {0};
        struct vein_device_info vein = {0};
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        if (a->finger)
                finger_worker_device(a->finger, &finger);
        if (finger.present) {
                r = sd_bus_message_append(reply, "s", "finger");
                if (r < 0)
                        return r;
        }
        /* A vein plugin loaded and its reader open. */
        if (a->vein)
                vein_worker_device(a->vein, &vein);
        if (vein.present) {
                r = sd_bus_message_append(reply, "s", "vein");
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Operator", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Method", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Card", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Reader", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CardPresent", "b", prop_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PolicySerial", "x", prop_serial, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Emergency", "b", prop_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LogWritable", "b", prop_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Step", "s", prop_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* A sensor opens in the background and may go away: read when needed, not signalled. */
        SD_BUS_PROPERTY("Sensors", "as", prop_sensors, 0, 0),
        /* Every method goes through dispatch(), so none runs before the permission table. */
        SD_BUS_METHOD("StartLogin", "s", "si", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("AnswerPin", "s", "s", dispatch, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD("AnswerPassword", "ss", "s", dispatch,
                      SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD("CancelLogin", "", "", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Lock", "", "", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ChangePin", "ss", "", dispatch, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD("RecordOperation", "ssa{ss}", "t", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("PinAgeDays", "", "iii", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("StartBioLogin", "ss", "ss", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ScanFinger", "s", "s", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("EnrollFinger", "", "su", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ListPrints", "", "a(sux)", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("DeletePrints", "s", "u", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("EnrollVein", "", "su", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ListTemplates", "", "a(ssux)", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("DeleteTemplates", "ss", "u", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ChangePassword", "ss", "", dispatch,
                      SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD("PasswordAgeDays", "", "iii", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ResetPassword", "s", "", dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL("StateChanged", "sss", 0),
        SD_BUS_SIGNAL("EnrollProgress", "siib", 0),
        SD_BUS_VTABLE_END,
};

void agent_dbus_changed(struct agent *a, const char *state_reason)
{
        const struct session *s = &a->session;

        if (!a->bus)
                return;
        (void)sd_bus_emit_properties_changed(a->bus, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "State",
                                             "Operator", "Method", "Card", "Reader", "CardPresent",
                                             "PolicySerial", "Emergency", "LogWritable", "Step", NULL);
        if (state_reason)
                (void)sd_bus_emit_signal(a->bus, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "StateChanged",
                                         "sss", session_state_to_string(s->state),
                                         s->state == SESSION_ACTIVE ? s->operator_id : "", state_reason);
}

/* A PAM client that disappears mid-login cancels it. */
static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct agent *a = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*old_owner && !*new_owner && session_login_started_by(&a->session, name))
                session_cancel_login(&a->session, NULL);
        if (*old_owner && !*new_owner)
                session_enroll_client_gone(&a->session, name);
        return 0;
}

void agent_dbus_enroll_progress(struct agent *a, const char *operator_id, int stage, int stages, bool retry)
{
        if (a->bus)
                (void)sd_bus_emit_signal(a->bus, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "EnrollProgress",
                                         "siib", operator_id, (int32_t)stage, (int32_t)stages, (int)retry);
}

int agent_dbus_start(struct agent *a)
{
        int r;

        r = sd_bus_open_system(&a->bus);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(a->bus, NULL, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, agent_vtable, a);
        if (r >= 0)
                r = sd_bus_match_signal(a->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed,
                                        a);
        if (r >= 0)
                r = sd_bus_attach_event(a->bus, a->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_request_name(a->bus, MAMORI_DBUS_NAME, 0);
        if (r < 0) {
                a->bus = sd_bus_flush_close_unref(a->bus);
                return r;
        }
        return 0;
}
