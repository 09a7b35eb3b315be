/* Enrolled biometric templates on disk: bounded, owner-checked reads; durable writes; deletion of an
 * operator's templates, per modality. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "print-store.h"

#define OPERATORS_MAX 100000u /* directories read from DIR; more is not a terminal's store */

static const struct {
        const char *name;
        const char *suffix; /* after "N" */
        size_t max;         /* bytes of one template */
} modalities[_BIO_MODALITY_MAX] = {
        [BIO_MODALITY_FINGER] = {"finger", ".print", PRINT_FINGER_MAX},
        [BIO_MODALITY_VEIN] = {"vein", ".vein", PRINT_VEIN_MAX},
};

const char *bio_modality_to_string(enum bio_modality m)
{
        return (unsigned)m < _BIO_MODALITY_MAX ? modalities[m].name : NULL;
}

int bio_modality_from_string(const char *s)
{
        for (unsigned m = 0; s && m < _BIO_MODALITY_MAX; m++)
                if (streq(s, modalities[m].name))
                        return (int)m;
        return -EINVAL;
}

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

        if (n == 0 || n > PRINT_OPERATOR_MAX - 1 || id[0] == '.')
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

/* "3.vein" → BIO_MODALITY_VEIN, slot 3; -EINVAL for any other name. */
static int parse_name(const char *name, enum bio_modality *ret_m, unsigned *ret_slot)
{
        if (name[0] < '1' || name[0] > '0' + PRINT_SLOTS_MAX)
                return -EINVAL;
        for (unsigned m = 0; m < _BIO_MODALITY_MAX; m++)
                if (streq(name + 1, modalities[m].suffix)) {
                        *ret_m = (enum bio_modality)m;
                        *ret_slot = (unsigned)(name[0] - '0');
                        return 0;
                }
        return -EINVAL;
}

/* A template of m or a leftover temporary of one ("N.vein.tmp.PID", fileio.c). */
static bool name_of_modality(const char *name, enum bio_modality m)
{
        size_t n = strlen(modalities[m].suffix);

        return name[0] >= '1' && name[0] <= '0' + PRINT_SLOTS_MAX &&
               strncmp(name + 1, modalities[m].suffix, n) == 0 &&
               (name[1 + n] == '\0' || strncmp(name + 1 + n, ".tmp.", 5) == 0);
}

int print_store_save(const char *dir, enum bio_modality m, const char *operator_id, const uint8_t *data,
                     size_t size, unsigned *ret_slot)
{
        char path[4096];
        struct stat st;
        int r;

        if ((unsigned)m >= _BIO_MODALITY_MAX || !print_store_id_ok(operator_id) || !data || size == 0 ||
            size > modalities[m].max)
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
                snprintf(path, sizeof(path), "%s/%s/%u%s", dir, operator_id, slot, modalities[m].suffix);
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

int print_store_delete(const char *dir, enum bio_modality m, const char *operator_id, unsigned *ret_deleted)
{
        char path[4096];
        unsigned n = 0, others = 0;
        int r = 0;

        if ((unsigned)m >= _BIO_MODALITY_MAX || !print_store_id_ok(operator_id))
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
                enum bio_modality dm;
                unsigned slot;

                if (!name_of_modality(de->d_name, m)) {
                        if (parse_name(de->d_name, &dm, &slot) >= 0)
                                others++; /* another modality's template stays, and so does the directory */
                        continue;
                }
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        r = negative_errno();
                        break;
                }
                if (parse_name(de->d_name, &dm, &slot) >= 0)
                        n++;
        }
        if (r >= 0 && others == 0) {
                /* The last modality went: strays go with the directory. */
                rewinddir(d);
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                            unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
                                r = negative_errno();
                                break;
                        }
        }
        if (r >= 0 && fsync(dirfd(d)) < 0)
                r = negative_errno();
        closedir(d);
        if (r < 0)
                return r;
        if (others == 0 && rmdir(path) < 0 && errno != ENOENT)
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

/* The templates of m in one operator directory (opened by the caller, taken); with data while
 * *budget (bytes still allowed) lasts. */
