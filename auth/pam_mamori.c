/* pam_mamori.so: operator card + PIN, a group card's member, or a finger/vein + password without a card,
 * through mamorid's D-Bus API; a thin sd-bus client.
 */

/*
 * The module holds no key, talks to no card and links no OpenSSL/PC/SC/curl: mamorid does all of
 * that and answers with named D-Bus errors, which this file turns into sentences for the operator
 * and into PAM return codes.
 *
 * Display-manager login and screen-locker unlock are the same call: both run pam_authenticate()
 * on their service (gdm-password, gdm-smartcard, swaylock, gnome-screensaver, …) and the agent
 * decides from the card alone who the operator is (Accounts=shared) or checks that the PAM user
 * is the card's operator (Accounts=per-operator). The module therefore does not care which
 * program calls it; a screen locker usually runs it as the desktop user, which is why every
 * method it uses is allowed to unprivileged callers by the agent's bus policy.
 *
 * Which accounts (DESIGN.md §4, normative): only members of the group named by group= (default
 * mamori-counter, primary or supplementary). For every other account each phase answers PAM_IGNORE
 * without touching the bus, so su, sudo, ssh, passwd and an administrator's login behave as without
 * mamori and an operator card never authenticates root or anyone else. pam-governed.c holds that
 * decision and its table; an unknown user is PAM_USER_UNKNOWN, a user database that cannot answer
 * fails closed.
 *
 * Group cards (DESIGN.md §4): a group card's AnswerPin answers operator ""; the agent's Step property
 * then says what comes next. For "password" the module asks the member's operator id and password
 * (AnswerPassword); a wrong one keeps the login waiting and is asked again, and the agent answers
 * each wrong one later than the last. In a session opened with a password, the account and password
 * steps age and change that password instead of the PIN.
 *
 * Without a card (DESIGN.md §4, finger+password, vein+password): when no card is in the reader and the
 * agent's Sensors property offers a modality, the operator is invited to use it or insert a card
 * ("Touch the fingerprint sensor, or insert your card"), StartBioLogin(user, that modality) waits for
 * the touch, and the identified operator's password is asked like a group card member's (same retries,
 * the agent answering each wrong one later). A card inserted before the agent answered takes over: the
 * bio login is cancelled (CancelLogin) and the card login starts, its PIN prompt saying what to do next;
 * a sensor the agent calls unavailable is said in words and a card is waited for. Empty Sensors: the
 * card is asked for, as ever. One deadline (timeout=) covers the touch and the card.
 *
 * Options: group=NAME, debug (log each step with pam_syslog), timeout=N (seconds to wait for a card or
 * a touch, 1–3600, default 60), max_tries=N (the cards' PIN retry limit, default 3: the prompt mentions the
 * tries left only when the card reports fewer; it is also how many times a PIN of the wrong shape,
 * which the agent refuses without touching the card, is asked for again).
 *
 * Language: every sentence the operator reads goes through gettext (domain "mamori", po/). The
 * language is the conversation's: LC_ALL, LC_MESSAGES or LANG of the PAM environment (a display
 * manager puts the language chosen at the greeter there), else of this process's environment; only
 * this thread's messages switch, for the time of the call (mamori/i18n.h). A language without a
 * catalogue, or whose locale is not installed, is English.
 *
 * Return codes for a governed account: PAM_AUTHINFO_UNAVAIL when the agent is not on the bus or no
 * card (nor touch) came within the timeout; PAM_AUTH_ERR for every refusal; PAM_MAXTRIES for a blocked PIN;
 * PAM_USER_UNKNOWN when the PAM user is not the card's operator; PAM_CONV_ERR when the application
 * cancelled the prompt. The shipped profile ([success=end ignore=ignore default=die]) makes each of
 * them the end of the stack: no password module is asked after a refused card.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <systemd/sd-bus.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_PASSWORD
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mamori/agent-client.h"
#include "mamori/dbus-api.h"
#include "mamori/i18n.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "pam-governed.h"

#define DEFAULT_TIMEOUT_SEC 60u
#define MAX_TIMEOUT_SEC     3600u
#define DEFAULT_MAX_TRIES   3

struct pam_mamori_options {
        bool debug;
        unsigned timeout_sec;
        int max_tries;
        const char *group; /* points into argv (PAM keeps it for the handle's life) or a literal */
};

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct pam_mamori_options *ret)
{
        struct pam_mamori_options o = {
                .timeout_sec = DEFAULT_TIMEOUT_SEC,
                .max_tries = DEFAULT_MAX_TRIES,
                .group = PAM_GOVERNED_DEFAULT_GROUP,
        };
        uint64_t v;

        for (int i = 0; i < argc; i++) {
                const char *a = argv[i];

                if (streq(a, "debug"))
                        o.debug = true;
                else if (strneq(a, "group=", 6)) {
                        /* A bad name falls back to the default group rather than to nobody governed. */
                        if (!governed_group_name_valid(a + 6))
                                pam_syslog(pamh, LOG_ERR, "ignoring bad option '%s'; governing group '%s'",
                                           a, PAM_GOVERNED_DEFAULT_GROUP);
                        else
                                o.group = a + 6;
                } else if (strneq(a, "timeout=", 8)) {
                        if (parse_uint64(a + 8, MAX_TIMEOUT_SEC, &v) < 0 || v < 1)
                                pam_syslog(pamh, LOG_WARNING, "ignoring bad option '%s' (1–%u seconds)", a,
                                           MAX_TIMEOUT_SEC);
                        else
                                o.timeout_sec = (unsigned)v;
                } else if (strneq(a, "max_tries=", 10)) {
                        if (parse_uint64(a + 10, 15, &v) < 0 || v < 1)
                                pam_syslog(pamh, LOG_WARNING, "ignoring bad option '%s' (1–15)", a);
                        else
                                o.max_tries = (int)v;
                } else
                        pam_syslog(pamh, LOG_WARNING, "ignoring unknown option '%s'", a);
        }
        *ret = o;
}

