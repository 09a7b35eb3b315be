/* Unit tests of the log verifier: the committed vectors verify; each kind of tampering is caught with its
 * reason; verification resumed from saved states gives the same verdict as one pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/oplog-verify.h"
#include "record-fixture.h"
#include "thirds-runner.h"

#define N_LINES 5

static char *lines[N_LINES];
static size_t lens[N_LINES];
static EVP_PKEY *identity;

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

static int setup(void **state)
{
        char *buf = NULL, *p;
        size_t n;

        assert_int_equal(read_file_bounded(VECTORS_DIR "/records.jsonl", 1 << 20, &buf, &n), 0);
        p = buf;
        for (int i = 0; i < N_LINES; i++) {
                char *nl = memchr(p, '\n', n - (size_t)(p - buf));
                assert_non_null(nl);
                lens[i] = (size_t)(nl - p);
                lines[i] = strndup(p, lens[i]);
                p = nl + 1;
        }
        free(buf);
        identity = key_from_keys_txt("identity");
        return 0;
}

static int teardown(void **state)
{
        for (int i = 0; i < N_LINES; i++)
                free(lines[i]);
        EVP_PKEY_free(identity);
        return 0;
}

/* Push lines in the given order; returns the index of the first refused one (-1 = all good). */
static int push_all(const char *const *ls, const size_t *ln, int n, EVP_PKEY *id, char *reason, size_t rn)
{
        LogVerifier *v = NULL;
        int bad = -1;

        assert_int_equal(log_verifier_new(id, &v), 0);
        for (int i = 0; i < n; i++)
                if (log_verifier_push(v, ls[i], ln[i], NULL) < 0) {
                        bad = i;
                        break;
                }
        if (reason)
                snprintf(reason, rn, "%s", log_verifier_reason(v));
        log_verifier_free(v);
        return bad;
}

static void test_vectors_verify(void **state)
{
        LogVerifier *v = NULL;
        uint8_t raw[32];

        assert_int_equal(log_verifier_new(identity, &v), 0);
        for (int i = 0; i < N_LINES; i++)
                assert_int_equal(log_verifier_push(v, lines[i], lens[i], NULL), 0);
        assert_int_equal(log_verifier_last_seq(v), 5);
        assert_int_equal(log_verifier_epochs(v), 2);
        assert_string_equal(log_verifier_log_id(v), "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60");
        assert_int_equal(log_verifier_current_key(v, raw), 0);
        assert_string_equal(log_verifier_reason(v), "");
        log_verifier_free(v);
}

static void test_wrong_identity(void **state)
{
        EVP_PKEY *other = key_from_keys_txt("epoch1");
        char why[256];
        assert_int_equal(push_all((const char *const *)lines, lens, N_LINES, other, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "identity key"));
        EVP_PKEY_free(other);
}

static void test_flipped_byte(void **state)
{
        for (int line = 0; line < N_LINES; line++)
                for (size_t pos = 0; pos < lens[line]; pos += 7) {
                        char *copy[N_LINES];
                        for (int i = 0; i < N_LINES; i++)
                                copy[i] = lines[i];
                        copy[line] = strndup(lines[line], lens[line]);
                        copy[line][pos] ^= 0x01;
                        /* Refused at that line (or, for the first one's sig, there) — never accepted. */
                        assert_int_equal(
                                push_all((const char *const *)copy, lens, N_LINES, identity, NULL, 0), line);
                        free(copy[line]);
                }
}

