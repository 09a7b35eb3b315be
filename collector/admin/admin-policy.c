/* mamori-admin policy verbs: build the §8 bundle from the registry, sign, publish, refresh, clear an
 * emergency. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin-keys.h"
#include "admin.h"
#include "mamori/crypto-util.h"
#include "mamori/fileio.h"
#include "mamori/jcs.h"
#include "mamori/policy.h"
#include "mamori/signed-json.h"

static int load_policy_key(AdminContext *ctx, EVP_PKEY **ret)
{
        _cleanup_free_ char *path = admin_key_path(ctx, ADMIN_POLICY_KEY);
        if (!path)
                return -ENOMEM;
        int r = admin_keys_prepare(ctx, false);
        if (r < 0)
                return r;
        r = pem_load_private_key(path, ret);
        if (r < 0)
                fprintf(stderr, "mamori-admin: cannot load %s: %s\n", path, strerror(-r));
        return r;
}

int admin_policy_signer(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *path = admin_key_path(ctx, ADMIN_POLICY_PUB);
        _cleanup_free_ char *copy = collector_state_path(&ctx->config, ADMIN_POLICY_PUB);
        _cleanup_free_ char *pem = NULL;
        size_t size;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin policy signer\n");
                return 2;
        }
        if (!path || !copy)
                return 1;
        /* The public half: the collector's copy serves who may not read the admin directory. */
        r = read_file_bounded(path, PEM_FILE_MAX, &pem, &size);
        if (r < 0 && read_file_bounded(copy, PEM_FILE_MAX, &pem, &size) >= 0)
                r = 0;
        if (r < 0) {
                fprintf(stderr, "mamori-admin: cannot read %s: %s\n", path, strerror(-r));
                return 1;
        }
        fwrite(pem, 1, size, stdout);
        return 0;
}

static void fmt_time(int64_t usec, char buf[32])
{
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The newest published bundle as stored, verified with our key; -ENOENT when none was published.
 * *reterr_said: set when it printed why it failed (the bundle does not verify). */
static int latest_bundle(Store *s, EVP_PKEY *key, char **ret_text, size_t *ret_len, Policy **ret_policy,
                         bool *reterr_said)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_policy_ Policy *p = NULL;
        size_t len;
        int r;

        r = store_policy_latest(s, NULL, &text, &len);
        if (r < 0)
                return r;
        r = policy_parse(text, len, key, &p);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: the stored bundle does not verify: %s\n",
                        policy_error_reason(r));
                *reterr_said = true;
                return r;
        }
        if (ret_text)
                *ret_text = TAKE_PTR(text);
        if (ret_len)
                *ret_len = len;
        *ret_policy = TAKE_PTR(p);
        return 0;
}

/* Sets serial, issued, expires and sig on bundle, checks it with the terminals' codec and stores it
 * (inside the caller's transaction). *reterr_said: set when it printed why it failed (the codec). */
static int sign_and_store(AdminContext *ctx, Store *s, EVP_PKEY *key, JsonValue *bundle, int64_t serial,
                          int64_t now, char **ret_text, size_t *ret_len, Policy **ret_check,
                          bool *reterr_said)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_policy_ Policy *check = NULL;
        size_t len;
        int r;

        static const char *const dated[] = {"sig", "v", "serial", "issued", "expires"};
        for (size_t i = 0; i < ELEMENTSOF(dated); i++)
                (void)json_object_remove(bundle, dated[i]); /* absent in a bundle from the registry */
        if ((r = json_object_set_integer(bundle, "v", POLICY_VERSION)) < 0 ||
            (r = json_object_set_integer(bundle, "serial", serial)) < 0 ||
            (r = json_object_set_integer(bundle, "issued", now)) < 0 ||
            (r = json_object_set_integer(bundle, "expires",
                                         now + (int64_t)ctx->config.policy_validity_usec)) < 0 ||
            (r = signed_json_sign(bundle, key, NULL)) < 0 ||
            (r = jcs_serialize(bundle, NULL, &text, &len)) < 0)
                return r;
        /* What terminals will run must parse: check with the same codec before publishing. */
        r = policy_parse(text, len, key, &check);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: the bundle does not pass the policy codec: %s\n",
                        policy_error_reason(r));
                *reterr_said = true;
                return r;
        }
        r = store_policy_add(s, serial, now, text, len);
        if (r < 0)
                return r;
        *ret_text = TAKE_PTR(text);
        *ret_len = len;
        *ret_check = TAKE_PTR(check);
        return 0;
}

