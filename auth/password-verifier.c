/* scrypt password verifiers (OpenSSL EVP_KDF "SCRYPT"): the bounded text line, derivation, check. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "mamori/encoding.h"
#include "mamori/macro.h"
#include "mamori/password-verifier.h"

const struct password_params password_params_default = {
        .ln = 15,
        .r = 8,
        .p = 1,
        .salt_len = 16,
        .hash_len = 32,
};

static int fail(int error, const char *why, const char **reterr_why)
{
        if (reterr_why)
                *reterr_why = why;
        return error;
}

int password_params_check(const struct password_params *params, const char **reterr_why)
{
        if (params->ln < PASSWORD_LN_MIN || params->ln > PASSWORD_LN_MAX)
                return fail(-ERANGE, "ln out of range (10..20)", reterr_why);
        if (params->r < 1 || params->r > PASSWORD_R_MAX)
                return fail(-ERANGE, "r out of range (1..32)", reterr_why);
        if (params->p < 1 || params->p > PASSWORD_P_MAX)
                return fail(-ERANGE, "p out of range (1..16)", reterr_why);
        /* 128·r·N bytes of scrypt's working memory, in 64-bit arithmetic (ln ≤ 20, r ≤ 32: no overflow). */
        if ((uint64_t)128 * params->r * ((uint64_t)1 << params->ln) > PASSWORD_MEMORY_MAX)
                return fail(-ERANGE, "128*r*N over 256 MiB", reterr_why);
        if (params->salt_len < PASSWORD_SALT_MIN || params->salt_len > PASSWORD_SALT_MAX)
                return fail(-ERANGE, "salt length out of range (16..64 bytes)", reterr_why);
        if (params->hash_len < PASSWORD_HASH_MIN || params->hash_len > PASSWORD_HASH_MAX)
                return fail(-ERANGE, "hash length out of range (32..64 bytes)", reterr_why);
        return 0;
}

/* "name=" followed by a decimal of 1..max without leading zero, then the terminator term.
 * Advances *p past the terminator. */
static int read_param(const char **p, const char *end, const char *name, unsigned max, char term,
                      unsigned *ret)
{
        size_t n = strlen(name);
        const char *q = *p;
        unsigned v = 0;

        if ((size_t)(end - q) < n + 2 || memcmp(q, name, n) != 0 || q[n] != '=')
                return -EBADMSG;
        q += n + 1;
        if (q >= end || *q < '1' || *q > '9')
                return -EBADMSG; /* no digits, a sign, or a leading zero */
        for (; q < end && *q >= '0' && *q <= '9'; q++) {
                v = v * 10 + (unsigned)(*q - '0');
                if (v > max)
                        return -ERANGE;
        }
        if (q >= end || *q != term)
                return -EBADMSG;
        *p = q + 1;
        *ret = v;
        return 0;
}

/* base64 of min..max bytes in [text, text+len) into buf; *ret_size the decoded length. */
static int read_base64(const char *text, size_t len, size_t min, size_t max, uint8_t *buf, size_t *ret_size)
{
        _cleanup_free_ void *data = NULL;
        size_t size;
        int r;

        if (len == 0 || len > BASE64_LEN(max))
                return len == 0 ? -EBADMSG : -ERANGE;
        r = base64_decode(text, len, &data, &size);
        if (r < 0)
                return -EBADMSG;
        if (size < min || size > max) {
                OPENSSL_cleanse(data, size);
                return -ERANGE;
        }
        memcpy(buf, data, size);
        OPENSSL_cleanse(data, size);
        *ret_size = size;
        return 0;
}

