/* mamori-admin terminal add|rekey|retire: enrolment by certificate request (DESIGN §11) — the
 * terminal's private keys never come here; the answer is one file the terminal installs. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-keys.h"
#include "admin-pki.h"
#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/enrolment.h"
#include "mamori/fileio.h"
#include "receipt-key.h"

#define CLIENT_DAYS 1825

static bool id_ok(const char *what, const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n > 0 && n <= RECORD_ID_MAX &&
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") == n)
                return true;
        fprintf(stderr, "mamori-admin: invalid %s '%s' (1..64 of A-Z a-z 0-9 . _ : @ -)\n", what, s ?: "");
        return false;
}

static int read_text(const char *path, char **ret)
{
        size_t n;
        int r = read_file_bounded(path, ENROLMENT_PEM_MAX, ret, &n);
        if (r < 0)
                fprintf(stderr, "mamori-admin: cannot read %s: %s\n", path, strerror(-r));
        return r;
}

/* The collector's URL for the enrolment file: --url, else https://FIRST-NAME:PORT from its
 * certificate and Listen= (none when the port is 0: chosen at start). */
static int collector_url(AdminContext *ctx, const char *given, char **ret)
{
        _cleanup_free_ char *p = collector_state_path(&ctx->config, COLLECTOR_TLS_CERT), *addr = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        char **names = NULL;
        size_t n;
        uint16_t port;
        int r;

        *ret = NULL;
        if (given) {
                if (!strneq(given, "https://", 8) || strlen(given) > ENROLMENT_URL_MAX ||
                    strpbrk(given, " \t\r\n")) {
                        fprintf(stderr, "mamori-admin: --url must be https://HOST[:PORT]\n");
                        return -EINVAL;
                }
                *ret = strdup(given);
                return *ret ? 0 : -ENOMEM;
        }
        if (!p || collector_parse_listen(ctx->config.listen, &addr, &port) < 0 || port == 0 ||
            pki_load_cert(p, &cert) < 0 || pki_cert_names(cert, &names, &n) < 0)
                return 0;
        r = asprintf(ret, strchr(names[0], ':') ? "https://[%s]:%u" : "https://%s:%u", names[0], port) < 0
                    ? -ENOMEM
                    : 0;
        pki_names_free(names);
        return r;
}

/* The request checked: an Ed25519 identity key and a CSR signed by its own EC key, CN (if any) the
 * terminal id. */
static int check_request(const struct enrolment_request *req, EVP_PKEY **ret_client_key)
{
        _cleanup_pkey_ EVP_PKEY *idkey = NULL, *client = NULL;
        _cleanup_free_ char *cn = NULL;
        int r;

        r = pem_parse_public_key(req->identity_pem, strlen(req->identity_pem), &idkey);
        if (r >= 0)
                r = ed25519_check(idkey);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: the request's identity is not an Ed25519 public key\n");
                return -EBADMSG;
        }
        r = pki_load_csr(req->csr_pem, &client, &cn);
        if (r == -EPROTONOSUPPORT) {
                fprintf(stderr,
                        "mamori-admin: the request's TLS key is not an EC key of 256 bits or more\n");
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "mamori-admin: the request's CSR does not verify with its own key\n");
                return r;
        }
        if (cn && !streq(cn, req->terminal)) {
                fprintf(stderr, "mamori-admin: the CSR names '%s' but the request is for terminal %s\n", cn,
                        req->terminal);
                return -EBADMSG;
        }
        *ret_client_key = TAKE_PTR(client);
        return 0;
}

/* Issue the terminal certificate for the request's key, and the enrolment answer around it. */
static int answer(AdminContext *ctx, const char *id, const char *office, EVP_PKEY *client_key,
                  const char *url, char **ret_text, size_t *ret_len, char ret_sha256[SHA256_HEX_MAX])
{
        _cleanup_free_ char *p_tca = admin_key_path(ctx, ADMIN_TERMINAL_CA);
        _cleanup_free_ char *p_tca_key = admin_key_path(ctx, ADMIN_TERMINAL_CA_KEY);
        _cleanup_free_ char *p_cca = admin_key_path(ctx, ADMIN_COLLECTOR_CA);
        _cleanup_free_ char *p_pub = admin_key_path(ctx, ADMIN_POLICY_PUB);
        _cleanup_free_ char *p_receipt = collector_state_path(&ctx->config, RECEIPT_PUB_FILE);
        _cleanup_pkey_ EVP_PKEY *tca_key = NULL;
        _cleanup_x509_ X509 *tca = NULL, *cert = NULL;
        struct enrolment e = {};
        int r;

        if (!p_tca || !p_tca_key || !p_cca || !p_pub || !p_receipt)
                return -ENOMEM;
        r = pki_load_cert(p_tca, &tca);
        if (r >= 0)
                r = pem_load_private_key(p_tca_key, &tca_key);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: cannot load the terminal CA %s / %s: %s (run mamori-admin init)\n",
                        p_tca, p_tca_key, strerror(-r));
                return r;
        }
        r = pki_issue(tca, tca_key, client_key, id, PKI_CLIENT, NULL, CLIENT_DAYS, &cert);
        if (r >= 0)
                r = pki_cert_sha256_hex(cert, ret_sha256);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot issue the terminal certificate: %s\n", strerror(-r));
                return r;
        }
        snprintf(e.terminal, sizeof(e.terminal), "%s", id);
        snprintf(e.office, sizeof(e.office), "%s", office);
        if ((r = pki_cert_pem(cert, &e.certificate_pem)) < 0 ||
            (r = read_text(p_cca, &e.collector_ca_pem)) < 0 ||
            (r = read_text(p_pub, &e.policy_signer_pem)) < 0)
                goto out;
        r = read_text(p_receipt, &e.receipt_key_pem);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: the collector's receipt key is missing: start mamori-collector once "
                        "(or run mamori-collector --receipt-key)\n");
                goto out;
        }
        if ((r = collector_url(ctx, url, &e.url)) < 0)
                goto out;
        r = enrolment_format(&e, ret_text, ret_len);
        if (r < 0)
                fprintf(stderr, "mamori-admin: cannot build the enrolment file: %s\n", strerror(-r));
