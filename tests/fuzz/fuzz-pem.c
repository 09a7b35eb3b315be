/* Fuzz target: arbitrary bytes as a public-key PEM; pem_parse_public_key() (with its Ed25519 fast path)
 * must accept exactly what OpenSSL's own reader accepts, and give the same key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "mamori/crypto-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What OpenSSL alone makes of the bytes: NULL if it reads no public key. */
static EVP_PKEY *openssl_reads(const uint8_t *data, size_t size)
{
        BIO *bio = BIO_new_mem_buf(data, (int)size);
        EVP_PKEY *k;

        if (!bio)
                abort();
        k = PEM_read_bio_PUBKEY_ex(bio, NULL, NULL, (void *)"", NULL, NULL);
        BIO_free(bio);
        ERR_clear_error();
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        EVP_PKEY *ours = NULL, *theirs;
        int r;

        if (size > 4096)
                return 0;
        r = pem_parse_public_key(data, size, &ours);
        theirs = openssl_reads(data, size);
        if ((r == 0) != (theirs != NULL))
                abort(); /* one reads a key the other refuses */
        if (r == 0 && EVP_PKEY_eq(ours, theirs) != 1)
                abort(); /* both read a key, not the same one */
        EVP_PKEY_free(ours);
        EVP_PKEY_free(theirs);
        return 0;
}
