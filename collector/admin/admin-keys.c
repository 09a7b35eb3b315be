/* Custody of the centre's keys (DESIGN §11): mamori-admin's directory, root only, out of the
 * collector's reach; the move out of the collector's state directory for an older centre; files
 * that mamori-admin writes for the collector. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin-keys.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"

/* The private keys: only here, never in the collector's state directory. */
static const char *const private_keys[] = {ADMIN_POLICY_KEY, ADMIN_TERMINAL_CA_KEY, ADMIN_COLLECTOR_CA_KEY};
/* Their public halves: the originals here; the collector keeps copies. */
static const char *const public_files[] = {ADMIN_POLICY_PUB, ADMIN_TERMINAL_CA, ADMIN_COLLECTOR_CA};

/* Group bits are kept only for the group mamori-admin; others never have any. */
static int tighten(const char *dir, const struct stat *st)
{
        const struct group *g = getgrgid(st->st_gid);
        mode_t keep = g && streq(g->gr_name, ADMIN_GROUP) ? 0750 : 0700;
        mode_t mode = st->st_mode & 07777;

        if ((mode & ~keep) == 0)
                return 0;
        if (chmod(dir, mode & keep) < 0)
                return -errno;
        fprintf(stderr, "mamori-admin: %s was mode %04o; now %04o (its keys are for root%s only)\n", dir,
                mode, mode & keep, keep == 0750 ? " and the group " ADMIN_GROUP : "");
        return 0;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
        _cleanup_free_ char *data = NULL;
        size_t n;
        int r;

        r = read_file_bounded(from, PEM_FILE_MAX, &data, &n);
        if (r < 0)
                return r;
        r = write_file_atomic(to, data, n, mode);
        explicit_bzero(data, n);
        return r;
}

static bool same_content(const char *a, const char *b)
{
        _cleanup_free_ char *da = NULL, *db = NULL;
        size_t na, nb;
        bool same;

        if (read_file_bounded(a, PEM_FILE_MAX, &da, &na) < 0 ||
            read_file_bounded(b, PEM_FILE_MAX, &db, &nb) < 0)
                return false;
        same = na == nb && memcmp(da, db, na) == 0;
        explicit_bzero(da, na);
        explicit_bzero(db, nb);
        return same;
}

/* A centre initialised before the keys moved keeps them in the collector's state directory: move
 * them (copy, sync, then delete the old one) and say what else to do. */
static int migrate(AdminContext *ctx)
{
        unsigned moved = 0;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(public_files); i++) {
                _cleanup_free_ char *old = collector_state_path(&ctx->config, public_files[i]);
                _cleanup_free_ char *new = collector_admin_path(&ctx->config, public_files[i]);
                if (!old || !new)
                        return -ENOMEM;
                if (access(new, F_OK) < 0 && access(old, F_OK) == 0 && (r = copy_file(old, new, 0644)) < 0) {
                        fprintf(stderr, "mamori-admin: cannot copy %s to %s: %s\n", old, new, strerror(-r));
                        return r;
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(private_keys); i++) {
                _cleanup_free_ char *old = collector_state_path(&ctx->config, private_keys[i]);
                _cleanup_free_ char *new = collector_admin_path(&ctx->config, private_keys[i]);
                if (!old || !new)
                        return -ENOMEM;
                if (access(old, F_OK) < 0)
                        continue;
                if (access(new, F_OK) == 0) {
                        if (!same_content(old, new)) {
                                fprintf(stderr,
                                        "mamori-admin: %s and %s both exist and differ: the collector must "
                                        "not "
                                        "hold the key. Find out which one is in use (mamori-admin policy "
                                        "signer, the CA certificates), keep it in %s and remove the other "
                                        "(shred -u)\n",
                                        old, new, ctx->config.admin_directory);
                                return -EEXIST;
                        }
                } else if ((r = copy_file(old, new, 0600)) < 0) {
                        fprintf(stderr, "mamori-admin: cannot move %s to %s: %s\n", old, new, strerror(-r));
                        return r;
                }
                if (unlink(old) < 0) {
                        fprintf(stderr, "mamori-admin: cannot remove %s (now also in %s): %m\n", old,
                                ctx->config.admin_directory);
                        return -errno;
                }
                moved++;
        }
        if (moved > 0)
                fprintf(stderr,
                        "mamori-admin: moved %u private key(s) (policy.key, terminal-ca.key, "
                        "collector-ca.key) "
                        "from the collector's %s to %s, readable by root only (DESIGN §11). Next: install "
                        "the current mamori-collector.service (InaccessiblePaths=%s) and restart "
                        "mamori-collector\n",
                        moved, ctx->config.state_directory, ctx->config.admin_directory,
                        ctx->config.admin_directory);
        return 0;
}

/* Does the collector's state directory hold a key of ours (a centre initialised before)? */
static bool old_layout(AdminContext *ctx)
{
        for (size_t i = 0; i < ELEMENTSOF(private_keys); i++) {
                _cleanup_free_ char *old = collector_state_path(&ctx->config, private_keys[i]);
                if (old && access(old, F_OK) == 0)
                        return true;
        }
        return false;
}

int admin_keys_prepare(AdminContext *ctx, bool create)
{
        struct stat st;
        int r;

        if (ctx->keys_ready)
                return 0;
        if (stat(ctx->config.admin_directory, &st) < 0) {
                if (errno != ENOENT || !(create || old_layout(ctx))) {
                        r = -errno;
                        fprintf(stderr, "mamori-admin: cannot use %s: %s (run mamori-admin init as root)\n",
                                ctx->config.admin_directory, strerror(-r));
                        return r;
                }
                if (mkdir(ctx->config.admin_directory, 0700) < 0 && errno != EEXIST) {
                        r = -errno;
                        fprintf(stderr, "mamori-admin: cannot create %s: %s\n", ctx->config.admin_directory,
                                strerror(-r));
                        return r;
                }
                if (stat(ctx->config.admin_directory, &st) < 0)
                        return -errno;
        }
        if (!S_ISDIR(st.st_mode)) {
                fprintf(stderr, "mamori-admin: %s is not a directory\n", ctx->config.admin_directory);
                return -ENOTDIR;
        }
        r = tighten(ctx->config.admin_directory, &st);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot restrict %s: %s\n", ctx->config.admin_directory,
                        strerror(-r));
                return r;
        }
        r = migrate(ctx);
        if (r < 0)
                return r;
        ctx->keys_ready = true;
        return 0;
}

char *admin_key_path(AdminContext *ctx, const char *name)
{
        return collector_admin_path(&ctx->config, name);
}

int admin_give_to_collector(AdminContext *ctx, const char *path)
{
        struct stat st;

        /* Whoever owns the collector's state directory (its user, once its unit ran) owns its files. */
        if (stat(ctx->config.state_directory, &st) < 0)
                return -errno;
        if (chown(path, st.st_uid, st.st_gid) < 0 && (errno != EPERM || st.st_uid != geteuid()))
                return -errno;
        return 0;
}
