/* Unit tests of the operation-log writer: commit ordering, group commit, rotation, recovery, key
 * destruction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "mamori/oplog-verify.h"
#include "mamori/receipt.h"
#include "mamori/upload-cursor.h"
#include "oplog-check.h"
#include "oplog-keys.h"
#include "oplog-quarantine.h"
#include "oplog-writer.h"

struct fixture {
        char tmp[64];
        char dir[128], keys[128], identity[128], cursor[128];
        struct oplog_params p;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        strcpy(f->tmp, "/tmp/test-oplog-XXXXXX");
        assert_non_null(mkdtemp(f->tmp));
        snprintf(f->dir, sizeof(f->dir), "%s/log", f->tmp);
        snprintf(f->keys, sizeof(f->keys), "%s/keys", f->tmp);
        snprintf(f->identity, sizeof(f->identity), "%s/keys/identity.pem", f->tmp);
        snprintf(f->cursor, sizeof(f->cursor), "%s/cursor", f->tmp);
        f->p = (struct oplog_params){
                .directory = f->dir,
                .keys_directory = f->keys,
                .identity_key = f->identity,
                .terminal_id = "T-0001",
                .rotate_records = 1000,
                .rotate_usec = 0,
                .retention_days = 90,
                .cursor_path = f->cursor,
        };
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->tmp);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

struct counts {
        uint64_t records, rotations, last_seq;
};

static int count_record(const Record *r, const char *line, size_t len, void *userdata)
{
        struct counts *c = userdata;
        c->records++;
        if (strcmp(r->ev, "key.rotate") == 0)
                c->rotations++;
        c->last_seq = r->seq;
        return 0;
}

/* Verify the directory against the identity key; returns the counts, fails the test if broken. */
static struct counts verify_ok(struct fixture *f)
{
        EVP_PKEY *id = NULL;
        struct log_verify_result res;
        struct counts c = {0};

        assert_int_equal(pem_load_private_key(f->identity, &id), 0);
        assert_int_equal(log_verify_directory(f->dir, id, count_record, &c, &res), 0);
        if (!res.intact)
                fprintf(stderr, "broken: %s line %" PRIu64 ": %s\n", res.bad_file, res.bad_line, res.reason);
        assert_true(res.intact);
        assert_int_equal(res.records, c.records);
        EVP_PKEY_free(id);
        return c;
}