/* The conversation's locale value: the PAM environment first, then the process's; NULL when none. */
static const char *conversation_locale(pam_handle_t *pamh)
{
        static const char *const names[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
        const char *v;

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                v = pam_getenv(pamh, names[i]);
                if (v && v[0])
                        return v;
        }
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                v = getenv(names[i]);
                if (v && v[0])
                        return v;
        }
        return NULL;
}

/* Switches this thread's messages to the conversation's language until scope is left. */
static void speak_conversation_language(pam_handle_t *pamh, const struct pam_mamori_options *o,
                                        I18nScope *scope)
{
        const char *locale = i18n_language_locale(conversation_locale(pamh));
        int r;

        i18n_init();
        r = i18n_scope_enter(locale, scope);
        if (r == -ENOENT)
                pam_syslog(pamh, LOG_WARNING,
                           "locale %s is not installed: the operator reads English; generate it "
                           "(Debian: dpkg-reconfigure locales, or install locales-all)",
                           locale);
        else if (r < 0)
                pam_syslog(pamh, LOG_WARNING, "cannot switch to locale %s: %s; the operator reads English",
                           locale, strerror(-r));
        else if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "messages in locale %s", locale);
}

/* A message without an answer; PAM_SILENT silences only the informational ones. */
static void say(pam_handle_t *pamh, int flags, int style, const char *text)
{
        if (style == PAM_TEXT_INFO && (flags & PAM_SILENT))
                return;
        (void)pam_prompt(pamh, style, NULL, "%s", text);
}

/* A hidden answer; NULL when the application cancelled or has no conversation. */
static char *ask_secret(pam_handle_t *pamh, const char *prompt)
{
        char *answer = NULL;

        if (pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", prompt) != PAM_SUCCESS) {
                agent_secret_free(answer);
                return NULL;
        }
        return answer;
}

/* Connects and checks that the agent owns its name: PAM_SUCCESS or PAM_AUTHINFO_UNAVAIL (logged). */
static int connect_agent(pam_handle_t *pamh, const struct pam_mamori_options *o, sd_bus **ret)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = agent_bus_open(&bus);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "cannot connect to the system bus: %s; mamorid unreachable",
                           strerror(-r));
                return PAM_AUTHINFO_UNAVAIL;
        }
        r = agent_is_running(bus);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "cannot ask the system bus for %s: %s", MAMORI_DBUS_NAME,
                           strerror(-r));
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (r == 0) {
                pam_syslog(pamh, LOG_ERR, "%s has no owner on the system bus: mamorid is not running",
                           MAMORI_DBUS_NAME);
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "connected to %s", MAMORI_DBUS_NAME);
        *ret = TAKE_PTR(bus);
        return PAM_SUCCESS;
}

/*
 * Whose login is this? PAM_GOVERNED_PROCEED for a member of group=, else what this phase answers
 * (pam-governed.c's table) for everybody else. The user's name is logged only when it is known to
 * the user database: a mistyped password in the login field must not end up in the journal.
 */
static int governed_gate(pam_handle_t *pamh, const struct pam_mamori_options *o, PamPhase phase,
                         const char **ret_user)
{
        const char *user = NULL;
        AccountClass c;
        int r, rc;

        rc = pam_get_user(pamh, &user, NULL);
        if (rc == PAM_CONV_AGAIN)
                return PAM_INCOMPLETE;
        if (rc != PAM_SUCCESS || !user) {
                pam_syslog(pamh, LOG_ERR, "cannot get the PAM user: %s", pam_strerror(pamh, rc));
                c = ACCOUNT_UNKNOWN_USER;
        } else {
                r = account_classify(&nss_ops_libc, user, o->group, &c);
                if (r < 0) {
                        pam_syslog(pamh, LOG_ERR,
                                   "cannot tell whether the PAM user is in group '%s': %s; refusing (check "
                                   "nsswitch.conf and the user database)",
                                   o->group, strerror(-r));
                        c = ACCOUNT_LOOKUP_FAILED;
                }
        }
        rc = governed_answer(phase, c);
        switch (c) {
        case ACCOUNT_GOVERNED:
                if (o->debug)
                        pam_syslog(pamh, LOG_DEBUG, "user '%s' is in group '%s': card login", user,
                                   o->group);
                *ret_user = user;
                break;
        case ACCOUNT_OTHER:
                if (o->debug)
                        pam_syslog(pamh, LOG_DEBUG, "user '%s' is not in group '%s': not governed, %s", user,
                                   o->group, pam_strerror(pamh, rc));
                break;
        case ACCOUNT_NO_GROUP:
                pam_syslog(pamh, LOG_ERR,
                           "group '%s' does not exist: pam_mamori governs no account; create it "
                           "(systemd-sysusers, or groupadd %s) and add the counter account to it",
                           o->group, o->group);
                break;
        case ACCOUNT_UNKNOWN_USER:
                if (phase != PAM_PHASE_SETCRED)
                        pam_syslog(pamh, LOG_NOTICE, "unknown user: %s", pam_strerror(pamh, rc));
                break;
        default:
                break;
        }
        return rc;
}

static void log_refusal(pam_handle_t *pamh, const char *step, const struct agent_error_info *info,
                        const sd_bus_error *e)
{
        /* The error name and the agent's message carry reasons and counts, never the PIN. */
        pam_syslog(pamh, info->class == AGENT_ERROR_UNAVAILABLE ? LOG_ERR : LOG_NOTICE,
                   "%s refused: %s (%s: %s)", step, info->name, e && e->name ? e->name : "-",
                   e && e->message ? e->message : "-");
}

