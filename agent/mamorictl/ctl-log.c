/* mamorictl log verify|export: check an operation-log directory offline, or print its records as JSON lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl-verbs.h"
#include "mamori/macro.h"
#include "mamori/oplog-verify.h"
#include "mamori/receipt.h"
#include "mamori/upload-cursor.h"

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: mamorictl log verify DIR --identity PUB.pem [--cursor FILE] [--receipt-key "
                "PUB.pem]\n"
                "       mamorictl log export DIR [--identity PUB.pem] [--cursor FILE] [--receipt-key "
                "PUB.pem]\n"
                "       mamorictl log quarantine [--config FILE]   (see mamorictl log quarantine --help)\n\n"
                "verify  checks every signature, the key-rotation chain from the terminal identity key,\n"
                "        prev links and seq continuity across segments; exit 0 intact, 1 broken, 2 error.\n"
                "        A pruned log (first records deleted after upload) verifies from its first present\n"
                "        record through the collector's receipt stored in the upload cursor (default\n"
                "        %s), signed by the receipt key (default %s).\n"
                "export  prints each record as one JSON line (with --identity, only the verified prefix;\n"
                "        exit 1 if the log is broken).\n",
                UPLOAD_CURSOR_PATH_DEFAULT, RECEIPT_KEY_PATH_DEFAULT);
}

/*
 * The anchor of a pruned log: the cursor's receipt, signed by the receipt key. 0 with *ret; 1 when
 * there is none to use (said on stderr when one was asked for explicitly).
 */
static int load_anchor(const char *cursor_path, const char *key_path, bool explicit, LogAnchor *ret,
                       Receipt *ret_receipt)
{
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        UploadCursor c;
        int k;

        k = upload_cursor_load(cursor_path, &c);
        if (k < 0 || !c.has_receipt) {
                if (explicit || (k != -ENOENT && k != -EACCES))
                        fprintf(stderr, "mamorictl: no receipt in %s: %s\n", cursor_path,
                                k < 0 ? strerror(-k) : "the cursor holds none");
                return 1;
        }
        k = receipt_key_load(key_path, &key);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot use receipt key %s: %s\n", key_path,
                        k == -EINVAL ? "not an Ed25519 public key" : strerror(-k));
                return 1;
        }
        if (receipt_verify(&c.receipt, key) < 0) {
                fprintf(stderr, "mamorictl: the receipt in %s is not signed by %s: not used\n", cursor_path,
                        key_path);
                return 1;
        }
        *ret = (LogAnchor){.seq = c.receipt.acked};
        memcpy(ret->log, c.receipt.log, sizeof(ret->log));
        memcpy(ret->hash, c.receipt.line, sizeof(ret->hash));
        memcpy(ret->key, c.receipt.key, sizeof(ret->key));
        *ret_receipt = c.receipt;
        return 0;
}

static int load_identity(const char *path, EVP_PKEY **ret)
{
        int k = pem_load_public_key(path, ret);
        if (k < 0 && k != -ENOENT && k != -EACCES)
                k = pem_load_private_key(path, ret); /* the identity key itself works too */
        if (k >= 0 && ed25519_check(*ret) < 0) {
                EVP_PKEY_free(*ret);
                return -EINVAL;
        }
        return k;
}

struct find_line {
        uint64_t want, n;
        char buf[201];
        size_t len;
};

static int grab_line(const char *line, size_t len, uint64_t offset, void *userdata)
{
        struct find_line *f = userdata;
        if (++f->n != f->want)
                return 0;
        f->len = len < sizeof(f->buf) - 1 ? len : sizeof(f->buf) - 1;
        memcpy(f->buf, line, f->len);
        f->buf[f->len] = '\0';
        return -ECANCELED;
}

/* Show (the head of) the offending line so the auditor sees what broke. */
static void print_bad_line(const char *dir, const struct log_verify_result *res)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct find_line f = {.want = res->bad_line};

        if (res->bad_line == 0 || !res->bad_file[0] || asprintf(&path, "%s/%s", dir, res->bad_file) < 0)
                return;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || log_segment_read_fd(fd, grab_line, &f, NULL) != -ECANCELED)
                return;
        for (size_t i = 0; i < f.len; i++)
                if ((unsigned char)f.buf[i] < 0x20)
                        f.buf[i] = '?';
        fprintf(stderr, "  record: %s%s\n", f.buf, f.len == sizeof(f.buf) - 1 ? "…" : "");
}

static int print_record(const Record *r, const char *line, size_t len, void *userdata)
{
        fwrite(line, 1, len, stdout);
        fputc('\n', stdout);
        return ferror(stdout) ? -EIO : 0;
}

static int export_line(const char *line, size_t len, uint64_t offset, void *userdata)
{
        _cleanup_record_ Record *r = NULL;
        int k = record_parse_line(line, len, &r);
        if (k < 0) {
                fprintf(stderr, "mamorictl: %s: not a record at byte %" PRIu64 "\n", (const char *)userdata,
                        offset);
                return -EBADMSG;
        }
        return print_record(r, line, len, NULL);
}

