/* Unit tests for the verifier store (agent/mamorid/password-store.c): what a verifier file must be to be
 * believed (mamori/fileio.h open_private_file), and a removal. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mamori/macro.h"
#include "password-store.h"

#define VERIFIER "$mamori-scrypt$v=1$ln=12,r=8,p=1$c2FsdA==$aGFzaA=="

struct dir {
        char path[64];
        char file[128]; /* OP0001's verifier */
};

static int setup(void **state)
{
        struct dir *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        snprintf(d->path, sizeof(d->path), "/tmp/test-password-store-XXXXXX");
        assert_non_null(mkdtemp(d->path));
        snprintf(d->file, sizeof(d->file), "%s/OP0001", d->path);
        *state = d;
        return 0;
}

static int teardown(void **state)
{
        struct dir *d = *state;
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
        assert_int_equal(system(cmd), 0);
        free(d);
        return 0;
}

static int read_verifier(struct dir *d)
{
        char *v = NULL;
        int64_t changed = -1;
        int r = password_store_read(d->path, "OP0001", &v, &changed);

        if (r >= 0) {
                assert_string_equal(v, VERIFIER);
                assert_true(changed > 0);
        } else
                assert_int_equal(changed, -1); /* untouched on failure */
        free(v);
        return r;
}

/* Only a regular file of ours, mode 0600 or stricter, is a verifier; anything else is refused at once
 * (a FIFO is never waited on: the password thread would hang on it). */
static void test_read_believes_only_a_private_file(void **state)
{
        struct dir *d = *state;
        char other[160];
        int64_t changed;

        assert_int_equal(read_verifier(d), -ENOENT);
        assert_int_equal(password_store_write(d->path, "OP0001", VERIFIER), 0);
        assert_int_equal(read_verifier(d), 0);
        assert_int_equal(password_store_changed(d->path, "OP0001", &changed), 0);

        /* Readable by others: refused, by read and by the age. */
        assert_int_equal(chmod(d->file, 0640), 0);
        assert_int_equal(read_verifier(d), -EPERM);
        assert_int_equal(password_store_changed(d->path, "OP0001", &changed), -EPERM);
        assert_int_equal(chmod(d->file, 0600), 0);
        if (geteuid() == 0) {
                assert_int_equal(chown(d->file, 65534, 65534), 0);
                assert_int_equal(read_verifier(d), -EPERM);
                assert_int_equal(chown(d->file, 0, 0), 0);
        }
        /* A symbolic link to a good file: not followed. */
        snprintf(other, sizeof(other), "%s/OP0001.real", d->path);
        assert_int_equal(rename(d->file, other), 0);
        assert_int_equal(symlink(other, d->file), 0);
        assert_int_equal(read_verifier(d), -EPERM);
        assert_int_equal(unlink(d->file), 0);
        /* A FIFO: not a regular file, refused without waiting for a writer. */
        assert_int_equal(mkfifo(d->file, 0600), 0);
        assert_int_equal(read_verifier(d), -EBADFD);
        assert_int_equal(password_store_changed(d->path, "OP0001", &changed), -EBADFD);
        assert_int_equal(unlink(d->file), 0);
        /* A directory. */
        assert_int_equal(mkdir(d->file, 0700), 0);
        assert_int_equal(read_verifier(d), -EBADFD);
        assert_int_equal(rmdir(d->file), 0);
}

/* A removal takes the verifier away, durably, and only that operator's; a second one finds none. */
static void test_remove(void **state)
{
        struct dir *d = *state;
        char *v = NULL;
        int64_t changed;

        assert_int_equal(password_store_write(d->path, "OP0001", VERIFIER), 0);
        assert_int_equal(password_store_write(d->path, "OP0002", VERIFIER), 0);
        assert_int_equal(password_store_remove(d->path, "OP0001"), 0);
        assert_int_equal(read_verifier(d), -ENOENT);
        assert_int_equal(password_store_read(d->path, "OP0002", &v, &changed), 0);
        free(v);
        assert_int_equal(password_store_remove(d->path, "OP0001"), -ENOENT);
        assert_int_equal(password_store_remove(d->path, "../OP0002"), -EINVAL);
        /* A directory others can enter is not the store: nothing is removed from it. */
        assert_int_equal(chmod(d->path, 0755), 0);
        assert_int_equal(password_store_remove(d->path, "OP0002"), -EPERM);
        assert_int_equal(chmod(d->path, 0700), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read_believes_only_a_private_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
