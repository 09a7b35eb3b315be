/* Unit tests for the record codec: reproduce the Python-made vectors byte for byte, verify the chain, reject
 * malformed lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mamori/fileio.h"
#include "mamori/oplog-record.h"

#ifndef VECTORS_DIR
#error "VECTORS_DIR must point at tests/vectors"
#endif

#define N_RECORDS 5

typedef struct Lines {
        char *buf;
        char *line[16];
        size_t len[16];
        size_t n;
} Lines;

static void lines_load(const char *name, Lines *l)
{
        char path[512];
        size_t size;

        snprintf(path, sizeof(path), "%s/%s", VECTORS_DIR, name);
        assert_int_equal(read_file_bounded(path, 1024 * 1024, &l->buf, &size), 0);
        l->n = 0;
        for (char *p = l->buf, *e; (e = memchr(p, '\n', size - (size_t)(p - l->buf))); p = e + 1) {
                assert_true(l->n < 16);
                l->line[l->n] = p;
                l->len[l->n] = (size_t)(e - p);
                l->n++;
        }
}

static EVP_PKEY *key_from_label(const char *label)
{
        uint8_t seed[32];
        EVP_PKEY *k = NULL;

        assert_int_equal(sha256(label, strlen(label), seed), 0);
        assert_int_equal(ed25519_from_seed(seed, &k), 0);
        return k;
}

static char *b64_pub(EVP_PKEY *k)
{
        uint8_t raw[32];
        char *s = NULL;

        assert_int_equal(ed25519_public_to_raw(k, raw), 0);
        assert_int_equal(base64_encode(raw, 32, &s), 0);
        return s;
}

static void set_str(char **field, const char *s)
{
        free(*field);
        *field = s ? strdup(s) : NULL;
        assert_true(!s || *field);
}

/* The records of gen-records.py, built here through the C API. */
static void test_reproduce_vectors(void **state)
{
        _cleanup_pkey_ EVP_PKEY *identity = key_from_label("mamori test vector: terminal identity key");
        _cleanup_pkey_ EVP_PKEY *epoch0 = key_from_label("mamori test vector: log key epoch 0");
        _cleanup_pkey_ EVP_PKEY *epoch1 = key_from_label("mamori test vector: log key epoch 1");
        _cleanup_free_ char *k0 = b64_pub(epoch0), *k1 = b64_pub(epoch1);
        Lines lines = {}, signed_bytes = {}, hashes = {};
        char card[SHA256_HEX_MAX], prev[SHA256_HEX_MAX] = RECORD_PREV_FIRST;

        lines_load("records.jsonl", &lines);
        lines_load("records-signed.txt", &signed_bytes);
        lines_load("records-hashes.txt", &hashes);
        assert_int_equal(lines.n, N_RECORDS);
        assert_int_equal(signed_bytes.n, N_RECORDS);
        assert_int_equal(hashes.n, N_RECORDS);

        const char *card_label = "mamori test vector: card certificate";
        assert_int_equal(sha256_hex(card_label, strlen(card_label), card), 0);

        for (size_t i = 0; i < N_RECORDS; i++) {
                _cleanup_record_ Record *r = NULL;
                _cleanup_free_ char *body = NULL, *line = NULL;
                char hash[SHA256_HEX_MAX];
                EVP_PKEY *key = NULL;
                JsonValue *a = NULL, *item = NULL;
                size_t body_len, line_len;

                assert_int_equal(record_new(&r), 0);
                strcpy(r->log, "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60");
                strcpy(r->boot, "c0ffee0012345678c0ffee0012345678");
                r->seq = i + 1;
                r->ts = INT64_C(1763880000000000) + (int64_t)i * 1500000;
                r->mono = 5000000 + (int64_t)i * 1500000;
                set_str(&r->term, "T-0001");
                strcpy(r->prev, prev);

                switch (i) {
                case 0:
                        set_str(&r->ev, "log.open");
                        assert_int_equal(json_object_set_string(r->data, "key", k0), 0);
                        key = identity;
                        break;
                case 1:
                        set_str(&r->ev, "card.inserted");
                        set_str(&r->card, card);
                        assert_int_equal(json_object_set_string(r->data, "reader", "Virtual PCD 00 00"), 0);
                        key = epoch0;
                        break;
                case 2:
                        set_str(&r->ev, "key.rotate");
                        assert_int_equal(json_object_set_string(r->data, "key", k1), 0);
                        key = epoch0;
                        break;
                case 3:
                        set_str(&r->ev, "auth.fail");
                        set_str(&r->op, "OP0001");
                        set_str(&r->card, card);
                        /* insertion order deliberately differs from the sorted output */
                        assert_int_equal(json_object_set_integer(r->data, "\xef\xbd\xa1", 3), 0);
                        assert_int_equal(json_object_set_integer(r->data, "\xf0\x9f\x98\x80", 2), 0);
                        assert_int_equal(json_object_set_integer(r->data, "\xe2\x82\xac", 1), 0);
                        assert_int_equal(json_object_set_string(r->data, "reason", "pin-wrong"), 0);
                        assert_int_equal(json_object_set_integer(r->data, "tries_left", 2), 0);
                        assert_int_equal(
                                json_object_set_string(r->data, "note",
                                                       "tab\there \"quoted\" back\\slash\nline "
                                                       "\x01\x1f\x7f \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
                                                       "\xf0\x9f\x98\x80 \xe2\x80\xa8/"),
                                0);
                        assert_int_equal(json_new_array(&a), 0);
                        assert_int_equal(json_new_boolean(true, &item), 0);
                        assert_int_equal(json_array_append(a, item), 0);
                        assert_int_equal(json_new_null(&item), 0);
                        assert_int_equal(json_array_append(a, item), 0);
                        assert_int_equal(json_new_integer(-7, &item), 0);
                        assert_int_equal(json_array_append(a, item), 0);
                        assert_int_equal(json_new_object(&item), 0);
                        assert_int_equal(json_array_append(a, item), 0);
                        assert_int_equal(json_object_set(r->data, "a", a), 0);
                        key = epoch1;
                        break;
                case 4:
                        set_str(&r->ev, "session.start");
                        set_str(&r->op, "OP0001");
                        set_str(&r->card, card);
                        assert_int_equal(json_object_set_string(r->data, "method", "card+pin"), 0);
                        assert_int_equal(json_object_set_integer(r->data, "latency_us", 412345), 0);
                        key = epoch1;
                        break;
                }

                assert_int_equal(record_signed_bytes(r, &body, &body_len), 0);
                assert_int_equal(body_len, signed_bytes.len[i]);
                assert_memory_equal(body, signed_bytes.line[i], body_len);

                assert_int_equal(record_sign(r, key, &line, &line_len), 0);
                if (line_len != lines.len[i] || memcmp(line, lines.line[i], line_len) != 0)
                        print_error("record %zu:\n C: %s\n py: %.*s\n", i + 1, line, (int)lines.len[i],
                                    lines.line[i]);
                assert_int_equal(line_len, lines.len[i]);
                assert_memory_equal(line, lines.line[i], line_len);

                assert_int_equal(record_line_hash(line, line_len, hash), 0);
                assert_int_equal(strlen(hash), 64);
                assert_memory_equal(hash, hashes.line[i], 64);
                strcpy(prev, hash);
        }
        free(lines.buf);
        free(signed_bytes.buf);
        free(hashes.buf);
}