/* Sets each operator's pin_changed in a published bundle to what the store knows now (§8); *ret_n: how
 * many changed. */
static int update_pin_changed(Store *s, JsonValue *bundle, size_t *ret_n)
{
        const JsonValue *ops;
        size_t n = 0;
        int r;

        r = json_object_get_array(bundle, "operators", &ops);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ops->array.n; i++) {
                JsonValue *o = ops->array.items[i];
                const char *id;
                int64_t ts, have = -1;

                if (json_object_get_string(o, "id", &id) < 0)
                        return -EBADMSG;
                r = store_secret_get(s, id, &ts);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                (void)json_object_get_integer(o, "pin_changed", &have);
                if (have == ts)
                        continue;
                (void)json_object_remove(o, "pin_changed");
                r = json_object_set_integer(o, "pin_changed", ts);
                if (r < 0)
                        return r;
                n++;
        }
        *ret_n = n;
        return 0;
}

/* A bundle from the registry as it is now. */
static int registry_bundle(Store *s, bool emergency, JsonValue **ret)
{
        _cleanup_json_ JsonValue *bundle = NULL;
        int r;

        if ((r = json_new_object(&bundle)) < 0 ||
            (r = json_object_set_boolean(bundle, "emergency", emergency)) < 0 ||
            (r = store_registry_to_policy(s, bundle)) < 0)
                return r;
        *ret = TAKE_PTR(bundle);
        return 0;
}

static int write_out(const char *out, const char *text, size_t len)
{
        int r = out ? write_file_atomic(out, text, len, 0644) : 0;
        if (r < 0)
                fprintf(stderr, "mamori-admin: cannot write %s: %s\n", out, strerror(-r));
        return r;
}

/* A history detail "by=ACTOR serial=N[ reason=TEXT]". */
static int emergency_history(Store *s, int64_t now, const char *action, int64_t serial, const char *reason)
{
        _cleanup_free_ char *actor = admin_actor(), *detail = NULL;

        if (!actor || asprintf(&detail, "by=%s serial=%" PRId64 "%s%s", actor, serial,
                               reason ? " reason=" : "", reason ?: "") < 0)
                return -ENOMEM;
        if (store_set_reason(s, reason) < 0)
                return -ENOMEM;
        return store_history_add(s, now, "emergency", "policy", action, detail);
}

/* One change of the published policy: store, key and the newest bundle, read inside a transaction that
 * change_publish() commits (with the new bundle signed and stored) and change_fail() rolls back. */
struct policy_change {
        Store *s;
        EVP_PKEY *key;
        Policy *latest; /* NULL: nothing published yet */
        char *latest_text;
        size_t latest_len;
        char *text; /* the new bundle, after change_publish() */
        size_t len;
        Policy *check;
        bool read;       /* latest is what is published (NULL: nothing yet) */
        bool said;       /* the failure's cause was printed already (a bundle that does not verify) */
        bool committing; /* the failure is the commit's */
};

static void change_done(struct policy_change *c)
{
        EVP_PKEY_free(c->key);
        policy_free(c->latest);
        policy_free(c->check);
        free(c->latest_text);
        free(c->text);
}

/*
 * Rolls a failed change back and says what it leaves: nothing published, the collector keeps serving the
 * bundle it served (its serial, and whether it locks terminals: what an emergency publish or clear did
 * not change) — or, when the connection was lost as it committed, maybe published. Then what to do.
 * Exit code 1.
 */
static int change_fail(struct policy_change *c, int r, const char *verb)
{
        char kept[96] = "the collector serves the policy it served before";

        store_rollback(c->s);
        if (c->committing && r == -ECONNRESET) { /* store.h: the server may have committed it */
                fprintf(stderr,
                        "mamori-admin: %s: the connection to the database was lost as the new policy was "
                        "committed: it may or may not be published. See mamori-admin policy show (its "
                        "serial) before running it again\n",
                        verb);
                return 1;
        }
        if (c->read && c->latest)
                snprintf(kept, sizeof(kept), "the collector keeps serving policy serial %" PRId64 "%s",
                         c->latest->serial,
                         c->latest->emergency ? " (emergency lock in force)" : " (no emergency lock)");
        else if (c->read)
                snprintf(kept, sizeof(kept), "no policy is published yet");
        if (c->said)
                fprintf(stderr, "mamori-admin: %s failed (above); nothing was published: %s\n", verb, kept);
        else
                fprintf(stderr,
                        "mamori-admin: %s failed: %s; nothing was published: %s. Run the same command "
                        "again; if it fails the same way, %s\n",
                        verb, strerror(-r), kept, admin_store_why(c->s, r));
        return 1;
}

