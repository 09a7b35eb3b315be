/* Tests of the biometric plugin ABI: the loader refuses hostile plugin files; the vein thread runs the
 * simulated reader (tests/bio) through enrol, identify, verify, retries, a reader gone and cancels. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "bio-plugin-load.h"
#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "mamori/time-util.h"
#include "vein-worker.h"

struct fixture {
        char dir[64];   /* root-owned 0755: the plugins' directory */
        char path[128]; /* dir/vein.so, a copy of the test plugin, root 0644 */
        char socket[100];
};

static int copy_file(const char *from, const char *to, mode_t mode)
{
        char buf[65536];
        ssize_t n;
        int in = open(from, O_RDONLY | O_CLOEXEC), out;

        if (in < 0)
                return -errno;
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (out < 0) {
                close(in);
                return -errno;
        }
        while ((n = read(in, buf, sizeof(buf))) > 0)
                if (write(out, buf, (size_t)n) != n)
                        break;
        close(in);
        close(out);
        return chmod(to, mode) < 0 ? -errno : 0;
}

/* dir/name into buf (always fits: the fixture's paths are short). */
static const char *in_dir(char *buf, size_t size, const struct fixture *f, const char *name)
{
        int n = snprintf(buf, size, "%.63s/%s", f->dir, name);

        assert_true(n > 0 && (size_t)n < size);
        return buf;
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        if (geteuid() != 0) {
                free(f);
                skip(); /* root-owned files need root; CI runs as root, where this never skips */
        }
        snprintf(f->dir, sizeof(f->dir), "/tmp/mamori-bio-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(chmod(f->dir, 0755), 0);
        in_dir(f->path, sizeof(f->path), f, "vein.so");
        assert_int_equal(copy_file(VEIN_TEST_PLUGIN, f->path, 0644), 0);
        in_dir(f->socket, sizeof(f->socket), f, "vein.sock");
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[160];

        if (!f)
                return 0;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static void expect_refusal(const char *path, int expected, const char *words)
{
        char why[BIO_PLUGIN_WHY_MAX] = "";
        BioPlugin *p = NULL;
        int r = bio_plugin_load(path, &p, why);

        if (r != expected || !strstr(why, words))
                fail_msg("%s: got %d \"%s\", expected %d with \"%s\"", path, r, why, expected, words);
        assert_null(p);
}

static void test_loads_a_root_owned_plugin(void **state)
{
        struct fixture *f = *state;
        char why[BIO_PLUGIN_WHY_MAX];
        BioPlugin *p = NULL;

        assert_int_equal(bio_plugin_load(f->path, &p, why), 0);
        assert_non_null(p->open);
        assert_non_null(p->enroll);
        assert_non_null(p->verify);
        assert_non_null(p->identify);
        assert_non_null(p->cancel);
        assert_non_null(p->close);
        bio_plugin_unload(p);
}

/* Each hostile file or place is refused before any of its code runs, with what to do about it. */
static void test_refuses_hostile_files(void **state)
{
        struct fixture *f = *state;
        char p[256], d[256];

        expect_refusal("vein.so", -EINVAL, "not an absolute path");
        in_dir(p, sizeof(p), f, "missing.so");
        expect_refusal(p, -ENOENT, "no such file");
        in_dir(p, sizeof(p), f, "dir.so");
        assert_int_equal(mkdir(p, 0755), 0);
        expect_refusal(p, -EINVAL, "not a regular file");
        /* The plugin's own directory may not be a sticky one that others write (/tmp itself). */
        expect_refusal("/tmp/vein.so", -EPERM, "directory /tmp is writable by group or others (mode 1777)");
        in_dir(p, sizeof(p), f, "../mamori-bio-x/vein.so");
        expect_refusal(p, -EINVAL, "contains '..'");

        /* The file: writable by others, by the group, not root's. */
        assert_int_equal(chmod(f->path, 0666), 0);
        expect_refusal(f->path, -EPERM, "writable by group or others (mode 0666)");
        assert_int_equal(chmod(f->path, 0664), 0);
        expect_refusal(f->path, -EPERM, "writable by group or others");
        assert_int_equal(chmod(f->path, 0644), 0);
        assert_int_equal(chown(f->path, 65534, 0), 0);
        expect_refusal(f->path, -EPERM, "owned by uid 65534, not root");
        assert_int_equal(chown(f->path, 0, 0), 0);

        /* Its directory: writable by others (sticky or not), not root's. */
        assert_int_equal(chmod(f->dir, 0777), 0);
        expect_refusal(f->path, -EPERM, "is writable by group or others (mode 0777)");
        assert_int_equal(chmod(f->dir, 01777), 0);
        expect_refusal(f->path, -EPERM, "writable by group or others (mode 1777)");
        assert_int_equal(chmod(f->dir, 0755), 0);
        assert_int_equal(chown(f->dir, 65534, 0), 0);
        expect_refusal(f->path, -EPERM, "owned by uid 65534");
        assert_int_equal(chown(f->dir, 0, 0), 0);

        /* A directory further up that others may write (not sticky): refused too. */
        in_dir(d, sizeof(d), f, "sub");
        assert_int_equal(mkdir(d, 0755), 0);
        in_dir(p, sizeof(p), f, "sub/vein.so");
        assert_int_equal(copy_file(VEIN_TEST_PLUGIN, p, 0644), 0);
        assert_int_equal(chmod(f->dir, 0757), 0);
        expect_refusal(p, -EPERM, "writable by group or others (mode 0757)");
        assert_int_equal(chmod(f->dir, 0755), 0);

        /* Symbolic links: to the file, and as a directory on the way. */
        in_dir(p, sizeof(p), f, "link.so");
        assert_int_equal(symlink(f->path, p), 0);
        expect_refusal(p, -EPERM, "symbolic link");
        in_dir(p, sizeof(p), f, "linkdir");
        assert_int_equal(symlink(d, p), 0);
        in_dir(p, sizeof(p), f, "linkdir/vein.so");
        expect_refusal(p, -EPERM, "symbolic link");

        /* Files that are not plugins of our ABI. */
        in_dir(p, sizeof(p), f, "text.so");
        assert_int_equal(copy_file("/etc/hostname", p, 0644) == 0 || copy_file("/etc/passwd", p, 0644) == 0,
                         1);
        expect_refusal(p, -ENOEXEC, "not a loadable library");
        in_dir(p, sizeof(p), f, "noversion.so");
        assert_int_equal(copy_file(VEIN_TEST_PLUGIN_NOVERSION, p, 0644), 0);
        expect_refusal(p, -ENOEXEC, "not a mamori biometric plugin (no symbol mamori_bio_abi_version)");
        in_dir(p, sizeof(p), f, "abi2.so");
        assert_int_equal(copy_file(VEIN_TEST_PLUGIN_ABI2, p, 0644), 0);
        expect_refusal(p, -EPROTO, "plugin ABI version 2, this mamorid loads version 1");
        in_dir(p, sizeof(p), f, "noidentify.so");
        assert_int_equal(copy_file(VEIN_TEST_PLUGIN_NOIDENTIFY, p, 0644), 0);
        expect_refusal(p, -ENOSYS, "without mamori_bio_identify");

        /* And the worker refuses what the loader refuses. */
        {
                char why[BIO_PLUGIN_WHY_MAX] = "";
                VeinWorker *w = NULL;

                assert_int_equal(vein_worker_start(NULL, p, f->socket, &w, why), -ENOSYS);
                assert_null(w);
                assert_non_null(strstr(why, "mamori_bio_identify"));
        }
}

/* The worker on a real sd-event loop. */
struct run {
        sd_event *e;
        VeinWorker *w;
        struct fixture *f;
        struct vein_event last; /* the DONE of the last job (template copied) */
        uint8_t template[256];
        int progress;
        bool done;
};

static void on_event(void *userdata, const struct vein_event *ev)
{
        struct run *r = userdata;

        if (ev->kind == VEIN_EVENT_PROGRESS) {
                r->progress++;
                assert_int_equal(ev->stage, r->progress);
                return;
        }
        r->last = *ev;
        r->last.template = NULL;
        if (ev->template && ev->template_size <= sizeof(r->template)) {
                memcpy(r->template, ev->template, ev->template_size);
                r->last.template = r->template;
        }
        r->done = true;
}

static void send_command(struct fixture *f, const char *cmd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char ok[8] = "";
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        memcpy(sa.sun_path, f->socket, sizeof(f->socket));
        /* After a reader went away the thread reopens it (binds again) when the next job starts. */
        for (int i = 0; connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; i++) {
                assert_true(i < 200);
                usleep(10000);
        }
        assert_int_equal(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
        assert_int_equal(write(fd, "\n", 1), 1);
        close(fd); /* the plugin answers "ok" when it takes the command; nobody waits for it here */
        (void)ok;
}

/* Runs the loop until the job's DONE (or timeout_usec): true when it came. */
static bool run_until_done(struct run *r, uint64_t timeout_usec)
{
        uint64_t end = now_mono_usec() + timeout_usec;

        while (!r->done && now_mono_usec() < end)
                assert_true(sd_event_run(r->e, 20 * USEC_PER_MSEC) >= 0);
        return r->done;
}

static void start_worker(struct run *r, struct fixture *f, const char *extra)
{
        char why[BIO_PLUGIN_WHY_MAX] = "", options[192];
        struct vein_device_info info = {0};
        uint64_t end = now_mono_usec() + 5 * USEC_PER_SEC;

        *r = (struct run){.f = f};
        assert_int_equal(sd_event_new(&r->e), 0);
        snprintf(options, sizeof(options), "%s%s", f->socket, extra);
        if (vein_worker_start(r->e, f->path, options, &r->w, why) < 0)
                fail_msg("vein_worker_start: %s", why);
        while (!info.present && now_mono_usec() < end) {
                (void)sd_event_run(r->e, 10 * USEC_PER_MSEC);
                vein_worker_device(r->w, &info);
        }
        assert_true(info.present);
}

static void stop_worker(struct run *r)
{
        r->w = vein_worker_stop(r->w);
        r->e = sd_event_unref(r->e);
}

static void enroll(struct run *r, uint64_t id, const char *op, uint8_t *ret_template, size_t *ret_size)
{
        r->done = false;
        r->progress = 0;
        assert_int_equal(vein_worker_enroll(r->w, id, op, on_event, r), 0);
        for (int i = 0; i < 3; i++) {
                char cmd[64];
                snprintf(cmd, sizeof(cmd), "SCAN %s", op);
                send_command(r->f, cmd);
        }
        assert_true(run_until_done(r, 5 * USEC_PER_SEC));
        assert_int_equal(r->last.result, 0);
        assert_int_equal(r->progress, 3);
        assert_non_null(r->last.template);
        memcpy(ret_template, r->last.template, r->last.template_size);
        *ret_size = r->last.template_size;
}

static int match(struct run *r, uint64_t id, const struct vein_template_ref *g, size_t n, const char *cmd)
{
        r->done = false;
        int k = vein_worker_match(r->w, id, g, n, on_event, r);
        if (k < 0)
                return k;
        if (cmd)
                send_command(r->f, cmd);
        assert_true(run_until_done(r, 5 * USEC_PER_SEC));
        return r->last.result;
}

static void test_enroll_identify_verify(void **state)
{
        struct fixture *f = *state;
        uint8_t t1[256], t2[256];
        size_t n1, n2;
        struct run r;

        start_worker(&r, f, "");
        enroll(&r, 1, "OP0001", t1, &n1);
        assert_memory_equal(t1, "vein-test:1:OP0001", n1);
        enroll(&r, 2, "OP0002", t2, &n2);

        struct vein_template_ref g[] = {{"OP0001", t1, n1}, {"OP0002", t2, n2}};
        /* 1:N: the hand picks its operator among several. */
        assert_int_equal(match(&r, 3, g, 2, "SCAN OP0002"), 0);
        assert_true(r.last.matched);
        assert_string_equal(r.last.operator_id, "OP0002");
        assert_int_equal(match(&r, 4, g, 2, "SCAN OP0001"), 0);
        assert_string_equal(r.last.operator_id, "OP0001");
        /* Nobody's hand: no match, no operator. */
        assert_int_equal(match(&r, 5, g, 2, "SCAN OP0009"), 0);
        assert_false(r.last.matched);
        assert_string_equal(r.last.operator_id, "");
        /* An unusable capture. */
        assert_int_equal(match(&r, 6, g, 2, "RETRY"), -EAGAIN);
        /* A second job while one runs is refused; the first still completes. */
        r.done = false;
        assert_int_equal(vein_worker_match(r.w, 7, g, 2, on_event, &r), 0);
        assert_int_equal(vein_worker_match(r.w, 8, g, 2, on_event, &r), -EBUSY);
        assert_int_equal(vein_worker_enroll(r.w, 8, "OP0003", on_event, &r), -EBUSY);
        send_command(f, "SCAN OP0001");
        assert_true(run_until_done(&r, 5 * USEC_PER_SEC));
        assert_int_equal(r.last.id, 7);
        assert_true(r.last.matched);
        /* Bad galleries never reach the thread. */
        assert_int_equal(vein_worker_match(r.w, 9, g, 0, on_event, &r), -EINVAL);
        struct vein_template_ref bad[] = {{"", t1, n1}};
        assert_int_equal(vein_worker_match(r.w, 9, bad, 1, on_event, &r), -EINVAL);
        stop_worker(&r);

        /* A reader that can only verify: 1:1 against one template, never 1:N. */
        start_worker(&r, f, " verify-only");
        assert_int_equal(match(&r, 10, g, 1, "SCAN OP0001"), 0);
        assert_true(r.last.matched);
        assert_string_equal(r.last.operator_id, "OP0001");
        assert_int_equal(match(&r, 11, g + 1, 1, "SCAN OP0001"), 0);
        assert_false(r.last.matched);
        assert_int_equal(match(&r, 12, g, 2, NULL), -EOPNOTSUPP);
        stop_worker(&r);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
        uint64_t *fired = userdata;

        *fired = now_mono_usec();
        return 0;
}

/* A pending scan never blocks the loop, and a cancel ends it at once. */
static void test_cancel_and_loop_stays_free(void **state)
{
        struct fixture *f = *state;
        const uint8_t t[] = "vein-test:1:OP0001";
        struct vein_template_ref g[] = {{"OP0001", t, sizeof(t) - 1}};
        uint64_t fired = 0, armed, t0;
        struct run r;

        start_worker(&r, f, "");
        r.done = false;
        assert_int_equal(vein_worker_match(r.w, 1, g, 1, on_event, &r), 0);
        /* The loop keeps its timers while the scan waits for a hand. */
        armed = now_mono_usec();
        assert_int_equal(sd_event_add_time_relative(r.e, NULL, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 0,
                                                    on_tick, &fired),
                         0);
        assert_false(run_until_done(&r, 300 * USEC_PER_MSEC));
        assert_true(fired > 0);
        assert_true(fired - armed < 250 * USEC_PER_MSEC);
        assert_true(vein_worker_running(r.w, 1));

        t0 = now_mono_usec();
        vein_worker_cancel(r.w, 1);
        vein_worker_cancel(r.w, 999); /* unknown ids are ignored */
        assert_true(run_until_done(&r, 2 * USEC_PER_SEC));
        assert_int_equal(r.last.result, -ECANCELED);
        assert_true(now_mono_usec() - t0 < USEC_PER_SEC);
        assert_false(vein_worker_running(r.w, 1));

        /* The next job is not hurt by the cancel of the last one. */
        assert_int_equal(match(&r, 2, g, 1, "SCAN OP0001"), 0);
        assert_true(r.last.matched);

        /* The reader goes away in the middle of a scan; the next job opens it again. */
        assert_int_equal(match(&r, 3, g, 1, "GONE"), -ENODEV);
        assert_int_equal(match(&r, 4, g, 1, "SCAN OP0001"), 0);
        assert_true(r.last.matched);

        /* Stopping the daemon with a scan pending: cancelled, joined, quickly. */
        r.done = false;
        assert_int_equal(vein_worker_match(r.w, 5, g, 1, on_event, &r), 0);
        (void)sd_event_run(r.e, 50 * USEC_PER_MSEC);
        t0 = now_mono_usec();
        stop_worker(&r);
        assert_true(now_mono_usec() - t0 < USEC_PER_SEC);
        assert_false(r.done); /* pending callbacks are dropped */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_loads_a_root_owned_plugin, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refuses_hostile_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_enroll_identify_verify, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_and_loop_stays_free, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
