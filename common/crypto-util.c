/* Ed25519, PEM keys and SHA-256 through OpenSSL 3's EVP interface. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/fileio.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);

int ed25519_check(EVP_PKEY *key)
{
        if (!key || !EVP_PKEY_is_a(key, "ED25519"))
                return -EINVAL;
        return 0;
}

int ed25519_sign(EVP_PKEY *key, const void *msg, size_t size, uint8_t ret_sig[ED25519_SIG_SIZE])
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        uint8_t sig[ED25519_SIG_SIZE];
        size_t siglen = sizeof(sig);

        if (ed25519_check(key) < 0 || (!msg && size > 0) || !ret_sig)
                return -EINVAL;
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, key, NULL) != 1 ||
            EVP_DigestSign(ctx, sig, &siglen, msg ? msg : (const void *)"", size) != 1 ||
            siglen != sizeof(sig))
                return -EIO; /* e.g. a public-only key */
        memcpy(ret_sig, sig, sizeof(sig));
        return 0;
}

/*
 * What this file keeps per thread, so that hot loops skip OpenSSL's per-call set-up:
 * - a verification context for the public key it verified last: the collector's pool checks runs of
 *   records signed by one epoch key, and setting up a context costs some 15 % of a verification. Only
 *   a positive verdict is taken from it; anything else is decided by a fresh context. A private key is
 *   never kept (the reference would keep it alive past its destruction);
 * - a SHA-256 context and the fetched algorithm: a chain check hashes every record line, and
 *   EVP_Digest()'s own set-up (context allocation, algorithm fetch) is half its cost on a ~0.5 kB
 *   line (0.77 against 0.39 µs here).
 */
typedef struct ThreadCache {
        EVP_PKEY *verify_key; /* a reference */
        EVP_MD_CTX *verify_ctx;
        EVP_MD *sha256;
        EVP_MD_CTX *sha256_ctx;
} ThreadCache;

static pthread_key_t thread_cache_key;
static pthread_once_t thread_cache_once = PTHREAD_ONCE_INIT;
static bool thread_cache_ok;

static void verify_cache_forget(ThreadCache *c)
{
        EVP_MD_CTX_free(c->verify_ctx);
        EVP_PKEY_free(c->verify_key);
        c->verify_ctx = NULL;
        c->verify_key = NULL;
}

static void thread_cache_free(void *p)
{
        ThreadCache *c = p;

        if (!c)
                return;
        verify_cache_forget(c);
        EVP_MD_CTX_free(c->sha256_ctx);
        EVP_MD_free(c->sha256);
        free(c);
}

static void thread_cache_init(void)
{
        thread_cache_ok = pthread_key_create(&thread_cache_key, thread_cache_free) == 0;
}

/* This thread's cache, made on first use; NULL: do without. */
static ThreadCache *thread_cache_get(void)
{
        ThreadCache *c;

        if (pthread_once(&thread_cache_once, thread_cache_init) != 0 || !thread_cache_ok)
                return NULL;
        c = pthread_getspecific(thread_cache_key);
        if (c)
                return c;
        c = calloc(1, sizeof(*c));
        if (c && pthread_setspecific(thread_cache_key, c) != 0) {
                free(c);
                return NULL;
        }
        return c;
}

static bool has_private_key(EVP_PKEY *key)
{
        size_t len = 0;
        bool r;

        ERR_set_mark();
        r = EVP_PKEY_get_raw_private_key(key, NULL, &len) == 1;
        ERR_pop_to_mark();
        return r;
}

