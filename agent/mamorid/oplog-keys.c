/* Identity key creation/loading and the forward-secure epoch keys (store, load, destroy) of the log. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "oplog-keys.h"

#define EPOCH_KEY_PREFIX "log-key-"
#define EPOCH_KEY_SUFFIX ".key"

int oplog_write_full(int fd, const void *buf, size_t n)
{
        const char *p = buf;

        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (w == 0)
                        return -EIO;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

int oplog_mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = NULL;

        if (!path || !*path)
                return -EINVAL;
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                bool end = *s == '\0';
                if (*s != '/' && !end)
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                if (end)
                        break;
                *s = '/';
        }
        return 0;
}

static int parent_dir(const char *path, char **ret)
{
        const char *slash = strrchr(path, '/');
        char *d;

        if (!slash)
                d = strdup(".");
        else if (slash == path)
                d = strdup("/");
        else
                d = strndup(path, (size_t)(slash - path));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

int oplog_identity_load_or_create(const char *path, EVP_PKEY **ret, bool *ret_created)
{
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_free_ char *dir = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        BIO *bio = NULL;
        char *pem = NULL;
        long pem_len;
        int k;

        if (!path || !ret)
                return -EINVAL;
        k = pem_load_private_key(path, &key);
        if (k >= 0) {
                k = ed25519_check(key);
                if (k < 0)
                        return k;
                *ret = TAKE_PTR(key);
                if (ret_created)
                        *ret_created = false;
                return 0;
        }
        if (k != -ENOENT)
                return k;

        k = parent_dir(path, &dir);
        if (k < 0)
                return k;
        k = oplog_mkdir_p(dir, 0700);
        if (k < 0)
                return k;
        k = ed25519_generate(&key);
        if (k < 0)
                return k;

        bio = BIO_new(BIO_s_mem());
        if (!bio)
                return -ENOMEM;
        if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
                BIO_free(bio);
                return -EIO;
        }
        pem_len = BIO_get_mem_data(bio, &pem);
        if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0) {
                BIO_free(bio);
                return -ENOMEM;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                k = negative_errno();
                BIO_free(bio);
                return k;
        }
        k = fchmod(fd, 0600) < 0 ? negative_errno() : 0; /* whatever the umask */
        if (k >= 0)
                k = oplog_write_full(fd, pem, (size_t)pem_len);
        OPENSSL_cleanse(pem, (size_t)pem_len);
        BIO_free(bio);
        if (k >= 0 && fsync(fd) < 0)
                k = negative_errno();
        if (k >= 0 && link(tmp, path) < 0)
                k = negative_errno(); /* -EEXIST: someone else created it first */
        (void)unlink(tmp);
        if (k == -EEXIST)
                return oplog_identity_load_or_create(path, ret, ret_created);
        if (k < 0)
                return k;
        k = fsync_directory(dir);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(key);
        if (ret_created)
                *ret_created = true;
        return 0;
}

int oplog_public_pem(EVP_PKEY *key, char **ret)
{
        BIO *bio;
        char *data, *s;
        long n;

        if (!key || !ret)
                return -EINVAL;
        bio = BIO_new(BIO_s_mem());
        if (!bio)
                return -ENOMEM;
        if (PEM_write_bio_PUBKEY(bio, key) != 1) {
                BIO_free(bio);
                return -EIO;
        }
        n = BIO_get_mem_data(bio, &data);
        s = strndup(data, (size_t)n);
        BIO_free(bio);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

void oplog_epoch_key_name(const uint8_t pub[ED25519_KEY_SIZE], char buf[OPLOG_EPOCH_KEY_NAME_MAX])
{
        char hex[2 * ED25519_KEY_SIZE + 1];

        hex_encode(pub, ED25519_KEY_SIZE, hex);
        snprintf(buf, OPLOG_EPOCH_KEY_NAME_MAX, EPOCH_KEY_PREFIX "%s" EPOCH_KEY_SUFFIX, hex);
}

static int epoch_key_path(const char *dir, const uint8_t pub[ED25519_KEY_SIZE], char **ret)
{
        char name[OPLOG_EPOCH_KEY_NAME_MAX];

        oplog_epoch_key_name(pub, name);
        return asprintf(ret, "%s/%s", dir, name) < 0 ? -ENOMEM : 0;
}

int oplog_epoch_key_store(const char *dir, EVP_PKEY *key)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t pub[ED25519_KEY_SIZE], seed[ED25519_KEY_SIZE];
        size_t n = sizeof(seed);
        int k;

        if (!dir || !key)
                return -EINVAL;
        k = ed25519_public_to_raw(key, pub);
        if (k < 0)
                return k;
        k = epoch_key_path(dir, pub, &path);
        if (k < 0)
                return k;
        if (EVP_PKEY_get_raw_private_key(key, seed, &n) != 1 || n != sizeof(seed))
                return -EIO;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                k = negative_errno();
                OPENSSL_cleanse(seed, sizeof(seed));
                return k;
        }
        k = oplog_write_full(fd, seed, sizeof(seed));
        OPENSSL_cleanse(seed, sizeof(seed));
        if (k >= 0 && fsync(fd) < 0)
                k = negative_errno();
        if (k >= 0)
                k = fsync_directory(dir);
        if (k < 0) {
                (void)unlink(path);
                return k;
        }
        return 0;
}

