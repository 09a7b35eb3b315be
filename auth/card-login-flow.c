/* One whole card login over PC/SC (read or cached certificate, checks, precheck before the PIN, decision).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

#include "card-internal.h"
#include "mamori/card-login-flow.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "mamori/time-util.h"
#include "piv-apdu.h"

#define CACHE_PATH_MAX 4096

static int cache_path(char *buf, size_t cap, const char *dir, const char *name, const char *suffix)
{
        int n = snprintf(buf, cap, "%s/%s%s", dir, name, suffix);
        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int head_hash(const uint8_t *head, size_t head_len, char ret[SHA256_HEX_MAX])
{
        if (!head || head_len == 0 || head_len > CERT_CACHE_HEAD_MAX)
                return -EINVAL;
        return sha256_hex(head, head_len, ret);
}

static bool is_card_id(const char *s, size_t n)
{
        if (n != CARD_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int cert_cache_lookup(const char *dir, const uint8_t *head, size_t head_len, uint8_t **ret_der,
                      size_t *ret_der_len, char ret_id[CARD_ID_LEN + 1])
{
        _cleanup_free_ char *id = NULL, *der = NULL;
        char hh[SHA256_HEX_MAX], path[CACHE_PATH_MAX], check[CARD_ID_LEN + 1];
        size_t n = 0, der_len = 0;
        int r;

        if (!dir)
                return -EINVAL;
        r = head_hash(head, head_len, hh);
        if (r < 0)
                return r;
        r = cache_path(path, sizeof(path), dir, hh, ".head");
        if (r < 0)
                return r;
        r = read_file_bounded(path, CARD_ID_LEN + 1, &id, &n);
        if (r < 0)
                return -ENOENT;
        if (n == CARD_ID_LEN + 1 && id[CARD_ID_LEN] == '\n')
                n--;
        if (!is_card_id(id, n))
                return -ENOENT;
        id[CARD_ID_LEN] = '\0';

        r = cache_path(path, sizeof(path), dir, id, ".der");
        if (r < 0)
                return r;
        r = read_file_bounded(path, PIV_CERT_MAX_DER, &der, &der_len);
        if (r < 0 || der_len == 0)
                return -ENOENT;
        /* A damaged or swapped entry is a miss, never another card's certificate. */
        r = card_id_from_cert((const uint8_t *)der, der_len, check);
        if (r < 0)
                return r;
        if (!streq(check, id))
                return -ENOENT;

        memcpy(ret_id, id, CARD_ID_LEN + 1);
        *ret_der = (uint8_t *)TAKE_PTR(der);
        *ret_der_len = der_len;
        return 0;
}

/* mkdir -p: the cache lives under the state directory, whose cache/ may not exist yet. */
static int mkdir_parents(const char *dir)
{
        char path[CACHE_PATH_MAX];
        size_t n = strlen(dir);

        if (n == 0 || n >= sizeof(path))
                return -EINVAL;
        memcpy(path, dir, n + 1);
        for (size_t i = 1; i <= n; i++) {
                if (path[i] != '/' && path[i] != '\0')
                        continue;
                char saved = path[i];
                path[i] = '\0';
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                path[i] = saved;
        }
        return 0;
}

int cert_cache_store(const char *dir, const uint8_t *head, size_t head_len, const uint8_t *der,
                     size_t der_len)
{
        char hh[SHA256_HEX_MAX], path[CACHE_PATH_MAX], id[CARD_ID_LEN + 2];
        int r;

        if (!dir || !der || der_len == 0 || der_len > PIV_CERT_MAX_DER)
                return -EINVAL;
        r = head_hash(head, head_len, hh);
        if (r < 0)
                return r;
        r = card_id_from_cert(der, der_len, id);
        if (r < 0)
                return r;
        r = mkdir_parents(dir);
        if (r < 0)
                return r;

        r = cache_path(path, sizeof(path), dir, id, ".der");
        if (r < 0)
                return r;
        r = write_file_atomic(path, der, der_len, 0644);
        if (r < 0)
                return r;
        /* The certificate first, then the pointer to it: a crash in between leaves a miss. */
        r = cache_path(path, sizeof(path), dir, hh, ".head");
        if (r < 0)
                return r;
        id[CARD_ID_LEN] = '\n';
        return write_file_atomic(path, id, CARD_ID_LEN + 1, 0644);
}

/* GET DATA of the authentication certificate, first response only (no GET RESPONSE): the head
 * of the certificate object. 0 with the data in head, *ret_len and *ret_complete (9000: the whole
 * object came at once); -ENODATA when the card answered something else (the full read will
 * report it properly). */
static int read_cert_head(Card *c, uint8_t head[APDU_MAX_RESPONSE], size_t *ret_len, bool *ret_complete)
{
        uint8_t cmd[APDU_MAX_COMMAND];
        size_t rlen = APDU_MAX_RESPONSE;
        uint16_t sw;
        int l, r;

        l = piv_build_get_data(cmd, sizeof(cmd), piv_tag_cert_auth, sizeof(piv_tag_cert_auth));
        if (l < 0)
                return l;
        c->exchanges++;
        r = c->transport->transmit(c->transport->userdata, cmd, (size_t)l, head, &rlen);
        if (r < 0)
                return r;
        if (rlen < 2 || rlen > APDU_MAX_RESPONSE)
                return CARD_E_MALFORMED;
        sw = (uint16_t)(head[rlen - 2] << 8 | head[rlen - 1]);
        rlen -= 2;
        if (rlen == 0 || rlen > CERT_CACHE_HEAD_MAX)
                return -ENODATA;
        if (sw == SW_OK)
                *ret_complete = true;
        else if ((sw >> 8) == SW1_MORE_DATA)
                *ret_complete = false;
        else
                return -ENODATA;
        *ret_len = rlen;
        return 0;
}