static int auth_pam_code(const struct agent_error_info *info)
{
        switch (info->class) {
        case AGENT_ERROR_UNAVAILABLE:
        case AGENT_ERROR_NO_CARD:
                return PAM_AUTHINFO_UNAVAIL;
        case AGENT_ERROR_PIN_BLOCKED:
                return PAM_MAXTRIES;
        case AGENT_ERROR_WRONG_USER:
                return PAM_USER_UNKNOWN;
        default:
                return PAM_AUTH_ERR;
        }
}

/* Card waiting: the agent's PropertiesChanged tells when CardPresent turns true. */
struct card_wait {
        bool present;
        bool refetch;
};

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        struct card_wait *w = userdata;
        const char *iface, *name;
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || !streq(iface, MAMORI_DBUS_INTERFACE))
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return 0;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (streq(name, "CardPresent")) {
                        int b;

                        if (sd_bus_message_read(m, "v", "b", &b) < 0)
                                return 0;
                        if (b)
                                w->present = true;
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        if (r < 0 || sd_bus_message_exit_container(m) < 0)
                return 0;
        if (sd_bus_message_enter_container(m, 'a', "s") > 0) {
                while (sd_bus_message_read(m, "s", &name) > 0)
                        if (streq(name, "CardPresent"))
                                w->refetch = true;
        }
        return 0;
}

/* Waits until the agent reports a card, at most until deadline, or (done not NULL) until *done turns
 * true: 1 card, 2 done, 0 timeout, < 0 bus failure. Besides the signal, the property is read once a
 * second, so a missed signal costs a second. */
static int wait_for_card(sd_bus *bus, struct card_wait *w, uint64_t deadline, const bool *done)
{
        uint64_t next_poll = now_mono_usec() + USEC_PER_SEC;
        int r;

        w->present = w->refetch = false;
        for (;;) {
                uint64_t t = now_mono_usec(), until;
                bool present;

                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (w->present)
                        return 1;
                if (done && *done)
                        return 2;
                if (r > 0)
                        continue;
                if (w->refetch || t >= next_poll) {
                        w->refetch = false;
                        next_poll = t + USEC_PER_SEC;
                        r = agent_get_card_present(bus, NULL, &present);
                        if (r < 0)
                                return r;
                        if (present)
                                return 1;
                        if (done && *done) /* answered while the property was read */
                                return 2;
                }
                if (t >= deadline)
                        return 0;
                until = next_poll < deadline ? next_poll : deadline;
                r = sd_bus_wait(bus, until - t);
                if (r < 0 && r != -EINTR)
                        return r;
        }
}

static void cancel_login(sd_bus *bus)
{
        (void)sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                 "CancelLogin", NULL, NULL, "");
}

/* A visible answer (an operator id); NULL when the application cancelled or has no conversation. */
static char *ask_visible(pam_handle_t *pamh, const char *prompt)
{
        char *answer = NULL;

        if (pam_prompt(pamh, PAM_PROMPT_ECHO_ON, &answer, "%s", prompt) != PAM_SUCCESS) {
                free(answer);
                return NULL;
        }
        return answer;
}

/* A secret step of a login: how it is answered, and which refusal leaves the login waiting for another
 * try (the agent keeps it pending: a PIN of the wrong shape never reaches the card; a wrong password
 * is answered later each time). */
struct secret_step {
        const char *method; /* for the journal */
        const char *what;
        enum agent_error_class again;
        int (*answer)(sd_bus *bus, const char *secret, const char *operator_id, sd_bus_error *error,
                      char **ret_operator);
};

static int answer_pin(sd_bus *bus, const char *pin, const char *operator_id, sd_bus_error *error,
                      char **ret_operator)
{
        return agent_answer_pin(bus, pin, error, ret_operator);
}

static int answer_password(sd_bus *bus, const char *password, const char *operator_id, sd_bus_error *error,
                           char **ret_operator)
{
        return agent_answer_password(bus, operator_id, password, error, ret_operator);
}

static const struct secret_step pin_step = {"AnswerPin", "PIN", AGENT_ERROR_PIN_FORMAT, answer_pin};
static const struct secret_step password_answer = {"AnswerPassword", "password", AGENT_ERROR_PASSWORD_WRONG,
                                                   answer_password};

/*
 * Ask, call, say the refusal in words; ask again after a refusal that leaves the login waiting, at most
 * max_tries secrets in all. Any other refusal, or the last one, ends the login: one the agent may
 * still hold (a refusal that leaves it waiting, or a call whose fate is unknown) is cancelled.
 * PAM_SUCCESS with *ret_operator.
 */
static int ask_until_answered(pam_handle_t *pamh, int flags, sd_bus *bus, const struct pam_mamori_options *o,
                              const struct secret_step *step, const char *prompt, const char *operator_id,
                              char **ret_operator)
{
        struct agent_error_info info;
        char text[256];
        int r;

        for (int asked = 1;; asked++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_secret_ char *secret = ask_secret(pamh, prompt);

                if (!secret) {
                        pam_syslog(pamh, LOG_NOTICE, "%s prompt cancelled; cancelling the login",
                                   step->what);
                        cancel_login(bus);
                        return PAM_CONV_ERR;
                }
                r = step->answer(bus, secret, operator_id, &error, ret_operator);
                if (r >= 0)
                        return PAM_SUCCESS;
                agent_error_classify(&error, r, &info);
                log_refusal(pamh, step->method, &info, &error);
                say(pamh, flags, PAM_ERROR_MSG, agent_error_format(&info, text, sizeof(text)));
                if (info.class == step->again && asked < o->max_tries)
                        continue;
                if (info.class == step->again || info.class == AGENT_ERROR_UNAVAILABLE ||
                    info.class == AGENT_ERROR_PROTOCOL || info.class == AGENT_ERROR_INVALID)
                        cancel_login(bus);
                return auth_pam_code(&info);
        }
}