static void test_removed_and_swapped(void **state)
{
        const char *ls[N_LINES];
        size_t ln[N_LINES];
        char why[256];

        /* seq 3 removed */
        for (int i = 0, j = 0; i < N_LINES; i++)
                if (i != 2) {
                        ls[j] = lines[i];
                        ln[j++] = lens[i];
                }
        assert_int_equal(push_all(ls, ln, N_LINES - 1, identity, why, sizeof(why)), 2);
        assert_non_null(strstr(why, "records missing"));

        /* seq 4 and 5 swapped */
        for (int i = 0; i < N_LINES; i++) {
                ls[i] = lines[i];
                ln[i] = lens[i];
        }
        ls[3] = lines[4], ln[3] = lens[4];
        ls[4] = lines[3], ln[4] = lens[3];
        assert_int_equal(push_all(ls, ln, N_LINES, identity, why, sizeof(why)), 3);
}

static void test_resigned_with_identity(void **state)
{
        Record *r = NULL;
        char *line = NULL;
        size_t len;
        const char *ls[N_LINES];
        size_t ln[N_LINES];
        char why[256];

        /* seq 4 comes after the rotation: a thief holding only the identity key re-signs it. */
        assert_int_equal(record_parse_line(lines[3], lens[3], &r), 0);
        assert_int_equal(record_sign(r, identity, &line, &len), 0);
        for (int i = 0; i < N_LINES; i++) {
                ls[i] = lines[i];
                ln[i] = lens[i];
        }
        ls[3] = line;
        ln[3] = len;
        assert_int_equal(push_all(ls, ln, 4, identity, why, sizeof(why)), 3);
        assert_non_null(strstr(why, "signature"));
        record_free(r);
        free(line);
}

static int collect(const char *line, size_t len, uint64_t offset, void *userdata)
{
        int *n = userdata;
        (*n)++;
        return 0;
}

static void test_segment_reader(void **state)
{
        int fd = memfd_create("seg", MFD_CLOEXEC);
        uint64_t tail = 99;
        int n = 0;
        char *big;

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "a\nbb\ntorn", 9), 9);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(log_segment_read_fd(fd, collect, &n, &tail), 0);
        assert_int_equal(n, 2);
        assert_int_equal(tail, 4);

        /* An over-long line is reported once (truncated), then reading goes on after it. */
        big = malloc(RECORD_LINE_MAX * 3);
        memset(big, 'x', RECORD_LINE_MAX * 3);
        big[RECORD_LINE_MAX * 3 - 1] = '\n';
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(write(fd, big, RECORD_LINE_MAX * 3), RECORD_LINE_MAX * 3);
        assert_int_equal(write(fd, "ok\n", 3), 3);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        n = 0;
        assert_int_equal(log_segment_read_fd(fd, collect, &n, &tail), 0);
        assert_int_equal(n, 2);
        assert_int_equal(tail, 0);
        free(big);
        close(fd);
}

static void test_segment_names(void **state)
{
        char name[LOG_SEGMENT_NAME_MAX];
        uint64_t s = 0;

        log_segment_name(42, name);
        assert_string_equal(name, "seg-00000000000000000042.log");
        assert_true(log_segment_name_parse(name, &s));
        assert_int_equal(s, 42);
        assert_false(log_segment_name_parse("seg-00000000000000000000.log", NULL));
        assert_false(log_segment_name_parse("seg-0000000000000000004x.log", NULL));
        assert_false(log_segment_name_parse("seg-42.log", NULL));
        assert_false(log_segment_name_parse("seg-99999999999999999999.log", NULL));
        assert_false(log_segment_name_parse(".lock", NULL));
}

/* ---- Resumed verification: a generated log, tampered in one place, verified in pieces. ---- */

#define R_LINES 12
#define R_LOG   "00112233445566778899aabbccddeeff"

enum tamper {
        T_NONE,
        T_SIG,          /* one base64 digit of seq's signature changed */
        T_PREV,         /* seq's prev is another hash (validly signed) */
        T_OLD_KEY,      /* seq signed by the key of the epoch before */
        T_BAD_DATA_KEY, /* seq's data.key is not base64 */
        T_DROP,         /* seq left out */
        T_GARBAGE,      /* seq's line is not a record */
        T_OPEN_AGAIN,   /* seq is a second log.open (signed by its epoch key) */
        T_OTHER_LOG,    /* seq carries another log id (validly signed, chained) */
};