static int list_operator(int opfd, const char *operator_id, enum bio_modality m, uint64_t *budget,
                         struct print_set *s)
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
                struct stored_print p = {.modality = m};
                enum bio_modality dm;
                struct stat st;

                if (parse_name(de->d_name, &dm, &p.slot) < 0 || dm != m)
                        continue;
                _cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0 || !ours(&st, false))
                        continue; /* not ours: never compared with */
                size_t id_len = strnlen(operator_id, sizeof(p.operator_id));
                if (id_len == sizeof(p.operator_id))
                        continue; /* print_store_id_ok() bounds it; a longer name is not ours */
                memcpy(p.operator_id, operator_id, id_len + 1);
                p.size = (size_t)st.st_size;
                p.mtime_usec = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
                if (budget) {
                        char *data = NULL;
                        size_t size = 0;

                        if (st.st_size <= 0 || (uint64_t)st.st_size > modalities[m].max)
                                continue; /* empty or oversized: not a template of ours */
                        if ((uint64_t)st.st_size > *budget) {
                                r = -EFBIG;
                                break;
                        }
                        /* Bounded by the size fstat saw (itself at most the modality's maximum): one
                         * buffer of the template's size, not of the maximum, for each of many. */
                        if (read_fd_bounded(fd, (size_t)st.st_size, &data, &size) < 0 || size == 0) {
                                free(data);
                                continue;
                        }
                        *budget -= size;
                        p.data = (uint8_t *)data;
                        p.size = size;
                }
                r = append(s, &p);
                if (r < 0) {
                        if (p.data) {
                                explicit_bzero(p.data, p.size);
                                free(p.data);
                        }
                        break;
                }
        }
        closedir(d);
        return r;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks DIR's operator directories (those in allowed only, when given); budget NULL: no data. */
static int walk(const char *dir, enum bio_modality m, char *const *allowed, size_t n_allowed,
                uint64_t *budget, struct print_set *ret)
{
        struct print_set s = {0};
        struct dirent *de;
        size_t seen = 0;
        int r = 0;

        if ((unsigned)m >= _BIO_MODALITY_MAX)
                return -EINVAL;
        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret = s;
                return 0;
        }
        while ((de = readdir(d)) && seen++ < OPERATORS_MAX) {
                const char *name = de->d_name;
                struct stat st;

                if (!print_store_id_ok(name))
                        continue;
                if (allowed && !bsearch(&name, allowed, n_allowed, sizeof(char *), cmp_str))
                        continue;
                int opfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (opfd < 0)
                        continue;
                if (fstat(opfd, &st) < 0 || !ours(&st, true)) {
                        safe_close(opfd);
                        continue;
                }
                r = list_operator(opfd, name, m, budget, &s);
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

int print_store_list(const char *dir, enum bio_modality m, struct print_set *ret)
{
        return walk(dir, m, NULL, 0, NULL, ret);
}

int print_store_load(const char *dir, enum bio_modality m, char *const *allowed, size_t n_allowed,
                     struct print_set *ret)
{
        uint64_t budget = PRINT_STORE_LOAD_MAX;

        if (!allowed && n_allowed > 0)
                return -EINVAL;
        if (n_allowed == 0) {
                *ret = (struct print_set){0};
                return 0;
        }
        return walk(dir, m, allowed, n_allowed, &budget, ret);
}

int print_store_operators(const char *dir, char ***ret, size_t *ret_n)
{
        char **ids = NULL;
        size_t n = 0, seen = 0;
        struct dirent *de;
        int r = 0;

        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        while ((de = readdir(d)) && seen++ < OPERATORS_MAX) {
                struct stat st;

                if (!print_store_id_ok(de->d_name) ||
                    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !ours(&st, true))
                        continue;
                char **more = realloc(ids, (n + 1) * sizeof(*ids));
                if (!more) {
                        r = -ENOMEM;
                        break;
                }
                ids = more;
                if (!(ids[n] = strdup(de->d_name))) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);
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
