/* The collector's receipt key (DESIGN.md §7, §11): made in its state directory beside its TLS key. */
#pragma once

#include <stdbool.h>

#include <openssl/evp.h>

#include "collector-config.h"

#define RECEIPT_KEY_FILE "receipt.key" /* Ed25519 private key, PEM, 0600 */
#define RECEIPT_PUB_FILE                                                                  \
        "receipt.pub" /* its public half, PEM, 0644: [Collector] ReceiptKey= of terminals \
                       */

/*
 * Load the receipt key from c's state directory; with create, make it first when it is missing
 * (private key, then the public file). *ret_created (may be NULL) says whether it was made now.
 * -ENOENT missing and !create; -EINVAL not an Ed25519 key; -errno from the file system.
 */
int collector_receipt_key(const struct collector_config *c, bool create, EVP_PKEY **ret, bool *ret_created);

/* The public key as PEM text (malloc'd, NUL-terminated). */
int collector_receipt_pub_pem(EVP_PKEY *key, char **ret);
