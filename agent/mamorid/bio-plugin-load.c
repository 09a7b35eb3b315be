/* Loads a biometric plugin only from a root-owned, root-only-writable path, and only of our ABI version. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bio-plugin-load.h"
#include "mamori/macro.h"

#define PATH_COMPONENT_MAX 255

_printf_(3, 4) static int fail(char *why, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, BIO_PLUGIN_WHY_MAX, fmt, ap);
        va_end(ap);
        return r;
}

/* Who may change what is at this place: only root. A sticky root-owned directory (/tmp) is
 * accepted where allow_sticky: others may add names there but not rename or remove ours. */
static int check_owner_mode(const char *path, const char *what, const struct stat *st, bool allow_sticky,
                            char *why)
{
        if (st->st_uid != 0)
                return fail(why, -EPERM,
                            "%s: %s is owned by uid %u, not root; only a root-owned plugin is loaded "
                            "(chown root:root, chmod go-w)",
                            path, what, (unsigned)st->st_uid);
        if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(allow_sticky && (st->st_mode & S_ISVTX)))
                return fail(why, -EPERM,
                            "%s: %s is writable by group or others (mode %04o); only a plugin that "
                            "only root can change is loaded (chmod go-w)",
                            path, what, (unsigned)(st->st_mode & 07777));
        return 0;
}

