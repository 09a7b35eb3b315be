/* The newest PIN/password change of each operator in this terminal's own log (DESIGN §4 age rule). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mamori/macro.h"

/*
 * DESIGN §4: the age of a PIN or password comes from the bundle's pin_changed, overridden by a newer
 * pin.change/password.change of that operator in this terminal's own log — so a change made here
 * counts at once, before the centre's next bundle. Filled at start from the log's segments and
 * then from every such record mamorid writes. Bounded: at most SECRET_AGE_MAX operators (a terminal
 * serves one office); past that, new operators are not remembered (the bundle's age applies).
 */
#define SECRET_AGE_MAX 4096

typedef struct SecretAge SecretAge;

int secret_age_new(SecretAge **ret);
SecretAge *secret_age_free(SecretAge *sa);
DEFINE_TRIVIAL_CLEANUP_FUNC(SecretAge *, secret_age_free);

/* Keeps the later of what is known and ts (µs since the epoch). -E2BIG when full. */
int secret_age_note(SecretAge *sa, const char *op, int64_t ts);
/* The newest change of op, -1 when none is known. sa may be NULL. */
int64_t secret_age_get(const SecretAge *sa, const char *op);
/* One record line: noted when it is a pin.change/password.change naming an operator. */
int secret_age_scan_line(SecretAge *sa, const char *line, size_t len);
/* Every segment file (seg-*.log) of the log directory, not its quarantine. *ret_n: changes found. */
int secret_age_scan_directory(SecretAge *sa, const char *log_dir, unsigned *ret_n);