int password_verifier_parse(const char *text, size_t len, struct password_verifier *ret,
                            const char **reterr_why)
{
        struct password_verifier v = {};
        const char *p = text, *end = text + len, *dollar;
        const size_t magic = strlen(PASSWORD_VERIFIER_MAGIC);
        int r;

        if (len > PASSWORD_VERIFIER_MAX)
                return fail(-E2BIG, "verifier longer than 256 bytes", reterr_why);
        if (len < magic || memcmp(text, PASSWORD_VERIFIER_MAGIC, magic) != 0)
                return fail(-EBADMSG, "not a $mamori-scrypt$v=1$ verifier", reterr_why);
        p += magic;
        r = read_param(&p, end, "ln", PASSWORD_LN_MAX, ',', &v.params.ln);
        if (r >= 0)
                r = read_param(&p, end, "r", PASSWORD_R_MAX, ',', &v.params.r);
        if (r >= 0)
                r = read_param(&p, end, "p", PASSWORD_P_MAX, '$', &v.params.p);
        if (r == -ERANGE)
                return fail(r, "scrypt parameter out of range (ln 10..20, r 1..32, p 1..16)", reterr_why);
        if (r < 0)
                return fail(r, "parameters are not ln=N,r=N,p=N", reterr_why);
        dollar = memchr(p, '$', (size_t)(end - p));
        if (!dollar)
                return fail(-EBADMSG, "no hash after the salt", reterr_why);
        r = read_base64(p, (size_t)(dollar - p), PASSWORD_SALT_MIN, PASSWORD_SALT_MAX, v.salt,
                        &v.params.salt_len);
        if (r < 0)
                return fail(r,
                            r == -ERANGE ? "salt length out of range (16..64 bytes)" : "salt is not base64",
                            reterr_why);
        p = dollar + 1;
        if (memchr(p, '$', (size_t)(end - p)))
                return fail(-EBADMSG, "junk after the hash", reterr_why);
        r = read_base64(p, (size_t)(end - p), PASSWORD_HASH_MIN, PASSWORD_HASH_MAX, v.hash,
                        &v.params.hash_len);
        if (r < 0)
                return fail(r,
                            r == -ERANGE ? "hash length out of range (32..64 bytes)" : "hash is not base64",
                            reterr_why);
        r = password_params_check(&v.params, reterr_why);
        if (r < 0)
                return r;
        *ret = v;
        OPENSSL_cleanse(&v, sizeof(v));
        return 0;
}

int password_verifier_format(const struct password_verifier *v, char **ret)
{
        _cleanup_free_ char *salt = NULL, *hash = NULL;
        char *line = NULL;
        int r;

        r = password_params_check(&v->params, NULL);
        if (r < 0)
                return r;
        if (base64_encode(v->salt, v->params.salt_len, &salt) < 0 ||
            base64_encode(v->hash, v->params.hash_len, &hash) < 0)
                return -ENOMEM;
        if (asprintf(&line, PASSWORD_VERIFIER_MAGIC "ln=%u,r=%u,p=%u$%s$%s", v->params.ln, v->params.r,
                     v->params.p, salt, hash) < 0)
                return -ENOMEM;
        if (strlen(line) > PASSWORD_VERIFIER_MAX) { /* cannot happen within the bounds; stay honest */
                free(line);
                return -E2BIG;
        }
        *ret = line;
        return 0;
}

int password_derive(const char *password, size_t password_len, const uint8_t *salt,
                    const struct password_params *params, uint8_t *out)
{
        EVP_KDF *kdf = NULL;
        EVP_KDF_CTX *ctx = NULL;
        uint64_t n, maxmem;
        uint32_t r32, p32;
        int r;

        if (password_len == 0 || password_len > PASSWORD_MAX)
                return -EINVAL;
        r = password_params_check(params, NULL);
        if (r < 0)
                return r;
        n = (uint64_t)1 << params->ln;
        r32 = params->r;
        p32 = params->p;
        /* OpenSSL's own limit, set to what the bounds allow plus its bookkeeping. */
        maxmem = (uint64_t)PASSWORD_MEMORY_MAX + 16u * 1024u * 1024u;
        OSSL_PARAM ossl[] = {
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, password_len),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, params->salt_len),
                OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
                OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32),
                OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32),
                OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
                OSSL_PARAM_construct_end(),
        };

        kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
        if (kdf)
                ctx = EVP_KDF_CTX_new(kdf);
        r = ctx && EVP_KDF_derive(ctx, out, params->hash_len, ossl) == 1 ? 0 : -EIO;
        EVP_KDF_CTX_free(ctx);
        EVP_KDF_free(kdf);
        if (r < 0)
                OPENSSL_cleanse(out, params->hash_len);
        return r;
}

int password_verifier_make(const char *password, const struct password_params *params, char **ret)
{
        struct password_verifier v = {.params = params ? *params : password_params_default};
        int r;

        r = password_params_check(&v.params, NULL);
        if (r < 0)
                return r;
        if (RAND_bytes(v.salt, (int)v.params.salt_len) != 1)
                return -EIO;
        r = password_derive(password, strlen(password), v.salt, &v.params, v.hash);
        if (r >= 0)
                r = password_verifier_format(&v, ret);
        OPENSSL_cleanse(&v, sizeof(v));
        return r;
}

int password_verifier_check(const char *verifier, size_t verifier_len, const char *password)
{
        struct password_verifier v;
        uint8_t got[PASSWORD_HASH_MAX];
        int r;

        r = password_verifier_parse(verifier, verifier_len, &v, NULL);
        if (r < 0)
                return r;
        r = password_derive(password, strnlen(password, PASSWORD_MAX + 1), v.salt, &v.params, got);
        if (r >= 0)
                r = CRYPTO_memcmp(got, v.hash, v.params.hash_len) == 0 ? 0 : -EACCES;
        OPENSSL_cleanse(got, sizeof(got));
        OPENSSL_cleanse(&v, sizeof(v));
        return r;
}
