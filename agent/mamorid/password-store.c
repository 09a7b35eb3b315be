/* The root-only password store: one verifier file per operator, read bounded, replaced atomically. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "mamori/password-verifier.h"
#include "password-store.h"

#define ID_MAX 64

int password_store_check_id(const char *operator_id)
{
        size_t n = operator_id ? strnlen(operator_id, ID_MAX + 1) : 0;

        if (n == 0 || n > ID_MAX || operator_id[0] == '.')
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char c = operator_id[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
                        return -EINVAL;
        }
        return 0;
}

static int path_of(const char *directory, const char *operator_id, char *buf, size_t size)
{
        int r = password_store_check_id(operator_id);

        if (r < 0)
                return r;
        if ((size_t)snprintf(buf, size, "%s/%s", directory, operator_id) >= size)
                return -ENAMETOOLONG;
        return 0;
}

int password_store_prepare(const char *directory)
{
        struct stat st;

        if (mkdir(directory, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (lstat(directory, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
                return -EPERM;
        return 0;
}

int password_store_read(const char *directory, const char *operator_id, char **ret_verifier,
                        int64_t *ret_changed_usec)
{
        char path[4096];
        char *data = NULL;
        size_t size;
        struct stat st;
        int r;

        r = path_of(directory, operator_id, path, sizeof(path));
        if (r < 0)
                return r;
        _cleanup_close_ int fd = -EBADF;
        r = open_private_file(path, &fd, &st);
        if (r < 0)
                return r;
        r = read_fd_bounded(fd, PASSWORD_VERIFIER_MAX + 1, &data, &size);
        if (r < 0)
                return r;
        /* One line: the verifier and its newline, nothing else. */
        if (size == 0 || data[size - 1] != '\n' || memchr(data, '\n', size - 1) ||
            memchr(data, '\0', size)) {
                OPENSSL_cleanse(data, size);
                free(data);
                return -EBADMSG;
        }
        data[size - 1] = '\0';
        *ret_verifier = data;
        *ret_changed_usec = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
        return 0;
}

int password_store_changed(const char *directory, const char *operator_id, int64_t *ret_changed_usec)
{
        char path[4096];
        struct stat st;
        int r;

        r = path_of(directory, operator_id, path, sizeof(path));
        if (r < 0)
                return r;
        if (lstat(path, &st) < 0)
                return negative_errno();
        r = private_file_check(&st);
        if (r < 0)
                return r;
        *ret_changed_usec = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
        return 0;
}

/* The verifier file's path, in a directory made ready (root's, 0700) for writing or removing it. */
static int path_prepared(const char *directory, const char *operator_id, char *path, size_t size)
{
        int r = path_of(directory, operator_id, path, size);
        if (r < 0)
                return r;
        return password_store_prepare(directory);
}

int password_store_write(const char *directory, const char *operator_id, const char *verifier)
{
        char path[4096];
        _cleanup_free_ char *line = NULL;
        int r;

        r = path_prepared(directory, operator_id, path, sizeof(path));
        if (r < 0)
                return r;
        if (asprintf(&line, "%s\n", verifier) < 0)
                return -ENOMEM;
        return write_file_atomic(path, line, strlen(line), 0600);
}

int password_store_remove(const char *directory, const char *operator_id)
{
        char path[4096];
        int r;

        r = path_prepared(directory, operator_id, path, sizeof(path));
        if (r < 0)
                return r;
        if (unlink(path) < 0)
                return negative_errno();
        /* The removal itself durable: a crash must not bring the old password back. */
        return fsync_parent_dir(path);
}