out:
        enrolment_done(&e);
        return r;
}

/*
 * The terminal is registered (enrolled, or rekeyed: its previous certificate refused from now on) but the
 * answer with its new certificate could not be written to out: nothing to undo, a rekey with the same
 * request answers it again (a new certificate; the one registered now is replaced, never used).
 */
static void answer_not_written(const struct enrolment_request *req, const char *request, const char *office,
                               const char *out, int r, bool rekey)
{
        _cleanup_free_ char *quoted = admin_shell_quote(request); /* a command to paste */

        if (rekey)
                fprintf(stderr,
                        "mamori-admin: terminal %s is rekeyed: the collector refuses its previous "
                        "certificate from now on, but the enrolment file with the new one cannot be written "
                        "to %s: %s. Until one is installed the terminal's uploads are refused: ",
                        req->terminal, out, strerror(-r));
        else
                fprintf(stderr,
                        "mamori-admin: terminal %s is enrolled (office %s), but its enrolment file cannot "
                        "be written to %s: %s. Nothing needs undoing: ",
                        req->terminal, office, out, strerror(-r));
        fprintf(stderr,
                "check that --out names a file in a writable directory on a disk not full, then run "
                "mamori-admin terminal rekey --request %s --out FILE, which writes it (with a new "
                "certificate for the same request; the one issued now is never used)\n",
                quoted ?: request);
}

