/* mamori-vcard: a virtual PIV card that plugs into vsmartcard's vpcd reader driver over TCP (tests, demo).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "mamori/macro.h"
#include "piv-applet.h"

/* vpcd control bytes (a 1-byte message). */
#define VPCD_CTRL_OFF   0
#define VPCD_CTRL_ON    1
#define VPCD_CTRL_RESET 2
#define VPCD_CTRL_ATR   4

#define RECONNECT_MS 50

typedef enum FaultMode {
        FAULT_NONE,
        FAULT_DROP_ON_SIGN,    /* close the connection when GENERAL AUTHENTICATE arrives (pulled mid-sign) */
        FAULT_GARBAGE_ON_SIGN, /* answer GENERAL AUTHENTICATE with random bytes */
        FAULT_TRUNCATED_CERT,  /* certificate object whose TLV lengths claim more than is sent */
        FAULT_OVERLONG_CERT,   /* inner TLV length running past the end of the outer one */
        FAULT_HUGE_CERT,       /* certificate object of 64 KiB through chained 61 xx */
        FAULT_BAD_SW,          /* SELECT answered with an undefined status word (6F 00) */
} FaultMode;

static const char *const fault_names[] = {
        [FAULT_NONE] = "none",
        [FAULT_DROP_ON_SIGN] = "drop-on-sign",
        [FAULT_GARBAGE_ON_SIGN] = "garbage-on-sign",
        [FAULT_TRUNCATED_CERT] = "truncated-cert",
        [FAULT_OVERLONG_CERT] = "overlong-cert",
        [FAULT_HUGE_CERT] = "huge-cert",
        [FAULT_BAD_SW] = "bad-sw",
};

#define HUGE_CERT_BYTES (64u * 1024u)

typedef struct Card {
        PivApplet *applet;
        const char *host;
        const char *port;
        FaultMode fault;
        bool trace;
        bool slow; /* no TCP_QUICKACK: each exchange waits for a delayed ACK, like a slow card */

        int fd;             /* connection to vpcd, -EBADF while pulled or reconnecting */
        bool want_inserted; /* false after SIGUSR1 until SIGUSR2 */
        bool announced;     /* "inserted" printed for this connection */
        unsigned long exchanges;
        size_t huge_left; /* FAULT_HUGE_CERT: bytes still to send with GET RESPONSE */

        uint8_t in[2 + UINT16_MAX];
        size_t in_len;
} Card;

