/*
 * qmgr_rebuild - the files are the truth: scan the queue directories,
 * rebuild queue.db when it is not known to be clean, send stale active/
 * files back to be scheduled, and clean up abandoned temp files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

typedef char qid_buf_t[QID_BUFSIZE];

/* qid_cmp - qsort: ids sort by arrival */
static int qid_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* qmgr_remove_stale_temp - an incomplete incoming/ file (no owner-execute
 * bit; t.* from older versions) untouched for an hour belongs to a writer
 * that died before committing */
static void qmgr_remove_stale_temp(const char *queue, const char *name)
{
    struct stat st;
    char *path = xasprintf("%s/%s/%s", qmgr.qdir, queue, name);

    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)
        && qmgr_now() - st.st_mtime > QMGR_STALE_TEMP_SECS) {
        if (unlink(path) == 0)
            msg_info("removed stale temporary file %s/%s", queue, name);
        else
            msg_warn("cannot remove %s: %m", path);
    }
    free(path);
}

/* qmgr_file_complete - an incoming/ file is committed once its writer
 * set the owner-execute bit (lib/queue/qfile_write.c); until then it is
 * being written and is not ours to read */
static bool qmgr_file_complete(const char *queue, const char *name)
{
    struct stat st;
    char *path = xasprintf("%s/%s/%s", qmgr.qdir, queue, name);
    bool ok = lstat(path, &st) == 0 && S_ISREG(st.st_mode) && qfile_mode_complete(st.st_mode);

    free(path);
    return ok;
}

/* qmgr_list_dir - the queue ids in one queue directory, sorted */
static size_t qmgr_list_dir(const char *queue, qid_buf_t **ids_r, bool clean_temp)
{
    char *path = xasprintf("%s/%s", qmgr.qdir, queue);
    DIR *d = opendir(path);
    struct dirent *de;
    qid_buf_t *ids = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL) {
        msg_warn("cannot open queue directory %s: %m", path);
        free(path);
        *ids_r = NULL;
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (qid_valid(de->d_name)) {
            if (clean_temp && !qmgr_file_complete(queue, de->d_name)) {
                qmgr_remove_stale_temp(queue, de->d_name);
                continue;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                ids = xreallocarray(ids, cap, sizeof(*ids));
            }
            memcpy(ids[n++], de->d_name, QID_BUFSIZE);
        } else if (clean_temp && strncmp(de->d_name, "t.", 2) == 0) {
            qmgr_remove_stale_temp(queue, de->d_name);
        }
    }
    closedir(d);
    free(path);
    if (n > 1)
        qsort(ids, n, sizeof(*ids), qid_cmp);
    *ids_r = ids;
    return n;
}

/* qmgr_move_corrupt - keep an unreadable file for the admin, out of the way */
void qmgr_move_corrupt(const char *queue, const char *qid, const char *why)
{
    char *from = xasprintf("%s/%s/%s", qmgr.qdir, queue, qid);
    char *to = xasprintf("%s/%s/%s", qmgr.qdir, QUEUE_CORRUPT, qid);

    if (rename(from, to) == 0)
        msg_warn("%s: corrupt queue file (%s): moved to %s/", qid, why, QUEUE_CORRUPT);
    else
        msg_warn("%s: corrupt queue file (%s): cannot move it to %s/: %m", qid, why,
                 QUEUE_CORRUPT);
    qmgr_index_del(qid);
    free(from);
    free(to);
}