typedef struct ResumeCase {
        const char *name;
        enum tamper tamper;
        uint64_t seq;
        int bad_line;         /* 0-based index of the first refused line, -1 = intact */
        LogVerifyError error; /* the rule it breaks */
        uint64_t bad_seq;     /* log_verifier_bad_seq() */
} ResumeCase;

/* seq 1 log.open (identity → epoch 0), 4 key.rotate → epoch 1, 8 key.rotate → epoch 2. */
static const ResumeCase resume_cases[] = {
        {"intact", T_NONE, 0, -1, LOG_VERIFY_OK, 0},
        {"bad signature after a rotation", T_SIG, 6, 5, LOG_VERIFY_SIGNATURE, 6},
        {"bad signature on the rotation", T_SIG, 8, 7, LOG_VERIFY_SIGNATURE, 8},
        {"bad signature on log.open", T_SIG, 1, 0, LOG_VERIFY_SIGNATURE, 1},
        {"wrong prev", T_PREV, 6, 5, LOG_VERIFY_PREV, 6},
        {"wrong prev after a rotation", T_PREV, 9, 8, LOG_VERIFY_PREV, 9},
        {"old key after a rotation", T_OLD_KEY, 5, 4, LOG_VERIFY_SIGNATURE, 5},
        {"rotation to a malformed key", T_BAD_DATA_KEY, 8, 7, LOG_VERIFY_KEY, 8},
        {"record missing", T_DROP, 7, 6, LOG_VERIFY_SEQ, 8},
        {"garbage line", T_GARBAGE, 10, 9, LOG_VERIFY_MALFORMED, 10},
        {"log.open again", T_OPEN_AGAIN, 6, 5, LOG_VERIFY_OPEN, 6},
        {"another log id", T_OTHER_LOG, 3, 2, LOG_VERIFY_LOG_ID, 3},
};

typedef struct ResumeLog {
        char *lines[R_LINES];
        size_t lens[R_LINES];
        size_t n;
} ResumeLog;

/* keys[0] identity, keys[1..3] epochs 0..2. */
static void make_resume_log(EVP_PKEY *const keys[4], const ResumeCase *c, ResumeLog *ret)
{
        char prev[SHA256_HEX_MAX] = RECORD_PREV_FIRST;

        *ret = (ResumeLog){};
        for (uint64_t seq = 1; seq <= R_LINES; seq++) {
                bool hit = c->tamper != T_NONE && seq == c->seq;
                /* The identity signs seq 1; a key.rotate is signed by the key it retires. */
                unsigned signer_idx = seq == 1 ? 0 : seq <= 4 ? 1 : seq <= 8 ? 2 : 3;
                EVP_PKEY *signer = keys[signer_idx];
                Record *r = NULL;
                char *line = NULL;
                size_t len;

                assert_int_equal(record_new(&r), 0);
                strcpy(r->log, hit && c->tamper == T_OTHER_LOG ? "ffeeddccbbaa99887766554433221100" : R_LOG);
                strcpy(r->boot, R_LOG);
                r->seq = seq;
                r->ts = 1000 + (int64_t)seq;
                r->mono = (int64_t)seq;
                r->term = strdup("T-RESUME");
                memcpy(r->prev, prev, sizeof(prev));
                if (hit && c->tamper == T_PREV)
                        memset(r->prev, 'f', SHA256_HEX_MAX - 1);
                r->ev = strdup(seq == 1 || (hit && c->tamper == T_OPEN_AGAIN) ? "log.open"
                               : seq == 4 || seq == 8                         ? "key.rotate"
                                                                              : "lock");
                if (hit && c->tamper == T_BAD_DATA_KEY)
                        assert_int_equal(json_object_set_string(r->data, "key", "not base64!"), 0);
                else if (seq == 1 || (hit && c->tamper == T_OPEN_AGAIN))
                        fixture_set_data_key(r, keys[1]);
                else if (seq == 4 || seq == 8)
                        fixture_set_data_key(r, keys[seq == 4 ? 2 : 3]);
                if (hit && c->tamper == T_OLD_KEY)
                        signer = keys[signer_idx - 1];
                assert_int_equal(record_sign(r, signer, &line, &len), 0);
                assert_int_equal(record_line_hash(line, len, prev), 0);
                record_free(r);
                if (hit && c->tamper == T_SIG) {
                        char *sig = strstr(line, "\"sig\":\"") + 7;
                        *sig = *sig == 'A' ? 'B' : 'A';
                }
                if (hit && c->tamper == T_GARBAGE) {
                        free(line);
                        line = strdup("{\"v\":1,\"not\":\"a record\"}");
                        len = strlen(line);
                }
                if (hit && c->tamper == T_DROP) {
                        free(line);
                        continue;
                }
                ret->lines[ret->n] = line;
                ret->lens[ret->n++] = len;
        }
}

