/* Unit tests of collector receipts: the C codec reproduces the independent Python vectors byte for byte;
 * the parser refuses every malformed shape with a reason; a terminal believes a receipt only against its
 * own records; a pruned log verifies from its first present record through a receipt; the cursor
 * stores the receipt and counts only through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/oplog-verify.h"
#include "mamori/receipt.h"
#include "mamori/upload-cursor.h"

#define N_LINES    5
#define N_RECEIPTS 4
#define LOG_ID     "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60"

static char *lines[N_LINES], *rlines[N_RECEIPTS], *rsigned[N_RECEIPTS];
static size_t lens[N_LINES], rlens[N_RECEIPTS], rslens[N_RECEIPTS];
static EVP_PKEY *receipt_key, *identity, *epoch0, *epoch1;

static EVP_PKEY *key_from_keys_txt(const char *label)
{
        char *buf = NULL, *p;
        size_t n;
        uint8_t seed[32];
        EVP_PKEY *k = NULL;

        assert_int_equal(read_file_bounded(VECTORS_DIR "/keys.txt", 4096, &buf, &n), 0);
        p = strstr(buf, label);
        assert_non_null(p);
        p = strstr(p, "seed=");
        assert_non_null(p);
        assert_int_equal(hex_decode_exact(p + 5, 64, seed, sizeof(seed)), 0);
        assert_int_equal(ed25519_from_seed(seed, &k), 0);
        free(buf);
        return k;
}

static void read_lines(const char *path, int want, char **out, size_t *out_len)
{
        char *buf = NULL, *p;
        size_t n;

        assert_int_equal(read_file_bounded(path, 1 << 20, &buf, &n), 0);
        p = buf;
        for (int i = 0; i < want; i++) {
                char *nl = memchr(p, '\n', n - (size_t)(p - buf));
                assert_non_null(nl);
                out_len[i] = (size_t)(nl - p);
                out[i] = strndup(p, out_len[i]);
                p = nl + 1;
        }
        assert_true(p == buf + n);
        free(buf);
}

static int setup(void **state)
{
        read_lines(VECTORS_DIR "/records.jsonl", N_LINES, lines, lens);
        read_lines(VECTORS_DIR "/receipts.jsonl", N_RECEIPTS, rlines, rlens);
        read_lines(VECTORS_DIR "/receipts-signed.txt", N_RECEIPTS, rsigned, rslens);
        receipt_key = key_from_keys_txt("receipt");
        identity = key_from_keys_txt("identity");
        epoch0 = key_from_keys_txt("epoch0");
        epoch1 = key_from_keys_txt("epoch1");
        return 0;
}

static int teardown(void **state)
{
        for (int i = 0; i < N_LINES; i++)
                free(lines[i]);
        for (int i = 0; i < N_RECEIPTS; i++) {
                free(rlines[i]);
                free(rsigned[i]);
        }
        EVP_PKEY_free(receipt_key);
        EVP_PKEY_free(identity);
        EVP_PKEY_free(epoch0);
        EVP_PKEY_free(epoch1);
        return 0;
}

/* The vectors' receipts: acked and the key that signs acked + 1 (gen-records.py RECEIPTS). */
static const struct {
        uint64_t acked;
        const char *key;
} vec[N_RECEIPTS] = {{0, "identity"}, {2, "epoch0"}, {3, "epoch1"}, {5, "epoch1"}};

static void build(int i, Receipt *r)
{
        EVP_PKEY *k = key_from_keys_txt(vec[i].key);

        *r = (Receipt){.acked = vec[i].acked, .ts = 1763880100000000 + i * 1000000};
        strcpy(r->collector, "collector-1.example");
        strcpy(r->log, LOG_ID);
        if (vec[i].acked == 0)
                strcpy(r->line, RECORD_PREV_FIRST);
        else
                assert_int_equal(record_line_hash(lines[vec[i].acked - 1], lens[vec[i].acked - 1], r->line),
                                 0);
        assert_int_equal(ed25519_public_to_raw(k, r->key), 0);
        EVP_PKEY_free(k);
}

