/* The biometric plugin ABI, version 1: what a vein reader's (or another vendor's) plugin exports to mamorid.
 */
#pragma once

/*
 * A plugin is a shared object loaded by mamorid with dlopen() from `[Biometric] VeinPlugin=`. The
 * file and every directory above it must be owned by root and not writable by group or others;
 * mamorid refuses anything else, a file without the symbols below, or one whose
 * mamori_bio_abi_version is not MAMORI_BIO_ABI_VERSION (agent/mamorid/bio-plugin-load.c).
 *
 * Plain C types only: no GLib, no C++ exceptions across the boundary. Every symbol has C linkage
 * and default visibility; a plugin should export nothing else. Version 1 is frozen: a change of
 * any signature or meaning below is a new MAMORI_BIO_ABI_VERSION.
 *
 * Threading: mamorid calls open, enroll, verify, identify and close from one worker thread, one
 * call at a time, and may block there for as long as the reader waits for a hand. cancel is the
 * only call made from another thread (the daemon's event loop), at any time while the device is
 * open, also while no call is running; it must not block, and makes a running (or the next)
 * enroll/verify/identify return -ECANCELED promptly (within about 100 ms).
 *
 * Templates are opaque bytes the plugin produces (enroll) and consumes (verify, identify): mamorid
 * stores them root-only and never looks inside. At most MAMORI_BIO_TEMPLATE_MAX bytes each.
 *
 * Return values: 0 (or the documented positive value) for success, otherwise a negative errno:
 *   -ECANCELED  cancelled by mamori_bio_cancel()
 *   -ENODEV     no reader, or it went away (mamorid reopens it later)
 *   -EAGAIN     no usable scan (moved, too short): the operator is asked to try again
 *   -ETIMEDOUT  nobody presented a hand within the plugin's own limit
 *   -EINVAL     a template the plugin does not understand
 *   -EIO        any other failure
 * A plugin never prints, never exits, never installs signal handlers and never forks: it runs
 * inside mamorid, which holds the terminal's signing keys. Messages go into the err buffers.
 */

#include <stddef.h>
#include <stdint.h>

#define MAMORI_BIO_ABI_VERSION  1u
#define MAMORI_BIO_TEMPLATE_MAX 65536u
#define MAMORI_BIO_ERROR_MAX    256u /* size of the err buffers: one line, no secrets */

/* The plugin's own device state; mamorid only passes the pointer back. */
typedef struct mamori_bio_device mamori_bio_device;

/* What the device can do, set by open. */
#define MAMORI_BIO_CAN_IDENTIFY 0x1u /* 1:N in the device or plugin (identify); else only verify */

struct mamori_bio_template {
        const uint8_t *data;
        size_t size;
};

/* Called by enroll on the worker thread after each capture: done of total captures taken. */
typedef void (*mamori_bio_progress_fn)(void *userdata, unsigned done, unsigned total);

/*
 * The exported symbols, by name, with these exact types (the loader resolves each with dlsym):
 *
 *   const uint32_t mamori_bio_abi_version;        = MAMORI_BIO_ABI_VERSION
 *   mamori_bio_open_fn     mamori_bio_open;
 *   mamori_bio_enroll_fn   mamori_bio_enroll;
 *   mamori_bio_verify_fn   mamori_bio_verify;
 *   mamori_bio_identify_fn mamori_bio_identify;
 *   mamori_bio_cancel_fn   mamori_bio_cancel;
 *   mamori_bio_close_fn    mamori_bio_close;
 */

/* Opens the reader. options is `[Biometric] VeinPluginOptions=` verbatim ("" when unset). On
 * success *ret_device and *ret_flags are set; on failure err holds one line. */
typedef int (*mamori_bio_open_fn)(const char *options, mamori_bio_device **ret_device, unsigned *ret_flags,
                                  char err[MAMORI_BIO_ERROR_MAX]);

/* Captures as many times as the device needs and writes one template into buf (buf_size >=
 * MAMORI_BIO_TEMPLATE_MAX): 0 and *ret_size, or a negative errno. progress may be NULL. */
typedef int (*mamori_bio_enroll_fn)(mamori_bio_device *device, mamori_bio_progress_fn progress,
                                    void *userdata, uint8_t *buf, size_t buf_size, size_t *ret_size);

/* One capture compared with one template: 1 match, 0 no match, or a negative errno. */
typedef int (*mamori_bio_verify_fn)(mamori_bio_device *device, const struct mamori_bio_template *template);

/* One capture compared with n templates: 1 and *ret_index of the match, 0 none, or a negative
 * errno. Only called when open set MAMORI_BIO_CAN_IDENTIFY. */
typedef int (*mamori_bio_identify_fn)(mamori_bio_device *device, const struct mamori_bio_template *gallery,
                                      size_t n, size_t *ret_index);

/* From any thread, never blocks: the running (or next) capture returns -ECANCELED. */
typedef void (*mamori_bio_cancel_fn)(mamori_bio_device *device);

/* Closes the reader and frees device. NULL is fine. */
typedef void (*mamori_bio_close_fn)(mamori_bio_device *device);

/* A plugin's own source defines MAMORI_BIO_PLUGIN before including this header, so the compiler
 * checks its definitions against these declarations. mamorid never links them: it uses dlsym(). */
#ifdef MAMORI_BIO_PLUGIN
#define MAMORI_BIO_EXPORT __attribute__((visibility("default")))
MAMORI_BIO_EXPORT extern const uint32_t mamori_bio_abi_version;
MAMORI_BIO_EXPORT int mamori_bio_open(const char *options, mamori_bio_device **ret_device,
                                      unsigned *ret_flags, char err[MAMORI_BIO_ERROR_MAX]);
MAMORI_BIO_EXPORT int mamori_bio_enroll(mamori_bio_device *device, mamori_bio_progress_fn progress,
                                        void *userdata, uint8_t *buf, size_t buf_size, size_t *ret_size);
MAMORI_BIO_EXPORT int mamori_bio_verify(mamori_bio_device *device,
                                        const struct mamori_bio_template *template);
MAMORI_BIO_EXPORT int mamori_bio_identify(mamori_bio_device *device,
                                          const struct mamori_bio_template *gallery, size_t n,
                                          size_t *ret_index);
MAMORI_BIO_EXPORT void mamori_bio_cancel(mamori_bio_device *device);
MAMORI_BIO_EXPORT void mamori_bio_close(mamori_bio_device *device);
#endif
