/* Bounded whole-file reads (no following into devices or FIFOs, hard size cap). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/fileio.h"
#include "mamori/macro.h"

int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (!path || !ret || max >= SIZE_MAX)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
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
