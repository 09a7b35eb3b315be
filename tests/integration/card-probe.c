/* Test helper: drives the card layer (include/mamori/card.h) over real PC/SC and prints results as
 * key=value lines, for tests/integration/test_card_pcsc.py. Not installed. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mamori/card.h"
#include "mamori/macro.h"

static SCARDCONTEXT ctx;

static int first_reader(char *buf, size_t cap)
{
        DWORD n = (DWORD)cap;
        LONG rv = SCardListReaders(ctx, NULL, buf, &n);
        if (rv != SCARD_S_SUCCESS)
                return card_pcsc_error_to_errno(rv);
        return 0;
}

static int load_cert(const char *path, uint8_t **ret, size_t *ret_len)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        if (!x)
                return -EBADMSG;
        uint8_t *tmp = NULL;
        int l = i2d_X509(x, &tmp);
        X509_free(x);
        if (l <= 0)
                return -EBADMSG;
        uint8_t *der = malloc((size_t)l);
        if (!der) {
                OPENSSL_free(tmp);
                return -ENOMEM;
        }
        memcpy(der, tmp, (size_t)l);
        OPENSSL_free(tmp);
        *ret = der;
        *ret_len = (size_t)l;
        return 0;
}

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t t_start;

static int finish(const char *what, int r, Card *c)
{
        printf("result=%s\n", card_strerror(r));
        if (t_start)
                printf("elapsed_us=%llu\n", (unsigned long long)(now_usec() - t_start));
        if (c) {
                printf("exchanges=%u\n", card_exchanges(c));
                if (card_tries_left(c) >= 0)
                        printf("tries=%d\n", card_tries_left(c));
        }
        if (r < 0)
                fprintf(stderr, "card-probe %s: %s (%d)\n", what, card_strerror(r), r);
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"reader", required_argument, NULL, 'r'},  {"pin", required_argument, NULL, 'p'},
                {"new-pin", required_argument, NULL, 'n'}, {"cert", required_argument, NULL, 'c'},
                {"read-cert", no_argument, NULL, 'R'},     {}};
        const char *reader = NULL, *pin = NULL, *new_pin = NULL, *cert_path = NULL;
        bool read_cert = false;
        char readers[1024];
        int o, r;

        while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (o) {
                case 'r':
                        reader = optarg;
                        break;
                case 'p':
                        pin = optarg;
                        break;
                case 'n':
                        new_pin = optarg;
                        break;
                case 'c':
                        cert_path = optarg;
                        break;
                case 'R':
                        read_cert = true;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc) {
                fprintf(stderr,
                        "usage: card-probe [--reader R] id|tries|login|change [--pin P] [--new-pin N] "
                        "[--cert CERT.pem | --read-cert]\n");
                return 2;
        }
        const char *verb = argv[optind];

        LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
        if (rv != SCARD_S_SUCCESS)
                return finish("context", card_pcsc_error_to_errno(rv), NULL);
        if (!reader) {
                r = first_reader(readers, sizeof(readers));
                if (r < 0) {
                        SCardReleaseContext(ctx);
                        return finish("list-readers", r, NULL);
                }
                reader = readers;
        }

        if (streq(verb, "id")) {
                char id[CARD_ID_LEN + 1];
                uint8_t *der = NULL;
                size_t der_len = 0;
                r = card_pcsc_read_card_id(ctx, reader, id, &der, &der_len);
                if (r >= 0)
                        printf("id=%s\nder_len=%zu\n", id, der_len);
                free(der);
                SCardReleaseContext(ctx);
                return finish("id", r, NULL);
        }

        CardPcsc *p = NULL;
        Card *c = NULL;
        uint8_t *der = NULL;
        size_t der_len = 0;
        unsigned tries = 0;
        const char *step = verb;

        r = card_pcsc_connect(ctx, reader, &p);
        if (r < 0)
                goto out;
        r = card_new(card_pcsc_transport(p), NULL, &c);
        if (r < 0)
                goto out;
        r = card_pcsc_begin(p);
        if (r < 0)
                goto out;

        step = "select";
        t_start = now_usec(); /* connect excluded: the agent keeps the card connected */
        r = card_select(c);
        if (r < 0)
                goto out;
        if (streq(verb, "tries")) {
                step = "tries";
                r = card_pin_tries(c, &tries);
                if (r == 1)
                        printf("verified=yes\n");
                else if (r == 0)
                        printf("verified=no\npin_tries=%u\n", tries);
        } else if (streq(verb, "change")) {
                step = "change";
                r = card_change_pin(c, pin, new_pin);
        } else if (streq(verb, "login")) {
                if (read_cert) {
                        step = "read-certificate";
                        r = card_read_certificate(c, &der, &der_len);
                } else if (cert_path)
                        r = load_cert(cert_path, &der, &der_len); /* the "cached" certificate */
                else
                        r = -EINVAL;
                if (r < 0)
                        goto out;
                step = "verify-pin";
                r = card_verify_pin(c, pin);
                if (r < 0)
                        goto out;
                step = "authenticate";
                r = card_authenticate(c, der, der_len);
        } else {
                fprintf(stderr, "card-probe: unknown verb %s\n", verb);
                r = -EINVAL;
        }
out:
        if (p)
                (void)card_pcsc_end(p);
        o = finish(step, r < 0 ? r : 0, c);
        free(der);
        card_free(c);
        card_pcsc_free_reset(p);
        SCardReleaseContext(ctx);
        return o;
}