/* An auditor's walk over the committed lines: parse, follow the key chain, check every link. */
static void test_verify_chain(void **state)
{
        _cleanup_pkey_ EVP_PKEY *identity = key_from_label("mamori test vector: terminal identity key");
        _cleanup_pkey_ EVP_PKEY *current = NULL;
        _cleanup_record_ Record *prev = NULL;
        char prev_hash[SHA256_HEX_MAX] = "";
        Lines lines = {};

        lines_load("records.jsonl", &lines);
        for (size_t i = 0; i < lines.n; i++) {
                _cleanup_record_ Record *r = NULL;
                uint8_t raw[32];

                /* with and without the on-disk "\n" */
                assert_int_equal(record_parse_line(lines.line[i], lines.len[i] + 1, &r), 0);
                r = record_free(r);
                assert_int_equal(record_parse_line(lines.line[i], lines.len[i], &r), 0);
                assert_true(record_event_known(r->ev));
                assert_int_equal(record_check_link(prev, prev ? prev_hash : NULL, r), 0);

                EVP_PKEY *signer = r->seq == 1 ? identity : current;
                assert_non_null(signer);
                assert_int_equal(record_verify(r, signer), 0);
                /* the terminal identity key never signs after seq 1, and the old key is refused after a
                 * rotate */
                if (r->seq > 1)
                        assert_int_equal(record_verify(r, identity), -EKEYREJECTED);

                if (streq(r->ev, "log.open") || streq(r->ev, "key.rotate")) {
                        EVP_PKEY *next = NULL;
                        assert_int_equal(record_data_key(r, raw), 0);
                        assert_int_equal(ed25519_public_from_raw(raw, &next), 0);
                        EVP_PKEY_free(current);
                        current = next;
                } else
                        assert_int_equal(record_data_key(r, raw), -ENOENT);

                /* the signed bytes the parse gives are those rebuilt from the record, and verify */
                _cleanup_record_ Record *r2 = NULL;
                _cleanup_free_ char *sb = NULL, *rebuilt = NULL;
                size_t sb_len, rebuilt_len;
                assert_int_equal(record_parse_line_signed(lines.line[i], lines.len[i], &r2, &sb, &sb_len),
                                 0);
                assert_int_equal(record_signed_bytes(r, &rebuilt, &rebuilt_len), 0);
                assert_int_equal(sb_len, rebuilt_len);
                assert_memory_equal(sb, rebuilt, sb_len);
                assert_int_equal(record_verify_signed(r2, sb, sb_len, signer), 0);
                if (r->seq > 1)
                        assert_int_equal(record_verify_signed(r2, sb, sb_len, identity), -EKEYREJECTED);

                /* re-serialising the parsed record gives the same line */
                _cleanup_free_ char *again = NULL;
                size_t again_len;
                assert_int_equal(record_format_line(r, &again, &again_len), 0);
                assert_int_equal(again_len, lines.len[i]);
                assert_memory_equal(again, lines.line[i], again_len);

                assert_int_equal(record_line_hash(lines.line[i], lines.len[i] + 1, prev_hash), 0);
                record_free(prev);
                prev = TAKE_PTR(r);
        }
        assert_int_equal(prev->seq, N_RECORDS);
        assert_string_equal(prev->op, "OP0001");
        free(lines.buf);
}