/*
 * The password step of a login whose Step is "password": after a group card (known_operator NULL:
 * the member types their operator id first) or after a finger/vein identified the operator
 * (AnswerPassword's "" then means that one). PAM_SUCCESS with *ret_operator.
 */
static int password_step(pam_handle_t *pamh, int flags, sd_bus *bus, const struct pam_mamori_options *o,
                         bool known_operator, char **ret_operator)
{
        _cleanup_free_ char *member = NULL;

        if (!known_operator) {
                member = ask_visible(pamh, _("Operator ID: "));
                if (!member) {
                        pam_syslog(pamh, LOG_NOTICE, "operator id prompt cancelled; cancelling the login");
                        cancel_login(bus);
                        return PAM_CONV_ERR;
                }
        }
        return ask_until_answered(pamh, flags, bus, o, &password_answer, _("Password: "),
                                  member ? member : "", ret_operator);
}

/* Step "finger" after a card's PIN: a group card's member, or the holder's own finger with
 * RequireFingerWithCard=yes. The agent answers after the touch (or a pulled card, or a timeout). */
static int finger_step(pam_handle_t *pamh, int flags, sd_bus *bus, char **operator_id)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_error_info info;
        char text[256];
        int r;

        say(pamh, flags, PAM_TEXT_INFO, _("Touch the fingerprint sensor"));
        free(TAKE_PTR(*operator_id));
        r = agent_scan_finger(bus, &error, operator_id);
        if (r >= 0)
                return PAM_SUCCESS;
        agent_error_classify(&error, r, &info);
        log_refusal(pamh, "ScanFinger", &info, &error);
        say(pamh, flags, PAM_ERROR_MSG, agent_error_format(&info, text, sizeof(text)));
        if (info.class == AGENT_ERROR_UNAVAILABLE || info.class == AGENT_ERROR_PROTOCOL)
                cancel_login(bus);
        return auth_pam_code(&info);
}

/* After a card's PIN: what the login still waits for (a group card's member, the holder's finger),
 * nothing when the session is open already. */
static int next_step(pam_handle_t *pamh, int flags, sd_bus *bus, const struct pam_mamori_options *o,
                     char **operator_id)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *step = NULL;
        int r;

        r = agent_get_string(bus, "Step", &error, &step);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "cannot read the agent's Step: %s", strerror(-r));
                cancel_login(bus);
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "card accepted; next step '%s'", step);
        if (!step[0] && (*operator_id)[0])
                return PAM_SUCCESS; /* card and PIN were all it took */
        if (streq(step, "finger"))
                return finger_step(pamh, flags, bus, operator_id);
        if (streq(step, "password")) {
                free(TAKE_PTR(*operator_id));
                say(pamh, flags, PAM_TEXT_INFO,
                    _("Group card accepted — type your own operator ID and password"));
                return password_step(pamh, flags, bus, o, false, operator_id);
        }
        pam_syslog(pamh, LOG_ERR, "the login waits for step '%s', which this module cannot ask for", step);
        say(pamh, flags, PAM_ERROR_MSG,
            _("This terminal asks for a step this login screen cannot show — call your system "
              "administrator"));
        cancel_login(bus);
        return PAM_AUTH_ERR;
}

static int start_login(sd_bus *bus, const char *user, sd_bus_error *error, int *ret_tries)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *card_id;
        int32_t tries;
        int r;

        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "StartLogin",
                               error, &reply, "s", user);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "si", &card_id, &tries);
        if (r < 0)
                return r;
        *ret_tries = tries;
        return 0;
}

/* A card login StartLogin has begun: the PIN (the prompt mentions the tries left only when the card
 * reports fewer than max_tries), then whatever the login still waits for. */
static int card_login(pam_handle_t *pamh, int flags, sd_bus *bus, const struct pam_mamori_options *o,
                      int tries, char **ret_operator)
{
        _cleanup_free_ char *operator_id = NULL;
        char prompt[128];
        int rc;

        if (tries >= 0 && tries < o->max_tries)
                snprintf(prompt, sizeof(prompt), P_("PIN (%d try left): ", "PIN (%d tries left): ", tries),
                         tries);
        else
                snprintf(prompt, sizeof(prompt), "%s", _("PIN: "));
        rc = ask_until_answered(pamh, flags, bus, o, &pin_step, prompt, NULL, &operator_id);
        if (rc != PAM_SUCCESS)
                return rc;
        /* A group card answers no operator (a member identifies next); a card under
         * RequireFingerWithCard=yes answers its own but still waits for the finger (Step). */
        rc = next_step(pamh, flags, bus, o, &operator_id);
        if (rc != PAM_SUCCESS)
                return rc;
        *ret_operator = TAKE_PTR(operator_id);
        return PAM_SUCCESS;
}

/*
 * A login without a card (DESIGN.md §4, finger+password and vein+password): the modalities the agent
 * offers (its Sensors property), each with the words that invite the operator and those that say
 * nothing came. Only the first one this module knows is used.
 */
static const struct bio_modality {
        const char *name;    /* in Sensors; StartBioLogin's modality */
        const char *invite;  /* msgid */
        const char *nothing; /* msgid: neither a touch nor a card before the timeout */
} bio_modalities[] = {
        {"finger", N_("Touch the fingerprint sensor, or insert your card"),
         N_("No finger touched the sensor and no card was inserted — try again")},
        {"vein", N_("Place your hand on the vein reader, or insert your card"),
         N_("No hand was placed on the vein reader and no card was inserted — try again")},
};

