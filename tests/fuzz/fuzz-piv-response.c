/* libFuzzer target: arbitrary bytes as card responses, through a fake transport, into the real
 * card code (select, certificate read incl. gzip, PIN status/verify/change, authenticate). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "../../auth/piv-apdu.h"
#include "../../auth/tlv.h"
#include "mamori/card.h"

/* Input: one flags byte (bits 0-1 pick the key of the fixed certificate used for
 * card_authenticate), then responses, each a 2-byte big-endian length and that many bytes
 * (clamped to 258 and to what is left). When the input runs out the card is "removed". */
struct feed {
        const uint8_t *p;
        size_t left;
};

static int feed_transmit(void *ud, const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t *rlen)
{
        struct feed *f = ud;
        size_t n;

        if (f->left < 2)
                return CARD_E_REMOVED;
        n = (size_t)f->p[0] << 8 | f->p[1];
        f->p += 2;
        f->left -= 2;
        if (n > f->left)
                n = f->left;
        if (n > *rlen)
                n = *rlen;
        memcpy(rapdu, f->p, n);
        f->p += n;
        f->left -= n;
        *rlen = n;
        return 0;
}

static uint8_t *fixed_der[3];
static size_t fixed_len[3];

static void make_fixed(int i)
{
        EVP_PKEY *k = i == 0   ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                      : i == 1 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")
                               : EVP_RSA_gen(2048);
        X509 *x = X509_new();
        if (!k || !x)
                abort();
        X509_set_version(x, 2);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, k);
        if (X509_sign(x, k, EVP_sha256()) <= 0)
                abort();
        int l = i2d_X509(x, &fixed_der[i]);
        if (l <= 0)
                abort();
        fixed_len[i] = (size_t)l;
        X509_free(x);
        EVP_PKEY_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct feed f;
        struct card_transport t = {.transmit = feed_transmit, .userdata = &f};
        Card *c = NULL;
        uint8_t *der = NULL;
        size_t der_len = 0;
        unsigned tries;
        int which;

        if (size < 1)
                return 0;
        which = data[0] & 3;
        if (which == 3)
                which = 0;
        if (!fixed_der[which])
                make_fixed(which);

        /* The pure parsers straight on the bytes, too. */
        {
                struct tlv_reader r;
                struct tlv tv;
                const uint8_t *p;
                size_t n;
                bool gz;
                tlv_reader_init(&r, data + 1, size - 1);
                while (tlv_next(&r, &tv) > 0)
                        ;
                (void)piv_parse_cert_object(data + 1, size - 1, &p, &n, &gz);
                (void)piv_parse_auth_response(data + 1, size - 1, &p, &n);
        }

        f.p = data + 1;
        f.left = size - 1;
        if (card_new(&t, NULL, &c) < 0)
                abort();
        (void)card_select(c);
        if (card_read_certificate(c, &der, &der_len) == 0) {
                char id[CARD_ID_LEN + 1];
                if (card_id_from_cert(der, der_len, id) < 0)
                        abort();
        }
        (void)card_pin_tries(c, &tries);
        (void)card_verify_pin(c, "123456");
        (void)card_change_pin(c, "123456", "87654321");
        (void)card_authenticate(c, fixed_der[which], fixed_len[which]);
        if (der)
                (void)card_authenticate(c, der, der_len);
        if (card_exchanges(c) > 2 * (APDU_MAX_ROUNDS + 2) * 8)
                abort(); /* the exchange loops must stay bounded */
        free(der);
        card_free(c);
        return 0;
}