static void resume_log_done(ResumeLog *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->lines[i]);
}

/* What a verification ended with: everything a caller can observe. */
typedef struct Verdict {
        int bad_line;
        LogVerifyError error;
        char reason[256];
        uint64_t bad_seq;
        LogVerifierState state;
} Verdict;

/*
 * Verify l with a save/free/restore before every line whose bit is set in splits (bit i: before
 * line i; bit 0 restores the fresh state). After a refusal the remaining lines are still pushed,
 * and must keep being refused.
 */
static void verify_split(EVP_PKEY *id, const ResumeLog *l, uint32_t splits, Verdict *ret)
{
        LogVerifier *v = NULL;

        *ret = (Verdict){.bad_line = -1};
        assert_int_equal(log_verifier_new(id, &v), 0);
        for (size_t i = 0; i < l->n; i++) {
                int k;
                if (splits & (UINT32_C(1) << i) && ret->bad_line < 0) {
                        LogVerifierState st;
                        assert_int_equal(log_verifier_save(v, &st), 0);
                        log_verifier_free(v);
                        v = NULL;
                        assert_int_equal(log_verifier_restore(&st, &v), 0);
                }
                k = log_verifier_push(v, l->lines[i], l->lens[i], NULL);
                if (ret->bad_line >= 0)
                        assert_int_equal(k, -EBADMSG); /* the first failure sticks */
                else if (k < 0) {
                        assert_int_equal(k, -EBADMSG);
                        ret->bad_line = (int)i;
                }
        }
        ret->error = log_verifier_error(v);
        snprintf(ret->reason, sizeof(ret->reason), "%s", log_verifier_reason(v));
        ret->bad_seq = log_verifier_bad_seq(v);
        assert_int_equal(log_verifier_save(v, &ret->state), 0);
        log_verifier_free(v);
}

static void assert_same_verdict(const Verdict *a, const Verdict *b, const char *what, uint32_t splits)
{
        if (a->bad_line != b->bad_line || a->error != b->error || !streq(a->reason, b->reason) ||
            a->bad_seq != b->bad_seq || memcmp(&a->state, &b->state, sizeof(a->state)) != 0)
                fail_msg("%s, splits %#x: line %d error %d \"%s\" vs one pass: line %d error %d \"%s\"",
                         what, splits, a->bad_line, a->error, a->reason, b->bad_line, b->error, b->reason);
}

static EVP_PKEY *resume_keys[4];

static int resume_setup(void **state)
{
        for (int i = 0; i < 4; i++)
                resume_keys[i] = fixture_key_from_byte((uint8_t)(i + 1));
        return 0;
}

static int resume_teardown(void **state)
{
        for (int i = 0; i < 4; i++)
                EVP_PKEY_free(resume_keys[i]);
        return 0;
}

