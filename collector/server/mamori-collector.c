/* mamori-collector: the central HTTPS service that verifies and durably stores terminal logs. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "collector-config.h"
#include "http-server.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "receipt-key.h"
#include "store.h"

static void diag(void *userdata, enum conf_level level, const char *file, unsigned line, const char *message)
{
        fprintf(stderr, "%s:%u: %s: %s\n", file, line, level == CONF_ERROR ? "error" : "warning", message);
}

static int read_state_file(const struct collector_config *c, const char *name, char **ret)
{
        _cleanup_free_ char *path = collector_state_path(c, name);
        size_t size;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_bounded(path, 256 * 1024, ret, &size);
        if (r < 0)
                fprintf(stderr, "mamori-collector: cannot read %s: %s (run mamori-admin init)\n", path,
                        strerror(-r));
        return r;
}

/* A descriptor per connection: MaxConnections (plus the database and the listener) must fit under
 * the soft limit, which systemd sets to 1024 by default; the hard limit is ours to use. */
static void raise_fd_limit(uint32_t max_connections)
{
        struct rlimit rl;
        rlim_t need = (rlim_t)max_connections + 64;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
                fprintf(stderr,
                        "mamori-collector: only %llu descriptors for MaxConnections=%u: raise LimitNOFILE= "
                        "or lower MaxConnections=\n",
                        (unsigned long long)rl.rlim_cur, max_connections);
}

static void help(void)
{
        printf("Usage: mamori-collector [--config FILE] [--check-config | --receipt-key]\n"
               "Central collector of mamori operation logs (HTTPS, client certificates).\n\n"
               "  -c, --config FILE   collector.conf (default /etc/mamori/collector.conf, drop-ins in "
               "FILE.d/)\n"
               "      --check-config  check the configuration and the state files it names, then exit\n"
               "                      (0: nothing to report; 1: each problem as file:line)\n"
               "      --receipt-key   print the public receipt key (PEM), making the key first if needed,\n"
               "                      and exit; terminals trust it as [Collector] ReceiptKey=\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n");
}