static int export_unverified(const char *dir)
{
        char **names = NULL;
        size_t n = 0;
        int k, rc = 0;

        k = log_segments_list(dir, &names, &n);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot read %s: %s\n", dir, strerror(-k));
                return 2;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -EBADF;
                uint64_t tail = 0;

                if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
                        rc = 2;
                        break;
                }
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        fprintf(stderr, "mamorictl: %s: %m\n", path);
                        rc = 2;
                        break;
                }
                k = log_segment_read_fd(fd, export_line, path, &tail);
                if (k < 0)
                        rc = k == -EBADMSG ? 1 : 2;
                else if (tail > 0) {
                        fprintf(stderr, "mamorictl: %s: torn last line (%" PRIu64 " bytes) not exported\n",
                                path, tail);
                        rc = 1;
                }
        }
        log_segments_free(names, n);
        fflush(stdout);
        return rc;
}

int ctl_log(int argc, char **argv)
{
        static const struct option options[] = {
                {"identity", required_argument, NULL, 'i'},
                {"cursor", required_argument, NULL, 'C'},
                {"receipt-key", required_argument, NULL, 'R'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        const char *identity_path = NULL, *cmd, *dir;
        const char *cursor_path = UPLOAD_CURSOR_PATH_DEFAULT, *receipt_key_path = RECEIPT_KEY_PATH_DEFAULT;
        bool explicit_receipt = false, have_anchor;
        struct log_verify_result res;
        LogAnchor anchor;
        Receipt receipt;
        bool verify;
        int c, k;

        if (argc >= 2 && streq(argv[1], "quarantine"))
                return ctl_log_quarantine(argc - 1, argv + 1);
        optind = 1;
        while ((c = getopt_long(argc, argv, "+i:h", options, NULL)) >= 0) {
                if (c == 'i')
                        identity_path = optarg;
                else if (c == 'C') {
                        cursor_path = optarg;
                        explicit_receipt = true;
                } else if (c == 'R') {
                        receipt_key_path = optarg;
                        explicit_receipt = true;
                } else if (c == 'h') {
                        usage(stdout);
                        return 0;
                } else {
                        usage(stderr);
                        return 2;
                }
        }
        /* Options may also follow the sub-command and directory. */
        if (argc - optind < 2) {
                usage(stderr);
                return 2;
        }
        cmd = argv[optind];
        dir = argv[optind + 1];
        optind += 2;
        while ((c = getopt_long(argc, argv, "i:h", options, NULL)) >= 0) {
                if (c == 'i')
                        identity_path = optarg;
                else if (c == 'C') {
                        cursor_path = optarg;
                        explicit_receipt = true;
                } else if (c == 'R') {
                        receipt_key_path = optarg;
                        explicit_receipt = true;
                } else {
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "mamorictl: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (streq(cmd, "verify"))
                verify = true;
        else if (streq(cmd, "export"))
                verify = false;
        else {
                usage(stderr);
                return 2;
        }

        if (!identity_path) {
                if (verify) {
                        fprintf(stderr,
                                "mamorictl: log verify needs --identity PUB.pem (see mamorictl identity)\n");
                        return 2;
                }
                return export_unverified(dir);
        }
        k = load_identity(identity_path, &identity);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot use identity key %s: %s\n", identity_path, strerror(-k));
                return 2;
        }
        have_anchor = load_anchor(cursor_path, receipt_key_path, explicit_receipt, &anchor, &receipt) == 0;
        k = log_verify_directory_anchored(dir, identity, have_anchor ? &anchor : NULL,
                                          verify ? NULL : print_record, NULL, &res);
        fflush(stdout);
        if (k < 0) {
                fprintf(stderr, "mamorictl: cannot read log %s: %s\n", dir, strerror(-k));
                return 2;
        }
        if (!res.intact) {
                fprintf(stderr, "BROKEN: %s%s", res.bad_file[0] ? res.bad_file : dir,
                        res.bad_line > 0 ? "" : ": ");
                if (res.bad_line > 0)
                        fprintf(stderr, " line %" PRIu64 ": ", res.bad_line);
                fprintf(stderr, "%s\n", res.reason);
                fprintf(stderr, "  %" PRIu64 " records verified before it\n", res.records);
                if (res.first_seq > 1 && !have_anchor)
                        fprintf(stderr,
                                "  the log starts at seq %" PRIu64 ": give the upload cursor with the "
                                "collector's receipt (--cursor FILE) and its key (--receipt-key PUB.pem)\n",
                                res.first_seq);
                print_bad_line(dir, &res);
                ctl_log_quarantine_note(dir, &res);
                return 1;
        }
        if (verify && res.anchor_seq > 0)
                printf("intact: %" PRIu64 " records in %" PRIu64 " segment(s), verified from seq %" PRIu64
                       " using receipt for %" PRIu64 " (collector %s)\n",
                       res.records, res.segments, res.first_seq, res.anchor_seq, receipt.collector);
        else if (verify)
                printf("intact: %" PRIu64 " records in %" PRIu64 " segment(s)\n", res.records, res.segments);
        return 0;
}