/* Every case, split at every single point and every pair of points, and resumed before every line:
 * always the one-pass verdict, and the one-pass verdict is the expected one. */
static void test_resume_same_verdict(void **state)
{
        for (size_t c = 0; c < sizeof(resume_cases) / sizeof(resume_cases[0]); c++) {
                const ResumeCase *rc = &resume_cases[c];
                ResumeLog l;
                Verdict one, split;

                make_resume_log(resume_keys, rc, &l);
                verify_split(resume_keys[0], &l, 0, &one);
                if (one.bad_line != rc->bad_line || one.error != rc->error)
                        fail_msg("%s: one pass refused line %d (error %d: %s), want line %d error %d",
                                 rc->name, one.bad_line, one.error, one.reason, rc->bad_line, rc->error);
                assert_int_equal(one.bad_seq, rc->bad_seq);
                for (size_t i = 0; i <= l.n; i++)
                        for (size_t j = i; j <= l.n; j++) {
                                uint32_t splits = (UINT32_C(1) << i) | (UINT32_C(1) << j);
                                verify_split(resume_keys[0], &l, splits, &split);
                                assert_same_verdict(&split, &one, rc->name, splits);
                        }
                verify_split(resume_keys[0], &l, UINT32_MAX, &split);
                assert_same_verdict(&split, &one, rc->name, UINT32_MAX);
                resume_log_done(&l);
        }
}

/* Piece 1 ends right at the key.rotate of seq 4 (and, next, piece 2 starts with it): the saved state
 * carries the new epoch key, and piece 2 verifies with it. */
static void test_resume_rotation_at_split(void **state)
{
        ResumeLog l;
        Verdict one, split;
        uint8_t epoch1[ED25519_KEY_SIZE];

        make_resume_log(resume_keys, &resume_cases[0], &l);
        assert_int_equal(ed25519_public_to_raw(resume_keys[2], epoch1), 0);
        verify_split(resume_keys[0], &l, 0, &one);
        assert_int_equal(one.bad_line, -1);
        assert_int_equal(one.state.last_seq, R_LINES);
        assert_int_equal(one.state.epochs, 3);
        assert_string_equal(one.state.log, R_LOG);
        assert_string_equal(one.state.term, "T-RESUME");

        /* Stop right after the rotation: the state names epoch 1. */
        {
                LogVerifier *v = NULL;
                LogVerifierState st;
                assert_int_equal(log_verifier_new(resume_keys[0], &v), 0);
                for (size_t i = 0; i < 4; i++)
                        assert_int_equal(log_verifier_push(v, l.lines[i], l.lens[i], NULL), 0);
                assert_int_equal(log_verifier_save(v, &st), 0);
                log_verifier_free(v);
                assert_int_equal(st.last_seq, 4);
                assert_int_equal(st.epochs, 2);
                assert_memory_equal(st.key, epoch1, sizeof(epoch1));
        }
        verify_split(resume_keys[0], &l, UINT32_C(1) << 4, &split); /* rotation last of piece 1 */
        assert_same_verdict(&split, &one, "rotation ends piece 1", 1u << 4);
        verify_split(resume_keys[0], &l, UINT32_C(1) << 3, &split); /* rotation first of piece 2 */
        assert_same_verdict(&split, &one, "rotation starts piece 2", 1u << 3);
        verify_split(resume_keys[0], &l, (UINT32_C(1) << 4) | (UINT32_C(1) << 8), &split);
        assert_same_verdict(&split, &one, "both rotations end pieces", (1u << 4) | (1u << 8));
        resume_log_done(&l);
}

/* A bad signature and a wrong prev in the piece after the split: refused there, with the one-pass
 * reason, and the saved state is the last good record. */
