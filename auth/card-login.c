/* The card-login engine: certificate (given, cached or read) → checks → precheck → PIN → signature →
 * decision. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "card-internal.h"
#include "mamori/card-login.h"
#include "mamori/cert-cache.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "piv-apdu.h"

struct CardLogin {
        Card *card; /* while a transport is attached */
        struct auth_card_facts facts;
        struct card_login_info info;
        uint8_t *der;
        size_t der_len;
        bool cert_known;           /* der/card id set, by the caller or by prepare */
        bool cert_checked;         /* cert_result given by the caller */
        bool prepared;             /* SELECT answered 90 00 on the attached card */
        bool precheck_allow;       /* the precheck allowed: the PIN may go to the card */
        bool verified;             /* card_login_verify() ran */
        unsigned exchanges_before; /* of cards detached earlier */
        unsigned pin_mark;         /* exchanges when VERIFY PIN started */
        /* For the cache store after a successful check. */
        char *cache_dir;
        uint8_t head[CERT_CACHE_HEAD_MAX];
        size_t head_len;
};

int card_login_new(CardLogin **ret)
{
        CardLogin *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->facts = (struct auth_card_facts){
                .cert_result = -EINVAL,
                .pin_result = AUTH_STEP_NOT_DONE,
                .tries_left = -1,
                .auth_result = AUTH_STEP_NOT_DONE,
        };
        l->info.tries_left = -1;
        *ret = l;
        return 0;
}

CardLogin *card_login_free(CardLogin *l)
{
        if (!l)
                return NULL;
        card_free(l->card);
        free(l->der);
        free(l->cache_dir);
        OPENSSL_cleanse(l->head, sizeof(l->head));
        free(l);
        return NULL;
}

static int set_certificate(CardLogin *l, uint8_t *der, size_t der_len)
{
        int r = card_id_from_cert(der, der_len, l->info.card_id);
        if (r < 0) {
                free(der);
                l->info.card_id[0] = '\0';
                return r;
        }
        free(l->der);
        l->der = der;
        l->der_len = der_len;
        l->facts.card_id = l->info.card_id;
        l->cert_known = true;
        return 0;
}

int card_login_set_card(CardLogin *l, bool present, int read_error, const uint8_t *der, size_t der_len)
{
        l->facts.card_present = present;
        l->facts.card_error = l->info.card_error = read_error < 0 ? read_error : 0;
        if (!present || read_error < 0)
                return 0;
        if (!der || der_len == 0 || der_len > PIV_CERT_MAX_DER) {
                l->facts.card_error = CARD_E_MALFORMED;
                return 0;
        }
        uint8_t *copy = malloc(der_len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, der, der_len);
        return set_certificate(l, copy, der_len);
}

static void card_failed(CardLogin *l, int r, const char *step)
{
        l->facts.card_error = l->info.card_error = r;
        l->info.failed_step = step;
}

static unsigned exchanges(const CardLogin *l)
{
        return l->exchanges_before + (l->card ? card_exchanges(l->card) : 0);
}

/* GET DATA of the authentication certificate, first response only (no GET RESPONSE): the head
 * of the certificate object. 0 with the data in l->head and *ret_complete (90 00: the whole
 * object came at once); -ENODATA when the card answered something else (the full read will
 * report it properly). */
static int read_cert_head(CardLogin *l, bool *ret_complete)
{
        uint8_t cmd[APDU_MAX_COMMAND], rapdu[APDU_MAX_RESPONSE];
        size_t rlen = sizeof(rapdu);
        Card *c = l->card;
        uint16_t sw;
        int n, r;

        n = piv_build_get_data(cmd, sizeof(cmd), piv_tag_cert_auth, sizeof(piv_tag_cert_auth));
        if (n < 0)
                return n;
        c->exchanges++;
        r = c->transport->transmit(c->transport->userdata, cmd, (size_t)n, rapdu, &rlen);
        if (r < 0)
                return r;
        if (rlen < 2 || rlen > APDU_MAX_RESPONSE)
                return CARD_E_MALFORMED;
        sw = (uint16_t)(rapdu[rlen - 2] << 8 | rapdu[rlen - 1]);
        rlen -= 2;
        if (rlen == 0 || rlen > CERT_CACHE_HEAD_MAX)
                return -ENODATA;
        if (sw == SW_OK)
                *ret_complete = true;
        else if ((sw >> 8) == SW1_MORE_DATA)
                *ret_complete = false;
        else
                return -ENODATA;
        memcpy(l->head, rapdu, rlen);
        l->head_len = rlen;
        OPENSSL_cleanse(rapdu, sizeof(rapdu));
        return 0;
}

