/* mklog: writes a signed operation log (DESIGN §6) for collector tests, with keys derived from a seed. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/oplog-record.h"
#include "mamori/parse-util.h"

/* Records a run writes at most (1 ms apart: some 11 days of a terminal's log). */
#define COUNT_MAX UINT64_C(1000000000)

/* A bad option: what was wrong and what to give instead, on stderr, and exit status 2 (usage). */
_noreturn_ static void usage_error(const char *option, const char *value, const char *want)
{
        fprintf(stderr, "mklog: --%s \"%s\": give %s\n", option, value, want);
        exit(2);
}

/* The number an option gives: decimal digits only (no sign, no junk after them), at most max. */
static uint64_t number_option(const char *option, const char *value, uint64_t max)
{
        char want[80];
        uint64_t v;

        if (parse_uint64(value, max, &v) < 0) {
                snprintf(want, sizeof(want), "a whole number from 0 to %" PRIu64, max);
                usage_error(option, value, want);
        }
        return v;
}

/*
 * Keys: identity = SHA-256("mklog identity " + seed), epoch e = SHA-256("mklog epoch <e> " + seed), so
 * two runs with the same seed and log id write the same lines, and --variant V changes the "data"
 * of every record from --fork-at on (a fork).
 */
static int derive(const char *label, const char *seed, EVP_PKEY **ret)
{
        uint8_t k[ED25519_KEY_SIZE];
        char *s;
        int r;

        if (asprintf(&s, "%s %s", label, seed) < 0)
                return -ENOMEM;
        r = sha256(s, strlen(s), k);
        free(s);
        if (r >= 0)
                r = ed25519_from_seed(k, ret);
        explicit_bzero(k, sizeof(k));
        return r;
}

static int set_key(Record *rec, EVP_PKEY *key)
{
        uint8_t raw[ED25519_KEY_SIZE];
        char *b64 = NULL;
        int r = ed25519_public_to_raw(key, raw);
        if (r >= 0)
                r = base64_encode(raw, sizeof(raw), &b64);
        if (r >= 0)
                r = json_object_set_string(rec->data, "key", b64);
        free(b64);
        return r;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"seed", required_argument, NULL, 's'},    {"log", required_argument, NULL, 'l'},
                {"term", required_argument, NULL, 't'},    {"count", required_argument, NULL, 'n'},
                {"rotate", required_argument, NULL, 'r'},  {"identity-pub", required_argument, NULL, 'p'},
                {"variant", required_argument, NULL, 'v'}, {"fork-at", required_argument, NULL, 'f'},
                {"start", required_argument, NULL, 'S'},   {},
        };
        const char *seed = "test", *log = "0123456789abcdef0123456789abcdef", *term = "T-0001", *pub = NULL;
        const char *variant = NULL;
        uint64_t count = 10, rotate = 0, fork_at = 1;
        /* Realtime of the record before the first (µs); records follow 1 ms apart. A fixed default keeps
         * the lines the same from run to run; the benches pass a recent time, as a terminal's would be. */
        int64_t start = 1763880000000000;
        EVP_PKEY *identity = NULL, *key = NULL;
        char prev[SHA256_HEX_MAX] = RECORD_PREV_FIRST;
        unsigned epoch = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        seed = optarg;
                        break;
                case 'l':
                        if (!hex_lower_valid(optarg, ID128_STRING_MAX - 1))
                                usage_error("log", optarg, "a log id: 32 lowercase hex digits");
                        log = optarg;
                        break;
                case 't':
                        term = optarg;
                        break;
                case 'n':
                        count = number_option("count", optarg, COUNT_MAX);
                        break;
                case 'r':
                        rotate = number_option("rotate", optarg, UINT64_MAX);
                        break;
                case 'p':
                        pub = optarg;
                        break;
                case 'v':
                        variant = optarg;
                        break;
                case 'f':
                        fork_at = number_option("fork-at", optarg, UINT64_MAX);
                        break;
                case 'S':
                        start = (int64_t)number_option("start", optarg, INT64_MAX);
                        break;
                default:
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "mklog: \"%s\": give options only (--count N …), no other arguments\n",
                        argv[optind]);
                return 2;
        }
        /* Record seq has the time start + seq ms, which must stay an int64. */
        if (count > (uint64_t)(INT64_MAX - start) / 1000) {
                fprintf(stderr,
                        "mklog: --start %" PRIi64 " with --count %" PRIu64
                        ": the last record's time would overflow; give a smaller --start or --count\n",
                        start, count);
                return 2;
        }
        if (derive("mklog identity", seed, &identity) < 0)
                return 1;
        if (pub) {
                FILE *f = fopen(pub, "we");
                if (!f || PEM_write_PUBKEY(f, identity) != 1 || fclose(f) != 0)
                        return 1;
        }

        for (uint64_t seq = 1; seq <= count; seq++) {
                Record *rec = NULL;
                EVP_PKEY *next = NULL, *signer;
                char *line = NULL;
                size_t len;

                if (record_new(&rec) < 0)
                        return 1;
                strcpy(rec->log, log);
                strcpy(rec->boot, "c0ffee0012345678c0ffee0012345678");
                rec->seq = seq;
                rec->ts = start + (int64_t)seq * 1000;
                rec->mono = 5000000 + (int64_t)seq * 1000;
                rec->term = strdup(term);
                memcpy(rec->prev, prev, sizeof(prev));
                if (seq == 1) {
                        char label[32];
                        snprintf(label, sizeof(label), "mklog epoch %u", epoch);
                        rec->ev = strdup("log.open");
                        if (derive(label, seed, &key) < 0 || set_key(rec, key) < 0)
                                return 1;
                        signer = identity;
                } else if (rotate && seq % rotate == 0) {
                        char label[32];
                        snprintf(label, sizeof(label), "mklog epoch %u", epoch + 1);
                        rec->ev = strdup("key.rotate");
                        if (derive(label, seed, &next) < 0 || set_key(rec, next) < 0)
                                return 1;
                        signer = key;
                } else {
                        rec->ev = strdup(seq % 2 ? "card.inserted" : "card.removed");
                        rec->card =
                                strdup("3f6c0b0e2f4d5a69788796a5b4c3d2e1f00112233445566778899aabbccddeef");
                        if (json_object_set_integer(rec->data, "n", (int64_t)seq) < 0)
                                return 1;
                        signer = key;
                }
                if (variant && seq >= fork_at && json_object_set_string(rec->data, "variant", variant) < 0)
                        return 1;
                r = record_sign(rec, signer, &line, &len);
                if (r < 0) {
                        fprintf(stderr, "mklog: sign: %s\n", strerror(-r));
                        return 1;
                }
                if (record_line_hash(line, len, prev) < 0)
                        return 1;
                fwrite(line, 1, len, stdout);
                putchar('\n');
                free(line);
                record_free(rec);
                if (next) {
                        EVP_PKEY_free(key);
                        key = next;
                        epoch++;
                }
        }
        EVP_PKEY_free(key);
        EVP_PKEY_free(identity);
        return fflush(stdout) == 0 ? 0 : 1;
}
