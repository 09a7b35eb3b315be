/* Certificate cache by card id (files <card id>.der and <head hash>.head), see mamori/cert-cache.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

#include "card-internal.h"
#include "mamori/cert-cache.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "piv-apdu.h"

#define CACHE_PATH_MAX 4096

static int cache_path(char *buf, size_t cap, const char *dir, const char *name, const char *suffix)
{
        int n = snprintf(buf, cap, "%s/%s%s", dir, name, suffix);
        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int head_hash(const uint8_t *head, size_t head_len, char ret[SHA256_HEX_MAX])
{
        if (!head || head_len == 0 || head_len > CERT_CACHE_HEAD_MAX)
                return -EINVAL;
        return sha256_hex(head, head_len, ret);
}

static bool is_card_id(const char *s, size_t n)
{
        if (n != CARD_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int cert_cache_lookup(const char *dir, const uint8_t *head, size_t head_len, uint8_t **ret_der,
                      size_t *ret_der_len, char ret_id[CARD_ID_LEN + 1])
{
        _cleanup_free_ char *id = NULL, *der = NULL;
        char hh[SHA256_HEX_MAX], path[CACHE_PATH_MAX], check[CARD_ID_LEN + 1];
        size_t n = 0, der_len = 0;
        int r;

        if (!dir)
                return -EINVAL;
        r = head_hash(head, head_len, hh);
        if (r < 0)
                return r;
        r = cache_path(path, sizeof(path), dir, hh, ".head");
        if (r < 0)
                return r;
        r = read_file_bounded(path, CARD_ID_LEN + 1, &id, &n);
        if (r < 0)
                return -ENOENT;
        if (n == CARD_ID_LEN + 1 && id[CARD_ID_LEN] == '\n')
                n--;
        if (!is_card_id(id, n))
                return -ENOENT;
        id[CARD_ID_LEN] = '\0';

        r = cache_path(path, sizeof(path), dir, id, ".der");
        if (r < 0)
                return r;
        r = read_file_bounded(path, PIV_CERT_MAX_DER, &der, &der_len);
        if (r < 0 || der_len == 0)
                return -ENOENT;
        /* A damaged or swapped entry is a miss, never another card's certificate. */
        r = card_id_from_cert((const uint8_t *)der, der_len, check);
        if (r < 0)
                return r;
        if (!streq(check, id))
                return -ENOENT;

        memcpy(ret_id, id, CARD_ID_LEN + 1);
        *ret_der = (uint8_t *)TAKE_PTR(der);
        *ret_der_len = der_len;
        return 0;
}

/* mkdir -p: the cache lives under the state directory, whose cache/ may not exist yet. */
static int mkdir_parents(const char *dir)
{
        char path[CACHE_PATH_MAX];
        size_t n = strlen(dir);

        if (n == 0 || n >= sizeof(path))
                return -EINVAL;
        memcpy(path, dir, n + 1);
        for (size_t i = 1; i <= n; i++) {
                if (path[i] != '/' && path[i] != '\0')
                        continue;
                char saved = path[i];
                path[i] = '\0';
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                path[i] = saved;
        }
        return 0;
}

int cert_cache_store(const char *dir, const uint8_t *head, size_t head_len, const uint8_t *der,
                     size_t der_len)
{
        char hh[SHA256_HEX_MAX], path[CACHE_PATH_MAX], id[CARD_ID_LEN + 2];
        int r;

        if (!dir || !der || der_len == 0 || der_len > PIV_CERT_MAX_DER)
                return -EINVAL;
        r = head_hash(head, head_len, hh);
        if (r < 0)
                return r;
        r = card_id_from_cert(der, der_len, id);
        if (r < 0)
                return r;
        r = mkdir_parents(dir);
        if (r < 0)
                return r;

        r = cache_path(path, sizeof(path), dir, id, ".der");
        if (r < 0)
                return r;
        r = write_file_atomic(path, der, der_len, 0644);
        if (r < 0)
                return r;
        /* The certificate first, then the pointer to it: a crash in between leaves a miss. */
        r = cache_path(path, sizeof(path), dir, hh, ".head");
        if (r < 0)
                return r;
        id[CARD_ID_LEN] = '\n';
        return write_file_atomic(path, id, CARD_ID_LEN + 1, 0644);
}
