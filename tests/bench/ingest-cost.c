/* ingest-cost: the collector's CPU per record, stage by stage, against one Ed25519 verification. */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "ingest.h"
#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/oplog-record.h"
#include "mamori/oplog-verify.h"
#include "store.h"

/*
 * Usage: ingest-cost [RECORDS] [BATCH] [ROUNDS] [STORE-URL]
 *
 * One thread, CPU time of this thread (a busy machine slows it little). RECORDS (20000) records of one
 * log, as a terminal signs them (log.open by the identity key, then an epoch key, app.op lookups with
 * their data), are timed through each stage the collector runs on a batch, and through ingest_batch()
 * itself into STORE-URL (default: a new SQLite file in /tmp) in batches of BATCH (1000), ROUNDS (5)
 * times, each round a new terminal and log; each figure is the median over the rounds. The baseline,
 * measured in the same run over the same records: ed25519_verify() of each record's signed bytes —
 * the operation `openssl speed ed25519` counts. With MAMORI_BENCH_PG_DATA (the cluster's data directory)
 * the CPU its processes spent during ingest_batch() counts too (ticks of 1/CLK_TCK s). (ingest +
 * postgresql) / verify is the centre's cost per record in verifications: on C cores its ingest can
 * reach at most C × verify/s divided by it.
 */

typedef struct Log {
        char term[16];
        EVP_PKEY *identity, *epoch;
        EVP_PKEY *identity_pub, *epoch_pub; /* public halves, as a verifier holds them */
        char **lines;                       /* each ends with "\n" */
        size_t *lens;
        size_t n;
} Log;

