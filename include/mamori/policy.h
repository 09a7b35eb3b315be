/* Signed policy bundle (DESIGN.md §8): strict parse into structs, signature check, lookups. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mamori/crypto-util.h"
#include "mamori/macro.h"

#define POLICY_VERSION       1
#define POLICY_FILE_MAX      (32u * 1024u * 1024u)
#define POLICY_ID_MAX        64u  /* ids: 1..64 of [A-Za-z0-9._:@-]; card ids: 64 lowercase hex */
#define POLICY_NAME_MAX      256u /* operator display name, UTF-8 bytes */
#define POLICY_OFFICES_MAX   4096u
#define POLICY_TERMINALS_MAX 65536u
#define POLICY_OPERATORS_MAX 65536u
#define POLICY_GROUPS_MAX    16384u
#define POLICY_CARDS_MAX     131072u
#define POLICY_LIST_MAX      1024u /* offices/roles of one operator, offices/members of one group */

typedef enum PolicyStatus {
        POLICY_STATUS_ACTIVE,
        POLICY_STATUS_SUSPENDED,
        POLICY_STATUS_RETURNED, /* cards only */
        POLICY_STATUS_RETIRED,  /* operators only: left the service */
} PolicyStatus;

typedef enum PolicyCardKind {
        POLICY_CARD_INDIVIDUAL,
        POLICY_CARD_GROUP,
} PolicyCardKind;

typedef struct PolicyOffice {
        char *id;
        char *hours; /* "HH:MM-HH:MM" or NULL when absent */
} PolicyOffice;

typedef struct PolicyTerminal {
        char *id;
        char *office; /* an id in offices[] */
} PolicyTerminal;

typedef struct PolicyOperator {
        char *id;
        char *name; /* NULL when absent */
        char **offices;
        size_t n_offices;
        PolicyStatus status; /* active | suspended | retired */
        char **roles;        /* empty when absent */
        size_t n_roles;
        int64_t pin_changed; /* µs since the epoch; -1 when absent */
} PolicyOperator;

typedef struct PolicyGroup {
        char *id;
        char **offices;
        size_t n_offices;
        char **members; /* operator ids */
        size_t n_members;
} PolicyGroup;

typedef struct PolicyCard {
        char id[SHA256_HEX_MAX]; /* card id: hex SHA-256 of the DER certificate */
        PolicyCardKind kind;
        char *operator; /* kind individual: an operator id; else NULL */
        char *group;    /* kind group: a group id; else NULL */
        PolicyStatus status;
} PolicyCard;

/*
 * A parsed, verified bundle. Owns everything it points to; policy_free() releases it. Arrays are
 * sorted by id (not in file order) so the lookups below are binary searches.
 */
typedef struct Policy {
        int64_t serial;
        int64_t issued, expires; /* µs since the epoch */
        bool emergency;
        PolicyOffice *offices;
        size_t n_offices;
        PolicyTerminal *terminals;
        size_t n_terminals;
        PolicyOperator *operators;
        size_t n_operators;
        PolicyGroup *groups;
        size_t n_groups;
        PolicyCard *cards;
        size_t n_cards;
} Policy;

Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);
#define _cleanup_policy_ _cleanup_(policy_freep)

/*
 * Parse and verify a bundle. The signature is checked before any field is interpreted.
 *   -EBADMSG      malformed: bad JSON, wrong/missing/unknown field, bad value, duplicate id,
 *                 a reference to an unknown office/operator/group, v != 1
 *   -ENOKEY       no "sig"
 *   -EKEYREJECTED "sig" does not verify with signer (tampered bundle or wrong key)
 *   -E2BIG        over a size or count bound
 *   -ERANGE       an integer out of range
 *   -ENOMEM
 * A trailing "\n" after the object is allowed. signer must be an Ed25519 public (or private) key.
 */
int policy_parse(const void *data, size_t size, EVP_PKEY *signer, Policy **ret);

/* policy_parse() of a regular file read with O_CLOEXEC, at most POLICY_FILE_MAX bytes. */
int policy_load_file(const char *path, EVP_PKEY *signer, Policy **ret);

/* Short stable reason for a policy_parse() error, for the policy.reject record ("bad-signature"…). */
const char *policy_error_reason(int err);

/* Lookups by id; NULL when absent. The pointers borrow from p. */
const PolicyCard *policy_find_card(const Policy *p, const char *id);
const PolicyOperator *policy_find_operator(const Policy *p, const char *id);
const PolicyGroup *policy_find_group(const Policy *p, const char *id);
const PolicyTerminal *policy_find_terminal(const Policy *p, const char *id);
const PolicyOffice *policy_find_office(const Policy *p, const char *id);

bool policy_operator_in_office(const PolicyOperator *op, const char *office);
bool policy_group_has_member(const PolicyGroup *g, const char *operator_id);
bool policy_group_in_office(const PolicyGroup *g, const char *office);

/* true when now_usec is past expires (the bundle is stale). */
bool policy_is_stale(const Policy *p, int64_t now_usec);

/* 0 when candidate may replace current (serial not lower), -ESTALE when it would go back. */
int policy_check_serial(const Policy *current, const Policy *candidate);
