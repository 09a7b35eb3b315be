/* Replays every file of a fuzz corpus through LLVMFuzzerTestOneInput, for builds without libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (4u * 1024 * 1024)

static int replay_file(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        uint8_t *buf = malloc(REPLAY_MAX_INPUT);
        if (!buf) {
                close(fd);
                return -1;
        }
        size_t n = 0;
        for (;;) {
                ssize_t r = read(fd, buf + n, REPLAY_MAX_INPUT - n);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", path, strerror(errno));
                        free(buf);
                        close(fd);
                        return -1;
                }
                if (r == 0 || n + (size_t)r == REPLAY_MAX_INPUT) {
                        n += (size_t)r;
                        break;
                }
                n += (size_t)r;
        }
        close(fd);
        /* Copy into an exact-size buffer so ASan sees reads past the end. */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) {
                free(buf);
                return -1;
        }
        memcpy(exact, buf, n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        return 0;
}

int main(int argc, char **argv)
{
        unsigned count = 0, failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed += replay_file(argv[i]) < 0;
                        count++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                if (!d)
                        return 1;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        char path[4096];
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        failed += replay_file(path) < 0;
                        count++;
                }
                closedir(d);
        }
        printf("replayed %u inputs, %u unreadable\n", count, failed);
        if (count == 0) {
                fprintf(stderr, "empty corpus: nothing was exercised\n");
                return 1;
        }
        return failed ? 1 : 0;
}