static int count_files(const char *dir, const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;
        assert_non_null(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static void last_segment_path(struct fixture *f, char *buf, size_t n)
{
        char **names = NULL;
        size_t k = 0;
        assert_int_equal(log_segments_list(f->dir, &names, &k), 0);
        assert_true(k > 0);
        snprintf(buf, n, "%s/%s", f->dir, names[k - 1]);
        log_segments_free(names, k);
}

static void test_new_log(void **state)
{
        struct fixture *f = *state;
        struct oplog_recovery rec;
        struct stat st;
        OpLog *l = NULL;
        uint64_t seq = 0;

        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_int_equal(rec.previous, OPLOG_PREVIOUS_NONE);
        assert_true(rec.identity_created);
        assert_int_equal(stat(f->identity, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(oplog_committed_seq(l), 1); /* log.open */
        assert_int_equal(oplog_append(l, "agent.start", NULL, NULL, NULL, &seq), 0);
        assert_int_equal(seq, 2);
        assert_int_equal(oplog_committed_seq(l), 2);
        assert_true(oplog_writable(l));
        /* Unknown events are refused, and do not consume a seq. */
        assert_int_equal(oplog_append(l, "made.up", NULL, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(oplog_append(l, "card.inserted", NULL,
                                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                      NULL, &seq),
                         0);
        assert_int_equal(seq, 3);
        /* A second writer on the same directory is refused. */
        {
                OpLog *l2 = NULL;
                assert_int_equal(oplog_open(&f->p, &l2, NULL), -EBUSY);
        }
        oplog_close(l);
        assert_int_equal(verify_ok(f).records, 3);
}

static void test_previous_run(void **state)
{
        struct fixture *f = *state;
        struct oplog_recovery rec;
        OpLog *l = NULL;

        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_int_equal(oplog_append(l, "agent.stop", NULL, NULL, NULL, NULL), 0);
        oplog_close(l);
        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_false(rec.identity_created);
        assert_int_equal(rec.previous, OPLOG_PREVIOUS_CLEAN);
        assert_int_equal(rec.last_seq, 2);
        assert_int_equal(rec.torn_bytes, 0);
        assert_int_equal(oplog_append(l, "agent.start", NULL, NULL, NULL, NULL), 0);
        oplog_close(l); /* no agent.stop: looks like a crash */
        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_int_equal(rec.previous, OPLOG_PREVIOUS_CRASH);
        oplog_close(l);
        verify_ok(f);
}

static void test_torn_tail(void **state)
{
        struct fixture *f = *state;
        struct oplog_recovery rec;
        OpLog *l = NULL;
        char path[256];
        const char torn[] = "{\"boot\":\"c0f";
        int fd;
        uint64_t seq;

        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(oplog_append(l, "card.removed", NULL, NULL, NULL, NULL), 0);
        oplog_close(l);

        last_segment_path(f, path, sizeof(path));
        fd = open(path, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, torn, strlen(torn)), (ssize_t)strlen(torn));
        close(fd);

        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_int_equal(rec.torn_bytes, strlen(torn));
        assert_int_equal(rec.previous, OPLOG_PREVIOUS_CRASH);
        assert_int_equal(rec.last_seq, 6);
        assert_int_equal(oplog_append(l, "agent.start", NULL, NULL, NULL, &seq), 0);
        assert_int_equal(seq, 7);
        oplog_close(l);
        assert_int_equal(verify_ok(f).last_seq, 7);

        /* A complete but garbled last line (e.g. zeros after a power cut) is dropped too. */
        fd = open(path, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "\0\0\0\0\n", 5), 5);
        close(fd);
        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_int_equal(rec.torn_bytes, 5);
        assert_int_equal(rec.last_seq, 7);
        oplog_close(l);
        verify_ok(f);
}

struct thread_arg {
        OpLog *l;
        int n;
        uint64_t *seqs;
        int failures;
};

static void *appender(void *p)
{
        struct thread_arg *a = p;
        for (int i = 0; i < a->n; i++) {
                uint64_t seq = 0;
                if (oplog_append(a->l, "app.op", "OP0001", NULL, NULL, &seq) < 0) {
                        a->failures++;
                        continue;
                }
                /* Returned only after commit: the committed seq already covers it. */
                if (oplog_committed_seq(a->l) < seq)
                        a->failures++;
                if (i > 0 && seq <= a->seqs[i - 1])
                        a->failures++;
                a->seqs[i] = seq;
        }
        return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void test_group_commit(void **state)
{
        enum { THREADS = 8, PER = 100 };
        struct fixture *f = *state;
        struct thread_arg args[THREADS];
        pthread_t t[THREADS];
        uint64_t all[THREADS * PER];
        OpLog *l = NULL;

        f->p.rotate_records = 37; /* rotations interleave with concurrent appends */
        f->p.segment_max_bytes = 16 * 1024;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        for (int i = 0; i < THREADS; i++) {
                args[i] = (struct thread_arg){.l = l, .n = PER, .seqs = all + i * PER};
                assert_int_equal(pthread_create(&t[i], NULL, appender, &args[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(args[i].failures, 0);
        }
        qsort(all, THREADS * PER, sizeof(uint64_t), cmp_u64);
        for (int i = 1; i < THREADS * PER; i++)
                assert_true(all[i] > all[i - 1]); /* no seq handed out twice */
        oplog_close(l);
        {
                struct counts c = verify_ok(f);
                assert_int_equal(c.records, 1 + THREADS * PER + c.rotations);
                assert_true(c.rotations >= THREADS * PER / 37 - 1);
        }
        assert_true(count_files(f->dir, LOG_SEGMENT_PREFIX) > 1);
        assert_int_equal(count_files(f->keys, "log-key-"), 1);
}

static void test_key_destroyed(void **state)
{
        struct fixture *f = *state;
        char keyfile[512], witness[512], name[OPLOG_EPOCH_KEY_NAME_MAX];
        DIR *d;
        struct dirent *de;
        uint8_t buf[64];
        OpLog *l = NULL;
        ssize_t n;
        int fd;

        f->p.rotate_records = 3;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        /* A second name for the epoch-0 key file lets the test look at its blocks after unlink. */
        d = opendir(f->keys);
        assert_non_null(d);
        keyfile[0] = '\0';
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "log-key-", 8) == 0)
                        snprintf(keyfile, sizeof(keyfile), "%s/%s", f->keys, de->d_name);
        closedir(d);
        assert_true(keyfile[0] != '\0');
        snprintf(witness, sizeof(witness), "%s/witness", f->tmp);
        assert_int_equal(link(keyfile, witness), 0);

        for (int i = 0; i < 4; i++)
                assert_int_equal(oplog_append(l, "lock", NULL, NULL, NULL, NULL), 0);
        /* Rotated: epoch-0 key unlinked, its bytes overwritten with zeros. */
        assert_int_equal(access(keyfile, F_OK), -1);
        fd = open(witness, O_RDONLY);
        assert_true(fd >= 0);
        n = read(fd, buf, sizeof(buf));
        close(fd);
        assert_int_equal(n, ED25519_KEY_SIZE);
        for (ssize_t i = 0; i < n; i++)
                assert_int_equal(buf[i], 0);
        assert_int_equal(count_files(f->keys, "log-key-"), 1);

        /* An explicit rotation works too, and a reopen continues with the newest key. */
        assert_int_equal(oplog_rotate_key(l), 0);
        oplog_close(l);
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        assert_int_equal(oplog_append(l, "unlock", NULL, NULL, NULL, NULL), 0);
        oplog_close(l);
        assert_true(verify_ok(f).rotations >= 2);

        /* A stray epoch key (rotation interrupted before its record) is destroyed at open. */
        {
                EVP_PKEY *k = NULL;
                uint8_t pub[ED25519_KEY_SIZE];
                char p[512];
                assert_int_equal(ed25519_generate(&k), 0);
                assert_int_equal(oplog_epoch_key_store(f->keys, k), 0);
                assert_int_equal(ed25519_public_to_raw(k, pub), 0);
                oplog_epoch_key_name(pub, name);
                snprintf(p, sizeof(p), "%s/%s", f->keys, name);
                EVP_PKEY_free(k);
                struct oplog_recovery rec;
                assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
                assert_int_equal(rec.stale_keys_destroyed, 1);
                assert_int_equal(access(p, F_OK), -1);
                oplog_close(l);
        }
}

static void test_missing_key(void **state)
{
        struct fixture *f = *state;
        OpLog *l = NULL;
        char cmd[512];

        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        oplog_close(l);
        snprintf(cmd, sizeof(cmd), "rm -f %s/log-key-*", f->keys);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(oplog_open(&f->p, &l, NULL), -ENOKEY);
}

static void test_unwritable(void **state)
{
        struct fixture *f = *state;
        struct rlimit old, lim;
        char path[256];
        struct stat st;
        OpLog *l = NULL;
        int k = 0, i, fd;
        char last;

        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        last_segment_path(f, path, sizeof(path));
        assert_int_equal(stat(path, &st), 0);
        /* A file-size limit makes writes fail part-way, like a full disk. */
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = (rlim_t)st.st_size + 1500;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        for (i = 0; i < 100 && k == 0; i++)
                k = oplog_append(l, "app.op", NULL, NULL, NULL, NULL);
        assert_int_equal(k, -EFBIG);
        assert_false(oplog_writable(l));
        assert_int_equal(oplog_error(l), -EFBIG);
        /* No half record: the file still ends with a complete line. */
        fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(pread(fd, &last, 1, st.st_size - 1), 1);
        close(fd);
        assert_int_equal(last, '\n');
        assert_int_equal(oplog_append(l, "app.op", NULL, NULL, NULL, NULL), -EFBIG);

        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(oplog_append(l, "app.op", NULL, NULL, NULL, NULL), 0);
        assert_true(oplog_writable(l));
        oplog_close(l);
        signal(SIGXFSZ, SIG_DFL);
        verify_ok(f);
}

static int async_done_count;
static uint64_t async_last_seq;

static void on_done(int result, uint64_t seq, void *userdata)
{
        OpLog *l = userdata;
        assert_int_equal(result, 0);
        assert_true(oplog_committed_seq(l) >= seq);
        assert_true(seq > async_last_seq); /* completions arrive in order */
        async_last_seq = seq;
        async_done_count++;
}

static void test_async(void **state)
{
        struct fixture *f = *state;
        OpLog *l = NULL;

        f->p.async = true;
        f->p.rotate_records = 7;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        async_done_count = 0;
        async_last_seq = 0;
        for (int i = 0; i < 50; i++)
                assert_int_equal(oplog_submit(l, "card.inserted", NULL, NULL, NULL, on_done, l), 0);
        assert_int_equal(oplog_submit(l, "no.such", NULL, NULL, NULL, NULL, NULL), 0); /* fails later */
        while (async_done_count < 50) {
                struct pollfd p = {.fd = oplog_event_fd(l), .events = POLLIN};
                assert_int_equal(poll(&p, 1, 10000), 1);
                oplog_dispatch(l);
        }
        oplog_close(l);
        assert_int_equal(verify_ok(f).records - verify_ok(f).rotations, 51);
}

/* The cursor file with a receipt for acked of l's log, signed by signer; line and key as the collector
 * would have them from our own records when truthful (beyond the log: a made-up line). */
static void write_receipt_cursor(struct fixture *f, OpLog *l, uint64_t acked, EVP_PKEY *signer)
{
        UploadCursor c = {.acked = acked, .has_receipt = true};
        LogVerifier *v = NULL;
        EVP_PKEY *identity = NULL;

        strcpy(c.log, oplog_log_id(l));
        c.receipt = (Receipt){.acked = acked, .ts = 1};
        strcpy(c.receipt.collector, "collector-test");
        strcpy(c.receipt.log, oplog_log_id(l));
        memset(c.receipt.line, 'a', SHA256_HEX_MAX - 1);
        assert_int_equal(pem_load_private_key(f->identity, &identity), 0);
        {
                /* Pruned already: go on from the first present record through the stored receipt. */
                char **names = NULL;
                size_t n = 0;
                uint64_t first = 1;
                assert_int_equal(log_segments_list(f->dir, &names, &n), 0);
                assert_true(n > 0 && log_segment_name_parse(names[0], &first));
                log_segments_free(names, n);
                if (first == 1)
                        assert_int_equal(log_verifier_new(identity, &v), 0);
                else {
                        UploadCursor old;
                        LogAnchor a = {};
                        Record *r = NULL;
                        char *line = NULL;
                        size_t len;
                        assert_int_equal(upload_cursor_load(f->cursor, &old), 0);
                        a.seq = old.receipt.acked;
                        strcpy(a.log, old.receipt.log);
                        strcpy(a.hash, old.receipt.line);
                        memcpy(a.key, old.receipt.key, sizeof(a.key));
                        assert_int_equal(log_read_line(f->dir, first, &line, &len), 0);
                        assert_int_equal(record_parse_line(line, len, &r), 0);
                        assert_int_equal(log_verifier_new_anchored(&a, r, &v), 0);
                        record_free(r);
                        free(line);
                }
        }
        for (uint64_t seq = log_verifier_last_seq(v) + 1; seq <= acked; seq++) {
                char *line = NULL;
                size_t len;
                if (log_read_line(f->dir, seq, &line, &len) < 0)
                        break;
                assert_int_equal(log_verifier_push(v, line, len, NULL), 0);
                free(line);
        }
        if (log_verifier_last_seq(v) == acked)
                strcpy(c.receipt.line, log_verifier_last_hash(v));
        assert_int_equal(log_verifier_current_key(v, c.receipt.key), 0);
        assert_int_equal(receipt_sign(&c.receipt, signer, NULL, NULL), 0);
        assert_int_equal(upload_cursor_save(f->cursor, &c), 0);
        log_verifier_free(v);
        EVP_PKEY_free(identity);
}

static void test_prune(void **state)
{
        struct fixture *f = *state;
        EVP_PKEY *receipt_key = NULL, *other = NULL;
        char receipt_pub[160];
        OpLog *l = NULL;
        FILE *c;
        int before, k;

        assert_int_equal(ed25519_generate(&receipt_key), 0);
        assert_int_equal(ed25519_generate(&other), 0);
        snprintf(receipt_pub, sizeof(receipt_pub), "%s/receipt.pub", f->tmp);
        c = fopen(receipt_pub, "w");
        assert_non_null(c);
        assert_int_equal(PEM_write_PUBKEY(c, receipt_key), 1);
        fclose(c);
        f->p.receipt_key = receipt_pub;
        f->p.segment_max_bytes = 4096;
        f->p.retention_days = 0;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        for (int i = 0; i < 60; i++)
                assert_int_equal(oplog_append(l, "app.op", NULL, NULL, NULL, NULL), 0);
        before = count_files(f->dir, LOG_SEGMENT_PREFIX);
        assert_true(before >= 3);
        /* No cursor: nothing acknowledged, nothing deleted. */
        assert_int_equal(oplog_prune(l, UINT64_MAX / 2), 0);
        /* A cursor written by hand, without a receipt, deletes nothing. */
        c = fopen(f->cursor, "w");
        assert_non_null(c);
        fprintf(c, "{\"log\":\"%s\",\"acked\":30}\n", oplog_log_id(l));
        fclose(c);
        assert_int_equal(oplog_prune(l, UINT64_MAX / 2), 0);
        /* A true receipt signed by another key, a receipt key's lie beyond the log: nothing. */
        write_receipt_cursor(f, l, 30, other);
        assert_int_equal(oplog_prune(l, UINT64_MAX / 2), 0);
        write_receipt_cursor(f, l, 1060, receipt_key);
        assert_int_equal(oplog_prune(l, UINT64_MAX / 2), 0);
        assert_int_equal(count_files(f->dir, LOG_SEGMENT_PREFIX), before);
        /* A verified receipt for seq 30: only segments wholly at or below it go. */
        write_receipt_cursor(f, l, 30, receipt_key);
        k = oplog_prune(l, UINT64_MAX / 2);
        assert_true(k >= 1);
        assert_int_equal(count_files(f->dir, LOG_SEGMENT_PREFIX), before - k);
        {
                char **names = NULL;
                size_t n = 0;
                uint64_t first;
                assert_int_equal(log_segments_list(f->dir, &names, &n), 0);
                assert_true(log_segment_name_parse(names[0], &first));
                assert_true(first <= 31);
                log_segments_free(names, n);
        }
        /* Everything acknowledged, but the record after the receipt is not written yet: its key is
         * unchecked, so nothing goes; once that record is there, the rest does. */
        write_receipt_cursor(f, l, oplog_committed_seq(l), receipt_key);
        assert_int_equal(oplog_prune(l, UINT64_MAX / 2), 0);
        assert_int_equal(oplog_append(l, "app.op", NULL, NULL, NULL, NULL), 0);
        assert_true(oplog_prune(l, UINT64_MAX / 2) >= 1);
        /* Retention not yet passed: nothing more goes even when everything is acknowledged. */
        for (int i = 0; i < 30; i++)
                assert_int_equal(oplog_append(l, "app.op", NULL, NULL, NULL, NULL), 0);
        write_receipt_cursor(f, l, oplog_committed_seq(l) - 1, receipt_key);
        oplog_close(l);
        f->p.retention_days = 90;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        before = count_files(f->dir, LOG_SEGMENT_PREFIX);
        assert_int_equal(oplog_prune(l, (uint64_t)time(NULL) * 1000000), 0);
        assert_int_equal(count_files(f->dir, LOG_SEGMENT_PREFIX), before);
        oplog_close(l);
        /* The same receipt without the retention period: the open prunes. */
        f->p.retention_days = 0;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        assert_true(count_files(f->dir, LOG_SEGMENT_PREFIX) < before);
        oplog_close(l);
        EVP_PKEY_free(receipt_key);
        EVP_PKEY_free(other);
}

static char *read_all(const char *path, size_t *ret_len)
{
        FILE *fp = fopen(path, "rb");
        char *buf;
        long n;
        assert_non_null(fp);
        assert_int_equal(fseek(fp, 0, SEEK_END), 0);
        n = ftell(fp);
        rewind(fp);
        buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
        buf[n] = '\0';
        fclose(fp);
        *ret_len = (size_t)n;
        return buf;
}

static void write_all(const char *path, const char *buf, size_t len)
{
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(buf, 1, len, fp), len);
        fclose(fp);
}

/* Writes n records (rotating every rotate), returns the path of the last segment. */
static void write_log(struct fixture *f, int n, char *path, size_t size)
{
        OpLog *l = NULL;
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        for (int i = 0; i < n; i++)
                assert_int_equal(oplog_append(l, "app.op", "OP0001", NULL, NULL, NULL), 0);
        oplog_close(l);
        last_segment_path(f, path, size);
}

/* One changed digit in a line's ts (still valid JSON): line is 1-based, 0 = the last. */
static uint64_t change_ts(const char *path, uint64_t line)
{
        size_t len, lines = 0;
        char *buf = read_all(path, &len), *p = buf, *ts;
        for (size_t i = 0; i < len; i++)
                lines += buf[i] == '\n';
        if (line == 0)
                line = lines;
        for (uint64_t i = 1; i < line; i++)
                p = strchr(p, '\n') + 1;
        ts = strstr(p, "\"ts\":") + 8;
        *ts = *ts == '7' ? '3' : '7';
        write_all(path, buf, len);
        free(buf);
        return line;
}

static void test_damaged_last_record(void **state)
{
        struct fixture *f = *state;
        struct oplog_damage d = {0};
        char path[256];
        size_t len0, len1;
        char *before, *after;
        uint64_t line;
        OpLog *l = NULL;

        f->p.rotate_records = 10;
        write_log(f, 25, path, sizeof(path));
        line = change_ts(path, 0);
        before = read_all(path, &len0);
        assert_int_equal(oplog_open_checked(&f->p, &l, NULL, &d), -EBADMSG);
        assert_null(l);
        assert_string_equal(d.file, strrchr(path, '/') + 1);
        assert_int_equal(d.line, line);
        assert_non_null(strstr(d.reason, "signature"));
        assert_string_equal(d.term, "T-0001");
        assert_int_equal(d.good_seq, line - 1); /* one segment: line n is seq n */
        /* Nothing was written on top of it, not even a truncation. */
        after = read_all(path, &len1);
        assert_int_equal(len0, len1);
        assert_memory_equal(before, after, len0);
        free(before);
        free(after);
        /* The plain open refuses the same way. */
        assert_int_equal(oplog_open(&f->p, &l, NULL), -EBADMSG);
}

static void test_damaged_mid_segment(void **state)
{
        struct fixture *f = *state;
        struct oplog_damage d = {0};
        char path[256];
        uint64_t line;
        OpLog *l = NULL;

        f->p.rotate_records = 5; /* the damage lies before the verified key epochs */
        write_log(f, 40, path, sizeof(path));
        line = change_ts(path, 10);
        assert_int_equal(oplog_open_checked(&f->p, &l, NULL, &d), -EBADMSG);
        assert_int_equal(d.line, line + 1); /* the next line's prev no longer matches */
        assert_non_null(strstr(d.reason, "changed"));
        assert_int_equal(d.good_seq, line - 1);
}

static void test_foreign_term(void **state)
{
        struct fixture *f = *state;
        struct oplog_damage d = {0};
        char path[256];
        OpLog *l = NULL;

        write_log(f, 3, path, sizeof(path));
        f->p.terminal_id = "unconfigured";
        assert_int_equal(oplog_open_checked(&f->p, &l, NULL, &d), -EBADMSG);
        assert_non_null(strstr(d.reason, "T-0001"));
        assert_int_equal(d.good_seq, 4);
}

static void test_quarantine(void **state)
{
        struct fixture *f = *state;
        struct oplog_quarantine_result r;
        struct oplog_recovery rec;
        char path[256], moved[PATH_MAX + 64];
        char *before, *after;
        size_t len0, len1;
        OpLog *l = NULL;
        uint64_t line;

        f->p.rotate_records = 10;
        /* Nothing to do on a good log, and never while a writer holds it. */
        write_log(f, 12, path, sizeof(path));
        assert_int_equal(oplog_quarantine(&f->p, &r), -EALREADY);
        assert_int_equal(oplog_open(&f->p, &l, NULL), 0);
        assert_int_equal(oplog_quarantine(&f->p, &r), -EBUSY);
        oplog_close(l);

        line = change_ts(path, 0);
        before = read_all(path, &len0);
        assert_int_equal(oplog_quarantine(&f->p, &r), 0);
        assert_int_equal(r.damage.line, line);
        assert_int_equal(r.damage.good_seq, line - 1);
        assert_int_equal(r.segments, 1);
        snprintf(moved, sizeof(moved), "%s/%s", r.path, strrchr(path, '/') + 1);
        after = read_all(moved, &len1);
        assert_int_equal(len0, len1);
        assert_memory_equal(before, after, len0);
        free(before);
        free(after);

        /* The new log continues: it opens, verifies, and its log.open names the old one. */
        assert_int_equal(oplog_open(&f->p, &l, &rec), 0);
        assert_string_equal(rec.log_id, r.new_log);
        assert_int_equal(rec.last_seq, 1);
        oplog_close(l);
        assert_int_equal(verify_ok(f).records, 1);
        last_segment_path(f, path, sizeof(path));
        before = read_all(path, &len0);
        assert_non_null(strstr(before, "\"previous\":{\"hash\":\""));
        assert_non_null(strstr(before, r.damage.log_id));
        snprintf(moved, sizeof(moved), "\"reason\":\"quarantine\",\"seq\":%" PRIu64 "}", line - 1);
        assert_non_null(strstr(before, moved));
        free(before);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_new_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_previous_run, setup, teardown),
                cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
                cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_destroyed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unwritable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_async, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_last_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_mid_segment, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_term, setup, teardown),
                cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
