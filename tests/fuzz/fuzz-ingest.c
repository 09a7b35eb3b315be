/* Fuzz target: a POST /v1/records body through the collector's batch verification and SQLite store. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "ingest.h"
#include "mamori/crypto-util.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The identity key mklog derives from seed "a" (tests/integration/mklog.c), so that the seed corpus
 * (mklog output) reaches the signature and storage paths. */
static char *identity_pem(void)
{
        static char *pem;
        if (!pem) {
                const char *label = "mklog identity a";
                uint8_t seed[ED25519_KEY_SIZE];
                EVP_PKEY *k = NULL;
                BIO *b = BIO_new(BIO_s_mem());
                char *p;
                long n;

                if (!b || sha256(label, strlen(label), seed) < 0 || ed25519_from_seed(seed, &k) < 0 ||
                    PEM_write_bio_PUBKEY(b, k) != 1)
                        abort();
                n = BIO_get_mem_data(b, &p);
                pem = strndup(p, (size_t)n);
                BIO_free(b);
                EVP_PKEY_free(k);
        }
        return pem;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Store *s = NULL;
        IngestAnswer a = {};
        int r;

        if (size > 1024 * 1024)
                return 0;
        if (store_open(":memory:", &s) < 0 || store_terminal_add(s, 0, "T-0001", "chuo", identity_pem()) < 0)
                abort();
        /* Twice: the second pass meets the state the first one stored (resend, fork and gap paths). */
        for (int i = 0; i < 2; i++) {
                r = ingest_batch(s, NULL, "T-0001", (const char *)data, size, 1000, 1, &a);
                if (r < 0)
                        abort(); /* the store must not fail on any body */
                if (a.status == 0 || !a.body || a.body[0] != '{')
                        abort();
                if (i == 1 && a.status == 200 && !strstr(a.body, "\"acked\""))
                        abort();
                ingest_answer_done(&a);
        }
        store_close(s);
        return 0;
}
