/* Loads a biometric plugin (auth/bio-plugin.h) from a root-owned path, or refuses it with a clear reason. */
#pragma once

#include <stddef.h>

#include "bio-plugin.h"

/* A loaded plugin: the dlopen handle and its resolved entry points. */
typedef struct BioPlugin {
        void *handle;
        mamori_bio_open_fn open;
        mamori_bio_enroll_fn enroll;
        mamori_bio_verify_fn verify;
        mamori_bio_identify_fn identify;
        mamori_bio_cancel_fn cancel;
        mamori_bio_close_fn close;
} BioPlugin;

#define BIO_PLUGIN_WHY_MAX 512

/*
 * Checks path before anything of it runs: absolute; every directory from / down, walked without
 * following symlinks, owned by root and not writable by group or others (a root-owned directory
 * with the sticky bit, like /tmp, is accepted above the plugin's own directory, never as it); the
 * file itself a regular file owned by root, not writable by group or others. Then dlopen()s
 * exactly the file that was checked (through its descriptor), and resolves the ABI version and
 * the six entry points.
 *
 * 0 and *ret; else -errno and one line in why (for the journal, naming the file and what to do):
 * -EINVAL not absolute / not a regular file, -EPERM wrong owner or mode (file or directory),
 * -ENOENT missing, -ENOEXEC not a loadable library or not a mamori plugin (no version symbol),
 * -EPROTO another ABI version, -ENOSYS a missing entry point. Nothing stays loaded on failure.
 */
int bio_plugin_load(const char *path, BioPlugin **ret, char why[BIO_PLUGIN_WHY_MAX]);

/* dlclose()s. Call only when no plugin call runs and the device is closed. NULL is fine. */
BioPlugin *bio_plugin_unload(BioPlugin *p);