/* This thread's context for key, ready for EVP_DigestVerify(); NULL: use a fresh one. */
static ThreadCache *verify_cache_get(EVP_PKEY *key)
{
        ThreadCache *c = thread_cache_get();

        if (!c)
                return NULL;
        if (c->verify_key == key && c->verify_ctx)
                return c;
        if (ed25519_check(key) < 0 || has_private_key(key))
                return NULL;
        verify_cache_forget(c);
        c->verify_ctx = EVP_MD_CTX_new();
        if (!c->verify_ctx ||
            EVP_DigestVerifyInit_ex(c->verify_ctx, NULL, NULL, NULL, NULL, key, NULL) != 1 ||
            EVP_PKEY_up_ref(key) != 1) {
                verify_cache_forget(c);
                return NULL;
        }
        c->verify_key = key;
        return c;
}

int ed25519_verify(EVP_PKEY *key, const void *msg, size_t size, const uint8_t sig[ED25519_SIG_SIZE])
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        ThreadCache *c;
        int r;

        if (!key || (!msg && size > 0) || !sig)
                return -EINVAL;
        c = verify_cache_get(key); /* a key enters the cache only after ed25519_check(): a hit skips it */
        if (!c && ed25519_check(key) < 0)
                return -EINVAL;
        if (c) {
                if (EVP_DigestVerify(c->verify_ctx, sig, ED25519_SIG_SIZE, msg ? msg : (const void *)"",
                                     size) == 1)
                        return 0;
                verify_cache_forget(c); /* decided below, and the next call starts afresh */
        }
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, key, NULL) != 1)
                return -EIO;
        r = EVP_DigestVerify(ctx, sig, ED25519_SIG_SIZE, msg ? msg : (const void *)"", size);
        if (r == 1)
                return 0;
        if (r == 0)
                return -EKEYREJECTED;
        return -EIO;
}

int ed25519_generate(EVP_PKEY **ret)
{
        EVP_PKEY *k;

        if (!ret)
                return -EINVAL;
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (!k)
                return -EIO;
        *ret = k;
        return 0;
}

int ed25519_from_seed(const uint8_t seed[ED25519_KEY_SIZE], EVP_PKEY **ret)
{
        EVP_PKEY *k;

        if (!seed || !ret)
                return -EINVAL;
        k = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, seed, ED25519_KEY_SIZE);
        if (!k)
                return -EIO;
        *ret = k;
        return 0;
}

int ed25519_public_from_raw(const uint8_t raw[ED25519_KEY_SIZE], EVP_PKEY **ret)
{
        EVP_PKEY *k;

        if (!raw || !ret)
                return -EINVAL;
        k = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, raw, ED25519_KEY_SIZE);
        if (!k)
                return -EBADMSG;
        *ret = k;
        return 0;
}

int ed25519_public_to_raw(EVP_PKEY *key, uint8_t ret[ED25519_KEY_SIZE])
{
        uint8_t raw[ED25519_KEY_SIZE];
        size_t len = sizeof(raw);

        if (ed25519_check(key) < 0 || !ret)
                return -EINVAL;
        if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof(raw))
                return -EIO;
        memcpy(ret, raw, sizeof(raw));
        return 0;
}

/*
 * The one public-key PEM the collector parses on every request, a terminal's Ed25519 identity
 * as OpenSSL writes it, is read without OpenSSL's decoder chain (~350 µs a key here, as much as
 * four signature checks): the armour, the fixed 12-byte SubjectPublicKeyInfo prefix of Ed25519
 * (SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING of 33 bytes, no unused bits }) and 32 key
 * bytes in canonical base64. > 0 with *ret set: it was such a key; 0: it is not exactly that form
 * (the caller asks OpenSSL, which decides); < 0: an error. tests/fuzz/fuzz-pem.c checks that this
 * accepts nothing OpenSSL would read differently.
 */