/* terminal add --request FILE --office O --out FILE [--url URL], and rekey (no --office). */
static int enrol(AdminContext *ctx, int argc, char **argv, bool rekey)
{
        static const struct option options[] = {
                {"request", required_argument, NULL, 'r'},
                {"office", required_argument, NULL, 'o'},
                {"out", required_argument, NULL, 'd'},
                {"url", required_argument, NULL, 'u'},
                {},
        };
        const char *request = NULL, *office = NULL, *out = NULL, *url = NULL;
        _cleanup_free_ char *text = NULL, *registered_office = NULL, *registered_pem = NULL;
        _cleanup_pkey_ EVP_PKEY *client = NULL;
        struct enrolment_request req = {};
        char sha[SHA256_HEX_MAX];
        const char *what = rekey ? "terminal rekey" : "terminal add";
        const AdminChange change = {
                .what = what,
                .id = req.terminal,
                .also = rekey ? "the terminal keeps its certificate and no enrolment file was written"
                              : "no enrolment file was written",
                .also_maybe = "no enrolment file was written (if it is stored, mamori-admin terminal rekey "
                              "with this request writes one)",
        };
        bool retired = false;
        size_t len;
        Store *s;
        int c, r, ret = 1;

        optind = 0;
        while ((c = getopt_long(argc, argv, "r:o:d:u:", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        request = optarg;
                        break;
                case 'o':
                        office = optarg;
                        break;
                case 'd':
                        out = optarg;
                        break;
                case 'u':
                        url = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || !request || !out || (!rekey && !office) || (rekey && office)) {
                fprintf(stderr,
                        rekey ? "usage: mamori-admin terminal rekey --request FILE --out FILE [--url URL]\n"
                              : "usage: mamori-admin terminal add --request FILE --office O --out FILE "
                                "[--url URL]\n");
                return 2;
        }
        if (office && !id_ok("office", office))
                return 2;
        r = enrolment_request_load(request, &req);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-admin: %s is not an enrolment request: %s (make it on the terminal with "
                        "mamorictl enroll-request)\n",
                        request, r == -EBADMSG ? "bad format" : strerror(-r));
                return 1;
        }
        if (check_request(&req, &client) < 0 || admin_keys_prepare(ctx, false) < 0 ||
            admin_store(ctx, &s) < 0)
                goto out;
        r = store_terminal_get(s, req.terminal, &registered_office, &registered_pem, &retired);
        if (!rekey && r >= 0) {
                fprintf(stderr,
                        retired ? "mamori-admin: terminal %s is retired; ids are never reused: give the "
                                  "machine a "
                                  "new id (mamorictl enroll-request --id NEW)\n"
                                : "mamori-admin: terminal %s is enrolled already: for a new TLS key use "
                                  "mamori-admin "
                                  "terminal rekey --request FILE; to replace the machine, retire it and "
                                  "enrol the "
                                  "new one under a new id\n",
                        req.terminal);
                goto out;
        }
        if (rekey) {
                _cleanup_pkey_ EVP_PKEY *a = NULL, *b = NULL;
                if (r == -ENOENT) {
                        fprintf(stderr,
                                "mamori-admin: terminal %s is not enrolled: use mamori-admin terminal add\n",
                                req.terminal);
                        goto out;
                }
                if (r < 0)
                        goto read_error;
                if (retired) {
                        fprintf(stderr,
                                "mamori-admin: terminal %s is retired: a retired terminal is not rekeyed\n",
                                req.terminal);
                        goto out;
                }
                /* Its logs verify from the registered identity key: that one must stay. */
                if (pem_parse_public_key(registered_pem, strlen(registered_pem), &a) < 0 ||
                    pem_parse_public_key(req.identity_pem, strlen(req.identity_pem), &b) < 0 ||
                    EVP_PKEY_eq(a, b) != 1) {
                        fprintf(stderr,
                                "mamori-admin: the request's identity key is not the one registered for %s: "
                                "a "
                                "rekey renews only the TLS key. A reinstalled terminal (new identity key) "
                                "is "
                                "enrolled under a new id, and the old one retired\n",
                                req.terminal);
                        goto out;
                }
                office = registered_office;
        } else if (r != -ENOENT)
                goto read_error;
        if (answer(ctx, req.terminal, office, client, url, &text, &len, sha) < 0)
                goto out;
        if (admin_change_begin(ctx, NULL, &change, &s) != 0)
                goto out;
        r = rekey ? store_terminal_rekey(s, admin_now_usec(), req.terminal, sha)
                  : store_terminal_enrol(s, admin_now_usec(), req.terminal, office, req.identity_pem, sha);
        if (admin_change_end(s, r, &change) != 0)
                goto out;
        /* Registered first: an answer that was never written is answered again by a rekey. */
        r = write_file_atomic(out, text, len, 0644);
        if (r < 0) {
                answer_not_written(&req, request, office, out, r, rekey);
                goto out;
        }
        if (rekey)
                printf("terminal %s rekeyed: its previous certificate is refused from now on; enrolment "
                       "file "
                       "%s\nNext, on the terminal: mamorictl enroll-install %s\n",
                       req.terminal, out, out);
        else
                printf("terminal %s enrolled (office %s); enrolment file %s\n"
                       "Next: copy it to the terminal and run mamorictl enroll-install FILE there; "
                       "mamori-admin "
                       "policy publish puts the terminal into the policy\n",
                       req.terminal, office, out);
        ret = 0;
        goto out;
read_error:
        admin_run_failed(ctx, what, "nothing was changed and no enrolment file was written", r);
out:
        enrolment_request_done(&req);
        return ret;
}

int admin_terminal_add(AdminContext *ctx, int argc, char **argv)
{
        return enrol(ctx, argc, argv, false);
}

int admin_terminal_rekey(AdminContext *ctx, int argc, char **argv)
{
        return enrol(ctx, argc, argv, true);
}

int admin_terminal_retire(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"reason", required_argument, NULL, 'r'},
                {},
        };
        const char *reason = NULL;
        Store *s;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "r:", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc || !reason || !*reason) {
                fprintf(stderr, "usage: mamori-admin terminal retire ID --reason TEXT\n");
                return 2;
        }
        if (!id_ok("terminal id", argv[optind]))
                return 1;
        const AdminChange change = {
                .what = "terminal retire",
                .id = argv[optind],
                .also = "the collector still accepts the terminal",
        };
        if (admin_change_begin(ctx, NULL, &change, &s) != 0)
                return 1;
        r = store_terminal_retire(s, admin_now_usec(), argv[optind], reason);
        if (r == -ENOENT || r == -EALREADY) {
                store_rollback(s);
                fprintf(stderr, "mamori-admin: terminal %s %s\n", argv[optind],
                        r == -ENOENT ? "is not enrolled" : "is retired already");
                return 1;
        }
        if (admin_change_end(s, r, &change) != 0)
                return 1;
        printf("terminal %s retired: the collector answers its requests 403 terminal-retired from now on; "
               "its stored records are kept.\nNext: mamori-admin policy publish (takes it out of the "
               "policy)\n",
               argv[optind]);
        return 0;
}