static void say(const char *line)
{
        /* The test bench synchronises on these lines. */
        printf("%s\n", line);
        fflush(stdout);
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
        unsigned long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static void set_quickack(const Card *c, int fd)
{
        int one = 1;

        if (c->slow)
                return;
        /* Linux clears TCP_QUICKACK after it fires: without this vpcd's split writes each wait
         * ~40 ms for our delayed ACK. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static int card_connect(Card *c)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int fd = -EBADF, one = 1, r;

        r = getaddrinfo(c->host, c->port, &hints, &res);
        if (r != 0)
                return -EINVAL;
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = negative_errno();
                goto finish;
        }
        if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
                r = negative_errno();
                fd = safe_close(fd);
                goto finish;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        set_quickack(c, fd);
        c->fd = fd;
        c->in_len = 0;
        c->announced = false;
        r = 0;
finish:
        freeaddrinfo(res);
        return r;
}

static void card_disconnect(Card *c)
{
        c->fd = safe_close(c->fd);
        c->in_len = 0;
        c->announced = false;
        piv_applet_reset(c->applet);
}

static int card_send(Card *c, const uint8_t *payload, size_t len)
{
        uint8_t msg[2 + PIV_RAPDU_MAX];
        ssize_t n;

        assert(len <= PIV_RAPDU_MAX);
        msg[0] = len >> 8;
        msg[1] = len & 0xFF;
        memcpy(msg + 2, payload, len);
        /* One write per reply, so the length and the payload travel in one segment. */
        n = send(c->fd, msg, len + 2, MSG_NOSIGNAL);
        if (n < 0)
                return negative_errno();
        if ((size_t)n != len + 2)
                return -EIO; /* a loopback socket with an empty buffer does not do short writes */
        return 0;
}

static void trace_apdu(const Card *c, const uint8_t *capdu, size_t clen, const uint8_t *rapdu, size_t rlen)
{
        if (!c->trace)
                return;
        /* Header and status only: VERIFY and CHANGE REFERENCE DATA carry PINs. */
        fprintf(stderr, "vcard: apdu %02X %02X %02X %02X len=%zu -> %02X %02X data=%zu\n", capdu[0],
                capdu[1], capdu[2], capdu[3], clen, rapdu[rlen - 2], rapdu[rlen - 1], rlen - 2);
}

/* The garbage-answering fault modes: > 0 when rapdu/rlen hold the faulty answer to send instead of
 * the applet's, 0 to let the applet answer. */
static int fault_answer(Card *c, const uint8_t *msg, size_t len, uint8_t *rapdu, size_t *ret_rlen)
{
        bool get_data = msg[1] == 0xCB, get_response = msg[1] == 0xC0, select = msg[1] == 0xA4;
        size_t n;

        switch (c->fault) {
        case FAULT_TRUNCATED_CERT:
                if (!get_data)
                        return 0;
                /* 53 and 70 announce ~1 KiB, 12 bytes follow, and the card says that was all. */
                static const uint8_t truncated[] = {0x53, 0x82, 0x04, 0x00, 0x70, 0x82,
                                                    0x03, 0xFC, 0x30, 0x82, 0x03, 0xF8};
                memcpy(rapdu, truncated, sizeof(truncated));
                n = sizeof(truncated);
                break;
        case FAULT_OVERLONG_CERT:
                if (!get_data)
                        return 0;
                /* The outer 53 holds 7 bytes; the 70 inside claims 65535. */
                static const uint8_t overlong[] = {0x53, 0x07, 0x70, 0x82, 0xFF, 0xFF, 0x30, 0x82, 0x01};
                memcpy(rapdu, overlong, sizeof(overlong));
                n = sizeof(overlong);
                break;
        case FAULT_HUGE_CERT:
                if (get_data)
                        c->huge_left = HUGE_CERT_BYTES;
                else if (!get_response || c->huge_left == 0)
                        return 0;
                n = c->huge_left < 256 ? c->huge_left : 256;
                memset(rapdu, 0x53, n);
                if (get_data) {
                        /* A plausible start: 53 83 01 00 00 (64 KiB), 70 83 00 FF F8. */
                        memcpy(rapdu,
                               (const uint8_t[]){0x53, 0x83, 0x01, 0x00, 0x00, 0x70, 0x83, 0x00, 0xFF, 0xF8},
                               10);
                }
                c->huge_left -= n;
                rapdu[n] = c->huge_left > 0 ? 0x61 : 0x90;
                rapdu[n + 1] = c->huge_left > 0 ? (c->huge_left >= 256 ? 0x00 : c->huge_left) : 0x00;
                *ret_rlen = n + 2;
                return 1;
        case FAULT_BAD_SW:
                if (!select)
                        return 0;
                n = 0;
                rapdu[n++] = 0x6F;
                rapdu[n++] = 0x00;
                *ret_rlen = n;
                return 1;
        default:
                return 0;
        }
        (void)len;
        rapdu[n++] = 0x90;
        rapdu[n++] = 0x00;
        *ret_rlen = n;
        return 1;
}

/* Handles one vpcd message; returns < 0 when the connection must be dropped. */
static int card_message(Card *c, const uint8_t *msg, size_t len)
{
        uint8_t rapdu[PIV_RAPDU_MAX];
        const uint8_t *atr;
        size_t atr_len, rlen;
        int r;

        if (!c->announced) {
                /* vpcd accepted the connection and polled: pcscd now sees the card. */
                c->announced = true;
                say("inserted");
        }

        if (len == 1) {
                switch (msg[0]) {
                case VPCD_CTRL_OFF:
                case VPCD_CTRL_ON:
                case VPCD_CTRL_RESET:
                        piv_applet_reset(c->applet);
                        return 0;
                case VPCD_CTRL_ATR:
                        atr_len = piv_applet_atr(c->applet, &atr);
                        return card_send(c, atr, atr_len);
                default:
                        return 0; /* unknown control: ignore, as vpicc does */
                }
        }
        if (len < 4) /* not a C-APDU; a reply keeps vpcd from waiting forever */
                return card_send(c, (const uint8_t[]){0x67, 0x00}, 2);

        c->exchanges++;
        if (msg[1] == 0x87 && c->fault == FAULT_DROP_ON_SIGN) {
                if (c->trace)
                        fprintf(stderr, "vcard: fault drop-on-sign\n");
                c->want_inserted = false;
                card_disconnect(c);
                say("pulled");
                return 0;
        }
        if (msg[1] == 0x87 && c->fault == FAULT_GARBAGE_ON_SIGN) {
                uint8_t junk[34];

                if (RAND_bytes(junk, 32) != 1)
                        memset(junk, 0x5A, 32);
                junk[32] = 0x90, junk[33] = 0x00;
                return card_send(c, junk, sizeof(junk));
        }

        if (c->fault >= FAULT_TRUNCATED_CERT) {
                r = fault_answer(c, msg, len, rapdu, &rlen);
                if (r > 0) {
                        trace_apdu(c, msg, len, rapdu, rlen);
                        return card_send(c, rapdu, rlen);
                }
        }

        rlen = piv_applet_process(c->applet, msg, len, rapdu);
        trace_apdu(c, msg, len, rapdu, rlen);
        return card_send(c, rapdu, rlen);
}

/* Reads what vpcd sent and answers every complete message. */
static int card_read(Card *c)
{
        size_t off = 0;
        ssize_t n;
        int r;

        n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0)
                return negative_errno();
        if (n == 0)
                return -ECONNRESET;
        set_quickack(c, c->fd);
        c->in_len += n;

        while (c->fd >= 0 && c->in_len - off >= 2) {
                size_t len = ((size_t)c->in[off] << 8) | c->in[off + 1];

                if (c->in_len - off - 2 < len)
                        break;
                r = card_message(c, c->in + off + 2, len);
                if (r < 0)
                        return r;
                off += 2 + len;
        }
        if (c->fd < 0)
                return 0; /* a fault mode dropped the connection */
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        return 0;
}