/* qmgr_index_file - read queue/qid and put its entry; -1 if unreadable */
int qmgr_index_file(const char *queue, const char *qid, int64_t next_attempt)
{
    char *path = xasprintf("%s/%s/%s", qmgr.qdir, queue, qid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    const char *why;
    qfile_t qf;
    int rc = -1;

    if (fd < 0) {
        if (errno != ENOENT)
            msg_warn("cannot open %s: %m", path);
        qmgr_index_del(qid);
    } else if (qfile_read(fd, &qf, &why) < 0) {
        qmgr_move_corrupt(queue, qid, why);
    } else {
        qmgr_index_put_file(qid, queue, &qf, NULL, next_attempt);
        qfile_free(&qf);
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

/* qmgr_index_dir - index every file of a queue; deferred/ files carry
 * their next attempt time as their mtime */
static size_t qmgr_index_dir(const char *queue)
{
    qid_buf_t *ids;
    size_t n = qmgr_list_dir(queue, &ids, false), ok = 0;

    for (size_t i = 0; i < n; i++) {
        int64_t next = 0;
        if (strcmp(queue, QUEUE_DEFERRED) == 0) {
            struct stat st;
            char *path = xasprintf("%s/%s/%s", qmgr.qdir, queue, ids[i]);
            next = stat(path, &st) == 0 ? (int64_t)st.st_mtime : qmgr_now();
            if (next <= 0)
                next = 1;
            free(path);
        }
        if (qmgr_index_file(queue, ids[i], next) == 0)
            ok++;
    }
    free(ids);
    return ok;
}

/* qmgr_requeue_active - active/ files nobody is delivering go back to
 * incoming/, to be scheduled again (recipients marked done stay done) */
static void qmgr_requeue_active(void)
{
    qid_buf_t *ids;
    size_t n = qmgr_list_dir(QUEUE_ACTIVE, &ids, false);

    for (size_t i = 0; i < n; i++) {
        if (qmgr_message_find(ids[i]) != NULL)
            continue;
        char *from = xasprintf("%s/%s/%s", qmgr.qdir, QUEUE_ACTIVE, ids[i]);
        char *to = xasprintf("%s/%s/%s", qmgr.qdir, QUEUE_INCOMING, ids[i]);
        if (rename(from, to) < 0)
            msg_warn("cannot move %s to %s: %m", from, to);
        free(from);
        free(to);
    }
    free(ids);
    if (n > 0)
        msg_info("requeued %zu message%s left in %s/", n, n == 1 ? "" : "s", QUEUE_ACTIVE);
}

/* qmgr_rebuild - reconcile the index with the files */
void qmgr_rebuild(bool trust_index)
{
    if (!trust_index) {
        msg_info("queue index is not clean: rebuilding it from the queue files");
        qmgr_index_reset();
        size_t nd = qmgr_index_dir(QUEUE_DEFERRED);
        size_t nh = qmgr_index_dir(QUEUE_HOLD);
        for (qmgr_msg_t *m = qmgr.active; m; m = m->next)
            qmgr_index_put_file(m->qid, QUEUE_ACTIVE, &m->qf, m->rs, 0);
        msg_info("queue index rebuilt: %zu deferred, %zu held, %d active", nd, nh,
                 qmgr.nactive);
    }
    qmgr_requeue_active();
    qmgr.inq_len = 0;           /* the scan finds every incoming file again */
    qmgr.inq_head = 0;
    qmgr_scan_incoming();
}

/* qmgr_scan_incoming - incoming/ files whose notice was lost (or that
 * arrived while qmgr was down); only when no notices are waiting, so
 * one file is not queued twice (a duplicate would be harmless anyway:
 * its second rename fails with ENOENT and is ignored) */
void qmgr_scan_incoming(void)
{
    qid_buf_t *ids;

    qmgr.scan_last_ms = event_now_ms(qmgr.loop);

    if (qmgr.inq_len > 0)
        return;
    size_t n = qmgr_list_dir(QUEUE_INCOMING, &ids, true);
    for (size_t i = 0; i < n; i++)
        qmgr_message_incoming(ids[i]);
    free(ids);
}

/* qmgr_scan_timer - the debounced rescan */
static void qmgr_scan_timer(event_loop_t *loop, void *ctx)
{
    qmgr.scan_timer = NULL;
    qmgr_scan_incoming();
    qmgr_message_pump();
}

/*
 * qmgr_scan_incoming_soon - rescan incoming/ shortly, at most once a
 * second. Called when a client (re)connects: a sender that could not
 * reach qmgr while it was restarting has files in incoming/ whose
 * notices were lost, and its reconnection is the first sign qmgr gets.
 */
void qmgr_scan_incoming_soon(void)
{
    int64_t now = event_now_ms(qmgr.loop);
    int64_t wait = qmgr.scan_last_ms + 1000 - now;

    if (qmgr.scan_timer)
        return;
    qmgr.scan_timer = event_timer_add(qmgr.loop, wait > 0 ? wait : 0, qmgr_scan_timer, NULL);
}