static void test_resume_break_after_split(void **state)
{
        static const struct {
                size_t tamper_case;
                const char *reason;
        } t[] = {
                {1, "seq 6 (lock): signature is not by the current log key (epoch 1)"},
                {4, "seq 6: prev does not match the hash of seq 5"},
        };
        for (size_t n = 0; n < sizeof(t) / sizeof(t[0]); n++) {
                const ResumeCase *rc = &resume_cases[t[n].tamper_case];
                ResumeLog l;
                Verdict one, split;

                make_resume_log(resume_keys, rc, &l);
                verify_split(resume_keys[0], &l, 0, &one);
                verify_split(resume_keys[0], &l, UINT32_C(1) << 3, &split); /* pieces 1..3, 4..12 */
                assert_same_verdict(&split, &one, rc->name, 1u << 3);
                assert_int_equal(split.bad_line, 5);
                assert_int_equal(split.bad_seq, 6);
                assert_string_equal(split.reason, t[n].reason);
                assert_int_equal(split.state.last_seq, 5);
                assert_int_equal(split.state.epochs, 2);
                verify_split(resume_keys[0], &l, UINT32_C(1) << 5, &split); /* the bad one starts piece 2 */
                assert_same_verdict(&split, &one, rc->name, 1u << 5);
                resume_log_done(&l);
        }
}

/* A refused record does not enter the state: resuming from it takes the good record instead. */
static void test_resume_after_refusal(void **state)
{
        ResumeLog good, bad;
        LogVerifier *v = NULL, *w = NULL;
        LogVerifierState st;

        make_resume_log(resume_keys, &resume_cases[0], &good);
        make_resume_log(resume_keys, &resume_cases[1], &bad); /* seq 6 bad signature */
        assert_int_equal(log_verifier_new(resume_keys[0], &v), 0);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(log_verifier_push(v, bad.lines[i], bad.lens[i], NULL), 0);
        assert_int_equal(log_verifier_push(v, bad.lines[5], bad.lens[5], NULL), -EBADMSG);
        assert_int_equal(log_verifier_save(v, &st), 0);
        assert_int_equal(st.last_seq, 5);
        assert_int_equal(log_verifier_restore(&st, &w), 0);
        assert_int_equal(log_verifier_error(w), LOG_VERIFY_OK);
        for (size_t i = 5; i < good.n; i++)
                assert_int_equal(log_verifier_push(w, good.lines[i], good.lens[i], NULL), 0);
        assert_int_equal(log_verifier_last_seq(w), R_LINES);
        log_verifier_free(v);
        log_verifier_free(w);
        resume_log_done(&good);
        resume_log_done(&bad);
}

/* States that no verifier could have saved are refused. */
static void test_restore_rejects_inconsistent(void **state)
{
        ResumeLog l;
        LogVerifier *v = NULL;
        LogVerifierState good, st;

        make_resume_log(resume_keys, &resume_cases[0], &l);
        assert_int_equal(log_verifier_new(resume_keys[0], &v), 0);
        assert_int_equal(log_verifier_save(v, &st), 0);
        log_verifier_free(v);
        v = NULL;
        assert_int_equal(log_verifier_restore(&st, &v), 0); /* the fresh state */
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(log_verifier_push(v, l.lines[i], l.lens[i], NULL), 0);
        assert_int_equal(log_verifier_save(v, &good), 0);
        log_verifier_free(v);
        v = NULL;

        st = good, st.epochs = 0;
        assert_int_equal(log_verifier_restore(&st, &v), -EINVAL);
        st = good, st.log[0] = '\0';
        assert_int_equal(log_verifier_restore(&st, &v), -EINVAL);
        st = good, st.last_hash[3] = 'G';
        assert_int_equal(log_verifier_restore(&st, &v), -EINVAL);
        st = good, st.epochs = 6; /* more epochs than records */
        assert_int_equal(log_verifier_restore(&st, &v), -EINVAL);
        st = good, st.last_seq = 0; /* no record, yet a log id and a key */
        assert_int_equal(log_verifier_restore(&st, &v), -EINVAL);
        st = good;
        memset(st.log, 'a', sizeof(st.log)); /* not NUL-terminated */
        assert_int_equal(log_verifier_restore(&st, &v), -EINVAL);
        assert_null(v);
        resume_log_done(&l);
}

