/* Fuzz target: arbitrary bytes as a log segment file, streamed line by line into the chain verifier. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mamori/oplog-verify.h"

/* The identity key of tests/vectors (seed = SHA-256("mamori test vector: terminal identity key")),
 * so the committed vector log in the corpus verifies and mutations reach deep into the chain. */
static const uint8_t identity_seed[32] = {
        0xa0, 0xd9, 0x1c, 0xeb, 0x2e, 0xa9, 0x68, 0x67, 0x58, 0x9d, 0x56, 0xea, 0xa4, 0xa8, 0x5f, 0xe1,
        0x08, 0x5d, 0xeb, 0x84, 0x10, 0xa0, 0x8b, 0x11, 0x24, 0xe0, 0x19, 0xc6, 0xf2, 0xb7, 0xb4, 0x82,
};

static int push(const char *line, size_t len, uint64_t offset, void *userdata)
{
        int k = log_verifier_push(userdata, line, len, NULL);
        return k == -ENOMEM ? k : 0; /* keep feeding: later pushes must keep failing the same way */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static EVP_PKEY *identity;
        LogVerifier *v = NULL;
        uint64_t tail = 0;
        int fd;

        if (size > 4 * RECORD_LINE_MAX)
                return 0;
        if (!identity && ed25519_from_seed(identity_seed, &identity) < 0)
                abort();
        fd = memfd_create("segment", MFD_CLOEXEC);
        if (fd < 0)
                return 0;
        if (size > 0 && write(fd, data, size) != (ssize_t)size) {
                close(fd);
                return 0;
        }
        (void)lseek(fd, 0, SEEK_SET);
        if (log_verifier_new(identity, &v) == 0) {
                (void)log_segment_read_fd(fd, push, v, &tail);
                if (log_verifier_last_seq(v) > 0 && !*log_verifier_log_id(v))
                        abort(); /* a good record always sets the log id */
                if (tail > size)
                        abort();
                log_verifier_free(v);
        }
        close(fd);
        return 0;
}
