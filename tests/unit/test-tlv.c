/* Unit tests for the bounded BER-TLV reader (auth/tlv.c): good and malformed encodings. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../auth/tlv.h"
#include "mamori/macro.h"

struct tlv_case {
        const char *name;
        uint8_t in[16];
        size_t len;
        int result; /* of the first tlv_next */
        uint32_t tag;
        size_t vlen;
        size_t voff; /* offset of the value in `in` */
};

static const struct tlv_case cases[] = {
        {"one-byte tag, short length", {0x53, 0x02, 0xAA, 0xBB}, 4, 1, 0x53, 2, 2},
        {"empty value", {0x82, 0x00}, 2, 1, 0x82, 0, 2},
        {"two-byte tag", {0x5F, 0x2F, 0x01, 0x40}, 4, 1, 0x5F2F, 1, 3},
        {"three-byte tag", {0x5F, 0xC1, 0x05, 0x01, 0x99}, 5, 1, 0x5FC105, 1, 4},
        {"81 length", {0x70, 0x81, 0x02, 1, 2}, 5, 1, 0x70, 2, 3},
        {"82 length", {0x70, 0x82, 0x00, 0x03, 1, 2, 3}, 7, 1, 0x70, 3, 4},
        {"empty buffer", {0}, 0, 0, 0, 0, 0},
        {"value past end", {0x53, 0x05, 0xAA}, 3, -EBADMSG, 0, 0, 0},
        {"missing length", {0x53}, 1, -EBADMSG, 0, 0, 0},
        {"truncated 81", {0x53, 0x81}, 2, -EBADMSG, 0, 0, 0},
        {"truncated 82", {0x53, 0x82, 0x01}, 3, -EBADMSG, 0, 0, 0},
        {"82 length past end", {0x53, 0x82, 0xFF, 0xFF, 0x00}, 5, -EBADMSG, 0, 0, 0},
        {"indefinite length", {0x53, 0x80, 0x00, 0x00}, 4, -EBADMSG, 0, 0, 0},
        {"83 length refused", {0x53, 0x83, 0x00, 0x00, 0x01, 0xAA}, 6, -EBADMSG, 0, 0, 0},
        {"84 length refused", {0x53, 0x84, 0, 0, 0, 1, 0xAA}, 7, -EBADMSG, 0, 0, 0},
        {"four-byte tag refused", {0x5F, 0x81, 0x82, 0x03, 0x00}, 5, -EBADMSG, 0, 0, 0},
        {"truncated multi-byte tag", {0x5F}, 1, -EBADMSG, 0, 0, 0},
        {"truncated three-byte tag", {0x5F, 0xC1}, 2, -EBADMSG, 0, 0, 0},
};

static void test_tlv_table(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct tlv_case *c = &cases[i];
                struct tlv_reader r;
                struct tlv t = {.tag = 0xDEAD};
                /* Copy to an exact-size heap buffer so ASan catches any over-read. */
                uint8_t *buf = malloc(c->len ? c->len : 1);
                assert_non_null(buf);
                memcpy(buf, c->in, c->len);

                tlv_reader_init(&r, buf, c->len);
                int k = tlv_next(&r, &t);
                if (k != c->result)
                        fail_msg("%s: got %d, want %d", c->name, k, c->result);
                if (k == 1) {
                        assert_int_equal(t.tag, c->tag);
                        assert_int_equal(t.length, c->vlen);
                        if (c->vlen > 0)
                                assert_ptr_equal(t.value, buf + c->voff);
                        assert_int_equal(r.left, c->len - c->voff - c->vlen);
                } else if (k < 0) {
                        /* An error leaves the reader exhausted; a second call says end. */
                        assert_int_equal(r.left, 0);
                        assert_int_equal(tlv_next(&r, &t), 0);
                }
                free(buf);
        }
}

static void test_tlv_nested(void **state)
{
        /* 53 { 70 {30 00}, 71 {00}, FE {} } */
        static const uint8_t obj[] = {0x53, 0x09, 0x70, 0x02, 0x30, 0x00, 0x71, 0x01, 0x00, 0xFE, 0x00};
        struct tlv_reader r, inner;
        struct tlv t, c;
        uint32_t tags[4];
        size_t n = 0;
        int k;

        tlv_reader_init(&r, obj, sizeof(obj));
        assert_int_equal(tlv_next(&r, &t), 1);
        assert_int_equal(t.tag, 0x53);
        tlv_reader_enter(&inner, &t);
        while ((k = tlv_next(&inner, &c)) > 0) {
                assert_true(n < ELEMENTSOF(tags));
                tags[n++] = c.tag;
        }
        assert_int_equal(k, 0);
        assert_int_equal(n, 3);
        assert_int_equal(tags[0], 0x70);
        assert_int_equal(tags[1], 0x71);
        assert_int_equal(tags[2], 0xFE);
        assert_int_equal(tlv_next(&r, &t), 0);

        assert_int_equal(tlv_find(t.value, t.length, 0x71, &c), 0);
        assert_int_equal(c.length, 1);
        assert_int_equal(tlv_find(t.value, t.length, 0x72, &c), -ENOENT);
        /* A child that claims more than its parent holds is malformed even if the outer buffer
         * would have the bytes. */
        static const uint8_t bad[] = {0x53, 0x02, 0x70, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00};
        tlv_reader_init(&r, bad, sizeof(bad));
        assert_int_equal(tlv_next(&r, &t), 1);
        assert_int_equal(tlv_find(t.value, t.length, 0x70, &c), -EBADMSG);
}

static void test_tlv_put_header(void **state)
{
        uint8_t b[8];
        struct tlv_reader r;
        struct tlv t;
        static const size_t lengths[] = {0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF};

        for (size_t i = 0; i < ELEMENTSOF(lengths); i++) {
                int n = tlv_put_header(b, sizeof(b), 0x5FC105, lengths[i]);
                assert_true(n >= 4 && n <= 6);
                /* Round trip through the reader with a fake value region. */
                uint8_t *buf = calloc(1, (size_t)n + lengths[i] + 1);
                assert_non_null(buf);
                memcpy(buf, b, (size_t)n);
                tlv_reader_init(&r, buf, (size_t)n + lengths[i]);
                assert_int_equal(tlv_next(&r, &t), 1);
                assert_int_equal(t.tag, 0x5FC105);
                assert_int_equal(t.length, lengths[i]);
                assert_int_equal(r.left, 0);
                free(buf);
        }
        assert_int_equal(tlv_put_header(b, sizeof(b), 0x7C, 0x10000), -ERANGE);
        assert_int_equal(tlv_put_header(b, 1, 0x7C, 5), -ENOBUFS);
        assert_int_equal(tlv_put_header(b, 2, 0x7C, 5), 2);
        assert_int_equal(b[0], 0x7C);
        assert_int_equal(b[1], 5);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tlv_table),
                cmocka_unit_test(test_tlv_nested),
                cmocka_unit_test(test_tlv_put_header),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
