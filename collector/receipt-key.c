/* The collector's receipt key: load it from the state directory, or make it there on first use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/macro.h"
#include "receipt-key.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);

static int bio_text(BIO *b, char **ret)
{
        char *data;
        long n = BIO_get_mem_data(b, &data);
        char *s;

        if (n <= 0)
                return -EIO;
        s = malloc((size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
        *ret = s;
        return 0;
}

int collector_receipt_pub_pem(EVP_PKEY *key, char **ret)
{
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());

        if (!key || !ret)
                return -EINVAL;
        if (!b)
                return -ENOMEM;
        if (PEM_write_bio_PUBKEY(b, key) != 1)
                return -EIO;
        return bio_text(b, ret);
}

static int make_key(const char *key_path, const char *pub_path, EVP_PKEY **ret)
{
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_secmem());
        _cleanup_free_ char *pub = NULL;
        char *pem = NULL;
        int k;

        if (!b)
                return -ENOMEM;
        k = ed25519_generate(&key);
        if (k < 0)
                return k;
        if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -EIO;
        k = bio_text(b, &pem);
        if (k < 0)
                return k;
        k = write_file_atomic(key_path, pem, strlen(pem), 0600);
        explicit_bzero(pem, strlen(pem));
        free(pem);
        if (k < 0)
                return k;
        k = collector_receipt_pub_pem(key, &pub);
        if (k >= 0)
                k = write_file_atomic(pub_path, pub, strlen(pub), 0644);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(key);
        return 0;
}

int collector_receipt_key(const struct collector_config *c, bool create, EVP_PKEY **ret, bool *ret_created)
{
        _cleanup_free_ char *key_path = collector_state_path(c, RECEIPT_KEY_FILE);
        _cleanup_free_ char *pub_path = collector_state_path(c, RECEIPT_PUB_FILE);
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        bool created = false;
        int k;

        if (!c || !ret)
                return -EINVAL;
        if (!key_path || !pub_path)
                return -ENOMEM;
        k = pem_load_private_key(key_path, &key);
        if (k == -ENOENT && create) {
                k = make_key(key_path, pub_path, &key);
                created = k >= 0;
        }
        if (k < 0)
                return k;
        if (ed25519_check(key) < 0)
                return -EINVAL;
        if (!created && access(pub_path, F_OK) < 0 && errno == ENOENT) {
                /* The public file is derived: put it back if it went. */
                _cleanup_free_ char *pub = NULL;
                if (collector_receipt_pub_pem(key, &pub) >= 0)
                        (void)write_file_atomic(pub_path, pub, strlen(pub), 0644);
        }
        *ret = TAKE_PTR(key);
        if (ret_created)
                *ret_created = created;
        return 0;
}