/* Exit code: 0 = in a transaction with c->latest read, 1 = failed (printed why). */
static int change_begin(AdminContext *ctx, struct policy_change *c, const char *verb)
{
        int r;

        if (admin_store(ctx, &c->s) < 0 || load_policy_key(ctx, &c->key) < 0)
                return 1;
        r = store_begin(c->s);
        if (r < 0)
                return change_fail(c, r, verb);
        r = latest_bundle(c->s, c->key, &c->latest_text, &c->latest_len, &c->latest, &c->said);
        if (r < 0 && r != -ENOENT)
                return change_fail(c, r, verb);
        c->read = true;
        return 0;
}

/* Signs bundle as serial, stores it, commits, writes --out. Exit code (0, or 1 printed why). */
static int change_publish(AdminContext *ctx, struct policy_change *c, JsonValue *bundle, int64_t serial,
                          int64_t now, int (*also)(struct policy_change *c, void *userdata), void *userdata,
                          const char *out, const char *verb)
{
        int r = sign_and_store(ctx, c->s, c->key, bundle, serial, now, &c->text, &c->len, &c->check,
                               &c->said);
        if (r >= 0 && also)
                r = also(c, userdata);
        if (r >= 0) {
                c->committing = true;
                r = store_commit(c->s);
        }
        if (r < 0)
                return change_fail(c, r, verb);
        return write_out(out, c->text, c->len) < 0 ? 1 : 0;
}

/* The emergency's history row, written in the publishing transaction. */
struct emergency_row {
        const char *action;
        int64_t now;
        const char *reason;
};

static int add_emergency_row(struct policy_change *c, void *userdata)
{
        const struct emergency_row *e = userdata;
        return emergency_history(c->s, e->now, e->action, c->check->serial, e->reason);
}

int admin_policy_publish(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"emergency", no_argument, NULL, 'e'},
                {"reason", required_argument, NULL, 'r'},
                {"out", required_argument, NULL, 'o'},
                {},
        };
        _cleanup_(change_done) struct policy_change c = {};
        _cleanup_json_ JsonValue *bundle = NULL;
        const char *out = NULL, *reason = NULL;
        bool emergency = false, sticky = false;
        int64_t serial = 1, now = admin_now_usec();
        int k, r;

        optind = 0;
        while ((k = getopt_long(argc, argv, "er:o:", options, NULL)) >= 0)
                switch (k) {
                case 'e':
                        emergency = true;
                        break;
                case 'r':
                        reason = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || (reason && !emergency)) {
                fprintf(stderr,
                        "usage: mamori-admin policy publish [--emergency [--reason TEXT]] [--out FILE]\n");
                return 2;
        }
        if (reason && !admin_reason_valid(reason))
                return 2;
        if (change_begin(ctx, &c, "policy publish") != 0)
                return 1;
        if (c.latest) {
                serial = c.latest->serial + 1;
                /* §8: an emergency stays until `emergency clear`; an ordinary publish never lifts it. */
                sticky = c.latest->emergency && !emergency;
        }
        r = registry_bundle(c.s, emergency || sticky, &bundle);
        if (r < 0)
                return change_fail(&c, r, "policy publish");
        /* A new emergency is a history row; one already in force is not set again. */
        bool new_emergency = emergency && !(c.latest && c.latest->emergency);
        if (change_publish(ctx, &c, bundle, serial, now, new_emergency ? add_emergency_row : NULL,
                           &(struct emergency_row){"set", now, reason}, out, "policy publish") != 0)
                return 1;
        printf("published policy serial %" PRId64 " (%zu operators, %zu cards)%s\n", serial,
               c.check->n_operators, c.check->n_cards,
               c.check->emergency ? ", emergency lock in force" : "");
        if (sticky)
                printf("the emergency of serial %" PRId64
                       " stays set; lift it with: mamori-admin emergency clear --reason TEXT\n",
                       c.latest->serial);
        return 0;
}

