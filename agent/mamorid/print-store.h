/* Enrolled biometric templates on disk (fingerprints and vein patterns): one root-only directory per
 * operator, one file per enrolled finger or hand. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Layout: DIR/<operator id>/<slot>.<suffix>, slot 1..PRINT_SLOTS_MAX per modality: "N.print" for a
 * fingerprint (libfprint's own fp_print_serialize(), unwrapped: the print carries the operator id
 * as its user name and the finger worker checks that it names the directory it was read from),
 * "N.vein" for a vein template (the plugin's opaque bytes, auth/bio-plugin.h). DIR and the operator
 * directories 0700, files 0600, all owned by mamorid's user (root). One store for both modalities,
 * so the rules (who may read, what is ours, what a retired operator leaves behind) are written
 * once. Reads are bounded (per file by the modality's maximum, per load by PRINT_STORE_LOAD_MAX
 * bytes) and refuse anything that is not a regular file of ours that only we can write: a template
 * someone else could have swapped is never compared with.
 */

#define PRINT_SLOTS_MAX      5
#define PRINT_OPERATOR_MAX   65             /* id + NUL */
#define PRINT_FINGER_MAX     (1u << 20)     /* a serialized print larger than this is refused */
#define PRINT_VEIN_MAX       65536u         /* = MAMORI_BIO_TEMPLATE_MAX (checked in vein-worker.c) */
#define PRINT_STORE_LOAD_MAX (256ull << 20) /* bytes of templates one load holds at most */

enum bio_modality {
        BIO_MODALITY_FINGER,
        BIO_MODALITY_VEIN,
        _BIO_MODALITY_MAX,
};

/* "finger", "vein"; NULL for anything else. */
const char *bio_modality_to_string(enum bio_modality m);
/* The modality named s, or -EINVAL. */
int bio_modality_from_string(const char *s);

struct stored_print {
        char operator_id[PRINT_OPERATOR_MAX];
        enum bio_modality modality;
        unsigned slot;
        uint8_t *data; /* NULL in listings */
        size_t size;
        int64_t mtime_usec;
};

struct print_set {
        struct stored_print *items;
        size_t n;
};

/* Wipes and frees the data, empties the set. */
void print_set_done(struct print_set *s);

/* Whether operator_id can name a directory here: 1..64 of [A-Za-z0-9._:@-], not starting with '.'. */
bool print_store_id_ok(const char *operator_id);

/* Stores a new template of modality m in its first free slot: ret_slot. -ENOSPC when every slot of
 * that modality is taken, -EINVAL for a bad id, an empty or oversized template, -EPERM when DIR or
 * the operator's directory is not ours. */
int print_store_save(const char *dir, enum bio_modality m, const char *operator_id, const uint8_t *data,
                     size_t size, unsigned *ret_slot);
/* Deletes every template of modality m of operator_id: ret_deleted files (0 when none). When no
 * template of any modality is left, the operator's directory goes too (with leftover temporaries). */
int print_store_delete(const char *dir, enum bio_modality m, const char *operator_id, unsigned *ret_deleted);
/* Every stored template of modality m, without data, in directory order. A missing DIR is an empty
 * set. Entries that are not ours are skipped. */
int print_store_list(const char *dir, enum bio_modality m, struct print_set *ret);
/* The templates of modality m of the operators in allowed (sorted with strcmp), with their data;
 * other operators' files are not opened. -EFBIG when they would exceed PRINT_STORE_LOAD_MAX bytes. */
int print_store_load(const char *dir, enum bio_modality m, char *const *allowed, size_t n_allowed,
                     struct print_set *ret);
/* The operator ids that have a directory here (for deleting those of retired operators). */
int print_store_operators(const char *dir, char ***ret, size_t *ret_n);