static void test_tamper(void **state)
{
        _cleanup_pkey_ EVP_PKEY *identity = key_from_label("mamori test vector: terminal identity key");
        Lines lines = {};

        lines_load("records.jsonl", &lines);
        /* flip each byte of record 1 in turn: the line must then fail to parse or to verify */
        size_t survived = 0;
        for (size_t i = 0; i < lines.len[0]; i++) {
                _cleanup_free_ char *copy = strndup(lines.line[0], lines.len[0]);
                _cleanup_record_ Record *r = NULL;
                assert_non_null(copy);
                copy[i] ^= 0x01;
                if (record_parse_line(copy, lines.len[0], &r) < 0)
                        continue;
                if (record_verify(r, identity) == 0)
                        survived++;
        }
        assert_int_equal(survived, 0);
        free(lines.buf);
}

static void test_reject_malformed(void **state)
{
        /* A valid line to mutate, built from pieces. */
        static const char *const bad[] = {
                /* missing sig */
                "{\"boot\":\"c0ffee0012345678c0ffee0012345678\",\"card\":null,\"data\":{},\"ev\":\"lock\","
                "\"log\":"
                "\"5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60\",\"mono\":1,\"op\":null,\"prev\":\"%P\",\"seq\":1,"
                "\"term\":\"T\","
                "\"ts\":1,\"v\":1}",
                /* unknown extra key instead of term */
                "{\"boot\":\"c0ffee0012345678c0ffee0012345678\",\"card\":null,\"data\":{},\"ev\":\"lock\","
                "\"log\":"
                "\"5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60\",\"mono\":1,\"op\":null,\"prev\":\"%P\",\"seq\":1,"
                "\"sig\":\"%S\","
                "\"tern\":\"T\",\"ts\":1,\"v\":1}",
        };
        static const struct {
                const char *from, *to;
        } mutations[] = {
                {"\"v\":1", "\"v\":2"},
                {"\"seq\":1", "\"seq\":0"},
                {"\"seq\":1", "\"seq\":-1"},
                {"\"seq\":1", "\"seq\":\"1\""},
                {"\"ts\":1", "\"ts\":-1"},
                {"\"ts\":1", "\"ts\":9007199254740992"},
                {"\"mono\":1", "\"mono\":null"},
                {"5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60", "5F1C0E2A9B3D4C6E8F7A1B2C3D4E5F60"},
                {"5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60", "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f6"},
                {"c0ffee0012345678c0ffee0012345678", "c0ffee00-1234-5678-c0ff-ee0012345678"},
                {"\"card\":null", "\"card\":\"abc\""},
                {"\"card\":null", "\"card\":1"},
                {"\"op\":null", "\"op\":\"\""},
                {"\"op\":null", "\"op\":\"a b\""},
                {"\"op\":null", "\"op\":false"},
                {"\"data\":{}", "\"data\":[]"},
                {"\"data\":{}", "\"data\":null"},
                {"\"ev\":\"lock\"", "\"ev\":\"Lock\""},
                {"\"ev\":\"lock\"", "\"ev\":\"\""},
                {"\"term\":\"T\"", "\"term\":\"\""},
                {"\"term\":\"T\"", "\"term\":\"T\\u0000\""},
                {"\"prev\":\"0000", "\"prev\":\"1000"}, /* seq 1 must point at 64 zeros */
                {"\"sig\":\"", "\"sig\":\"A"},
                {"\"boot\"", " \"boot\""}, /* whitespace: not canonical */
                {"{\"boot\":\"c0ffee0012345678c0ffee0012345678\",\"card\":null,",
                 "{\"card\":null,\"boot\":\"c0ffee0012345678c0ffee0012345678\","}, /* unsorted */
                {"\"term\":\"T\"", "\"term\":\"\\u0054\""},                        /* needless escape */
                {"\"ts\":1,", "\"ts\":1,\"ts\":1,"},                               /* duplicate */
                {"\"v\":1}", "\"v\":1}\n\n"},
                /* sig out of its sorted place, whole or in part */
                {"\"seq\":1,\"sig\":"
                 "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
                 "\",\"term\":\"T\"",
                 "\"seq\":1,\"term\":\"T\",\"sig\":"
                 "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
                 "\""},
                {"\"sig\":\"AAAA", "\"sig\":\"\\u0041AAA"}, /* needless escape in sig */
        };
        const char *good_tmpl =
                "{\"boot\":\"c0ffee0012345678c0ffee0012345678\",\"card\":null,\"data\":{},\"ev\":"
                "\"lock\",\"log\":\"5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60\",\"mono\":1,\"op\":null,"
                "\"prev\":\"%P\",\"seq\":1,\"sig\":\"%S\",\"term\":\"T\",\"ts\":1,\"v\":1}";
        char sig_b64[89];
        memset(sig_b64, 'A', 86);
        strcpy(sig_b64 + 86, "==");

        char good[1024], buf[1200];
        /* expand %P and %S */
        {
                const char *t = good_tmpl;
                char *o = good;
                while (*t) {
                        if (t[0] == '%' && t[1] == 'P') {
                                o += sprintf(o, "%s", RECORD_PREV_FIRST);
                                t += 2;
                        } else if (t[0] == '%' && t[1] == 'S') {
                                o += sprintf(o, "%s", sig_b64);
                                t += 2;
                        } else
                                *o++ = *t++;
                }
                *o = 0;
        }

        _cleanup_record_ Record *ok = NULL;
        assert_int_equal(record_parse_line(good, strlen(good), &ok), 0);
        assert_null(ok->op);
        assert_null(ok->card);
        assert_true(ok->has_sig);

        for (size_t i = 0; i < ELEMENTSOF(mutations); i++) {
                Record *r = NULL;
                char *at = strstr(good, mutations[i].from);
                assert_non_null(at);
                size_t pre = (size_t)(at - good);
                snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, good, mutations[i].to,
                         at + strlen(mutations[i].from));
                int k = record_parse_line(buf, strlen(buf), &r);
                if (k >= 0)
                        print_error("mutation %zu accepted: %s\n", i, buf);
                assert_true(k < 0);
                assert_null(r);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Record *r = NULL;
                char line[1200], *o = line;
                for (const char *t = bad[i]; *t;) {
                        if (t[0] == '%' && t[1] == 'P') {
                                o += sprintf(o, "%s", RECORD_PREV_FIRST);
                                t += 2;
                        } else if (t[0] == '%' && t[1] == 'S') {
                                o += sprintf(o, "%s", sig_b64);
                                t += 2;
                        } else
                                *o++ = *t++;
                }
                *o = 0;
                assert_int_equal(record_parse_line(line, strlen(line), &r), -EBADMSG);
        }

        /* too long */
        char *huge = malloc(RECORD_LINE_MAX + 10);
        assert_non_null(huge);
        memset(huge, ' ', RECORD_LINE_MAX + 10);
        Record *r = NULL;
        assert_int_equal(record_parse_line(huge, RECORD_LINE_MAX + 10, &r), -E2BIG);
        free(huge);
}