/* ---- Batches: the chain rules in order, the signatures by a runner, the one-pass verdict. ---- */

/* Runs the jobs from the last to the first: a later bad signature is seen before an earlier one. */
static void run_backwards(size_t n, log_job_fn job, void *job_userdata, void *userdata)
{
        for (size_t i = n; i-- > 0;)
                job(i, job_userdata);
}

static const LogParallel runners[] = {
        {NULL, NULL},
        {run_backwards, NULL},
        {run_thirds_backwards, NULL}, /* the record refused may be a non-first thread's */
};

/*
 * Verify l in batches (a new batch before every line whose bit is set in splits), each batch through
 * log_verifier_push_batch() with runner par; a line that does not parse ends its batch and goes
 * through log_verifier_push(), as the collector refuses it while parsing.
 */
static void verify_batches(EVP_PKEY *id, const ResumeLog *l, uint32_t splits, const LogParallel *par,
                           Verdict *ret)
{
        LogVerifier *v = NULL;
        LogBatchLine b[R_LINES];
        Record *recs[R_LINES] = {};
        size_t start = 0;

        *ret = (Verdict){.bad_line = -1};
        assert_int_equal(log_verifier_new(id, &v), 0);
        for (size_t i = 0; i <= l->n; i++) {
                bool parsed = i < l->n && record_parse_line(l->lines[i], l->lens[i], &recs[i]) == 0;
                int k;

                if (i < l->n && parsed && !(splits & (UINT32_C(1) << i) && i > start)) {
                        b[i] = (LogBatchLine){.record = recs[i], .line = l->lines[i], .len = l->lens[i]};
                        continue;
                }
                /* Lines start..i-1 are one batch. */
                k = log_verifier_push_batch(v, b + start, i - start, par);
                if (k < 0) {
                        assert_int_equal(k, -EBADMSG);
                        break;
                }
                for (size_t j = start; j < i; j++) {
                        char hash[SHA256_HEX_MAX];
                        assert_int_equal(record_line_hash(l->lines[j], l->lens[j], hash), 0);
                        assert_string_equal(b[j].hash, hash);
                }
                if (i == l->n)
                        break;
                if (!parsed) {
                        assert_int_equal(log_verifier_push(v, l->lines[i], l->lens[i], NULL), -EBADMSG);
                        break;
                }
                b[i] = (LogBatchLine){.record = recs[i], .line = l->lines[i], .len = l->lens[i]};
                start = i;
        }
        ret->error = log_verifier_error(v);
        if (ret->error != LOG_VERIFY_OK)
                ret->bad_line = (int)log_verifier_last_seq(v); /* the lines before it are seq 1.. */
        snprintf(ret->reason, sizeof(ret->reason), "%s", log_verifier_reason(v));
        ret->bad_seq = log_verifier_bad_seq(v);
        assert_int_equal(log_verifier_save(v, &ret->state), 0);
        /* Sticky, as for single pushes. */
        if (ret->error != LOG_VERIFY_OK && l->n > 0)
                assert_int_equal(log_verifier_push_batch(v, b, 1, par), -EBADMSG);
        log_verifier_free(v);
        for (size_t i = 0; i < l->n; i++)
                record_free(recs[i]);
}

/* Every case, as one batch and split into two batches at every point, with every runner: always the
 * one-pass verdict (rule, reason, seq, state). */
