/* local_alias - alias_maps lookups (aliases(5), compiled by storkmap/newaliases) */
#include "local.h"

/* local_alias_lookup - 1 with the value, 0 when key is no alias, -1 (r set) */
int local_alias_lookup(local_exp_t *x, const char *key, buf_t *val, local_result_t *r)
{
    const char *why = NULL;
    int ret;

    buf_reset(val);
    ret = local_tables_get(&x->st->aliases, key, val, &why);
    if (ret < 0)
        local_result_set(r, LOCAL_DEFER, "4.3.0", "alias database unavailable: %s",
                         why ? why : "lookup error");
    return ret;
}