static const struct bio_modality *pick_sensor(pam_handle_t *pamh, sd_bus *bus,
                                              const struct pam_mamori_options *o)
{
        _cleanup_(agent_strv_freep) char **sensors = NULL;
        int r;

        r = agent_get_sensors(bus, NULL, &sensors);
        if (r < 0) {
                /* An agent without the property, or a bus hiccup: a card still works. */
                pam_syslog(pamh, LOG_WARNING,
                           "cannot read the agent's Sensors (%s): waiting for a card only", strerror(-r));
                return NULL;
        }
        for (char **s = sensors; s && *s; s++)
                for (size_t i = 0; i < ELEMENTSOF(bio_modalities); i++)
                        if (streq(*s, bio_modalities[i].name))
                                return &bio_modalities[i];
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "no sensor for a login without a card: waiting for a card");
        return NULL;
}

/* StartBioLogin's answer, which comes after the touch: read asynchronously, so that a card inserted
 * meanwhile is seen. */
struct bio_answer {
        bool done;
        int r; /* < 0: the call failed; error says how */
        sd_bus_error error;
        char *operator_id;
        char *step;
};

static int on_bio_answer(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        struct bio_answer *b = userdata;
        const char *op, *step;
        int r;

        b->done = true;
        if (sd_bus_message_is_method_error(m, NULL)) {
                r = sd_bus_error_copy(&b->error, sd_bus_message_get_error(m));
                b->r = r < 0 ? r : -EIO;
                return 0;
        }
        r = sd_bus_message_read(m, "ss", &op, &step);
        if (r >= 0) {
                b->operator_id = strdup(op);
                b->step = strdup(step);
                if (!b->operator_id || !b->step)
                        r = -ENOMEM;
        }
        b->r = r < 0 ? r : 0;
        return 0;
}

static void bio_answer_done(struct bio_answer *b)
{
        sd_bus_error_free(&b->error);
        free(b->operator_id);
        free(b->step);
}

/* Ends the pending bio login and waits (bounded) for its call to be answered, so the agent is locked
 * and the connection free again when this returns. */
static void bio_cancel(sd_bus *bus, struct bio_answer *b)
{
        uint64_t until = now_mono_usec() + 5 * USEC_PER_SEC;

        cancel_login(bus);
        while (!b->done && now_mono_usec() < until) {
                if (sd_bus_process(bus, NULL) > 0)
                        continue;
                (void)sd_bus_wait(bus, 100 * 1000);
        }
}

#define BIO_WAIT_CARD (-1) /* bio_login(): go on with the card (one came, or the sensor is gone) */

/*
 * No card in the reader, a sensor offered: invite, StartBioLogin(user, modality), then the identified
 * operator's password. A card inserted before the agent answered takes over: the bio login is
 * cancelled and BIO_WAIT_CARD makes the caller start the card login, whose PIN prompt says what to do
 * next. A sensor the agent says is unavailable is said in words and BIO_WAIT_CARD waits for a card.
 * Any other refusal ends the login. A reader that can only verify answers Step "operator-id" at once
 * when user is no operator (a shared counter account): the operator id is asked (asked_id) and the
 * login starts again with it. PAM_SUCCESS with *ret_operator.
 */
