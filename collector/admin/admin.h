/* mamori-admin verbs shared between its files: the context every verb gets. */
#pragma once

#include <stdint.h>

#include "collector-config.h"
#include "store.h"

typedef struct AdminContext {
        struct collector_config config;
        Store *store; /* opened lazily by admin_store() */
} AdminContext;

int admin_store(AdminContext *ctx, Store **ret);
int64_t admin_now_usec(void);

/* Verbs: argc/argv start at the verb's own arguments (argv[0] = the verb name). Exit codes. */
int admin_policy_publish(AdminContext *ctx, int argc, char **argv);
int admin_policy_refresh(AdminContext *ctx, int argc, char **argv);
int admin_emergency_clear(AdminContext *ctx, int argc, char **argv);
int admin_policy_signer(AdminContext *ctx, int argc, char **argv);
int admin_policy_show(AdminContext *ctx, int argc, char **argv);
int admin_verify(AdminContext *ctx, int argc, char **argv);
int admin_export(AdminContext *ctx, int argc, char **argv);
int admin_alerts(AdminContext *ctx, int argc, char **argv);
