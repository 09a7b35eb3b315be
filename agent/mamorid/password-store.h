/* The terminal's password verifiers: one root-only file per operator in [Secrets] PasswordDirectory. */
#pragma once

/*
 * DESIGN.md §4: verifiers are local to the terminal. The directory is mode 0700 and each file
 * (named by the operator id) mode 0600, holding one verifier line (mamori/password-verifier.h)
 * and a newline. A file is replaced by rename (write_file_atomic), never written in place, and
 * its modification time is when the password was set: the same moment as its password.change
 * record. Called from the password thread and, for the age, from the event loop; no logging.
 */

#include <stdint.h>

/* 0 when id can name a file here: 1..64 bytes of [A-Za-z0-9._:@-], not starting with '.'. */
int password_store_check_id(const char *operator_id);

/* Creates directory (0700) when missing. -EPERM when it exists but is not a directory of ours
 * that only we can enter (mode & 077, or another owner). */
int password_store_prepare(const char *directory);

/* The verifier line of operator_id (malloc'd, newline removed) and when it was set (µs since the
 * epoch). -ENOENT when none is set, -EPERM when the file is readable by others or not ours,
 * -E2BIG when over the verifier bound. */
int password_store_read(const char *directory, const char *operator_id, char **ret_verifier,
                        int64_t *ret_changed_usec);

/* When operator_id's password was set; -ENOENT when none is. */
int password_store_changed(const char *directory, const char *operator_id, int64_t *ret_changed_usec);

/* Replaces operator_id's verifier durably (temp file 0600, fsync, rename, fsync directory). */
int password_store_write(const char *directory, const char *operator_id, const char *verifier);

/* Removes operator_id's verifier durably (unlink, fsync directory): their next login has no password
 * until they set one, as on their first login here. -ENOENT when none is set. */
int password_store_remove(const char *directory, const char *operator_id);