static int read_certificate(CardLogin *l, const char *cache_dir)
{
        _cleanup_free_ uint8_t *der = NULL;
        size_t der_len = 0;
        bool complete = false;
        int r;

        if (cache_dir) {
                char id[CARD_ID_LEN + 1];

                r = read_cert_head(l, &complete);
                if (r < 0 && r != -ENODATA)
                        return r;
                if (r == 0 && !complete &&
                    cert_cache_lookup(cache_dir, l->head, l->head_len, &der, &der_len, id) >= 0) {
                        l->info.cert_from_cache = true;
                        l->head_len = 0; /* nothing to store */
                        return set_certificate(l, TAKE_PTR(der), der_len);
                }
                if (r != 0)
                        l->head_len = 0;
                else if (!(l->cache_dir = strdup(cache_dir)))
                        return -ENOMEM;
        }
        /* No cache, a miss, or a card whose answer needs the full treatment (6C, errors, gzip). */
        r = card_read_certificate(l->card, &der, &der_len);
        if (r < 0)
                return r;
        return set_certificate(l, TAKE_PTR(der), der_len);
}

int card_login_prepare(CardLogin *l, const struct card_transport *transport, const char *cache_dir)
{
        int r;

        if (!l || !transport || l->card || l->verified)
                return -EINVAL;
        r = card_new(transport, NULL, &l->card);
        if (r < 0)
                return r;
        l->facts.card_present = true;
        r = card_select(l->card);
        if (r < 0) {
                card_failed(l, r, "select");
                return r;
        }
        if (!l->cert_known) {
                r = read_certificate(l, cache_dir);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        card_failed(l, r, "certificate");
                        return r;
                }
        }
        l->prepared = true;
        return 0;
}

void card_login_set_cert_result(CardLogin *l, int cert_result)
{
        l->facts.cert_result = cert_result;
        l->cert_checked = true;
}

static void check_certificate(CardLogin *l, CertCheck *anchors, const struct auth_context *c)
{
        if (anchors && l->cert_known)
                l->facts.cert_result = cert_check_verify(anchors, l->der, l->der_len,
                                                         c->now_usec > 0 ? (uint64_t)c->now_usec
                                                                         : (uint64_t)now_realtime_usec());
        else if (!l->cert_checked && l->cert_known)
                l->facts.cert_result = CERT_CHECK_UNTRUSTED;
}

struct auth_decision card_login_precheck(CardLogin *l, CertCheck *anchors, const struct auth_context *c)
{
        struct auth_decision d;

        check_certificate(l, anchors, c);
        /* Cache only what chains to our CA: a stranger's card must not fill the disk. */
        if (l->cache_dir && l->head_len > 0 && l->facts.cert_result == CERT_CHECK_OK)
                (void)cert_cache_store(l->cache_dir, l->head, l->head_len, l->der, l->der_len);
        l->head_len = 0;

        d = auth_decide_precheck(&l->facts, c);
        l->precheck_allow = d.reason == AUTH_ALLOW;
        return d;
}

int card_login_verify(CardLogin *l, const char *pin)
{
        int r;

        if (!l->precheck_allow || l->verified)
                return -EPERM;
        if (!l->card)
                return -EINVAL;
        if (!l->prepared)
                return l->info.card_error < 0 ? l->info.card_error : -EINVAL;
        l->verified = true;
        l->pin_mark = exchanges(l);

        /* Only now does the PIN go to the card: a refused card never costs a try. */
        l->info.pin_sent = true;
        r = card_verify_pin(l->card, pin);
        l->facts.pin_result = r;
        if (r == CARD_E_PIN_WRONG)
                l->facts.tries_left = l->info.tries_left = card_tries_left(l->card);
        if (r == CARD_E_PIN_BLOCKED)
                l->info.tries_left = 0;
        if (r < 0) {
                if (r != CARD_E_PIN_WRONG && r != CARD_E_PIN_BLOCKED)
                        card_failed(l, r, "pin");
                return r;
        }
        r = card_authenticate(l->card, l->der, l->der_len);
        l->facts.auth_result = r;
        if (r < 0 && r != CARD_E_SIG_INVALID)
                card_failed(l, r, "authenticate");
        return r;
}

void card_login_detach(CardLogin *l)
{
        if (!l->card)
                return;
        l->exchanges_before += card_exchanges(l->card);
        l->card = card_free(l->card);
        l->prepared = false;
}

struct auth_decision card_login_decide(CardLogin *l, CertCheck *anchors, const struct auth_context *c)
{
        struct auth_decision d;

        if (anchors)
                check_certificate(l, anchors, c);
        d = auth_decide(&l->facts, c);
        if (d.reason != AUTH_CARD_ERROR)
                l->info.failed_step = NULL; /* the step only explains a card-error */
        return d;
}

const struct card_login_info *card_login_info(const CardLogin *l)
{
        CardLogin *m = (CardLogin *)l;

        m->info.exchanges = exchanges(l);
        m->info.exchanges_after_pin = l->verified ? m->info.exchanges - l->pin_mark : 0;
        return &l->info;
}
