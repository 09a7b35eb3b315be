/* Fuzz target: arbitrary bytes as a log segment file, streamed line by line into the chain verifier, once
 * in one pass and once saved and restored before every line: both must end with the same verdict. When
 * the first line is a record after seq 1, the same again for a pruned log through a fixed receipt
 * anchor (the vectors' receipt for seq 2). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mamori/oplog-verify.h"

/* The identity key of tests/vectors (seed = SHA-256("mamori test vector: terminal identity key")),
 * so the committed vector log in the corpus verifies and mutations reach deep into the chain. */
static const uint8_t identity_seed[32] = {
        0xa0, 0xd9, 0x1c, 0xeb, 0x2e, 0xa9, 0x68, 0x67, 0x58, 0x9d, 0x56, 0xea, 0xa4, 0xa8, 0x5f, 0xe1,
        0x08, 0x5d, 0xeb, 0x84, 0x10, 0xa0, 0x8b, 0x11, 0x24, 0xe0, 0x19, 0xc6, 0xf2, 0xb7, 0xb4, 0x82,
};

/* The vectors' receipt for seq 2 (tests/vectors/receipts.jsonl): line hash of record 2, epoch-0 key. */
static const char anchor_log[] = "5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60";
static const char anchor_hash[] = "521827d954d4bc6afd0c3b18d3f42f647d06688aca8c26ea3cfe8ba077f68470";
static const uint8_t anchor_key[32] = {
        0xc1, 0x9c, 0xc0, 0xcb, 0x53, 0x5a, 0xa3, 0xac, 0x47, 0xff, 0xb2, 0xac, 0x8f, 0xe8, 0x55, 0x51,
        0xd2, 0x04, 0x73, 0x82, 0xc1, 0x45, 0xfd, 0x3b, 0x94, 0xd3, 0xd2, 0x83, 0x1f, 0x9c, 0xa7, 0x38,
};

typedef struct Pair {
        LogVerifier *one;     /* one pass */
        LogVerifier *resumed; /* saved, freed and restored before every line while intact */
} Pair;

static int push(const char *line, size_t len, uint64_t offset, void *userdata)
{
        Pair *p = userdata;
        int k, j;

        if (log_verifier_error(p->resumed) == LOG_VERIFY_OK) {
                LogVerifierState st;
                if (log_verifier_save(p->resumed, &st) < 0)
                        abort();
                p->resumed = log_verifier_free(p->resumed);
                if (log_verifier_restore(&st, &p->resumed) < 0)
                        abort(); /* a saved state always restores */
        }
        k = log_verifier_push(p->one, line, len, NULL);
        j = log_verifier_push(p->resumed, line, len, NULL);
        if (k == -ENOMEM || j == -ENOMEM)
                return -ENOMEM;
        if (k != j)
                abort();
        return 0; /* keep feeding: later pushes must keep failing the same way */
}

static void same_verdict(const LogVerifier *a, const LogVerifier *b)
{
        LogVerifierState sa, sb;

        if (log_verifier_save(a, &sa) < 0 || log_verifier_save(b, &sb) < 0)
                abort();
        if (memcmp(&sa, &sb, sizeof(sa)) != 0 || log_verifier_error(a) != log_verifier_error(b) ||
            log_verifier_bad_seq(a) != log_verifier_bad_seq(b) ||
            strcmp(log_verifier_reason(a), log_verifier_reason(b)) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static EVP_PKEY *identity;
        Pair p = {};
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
        if (log_verifier_new(identity, &p.one) == 0 && log_verifier_new(identity, &p.resumed) == 0) {
                if (log_segment_read_fd(fd, push, &p, &tail) == 0)
                        same_verdict(p.one, p.resumed);
                if (log_verifier_last_seq(p.one) > 0 && !*log_verifier_log_id(p.one))
                        abort(); /* a good record always sets the log id */
                if (tail > size)
                        abort();
        }
        p.one = log_verifier_free(p.one);
        p.resumed = log_verifier_free(p.resumed);

        /* A pruned log: anchored at the first record's seq, both ways. */
        {
                const uint8_t *nl = memchr(data, '\n', size);
                Record *first = NULL;
                LogAnchor a = {.seq = 2};

                memcpy(a.log, anchor_log, sizeof(anchor_log));
                memcpy(a.hash, anchor_hash, sizeof(anchor_hash));
                memcpy(a.key, anchor_key, sizeof(anchor_key));
                if (nl && record_parse_line(data, (size_t)(nl - data), &first) == 0 && first->seq >= 2 &&
                    log_verifier_new_anchored(&a, first, &p.one) == 0 &&
                    log_verifier_new_anchored(&a, first, &p.resumed) == 0) {
                        (void)lseek(fd, 0, SEEK_SET);
                        if (log_segment_read_fd(fd, push, &p, &tail) == 0)
                                same_verdict(p.one, p.resumed);
                        /* Past the anchor, only the receipt's hash can have led here. */
                        if (log_verifier_error(p.one) == LOG_VERIFY_OK &&
                            log_verifier_last_seq(p.one) >= 2 && first->seq <= 3 &&
                            log_verifier_epochs(p.one) == 0)
                                abort();
                }
                record_free(first);
        }
        log_verifier_free(p.one);
        log_verifier_free(p.resumed);
        close(fd);
        return 0;
}
