/* PIV (SP 800-73-4) command APDU builders and response parsers: pure functions, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Short APDUs only: 5-byte header + up to 255 data bytes + Le. */
#define APDU_MAX_COMMAND 261
/* Up to 256 data bytes + SW1 SW2 per response. */
#define APDU_MAX_RESPONSE 258
/* Hard caps for a response assembled from 61 xx / GET RESPONSE rounds. */
#define APDU_MAX_ASSEMBLED (16u * 1024u)
#define APDU_MAX_ROUNDS    80u

#define PIV_PIN_REF       0x80
#define PIV_KEY_AUTH      0x9A
#define PIV_ALG_RSA2048   0x07
#define PIV_ALG_ECC_P256  0x11
#define PIV_ALG_ECC_P384  0x14
#define PIV_RSA2048_BYTES 256
#define PIV_CERT_MAX_DER  (12u * 1024u)

extern const uint8_t piv_aid[9];
extern const uint8_t piv_tag_cert_auth[3]; /* 5F C1 05 */

#define SW_OK                     0x9000
#define SW1_MORE_DATA             0x61
#define SW1_WRONG_LE              0x6C
#define SW_SECURITY_NOT_SATISFIED 0x6982
#define SW_AUTH_BLOCKED           0x6983

/* Builders return the APDU length, or -ENOBUFS/-EINVAL. buf needs APDU_MAX_COMMAND bytes unless
 * said otherwise. */
int apdu_build(uint8_t *buf, size_t cap, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
               const uint8_t *data, size_t dlen, bool le);
int piv_build_select(uint8_t *buf, size_t cap, const uint8_t *aid, size_t aid_len);
int piv_build_get_data(uint8_t *buf, size_t cap, const uint8_t *tag, size_t tag_len);
int piv_build_get_response(uint8_t *buf, size_t cap, uint8_t le);
int piv_build_verify_status(uint8_t *buf, size_t cap, uint8_t pin_ref);

/* PIN must be 6-8 ASCII digits (-EINVAL otherwise, nothing written). The APDU carries the PIN:
 * the caller wipes buf after sending it. */
int piv_pin_check(const char *pin);
int piv_build_verify_pin(uint8_t *buf, size_t cap, uint8_t pin_ref, const char *pin);
int piv_build_change_pin(uint8_t *buf, size_t cap, uint8_t pin_ref, const char *old_pin,
                         const char *new_pin);

/* The dynamic authentication template 7C { 82 00, 81 <payload> } (the GENERAL AUTHENTICATE data
 * field). Returns its length. */
int piv_build_auth_template(uint8_t *buf, size_t cap, const uint8_t *payload, size_t plen);

/* PKCS#1 v1.5 type 1 block of DigestInfo(SHA-256, digest), 256 bytes, for the raw RSA operation. */
int piv_build_rsa2048_pkcs1_sha256(uint8_t ret_block[PIV_RSA2048_BYTES], const uint8_t digest[32]);

/* 53 { 70 cert, 71 info, FE ... } → the DER (or gzip stream) in *ret_cert and whether bit 0 of
 * the 71 info byte says gzip. Points into buf. -EBADMSG if malformed, -ENOENT if there is no 70. */
int piv_parse_cert_object(const uint8_t *buf, size_t len, const uint8_t **ret_cert, size_t *ret_len,
                          bool *ret_gzip);

/* 7C { 82 <signature> } → pointer to the signature inside buf. */
int piv_parse_auth_response(const uint8_t *buf, size_t len, const uint8_t **ret_sig, size_t *ret_len);

/* Status word → 0 for 90 00, or a CARD_E_* error (mamori/card.h). 63 Cx stores x in
 * *ret_tries (if non-NULL) and returns CARD_E_PIN_WRONG. */
int piv_status_to_errno(uint16_t sw, unsigned *ret_tries);