static void test_vectors_reproduced(void **state)
{
        for (int i = 0; i < N_RECEIPTS; i++) {
                Receipt r, parsed;
                char *json = NULL;
                size_t len;

                build(i, &r);
                assert_int_equal(receipt_sign(&r, receipt_key, &json, &len), 0);
                assert_int_equal(len, rlens[i]);
                assert_memory_equal(json, rlines[i], len);
                free(json);
                assert_int_equal(receipt_parse(rlines[i], rlens[i], &parsed, NULL), 0);
                assert_int_equal(receipt_verify(&parsed, receipt_key), 0);
                assert_int_equal(parsed.acked, vec[i].acked);
                assert_memory_equal(parsed.sig, r.sig, sizeof(r.sig));
                /* What the signature covers: the JCS bytes without "sig", as the reference made them. */
                assert_int_equal(ed25519_verify(receipt_key, rsigned[i], rslens[i], parsed.sig), 0);
                assert_int_equal(receipt_verify(&parsed, epoch0), -EKEYREJECTED);
        }
}

static void test_tampered_refused(void **state)
{
        Receipt r;

        assert_int_equal(receipt_parse(rlines[2], rlens[2], &r, NULL), 0);
        r.acked = 1000; /* a collector claiming more than it signed */
        assert_int_equal(receipt_verify(&r, receipt_key), -EKEYREJECTED);
        assert_int_equal(receipt_parse(rlines[2], rlens[2], &r, NULL), 0);
        r.ts++;
        assert_int_equal(receipt_verify(&r, receipt_key), -EKEYREJECTED);
        assert_int_equal(receipt_parse(rlines[2], rlens[2], &r, NULL), 0);
        r.has_sig = false;
        assert_int_equal(receipt_verify(&r, receipt_key), -EBADMSG);
}

static void test_malformed(void **state)
{
        static const char *const bad[] = {
                "",
                "[]",
                "null",
                "{}",
                /* a member missing, one extra, a duplicate */
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"wZzAy1Nao6xH/7Ksj+hVUdIEc4LBRf07lNPSgx+cpzg=\","
                "\"log\":\"5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60\",\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1,\"x\":0}",
                "{\"acked\":2,\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\","
                "\"log\":\"%LOG%\",\"sig\":\"%SIG%\",\"ts\":1}",
                /* wrong values, one at a time */
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":2}",
                "{\"acked\":-1,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":9007199254740992,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\","
                "\"log\":\"%LOG%\",\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":\"2\",\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%"
                "\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"a b\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\","
                "\"log\":\"5F1C0E2A9B3D4C6E8F7A1B2C3D4E5F60\",\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"abc\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":0,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"AAAA\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"wZzAy1Nao6xH/7Ksj+hVUdIEc4LBRf07lNPSgx+cpzh=\","
                "\"line\":\"%LINE%\",\"log\":\"%LOG%\",\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"AAAA\",\"ts\":1,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":-5,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":\"%LINE%\",\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1.5,\"v\":1}",
                "{\"acked\":2,\"collector\":\"c\",\"key\":\"%KEY%\",\"line\":{},\"log\":\"%LOG%\","
                "\"sig\":\"%SIG%\",\"ts\":1,\"v\":1}",
        };
        char line[SHA256_HEX_MAX];
        Receipt good;

        assert_int_equal(receipt_parse(rlines[1], rlens[1], &good, NULL), 0);
        memcpy(line, good.line, sizeof(line));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char buf[2048], *o = buf;
                const char *why = NULL;
                Receipt r;

                /* Fill in the good values of the vector's receipt for acked 2. */
                for (const char *p = bad[i]; *p;) {
                        if (strneq(p, "%KEY%", 5)) {
                                o += sprintf(o, "wZzAy1Nao6xH/7Ksj+hVUdIEc4LBRf07lNPSgx+cpzg=");
                                p += 5;
                        } else if (strneq(p, "%LINE%", 6)) {
                                o += sprintf(o, "%s", line);
                                p += 6;
                        } else if (strneq(p, "%LOG%", 5)) {
                                o += sprintf(o, LOG_ID);
                                p += 5;
                        } else if (strneq(p, "%SIG%", 5)) {
                                char *b64 = NULL;
                                assert_int_equal(base64_encode(good.sig, sizeof(good.sig), &b64), 0);
                                o += sprintf(o, "%s", b64);
                                free(b64);
                                p += 5;
                        } else
                                *o++ = *p++;
                }
                *o = '\0';
                assert_int_equal(receipt_parse(buf, strlen(buf), &r, &why), -EBADMSG);
                assert_non_null(why);
        }
        /* Larger than any receipt: refused before parsing. */
        {
                char *big = malloc(RECEIPT_SIZE_MAX + 2);
                const char *why = NULL;
                Receipt r;
                memset(big, ' ', RECEIPT_SIZE_MAX + 1);
                memcpy(big, rlines[1], rlens[1]);
                assert_int_equal(receipt_parse(big, RECEIPT_SIZE_MAX + 1, &r, &why), -E2BIG);
                assert_non_null(why);
                free(big);
        }
}