static int load_credentials(const char *key_path, const char *cert_path, bool check_key, EVP_PKEY **ret_key,
                            uint8_t **ret_der, size_t *ret_der_len)
{
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        unsigned char *der = NULL;
        FILE *f;
        int len, r = -EINVAL;

        f = fopen(key_path, "re");
        if (!f)
                return negative_errno();
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!key)
                return -EBADMSG;

        f = fopen(cert_path, "re");
        if (!f) {
                r = negative_errno();
                goto finish;
        }
        cert = PEM_read_X509(f, NULL, NULL, NULL);
        if (!cert) {
                rewind(f);
                cert = d2i_X509_fp(f, NULL);
        }
        fclose(f);
        if (!cert) {
                r = -EBADMSG;
                goto finish;
        }
        if (check_key && X509_check_private_key(cert, key) != 1) {
                r = -EKEYREJECTED;
                goto finish;
        }
        len = i2d_X509(cert, &der);
        if (len <= 0) {
                r = -ENOMEM;
                goto finish;
        }
        *ret_key = TAKE_PTR(key);
        *ret_der = der;
        *ret_der_len = (size_t)len;
        r = 0;
finish:
        X509_free(cert);
        EVP_PKEY_free(key);
        return r;
}

static void help(void)
{
        printf("Usage: mamori-vcard --port PORT --key KEY.pem --cert CERT.pem --pin PIN [OPTIONS]\n"
               "A virtual PIV card (key 9A) for vsmartcard's vpcd reader; starts inserted.\n\n"
               "  --port PORT      vpcd TCP port (reader.conf DEVICENAME /dev/null:PORT)\n"
               "  --host ADDR      vpcd address (default 127.0.0.1)\n"
               "  --key FILE       PEM private key: EC P-256, EC P-384 or RSA-2048\n"
               "  --cert FILE      certificate (PEM or DER) matching the key\n"
               "  --pin PIN        6-8 digits\n"
               "  --tries N        PIN retry limit (default 3)\n"
               "  --fault MODE     none, drop-on-sign, garbage-on-sign, truncated-cert, overlong-cert,\n"
               "                   huge-cert (64 KiB object via 61xx), bad-sw (SELECT answers 6F 00)\n"
               "  --unchecked-key  accept a key that does not match the certificate (a cloned card)\n"
               "  --slow           no TCP_QUICKACK: each exchange waits ~40 ms for vpcd's delayed ACK\n"
               "                   (DESIGN.md §10), about what a slow real card costs\n"
               "  --trace          log each APDU header and status word to stderr\n\n"
               "SIGUSR1 pulls the card, SIGUSR2 inserts it, SIGTERM/SIGINT exit.\n"
               "Prints 'inserted' / 'pulled' on stdout at each change, 'reader-lost' when vpcd goes away\n"
               "(the card then reconnects by itself).\n");
}

