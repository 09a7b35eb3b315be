/* Enrolled fingerprints on disk: one root-only directory per operator, one fp_print_serialize() file per
 * finger. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Layout: DIR/<operator id>/<slot>.print, slot 1..PRINT_SLOTS_MAX; DIR and the operator
 * directories 0700, files 0600, all owned by mamorid's user (root). The file is libfprint's own
 * serialization, unwrapped (the print carries the operator id as its user name; the worker checks
 * that it names the directory it was read from). Reads are bounded (FINGER_PRINT_MAX) and refuse
 * anything that is not a regular file of ours that only we can write: a print someone else could
 * have swapped is never compared with.
 */

#define PRINT_SLOTS_MAX 5

struct stored_print {
        char operator_id[65];
        unsigned slot;
        uint8_t *data; /* NULL in listings */
        size_t size;
        int64_t mtime_usec;
};

struct print_set {
        struct stored_print *items;
        size_t n;
};

void print_set_done(struct print_set *s);

/* Whether operator_id can name a directory here: 1..64 of [A-Za-z0-9._:@-], not starting with '.'. */
bool print_store_id_ok(const char *operator_id);

/* Stores a new print in the first free slot: ret_slot. -ENOSPC when every slot is taken. */
int print_store_save(const char *dir, const char *operator_id, const uint8_t *data, size_t size,
                     unsigned *ret_slot);
/* Deletes every print of operator_id (and its directory): ret_deleted files (0 when none). */
int print_store_delete(const char *dir, const char *operator_id, unsigned *ret_deleted);
/* Every stored print, without the data when with_data is 0, in directory order. A missing DIR is
 * an empty set. Entries that are not ours are skipped. */
int print_store_list(const char *dir, int with_data, struct print_set *ret);
/* The operator ids that have a directory here (for deleting those of retired operators). */
int print_store_operators(const char *dir, char ***ret, size_t *ret_n);
