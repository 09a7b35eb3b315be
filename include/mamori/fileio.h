/* Bounded whole-file reads for keys, policy bundles and other small files mamori trusts by path. */
#pragma once

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * Read the regular file at path (opened O_RDONLY|O_CLOEXEC|O_NOCTTY) if it is at most max bytes.
 * -E2BIG when larger (also if it grows while read), -EBADFD when not a regular file, -errno
 * from open/read. *ret is malloc'd, NUL-terminated, owned by the caller; *ret_size excludes the NUL.
 */
int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size);
/* The same for a descriptor the caller opened (with its own flags, e.g. O_NOFOLLOW); not closed. */
int read_fd_bounded(int fd, size_t max, char **ret, size_t *ret_size);

/*
 * A file only this process's user can have written: a regular file it owns, with no group or other
 * permission bits. 0; -EBADFD when not a regular file; -EPERM for another owner or a wider mode.
 */
int private_file_check(const struct stat *st);

/*
 * Opens path read-only (O_CLOEXEC|O_NOCTTY) when private_file_check() holds for it. Never follows a
 * symbolic link (-EPERM) nor waits on a FIFO (opened O_NONBLOCK, then -EBADFD); -errno of open/fstat
 * (-ENOENT when there is none). *ret_fd (the caller closes it) and *ret_st only on success.
 */
int open_private_file(const char *path, int *ret_fd, struct stat *ret_st);

/* fsync of the directory dir, or of the directory that holds path: a rename or unlink in it made
 * durable. -errno of open/fsync. */
int fsync_directory(const char *dir);
int fsync_parent_dir(const char *path);

/*
 * Replace path with data durably: write a temporary file beside it (mode), fsync it, rename it
 * over path, fsync the directory. Readers see the old or the new file, never a mix.
 */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
