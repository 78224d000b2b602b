/* master_queue - create the queue directory tree; the one-master lock */
#include "master.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static char master_queue_why[1024];

/* The tree under queue_directory; owner 1 = mail_owner (when root). */
static const struct {
    const char *name;
    mode_t mode;
    int mail_owned;
} master_queue_dirs[] = {
    { "incoming", 0700, 1 }, { "active", 0700, 1 }, { "deferred", 0700, 1 },
    { "hold", 0700, 1 }, { "corrupt", 0700, 1 }, { "recycle", 0700, 1 },
    { "private", 0700, 1 },
    { "public", 0711, 1 }, { "index", 0700, 1 },
    /* Only the setgid_group may enter maildrop/ (sendmail runs setgid it),
     * so other users can neither read nor guess submissions in flight. */
    { "maildrop", 01730, 1 },
    /* The master's lock stays root's: a daemon must not replace it. */
    { "pid", 0755, 0 },
};

/* master_queue_fail - format the reason and return -1 */
static int master_queue_fail(const char **why_r, const char *fmt, ...) STORK_PRINTF(2, 3);
static int master_queue_fail(const char **why_r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(master_queue_why, sizeof(master_queue_why), fmt, ap);
    va_end(ap);
    *why_r = master_queue_why;
    return -1;
}

/* master_mkdir - mkdir unless present; then the mode and owner, always */
static int master_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid, const char **why_r)
{
    struct stat st;

    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return master_queue_fail(why_r, "mkdir %s: %s", path, strerror(errno));
    if (lstat(path, &st) < 0)
        return master_queue_fail(why_r, "stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return master_queue_fail(why_r, "%s: not a directory", path);
    if (uid != (uid_t)-1 && (st.st_uid != uid || st.st_gid != gid) && lchown(path, uid, gid) < 0)
        return master_queue_fail(why_r, "chown %s: %s", path, strerror(errno));
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
        return master_queue_fail(why_r, "chmod %s: %s", path, strerror(errno));
    return 0;
}

/* master_mkdir_parents - the queue directory itself, with missing parents */
static int master_mkdir_parents(const char *path, const char **why_r)
{
    char *copy = xstrdup(path);

    for (char *cp = copy + 1; *cp; cp++) {
        if (*cp != '/')
            continue;
        *cp = 0;
        if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
            master_queue_fail(why_r, "mkdir %s: %s", copy, strerror(errno));
            free(copy);
            return -1;
        }
        *cp = '/';
    }
    free(copy);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return master_queue_fail(why_r, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

/*
 * master_queue_setup - create queue_directory and its subdirectories with
 * their modes. As root, the mail_owner user owns them (maildrop's group is
 * setgid_group when that group exists); mail_owner must not be root.
 * As another user, everything belongs to that user (a private instance).
 */
int master_queue_setup(conf_t *conf, const char **why_r)
{
    const char *qdir = conf_str(conf, "queue_directory");
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1, drop_gid = (gid_t)-1;

    if (qdir[0] != '/')
        return master_queue_fail(why_r, "queue_directory must be an absolute path: %s", qdir);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(conf_str(conf, "mail_owner"));
        struct group *gr;

        if (pw == NULL)
            return master_queue_fail(why_r, "mail_owner: unknown user: %s (create it, e.g. "
                                     "useradd -r stork)", conf_str(conf, "mail_owner"));
        if (pw->pw_uid == 0)
            return master_queue_fail(why_r, "mail_owner: %s has uid 0; it must be an "
                                     "unprivileged user", conf_str(conf, "mail_owner"));
        uid = pw->pw_uid;
        gid = drop_gid = pw->pw_gid;
        if ((gr = getgrnam(conf_str(conf, "setgid_group"))) != NULL)
            drop_gid = gr->gr_gid;
    }
    if (master_mkdir_parents(qdir, why_r) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(master_queue_dirs) / sizeof(master_queue_dirs[0]); i++) {
        char *path = xasprintf("%s/%s", qdir, master_queue_dirs[i].name);
        bool owned = master_queue_dirs[i].mail_owned && uid != (uid_t)-1;
        gid_t g = strcmp(master_queue_dirs[i].name, "maildrop") == 0 ? drop_gid : gid;
        int rc = master_mkdir(path, master_queue_dirs[i].mode,
                              owned ? uid : (uid == (uid_t)-1 ? (uid_t)-1 : 0),
                              owned ? g : (uid == (uid_t)-1 ? (gid_t)-1 : 0), why_r);

        free(path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/*
 * master_lock - open and lock $queue_directory/pid/master.pid. flock()
 * belongs to the open file, so the lock survives the daemonizing fork and
 * goes away only when the last master holding it exits. A second master
 * fails here with the pid of the first.
 */
int master_lock(conf_t *conf, int *fd_r, char **path_r, const char **why_r)
{
    char *path = xasprintf("%s/pid/master.pid", conf_str(conf, "queue_directory"));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    char pidbuf[32] = "";
    ssize_t n;

    if (fd < 0) {
        master_queue_fail(why_r, "open lock file %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int saved = errno;

        n = pread(fd, pidbuf, sizeof(pidbuf) - 1, 0);
        pidbuf[n > 0 ? n : 0] = 0;
        if (saved == EWOULDBLOCK)
            master_queue_fail(why_r, "the Stork mail system is already running (pid %d) "
                              "for queue directory %s", atoi(pidbuf),
                              conf_str(conf, "queue_directory"));
        else
            master_queue_fail(why_r, "lock %s: %s", path, strerror(saved));
        close(fd);
        free(path);
        return -1;
    }
    *fd_r = fd;
    *path_r = path;
    return 0;
}

/* master_write_pid - the pid, Postfix style ("%10d\n"), in the locked file */
int master_write_pid(int fd)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%10d\n", (int)getpid());

    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n)
        return -1;
    return 0;
}
