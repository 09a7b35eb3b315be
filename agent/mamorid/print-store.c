/* Enrolled fingerprints on disk: bounded, owner-checked reads; durable writes; deletion of an operator's
 * prints. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "finger-worker.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "print-store.h"

#define OPERATORS_MAX 100000u /* directories read from DIR; more is not a terminal's store */

void print_set_done(struct print_set *s)
{
        for (size_t i = 0; i < s->n; i++)
                if (s->items[i].data) {
                        explicit_bzero(s->items[i].data, s->items[i].size);
                        free(s->items[i].data);
                }
        free(s->items);
        *s = (struct print_set){0};
}

bool print_store_id_ok(const char *id)
{
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > 64 || id[0] == '.')
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      strchr("._:@-", *p)))
                        return false;
        return true;
}

/* Ours: a directory or regular file owned by us that nobody else can write (and for files, read). */
static bool ours(const struct stat *st, bool dir)
{
        if (st->st_uid != geteuid())
                return false;
        if (dir)
                return S_ISDIR(st->st_mode) && !(st->st_mode & 022);
        return S_ISREG(st->st_mode) && !(st->st_mode & 077);
}

static int ensure_dir(const char *path)
{
        struct stat st;

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (lstat(path, &st) < 0)
                return negative_errno();
        return ours(&st, true) ? 0 : -EPERM;
}

static int slot_of(const char *name, unsigned *ret)
{
        if (strlen(name) != 7 || name[0] < '1' || name[0] > '0' + PRINT_SLOTS_MAX ||
            !streq(name + 1, ".print"))
                return -EINVAL;
        *ret = (unsigned)(name[0] - '0');
        return 0;
}

int print_store_save(const char *dir, const char *operator_id, const uint8_t *data, size_t size,
                     unsigned *ret_slot)
{
        char path[4096];
        struct stat st;
        int r;

        if (!print_store_id_ok(operator_id) || !data || size == 0 || size > FINGER_PRINT_MAX)
                return -EINVAL;
        r = ensure_dir(dir);
        if (r < 0)
                return r;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, operator_id) >= sizeof(path))
                return -ENAMETOOLONG;
        r = ensure_dir(path);
        if (r < 0)
                return r;
        for (unsigned slot = 1; slot <= PRINT_SLOTS_MAX; slot++) {
                snprintf(path, sizeof(path), "%s/%s/%u.print", dir, operator_id, slot);
                if (lstat(path, &st) == 0)
                        continue;
                if (errno != ENOENT)
                        return negative_errno();
                r = write_file_atomic(path, data, size, 0600);
                if (r < 0)
                        return r;
                *ret_slot = slot;
                return 0;
        }
        return -ENOSPC;
}

int print_store_delete(const char *dir, const char *operator_id, unsigned *ret_deleted)
{
        char path[4096];
        unsigned n = 0;
        int r = 0;

        if (!print_store_id_ok(operator_id))
                return -EINVAL;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, operator_id) >= sizeof(path))
                return -ENAMETOOLONG;
        _cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret_deleted = 0;
                return 0;
        }
        DIR *d = fdopendir(dfd);
        if (!d)
                return negative_errno();
        dfd = -EBADF; /* the DIR's now */
        struct dirent *de;
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                /* Every file here goes (leftover temporaries too): the directory goes with them. */
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        r = negative_errno();
                        break;
                }
                unsigned slot;
                if (slot_of(de->d_name, &slot) >= 0)
                        n++;
        }
        if (r >= 0 && fsync(dirfd(d)) < 0)
                r = negative_errno();
        closedir(d);
        if (r < 0)
                return r;
        if (rmdir(path) < 0 && errno != ENOENT)
                return negative_errno();
        _cleanup_close_ int top = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (top >= 0)
                (void)fsync(top);
        *ret_deleted = n;
        return 0;
}

static int append(struct print_set *s, const struct stored_print *p)
{
        struct stored_print *items = realloc(s->items, (s->n + 1) * sizeof(*items));

        if (!items)
                return -ENOMEM;
        s->items = items;
        s->items[s->n++] = *p;
        return 0;
}

/* The prints of one operator directory (opened by the caller, taken). */
static int list_operator(int opfd, const char *operator_id, int with_data, struct print_set *s)
{
        DIR *d = fdopendir(opfd);
        struct dirent *de;
        int r = 0;

        if (!d) {
                r = negative_errno();
                safe_close(opfd);
                return r;
        }
        while ((de = readdir(d))) {
                struct stored_print p = {0};
                struct stat st;

                if (slot_of(de->d_name, &p.slot) < 0)
                        continue;
                _cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0 || !ours(&st, false))
                        continue; /* not ours: never compared with */
                snprintf(p.operator_id, sizeof(p.operator_id), "%.64s", operator_id);
                p.size = (size_t)st.st_size;
                p.mtime_usec = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
                if (with_data) {
                        char *data = NULL;
                        size_t size = 0;
                        /* Bounded by the size fstat saw (itself at most FINGER_PRINT_MAX): one
                         * buffer of the print's size, not of the maximum, for each of many prints. */
                        if (st.st_size <= 0 || (uint64_t)st.st_size > FINGER_PRINT_MAX ||
                            read_fd_bounded(fd, (size_t)st.st_size, &data, &size) < 0 || size == 0) {
                                free(data);
                                continue;
                        }
                        p.data = (uint8_t *)data;
                        p.size = size;
                }
                r = append(s, &p);
                if (r < 0) {
                        free(p.data);
                        break;
                }
        }
        closedir(d);
        return r;
}

int print_store_list(const char *dir, int with_data, struct print_set *ret)
{
        struct print_set s = {0};
        struct dirent *de;
        size_t seen = 0;
        int r = 0;

        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret = s;
                return 0;
        }
        while ((de = readdir(d)) && seen++ < OPERATORS_MAX) {
                struct stat st;

                if (!print_store_id_ok(de->d_name))
                        continue;
                int opfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (opfd < 0)
                        continue;
                if (fstat(opfd, &st) < 0 || !ours(&st, true)) {
                        safe_close(opfd);
                        continue;
                }
                r = list_operator(opfd, de->d_name, with_data, &s);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0) {
                print_set_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

int print_store_operators(const char *dir, char ***ret, size_t *ret_n)
{
        struct print_set s = {0};
        char **ids = NULL;
        size_t n = 0;
        int r;

        r = print_store_list(dir, 0, &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s.n; i++) {
                if (n > 0 && streq(ids[n - 1], s.items[i].operator_id))
                        continue;
                char **more = realloc(ids, (n + 1) * sizeof(*ids));
                if (!more || !(more[n] = strdup(s.items[i].operator_id))) {
                        ids = more ? more : ids;
                        r = -ENOMEM;
                        break;
                }
                ids = more;
                n++;
        }
        print_set_done(&s);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(ids[i]);
                free(ids);
                return r;
        }
        *ret = ids;
        *ret_n = n;
        return 0;
}
