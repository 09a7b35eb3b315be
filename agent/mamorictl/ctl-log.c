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
#include "mamori/oplog-verify.h"
#include "mamori/macro.h"

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: mamorictl log verify DIR --identity PUB.pem\n"
                "       mamorictl log export DIR [--identity PUB.pem]\n"
                "       mamorictl log quarantine [--config FILE]   (see mamorictl log quarantine --help)\n\n"
                "verify  checks every signature, the key-rotation chain from the terminal identity key,\n"
                "        prev links and seq continuity across segments; exit 0 intact, 1 broken, 2 error.\n"
                "export  prints each record as one JSON line (with --identity, only the verified prefix;\n"
                "        exit 1 if the log is broken).\n");
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
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_pkey_ EVP_PKEY *identity = NULL;
        const char *identity_path = NULL, *cmd, *dir;
        struct log_verify_result res;
        bool verify;
        int c, k;

        if (argc >= 2 && streq(argv[1], "quarantine"))
                return ctl_log_quarantine(argc - 1, argv + 1);
        optind = 1;
        while ((c = getopt_long(argc, argv, "+i:h", options, NULL)) >= 0) {
                if (c == 'i')
                        identity_path = optarg;
                else if (c == 'h') {
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
                else {
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
        k = log_verify_directory(dir, identity, verify ? NULL : print_record, NULL, &res);
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
                print_bad_line(dir, &res);
                ctl_log_quarantine_note(dir, &res);
                return 1;
        }
        if (verify)
                printf("intact: %" PRIu64 " records in %" PRIu64 " segment(s)\n", res.records, res.segments);
        return 0;
}