static int bio_login(pam_handle_t *pamh, int flags, sd_bus *bus, const struct pam_mamori_options *o,
                     const char *user, bool asked_id, const struct bio_modality *mod, struct card_wait *w,
                     uint64_t deadline, char **ret_operator)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(bio_answer_done) struct bio_answer b = {.error = SD_BUS_ERROR_NULL};
        struct agent_error_info info;
        uint64_t now = now_mono_usec();
        char text[256];
        int r;

        say(pamh, flags, PAM_TEXT_INFO, _(mod->invite));
        r = sd_bus_message_new_method_call(bus, &m, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                           MAMORI_DBUS_INTERFACE, "StartBioLogin");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", user, mod->name);
        /* The deadline is this module's own; the call's timeout only backs it up. */
        if (r >= 0)
                r = sd_bus_call_async(bus, &slot, m, on_bio_answer, &b,
                                      (deadline > now ? deadline - now : 0) + 10 * USEC_PER_SEC);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "cannot call StartBioLogin: %s", strerror(-r));
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "no card; %s login started, waiting up to %u s for it or a card",
                           mod->name, o->timeout_sec);
        r = wait_for_card(bus, w, deadline, &b.done);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "lost the agent while waiting for a %s or a card: %s", mod->name,
                           strerror(-r));
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (r == 1) {
                pam_syslog(pamh, LOG_NOTICE,
                           "a card came while the %s login waited: the card login takes over", mod->name);
                bio_cancel(bus, &b);
                return BIO_WAIT_CARD;
        }
        if (r == 0) {
                pam_syslog(pamh, LOG_NOTICE, "neither a %s nor a card within %u s", mod->name,
                           o->timeout_sec);
                bio_cancel(bus, &b);
                say(pamh, flags, PAM_ERROR_MSG, _(mod->nothing));
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (b.r < 0) {
                agent_error_classify(&b.error, b.r, &info);
                log_refusal(pamh, "StartBioLogin", &info, &b.error);
                say(pamh, flags, PAM_ERROR_MSG, agent_error_format(&info, text, sizeof(text)));
                if (sd_bus_error_has_name(&b.error, MAMORI_ERROR_BIO_UNAVAILABLE))
                        return BIO_WAIT_CARD; /* its words: "use your card" */
                if (info.class == AGENT_ERROR_UNAVAILABLE || info.class == AGENT_ERROR_PROTOCOL)
                        cancel_login(bus);
                return auth_pam_code(&info);
        }
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "%s identified operator %s; next step '%s'", mod->name,
                           b.operator_id, b.step);
        if (streq(b.step, "operator-id") && !asked_id) {
                /* A reader that can only verify: it needs to know whose templates to compare with. */
                _cleanup_free_ char *id = ask_visible(pamh, _("Operator ID: "));
                if (!id || !id[0]) {
                        pam_syslog(pamh, LOG_NOTICE, "operator id prompt cancelled or empty");
                        return PAM_CONV_ERR;
                }
                return bio_login(pamh, flags, bus, o, id, true, mod, w, deadline, ret_operator);
        }
        if (!streq(b.step, "password")) {
                pam_syslog(pamh, LOG_ERR,
                           "the %s login waits for step '%s', which this module cannot ask for", mod->name,
                           b.step);
                say(pamh, flags, PAM_ERROR_MSG,
                    _("This terminal asks for a step this login screen cannot show — call your system "
                      "administrator"));
                cancel_login(bus);
                return PAM_AUTH_ERR;
        }
        return password_step(pamh, flags, bus, o, true, ret_operator);
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *operator_id = NULL;
        struct pam_mamori_options o;
        struct agent_error_info info;
        _cleanup_(i18n_scope_leave) I18nScope lang = {};
        struct card_wait w = {};
        char text[256];
        const char *user = NULL;
        bool asked_for_card = false, offered_sensor = false;
        uint64_t deadline;
        int tries = -1, r, rc;

        parse_options(pamh, argc, argv, &o);
        rc = governed_gate(pamh, &o, PAM_PHASE_AUTH, &user);
        if (rc != PAM_GOVERNED_PROCEED)
                return rc;
        speak_conversation_language(pamh, &o, &lang);

        rc = connect_agent(pamh, &o, &bus);
        if (rc != PAM_SUCCESS)
                return rc;

        /* Subscribe before the first StartLogin so a card inserted in between is not missed. */
        r = sd_bus_match_signal(bus, &slot, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH,
                                "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, &w);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "cannot subscribe to the agent's properties: %s", strerror(-r));
                return PAM_AUTHINFO_UNAVAIL;
        }

        /* No card: a sensor the agent offers is tried once (a card inserted meanwhile takes over);
         * without one, or after it, wait for a card. One deadline for all of it. */
        deadline = now_mono_usec() + (uint64_t)o.timeout_sec * USEC_PER_SEC;
        for (;;) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                r = start_login(bus, user, &error, &tries);
                if (r >= 0) {
                        if (o.debug)
                                pam_syslog(pamh, LOG_DEBUG,
                                           "card login started for user '%s' (card tries left %d)", user,
                                           tries);
                        rc = card_login(pamh, flags, bus, &o, tries, &operator_id);
                        break;
                }
                agent_error_classify(&error, r, &info);
                if (info.class != AGENT_ERROR_NO_CARD) {
                        log_refusal(pamh, "StartLogin", &info, &error);
                        say(pamh, flags, PAM_ERROR_MSG, agent_error_format(&info, text, sizeof(text)));
                        return auth_pam_code(&info);
                }
                if (!offered_sensor) {
                        const struct bio_modality *mod = pick_sensor(pamh, bus, &o);

                        offered_sensor = true;
                        if (mod) {
                                asked_for_card = true; /* the invitation named the card too */
                                rc = bio_login(pamh, flags, bus, &o, user, false, mod, &w, deadline,
                                               &operator_id);
                                if (rc != BIO_WAIT_CARD)
                                        break;
                                continue; /* a card: StartLogin again */
                        }
                }
                if (!asked_for_card) {
                        /* no-card's words */
                        say(pamh, flags, PAM_TEXT_INFO, agent_error_format(&info, text, sizeof(text)));
                        asked_for_card = true;
                }
                if (o.debug)
                        pam_syslog(pamh, LOG_DEBUG, "no card; waiting up to %u s", o.timeout_sec);
                r = wait_for_card(bus, &w, deadline, NULL);
                if (r < 0) {
                        pam_syslog(pamh, LOG_ERR, "lost the agent while waiting for a card: %s",
                                   strerror(-r));
                        return PAM_AUTHINFO_UNAVAIL;
                }
                if (r == 0) {
                        pam_syslog(pamh, LOG_NOTICE, "no card inserted within %u s", o.timeout_sec);
                        say(pamh, flags, PAM_ERROR_MSG, _("No card was inserted — try again"));
                        return PAM_AUTHINFO_UNAVAIL;
                }
        }
        if (rc != PAM_SUCCESS)
                return rc;

        pam_syslog(pamh, LOG_INFO, "operator %s logged in (PAM user '%s')", operator_id, user);
        /* For the session stack and the desktop: who is at the counter now. */
        snprintf(text, sizeof(text), "MAMORI_OPERATOR=%s", operator_id);
        (void)pam_putenv(pamh, text);
        return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        struct pam_mamori_options o;
        const char *user;
        int rc;

        parse_options(pamh, argc, argv, &o);
        rc = governed_gate(pamh, &o, PAM_PHASE_SETCRED, &user);
        return rc == PAM_GOVERNED_PROCEED ? PAM_SUCCESS : rc;
}

/*
 * The agent is "active" as soon as AnswerPin succeeds, before the account step. When that step
 * demands a PIN change, a marker is left on the PAM handle; a successful chauthtok removes it.
 * If the handle ends with the marker still there (change refused, cancelled, or never asked
 * for), its cleanup calls Lock, so an expired PIN never leaves an open operator session behind.
 */
#define PIN_CHANGE_PENDING "pam_mamori_pin_change_pending"
#define SECRET_PIN         "PIN"
#define SECRET_PASSWORD    "password"

/* data: SECRET_PIN or SECRET_PASSWORD, what the account step found expired. */
static void pin_change_pending_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (error_status & PAM_DATA_REPLACE)
                return; /* chauthtok succeeded and cleared the marker */
        r = agent_bus_open(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE,
                                       "Lock", NULL, NULL, "");
        if (!(error_status & PAM_DATA_SILENT))
                pam_syslog(pamh, r < 0 ? LOG_ERR : LOG_NOTICE,
                           "expired %s was not changed: %s the operator session",
                           data ? (const char *)data : SECRET_PIN, r < 0 ? "could not lock" : "locked");
}