/* Select and certificate; fills facts/result. Returns < 0 only for transport failures that end
 * the login (the caller maps them). */
static int get_certificate(Card *c, const struct card_login_request *req, struct card_login_result *res,
                           uint8_t **ret_der, size_t *ret_der_len, uint8_t head[APDU_MAX_RESPONSE],
                           size_t *ret_head_len)
{
        bool complete = false;
        size_t head_len = 0;
        int r;

        res->failed_step = "select";
        r = card_select(c);
        if (r < 0)
                return r;

        res->failed_step = "certificate";
        if (req->cache_dir) {
                r = read_cert_head(c, head, &head_len, &complete);
                if (r < 0 && r != -ENODATA)
                        return r;
                if (r == 0 && !complete &&
                    cert_cache_lookup(req->cache_dir, head, head_len, ret_der, ret_der_len, res->card_id) >=
                            0) {
                        res->cert_from_cache = true;
                        res->failed_step = NULL;
                        return 0;
                }
                if (r == 0)
                        *ret_head_len = head_len;
        }
        /* No cache, a miss, or a card whose answer needs the full treatment (6C, errors, gzip). */
        r = card_read_certificate(c, ret_der, ret_der_len);
        if (r < 0)
                return r;
        r = card_id_from_cert(*ret_der, *ret_der_len, res->card_id);
        if (r < 0) {
                free(TAKE_PTR(*ret_der));
                return r;
        }
        res->failed_step = NULL;
        return 0;
}

int card_login_flow(const struct card_login_request *req, struct card_login_result *ret)
{
        struct card_login_result res = {.decision = {.reason = AUTH_CARD_ERROR, .tries_left = -1}};
        struct auth_card_facts f = {
                .card_present = req->reader != NULL,
                .cert_result = -EINVAL,
                .pin_result = AUTH_STEP_NOT_DONE,
                .tries_left = -1,
                .auth_result = AUTH_STEP_NOT_DONE,
        };
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        _cleanup_(card_freep) Card *c = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t head[APDU_MAX_RESPONSE];
        size_t der_len = 0, head_len = 0;
        bool in_transaction = false;
        int r;

        if (!req || !req->auth || !ret)
                return -EINVAL;
        if (!f.card_present) {
                res.decision = auth_decide_precheck(&f, req->auth);
                *ret = res;
                return 0;
        }

        res.failed_step = "connect";
        r = card_pcsc_connect(req->ctx, req->reader, &p);
        if (r == CARD_E_NO_SERVICE)
                return r;
        if (r == CARD_E_REMOVED) {
                f.card_present = false;
                goto decide_precheck;
        }
        if (r < 0) {
                f.card_error = res.card_error = r;
                goto decide_precheck;
        }
        r = card_new(card_pcsc_transport(p), NULL, &c);
        if (r < 0)
                return r;
        r = card_pcsc_begin(p);
        if (r < 0) {
                f.card_error = res.card_error = r;
                goto decide_precheck;
        }
        in_transaction = true;

        r = get_certificate(c, req, &res, &der, &der_len, head, &head_len);
        if (r == -ENOMEM)
                goto finish;
        if (r < 0) {
                f.card_error = res.card_error = r;
                goto decide_precheck;
        }
        f.card_id = res.card_id;
        f.cert_result = cert_check_verify(req->anchors, der, der_len,
                                          req->auth->now_usec > 0 ? (uint64_t)req->auth->now_usec
                                                                  : (uint64_t)now_realtime_usec());
        if (f.cert_result == -ENOMEM) {
                r = -ENOMEM;
                goto finish;
        }
        /* Cache only what chains to our CA: a stranger's card must not fill the disk. */
        if (req->cache_dir && !res.cert_from_cache && head_len > 0 && f.cert_result == CERT_CHECK_OK)
                (void)cert_cache_store(req->cache_dir, head, head_len, der, der_len);

        res.decision = auth_decide_precheck(&f, req->auth);
        if (res.decision.reason != AUTH_ALLOW)
                goto done;

        /* Only now does the PIN go to the card: a refused card never costs a try. */
        res.pin_sent = true;
        res.failed_step = "pin";
        f.pin_result = card_verify_pin(c, req->pin);
        if (f.pin_result == CARD_E_PIN_WRONG)
                f.tries_left = card_tries_left(c);
        if (f.pin_result == 0) {
                res.failed_step = "authenticate";
                f.auth_result = card_authenticate(c, der, der_len);
                if (f.auth_result == -ENOMEM) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        if (f.pin_result != 0 && f.pin_result != CARD_E_PIN_WRONG && f.pin_result != CARD_E_PIN_BLOCKED)
                res.card_error = f.pin_result;
        else if (f.pin_result == 0 && f.auth_result != 0 && f.auth_result != CARD_E_SIG_INVALID)
                res.card_error = f.auth_result;
        res.decision = auth_decide(&f, req->auth);
        goto done;

decide_precheck:
        res.decision = auth_decide_precheck(&f, req->auth);
done:
        if (res.decision.reason != AUTH_CARD_ERROR)
                res.failed_step = NULL; /* the step only explains a card-error */
        if (c)
                res.exchanges = card_exchanges(c);
        *ret = res;
        r = 0;
finish:
        OPENSSL_cleanse(head, sizeof(head));
        if (in_transaction)
                (void)card_pcsc_end(p);
        /* Drop the PIN-verified state with the connection. */
        if (p && res.pin_sent)
                p = card_pcsc_free_reset(TAKE_PTR(p));
        return r;
}