int oplog_epoch_key_load(const char *dir, const uint8_t pub[ED25519_KEY_SIZE], EVP_PKEY **ret)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        uint8_t seed[ED25519_KEY_SIZE + 1], check[ED25519_KEY_SIZE];
        ssize_t n;
        int k;

        if (!dir || !pub || !ret)
                return -EINVAL;
        k = epoch_key_path(dir, pub, &path);
        if (k < 0)
                return k;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        n = read(fd, seed, sizeof(seed));
        if (n != ED25519_KEY_SIZE) {
                OPENSSL_cleanse(seed, sizeof(seed));
                return n < 0 ? negative_errno() : -EBADMSG;
        }
        k = ed25519_from_seed(seed, &key);
        OPENSSL_cleanse(seed, sizeof(seed));
        if (k < 0)
                return k;
        k = ed25519_public_to_raw(key, check);
        if (k < 0)
                return k;
        if (memcmp(check, pub, sizeof(check)) != 0)
                return -EBADMSG; /* the file does not hold the key its name promises */
        *ret = TAKE_PTR(key);
        return 0;
}

static int destroy_file(const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t zeros[256] = {0};
        struct stat st;
        int k = 0;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        /* Overwrite in place, then make the zeros durable before the name goes away. */
        for (off_t off = 0; off < st.st_size && k >= 0;) {
                size_t chunk = (size_t)(st.st_size - off) < sizeof(zeros) ? (size_t)(st.st_size - off)
                                                                          : sizeof(zeros);
                ssize_t w = pwrite(fd, zeros, chunk, off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        k = w < 0 ? negative_errno() : -EIO;
                else
                        off += w;
        }
        if (k >= 0 && fsync(fd) < 0)
                k = negative_errno();
        /* Even if the overwrite failed, the name must go. */
        if (unlink(path) < 0 && k >= 0)
                k = negative_errno();
        if (k >= 0)
                k = fsync_directory(dir);
        return k;
}

int oplog_epoch_key_destroy(const char *dir, const uint8_t pub[ED25519_KEY_SIZE])
{
        char name[OPLOG_EPOCH_KEY_NAME_MAX];

        if (!dir || !pub)
                return -EINVAL;
        oplog_epoch_key_name(pub, name);
        return destroy_file(dir, name);
}

int oplog_epoch_key_destroy_others(const char *dir, const uint8_t *keep)
{
        char keep_name[OPLOG_EPOCH_KEY_NAME_MAX] = "";
        DIR *d;
        struct dirent *de;
        int k = 0, n = 0;

        if (!dir)
                return -EINVAL;
        if (keep)
                oplog_epoch_key_name(keep, keep_name);
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (!strneq(de->d_name, EPOCH_KEY_PREFIX, strlen(EPOCH_KEY_PREFIX)) ||
                    l < strlen(EPOCH_KEY_SUFFIX) ||
                    !streq(de->d_name + l - strlen(EPOCH_KEY_SUFFIX), EPOCH_KEY_SUFFIX) ||
                    streq(de->d_name, keep_name))
                        continue;
                k = destroy_file(dir, de->d_name);
                if (k < 0)
                        break;
                n++;
        }
        closedir(d);
        return k < 0 ? k : n;
}

int oplog_epoch_key_find_single(const char *dir, uint8_t ret[ED25519_KEY_SIZE])
{
        const size_t pre = strlen(EPOCH_KEY_PREFIX), suf = strlen(EPOCH_KEY_SUFFIX);
        uint8_t pub[ED25519_KEY_SIZE];
        DIR *d;
        struct dirent *de;
        int n = 0;

        if (!dir || !ret)
                return -EINVAL;
        d = opendir(dir);
        if (!d)
                return -ENOKEY;
        while ((de = readdir(d))) {
                if (strlen(de->d_name) != pre + 2 * ED25519_KEY_SIZE + suf ||
                    !strneq(de->d_name, EPOCH_KEY_PREFIX, pre) ||
                    !streq(de->d_name + pre + 2 * ED25519_KEY_SIZE, EPOCH_KEY_SUFFIX) ||
                    hex_decode_exact(de->d_name + pre, 2 * ED25519_KEY_SIZE, pub, sizeof(pub)) < 0)
                        continue;
                n++;
        }
        closedir(d);
        if (n != 1)
                return -ENOKEY;
        memcpy(ret, pub, sizeof(pub));
        return 0;
}

int oplog_keys_directory(const char *log_dir, char **ret)
{
        const char *slash;
        int n;

        if (!log_dir || !ret)
                return -EINVAL;
        slash = strrchr(log_dir, '/');
        if (!slash || slash == log_dir)
                n = asprintf(ret, "/keys");
        else
                n = asprintf(ret, "%.*s/keys", (int)(slash - log_dir), log_dir);
        return n < 0 ? -ENOMEM : 0;
}
