/* mamorictl auth-test: one whole card login in this process (no daemon), for the bench and by hand. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ctl-verbs.h"
#include "mamori/agent-config.h"
#include "mamori/auth-decision.h"
#include "mamori/card-login.h"
#include "mamori/card.h"
#include "mamori/cert-check.h"
#include "mamori/macro.h"
#include "mamori/policy-store.h"
#include "mamori/time-util.h"

#define EXIT_ALLOW  0
#define EXIT_REFUSE 1
#define EXIT_OTHER  2

#define PIN_INPUT_MAX 64
#define READERS_MAX   (64u * 1024u)

static void config_diag(void *userdata, enum conf_level level, const char *file, unsigned line,
                        const char *message)
{
        fprintf(stderr, "mamorictl: %s:%u: %s: %s\n", file, line, level == CONF_ERROR ? "error" : "warning",
                message);
}

/* One line from fd 0: from the terminal without echo, else as piped in. The newline is dropped.
 * -ENODATA on EOF before any byte, -E2BIG for an over-long line. */
static int read_pin(char pin[PIN_INPUT_MAX + 1])
{
        struct termios old, quiet;
        bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
        size_t n = 0;
        int r = 0;

        if (tty) {
                fputs("PIN: ", stderr);
                fflush(stderr);
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
                quiet.c_lflag |= ICANON;
                if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
                        return negative_errno();
        }
        for (;;) {
                char ch;
                ssize_t k = read(STDIN_FILENO, &ch, 1);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = negative_errno();
                        break;
                }
                if (k == 0) {
                        if (n == 0)
                                r = -ENODATA;
                        break;
                }
                if (ch == '\n')
                        break;
                if (n >= PIN_INPUT_MAX) {
                        r = -E2BIG;
                        break;
                }
                pin[n++] = ch;
                ch = 0;
        }
        if (n > 0 && pin[n - 1] == '\r')
                n--;
        pin[n] = '\0';
        if (tty) {
                (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
                fputc('\n', stderr);
        }
        if (r < 0)
                OPENSSL_cleanse(pin, PIN_INPUT_MAX + 1);
        return r;
}

/* The first reader (in PC/SC order) that holds a card, among those whose name contains filter
 * (or equals it, with exact). *ret_reader is "" when none has a card. */
static int find_reader(SCARDCONTEXT ctx, const char *filter, bool exact, char **ret_reader)
{
        _cleanup_free_ char *list = NULL;
        DWORD len = 0;
        LONG rv;

        rv = SCardListReaders(ctx, NULL, NULL, &len);
        if (rv == SCARD_E_NO_READERS_AVAILABLE) {
                *ret_reader = strdup("");
                return *ret_reader ? 0 : -ENOMEM;
        }
        if (rv != SCARD_S_SUCCESS)
                return card_pcsc_error_to_errno(rv);
        if (len == 0 || len > READERS_MAX)
                return -E2BIG;
        list = calloc(1, (size_t)len + 1);
        if (!list)
                return -ENOMEM;
        rv = SCardListReaders(ctx, NULL, list, &len);
        if (rv == SCARD_E_NO_READERS_AVAILABLE) {
                *ret_reader = strdup("");
                return *ret_reader ? 0 : -ENOMEM;
        }
        if (rv != SCARD_S_SUCCESS)
                return card_pcsc_error_to_errno(rv);

        for (const char *p = list; *p && p < list + len; p += strlen(p) + 1) {
                SCARD_READERSTATE st = {.szReader = p, .dwCurrentState = SCARD_STATE_UNAWARE};

                if (filter && *filter && (exact ? !streq(p, filter) : !strstr(p, filter)))
                        continue;
                rv = SCardGetStatusChange(ctx, 0, &st, 1);
                if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT)
                        return card_pcsc_error_to_errno(rv);
                if ((st.dwEventState & SCARD_STATE_PRESENT) && !(st.dwEventState & SCARD_STATE_MUTE)) {
                        *ret_reader = strdup(p);
                        return *ret_reader ? 0 : -ENOMEM;
                }
        }
        *ret_reader = strdup("");
        return *ret_reader ? 0 : -ENOMEM;
}

/* Default certificate cache: "cache/certs" beside the policy directory, e.g.
 * /var/lib/mamori/policy → /var/lib/mamori/cache/certs. */
static char *default_cache_dir(const char *policy_dir)
{
        _cleanup_free_ char *copy = strdup(policy_dir);
        char *slash, *out = NULL;

        if (!copy)
                return NULL;
        while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
                copy[strlen(copy) - 1] = '\0';
        slash = strrchr(copy, '/');
        if (!slash)
                return asprintf(&out, "cache/certs") < 0 ? NULL : out;
        if (slash == copy)
                return strdup("/cache/certs");
        *slash = '\0';
        return asprintf(&out, "%s/cache/certs", copy) < 0 ? NULL : out;
}

/* Drives the card-login engine on one reader, in this process: connect, one PC/SC transaction
 * for prepare → precheck → PIN → signature, the decision, then a reset before the transaction
 * ends when a PIN was sent. 0 with *ret_decision and l's info filled; -ENOMEM, or
 * CARD_E_NO_SERVICE when pcscd is gone (no decision). *ret_connect_failed: the error was at connect. */