/* Opens the plugin file after checking every directory above it; the descriptor of the file. */
static int open_checked(const char *path, char *why)
{
        _cleanup_close_ int dir = -EBADF;
        const char *p = path;
        struct stat st;
        char at[PATH_MAX] = "/";

        if (!path || path[0] != '/')
                return fail(why, -EINVAL, "%s: not an absolute path; give the plugin's full path",
                            path ? path : "(null)");
        if (strlen(path) >= PATH_MAX)
                return fail(why, -EINVAL, "plugin path longer than %d bytes", PATH_MAX - 1);

        dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return fail(why, -errno, "%s: cannot open /: %s", path, strerror(errno));
        if (fstat(dir, &st) < 0)
                return fail(why, -errno, "%s: cannot stat /: %s", path, strerror(errno));
        int r = check_owner_mode(path, "directory /", &st, false, why);
        if (r < 0)
                return r;

        for (;;) {
                char name[PATH_COMPONENT_MAX + 1];
                size_t n;
                bool last;
                int fd;

                p += strspn(p, "/");
                n = strcspn(p, "/");
                if (n == 0)
                        return fail(why, -EINVAL, "%s: names a directory, not a plugin file", path);
                if (n > PATH_COMPONENT_MAX)
                        return fail(why, -EINVAL, "%s: a path component is longer than %d bytes", path,
                                    PATH_COMPONENT_MAX);
                memcpy(name, p, n);
                name[n] = '\0';
                p += n;
                last = p[strspn(p, "/")] == '\0';
                if (streq(name, ".") || streq(name, ".."))
                        return fail(why, -EINVAL, "%s: contains '%s'; give the plugin's plain full path",
                                    path, name);

                if (!last) {
                        fd = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (fd < 0) {
                                int e = errno;
                                struct stat lst;

                                if (fstatat(dir, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                                    S_ISLNK(lst.st_mode))
                                        return fail(why, -EPERM,
                                                    "%s: %s%s%s is a symbolic link; give the real path "
                                                    "(readlink -f)",
                                                    path, at, streq(at, "/") ? "" : "/", name);
                                return fail(why, -e, "%s: cannot open directory %s%s%s: %s", path, at,
                                            streq(at, "/") ? "" : "/", name, strerror(e));
                        }
                        safe_close(dir);
                        dir = fd;
                        snprintf(at + strlen(at), sizeof(at) - strlen(at), "%s%s", streq(at, "/") ? "" : "/",
                                 name);
                        if (fstat(dir, &st) < 0)
                                return fail(why, -errno, "%s: cannot stat %s: %s", path, at,
                                            strerror(errno));
                        /* Sticky directories only above the plugin's own directory. */
                        bool own_dir = p[strspn(p, "/")] != '\0' && !strchr(p + strspn(p, "/"), '/');
                        char what[PATH_MAX + 16];

                        snprintf(what, sizeof(what), "directory %s", at);
                        r = check_owner_mode(path, what, &st, !own_dir, why);
                        if (r < 0)
                                return r;
                        continue;
                }

                fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
                if (fd < 0) {
                        int e = errno;

                        if (e == ELOOP)
                                return fail(why, -EPERM,
                                            "%s: is a symbolic link; give the real path (readlink -f)",
                                            path);
                        if (e == ENOENT)
                                return fail(why, -ENOENT,
                                            "%s: no such file; install the plugin there or fix "
                                            "[Biometric] VeinPlugin=",
                                            path);
                        return fail(why, -e, "%s: cannot open: %s", path, strerror(e));
                }
                if (fstat(fd, &st) < 0) {
                        r = -errno;
                        safe_close(fd);
                        return fail(why, r, "%s: cannot stat: %s", path, strerror(-r));
                }
                if (!S_ISREG(st.st_mode)) {
                        safe_close(fd);
                        return fail(why, -EINVAL, "%s: not a regular file", path);
                }
                r = check_owner_mode(path, "the file", &st, false, why);
                if (r < 0) {
                        safe_close(fd);
                        return r;
                }
                return fd;
        }
}

static const char *const entry_names[] = {
        "mamori_bio_open",     "mamori_bio_enroll", "mamori_bio_verify",
        "mamori_bio_identify", "mamori_bio_cancel", "mamori_bio_close",
};

int bio_plugin_load(const char *path, BioPlugin **ret, char why[BIO_PLUGIN_WHY_MAX])
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ BioPlugin *p = NULL;
        const uint32_t *version;
        void *entries[ELEMENTSOF(entry_names)];
        char proc[64], missing[BIO_PLUGIN_WHY_MAX] = "";
        void *h;

        why[0] = '\0';
        fd = open_checked(path, why);
        if (fd < 0)
                return fd;

        /* The very file that was checked, not whatever the path names by now. */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        h = dlopen(proc, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                const char *e = dlerror();
                return fail(why, -ENOEXEC, "%s: not a loadable library: %s", path, e ? e : "dlopen failed");
        }

        version = dlsym(h, "mamori_bio_abi_version");
        if (!version) {
                dlclose(h);
                return fail(why, -ENOEXEC,
                            "%s: not a mamori biometric plugin (no symbol mamori_bio_abi_version); see "
                            "auth/bio-plugin.h",
                            path);
        }
        if (*version != MAMORI_BIO_ABI_VERSION) {
                uint32_t v = *version;

                dlclose(h);
                return fail(why, -EPROTO,
                            "%s: plugin ABI version %u, this mamorid loads version %u; install a plugin "
                            "built for this mamori version",
                            path, (unsigned)v, MAMORI_BIO_ABI_VERSION);
        }
        for (size_t i = 0; i < ELEMENTSOF(entry_names); i++) {
                entries[i] = dlsym(h, entry_names[i]);
                if (!entries[i])
                        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                                 missing[0] ? ", " : "", entry_names[i]);
        }
        if (missing[0]) {
                dlclose(h);
                return fail(why, -ENOSYS, "%s: ABI version %u plugin without %s; it cannot be used", path,
                            MAMORI_BIO_ABI_VERSION, missing);
        }

        p = malloc(sizeof(*p));
        if (!p) {
                dlclose(h);
                return fail(why, -ENOMEM, "%s: out of memory", path);
        }
        /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
        *p = (BioPlugin){
                .handle = h,
                .open = (mamori_bio_open_fn)entries[0],
                .enroll = (mamori_bio_enroll_fn)entries[1],
                .verify = (mamori_bio_verify_fn)entries[2],
                .identify = (mamori_bio_identify_fn)entries[3],
                .cancel = (mamori_bio_cancel_fn)entries[4],
                .close = (mamori_bio_close_fn)entries[5],
        };
        *ret = TAKE_PTR(p);
        return 0;
}

BioPlugin *bio_plugin_unload(BioPlugin *p)
{
        if (!p)
                return NULL;
        if (p->handle)
                dlclose(p->handle);
        free(p);
        return NULL;
}
