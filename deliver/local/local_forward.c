/* local_forward - a system user's ~/.forward, read as that user */
#include "local.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* local_forward - expand u's .forward into x; 1 done, 0 none, -1 (r set) */
int local_forward(local_exp_t *x, const local_user_t *u, const char *addr, int depth,
                  local_result_t *r)
{
    local_state_t *st = x->st;
    local_op_t op;
    local_result_t fr;
    char *path;
    int ret;

    /* Not root: only the running user's own file can be read safely. */
    if (u->uid == 0 || (!st->root && u->uid != geteuid()))
        return 0;
    memset(&op, 0, sizeof(op));
    path = xasprintf("%s/.forward", u->home);
    op.op = "forward";
    op.uid = u->uid;
    op.gid = u->gid;
    op.path = path;
    op.fd = -1;
    local_result_init(&fr);
    local_uid_run(st, &op, &fr);
    /* The worker says: OK with the content, BOUNCE for "no file", DEFER. */
    if (fr.status == LOCAL_DEFER) {
        local_result_set(r, LOCAL_DEFER, fr.dsn, "%s", buf_cstr(&fr.text));
        ret = -1;
    } else if (fr.status == LOCAL_BOUNCE || fr.text.len == 0) {
        ret = 0;
    } else {
        local_exp_list(x, fr.text.data, "forward", u, addr, depth + 1);
        ret = 1;
    }
    local_result_free(&fr);
    free(path);
    return ret;
}
