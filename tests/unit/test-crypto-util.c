/* Unit tests for Ed25519/PEM/SHA-256 helpers against RFC 8032 and FIPS 180-2 vectors, and for encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/fileio.h"

static void unhex(const char *s, uint8_t *out, size_t n)
{
        assert_int_equal(hex_decode_exact(s, strlen(s), out, n), 0);
}

/* RFC 8032 §7.1 tests 1 and 2. */
static void test_ed25519_rfc8032(void **state)
{
        static const struct {
                const char *seed, *pub, *msg, *sig;
        } table[] = {
                {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
                 "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701c"
                 "f9b46bd2"
                 "5bf5f0595bbe24655141438e7a100b"},
                {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                 "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
                 "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0"
                 "f11d8c38"
                 "7b2eaeb4302aeeb00d291612bb0c00"},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                _cleanup_pkey_ EVP_PKEY *priv = NULL, *pub = NULL;
                uint8_t seed[32], pubraw[32], msg[8], sig[64], want[64], got_pub[32];
                size_t msglen = strlen(table[i].msg) / 2;

                unhex(table[i].seed, seed, 32);
                unhex(table[i].pub, pubraw, 32);
                unhex(table[i].sig, want, 64);
                if (msglen)
                        unhex(table[i].msg, msg, msglen);

                assert_int_equal(ed25519_from_seed(seed, &priv), 0);
                assert_int_equal(ed25519_public_to_raw(priv, got_pub), 0);
                assert_memory_equal(got_pub, pubraw, 32);
                assert_int_equal(ed25519_sign(priv, msg, msglen, sig), 0);
                assert_memory_equal(sig, want, 64);

                assert_int_equal(ed25519_public_from_raw(pubraw, &pub), 0);
                assert_int_equal(ed25519_verify(pub, msg, msglen, sig), 0);
                sig[17] ^= 0x01;
                assert_int_equal(ed25519_verify(pub, msg, msglen, sig), -EKEYREJECTED);
                sig[17] ^= 0x01;
                msg[0] ^= 0x80;
                assert_int_equal(ed25519_verify(pub, msg, msglen + 1, sig), -EKEYREJECTED);
                /* a public key cannot sign */
                assert_int_equal(ed25519_sign(pub, msg, msglen, sig) < 0, 1);
        }
}

static void test_ed25519_generate_and_wrong_key(void **state)
{
        _cleanup_pkey_ EVP_PKEY *a = NULL, *b = NULL, *ec = NULL;
        uint8_t sig[64];

        assert_int_equal(ed25519_generate(&a), 0);
        assert_int_equal(ed25519_generate(&b), 0);
        assert_int_equal(ed25519_sign(a, "hello", 5, sig), 0);
        assert_int_equal(ed25519_verify(a, "hello", 5, sig), 0);
        assert_int_equal(ed25519_verify(b, "hello", 5, sig), -EKEYREJECTED);

        ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_non_null(ec);
        assert_int_equal(ed25519_check(ec), -EINVAL);
        assert_int_equal(ed25519_sign(ec, "hello", 5, sig), -EINVAL);
}

/* ed25519_verify() keeps a context per thread for the public key it verified last: runs of one key,
 * alternating keys, a bad signature in a run and the good one after it, another message — each gets the
 * verdict a fresh context gives. */
static void test_ed25519_verify_repeated(void **state)
{
        _cleanup_pkey_ EVP_PKEY *a = NULL, *b = NULL, *pa = NULL, *pb = NULL;
        uint8_t raw[ED25519_KEY_SIZE], sa[64], sb[64], sa2[64], bad[64];

        assert_int_equal(ed25519_generate(&a), 0);
        assert_int_equal(ed25519_generate(&b), 0);
        assert_int_equal(ed25519_public_to_raw(a, raw), 0);
        assert_int_equal(ed25519_public_from_raw(raw, &pa), 0);
        assert_int_equal(ed25519_public_to_raw(b, raw), 0);
        assert_int_equal(ed25519_public_from_raw(raw, &pb), 0);
        assert_int_equal(ed25519_sign(a, "hello", 5, sa), 0);
        assert_int_equal(ed25519_sign(a, "other", 5, sa2), 0);
        assert_int_equal(ed25519_sign(b, "hello", 5, sb), 0);
        memcpy(bad, sa, sizeof(bad));
        bad[10] ^= 0x01;
        for (int i = 0; i < 50; i++) {
                assert_int_equal(ed25519_verify(pa, "hello", 5, sa), 0);
                assert_int_equal(ed25519_verify(pa, "other", 5, sa2), 0);
                assert_int_equal(ed25519_verify(pa, "hello", 5, bad), -EKEYREJECTED);
                assert_int_equal(ed25519_verify(pa, "other", 5, sa), -EKEYREJECTED);
                assert_int_equal(ed25519_verify(pa, "hello", 5, sa), 0);
                assert_int_equal(ed25519_verify(pb, "hello", 5, sa), -EKEYREJECTED);
                assert_int_equal(ed25519_verify(pb, "hello", 5, sb), 0);
                if (i % 2)
                        assert_int_equal(ed25519_verify(a, "hello", 5, sa), 0); /* a private key: no cache */
        }
}

