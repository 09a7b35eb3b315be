/* Enrolment files (DESIGN.md §11): the terminal's request and the centre's answer — one codec for
 * mamorictl and mamori-admin. Neither ever holds a private key. */
#pragma once

#include <stddef.h>

#include "mamori/oplog-record.h"

#define ENROLMENT_FILE_MAX (64u * 1024u) /* either file */
#define ENROLMENT_PEM_MAX  (16u * 1024u) /* one PEM text inside it */
#define ENROLMENT_URL_MAX  1024u

/*
 * The request, made on the terminal (mamorictl enroll-request):
 *   {"csr":PEM,"identity":PEM,"terminal":ID,"type":"mamori-enrolment-request","v":1}
 * csr: PKCS#10 request for the TLS client key (which stays on the terminal); identity: the
 * terminal identity public key (Ed25519) that signs seq 1 of its logs.
 */
struct enrolment_request {
        char terminal[RECORD_ID_MAX + 1];
        char *identity_pem;
        char *csr_pem;
};

/*
 * The answer, made at the centre (mamori-admin terminal add|rekey --request):
 *   {"certificate":PEM,"collector_ca":PEM,"office":ID,"policy_signer":PEM,"receipt_key":PEM,
 *    "terminal":ID,"type":"mamori-enrolment","v":1[,"url":URL]}
 * certificate: the terminal's TLS client certificate (CN = terminal); collector_ca: the CA of the
 * collector's server certificate; receipt_key: the collector's receipt public key; policy_signer:
 * the policy signer public key; url: the collector's https URL when the centre knows it.
 */
struct enrolment {
        char terminal[RECORD_ID_MAX + 1];
        char office[RECORD_ID_MAX + 1];
        char *url; /* NULL when absent */
        char *certificate_pem;
        char *collector_ca_pem;
        char *receipt_key_pem;
        char *policy_signer_pem;
};

/* Frees the strings; the structs themselves are the caller's. Safe on a zeroed struct. */
void enrolment_request_done(struct enrolment_request *r);
void enrolment_done(struct enrolment *e);

/* JCS bytes plus "\n", malloc'd. -EINVAL when a field is not what the format says. */
int enrolment_request_format(const struct enrolment_request *r, char **ret, size_t *ret_len);
int enrolment_format(const struct enrolment *e, char **ret, size_t *ret_len);

/*
 * Strict and bounded: exactly the keys above, ids of 1..64 of [A-Za-z0-9._:@-], each PEM one
 * "-----BEGIN …" text of the kind named (a PEM holding a private key is refused anywhere),
 * url https:// without spaces or controls. -EBADMSG otherwise.
 */
int enrolment_request_parse(const void *data, size_t size, struct enrolment_request *ret);
int enrolment_parse(const void *data, size_t size, struct enrolment *ret);
int enrolment_request_load(const char *path, struct enrolment_request *ret);
int enrolment_load(const char *path, struct enrolment *ret);
