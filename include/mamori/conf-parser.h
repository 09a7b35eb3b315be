/* systemd-style "[Section]" / "Key=value" config reader with drop-ins, driven by a key table. */
#pragma once

#include <stddef.h>

#define CONF_MAX_FILE_SIZE (256u * 1024) /* one config file */
#define CONF_MAX_LINE      4096u         /* one line, without the newline */
#define CONF_MAX_DROPINS   128u          /* files in one drop-in directory */

enum conf_level {
        CONF_WARNING,
        CONF_ERROR,
};

/* Receives each diagnostic once; the message never contains a secret, only file:line and key. */
typedef void (*conf_diag_fn)(void *userdata, enum conf_level level, const char *file, unsigned line,
                             const char *message);

/* Parses value into the field at data. Returns 0, or -errno with an optional reason in ret_why
 * (a static string such as "expected a duration like 300, 5min or 1h"). */
typedef int (*conf_value_parser)(const char *value, void *data, const char **ret_why);

struct conf_item {
        const char *section;
        const char *key;
        conf_value_parser parse;
        size_t offset; /* of the field inside the target struct */
};

struct conf_context {
        const struct conf_item *items;
        size_t n_items;
        void *target;      /* the struct the offsets point into */
        conf_diag_fn diag; /* may be NULL */
        void *userdata;
        unsigned n_errors; /* counted by the parser */
        unsigned n_warnings;
};

/* Parses one buffer as if it were the file "name". Returns 0 when there were no errors,
 * -EINVAL when at least one error was reported (all lines are still read, so every mistake is
 * shown at once). */
int conf_parse_buffer(struct conf_context *ctx, const char *name, const char *buf, size_t size);

/* Parses one file (bounded by CONF_MAX_FILE_SIZE). Missing file: -ENOENT, not reported. */
int conf_parse_file(struct conf_context *ctx, const char *path);

/* Parses path (must exist) and then every "*.conf" in dropin_dir (may be missing, may be NULL)
 * in lexical order, so later files win. */
int conf_parse_with_dropins(struct conf_context *ctx, const char *path, const char *dropin_dir);

/* A conf_diag_fn for check modes (--check-config): prints "file:line: error: message" (or
 * "warning:") to stderr and, when userdata is an unsigned *, counts every diagnostic there. */
void conf_diag_print(void *userdata, enum conf_level level, const char *file, unsigned line,
                     const char *message);

/* Value parsers for common field types. */
int conf_parse_string(const char *value, void *data, const char **ret_why);           /* char ** */
int conf_parse_path(const char *value, void *data, const char **ret_why);             /* char **, absolute */
int conf_parse_seconds(const char *value, void *data, const char **ret_why);          /* uint64_t µs */
int conf_parse_uint32(const char *value, void *data, const char **ret_why);           /* uint32_t */
int conf_parse_bool(const char *value, void *data, const char **ret_why);             /* bool */
int conf_parse_positive_uint32(const char *value, void *data, const char **ret_why);  /* uint32_t ≥ 1 */
int conf_parse_positive_seconds(const char *value, void *data, const char **ret_why); /* uint64_t µs > 0 */

/* An enum field (int-sized) set to the index of value in choices (NULL-terminated); why is the
 * message for anything else, e.g. "expected shared or per-operator". */
int conf_parse_choice(const char *value, const char *const choices[], int *field, const char *why,
                      const char **ret_why);