/* A receipt r for acked (the vectors' log), with key k, signed by the receipt key. */
static void make_receipt(uint64_t acked, EVP_PKEY *k, Receipt *r)
{
        *r = (Receipt){.acked = acked, .ts = 1};
        strcpy(r->collector, "c");
        strcpy(r->log, LOG_ID);
        if (acked == 0)
                strcpy(r->line, RECORD_PREV_FIRST);
        else if (acked <= N_LINES)
                assert_int_equal(record_line_hash(lines[acked - 1], lens[acked - 1], r->line), 0);
        else {
                memset(r->line, 'a', SHA256_HEX_MAX - 1);
                r->line[SHA256_HEX_MAX - 1] = '\0';
        }
        assert_int_equal(ed25519_public_to_raw(k, r->key), 0);
        assert_int_equal(receipt_sign(r, receipt_key, NULL, NULL), 0);
}

static void test_check_lines(void **state)
{
        Receipt r;
        const char *why;

        /* acked 2: our record 2, and record 3 is signed by the receipt's key (epoch 0). */
        make_receipt(2, epoch0, &r);
        assert_int_equal(
                receipt_check_lines(&r, receipt_key, LOG_ID, lines[1], lens[1], lines[2], lens[2], &why), 0);
        assert_int_equal(receipt_check_lines(&r, receipt_key, LOG_ID, lines[1], lens[1], NULL, 0, &why), 0);
        assert_int_equal(receipt_check_lines(&r, receipt_key, LOG_ID, NULL, 0, lines[2], lens[2], &why), 0);
        /* Another log, another signer. */
        assert_int_equal(receipt_check_lines(&r, receipt_key, "00000000000000000000000000000000", lines[1],
                                             lens[1], NULL, 0, &why),
                         -EBADMSG);
        assert_non_null(strstr(why, "another log"));
        assert_int_equal(receipt_check_lines(&r, epoch0, LOG_ID, lines[1], lens[1], NULL, 0, &why),
                         -EBADMSG);
        assert_non_null(strstr(why, "signature"));
        /* Our record of that seq differs: not ours. */
        assert_int_equal(receipt_check_lines(&r, receipt_key, LOG_ID, lines[2], lens[2], NULL, 0, &why),
                         -EBADMSG);
        assert_non_null(strstr(why, "line hash"));
        /* A key that does not sign our next record. */
        make_receipt(2, epoch1, &r);
        assert_int_equal(
                receipt_check_lines(&r, receipt_key, LOG_ID, lines[1], lens[1], lines[2], lens[2], &why),
                -EBADMSG);
        assert_non_null(strstr(why, "key"));
        /* acked 0 needs no record. */
        make_receipt(0, identity, &r);
        assert_int_equal(receipt_check_lines(&r, receipt_key, LOG_ID, NULL, 0, NULL, 0, &why), 0);
        /* Beyond our log: nothing to check it against. */
        make_receipt(6, epoch1, &r);
        assert_int_equal(receipt_check_lines(&r, receipt_key, LOG_ID, NULL, 0, NULL, 0, &why), -ENOENT);
}

/* A temporary log directory holding records first..last of the vectors in one segment. */
static char *make_dir(int first, int last)
{
        char tmpl[] = "/tmp/mamori-receipt-XXXXXX", name[LOG_SEGMENT_NAME_MAX], *path = NULL;
        char *dir = strdup(mkdtemp(tmpl));
        FILE *f;

        log_segment_name((uint64_t)first, name);
        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        f = fopen(path, "w");
        assert_non_null(f);
        for (int i = first; i <= last; i++)
                fprintf(f, "%s\n", lines[i - 1]);
        fclose(f);
        free(path);
        return dir;
}