/* True when the active session was opened with a password (its secret to age and change is that). */
static bool session_uses_password(sd_bus *bus)
{
        _cleanup_free_ char *method = NULL;

        return agent_get_string(bus, "Method", NULL, &method) >= 0 && strstr(method, "password");
}

/* The account step of a password session: [Secrets] MaxAgeDays/WarnDays on the operator's password. */
static int password_account(pam_handle_t *pamh, int flags, sd_bus *bus, const struct pam_mamori_options *o)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct agent_error_info info;
        int days, max_days, warn_days, r;
        char text[200];

        r = agent_password_age(bus, &error, &days, &max_days, &warn_days);
        if (r < 0) {
                agent_error_classify(&error, r, &info);
                log_refusal(pamh, "PasswordAgeDays", &info, &error);
                return info.class == AGENT_ERROR_NOT_ACTIVE    ? PAM_IGNORE
                       : info.class == AGENT_ERROR_UNAVAILABLE ? PAM_AUTHINFO_UNAVAIL
                                                               : PAM_PERM_DENIED;
        }
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "password age %d days, maximum %d, warning %d before", days,
                           max_days, warn_days);
        if (days < 0 || max_days <= 0)
                return PAM_SUCCESS;
        if (days >= max_days) {
                snprintf(text, sizeof(text),
                         P_("Your password is older than %d day and must be changed now",
                            "Your password is older than %d days and must be changed now", max_days),
                         max_days);
                say(pamh, flags, PAM_ERROR_MSG, text);
                (void)pam_set_data(pamh, PIN_CHANGE_PENDING, (void *)SECRET_PASSWORD,
                                   pin_change_pending_cleanup);
                return PAM_NEW_AUTHTOK_REQD;
        }
        if (warn_days > 0 && days >= max_days - warn_days) {
                int left = max_days - days;
                snprintf(text, sizeof(text),
                         P_("Your password expires in %d day — change it with: mamorictl passwd --password",
                            "Your password expires in %d days — change it with: mamorictl passwd --password",
                            left),
                         left);
                say(pamh, flags, PAM_TEXT_INFO, text);
        }
        return PAM_SUCCESS;
}

/* The account step: a PIN older than the policy's maximum age must be changed before the session. */
PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct pam_mamori_options o;
        struct agent_error_info info;
        _cleanup_(i18n_scope_leave) I18nScope lang = {};
        int32_t days, max_days, warn_days;
        const char *user;
        char text[256];
        int r, rc;

        parse_options(pamh, argc, argv, &o);
        rc = governed_gate(pamh, &o, PAM_PHASE_ACCOUNT, &user);
        if (rc != PAM_GOVERNED_PROCEED)
                return rc;
        speak_conversation_language(pamh, &o, &lang);
        rc = connect_agent(pamh, &o, &bus);
        if (rc != PAM_SUCCESS)
                return rc;
        if (session_uses_password(bus))
                return password_account(pamh, flags, bus, &o);
        r = sd_bus_call_method(bus, MAMORI_DBUS_NAME, MAMORI_DBUS_PATH, MAMORI_DBUS_INTERFACE, "PinAgeDays",
                               &error, &reply, "");
        if (r >= 0)
                r = sd_bus_message_read(reply, "iii", &days, &max_days, &warn_days);
        if (r < 0) {
                agent_error_classify(&error, r, &info);
                log_refusal(pamh, "PinAgeDays", &info, &error);
                switch (info.class) {
                case AGENT_ERROR_NOT_ACTIVE:
                        /* No card session: an account step without a card login before it (root's
                         * su to the account, the user manager). Its auth, if any, was ours and ended
                         * the stack on failure; the PIN's age is not this step's question then. */
                        return PAM_IGNORE;
                case AGENT_ERROR_UNAVAILABLE:
                        return PAM_AUTHINFO_UNAVAIL;
                default:
                        return PAM_PERM_DENIED;
                }
        }
        if (o.debug)
                pam_syslog(pamh, LOG_DEBUG, "PIN age %d days, maximum %d, warning %d days before", days,
                           max_days, warn_days);
        if (days < 0 || max_days <= 0)
                return PAM_SUCCESS;
        if (days < max_days) {
                /* [Secrets] WarnDays: the last days before the change is forced, say so at every login. */
                if (warn_days > 0 && days >= max_days - warn_days) {
                        int left = max_days - days;
                        snprintf(
                                text, sizeof(text),
                                P_("Your PIN must be changed within %d day — change it now with `mamorictl "
                                   "passwd` (your card stays in the reader)",
                                   "Your PIN must be changed within %d days — change it now with `mamorictl "
                                   "passwd` (your card stays in the reader)",
                                   left),
                                left);
                        say(pamh, flags, PAM_TEXT_INFO, text);
                }
                return PAM_SUCCESS;
        }
        snprintf(text, sizeof(text),
                 P_("Your PIN is older than %d day and must be changed",
                    "Your PIN is older than %d days and must be changed", max_days),
                 max_days);
        say(pamh, flags, PAM_ERROR_MSG, text);
        (void)pam_set_data(pamh, PIN_CHANGE_PENDING, (void *)SECRET_PIN, pin_change_pending_cleanup);
        return PAM_NEW_AUTHTOK_REQD;
}

/*
 * For an account mamori does not govern, the password step only stands in for the first module of
 * the block: Debian's pam-auth-update gives every password module after the first one use_authtok,
 * and pam_unix with use_authtok changes nothing unless an earlier module has read the new password.
 * So the new password is read here with libpam's own prompts ("New password:", "Retype new
 * password:", as pam_unix would ask them, and as pam_pwquality does in the same place) and left as
 * PAM_AUTHTOK for the module that changes it; pam_mamori itself answers PAM_IGNORE and changes
 * nothing. A token an earlier module already read is used as it is, without a prompt.
 */
