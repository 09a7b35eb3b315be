/* Bounded whole-file reads (no devices or FIFOs, hard size cap), private-file opens, atomic durable
 * replacement. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/fileio.h"
#include "mamori/macro.h"

int read_fd_bounded(int fd, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (fd < 0 || !ret || max >= SIZE_MAX)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t)st.st_size > max)
                return -E2BIG;

        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        /* Read one byte past max so a file that grew after fstat is caught. */
        for (;;) {
                ssize_t r = read(fd, buf + n, max + 1 - n);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        break;
                n += (size_t)r;
                if (n > max)
                        return -E2BIG;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;

        if (!path || !ret || max >= SIZE_MAX)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        return read_fd_bounded(fd, max, ret, ret_size);
}

int private_file_check(const struct stat *st)
{
        if (!S_ISREG(st->st_mode))
                return -EBADFD;
        if (st->st_uid != geteuid() || (st->st_mode & 077))
                return -EPERM;
        return 0;
}

int open_private_file(const char *path, int *ret_fd, struct stat *ret_st)
{
        struct stat st;
        int r;

        /* O_NONBLOCK: a FIFO put there is refused below, never waited on. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return errno == ELOOP ? -EPERM : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        r = private_file_check(&st);
        if (r < 0)
                return r;
        *ret_st = st;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int fsync_directory(const char *dir)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int fsync_parent_dir(const char *path)
{
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = '\0';
        else
                *slash = '\0';
        return fsync_directory(dir);
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
        char tmp[4096];
        const uint8_t *p = data;
        int r;

        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0)
                goto fail;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        goto fail;
                }
                p += n;
                size -= (size_t)n;
        }
        if (fsync(fd) < 0)
                goto fail;
        if (rename(tmp, path) < 0)
                goto fail;
        return fsync_parent_dir(path);
fail:
        r = negative_errno();
        (void)unlink(tmp);
        return r;
}