static void remove_dir(char *dir)
{
        char *cmd = NULL;
        assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        free(dir);
}

static LogAnchor anchor_of(const Receipt *r)
{
        LogAnchor a = {.seq = r->acked};
        memcpy(a.log, r->log, sizeof(a.log));
        memcpy(a.hash, r->line, sizeof(a.hash));
        memcpy(a.key, r->key, sizeof(a.key));
        return a;
}

static void test_check_log_and_read_line(void **state)
{
        char *dir = make_dir(3, 5), *line = NULL;
        const char *why;
        size_t len;
        Receipt r;

        assert_int_equal(log_read_line(dir, 4, &line, &len), 0);
        assert_int_equal(len, lens[3]);
        assert_memory_equal(line, lines[3], len);
        free(line);
        assert_int_equal(log_read_line(dir, 2, &line, &len), -ENOENT);
        assert_int_equal(log_read_line(dir, 6, &line, &len), -ENOENT);
        /* Record 2 is pruned, but record 3 continues its hash and is signed by its key. */
        make_receipt(2, epoch0, &r);
        assert_int_equal(receipt_check_log(&r, receipt_key, dir, LOG_ID, &why), 0);
        make_receipt(5, epoch1, &r);
        assert_int_equal(receipt_check_log(&r, receipt_key, dir, LOG_ID, &why), 0);
        make_receipt(6, epoch1, &r);
        assert_int_equal(receipt_check_log(&r, receipt_key, dir, LOG_ID, &why), -ENOENT);
        make_receipt(3, epoch0, &r); /* record 4 is signed by epoch 1 */
        assert_int_equal(receipt_check_log(&r, receipt_key, dir, LOG_ID, &why), -EBADMSG);
        remove_dir(dir);
}

static void test_pruned_log_verifies(void **state)
{
        struct log_verify_result res;
        Receipt r;
        LogAnchor a;
        char *dir;

        /* Records 3..5, receipt for 2: the chain starts at the receipt's hash. */
        dir = make_dir(3, 5);
        make_receipt(2, epoch0, &r);
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_true(res.intact);
        assert_int_equal(res.first_seq, 3);
        assert_int_equal(res.anchor_seq, 2);
        assert_int_equal(res.records, 3);
        /* Receipt for 5: 3..5 by their hash chain alone. */
        make_receipt(5, epoch1, &r);
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_true(res.intact);
        /* Without a receipt the pruned log is broken, and says why. */
        assert_int_equal(log_verify_directory_anchored(dir, identity, NULL, NULL, NULL, &res), 0);
        assert_false(res.intact);
        assert_non_null(strstr(res.reason, "receipt"));
        /* A key that does not sign record 3. */
        make_receipt(2, epoch1, &r);
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_false(res.intact);
        assert_int_equal(res.bad_seq, 3);
        /* A hash the chain does not reach. */
        make_receipt(4, epoch1, &r);
        a = anchor_of(&r);
        a.hash[0] = a.hash[0] == '0' ? '1' : '0';
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_false(res.intact);
        assert_int_equal(res.bad_seq, 4);
        /* A receipt beyond the log. */
        make_receipt(6, epoch1, &r);
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_false(res.intact);
        assert_non_null(strstr(res.reason, "ends at seq 5"));
        /* Another log's receipt. */
        make_receipt(2, epoch0, &r);
        a = anchor_of(&r);
        a.log[0] = a.log[0] == '0' ? '1' : '0';
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_false(res.intact);
        remove_dir(dir);

        /* Records 4..5 and a receipt for 2 only: record 3 is missing, nothing vouches for it. */
        dir = make_dir(4, 5);
        make_receipt(2, epoch0, &r);
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_false(res.intact);
        assert_non_null(strstr(res.reason, "missing"));
        /* With the receipt for 3 they verify. */
        make_receipt(3, epoch1, &r);
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_true(res.intact);
        remove_dir(dir);

        /* A whole log ignores the receipt and checks every signature. */
        dir = make_dir(1, 5);
        make_receipt(2, epoch1, &r); /* wrong key: unused */
        a = anchor_of(&r);
        assert_int_equal(log_verify_directory_anchored(dir, identity, &a, NULL, NULL, &res), 0);
        assert_true(res.intact);
        assert_int_equal(res.anchor_seq, 0);
        remove_dir(dir);
}

