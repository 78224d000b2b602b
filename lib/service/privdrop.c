/*
 * privdrop - chroot and give up root for good. With service.c, the only
 * place where a daemon changes ids (deliver/local's recipient switch
 * aside). Every step is checked, and the result is verified: a process
 * that could become root again must not go on.
 */
#include "service/service.h"
#include "util/msg.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

/* privdrop_verify - the ids are what we asked for and root is gone */
static void privdrop_verify(uid_t uid, gid_t gid)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        msg_fatal("getresuid/getresgid: %m");
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
        msg_fatal("privdrop: ids are not %ld:%ld after the change", (long)uid, (long)gid);
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        msg_fatal("privdrop: root privileges could be regained");
    if (gid != 0 && uid != 0 && (setgid(0) == 0 || setegid(0) == 0))
        msg_fatal("privdrop: group 0 could be regained");
}

/* privdrop - chroot (if chroot_dir != NULL), then drop to uid/gid for good */
void privdrop(uid_t uid, gid_t gid, const char *chroot_dir)
{
    if (chroot_dir != NULL) {
        if (chroot(chroot_dir) < 0)
            msg_fatal("chroot %s: %m", chroot_dir);
        if (chdir("/") < 0)
            msg_fatal("chdir / in %s: %m", chroot_dir);
    }
    /* Groups first: after setuid we could no longer change them. */
    if (setgroups(1, &gid) < 0)
        msg_fatal("setgroups %ld: %m", (long)gid);
    if (setresgid(gid, gid, gid) < 0)
        msg_fatal("setresgid %ld: %m", (long)gid);
    if (setresuid(uid, uid, uid) < 0)
        msg_fatal("setresuid %ld: %m", (long)uid);
    privdrop_verify(uid, gid);
}

/* privdrop_lookup - uid and primary gid of a user; -1 if unknown */
int privdrop_lookup(const char *user, uid_t *uid_r, gid_t *gid_r)
{
    struct passwd *pw = getpwnam(user);

    if (pw == NULL)
        return -1;
    *uid_r = pw->pw_uid;
    *gid_r = pw->pw_gid;
    return 0;
}