static int drive_login(CardLogin *l, SCARDCONTEXT ctx, const char *reader, const char *pin,
                       CertCheck *anchors, const char *cache_dir, const struct auth_context *actx,
                       struct auth_decision *ret_decision, bool *ret_connect_failed)
{
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        struct auth_decision d;
        int r;

        *ret_connect_failed = false;
        if (!reader) {
                *ret_decision = card_login_precheck(l, anchors, actx);
                return 0;
        }
        r = card_pcsc_connect(ctx, reader, &p);
        if (r == CARD_E_NO_SERVICE || r == -ENOMEM)
                return r;
        if (r >= 0) {
                r = card_pcsc_begin(p);
                if (r < 0)
                        p = card_pcsc_free(TAKE_PTR(p));
        }
        if (r < 0) {
                *ret_connect_failed = r != CARD_E_REMOVED;
                r = card_login_set_card(l, r != CARD_E_REMOVED, r, NULL, 0);
                if (r < 0)
                        return r;
                *ret_decision = card_login_precheck(l, anchors, actx);
                return 0;
        }

        r = card_login_prepare(l, card_pcsc_transport(p), cache_dir);
        if (r == -ENOMEM)
                goto finish;
        d = card_login_precheck(l, anchors, actx);
        if (d.reason == AUTH_ALLOW) {
                (void)card_login_verify(l, pin);
                d = card_login_decide(l, NULL, actx);
        }
        *ret_decision = d;
        r = 0;
finish:
        card_login_detach(l);
        /* Reset while still holding the transaction: the PIN-verified state dies with it. */
        if (card_login_info(l)->pin_sent)
                p = card_pcsc_free_reset(TAKE_PTR(p));
        else
                (void)card_pcsc_end(p);
        return r;
}

static void help(void)
{
        printf("Usage: mamorictl auth-test [--config FILE] [--reader NAME] [--no-cache] [--cert-cache DIR] "
               "[--verbose]\n"
               "Runs one whole card login against the inserted card in this process (no daemon) and\n"
               "prints 'allow OPERATOR' (exit 0) or 'refuse REASON' (exit 1; 'tries=N' after pin-wrong).\n"
               "The PIN is read from the terminal without echo, or as one line of standard input.\n\n"
               "  --config FILE      agent configuration (default %s)\n"
               "  --reader NAME      this reader (exact name) instead of the first one with a card\n"
               "  --no-cache         always read the certificate from the card\n"
               "  --cert-cache DIR   certificate cache (default: cache/certs beside [Policy] Directory)\n"
               "  --verbose          card id, card exchanges and elapsed time on standard error\n",
               AGENT_CONFIG_PATH);
}

