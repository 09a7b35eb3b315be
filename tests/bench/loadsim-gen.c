/* loadsim-gen: terminals for the load simulation — certificates from the centre's terminal CA,
 * registered as `mamori-admin terminal add` registers them, and one signed working day of log each. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "admin-pki.h"
#include "mamori/crypto-util.h"
#include "mamori/encoding.h"
#include "mamori/fileio.h"
#include "mamori/oplog-record.h"
#include "store.h"

/*
 * What `terminal add --request` does for a terminal, minus the request round trip: the same
 * certificate (pki_issue with the terminal CA, CN = terminal id, clientAuth, 1825 days — keep in
 * step with CLIENT_DAYS in collector/admin/admin-terminal.c) for a fresh P-256 key, and the same
 * store_terminal_enrol() row (office, identity PEM, SHA-256 of the DER), so the collector accepts it
 * as a registered terminal with one pinned certificate. Registered in transactions of REGISTER_TX.
 *
 * The day: boot ~08:00 (log.open, agent.start, policy.load, reader.added), operator sessions from
 * 08:30 to 17:15 as mamorid records them (card.inserted, rarely auth.fail, auth.ok, session.start,
 * unlock, the resident lookups as app.op, then card pulled or idle: session.end, lock, sometimes
 * card.left), a policy.load at noon, key.rotate every --rotate records, agent.stop ~17:30. The number
 * of app.op records is chosen so that the day has about --records records in all.
 */

#define CLIENT_DAYS 1825
#define REGISTER_TX 500
#define SEC         INT64_C(1000000)
#define MIN         (60 * SEC)
#define MAX_EVENTS  200000

typedef struct Rng {
        uint64_t s;
} Rng;

