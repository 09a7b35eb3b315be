/* Fuzz target: a session of C-APDUs (each prefixed by its 1-byte length; 0 = power cycle) into the PIV
 * applet. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "piv-applet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fuzz_key(void)
{
        static EVP_PKEY *key;

        /* One key for the whole run: key generation would dominate every input. */
        if (!key)
                key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        return key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* The applet stores the certificate as opaque bytes; a long dummy exercises chaining. */
        static uint8_t cert[700];
        uint8_t rapdu[PIV_RAPDU_MAX];
        PivApplet *a = NULL;
        EVP_PKEY *key = fuzz_key();

        if (!key)
                abort();
        memset(cert, 0x30, sizeof(cert));
        if (piv_applet_new(key, cert, sizeof(cert), "123456", 3, &a) < 0)
                abort();

        while (size > 0) {
                size_t len = data[0];

                data++, size--;
                if (len == 0) {
                        piv_applet_reset(a);
                        continue;
                }
                if (len > size)
                        len = size;
                size_t r = piv_applet_process(a, data, len, rapdu);
                if (r < 2 || r > PIV_RAPDU_MAX)
                        abort();
                data += len, size -= len;
        }
        piv_applet_free(a);
        return 0;
}