static void test_sign_refuses_invalid(void **state)
{
        _cleanup_pkey_ EVP_PKEY *k = NULL;
        _cleanup_record_ Record *r = NULL;
        char *line = NULL;

        assert_int_equal(ed25519_generate(&k), 0);
        assert_int_equal(record_new(&r), 0);
        strcpy(r->log, "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60");
        strcpy(r->boot, "c0ffee0012345678c0ffee0012345678");
        strcpy(r->prev, RECORD_PREV_FIRST);
        r->seq = 1;
        set_str(&r->term, "T-1");
        set_str(&r->ev, "agent.start");
        assert_int_equal(record_sign(r, k, &line, NULL), 0);
        free(line);
        line = NULL;

        r->seq = 0;
        assert_int_equal(record_sign(r, k, &line, NULL), -EBADMSG);
        r->seq = 2;
        set_str(&r->card, "ABCDEF");
        assert_int_equal(record_sign(r, k, &line, NULL), -EBADMSG);
        set_str(&r->card, NULL);
        r->ts = -5;
        assert_int_equal(record_sign(r, k, &line, NULL), -EBADMSG);
        r->ts = 0;
        assert_int_equal(json_object_set_integer(r->data, "big", INT64_C(1) << 60), 0);
        assert_int_equal(record_sign(r, k, &line, NULL), -ERANGE);
        assert_null(line);

        /* chain link rules */
        _cleanup_record_ Record *n = NULL;
        assert_int_equal(record_new(&n), 0);
        memcpy(n, r, offsetof(Record, term));
        n->seq = 3;
        strcpy(n->prev, "1111111111111111111111111111111111111111111111111111111111111111");
        assert_int_equal(record_check_link(r, n->prev, n), 0);
        assert_int_equal(record_check_link(r, RECORD_PREV_FIRST, n), -EBADMSG);
        n->seq = 4;
        assert_int_equal(record_check_link(r, n->prev, n), -EBADMSG);
        assert_int_equal(record_check_link(NULL, NULL, n), -EBADMSG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reproduce_vectors),
                cmocka_unit_test(test_verify_chain),
                cmocka_unit_test(test_tamper),
                cmocka_unit_test(test_reject_malformed),
                cmocka_unit_test(test_sign_refuses_invalid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