static uint64_t rng_next(Rng *r)
{
        /* splitmix64 */
        uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static int64_t rng_range(Rng *r, int64_t lo, int64_t hi) /* [lo, hi] */
{
        return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static unsigned rng_pct(Rng *r)
{
        return (unsigned)(rng_next(r) % 100);
}

/* One planned event; op/card index into the terminal's operators (-1 none). */
typedef struct Event {
        int64_t ts;
        const char *ev;
        int op;
        const char *k1, *v1, *k2, *v2, *k3, *v3; /* v2 NULL: target */
        char target[16];
} Event;

typedef struct Day {
        Event *ev;
        size_t n;
} Day;

static Event *add(Day *d, int64_t ts, const char *ev, int op)
{
        if (d->n >= MAX_EVENTS)
                return NULL;
        Event *e = &d->ev[d->n++];
        *e = (Event){.ts = ts, .ev = ev, .op = op};
        return e;
}

static int cmp_event(const void *a, const void *b)
{
        const Event *x = a, *y = b;
        return x->ts < y->ts ? -1 : x->ts > y->ts;
}

typedef struct Session {
        int64_t start, end;
        int op;
        bool idle_end, card_left, pin_fail;
} Session;

/* Plans the day into d (unsorted for app.op); returns the number of sessions' worth of minutes. */
static void plan_day(Rng *rng, int64_t day0, unsigned target, Day *d)
{
        static const char *const actions[] = {"lookup", "lookup", "lookup", "lookup", "lookup",
                                              "lookup", "lookup", "lookup", "print",  "update"};
        Session sess[64];
        size_t ns = 0;
        int64_t t = day0 + 30 * MIN + rng_range(rng, 0, 5 * MIN), close = day0 + 9 * 60 * MIN + 15 * MIN;
        int64_t boot = day0 + rng_range(rng, 0, 10 * MIN), busy = 0;
        size_t fixed;

        /* log.open is added by the writer as seq 1 at boot. */
        add(d, boot + 1 * SEC, "agent.start", -1)->k1 = "version";
        d->ev[d->n - 1].v1 = "0.1.0";
        Event *e = add(d, boot + 2 * SEC, "policy.load", -1);
        e->k1 = "serial", e->v1 = "1";
        e = add(d, boot + 3 * SEC, "reader.added", -1);
        e->k1 = "reader", e->v1 = "Virtual PCD 00 00";
        e = add(d, day0 + 4 * 60 * MIN + rng_range(rng, 0, 10 * MIN), "policy.load", -1);
        e->k1 = "serial", e->v1 = "2";

        while (t < close - 10 * MIN && ns < sizeof(sess) / sizeof(sess[0])) {
                Session *s = &sess[ns++];
                s->start = t;
                s->end = t + rng_range(rng, 15 * MIN, 100 * MIN);
                if (s->end > close)
                        s->end = close;
                s->op = (int)rng_range(rng, 0, 3);
                s->idle_end = rng_pct(rng) < 25;
                s->card_left = s->idle_end && rng_pct(rng) < 20;
                s->pin_fail = rng_pct(rng) < 3;
                busy += s->end - s->start;
                t = s->end + rng_range(rng, 1 * MIN, 12 * MIN);
        }
        for (size_t i = 0; i < ns; i++) {
                Session *s = &sess[i];
                int64_t a = s->start - 10 * SEC;
                e = add(d, a, "card.inserted", -1);
                e->op = -2 - s->op; /* card only */
                e->k1 = "reader", e->v1 = "Virtual PCD 00 00";
                if (s->pin_fail) {
                        e = add(d, a + 3 * SEC, "auth.fail", -2 - s->op);
                        e->k1 = "method", e->v1 = "card+pin", e->k2 = "reason", e->v2 = "pin-wrong";
                        e->k3 = "tries", e->v3 = "2";
                }
                e = add(d, s->start - 2 * SEC, "auth.ok", s->op);
                e->k1 = "method", e->v1 = "card+pin", e->k2 = "exchanges", e->v2 = "3";
                e->k3 = "elapsed_us", e->v3 = "7000";
                e = add(d, s->start, "session.start", s->op);
                e->k1 = "method", e->v1 = "card+pin";
                add(d, s->start + 20000, "unlock", s->op);
                const char *reason = s->idle_end ? "idle" : "card-removed";
                if (!s->idle_end) {
                        e = add(d, s->end, "card.removed", -2 - s->op);
                        e->k1 = "reader", e->v1 = "Virtual PCD 00 00";
                }
                e = add(d, s->end + 500, "session.end", s->op);
                e->k1 = "reason", e->v1 = reason;
                e = add(d, s->end + 2000, "lock", -1);
                e->k1 = "method", e->v1 = "LockSession", e->k2 = "reason", e->v2 = reason;
                e->k3 = "latency_us", e->v3 = "1650";
                if (s->card_left) {
                        e = add(d, s->end + 60 * SEC, "card.left", s->op);
                        e->k1 = "reason", e->v1 = "after-lock";
                }
                if (s->idle_end) {
                        e = add(d, s->end + rng_range(rng, 90 * SEC, 5 * MIN), "card.removed", -2 - s->op);
                        e->k1 = "reader", e->v1 = "Virtual PCD 00 00";
                }
        }
        add(d, close + rng_range(rng, 5 * MIN, 15 * MIN), "agent.stop", -1)->k1 = "reason";
        d->ev[d->n - 1].v1 = "shutdown";

        /* The resident lookups fill the rest, spread over the sessions' time. */
        fixed = d->n + 1; /* + log.open */
        for (unsigned k = target > fixed ? target - (unsigned)fixed : 0; k > 0 && busy > 0; k--) {
                int64_t at = rng_range(rng, 0, busy - 1), len;
                size_t i = 0;
                while (at >= (len = sess[i].end - sess[i].start))
                        at -= len, i++;
                /* inside the session, a second after its start and before its end */
                e = add(d,
                        sess[i].start + SEC + (int64_t)((double)at * (double)(len - 2 * SEC) / (double)len),
                        "app.op", sess[i].op);
                if (!e)
                        break;
                e->k1 = "action", e->v1 = actions[rng_next(rng) % 10];
                e->k2 = "target";
                snprintf(e->target, sizeof(e->target), "R%06u", (unsigned)(rng_next(rng) % 1000000));
        }
}

static int derive(const char *label, const char *id, EVP_PKEY **ret)
{
        _cleanup_free_ char *s = NULL;
        uint8_t k[ED25519_KEY_SIZE];
        int r;

        if (asprintf(&s, "loadsim %s %s", label, id) < 0)
                return -ENOMEM;
        r = sha256(s, strlen(s), k);
        if (r >= 0)
                r = ed25519_from_seed(k, ret);
        explicit_bzero(k, sizeof(k));
        return r;
}

static int set_key(Record *rec, EVP_PKEY *key)
{
        uint8_t raw[ED25519_KEY_SIZE];
        _cleanup_free_ char *b64 = NULL;
        int r = ed25519_public_to_raw(key, raw);
        if (r >= 0)
                r = base64_encode(raw, sizeof(raw), &b64);
        if (r >= 0)
                r = json_object_set_string(rec->data, "key", b64);
        return r;
}

/* Writes the day's records of terminal id to f, signed and chained. */
static int write_log(FILE *f, const char *id, const char *log, EVP_PKEY *identity, Day *d, unsigned rotate,
                     char ops[4][16], char cards[4][65])
{
        EVP_PKEY *key = NULL;
        char prev[SHA256_HEX_MAX] = RECORD_PREV_FIRST;
        unsigned epoch = 0;
        int r = 0;

        qsort(d->ev, d->n, sizeof(Event), cmp_event);
        for (size_t i = 0, seq = 1; i <= d->n && r >= 0; seq++) {
                _cleanup_record_ Record *rec = NULL;
                _cleanup_free_ char *line = NULL;
                EVP_PKEY *next = NULL, *signer = key;
                int64_t ts = i < d->n ? d->ev[i].ts : d->ev[d->n - 1].ts + 1;
                char label[32];
                size_t len;

                if ((r = record_new(&rec)) < 0)
                        break;
                snprintf(rec->log, sizeof(rec->log), "%s", log);
                memcpy(rec->boot, log, 32); /* one boot per day: any 32 hex will do */
                rec->boot[32] = 0;
                rec->seq = seq;
                memcpy(rec->prev, prev, sizeof(prev));
                rec->term = strdup(id);
                if (seq == 1) {
                        ts = d->ev[0].ts - SEC;
                        snprintf(label, sizeof(label), "epoch %u", epoch);
                        rec->ev = strdup("log.open");
                        if ((r = derive(label, id, &key)) < 0 || (r = set_key(rec, key)) < 0)
                                break;
                        signer = identity;
                } else if (rotate && seq % rotate == 0) {
                        snprintf(label, sizeof(label), "epoch %u", epoch + 1);
                        rec->ev = strdup("key.rotate");
                        if ((r = derive(label, id, &next)) < 0 || (r = set_key(rec, next)) < 0)
                                break;
                } else {
                        if (i == d->n)
                                break;
                        const Event *e = &d->ev[i++];
                        rec->ev = strdup(e->ev);
                        if (e->op >= 0) {
                                rec->op = strdup(ops[e->op]);
                                rec->card = strdup(cards[e->op]);
                        } else if (e->op <= -2)
                                rec->card = strdup(cards[-2 - e->op]);
                        if (e->k1 && (r = json_object_set_string(rec->data, e->k1, e->v1)) < 0)
                                break;
                        if (e->k2 && (r = json_object_set_string(rec->data, e->k2, e->v2 ?: e->target)) < 0)
                                break;
                        if (e->k3 && (r = json_object_set_string(rec->data, e->k3, e->v3)) < 0)
                                break;
                }
                rec->ts = ts;
                rec->mono = ts - d->ev[0].ts + 20 * SEC;
                if (!rec->term || !rec->ev) {
                        r = -ENOMEM;
                        break;
                }
                r = record_sign(rec, signer, &line, &len);
                if (r >= 0)
                        r = record_line_hash(line, len, prev);
                if (r >= 0 && (fwrite(line, 1, len, f) != len || putc('\n', f) == EOF))
                        r = -EIO;
                if (next) {
                        EVP_PKEY_free(key);
                        key = next;
                        epoch++;
                }
        }
        EVP_PKEY_free(key);
        return r;
}

static int pubkey_pem(EVP_PKEY *key, char **ret)
{
        BIO *b = BIO_new(BIO_s_mem());
        char *p;
        long n;

        if (!b)
                return -ENOMEM;
        if (PEM_write_bio_PUBKEY(b, key) != 1) {
                BIO_free(b);
                return -EIO;
        }
        n = BIO_get_mem_data(b, &p);
        *ret = strndup(p, (size_t)n);
        BIO_free(b);
        return *ret ? 0 : -ENOMEM;
}

/* client.pem of terminal id: its certificate, then its key (mode 0600). */
static int write_client(const char *path, X509 *cert, EVP_PKEY *key)
{
        FILE *f = fopen(path, "we");
        int ok;

        if (!f)
                return -errno;
        (void)fchmod(fileno(f), 0600);
        ok = PEM_write_X509(f, cert) == 1 && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
        if (fclose(f) != 0)
                ok = 0;
        return ok ? 0 : -EIO;
}

static int parse_u(const char *s, unsigned long long max, unsigned long long *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"ca-cert", required_argument, NULL, 'c'},
                {"ca-key", required_argument, NULL, 'k'},
                {"store", required_argument, NULL, 's'},
                {"out", required_argument, NULL, 'o'},
                {"first", required_argument, NULL, 'f'},
                {"count", required_argument, NULL, 'n'},
                {"records", required_argument, NULL, 'r'},
                {"day-start", required_argument, NULL, 'd'},
                {"rotate", required_argument, NULL, 'R'},
                {"office-size", required_argument, NULL, 'O'},
                {},
        };
        const char *ca_cert = NULL, *ca_key = NULL, *url = NULL, *out = NULL;
        unsigned long long first = 1, count = 1, records = 100, day0 = 1763938800000000ULL, rotate = 1000,
                           office_size = 8;
        _cleanup_pkey_ EVP_PKEY *tca_key = NULL;
        _cleanup_x509_ X509 *tca = NULL;
        Store *s = NULL;
        Day d = {};
        int c, r = 0, lock_fd = -1;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                unsigned long long *v = NULL, max = 100000000ULL;
                switch (c) {
                case 'c':
                        ca_cert = optarg;
                        break;
                case 'k':
                        ca_key = optarg;
                        break;
                case 's':
                        url = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'f':
                        v = &first;
                        break;
                case 'n':
                        v = &count;
                        break;
                case 'r':
                        v = &records, max = MAX_EVENTS - 1000;
                        break;
                case 'd':
                        v = &day0, max = 4000000000000000ULL;
                        break;
                case 'R':
                        v = &rotate;
                        break;
                case 'O':
                        v = &office_size, max = 1000000;
                        break;
                default:
                        return 2;
                }
                if (v && parse_u(optarg, max, v) < 0) {
                        fprintf(stderr, "loadsim-gen: bad number '%s'\n", optarg);
                        return 2;
                }
        }
        if (optind != argc || !ca_cert || !ca_key || !out || office_size == 0 || count == 0) {
                fprintf(stderr, "usage: loadsim-gen --ca-cert PEM --ca-key PEM --out DIR [--store URL] "
                                "[--first K] [--count N] [--records R] [--day-start USEC] [--rotate N] "
                                "[--office-size N]\n");
                return 2;
        }
        if ((r = pki_load_cert(ca_cert, &tca)) < 0 || (r = pem_load_private_key(ca_key, &tca_key)) < 0) {
                fprintf(stderr, "loadsim-gen: cannot load the terminal CA %s / %s: %s\n", ca_cert, ca_key,
                        strerror(-r));
                return 1;
        }
        if (url) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/.register.lock", out) < 0)
                        return 1;
                lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                if (lock_fd < 0) {
                        fprintf(stderr, "loadsim-gen: %s: %m\n", p);
                        return 1;
                }
        }
        if (url && (r = store_open(url, &s)) < 0) {
                fprintf(stderr, "loadsim-gen: cannot open the store: %s\n", strerror(-r));
                return 1;
        }
        d.ev = calloc(MAX_EVENTS, sizeof(Event));
        if (!d.ev)
                return 1;
        for (unsigned long long t = first; t < first + count && r >= 0; t++) {
                _cleanup_pkey_ EVP_PKEY *identity = NULL, *client = NULL;
                _cleanup_x509_ X509 *cert = NULL;
                _cleanup_free_ char *idpem = NULL, *path = NULL;
                char id[32], office[32], log[ID128_STRING_MAX], sha[SHA256_HEX_MAX], ops[4][16],
                        cards[4][65];
                uint8_t h[SHA256_SIZE];
                Rng rng = {.s = t * UINT64_C(0x2545f4914f6cdd1d) + 1};
                FILE *f;

                snprintf(id, sizeof(id), "T-%05llu", t);
                snprintf(office, sizeof(office), "office-%04llu", (t - 1) / office_size + 1);
                for (int i = 0; i < 4; i++) {
                        char buf[96];
                        snprintf(ops[i], sizeof(ops[i]), "OP%06llu",
                                 ((t - 1) / office_size) * 16 + rng_next(&rng) % 16);
                        snprintf(buf, sizeof(buf), "loadsim card %s", ops[i]);
                        if ((r = sha256_hex(buf, strlen(buf), cards[i])) < 0)
                                break;
                }
                snprintf(log, sizeof(log), "%032llx", t);
                if ((r = sha256(id, strlen(id), h)) < 0)
                        break;
                for (int i = 0; i < 16; i++) /* a log id that is not just a counter */
                        snprintf(log + 2 * i, 3, "%02x", h[i]);

                if ((r = derive("identity", id, &identity)) < 0 || (r = pubkey_pem(identity, &idpem)) < 0 ||
                    (r = pki_ec_key(&client)) < 0 ||
                    (r = pki_issue(tca, tca_key, client, id, PKI_CLIENT, NULL, CLIENT_DAYS, &cert)) < 0 ||
                    (r = pki_cert_sha256_hex(cert, sha)) < 0)
                        break;
                if (asprintf(&path, "%s/%s.pem", out, id) < 0 || (r = write_client(path, cert, client)) < 0)
                        break;
                if (s) {
                        /* The register's history is one hash chain: generators take turns. */
                        if ((t - first) % REGISTER_TX == 0 &&
                            ((r = flock(lock_fd, LOCK_EX) < 0 ? -errno : 0) < 0 || (r = store_begin(s)) < 0))
                                break;
                        r = store_terminal_enrol(s, 1763800000000000, id, office, idpem, sha);
                        if (r < 0) {
                                fprintf(stderr, "loadsim-gen: cannot register %s: %s\n", id, strerror(-r));
                                store_rollback(s);
                                break;
                        }
                        if ((t - first) % REGISTER_TX == REGISTER_TX - 1 || t + 1 == first + count) {
                                r = store_commit(s);
                                (void)flock(lock_fd, LOCK_UN);
                                if (r < 0)
                                        break;
                        }
                }
                free(path);
                if (asprintf(&path, "%s/%s.log", out, id) < 0)
                        return 1;
                d.n = 0;
                plan_day(&rng, (int64_t)day0, (unsigned)records, &d);
                f = fopen(path, "we");
                if (!f) {
                        r = -errno;
                        break;
                }
                r = write_log(f, id, log, identity, &d, (unsigned)rotate, ops, cards);
                if (fclose(f) != 0 && r >= 0)
                        r = -EIO;
        }
        free(d.ev);
        store_close(s);
        if (r < 0) {
                fprintf(stderr, "loadsim-gen: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
