/* The password failure counts kept across restarts: one root-only file, its bounded codec, load and save. */
#pragma once

/*
 * The rule (how a count grows into a delay, when it is forgotten, what a file that cannot be
 * trusted means) lives in session-password.c; this file only keeps its state on disk so that a
 * restart of mamorid does not start every operator's count at zero. Times are CLOCK_REALTIME µs
 * (the monotonic clock does not survive a reboot). The file, <PasswordDirectory>/.failures (a
 * dot name no operator id can have), is text:
 *
 *     mamori-password-failures 1
 *     floor COUNT LAST NEXT
 *     op ID COUNT LAST NEXT          (0 to PASSWORD_FAILURE_ENTRIES_MAX lines, ids unique)
 *
 * "floor" applies to every operator without a line of their own (the count a file that could not
 * be read leaves behind; 0 0 0 normally). Every line ends with "\n"; nothing else is accepted.
 * No logging: callers say what happened.
 */

#include <stddef.h>
#include <stdint.h>

#define PASSWORD_FAILURE_ENTRIES_MAX 64
#define PASSWORD_FAILURE_COUNT_MAX   32
#define PASSWORD_FAILURE_ID_MAX      65 /* 64 bytes of password_store_check_id() + NUL */
#define PASSWORD_FAILURES_FILE_MAX   (16 * 1024)
#define PASSWORD_FAILURES_FILE_NAME  ".failures"

struct password_failure_entry {
        char operator_id[PASSWORD_FAILURE_ID_MAX]; /* "" in the floor */
        uint32_t count;                            /* 0..PASSWORD_FAILURE_COUNT_MAX */
        int64_t last_usec;                         /* the last failure, CLOCK_REALTIME µs; 0 none */
        int64_t next_usec;                         /* no answer for this operator before; 0 none */
};

struct password_failure_file {
        struct password_failure_entry floor;
        size_t n;
        struct password_failure_entry entries[PASSWORD_FAILURE_ENTRIES_MAX];
};

/* Parses size bytes (at most PASSWORD_FAILURES_FILE_MAX). -EBADMSG on anything but the format above
 * (unknown version, a bad number, a count over the maximum, a duplicate or malformed id, too many
 * lines, a missing newline, a NUL), -E2BIG when over the size bound. ret written only on success. */
int password_failure_file_parse(const char *data, size_t size, struct password_failure_file *ret);

/* The canonical text of f (malloc'd, NUL-terminated; *ret_size without the NUL). -EINVAL for an
 * entry the parser would refuse. */
int password_failure_file_format(const struct password_failure_file *f, char **ret, size_t *ret_size);

/* <directory>/.failures into buf. */
int password_failure_file_path(const char *directory, char *buf, size_t size);

/* Reads and parses the file at path. -ENOENT when there is none (nothing counted yet); -EPERM
 * when it is not a regular file of ours with mode 0600 or stricter (or a symbolic link); the
 * parser's errors. ret written only on success. */
int password_failure_file_load(const char *path, struct password_failure_file *ret);

/* Replaces the file at path durably (temporary file 0600, fsync, rename, fsync directory). */
int password_failure_file_save(const char *path, const struct password_failure_file *f);
