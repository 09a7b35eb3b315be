/* collector.conf: the [Collector] settings shared by mamori-collector and mamori-admin. */
#pragma once

#include <stdint.h>

#include "mamori/conf-parser.h"

struct collector_config {
        char *listen;   /* "ADDR:PORT" or "[V6ADDR]:PORT" */
        char *database; /* store URL ([Store] URL=, or the older [Collector] Database=): store_open() */
        char *state_directory; /* the collector's own: its TLS key and certificate, receipt key, trust */
        char *admin_directory; /* [Admin] Directory=: mamori-admin's keys, root only (DESIGN §11) */
        char *name;            /* "collector" of its receipts; NULL = the host name */
        uint32_t max_body_bytes;
        uint32_t max_batch_records;
        uint64_t idle_timeout_usec;
        uint64_t request_timeout_usec;
        uint32_t max_connections;
        uint32_t max_connections_per_ip; /* unauthenticated ones from one address */
        uint32_t max_unauthenticated;
        uint64_t silent_usec;       /* a terminal silent longer than this raises an alert */
        uint64_t silent_check_usec; /* how often that is checked */
        uint64_t policy_validity_usec;
        uint32_t workers;        /* [Collector] Workers=: request threads; 0 = automatic (2 × cores) */
        uint32_t verify_threads; /* VerifyThreads=: signature threads beside them, or
                                    COLLECTOR_VERIFY_THREADS_AUTO */
        char *operator_ca; /* [Cards] OperatorCA=: the CA card certificates must chain to (card issue) */
};

/* VerifyThreads=auto (the default): one per core but one (verify_pool_default_threads()). The server
 * takes the value as it is (HttpServerConfig.verify_threads). */
#define COLLECTOR_VERIFY_THREADS_AUTO UINT32_MAX

/* Defaults, then path (must exist) and path.d/ drop-ins. diag may be NULL. */
int collector_config_load(const char *path, conf_diag_fn diag, void *userdata, struct collector_config *ret);
void collector_config_free(struct collector_config *c);

/* Split "ADDR:PORT" / "[ADDR]:PORT" into a malloc'd numeric address and a port. */
int collector_parse_listen(const char *listen, char **ret_address, uint16_t *ret_port);

#define COLLECTOR_ADMIN_DIRECTORY "/var/lib/mamori-admin"

/* "<state>/<name>" malloc'd. */
char *collector_state_path(const struct collector_config *c, const char *name);
/* "<admin directory>/<name>" malloc'd. */
char *collector_admin_path(const struct collector_config *c, const char *name);