int main(int argc, char **argv)
{
        enum {
                ARG_PORT = 0x100,
                ARG_HOST,
                ARG_KEY,
                ARG_CERT,
                ARG_PIN,
                ARG_TRIES,
                ARG_FAULT,
                ARG_TRACE,
                ARG_UNCHECKED_KEY,
                ARG_SLOW,
        };
        static const struct option options[] = {{"port", required_argument, NULL, ARG_PORT},
                                                {"host", required_argument, NULL, ARG_HOST},
                                                {"key", required_argument, NULL, ARG_KEY},
                                                {"cert", required_argument, NULL, ARG_CERT},
                                                {"pin", required_argument, NULL, ARG_PIN},
                                                {"tries", required_argument, NULL, ARG_TRIES},
                                                {"fault", required_argument, NULL, ARG_FAULT},
                                                {"trace", no_argument, NULL, ARG_TRACE},
                                                {"unchecked-key", no_argument, NULL, ARG_UNCHECKED_KEY},
                                                {"slow", no_argument, NULL, ARG_SLOW},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        static Card card = {.host = "127.0.0.1", .fd = -EBADF, .want_inserted = true};
        const char *key_path = NULL, *cert_path = NULL;
        char *pin = NULL;
        unsigned long tries = 3, port;
        _cleanup_close_ int sfd = -EBADF;
        EVP_PKEY *key = NULL;
        uint8_t *der = NULL;
        size_t der_len = 0;
        sigset_t mask;
        bool quit = false, check_key = true;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case ARG_PORT:
                        if (parse_ulong(optarg, 1, 65535, &port) < 0) {
                                fprintf(stderr, "mamori-vcard: bad --port '%s'\n", optarg);
                                return 2;
                        }
                        card.port = optarg;
                        break;
                case ARG_HOST:
                        card.host = optarg;
                        break;
                case ARG_KEY:
                        key_path = optarg;
                        break;
                case ARG_CERT:
                        cert_path = optarg;
                        break;
                case ARG_PIN:
                        free(pin);
                        pin = strdup(optarg);
                        if (!pin)
                                return 1;
                        /* keep the PIN out of ps(1) output */
                        explicit_bzero(optarg, strlen(optarg));
                        break;
                case ARG_TRIES:
                        if (parse_ulong(optarg, 1, PIV_TRIES_MAX, &tries) < 0) {
                                fprintf(stderr, "mamori-vcard: --tries must be 1..%d\n", PIV_TRIES_MAX);
                                return 2;
                        }
                        break;
                case ARG_FAULT: {
                        size_t i;

                        for (i = 0; i < ELEMENTSOF(fault_names); i++)
                                if (streq(optarg, fault_names[i]))
                                        break;
                        if (i == ELEMENTSOF(fault_names)) {
                                fprintf(stderr, "mamori-vcard: unknown --fault '%s'\n", optarg);
                                return 2;
                        }
                        card.fault = (FaultMode)i;
                        break;
                }
                case ARG_SLOW:
                        card.slow = true;
                        break;
                case ARG_TRACE:
                        card.trace = true;
                        break;
                case ARG_UNCHECKED_KEY:
                        check_key = false;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc || !card.port || !key_path || !cert_path || !pin) {
                fprintf(stderr, "mamori-vcard: --port, --key, --cert and --pin are required (see --help)\n");
                return 2;
        }

        r = load_credentials(key_path, cert_path, check_key, &key, &der, &der_len);
        if (r < 0) {
                fprintf(stderr, "mamori-vcard: cannot load key/certificate: %s\n", strerror(-r));
                return 1;
        }
        r = piv_applet_new(key, der, der_len, pin, tries, &card.applet);
        EVP_PKEY_free(key);
        OPENSSL_free(der);
        explicit_bzero(pin, strlen(pin));
        free(pin);
        if (r < 0) {
                fprintf(stderr,
                        "mamori-vcard: unusable key or PIN (need P-256/P-384/RSA-2048, 6-8 digits): %s\n",
                        strerror(-r));
                return 1;
        }

        /* Signals arrive through a signalfd and are handled in the loop, never in a handler. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return 1;
        signal(SIGPIPE, SIG_IGN);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                fprintf(stderr, "mamori-vcard: signalfd: %m\n");
                return 1;
        }

        while (!quit) {
                struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = -1}};
                int timeout = -1;

                if (card.want_inserted && card.fd < 0 && card_connect(&card) < 0)
                        timeout = RECONNECT_MS; /* vpcd not listening (yet): pcscd starting or gone */
                if (card.fd >= 0)
                        p[1] = (struct pollfd){.fd = card.fd, .events = POLLIN};

                if (poll(p, 2, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "mamori-vcard: poll: %m\n");
                        break;
                }

                if (p[0].revents & POLLIN) {
                        struct signalfd_siginfo si;

                        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                                switch (si.ssi_signo) {
                                case SIGUSR1:
                                        card.want_inserted = false;
                                        card_disconnect(&card);
                                        say("pulled");
                                        break;
                                case SIGUSR2:
                                        if (card.want_inserted && card.announced)
                                                say("inserted"); /* already in: acknowledge anyway */
                                        card.want_inserted = true;
                                        break;
                                default:
                                        quit = true;
                                        break;
                                }
                        }
                }

                if (card.fd >= 0 && p[1].fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                        r = card_read(&card);
                        if (r < 0) {
                                /* vpcd closed the connection: pcscd stopped or the reader went away.
                                 * The card stays "in the reader" and reconnects when vpcd returns. */
                                if (card.trace)
                                        fprintf(stderr, "vcard: connection lost: %s\n", strerror(-r));
                                card_disconnect(&card);
                                say("reader-lost");
                        }
                }
        }

        card_disconnect(&card);
        if (card.trace)
                fprintf(stderr, "vcard: %lu APDU exchanges\n", card.exchanges);
        piv_applet_free(card.applet);
        return 0;
}