static void test_anchored_state_resumes(void **state)
{
        LogVerifier *v = NULL, *w = NULL;
        LogVerifierState st;
        Record *first = NULL;
        Receipt r;
        LogAnchor a;

        make_receipt(3, epoch1, &r);
        a = anchor_of(&r);
        assert_int_equal(record_parse_line(lines[1], lens[1], &first), 0);
        assert_int_equal(log_verifier_new_anchored(&a, first, &v), 0);
        record_free(first);
        assert_int_equal(log_verifier_push(v, lines[1], lens[1], NULL), 0);
        assert_int_equal(log_verifier_save(v, &st), 0);
        assert_int_equal(log_verifier_restore(&st, &w), 0);
        /* Saved before the anchor, restored: the rest verifies the same. */
        for (int i = 2; i < N_LINES; i++) {
                assert_int_equal(log_verifier_push(v, lines[i], lens[i], NULL), 0);
                assert_int_equal(log_verifier_push(w, lines[i], lens[i], NULL), 0);
        }
        assert_int_equal(log_verifier_last_seq(w), 5);
        log_verifier_free(v);
        log_verifier_free(w);
}

static void test_cursor_with_receipt(void **state)
{
        char *dir = make_dir(1, 5), *path = NULL, line[UPLOAD_CURSOR_LINE_MAX];
        UploadCursor c = {.acked = 2}, back;
        const char *why;
        FILE *f;
        int n;

        assert_true(asprintf(&path, "%s/cursor", dir) > 0);
        strcpy(c.log, LOG_ID);
        c.has_receipt = true;
        make_receipt(2, epoch0, &c.receipt);
        n = upload_cursor_format(&c, line);
        assert_true(n > 0);
        assert_int_equal(upload_cursor_parse(line, (size_t)n, &back), 0);
        assert_true(back.has_receipt);
        assert_int_equal(back.receipt.acked, 2);
        assert_memory_equal(back.receipt.sig, c.receipt.sig, ED25519_SIG_SIZE);

        assert_int_equal(upload_cursor_save(path, &c), 0);
        assert_int_equal(upload_cursor_load_verified(path, receipt_key, dir, LOG_ID, &back, &why), 0);
        assert_int_equal(back.acked, 2);
        /* Another log's cursor; another receipt key. */
        assert_int_equal(upload_cursor_load_verified(path, receipt_key, dir,
                                                     "00000000000000000000000000000000", &back, &why),
                         -ESTALE);
        assert_int_equal(upload_cursor_load_verified(path, epoch0, dir, LOG_ID, &back, &why), -EBADMSG);
        /* A receipt whose acked is not the cursor's: not a cursor. */
        c.acked = 3;
        assert_int_equal(upload_cursor_format(&c, line), -EINVAL);
        /* A forged cursor: acked far past the log, no receipt. */
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "{\"log\":\"%s\",\"acked\":1005}\n", LOG_ID);
        fclose(f);
        assert_int_equal(upload_cursor_load_verified(path, receipt_key, dir, LOG_ID, &back, &why), -ENOKEY);
        /* A forged cursor with a receipt signed by someone else. */
        c = (UploadCursor){.acked = 4, .has_receipt = true};
        strcpy(c.log, LOG_ID);
        make_receipt(4, epoch1, &c.receipt);
        assert_int_equal(receipt_sign(&c.receipt, epoch0, NULL, NULL), 0);
        assert_int_equal(upload_cursor_save(path, &c), 0);
        assert_int_equal(upload_cursor_load_verified(path, receipt_key, dir, LOG_ID, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "signature"));
        free(path);
        remove_dir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vectors_reproduced),
                cmocka_unit_test(test_tampered_refused),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_check_lines),
                cmocka_unit_test(test_check_log_and_read_line),
                cmocka_unit_test(test_pruned_log_verifies),
                cmocka_unit_test(test_anchored_state_resumes),
                cmocka_unit_test(test_cursor_with_receipt),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
