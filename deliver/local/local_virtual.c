/* local_virtual - virtual aliases and virtual mailboxes (owned by vmail) */
#include "local.h"
#include "mail/vuser.h"
#include "service/service.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCAL_VOWNER_TTL 60.0

/* lookup_forms - addr, addr less its extension, then "@domain" (Postfix's
 * order for virtual tables); 1 found, 0 not, -1 error (why) */
static int lookup_forms(local_state_t *st, local_tables_t *t, const char *addr, buf_t *val,
                        const char **why_r)
{
    const char *at = strrchr(addr, '@');
    const char *d = st->p.recipient_delimiter;
    size_t n;
    char *key;
    int ret;

    if ((ret = local_tables_get(t, addr, val, why_r)) != 0 || at == NULL)
        return ret;
    n = d && *d ? strcspn(addr, d) : (size_t)(at - addr);
    if (n > 0 && n < (size_t)(at - addr)) {
        key = xasprintf("%.*s%s", (int)n, addr, at);
        ret = local_tables_get(t, key, val, why_r);
        free(key);
        if (ret != 0)
            return ret;
    }
    return local_tables_get(t, at, val, why_r);
}

/* local_virtual_alias - virtual_alias_maps: 1 with the value, 0, -1 (r set) */
int local_virtual_alias(local_exp_t *x, const char *addr, buf_t *val, local_result_t *r)
{
    const char *why = NULL;
    int ret;

    if (x->st->valias.n == 0)
        return 0;
    ret = lookup_forms(x->st, &x->st->valias, addr, val, &why);
    if (ret < 0)
        local_result_set(r, LOCAL_DEFER, "4.3.0", "virtual alias table unavailable: %s",
                         why ? why : "lookup error");
    return ret;
}

/* vowner_lookup - virtual_mailbox_owner's ids; the passwd lookup read
 * all of /etc/passwd per delivery, so its answer is kept for a while (a
 * changed owner is seen within LOCAL_VOWNER_TTL seconds) */
static int vowner_lookup(local_state_t *st, uid_t *uid, gid_t *gid)
{
    double now = local_now();

    if (st->vowner_time > 0 && now >= st->vowner_time
        && now - st->vowner_time < LOCAL_VOWNER_TTL) {
        *uid = st->vowner_uid;
        *gid = st->vowner_gid;
        return 0;
    }
    st->vowner_time = 0;
    if (privdrop_lookup(st->p.virtual_mailbox_owner, uid, gid) < 0)
        return -1;
    st->vowner_uid = *uid;
    st->vowner_gid = *gid;
    st->vowner_time = now;
    return 0;
}

/* owner_ids - the uid/gid that writes virtual mailboxes */
static int owner_ids(local_state_t *st, uid_t *uid, gid_t *gid, local_result_t *r)
{
    if (!st->root) {
        *uid = geteuid();
        *gid = getegid();
        return 0;
    }
    if (vowner_lookup(st, uid, gid) < 0) {
        local_result_set(r, LOCAL_DEFER, "4.3.5", "virtual_mailbox_owner \"%s\" is not a user",
                         st->p.virtual_mailbox_owner);
        return -1;
    }
    if ((int64_t)*uid < st->p.virtual_minimum_uid) {
        local_result_set(r, LOCAL_DEFER, "4.3.5",
                         "virtual_mailbox_owner uid %ld is below virtual_minimum_uid",
                         (long)*uid);
        return -1;
    }
    return 0;
}

/* local_virtual_mailbox - deliver to a virtual_mailbox_maps user */
void local_virtual_mailbox(local_exp_t *x, const char *addr)
{
    local_state_t *st = x->st;
    double start = local_now();
    local_result_t r;
    vuser_t vu;
    buf_t val, path, prepend;
    const char *why = NULL;
    int ret;
    local_op_t op;

    memset(&vu, 0, sizeof(vu));
    memset(&op, 0, sizeof(op));
    local_result_init(&r);
    buf_init(&val, BUF_NOLIMIT);
    buf_init(&path, BUF_NOLIMIT);
    buf_init(&prepend, BUF_NOLIMIT);
    ret = lookup_forms(st, &st->vmailbox, addr, &val, &why);
    if (ret < 0) {
        local_result_set(&r, LOCAL_DEFER, "4.3.0", "virtual mailbox table unavailable: %s",
                         why ? why : "lookup error");
    } else if (ret == 0) {
        local_result_set(&r, LOCAL_BOUNCE, "5.1.1", "unknown user: \"%s\"", addr);
    } else if (vuser_parse(val.data, &vu, &why) < 0
               || vuser_maildir_path(st->p.virtual_mailbox_base, &vu, &path, &why) < 0) {
        local_result_set(&r, LOCAL_DEFER, "4.3.5", "bad virtual_mailbox_maps entry for %s: %s",
                         addr, why);
    } else if (!vu.is_maildir) {
        local_result_set(&r, LOCAL_DEFER, "4.3.5",
                         "mbox delivery is not supported (mailbox %s has no trailing /)",
                         path.data);
    } else if (local_exp_dup(x, 'M', path.data)) {
        goto out;               /* this mailbox already has its copy */
    } else if (owner_ids(st, &op.uid, &op.gid, &r) == 0) {
        op.op = "maildir";
        op.maildir = path.data;
        local_op_message(&op, x, addr, &prepend);
        op.quota = vu.quota;
        local_uid_run(st, &op, &r);
        if (r.status == LOCAL_OK)
            local_exp_done(x, 'M', path.data);
    }
    local_exp_leaf(x, addr, "virtual", &r, start);
out:
    vuser_clear(&vu);
    buf_free(&val);
    buf_free(&path);
    buf_free(&prepend);
    local_result_free(&r);
}
