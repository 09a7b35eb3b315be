/* Small ownership and size helpers shared by every mamori component (systemd-style cleanup). */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))
#define _pure_         __attribute__((pure))
#define _must_check_   __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Take ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _taken_ = (p); \
                (p) = NULL;                  \
                _taken_;                     \
        })

#define TAKE_FD(fd)                    \
        ({                             \
                int _taken_fd_ = (fd); \
                (fd) = -EBADF;         \
                _taken_fd_;            \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Define name##p(T **) calling name(T *) for _cleanup_. The free function must accept NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