static void test_batch_same_verdict(void **state)
{
        for (size_t c = 0; c < sizeof(resume_cases) / sizeof(resume_cases[0]); c++) {
                const ResumeCase *rc = &resume_cases[c];
                ResumeLog l;
                Verdict one, batch;

                make_resume_log(resume_keys, rc, &l);
                verify_split(resume_keys[0], &l, 0, &one);
                for (size_t r = 0; r < sizeof(runners) / sizeof(runners[0]); r++)
                        for (size_t i = 0; i <= l.n; i++) {
                                uint32_t splits = i == 0 ? 0 : UINT32_C(1) << i;
                                verify_batches(resume_keys[0], &l, splits, &runners[r], &batch);
                                assert_same_verdict(&batch, &one, rc->name, splits | (uint32_t)r << 24);
                        }
                resume_log_done(&l);
        }
}

/* Two faults in one batch: the earlier one is the verdict, whichever the runner checks first — a bad
 * signature before a broken chain, and a broken chain before a bad signature. */
static void test_batch_first_fault_wins(void **state)
{
        static const struct {
                size_t tamper_case; /* index in resume_cases */
                size_t sig_line;    /* and this line's signature spoiled too */
                int bad_line;
                LogVerifyError error;
        } t[] = {
                {4, 2, 2, LOG_VERIFY_SIGNATURE},  /* bad sig at seq 3, wrong prev at seq 6 */
                {4, 9, 5, LOG_VERIFY_PREV},       /* wrong prev at seq 6, bad sig at seq 10 */
                {7, 10, 7, LOG_VERIFY_KEY},       /* malformed rotation key at seq 8, bad sig at 11 */
                {7, 7, 7, LOG_VERIFY_SIGNATURE},  /* both on seq 8: its signature is checked first */
                {1, 10, 5, LOG_VERIFY_SIGNATURE}, /* bad sigs at seq 6 and 11 */
                /* seq 5 signed by the old key (chain intact), bad sig at seq 11: both are checked */
                {6, 10, 4, LOG_VERIFY_SIGNATURE},
        };
        for (size_t n = 0; n < sizeof(t) / sizeof(t[0]); n++) {
                ResumeLog l;
                Verdict one, batch;
                char *sig;

                make_resume_log(resume_keys, &resume_cases[t[n].tamper_case], &l);
                sig = strstr(l.lines[t[n].sig_line], "\"sig\":\"") + 7;
                *sig = *sig == 'A' ? 'B' : 'A';
                verify_split(resume_keys[0], &l, 0, &one);
                assert_int_equal(one.bad_line, t[n].bad_line);
                assert_int_equal(one.error, t[n].error);
                for (size_t r = 0; r < sizeof(runners) / sizeof(runners[0]); r++) {
                        verify_batches(resume_keys[0], &l, 0, &runners[r], &batch);
                        assert_same_verdict(&batch, &one, "two faults", (uint32_t)(n << 8 | r));
                }
                resume_log_done(&l);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vectors_verify),
                cmocka_unit_test(test_wrong_identity),
                cmocka_unit_test(test_flipped_byte),
                cmocka_unit_test(test_removed_and_swapped),
                cmocka_unit_test(test_resigned_with_identity),
                cmocka_unit_test(test_segment_reader),
                cmocka_unit_test(test_segment_names),
                cmocka_unit_test_setup_teardown(test_resume_same_verdict, resume_setup, resume_teardown),
                cmocka_unit_test_setup_teardown(test_resume_rotation_at_split, resume_setup,
                                                resume_teardown),
                cmocka_unit_test_setup_teardown(test_resume_break_after_split, resume_setup,
                                                resume_teardown),
                cmocka_unit_test_setup_teardown(test_resume_after_refusal, resume_setup, resume_teardown),
                cmocka_unit_test_setup_teardown(test_restore_rejects_inconsistent, resume_setup,
                                                resume_teardown),
                cmocka_unit_test_setup_teardown(test_batch_same_verdict, resume_setup, resume_teardown),
                cmocka_unit_test_setup_teardown(test_batch_first_fault_wins, resume_setup, resume_teardown),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
