/* password-failures-bench: what one save of the password failure counts costs mamorid's loop, per sample,
 * beside the same save without the directory's fsync and a bare write+fsync on the same file system. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "mamori/macro.h"
#include "mamori/parse-util.h"
#include "password-failures.h"

static uint64_t now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* write(2) all of size bytes to fd, then fsync it. */
static int write_all_fsync(int fd, const char *text, size_t size)
{
        while (size > 0) {
                ssize_t n = write(fd, text, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                text += n;
                size -= (size_t)n;
        }
        return fsync(fd) < 0 ? -errno : 0;
}

/* The save cut short of its directory fsync (which password_failure_file_save() must never be: a power
 * cut could then bring the old, lower count back), to show what that fsync costs. */
static int save_without_dir_fsync(const char *path, const char *text, size_t size)
{
        char tmp[4096];

        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        int r = write_all_fsync(fd, text, size);
        if (r < 0)
                return r;
        return rename(tmp, path) < 0 ? -errno : 0;
}

/* The floor: the same bytes written over one open file in place, and fsync'd. */
static int bare_fsync(int fd, const char *text, size_t size)
{
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return write_all_fsync(fd, text, size);
}

/* Usage: password-failures-bench PARENT SAMPLES — in a new directory under PARENT (the file system of
 * PasswordDirectory, e.g. /var/tmp; not a tmpfs), prints "bytes=N f_type=0xT" and then one line per
 * sample "save_us=A nodir_us=B fsync_us=C": the real save of a full file (64 operators), the same
 * without the directory fsync, a bare write+fsync. Every save is read back and compared. */
int main(int argc, char **argv)
{
        char dir[4096], path[4200], light[4200], bare[4200];
        struct password_failure_file f = {0}, back;
        _cleanup_free_ char *text = NULL;
        uint64_t samples;
        struct statfs sfs;
        size_t size;
        int r = 0, fd = -1, rc = 1;

        if (argc != 3 || parse_uint64(argv[2], 100000, &samples) < 0 || samples == 0) {
                fprintf(stderr, "usage: password-failures-bench PARENT SAMPLES\n");
                return 2;
        }
        if ((size_t)snprintf(dir, sizeof(dir), "%s/mamori-failures-bench-XXXXXX", argv[1]) >= sizeof(dir) ||
            !mkdtemp(dir)) {
                fprintf(stderr, "password-failures-bench: cannot make a directory under %s: %m\n", argv[1]);
                return 1;
        }
        if (password_failure_file_path(dir, path, sizeof(path)) < 0) {
                fprintf(stderr, "password-failures-bench: %s: path too long\n", dir);
                goto out;
        }
        snprintf(light, sizeof(light), "%s/light", dir);
        snprintf(bare, sizeof(bare), "%s/bare", dir);
        f.n = PASSWORD_FAILURE_ENTRIES_MAX;
        for (size_t i = 0; i < f.n; i++) {
                f.entries[i] = (struct password_failure_entry){.count = 5,
                                                               .last_usec = INT64_C(1764370000000000),
                                                               .next_usec = INT64_C(1764370016000000)};
                snprintf(f.entries[i].operator_id, sizeof(f.entries[i].operator_id), "OP%05zu", i);
        }
        r = password_failure_file_format(&f, &text, &size);
        if (r < 0 || statfs(dir, &sfs) < 0) {
                fprintf(stderr, "password-failures-bench: cannot prepare: %s\n",
                        strerror(r < 0 ? -r : errno));
                goto out;
        }
        fd = open(bare, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                fprintf(stderr, "password-failures-bench: %s: %m\n", bare);
                goto out;
        }
        printf("bytes=%zu f_type=0x%lx dir=%s\n", size, (unsigned long)sfs.f_type, dir);
        for (uint64_t i = 0; i < samples; i++) {
                f.entries[0].count = (uint32_t)(i % PASSWORD_FAILURE_COUNT_MAX) + 1;
                uint64_t t0 = now_us();
                r = password_failure_file_save(path, &f);
                uint64_t t1 = now_us();
                if (r >= 0)
                        r = save_without_dir_fsync(light, text, size);
                uint64_t t2 = now_us();
                if (r >= 0)
                        r = bare_fsync(fd, text, size);
                uint64_t t3 = now_us();
                if (r >= 0)
                        r = password_failure_file_load(path, &back);
                if (r < 0) {
                        fprintf(stderr, "password-failures-bench: sample %" PRIu64 ": %s\n", i,
                                strerror(-r));
                        goto out;
                }
                if (back.n != f.n || back.entries[0].count != f.entries[0].count) {
                        fprintf(stderr,
                                "password-failures-bench: sample %" PRIu64 ": the save read back differs\n",
                                i);
                        goto out;
                }
                printf("save_us=%" PRIu64 " nodir_us=%" PRIu64 " fsync_us=%" PRIu64 "\n", t1 - t0, t2 - t1,
                       t3 - t2);
        }
        rc = 0;
out:
        if (fd >= 0)
                close(fd);
        unlink(path);
        unlink(light);
        unlink(bare);
        rmdir(dir);
        return rc;
}
