/* Unit tests of the template store (agent/mamorid/print-store.c): root-only layout, slots per modality,
 * what is not ours is never read, bounded loads, deletion per modality. */
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
#include "print-store.h"

struct fixture {
        char top[64];  /* mkdtemp */
        char dir[128]; /* top/prints: not there until the first save */
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        snprintf(f->top, sizeof(f->top), "/tmp/mamori-prints-XXXXXX");
        assert_non_null(mkdtemp(f->top));
        snprintf(f->dir, sizeof(f->dir), "%s/prints", f->top);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[160];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->top);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static const char *path_of(char *buf, size_t size, const struct fixture *f, const char *rel)
{
        int n = snprintf(buf, size, "%s/%s", f->dir, rel);

        assert_true(n > 0 && (size_t)n < size);
        return buf;
}

static mode_t mode_of(const char *path)
{
        struct stat st;

        assert_int_equal(lstat(path, &st), 0);
        return st.st_mode & 07777;
}

static void save(const struct fixture *f, enum bio_modality m, const char *op, const char *data,
                 unsigned slot)
{
        unsigned got = 0;

        assert_int_equal(print_store_save(f->dir, m, op, (const uint8_t *)data, strlen(data), &got), 0);
        assert_int_equal(got, slot);
}

static void write_raw(const char *path, const char *data, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
        close(fd);
        assert_int_equal(chmod(path, mode), 0);
}

static void test_modality_names(void **state)
{
        assert_string_equal(bio_modality_to_string(BIO_MODALITY_FINGER), "finger");
        assert_string_equal(bio_modality_to_string(BIO_MODALITY_VEIN), "vein");
        assert_null(bio_modality_to_string(_BIO_MODALITY_MAX));
        assert_int_equal(bio_modality_from_string("vein"), BIO_MODALITY_VEIN);
        assert_int_equal(bio_modality_from_string("finger"), BIO_MODALITY_FINGER);
        assert_int_equal(bio_modality_from_string("face"), -EINVAL);
        assert_int_equal(bio_modality_from_string(NULL), -EINVAL);
}