static int pem_parse_ed25519_public(const char *pem, size_t size, EVP_PKEY **ret)
{
        static const char head[] = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA";
        static const char tail[] = "\n-----END PUBLIC KEY-----";
        const size_t key_b64 = 44; /* 32 bytes */
        uint8_t raw[ED25519_KEY_SIZE];
        size_t n = sizeof(head) - 1 + key_b64 + sizeof(tail) - 1;
        int r;

        if (size != n && !(size == n + 1 && pem[n] == '\n'))
                return 0;
        if (memcmp(pem, head, sizeof(head) - 1) != 0 ||
            memcmp(pem + sizeof(head) - 1 + key_b64, tail, sizeof(tail) - 1) != 0)
                return 0;
        if (base64_decode_exact(pem + sizeof(head) - 1, key_b64, raw, sizeof(raw)) < 0)
                return 0;
        r = ed25519_public_from_raw(raw, ret);
        return r < 0 ? r : 1;
}

static int pem_parse(const void *pem, size_t size, bool private, EVP_PKEY **ret)
{
        _cleanup_(BIO_freep) BIO *bio = NULL;
        EVP_PKEY *k;

        if (!pem || !ret || size > PEM_FILE_MAX)
                return -EINVAL;
        if (!private) {
                int r = pem_parse_ed25519_public(pem, size, ret);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        bio = BIO_new_mem_buf(pem, (int)size);
        if (!bio)
                return -ENOMEM;
        /* No password callback: an encrypted key must fail, not prompt on a terminal. */
        k = private ? PEM_read_bio_PrivateKey_ex(bio, NULL, NULL, (void *)"", NULL, NULL)
                    : PEM_read_bio_PUBKEY_ex(bio, NULL, NULL, (void *)"", NULL, NULL);
        if (!k) {
                ERR_clear_error(); /* leave no stale errors for the caller's next OpenSSL call */
                return -EBADMSG;
        }
        *ret = k;
        return 0;
}

int pem_parse_private_key(const void *pem, size_t size, EVP_PKEY **ret)
{
        return pem_parse(pem, size, true, ret);
}

int pem_parse_public_key(const void *pem, size_t size, EVP_PKEY **ret)
{
        return pem_parse(pem, size, false, ret);
}

static int pem_load(const char *path, bool private, EVP_PKEY **ret)
{
        char *buf = NULL;
        size_t size;
        int r;

        r = read_file_bounded(path, PEM_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        r = pem_parse(buf, size, private, ret);
        OPENSSL_clear_free(buf, size);
        return r;
}

int pem_load_private_key(const char *path, EVP_PKEY **ret)
{
        return pem_load(path, true, ret);
}

int pem_load_public_key(const char *path, EVP_PKEY **ret)
{
        return pem_load(path, false, ret);
}

/* This thread's SHA-256 context and algorithm; NULL: hash without them. */
static ThreadCache *digest_cache_get(void)
{
        ThreadCache *c = thread_cache_get();

        if (!c)
                return NULL;
        if (!c->sha256)
                c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!c->sha256_ctx)
                c->sha256_ctx = EVP_MD_CTX_new();
        if (!c->sha256 || !c->sha256_ctx) {
                ERR_clear_error();
                return NULL;
        }
        return c;
}

int sha256(const void *data, size_t size, uint8_t ret[SHA256_SIZE])
{
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        ThreadCache *c;
        bool ok;

        if ((!data && size > 0) || !ret)
                return -EINVAL;
        if (!data)
                data = "";
        c = digest_cache_get();
        if (c)
                ok = EVP_DigestInit_ex2(c->sha256_ctx, c->sha256, NULL) == 1 &&
                     EVP_DigestUpdate(c->sha256_ctx, data, size) == 1 &&
                     EVP_DigestFinal_ex(c->sha256_ctx, md, &len) == 1;
        else
                ok = EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) == 1;
        if (!ok || len != SHA256_SIZE)
                return -EIO;
        memcpy(ret, md, SHA256_SIZE);
        return 0;
}

int sha256_hex(const void *data, size_t size, char ret[SHA256_HEX_MAX])
{
        uint8_t md[SHA256_SIZE];
        int r = sha256(data, size, md);
        if (r < 0)
                return r;
        hex_encode(md, sizeof(md), ret);
        return 0;
}