static void test_pem_roundtrip(void **state)
{
        _cleanup_pkey_ EVP_PKEY *k = NULL, *priv = NULL, *pub = NULL;
        char dir[] = "/tmp/mamori-test-XXXXXX", path_priv[64], path_pub[64];
        uint8_t raw1[32], raw2[32], sig[64];
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path_priv, sizeof(path_priv), "%s/k.pem", dir);
        snprintf(path_pub, sizeof(path_pub), "%s/k.pub", dir);

        assert_int_equal(ed25519_generate(&k), 0);
        f = fopen(path_priv, "we");
        assert_non_null(f);
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
        f = fopen(path_pub, "we");
        assert_non_null(f);
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
        fclose(f);

        assert_int_equal(pem_load_private_key(path_priv, &priv), 0);
        assert_int_equal(pem_load_public_key(path_pub, &pub), 0);
        assert_int_equal(ed25519_public_to_raw(k, raw1), 0);
        assert_int_equal(ed25519_public_to_raw(pub, raw2), 0);
        assert_memory_equal(raw1, raw2, 32);
        assert_int_equal(ed25519_sign(priv, "x", 1, sig), 0);
        assert_int_equal(ed25519_verify(pub, "x", 1, sig), 0);

        /* public file is not a private key; garbage is not a key; a directory is not a file */
        EVP_PKEY *none = NULL;
        assert_int_equal(pem_load_private_key(path_pub, &none), -EBADMSG);
        assert_int_equal(pem_parse_public_key("junk", 4, &none), -EBADMSG);
        assert_int_equal(pem_load_public_key(dir, &none), -EBADFD);
        assert_int_equal(pem_load_public_key("/nonexistent/x.pub", &none), -ENOENT);
        assert_null(none);

        unlink(path_priv);
        unlink(path_pub);
        rmdir(dir);
}

static void test_read_file_bounded(void **state)
{
        char path[] = "/tmp/mamori-test-file-XXXXXX";
        char *buf = NULL;
        size_t size = 0;
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "0123456789", 10), 10);
        close(fd);
        assert_int_equal(read_file_bounded(path, 10, &buf, &size), 0);
        assert_int_equal(size, 10);
        assert_string_equal(buf, "0123456789");
        free(buf);
        buf = NULL;
        assert_int_equal(read_file_bounded(path, 9, &buf, &size), -E2BIG);
        assert_null(buf);
        assert_int_equal(read_file_bounded("/dev/zero", 9, &buf, &size), -EBADFD);
        unlink(path);
}

static void test_sha256(void **state)
{
        char hex[SHA256_HEX_MAX];

        assert_int_equal(sha256_hex("abc", 3, hex), 0);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_int_equal(sha256_hex("", 0, hex), 0);
        assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* RFC 4648 §10 vectors, both ways. */
static void test_base64_rfc4648(void **state)
{
        static const char *const table[][2] = {
                {"", ""},
                {"f", "Zg=="},
                {"fo", "Zm8="},
                {"foo", "Zm9v"},
                {"foob", "Zm9vYg=="},
                {"fooba", "Zm9vYmE="},
                {"foobar", "Zm9vYmFy"},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                _cleanup_free_ char *enc = NULL;
                _cleanup_free_ void *dec = NULL;
                size_t n;

                assert_int_equal(base64_encode(table[i][0], strlen(table[i][0]), &enc), 0);
                assert_string_equal(enc, table[i][1]);
                assert_int_equal(base64_decode(table[i][1], strlen(table[i][1]), &dec, &n), 0);
                assert_int_equal(n, strlen(table[i][0]));
                assert_memory_equal(dec, table[i][0], n);
        }
        /* all 256 byte values and both high-alphabet characters */
        uint8_t all[256];
        for (size_t i = 0; i < 256; i++)
                all[i] = (uint8_t)i;
        _cleanup_free_ char *enc = NULL;
        _cleanup_free_ void *dec = NULL;
        size_t n;
        assert_int_equal(base64_encode(all, 256, &enc), 0);
        assert_non_null(strchr(enc, '+'));
        assert_non_null(strchr(enc, '/'));
        assert_int_equal(base64_decode(enc, strlen(enc), &dec, &n), 0);
        assert_int_equal(n, 256);
        assert_memory_equal(dec, all, 256);
}

static void test_base64_strict(void **state)
{
        static const char *const bad[] = {
                "Zg",    "Zg=",      "Zg===", "Z===", "====",     "Zm9v\n",
                " Zm9v", "Zm9v====", "Zh==", /* non-zero unused bits: second spelling of "f" */
                "Zm9=",  "Zg==Zg==", "Zm-v",  "Zm_v", "Zm9vY=Fy", "Z=9v",
        };
        uint8_t key[4];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                void *dec = NULL;
                size_t n;
                if (base64_decode(bad[i], strlen(bad[i]), &dec, &n) != -EBADMSG)
                        print_error("accepted '%s'\n", bad[i]);
                assert_int_equal(base64_decode(bad[i], strlen(bad[i]), &dec, &n), -EBADMSG);
                assert_null(dec);
        }
        assert_int_equal(base64_decode_exact("Zm9vYg==", 8, key, 4), 0);
        assert_memory_equal(key, "foob", 4);
        assert_int_equal(base64_decode_exact("Zm9vYmE=", 8, key, 4), -EBADMSG);
        assert_int_equal(base64_decode_exact("Zm9v", 4, key, 4), -EBADMSG);
}