/* The name in the receipts: Name=, else the host name when it is a valid id. */
static int receipt_name(const struct collector_config *cfg, char *buf, size_t size)
{
        size_t n;

        if (cfg->name) {
                snprintf(buf, size, "%s", cfg->name);
                return 0;
        }
        if (gethostname(buf, size) < 0 || !memchr(buf, '\0', size))
                return -EINVAL;
        n = strlen(buf);
        if (n == 0 || n > 64 ||
            strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") != n)
                return -EINVAL;
        return 0;
}

static int load_receipt_key(const struct collector_config *cfg, EVP_PKEY **ret)
{
        _cleanup_free_ char *path = collector_state_path(cfg, RECEIPT_PUB_FILE);
        bool created = false;
        int r;

        r = collector_receipt_key(cfg, true, ret, &created);
        if (r < 0)
                fprintf(stderr,
                        "mamori-collector: cannot load or make the receipt key in %s: %s (the state "
                        "directory must be the collector's and writable)\n",
                        cfg->state_directory, strerror(-r));
        else if (created)
                fprintf(stderr,
                        "mamori-collector: made the receipt key; give terminals %s as [Collector] "
                        "ReceiptKey=\n",
                        path ? path : RECEIPT_PUB_FILE);
        return r;
}

/* DESIGN §11: mamori-admin's keys are never the collector's. Those of an older centre in the state
 * directory, or an admin directory this process can read, are reported (n of them). */
static unsigned custody_problems(const struct collector_config *cfg, const char *prefix)
{
        static const char *const admin_keys[] = {"policy.key", "terminal-ca.key", "collector-ca.key"};
        unsigned n = 0;

        for (size_t i = 0; i < ELEMENTSOF(admin_keys); i++) {
                _cleanup_free_ char *in_state = collector_state_path(cfg, admin_keys[i]);
                _cleanup_free_ char *in_admin = collector_admin_path(cfg, admin_keys[i]);
                if (in_state && access(in_state, F_OK) == 0) {
                        fprintf(stderr,
                                "%s: error: %s is mamori-admin's key and must not be the collector's: run "
                                "any "
                                "mamori-admin key verb as root (e.g. mamori-admin policy refresh), which "
                                "moves "
                                "it to %s\n",
                                prefix, in_state, cfg->admin_directory);
                        n++;
                } else if (in_admin && access(in_admin, R_OK) == 0 && geteuid() != 0) {
                        fprintf(stderr,
                                "%s: error: this process can read %s: the admin directory must be root's "
                                "only "
                                "(chmod 0700 %s) and inaccessible to the collector's unit\n",
                                prefix, in_admin, cfg->admin_directory);
                        n++;
                }
        }
        return n;
}

/* --check-config, like sshd -t: every problem on stderr, exit 1 if there was any. */
static int check_config(const char *path)
{
        static const char *const state_files[] = {"collector.pem", "collector.key", "terminal-ca.pem"};
        struct collector_config cfg = {};
        unsigned problems = 0;
        int r;

        r = collector_config_load(path, conf_diag_print, &problems, &cfg);
        if (r < 0) {
                if (problems == 0)
                        fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(-r));
                return 1;
        }
        for (size_t i = 0; i < ELEMENTSOF(state_files); i++) {
                _cleanup_free_ char *f = collector_state_path(&cfg, state_files[i]);
                if (!f || access(f, R_OK) < 0) {
                        fprintf(stderr, "%s: error: cannot read %s: %s (run mamori-admin init)\n", path,
                                f ?: state_files[i], strerror(f ? errno : ENOMEM));
                        problems++;
                }
        }
        problems += custody_problems(&cfg, path);
        collector_config_free(&cfg);
        return problems > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'}, {"receipt-key", no_argument, NULL, 'R'},
                {"check-config", no_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},      {},
        };
        bool check = false;
        const char *config_path = "/etc/mamori/collector.conf";
        struct collector_config cfg = {};
        _cleanup_free_ char *cert = NULL, *key = NULL, *trust = NULL, *address = NULL, *why = NULL;
        _cleanup_store_ Store *scan_store = NULL;
        _cleanup_pkey_ EVP_PKEY *receipt_key = NULL;
        HttpServer *server = NULL;
        bool print_receipt_key = false;
        char name[256];
        uint16_t port;
        sigset_t mask;
        int c, r, sig = 0;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'R':
                        print_receipt_key = true;
                        break;
                case 'C':
                        check = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("mamori-collector %s\n", MAMORI_VERSION);
                        return 0;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "mamori-collector: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (check)
                return check_config(config_path);

        r = collector_config_load(config_path, diag, NULL, &cfg);
        if (r < 0) {
                fprintf(stderr, "mamori-collector: cannot load %s: %s\n", config_path, strerror(-r));
                return 1;
        }
        /* Loud, but no refusal: an older centre keeps serving its terminals until mamori-admin has
         * moved the keys. */
        (void)custody_problems(&cfg, "mamori-collector");
        r = load_receipt_key(&cfg, &receipt_key);
        if (r < 0)
                goto out;
        if (print_receipt_key) {
                _cleanup_free_ char *pem = NULL;
                r = collector_receipt_pub_pem(receipt_key, &pem);
                if (r >= 0)
                        fputs(pem, stdout);
                goto out;
        }
        r = receipt_name(&cfg, name, sizeof(name));
        if (r < 0) {
                fprintf(stderr, "mamori-collector: the host name is not a valid receipt name: set "
                                "[Collector] Name=\n");
                goto out;
        }
        r = collector_parse_listen(cfg.listen, &address, &port);
        if (r < 0)
                goto out;
        raise_fd_limit(cfg.max_connections);
        if ((r = read_state_file(&cfg, "collector.pem", &cert)) < 0 ||
            (r = read_state_file(&cfg, "collector.key", &key)) < 0 ||
            (r = read_state_file(&cfg, "terminal-ca.pem", &trust)) < 0)
                goto out;
        /* Before serving: a role that lacks a privilege of ingest would answer every POST with a 503. */
        r = store_open_checked(cfg.database, STORE_ACCESS_INGEST, &scan_store, &why);
        if (r < 0) {
                fprintf(stderr, "mamori-collector: %s\n", why ?: strerror(-r));
                goto out;
        }
        /* Said at every start, not refused: a collector that does not start stops the policy too (card
         * suspensions, an emergency lock) from reaching the terminals. */
        if (store_check_excess(scan_store, STORE_ACCESS_INGEST, &why) > 0)
                fprintf(stderr, "mamori-collector: warning: %s. The collector serves meanwhile\n", why);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGPIPE);
        sigprocmask(SIG_BLOCK, &mask, NULL); /* before the server thread starts: it inherits the mask */

        HttpServerConfig hc = {
                .address = address,
                .port = port,
                .cert_pem = cert,
                .key_pem = key,
                .trust_pem = trust,
                .max_body = cfg.max_body_bytes,
                .max_records = cfg.max_batch_records,
                .idle_timeout_sec = (unsigned)(cfg.idle_timeout_usec / USEC_PER_SEC) ?: 1,
                .request_timeout_sec = (unsigned)(cfg.request_timeout_usec / USEC_PER_SEC) ?: 1,
                .max_connections = cfg.max_connections,
                .max_unauthenticated = cfg.max_unauthenticated,
                .max_per_ip = cfg.max_connections_per_ip,
                .store_url = cfg.database,
                .workers = cfg.workers,
                .verify_threads = cfg.verify_threads,
                .receipt_key = receipt_key,
                .name = name,
        };
        r = http_server_start(&hc, &server);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-collector: cannot start on %s: %s (is the address free and the store "
                        "reachable?)\n",
                        cfg.listen, strerror(-r));
                goto out;
        }
        if (key)
                explicit_bzero(key, strlen(key));
        fprintf(stderr, "mamori-collector: listening on %s port %u\n", address, http_server_port(server));

        /* Main thread: signals, the silent-terminal check and store maintenance on its own connection. */
        for (;;) {
                struct timespec ts = {.tv_sec = (time_t)(cfg.silent_check_usec / USEC_PER_SEC),
                                      .tv_nsec = (long)(cfg.silent_check_usec % USEC_PER_SEC) * 1000};
                unsigned n = 0;

                sig = sigtimedwait(&mask, NULL, &ts);
                if (sig == SIGTERM || sig == SIGINT)
                        break;
                if (sig < 0 && errno == EAGAIN) {
                        r = store_alert_silent(scan_store, now_realtime_usec(), cfg.silent_usec, &n);
                        if (r < 0)
                                fprintf(stderr, "mamori-collector: silent check failed: %s\n", strerror(-r));
                        else if (n > 0)
                                fprintf(stderr, "mamori-collector: %u terminal(s) silent, alert raised\n",
                                        n);
                        /* PostgreSQL: next months' partitions of records made ahead, strays filed. */
                        r = store_maintain(scan_store, now_realtime_usec());
                        if (r < 0)
                                fprintf(stderr,
                                        "mamori-collector: store maintenance failed: %s (records still go "
                                        "to "
                                        "the default partition; check the database's log)\n",
                                        strerror(-r));
                }
        }
        fprintf(stderr, "mamori-collector: stopping (signal %d)\n", sig);
        r = 0;
out:
        http_server_stop(server);
        if (key)
                explicit_bzero(key, strlen(key));
        collector_config_free(&cfg);
        return r < 0 ? 1 : 0;
}
