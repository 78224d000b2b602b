/*
 * qfile_recycle - spent queue files kept for the next message.
 *
 * Deleting a delivered queue file and creating the next one makes the
 * file system free and allocate an inode and its blocks for every
 * message. On ext4 without a journal each free is also a synchronous
 * discard, and each create scans past every inode freed in the last
 * minute (recently_deleted() in fs/ext4/ialloc.c): at a thousand
 * messages a second that scan was a sixth of smtpd's and local's CPU.
 * So qmgr moves a spent file (mode 0600, at most QFILE_RECYCLE_MAX_SIZE)
 * to recycle/, and the next writer of incoming/ renames it to its new
 * queue id and overwrites it from the start. Bytes after the 'E' record
 * are slack from earlier messages; readers stop at 'E'. Truncating would
 * free the blocks and bring the discard back.
 *
 * Durability: a rename's new name is not made durable by the file's
 * fsync (ext4 without a journal syncs the parent only of a newly created
 * inode), so qfile_name_needs_dir_sync() tells the committer to fsync
 * incoming/ as well before it acknowledges.
 *
 * Races: several writers may read the same names. A writer opens the
 * file and checks it before the rename, and writes nothing until its
 * rename has succeeded; only one rename of a name can succeed. A file
 * whose mode is not exactly 0600 (qmgr's fchmod lost in a crash while
 * the rename survived) is never claimed: it could look complete in
 * incoming/. qmgr removes such files when it starts (qfile_recycle_tidy).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QFILE_RECYCLE_BATCH 64          /* names remembered per directory scan */
#define QFILE_RECYCLE_TRIES 20          /* new queue ids tried per file */

/* Per process (writers create files from one thread): names seen in
 * recycle/, and when it was last read. */
static struct {
    char *names[QFILE_RECYCLE_BATCH];
    size_t n;
    time_t scanned;
    bool more;                          /* the last scan stopped at a full batch */
    bool off;                           /* renameat2 not supported here */
} qfile_pool;

/* qfile_recycle_usable - may this spent file be reused? */
static bool qfile_recycle_usable(const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_nlink == 1
        && (st->st_mode & 07777) == QFILE_MODE_WRITING && st->st_uid == geteuid()
        && st->st_size <= QFILE_RECYCLE_MAX_SIZE;
}

/* qfile_recycle_scan - remember up to a batch of names; when the last
 * scan found fewer than a batch, wait for the next second */
static void qfile_recycle_scan(const char *queue_dir)
{
    time_t now = time(NULL);

    if (qfile_pool.n > 0 || (qfile_pool.scanned == now && !qfile_pool.more))
        return;
    qfile_pool.scanned = now;
    qfile_pool.more = false;
    char *dir = xasprintf("%s/%s", queue_dir, QUEUE_RECYCLE);
    DIR *dp = opendir(dir);
    free(dir);
    if (dp == NULL)
        return;
    for (struct dirent *de; qfile_pool.n < QFILE_RECYCLE_BATCH && (de = readdir(dp)) != NULL;)
        if (qid_valid(de->d_name))
            qfile_pool.names[qfile_pool.n++] = xstrdup(de->d_name);
    qfile_pool.more = qfile_pool.n == QFILE_RECYCLE_BATCH;
    closedir(dp);
}

/* qfile_recycle_take - rename recycle/NAME (open as fd) to incoming/QID
 * under a new id: 0 and the new path, or -1 (another writer took it) */
static int qfile_recycle_take(const char *queue_dir, const char *from, int fd,
                              char qid[QID_BUFSIZE], char **path_r)
{
    for (int tries = 0; tries < QFILE_RECYCLE_TRIES; tries++) {
        qid_new(qid);
        char *to = xasprintf("%s/%s/%s", queue_dir, QUEUE_INCOMING, qid);
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) {
            /* Its mtime is when the old message was written: an hour-old
             * incomplete file in incoming/ is a dead writer's, and qmgr
             * removes those (the first write may be minutes away). */
            if (futimens(fd, NULL) < 0)
                msg_warn("cannot touch %s: %m", to);
            *path_r = to;
            return 0;
        }
        int err = errno;
        free(to);
        /* No RENAME_NOREPLACE here, or recycle/ on another file system:
         * stop trying in this process. */
        if (err == EINVAL || err == ENOSYS || err == EXDEV)
            qfile_pool.off = true;
        if (err != EEXIST)
            return -1;
    }
    return -1;
}

/* qfile_recycle_claim - a spent file as incoming/QID: its fd (offset 0,
 * mode 0600), the new id and path; -1 when there is none to reuse */
int qfile_recycle_claim(const char *queue_dir, char qid[QID_BUFSIZE], char **path_r)
{
    if (qfile_pool.off)
        return -1;
    qfile_recycle_scan(queue_dir);
    while (qfile_pool.n > 0) {
        char *name = qfile_pool.names[--qfile_pool.n];
        char *from = xasprintf("%s/%s/%s", queue_dir, QUEUE_RECYCLE, name);
        /* O_NONBLOCK: whatever sits there, opening it must not hang */
        int fd = open(from, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st;

        free(name);
        if (fd >= 0 && fstat(fd, &st) == 0 && qfile_recycle_usable(&st)
            && qfile_recycle_take(queue_dir, from, fd, qid, path_r) == 0) {
            free(from);
            return fd;
        }
        if (fd >= 0)
            close(fd);
        free(from);
    }
    return -1;
}

/* qfile_recycle - keep the spent file QUEUE/QID (open as fd) in recycle/
 * for reuse; -1 when it is not kept and the caller must unlink it */
int qfile_recycle(const char *queue_dir, const char *queue, const char *qid, int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1
        || st.st_size > QFILE_RECYCLE_MAX_SIZE)
        return -1;
    /* Incomplete before it moves: a reuser must never see it complete. */
    if (fchmod(fd, QFILE_MODE_WRITING) < 0)
        return -1;
    char *from = xasprintf("%s/%s/%s", queue_dir, queue, qid);
    char *to = xasprintf("%s/%s/%s", queue_dir, QUEUE_RECYCLE, qid);
    int rc = rename(from, to);
    free(from);
    free(to);
    return rc;
}

/* qfile_recycle_tidy - count the reusable files in recycle/, removing
 * the others (and, with keep false, all of them); -1 if unreadable */
long qfile_recycle_tidy(const char *queue_dir, bool keep)
{
    char *dir = xasprintf("%s/%s", queue_dir, QUEUE_RECYCLE);
    DIR *dp = opendir(dir);
    long count = 0;

    if (dp == NULL) {
        free(dir);
        return -1;
    }
    for (struct dirent *de; (de = readdir(dp)) != NULL;) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (keep && qid_valid(de->d_name)
            && fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
            && qfile_recycle_usable(&st)) {
            count++;
            continue;
        }
        if (unlinkat(dirfd(dp), de->d_name, 0) < 0 && errno != ENOENT)
            msg_warn("cannot remove %s/%s: %m", dir, de->d_name);
    }
    closedir(dp);
    free(dir);
    return count;
}