static int64_t cpu_ns(void)
{
        struct timespec t;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *what, int r)
{
        fprintf(stderr, "ingest-cost: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

static void set_key(Record *r, EVP_PKEY *k)
{
        uint8_t raw[ED25519_KEY_SIZE];
        char *b64 = NULL;

        if (ed25519_public_to_raw(k, raw) < 0 || base64_encode(raw, sizeof(raw), &b64) < 0 ||
            json_object_set_string(r->data, "key", b64) < 0)
                die("data.key", EINVAL);
        free(b64);
}

/* Terminal T-<k> and its log <k>: a new one each round, so that every round stores new records. */
static void make_log(size_t n, unsigned k, Log *ret)
{
        /* Times 1 ms apart ending a minute ago, as a terminal's would be: PostgreSQL files them in this
         * month's partition (older ones would go to the default partition, which has an index more). */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t start = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - 60000000 - (int64_t)n * 1000;
        char prev[SHA256_HEX_MAX] = RECORD_PREV_FIRST;
        Log l = {.n = n, .lines = calloc(n, sizeof(char *)), .lens = calloc(n, sizeof(size_t))};

        snprintf(l.term, sizeof(l.term), "T-%04u", k);

        if (!l.lines || !l.lens || ed25519_generate(&l.identity) < 0 || ed25519_generate(&l.epoch) < 0)
                die("keys", ENOMEM);
        for (size_t i = 0; i < n; i++) {
                uint64_t seq = i + 1;
                Record *r = NULL;
                char *line, target[SHA256_HEX_MAX];
                size_t len;

                if (record_new(&r) < 0)
                        die("record", ENOMEM);
                snprintf(r->log, sizeof(r->log), "5eed%028x", k);
                strcpy(r->boot, "b0070000000000000000000000000001");
                r->seq = seq;
                r->ts = start + (int64_t)seq * 1000;
                r->mono = 5000000 + (int64_t)seq * 1000;
                r->term = strdup(l.term);
                memcpy(r->prev, prev, sizeof(prev));
                if (seq == 1) {
                        r->ev = strdup("log.open");
                        set_key(r, l.epoch);
                } else {
                        /* A resident lookup, the commonest record of a working day. */
                        r->ev = strdup("app.op");
                        r->op = strdup("OP-000123");
                        r->card = strdup("3f6c0b0e2f4d5a69788796a5b4c3d2e1f00112233445566778899aabbccddeef");
                        if (sha256_hex(&seq, sizeof(seq), target) < 0 ||
                            json_object_set_string(r->data, "app", "juki-counter") < 0 ||
                            json_object_set_string(r->data, "action", "lookup") < 0 ||
                            json_object_set_string(r->data, "subject", target) < 0)
                                die("data", ENOMEM);
                }
                if (record_sign(r, seq == 1 ? l.identity : l.epoch, &line, &len) < 0 ||
                    record_line_hash(line, len, prev) < 0)
                        die("sign", EINVAL);
                if (asprintf(&l.lines[i], "%s\n", line) < 0)
                        die("line", ENOMEM);
                l.lens[i] = len + 1;
                free(line);
                record_free(r);
        }
        {
                uint8_t raw[ED25519_KEY_SIZE];
                if (ed25519_public_to_raw(l.identity, raw) < 0 ||
                    ed25519_public_from_raw(raw, &l.identity_pub) < 0 ||
                    ed25519_public_to_raw(l.epoch, raw) < 0 ||
                    ed25519_public_from_raw(raw, &l.epoch_pub) < 0)
                        die("public keys", EINVAL);
        }
        *ret = l;
}

static char *pem_of(EVP_PKEY *k)
{
        BIO *b = BIO_new(BIO_s_mem());
        char *p, *out;
        long n;

        if (!b || PEM_write_bio_PUBKEY(b, k) != 1)
                die("pem", EIO);
        n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
        BIO_free(b);
        return out;
}

/* CPU ticks of a PostgreSQL cluster: its postmaster (pid in DATA/postmaster.pid) and every child of it
 * (backends, WAL writer, checkpointer); 0 without MAMORI_BENCH_PG_DATA. */
static int64_t pg_ticks(void)
{
        const char *data = getenv("MAMORI_BENCH_PG_DATA");
        char path[4096], buf[1024];
        long master = 0, total = 0;
        struct dirent *de;
        FILE *f;
        DIR *d;

        if (!data)
                return 0;
        snprintf(path, sizeof(path), "%s/postmaster.pid", data);
        f = fopen(path, "re");
        if (!f || fscanf(f, "%ld", &master) != 1)
                die("postmaster.pid", ENOENT);
        fclose(f);
        d = opendir("/proc");
        if (!d)
                die("/proc", errno);
        while ((de = readdir(d))) {
                long pid = strtol(de->d_name, NULL, 10), ppid;
                unsigned long ut, st;
                char *close_paren;
                size_t n;

                if (pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                f = fopen(path, "re");
                if (!f)
                        continue;
                n = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[n] = '\0';
                close_paren = strrchr(buf, ')');
                /* fields after the name: state ppid ... utime (14th of the line) stime */
                if (!close_paren ||
                    sscanf(close_paren + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid,
                           &ut, &st) != 3)
                        continue;
                if (pid == master || ppid == master)
                        total += (long)(ut + st);
        }
        closedir(d);
        return total;
}

static double elapsed_us(int64_t t0)
{
        return (double)(cpu_ns() - t0) / 1000.0;
}

typedef struct Stages {
        double verify, parse, batch, ingest, pg;
} Stages;

/* Each stage once over all records of l, into the store s. */
static void one_round(const Log *l, size_t batch, Store *s, Stages *ret)
{
        size_t n = l->n;
        Record **recs = calloc(n, sizeof(Record *));
        char **bytes = calloc(n, sizeof(char *));
        size_t *blen = calloc(n, sizeof(size_t));
        LogBatchLine *bl = calloc(n, sizeof(LogBatchLine));
        LogVerifier *v = NULL;
        int64_t t0, pg0;
        int r;

        if (!recs || !bytes || !blen || !bl)
                die("alloc", ENOMEM);
        if (log_verifier_new(l->identity, &v) < 0)
                die("verifier", ENOMEM);
        {
                char *pem = pem_of(l->identity);
                if ((r = store_terminal_add(s, 0, l->term, "chuo", pem)) < 0)
                        die("terminal add", r);
                free(pem);
        }

        /* Batch by batch, every stage in turn, so that each meets the same machine. */
        *ret = (Stages){};
        for (size_t i = 0; i < n; i += batch) {
                size_t k = i + batch < n ? batch : n - i, len = 0;
                IngestAnswer a = {};
                char *body, *p;

                /* Parse: each line to a Record (JSON, field rules, canonical form) and the bytes its
                 * signature covers. */
                t0 = cpu_ns();
                for (size_t j = i; j < i + k; j++)
                        if ((r = record_parse_line_signed(l->lines[j], l->lens[j] - 1, &recs[j], &bytes[j],
                                                          &blen[j])) < 0)
                                die("parse", r);
                ret->parse += elapsed_us(t0);

                /* Baseline: the verification alone, as openssl speed counts it (seq 1: identity key). */
                t0 = cpu_ns();
                for (size_t j = i; j < i + k; j++)
                        if ((r = ed25519_verify(j == 0 ? l->identity_pub : l->epoch_pub, bytes[j], blen[j],
                                                recs[j]->sig)) < 0)
                                die("verify", r);
                ret->verify += elapsed_us(t0);

                /* The verifier's batch path, one thread: chain rules + verification. */
                for (size_t j = i; j < i + k; j++)
                        bl[j] = (LogBatchLine){.record = recs[j],
                                               .line = l->lines[j],
                                               .len = l->lens[j] - 1,
                                               .signed_bytes = bytes[j],
                                               .signed_len = blen[j]};
                t0 = cpu_ns();
                if ((r = log_verifier_push_batch(v, bl + i, k, NULL)) < 0)
                        die("push batch", r);
                ret->batch += elapsed_us(t0);

                /* ingest_batch() into the store: all of the above plus the database. */
                for (size_t j = i; j < i + k; j++)
                        len += l->lens[j];
                body = p = malloc(len);
                if (!body)
                        die("alloc", ENOMEM);
                for (size_t j = i; j < i + k; j++)
                        p = mempcpy(p, l->lines[j], l->lens[j]);
                pg0 = pg_ticks();
                t0 = cpu_ns();
                if ((r = ingest_batch(s, NULL, l->term, body, len, batch, 0, &a)) < 0 || a.status != 200)
                        die("ingest", r < 0 ? r : EBADMSG);
                ret->ingest += elapsed_us(t0);
                ret->pg += (double)(pg_ticks() - pg0) * 1e6 / (double)sysconf(_SC_CLK_TCK);
                ingest_answer_done(&a);
                free(body);
        }
        ret->parse /= (double)n, ret->verify /= (double)n, ret->batch /= (double)n, ret->ingest /= (double)n;
        ret->pg /= (double)n;
        log_verifier_free(v);
        for (size_t i = 0; i < n; i++) {
                record_free(recs[i]);
                free(bytes[i]);
        }
        free(recs), free(bytes), free(blen), free(bl);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median_of(const Stages *st, size_t rounds, size_t field)
{
        double v[64];
        for (size_t i = 0; i < rounds; i++)
                v[i] = ((const double *)&st[i])[field];
        qsort(v, rounds, sizeof(double), cmp_double);
        return v[rounds / 2];
}

int main(int argc, char **argv)
{
        size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
        size_t batch = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
        size_t rounds = argc > 3 ? strtoull(argv[3], NULL, 10) : 5;
        const char *store_url = argc > 4 ? argv[4] : NULL;
        char path[64] = "/tmp/ingest-cost-XXXXXX";
        double verify, parse, chain, ingest, pg, centre;
        Stages st[64];
        Store *s = NULL;
        size_t line_bytes = 0;
        int r;

        if (n < 2 || batch < 1 || rounds < 1 || rounds > 64)
                return 2;
        if (!store_url) {
                int fd = mkstemp(path);
                if (fd < 0)
                        die("mkstemp", errno);
                close(fd);
                unlink(path);
        }
        if ((r = store_open(store_url ?: path, &s)) < 0)
                die("store", r);
        /* Terminal numbers from the process id: a later run into the same store (one that made its schema
         * first, say) meets none of an earlier one's terminals. */
        unsigned base = (unsigned)getpid() * 64;
        for (size_t i = 0; i < rounds; i++) {
                Log l;
                make_log(n, base + (unsigned)i + 1, &l);
                line_bytes = l.lens[n / 2];
                one_round(&l, batch, s, &st[i]);
        }
        store_close(s);
        if (!store_url) {
                char f[80];
                unlink(path);
                snprintf(f, sizeof(f), "%s-wal", path), unlink(f);
                snprintf(f, sizeof(f), "%s-shm", path), unlink(f);
        }
        verify = median_of(st, rounds, offsetof(Stages, verify) / sizeof(double));
        parse = median_of(st, rounds, offsetof(Stages, parse) / sizeof(double));
        chain = median_of(st, rounds, offsetof(Stages, batch) / sizeof(double)) - verify;
        ingest = median_of(st, rounds, offsetof(Stages, ingest) / sizeof(double));
        pg = median_of(st, rounds, offsetof(Stages, pg) / sizeof(double));
        centre = ingest + pg;

        printf("records=%zu batch=%zu rounds=%zu line_bytes=%zu store=%s (medians over the rounds)\n", n,
               batch, rounds, line_bytes, store_url ? "url" : "sqlite-file");
        printf("us_per_record verify=%.1f (baseline, = %.0f verify/s) parse=%.1f chain=%.1f "
               "store_and_rest=%.1f "
               "ingest=%.1f postgresql=%.1f\n",
               verify, 1e6 / verify, parse, chain, ingest - parse - chain - verify, ingest, pg);
        printf("centre_cost_in_verifications=%.2f ceiling_ratio=%.0f%%\n", centre / verify,
               100.0 * verify / centre);
        return 0;
}
