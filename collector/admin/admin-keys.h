/* Custody of the centre's keys (DESIGN §11): what lives in mamori-admin's directory and how files
 * reach the collector's. */
#pragma once

#include <stdbool.h>

#include "admin.h"

/* In [Admin] Directory= (root only, 0700; 0750 when its group is mamori-admin). */
#define ADMIN_POLICY_KEY       "policy.key"
#define ADMIN_POLICY_PUB       "policy-signer.pub"
#define ADMIN_TERMINAL_CA_KEY  "terminal-ca.key"
#define ADMIN_TERMINAL_CA      "terminal-ca.pem"
#define ADMIN_COLLECTOR_CA_KEY "collector-ca.key"
#define ADMIN_COLLECTOR_CA     "collector-ca.pem"
#define ADMIN_GROUP            "mamori-admin"

/* In the collector's StateDirectory= (besides the receipt key, receipt-key.h): its TLS pair and the
 * public files it serves or trusts (copies). */
#define COLLECTOR_TLS_KEY  "collector.key"
#define COLLECTOR_TLS_CERT "collector.pem"

/*
 * The admin directory, ready: created 0700 when missing and create is set; modes tightened; keys
 * of an older centre moved out of the collector's state directory (with a message saying what to do
 * next). Prints what went wrong.
 */
int admin_keys_prepare(AdminContext *ctx, bool create);
/* "<admin directory>/<name>", malloc'd. */
char *admin_key_path(AdminContext *ctx, const char *name);
/* A file mamori-admin wrote into the collector's state directory gets that directory's owner. */
int admin_give_to_collector(AdminContext *ctx, const char *path);