/* A wrong character anywhere in a long string (every quad checked, not only the last) is refused; each
 * of the 64 digits is taken anywhere (66 bytes: no padding, no unused bits). */
static void test_base64_every_position(void **state)
{
        static const uint8_t data[66] = {0xfb, 0xff, 0x00, 0x3e, 0x3f, 0x80};
        _cleanup_free_ char *enc = NULL;
        char s[89];
        size_t alphabet = 0;

        assert_int_equal(base64_encode(data, sizeof(data), &enc), 0);
        assert_int_equal(strlen(enc), 88);
        for (size_t pos = 0; pos < 88; pos++)
                for (unsigned c = 1; c < 256; c++) {
                        void *dec = NULL;
                        size_t n;
                        bool digit = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                     (c >= '0' && c <= '9') || c == '+' || c == '/';
                        memcpy(s, enc, sizeof(s));
                        s[pos] = (char)c;
                        int r = base64_decode(s, 88, &dec, &n);
                        if (c == '=' && pos >= 86)
                                assert_int_equal(r,
                                                 pos == 87 ? 0 : -EBADMSG); /* padding ends the last quad */
                        else
                                assert_int_equal(r, digit ? 0 : -EBADMSG);
                        alphabet += pos == 0 && r == 0;
                        free(dec);
                }
        assert_int_equal(alphabet, 64);
}

static void test_hex_and_id128(void **state)
{
        uint8_t id[16], buf[2];
        char s[ID128_STRING_MAX];

        assert_int_equal(id128_from_string("00112233445566778899aabbccddeeff", id), 0);
        id128_to_string(id, s);
        assert_string_equal(s, "00112233445566778899aabbccddeeff");
        assert_int_equal(id128_from_string("00112233445566778899AABBCCDDEEFF", id), -EBADMSG);
        assert_int_equal(id128_from_string("00112233445566778899aabbccddeef", id), -EBADMSG);
        assert_int_equal(id128_from_string("00112233445566778899aabbccddeeff0", id), -EBADMSG);
        assert_int_equal(id128_from_string("00112233-4455-6677-8899-aabbccddeeff", id), -EBADMSG);
        assert_int_equal(id128_from_string("0011223344556677889gaabbccddeeff", id), -EBADMSG);
        assert_true(hex_lower_valid("ab", 2));
        assert_false(hex_lower_valid("ab", 1));
        assert_false(hex_lower_valid("a", 2));
        /* every byte value but 0-9a-f refused at every place of a 64-character hash */
        for (size_t pos = 0; pos < 64; pos++)
                for (unsigned c = 1; c < 256; c++) {
                        char h[65];
                        memset(h, 'a', 64);
                        h[64] = '\0';
                        h[pos] = (char)c;
                        assert_int_equal(hex_lower_valid(h, 64),
                                         (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
                        h[pos] = '\0'; /* shorter than asked */
                        assert_false(hex_lower_valid(h, 64));
                }
        assert_int_equal(hex_decode_exact("0aFf", 4, buf, 2), -EBADMSG);
        assert_int_equal(hex_decode_exact("0aff", 4, buf, 2), 0);
        assert_int_equal(buf[0], 0x0a);
        assert_int_equal(buf[1], 0xff);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ed25519_rfc8032),
                cmocka_unit_test(test_ed25519_generate_and_wrong_key),
                cmocka_unit_test(test_ed25519_verify_repeated),
                cmocka_unit_test(test_pem_roundtrip),
                cmocka_unit_test(test_read_file_bounded),
                cmocka_unit_test(test_sha256),
                cmocka_unit_test(test_base64_rfc4648),
                cmocka_unit_test(test_base64_strict),
                cmocka_unit_test(test_base64_every_position),
                cmocka_unit_test(test_hex_and_id128),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