int ctl_auth_test(int argc, char **argv)
{
        enum { ARG_CONFIG = 0x100, ARG_READER, ARG_NO_CACHE, ARG_CERT_CACHE, ARG_VERBOSE };
        static const struct option options[] = {
                {"config", required_argument, NULL, ARG_CONFIG},
                {"reader", required_argument, NULL, ARG_READER},
                {"no-cache", no_argument, NULL, ARG_NO_CACHE},
                {"cert-cache", required_argument, NULL, ARG_CERT_CACHE},
                {"verbose", no_argument, NULL, ARG_VERBOSE},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *config_path = AGENT_CONFIG_PATH, *reader_arg = NULL, *cache_arg = NULL;
        bool no_cache = false, verbose = false, have_ctx = false;
        struct agent_config config = {};
        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        _cleanup_(cert_check_freep) CertCheck *anchors = NULL;
        _cleanup_free_ char *reader = NULL, *cache_dir = NULL;
        _cleanup_(card_login_freep) CardLogin *login = NULL;
        struct auth_decision decision = {};
        bool connect_failed = false;
        struct policy_load_result load = {};
        char pin[PIN_INPUT_MAX + 1] = {};
        SCARDCONTEXT ctx = 0;
        uint64_t t0, t1;
        int opt, r, ret = EXIT_OTHER;
        LONG rv;

        optind = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case ARG_CONFIG:
                        config_path = optarg;
                        break;
                case ARG_READER:
                        reader_arg = optarg;
                        break;
                case ARG_NO_CACHE:
                        no_cache = true;
                        break;
                case ARG_CERT_CACHE:
                        cache_arg = optarg;
                        break;
                case ARG_VERBOSE:
                        verbose = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return EXIT_OTHER;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl auth-test: unexpected argument '%s'\n", argv[optind]);
                return EXIT_OTHER;
        }

        r = agent_config_load(config_path, config_diag, NULL, &config);
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: cannot load configuration %s: %s\n", config_path,
                        r == -EINVAL ? "errors above" : strerror(-r));
                return EXIT_OTHER;
        }

        r = cert_check_new(&anchors);
        if (r >= 0)
                r = cert_check_add_anchors_file(anchors, config.trust_anchors);
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: cannot load TrustAnchors=%s: %s\n",
                        config.trust_anchors, strerror(-r));
                goto finish;
        }
        if (!no_cache) {
                cache_dir = cache_arg ? strdup(cache_arg) : default_cache_dir(config.policy_directory);
                if (!cache_dir) {
                        r = -ENOMEM;
                        goto oom;
                }
        }

        r = read_pin(pin);
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: no PIN read: %s\n",
                        r == -ENODATA ? "end of input"
                        : r == -E2BIG ? "line too long"
                                      : strerror(-r));
                goto finish;
        }

        /* The figure the bench reports starts here: PIN typed, card in the reader. */
        t0 = now_mono_usec();

        r = policy_store_open(&config, &store);
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: cannot read the policy signer key %s: %s\n",
                        config.policy_signer_key, strerror(-r));
                goto finish;
        }
        r = policy_store_reload(store, &load);
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: cannot load the policy: %s\n", strerror(-r));
                goto finish;
        }
        switch (load.outcome) {
        case POLICY_LOAD_REJECTED:
                fprintf(stderr, "mamorictl auth-test: policy %s/%s rejected (%s, serial %lld)%s\n",
                        policy_store_directory(store), POLICY_STORE_FILE,
                        load.reason ? load.reason : "invalid", (long long)load.serial,
                        policy_store_current(store) ? "; the previously accepted policy stays in force"
                                                    : "; no valid policy");
                break;
        case POLICY_LOAD_MISSING:
                fprintf(stderr, "mamorictl auth-test: no policy at %s/%s\n", policy_store_directory(store),
                        POLICY_STORE_FILE);
                break;
        default:
                break;
        }

        rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
        if (rv != SCARD_S_SUCCESS) {
                fprintf(stderr, "mamorictl auth-test: PC/SC unavailable (is pcscd running?): %s\n",
                        pcsc_stringify_error(rv));
                goto finish;
        }
        have_ctx = true;
        r = find_reader(ctx, reader_arg ? reader_arg : config.readers, reader_arg != NULL, &reader);
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: cannot list readers: %s\n", card_strerror(r));
                goto finish;
        }

        const Policy *policy = policy_store_current(store);
        struct auth_context actx = {
                .policy = policy,
                .terminal_id = config.terminal_id,
                .office = config.office,
                .now_usec = now_realtime_usec(),
                .stale_policy = config.stale_policy,
        };
        r = card_login_new(&login);
        if (r >= 0)
                r = drive_login(login, ctx, *reader ? reader : NULL, pin, anchors, cache_dir, &actx,
                                &decision, &connect_failed);
        OPENSSL_cleanse(pin, sizeof(pin));
        t1 = now_mono_usec();
        if (r == -ENOMEM)
                goto oom;
        if (r < 0) {
                fprintf(stderr, "mamorictl auth-test: %s\n",
                        r == CARD_E_NO_SERVICE ? "pcscd went away during the login" : card_strerror(r));
                goto finish;
        }

        const struct card_login_info *info = card_login_info(login);
        const char *failed_step = connect_failed ? "connect" : info->failed_step;
        if (verbose) {
                fprintf(stderr, "mamorictl auth-test: reader=\"%s\" card=%s cert=%s pin_sent=%s\n", reader,
                        *info->card_id ? info->card_id : "-", info->cert_from_cache ? "cache" : "card",
                        info->pin_sent ? "yes" : "no");
                fprintf(stderr, "mamorictl auth-test: exchanges=%u elapsed_us=%llu after_pin=%u\n",
                        info->exchanges, (unsigned long long)(t1 - t0), info->exchanges_after_pin);
        }
        if (decision.reason == AUTH_CARD_ERROR)
                fprintf(stderr, "mamorictl auth-test: card error at %s: %s\n",
                        failed_step ? failed_step : "login", card_strerror(info->card_error));
        if (decision.reason == AUTH_POLICY_STALE && policy)
                fprintf(stderr, "mamorictl auth-test: policy serial %lld expired\n",
                        (long long)policy->serial);
        if (decision.policy_stale)
                fprintf(stderr,
                        "mamorictl auth-test: warning: policy serial %lld is stale (StalePolicy=warn)\n",
                        (long long)policy->serial);

        if (decision.reason == AUTH_ALLOW) {
                if (decision.operator_id)
                        printf("allow %s\n", decision.operator_id);
                else
                        printf("allow group:%s\n", decision.group_id ? decision.group_id : "?");
                ret = EXIT_ALLOW;
        } else if (decision.reason == AUTH_PIN_WRONG && decision.tries_left >= 0) {
                printf("refuse %s tries=%d\n", auth_reason_to_string(decision.reason), decision.tries_left);
                ret = EXIT_REFUSE;
        } else {
                printf("refuse %s\n", auth_reason_to_string(decision.reason));
                ret = EXIT_REFUSE;
        }
        goto finish;

oom:
        fprintf(stderr, "mamorictl auth-test: out of memory\n");
finish:
        OPENSSL_cleanse(pin, sizeof(pin));
        if (have_ctx)
                SCardReleaseContext(ctx);
        agent_config_free(&config);
        fflush(stdout);
        return ret;
}
