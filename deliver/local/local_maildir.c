/* local_maildir - a system user's Maildir ($home/$home_mailbox), written as the user */
#include "local.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* local_maildir_user - deliver addr into u's home_mailbox */
void local_maildir_user(local_exp_t *x, const char *addr, const local_user_t *u)
{
    local_state_t *st = x->st;
    const char *hm = st->p.home_mailbox;
    double start = local_now();
    local_result_t r;
    local_op_t op;
    buf_t prepend;
    char *maildir = NULL;
    size_t hlen = strlen(hm);

    if (local_exp_dup(x, 'M', u->name))
        return;                 /* this mailbox already has its copy */
    local_result_init(&r);
    buf_init(&prepend, BUF_NOLIMIT);
    memset(&op, 0, sizeof(op));
    if (hlen == 0 || hm[hlen - 1] != '/' || hm[0] == '/' || strstr(hm, "..")) {
        local_result_set(&r, LOCAL_DEFER, "4.3.5",
                         "home_mailbox \"%s\" is not a Maildir (mbox delivery is not supported)",
                         hm);
    } else if (u->uid == 0) {
        /* Never write as root: root's mail must be aliased elsewhere. */
        local_result_set(&r, LOCAL_DEFER, "4.3.5",
                         "mail for root must be aliased to another user (local never writes as root)");
    } else if (!st->root && u->uid != geteuid()) {
        local_result_set(&r, LOCAL_DEFER, "4.3.0",
                         "cannot deliver to system user %s (uid %ld): local runs without root "
                         "privileges as uid %ld", u->name, (long)u->uid, (long)geteuid());
    } else {
        maildir = xasprintf("%s/%s", u->home, hm);
        op.op = "maildir";
        op.uid = u->uid;
        op.gid = u->gid;
        op.maildir = maildir;
        local_op_message(&op, x, addr, &prepend);
        local_uid_run(st, &op, &r);
        if (r.status == LOCAL_OK)
            local_exp_done(x, 'M', u->name);
    }
    local_exp_leaf(x, addr, "local", &r, start);
    free(maildir);
    buf_free(&prepend);
    local_result_free(&r);
}