static void read_new_password_for_next_module(pam_handle_t *pamh, int flags)
{
        const char *token = NULL;

        if (!(flags & PAM_UPDATE_AUTHTOK))
                return;
        (void)pam_get_authtok(pamh, PAM_AUTHTOK, &token, NULL);
}

/* A refused ChangePin or ChangePassword: logged, said in words, and its PAM code (wrong_old: the
 * refusal of a wrong current secret). */
static int change_refused(pam_handle_t *pamh, int flags, const char *method,
                          enum agent_error_class wrong_old, int r, const sd_bus_error *error)
{
        struct agent_error_info info;
        char text[256];

        agent_error_classify(error, r, &info);
        log_refusal(pamh, method, &info, error);
        say(pamh, flags, PAM_ERROR_MSG, agent_error_format(&info, text, sizeof(text)));
        if (info.class == wrong_old)
                return PAM_AUTHTOK_RECOVERY_ERR;
        switch (info.class) {
        case AGENT_ERROR_PERMISSION:
        case AGENT_ERROR_NOT_ACTIVE:
                return PAM_PERM_DENIED;
        case AGENT_ERROR_UNAVAILABLE:
                return PAM_TRY_AGAIN;
        default:
                return PAM_AUTHTOK_ERR;
        }
}

/* A password session's password step: the operator's own password on this terminal. */
static int change_password(pam_handle_t *pamh, int flags, sd_bus *bus)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_secret_ char *old_password = NULL, *new_password = NULL, *again = NULL;
        int r;

        old_password = ask_secret(pamh, _("Current password: "));
        if (!old_password)
                return PAM_CONV_ERR;
        new_password = ask_secret(pamh, _("New password: "));
        if (!new_password)
                return PAM_CONV_ERR;
        again = ask_secret(pamh, _("Repeat new password: "));
        if (!again)
                return PAM_CONV_ERR;
        if (!streq(new_password, again)) {
                say(pamh, flags, PAM_ERROR_MSG,
                    _("The new passwords do not match — the password was not changed; try again"));
                return PAM_AUTHTOK_ERR;
        }
        if (streq(new_password, old_password)) {
                say(pamh, flags, PAM_ERROR_MSG,
                    _("The new password must differ from the current one — choose another and try again"));
                return PAM_AUTHTOK_ERR;
        }
        r = agent_change_password(bus, old_password, new_password, &error);
        if (r < 0)
                return change_refused(pamh, flags, "ChangePassword", AGENT_ERROR_PASSWORD_WRONG, r, &error);
        pam_syslog(pamh, LOG_INFO, "operator password changed");
        (void)pam_set_data(pamh, PIN_CHANGE_PENDING, NULL, NULL);
        say(pamh, flags, PAM_TEXT_INFO, _("Password changed"));
        return PAM_SUCCESS;
}

/* The password step changes the PIN on the card (forced by the account step, or asked for), or the
 * operator's password in a session opened with one. */
PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_secret_ char *old_pin = NULL, *new_pin = NULL, *again = NULL;
        struct pam_mamori_options o;
        _cleanup_(i18n_scope_leave) I18nScope lang = {};
        const char *user;
        int r, rc;

        parse_options(pamh, argc, argv, &o);
        rc = governed_gate(pamh, &o, PAM_PHASE_PASSWORD, &user);
        if (rc != PAM_GOVERNED_PROCEED) {
                if (rc == PAM_IGNORE)
                        read_new_password_for_next_module(pamh, flags);
                return rc;
        }
        speak_conversation_language(pamh, &o, &lang);
        rc = connect_agent(pamh, &o, &bus);
        if (flags & PAM_PRELIM_CHECK)
                return rc == PAM_SUCCESS ? PAM_SUCCESS : PAM_TRY_AGAIN;
        if (!(flags & PAM_UPDATE_AUTHTOK))
                return PAM_SERVICE_ERR;
        if (rc != PAM_SUCCESS) {
                say(pamh, flags, PAM_ERROR_MSG,
                    _("The access-control agent is not running — the PIN was not changed; call your system "
                      "administrator"));
                return PAM_TRY_AGAIN;
        }
        const void *pending = NULL;
        if (pam_get_data(pamh, PIN_CHANGE_PENDING, &pending) != PAM_SUCCESS)
                pending = NULL;
        if (pending ? streq((const char *)pending, SECRET_PASSWORD) : session_uses_password(bus))
                return change_password(pamh, flags, bus);

        old_pin = ask_secret(pamh, _("Current PIN: "));
        if (!old_pin)
                return PAM_CONV_ERR;
        new_pin = ask_secret(pamh, _("New PIN (6–8 digits): "));
        if (!new_pin)
                return PAM_CONV_ERR;
        if (!agent_pin_format_ok(new_pin)) {
                say(pamh, flags, PAM_ERROR_MSG,
                    _("The new PIN must be 6 to 8 digits — the PIN was not changed; try again"));
                return PAM_AUTHTOK_ERR;
        }
        again = ask_secret(pamh, _("Repeat new PIN: "));
        if (!again)
                return PAM_CONV_ERR;
        if (!streq(new_pin, again)) {
                say(pamh, flags, PAM_ERROR_MSG,
                    _("The new PINs do not match — the PIN was not changed; try again"));
                return PAM_AUTHTOK_ERR;
        }

        r = agent_change_pin(bus, old_pin, new_pin, &error);
        if (r < 0)
                return change_refused(pamh, flags, "ChangePin", AGENT_ERROR_PIN_WRONG, r, &error);
        pam_syslog(pamh, LOG_INFO, "card PIN changed");
        /* Replacing the marker runs its cleanup with PAM_DATA_REPLACE: no Lock. */
        (void)pam_set_data(pamh, PIN_CHANGE_PENDING, NULL, NULL);
        say(pamh, flags, PAM_TEXT_INFO, _("PIN changed"));
        return PAM_SUCCESS;
}