int admin_policy_refresh(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"out", required_argument, NULL, 'o'},
                {},
        };
        _cleanup_(change_done) struct policy_change c = {};
        _cleanup_json_ JsonValue *bundle = NULL;
        const char *out = NULL;
        int64_t now = admin_now_usec(), due;
        char when[32], until[32], aged_s[48];
        size_t aged = 0;
        int k, r;

        optind = 0;
        while ((k = getopt_long(argc, argv, "o:", options, NULL)) >= 0)
                switch (k) {
                case 'o':
                        out = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "usage: mamori-admin policy refresh [--out FILE]\n");
                return 2;
        }
        if (change_begin(ctx, &c, "policy refresh") != 0)
                return 1;
        if (!c.latest) {
                store_rollback(c.s);
                fprintf(stderr, "mamori-admin: no policy published yet: run mamori-admin policy publish\n");
                return 1;
        }
        /* The same content, newly dated and signed — with the PIN ages the centre learnt since. */
        r = json_parse(c.latest_text, c.latest_len,
                       &(JsonLimits){.max_size = POLICY_FILE_MAX,
                                     .max_depth = 8,
                                     .max_members = POLICY_CARDS_MAX,
                                     .max_string = 4096},
                       JSON_PARSE_ALLOW_FINAL_NEWLINE, &bundle, NULL);
        if (r < 0 || (r = update_pin_changed(c.s, bundle, &aged)) < 0)
                return change_fail(&c, r, "policy refresh");
        /* §8 lifecycle: re-sign once half the validity has passed, so no terminal ever goes stale; and
         * at once when an operator's pin_changed moved, so a PIN changed at one terminal is not asked
         * for again at the others. */
        due = c.latest->issued + (c.latest->expires - c.latest->issued) / 2;
        if (now < due && aged == 0) {
                store_rollback(c.s);
                fmt_time(due, when);
                fmt_time(c.latest->expires, until);
                printf("policy serial %" PRId64 " is fresh (expires %s): nothing to do before %s\n",
                       c.latest->serial, until, when);
                return 0;
        }
        if (change_publish(ctx, &c, bundle, c.latest->serial + 1, now, NULL, NULL, out, "policy refresh") !=
            0)
                return 1;
        fmt_time(c.check->expires, until);
        snprintf(aged_s, sizeof(aged_s), "%zu operator%s updated", aged, aged == 1 ? "" : "s");
        printf("policy serial %" PRId64 " re-signed as serial %" PRId64
               " (same content%s%s%s), expires %s\n",
               c.latest->serial, c.check->serial, aged ? ", PIN age of " : "", aged ? aged_s : "",
               c.check->emergency ? ", emergency lock in force" : "", until);
        return 0;
}

int admin_emergency_clear(AdminContext *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                {"reason", required_argument, NULL, 'r'},
                {"out", required_argument, NULL, 'o'},
                {},
        };
        _cleanup_(change_done) struct policy_change c = {};
        _cleanup_json_ JsonValue *bundle = NULL;
        const char *out = NULL, *reason = NULL;
        int64_t now = admin_now_usec();
        int k, r;

        optind = 0;
        while ((k = getopt_long(argc, argv, "r:o:", options, NULL)) >= 0)
                switch (k) {
                case 'r':
                        reason = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind != argc || !reason || !reason[0]) {
                fprintf(stderr, "usage: mamori-admin emergency clear --reason TEXT [--out FILE]\n"
                                "(the reason is kept in the register history with who cleared it)\n");
                return 2;
        }
        if (!admin_reason_valid(reason))
                return 2;
        if (change_begin(ctx, &c, "emergency clear") != 0)
                return 1;
        if (!c.latest || !c.latest->emergency) {
                store_rollback(c.s);
                fprintf(stderr, "mamori-admin: no emergency is in force%s: nothing to clear\n",
                        c.latest ? " in the published policy" : " (no policy published yet)");
                return 1;
        }
        r = registry_bundle(c.s, false, &bundle);
        if (r < 0)
                return change_fail(&c, r, "emergency clear");
        if (change_publish(ctx, &c, bundle, c.latest->serial + 1, now, add_emergency_row,
                           &(struct emergency_row){"clear", now, reason}, out, "emergency clear") != 0)
                return 1;
        printf("emergency cleared: policy serial %" PRId64
               " published; terminals unlock for logins at their next poll\n",
               c.check->serial);
        return 0;
}

int admin_policy_show(AdminContext *ctx, int argc, char **argv)
{
        _cleanup_free_ char *body = NULL;
        size_t len;
        Store *s;
        int r;

        if (argc != 1) {
                fprintf(stderr, "usage: mamori-admin policy show\n");
                return 2;
        }
        if (admin_store(ctx, &s) < 0)
                return 1;
        r = store_policy_latest(s, NULL, &body, &len);
        if (r < 0) {
                fprintf(stderr, "mamori-admin: no policy published: %s\n", strerror(-r));
                return 1;
        }
        fwrite(body, 1, len, stdout);
        putchar('\n');
        return 0;
}