static void test_ids(void **state)
{
        static const char *const good[] = {"OP0001", "a", "op.name_1:x@y-z"};
        static const char *const bad[] = {"", ".hidden", "..", "a/b", "a b", "op\n", "ü"};
        char long_id[80];

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(print_store_id_ok(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (print_store_id_ok(bad[i]))
                        fail_msg("\"%s\" accepted as an operator id", bad[i]);
        assert_false(print_store_id_ok(NULL));
        memset(long_id, 'a', 64);
        long_id[64] = '\0';
        assert_true(print_store_id_ok(long_id));
        long_id[64] = 'a';
        long_id[65] = '\0';
        assert_false(print_store_id_ok(long_id));
}

/* Root-only on disk, slots per modality: five fingers and five hands of one operator side by side. */
static void test_save_layout_and_slots(void **state)
{
        struct fixture *f = *state;
        char p[256];
        unsigned slot = 0;

        for (unsigned i = 1; i <= PRINT_SLOTS_MAX; i++)
                save(f, BIO_MODALITY_FINGER, "OP0001", "finger-bytes", i);
        save(f, BIO_MODALITY_VEIN, "OP0001", "vein-bytes-1", 1);
        save(f, BIO_MODALITY_VEIN, "OP0001", "vein-bytes-2", 2);
        assert_int_equal(
                print_store_save(f->dir, BIO_MODALITY_FINGER, "OP0001", (const uint8_t *)"x", 1, &slot),
                -ENOSPC);
        assert_int_equal(slot, 0); /* ret_ only on success */

        assert_int_equal(mode_of(f->dir), 0700);
        assert_int_equal(mode_of(path_of(p, sizeof(p), f, "OP0001")), 0700);
        assert_int_equal(mode_of(path_of(p, sizeof(p), f, "OP0001/1.print")), 0600);
        assert_int_equal(mode_of(path_of(p, sizeof(p), f, "OP0001/2.vein")), 0600);

        struct print_set set = {0};
        assert_int_equal(print_store_list(f->dir, BIO_MODALITY_VEIN, &set), 0);
        assert_int_equal(set.n, 2);
        for (size_t i = 0; i < set.n; i++) {
                assert_string_equal(set.items[i].operator_id, "OP0001");
                assert_int_equal(set.items[i].modality, BIO_MODALITY_VEIN);
                assert_null(set.items[i].data); /* a listing reads no template */
                assert_int_equal(set.items[i].size, 12);
                assert_true(set.items[i].mtime_usec > 0);
        }
        print_set_done(&set);
        assert_int_equal(print_store_list(f->dir, BIO_MODALITY_FINGER, &set), 0);
        assert_int_equal(set.n, PRINT_SLOTS_MAX);
        print_set_done(&set);
}

static void test_save_refuses_bad_input(void **state)
{
        struct fixture *f = *state;
        uint8_t big[PRINT_VEIN_MAX + 1];
        unsigned slot = 0;

        memset(big, 'v', sizeof(big));
        assert_int_equal(print_store_save(f->dir, BIO_MODALITY_VEIN, "OP0001", big, sizeof(big), &slot),
                         -EINVAL);
        assert_int_equal(print_store_save(f->dir, BIO_MODALITY_VEIN, "OP0001", big, PRINT_VEIN_MAX, &slot),
                         0);
        assert_int_equal(print_store_save(f->dir, BIO_MODALITY_VEIN, "OP0001", big, 0, &slot), -EINVAL);
        assert_int_equal(print_store_save(f->dir, BIO_MODALITY_VEIN, "../etc", big, 1, &slot), -EINVAL);
        assert_int_equal(print_store_save(f->dir, _BIO_MODALITY_MAX, "OP0001", big, 1, &slot), -EINVAL);
}

/* A store directory others could write into is not used: nothing is written there. */
static void test_save_refuses_a_dir_that_is_not_ours(void **state)
{
        struct fixture *f = *state;
        char p[256];
        unsigned slot = 0;

        assert_int_equal(mkdir(f->dir, 0777), 0);
        assert_int_equal(chmod(f->dir, 0777), 0);
        assert_int_equal(
                print_store_save(f->dir, BIO_MODALITY_VEIN, "OP0001", (const uint8_t *)"v", 1, &slot),
                -EPERM);
        assert_int_equal(chmod(f->dir, 0700), 0);
        assert_int_equal(mkdir(path_of(p, sizeof(p), f, "OP0002"), 0755), 0);
        assert_int_equal(chmod(p, 0757), 0);
        assert_int_equal(
                print_store_save(f->dir, BIO_MODALITY_VEIN, "OP0002", (const uint8_t *)"v", 1, &slot),
                -EPERM);
        assert_int_equal(access(path_of(p, sizeof(p), f, "OP0002/1.vein"), F_OK), -1);
}

/* Files and directories that are not ours, a symlink, an oversized or empty file, another name:
 * never listed, never read. */
static void test_load_reads_only_ours(void **state)
{
        struct fixture *f = *state;
        char p[256], q[256];

        if (geteuid() != 0)
                skip(); /* a file of another owner needs root; CI runs as root, where this never skips */
        save(f, BIO_MODALITY_VEIN, "OP0001", "vein-test:1:a", 1);
        save(f, BIO_MODALITY_VEIN, "OP0002", "vein-test:1:b", 1);
        save(f, BIO_MODALITY_VEIN, "OP0003", "vein-test:1:c", 1);
        /* OP0001: a readable copy others could have swapped, a symlink, a stray name. */
        write_raw(path_of(p, sizeof(p), f, "OP0001/2.vein"), "vein-test:1:x", 0644);
        assert_int_equal(symlink(path_of(q, sizeof(q), f, "OP0002/1.vein"),
                                 path_of(p, sizeof(p), f, "OP0001/3.vein")),
                         0);
        write_raw(path_of(p, sizeof(p), f, "OP0001/9.vein"), "vein-test:1:y", 0600);
        write_raw(path_of(p, sizeof(p), f, "OP0001/1.vein.bak"), "vein-test:1:y", 0600);
        write_raw(path_of(p, sizeof(p), f, "OP0001/4.vein"), "", 0600);
        /* OP0002: a file owned by someone else. */
        write_raw(path_of(p, sizeof(p), f, "OP0002/2.vein"), "vein-test:1:z", 0600);
        assert_int_equal(chown(p, 65534, 65534), 0);
        /* OP0003: its directory writable by others. */
        assert_int_equal(chmod(path_of(p, sizeof(p), f, "OP0003"), 0777), 0);

        char *allowed[] = {"OP0001", "OP0002", "OP0003"};
        struct print_set set = {0};
        assert_int_equal(print_store_load(f->dir, BIO_MODALITY_VEIN, allowed, 3, &set), 0);
        assert_int_equal(set.n, 2);
        for (size_t i = 0; i < set.n; i++) {
                const struct stored_print *t = &set.items[i];
                assert_int_equal(t->slot, 1);
                assert_non_null(t->data);
                if (streq(t->operator_id, "OP0001"))
                        assert_memory_equal(t->data, "vein-test:1:a", t->size);
                else if (streq(t->operator_id, "OP0002"))
                        assert_memory_equal(t->data, "vein-test:1:b", t->size);
                else
                        fail_msg("template of %s read from a directory others can write", t->operator_id);
        }
        print_set_done(&set);
        assert_int_equal(set.n, 0);
        assert_null(set.items);

        /* An oversized file of ours is skipped too (a plugin never wrote it). */
        uint8_t big[PRINT_VEIN_MAX + 2];
        memset(big, 'v', sizeof(big));
        big[sizeof(big) - 1] = '\0';
        write_raw(path_of(p, sizeof(p), f, "OP0002/3.vein"), (const char *)big, 0600);
        char *only2[] = {"OP0002"};
        assert_int_equal(print_store_load(f->dir, BIO_MODALITY_VEIN, only2, 1, &set), 0);
        assert_int_equal(set.n, 1);
        print_set_done(&set);
}

/* Only the allowed operators' directories are opened; the finger files stay out of a vein load. */
static void test_load_only_allowed_and_modality(void **state)
{
        struct fixture *f = *state;
        char *allowed[] = {"OP0002", "OP0009"}; /* sorted; OP0009 has nothing */
        struct print_set set = {0};

        save(f, BIO_MODALITY_VEIN, "OP0001", "vein-a", 1);
        save(f, BIO_MODALITY_VEIN, "OP0002", "vein-b", 1);
        save(f, BIO_MODALITY_FINGER, "OP0002", "finger-b", 1);
        assert_int_equal(print_store_load(f->dir, BIO_MODALITY_VEIN, allowed, 2, &set), 0);
        assert_int_equal(set.n, 1);
        assert_string_equal(set.items[0].operator_id, "OP0002");
        assert_memory_equal(set.items[0].data, "vein-b", 6);
        print_set_done(&set);
        /* Nobody allowed: nothing read. */
        assert_int_equal(print_store_load(f->dir, BIO_MODALITY_VEIN, NULL, 0, &set), 0);
        assert_int_equal(set.n, 0);
        /* A missing store is empty, not an error. */
        assert_int_equal(print_store_load("/nonexistent/prints", BIO_MODALITY_VEIN, allowed, 2, &set), 0);
        assert_int_equal(set.n, 0);
        assert_int_equal(print_store_list("/nonexistent/prints", BIO_MODALITY_FINGER, &set), 0);
        assert_int_equal(set.n, 0);
}

/* Deleting one modality keeps the other and the directory; the last one takes the directory (and
 * leftover temporaries) with it. */
static void test_delete_per_modality(void **state)
{
        struct fixture *f = *state;
        char p[256];
        unsigned n = 99;

        save(f, BIO_MODALITY_FINGER, "OP0001", "finger-a", 1);
        save(f, BIO_MODALITY_FINGER, "OP0001", "finger-a2", 2);
        save(f, BIO_MODALITY_VEIN, "OP0001", "vein-a", 1);
        write_raw(path_of(p, sizeof(p), f, "OP0001/2.vein.tmp.1234"), "half", 0600);
        write_raw(path_of(p, sizeof(p), f, "OP0001/stray"), "junk", 0600);

        assert_int_equal(print_store_delete(f->dir, BIO_MODALITY_VEIN, "OP0001", &n), 0);
        assert_int_equal(n, 1); /* the temporary went, uncounted */
        assert_int_equal(access(path_of(p, sizeof(p), f, "OP0001/1.vein"), F_OK), -1);
        assert_int_equal(access(path_of(p, sizeof(p), f, "OP0001/2.vein.tmp.1234"), F_OK), -1);
        assert_int_equal(access(path_of(p, sizeof(p), f, "OP0001/1.print"), F_OK), 0);

        assert_int_equal(print_store_delete(f->dir, BIO_MODALITY_VEIN, "OP0001", &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(print_store_delete(f->dir, BIO_MODALITY_FINGER, "OP0001", &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(access(path_of(p, sizeof(p), f, "OP0001"), F_OK), -1);

        assert_int_equal(print_store_delete(f->dir, BIO_MODALITY_FINGER, "OP0404", &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(print_store_delete(f->dir, BIO_MODALITY_FINGER, "../x", &n), -EINVAL);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every operator directory of ours, whatever it holds (a retired operator's go at policy load). */
static void test_operators(void **state)
{
        struct fixture *f = *state;
        char p[256];
        char **ids = NULL;
        size_t n = 0;

        save(f, BIO_MODALITY_VEIN, "OP0002", "vein-b", 1);
        save(f, BIO_MODALITY_FINGER, "OP0001", "finger-a", 1);
        assert_int_equal(mkdir(path_of(p, sizeof(p), f, "OP0003"), 0700), 0);
        assert_int_equal(mkdir(path_of(p, sizeof(p), f, "OP0004"), 0777), 0);
        assert_int_equal(chmod(p, 0777), 0); /* not ours: not listed */
        assert_int_equal(mkdir(path_of(p, sizeof(p), f, ".hidden"), 0700), 0);
        assert_int_equal(print_store_operators(f->dir, &ids, &n), 0);
        assert_int_equal(n, 3);
        qsort(ids, n, sizeof(char *), cmp_str);
        assert_string_equal(ids[0], "OP0001");
        assert_string_equal(ids[1], "OP0002");
        assert_string_equal(ids[2], "OP0003");
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_modality_names),
                cmocka_unit_test(test_ids),
                cmocka_unit_test_setup_teardown(test_save_layout_and_slots, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_refuses_bad_input, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_refuses_a_dir_that_is_not_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_load_reads_only_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_load_only_allowed_and_modality, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delete_per_modality, setup, teardown),
                cmocka_unit_test_setup_teardown(test_operators, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
