/* The register's hash chain: a history row's hash over its JCS bytes, linked to the row before it. */
#include <errno.h>

#include "mamori/jcs.h"
#include "mamori/json.h"
#include "mamori/macro.h"
#include "register-chain.h"

int register_row_hash(const RegisterRow *row, char ret[SHA256_HEX_MAX])
{
        _cleanup_json_ JsonValue *o = NULL;
        _cleanup_free_ char *bytes = NULL;
        size_t len;
        int r;

        if (!row || row->id <= 0 || row->ts < 0 || row->ts > JCS_MAX_SAFE_INTEGER || !row->object ||
            !row->object_id || !row->action || !row->detail || !row->actor || !row->reason || !row->prev)
                return -EINVAL;
        if ((r = json_new_object(&o)) < 0 || (r = json_object_set_integer(o, "v", 1)) < 0 ||
            (r = json_object_set_integer(o, "id", row->id)) < 0 ||
            (r = json_object_set_integer(o, "ts", row->ts)) < 0 ||
            (r = json_object_set_string(o, "object", row->object)) < 0 ||
            (r = json_object_set_string(o, "object_id", row->object_id)) < 0 ||
            (r = json_object_set_string(o, "action", row->action)) < 0 ||
            (r = json_object_set_string(o, "detail", row->detail)) < 0 ||
            (r = json_object_set_string(o, "actor", row->actor)) < 0 ||
            (r = json_object_set_string(o, "reason", row->reason)) < 0 ||
            (r = json_object_set_string(o, "prev", row->prev)) < 0 ||
            (r = jcs_serialize(o, NULL, &bytes, &len)) < 0)
                return r;
        return sha256_hex(bytes, len, ret);
}
