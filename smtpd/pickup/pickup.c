/*
 * pickup - move locally submitted mail from maildrop/ into the queue
 *
 * master.cf:  pickup  unix  n  -  n  60  1  pickup
 *
 * sendmail (any local user) leaves finished files in maildrop/; pickup
 * runs as mail_owner, scans the directory every wakeup interval and when
 * a client sends PICKUP_WAKE on public/pickup, and turns each file into a
 * real queue file in incoming/, as Postfix's pickup hands maildrop files
 * to cleanup.
 *
 * SECURITY
 *	A maildrop file is untrusted input written by any local user. It is
 *	opened without following links, must be a regular file with one
 *	link, must parse completely (qfile_read never trusts a length), and
 *	its envelope must pass pickup_check. The submitting uid comes from
 *	the file's owner (fstat), never from what the file says. Only the
 *	sender, the recipients, a sanitized full name and the content are
 *	carried over; pickup writes every other attribute itself. Files that
 *	fail go to corrupt/ with a warning; nothing a user writes can stop
 *	pickup.
 * DURABILITY
 *	The maildrop file is removed only after the new queue file and its
 *	directory entry are on disk: a crash in between gives a duplicate,
 *	never a loss. qmgr is told (QMGR_NEW) once the batch is durable.
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

#include "ipc/ipc.h"
#include "pickup_check.h"
#include "queue/qfile.h"
#include "queue/qid.h"
#include "service/service.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define PICKUP_BATCH 100            /* files per fsync batch */
#define PICKUP_STALE_TEMP 3600      /* t.* files older than this are junk */
#define PICKUP_COPY_CHUNK (64 * 1024)
#define PICKUP_QMGR_TIMEOUT_MS 5000

typedef struct pickup_done {
    char name[QID_BUFSIZE];         /* maildrop file */
    char qid[QID_BUFSIZE];          /* new queue file */
    unsigned long uid;
    char *sender;
    bool renamed;                   /* its name needs the directory fsync */
} pickup_done_t;

typedef struct pickup {
    service_t *svc;
    event_timer_t *scan_timer;      /* a scan is scheduled */
    int qmgr_fd;
    const char *myhostname;
    uint64_t size_limit;
} pickup_t;

static pickup_t pickup;

/* pickup_corrupt - move a bad maildrop file aside, under a fresh id */
static void pickup_corrupt(const char *name, const char *why)
{
    char qid[QID_BUFSIZE];
    char *from = xasprintf("%s/%s", QUEUE_MAILDROP, name);
    char *to;

    qid_new(qid);
    to = xasprintf("%s/%s", QUEUE_CORRUPT, qid);
    /* A fresh id, and never replace: corrupt/ keeps everything. */
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        msg_warn("maildrop file %s: %s; moved to %s", name, why, to);
    else if (unlink(from) == 0)
        msg_warn("maildrop file %s: %s; cannot move to %s (%s): removed", name, why, to,
                 strerror(errno));
    else
        msg_warn("maildrop file %s: %s; cannot move or remove it: %s", name, why,
                 strerror(errno));
    free(from);
    free(to);
}

/* pickup_copy - Received: header, then the content with CRLF line ends */
static int pickup_copy(int fd, const qfile_t *qf, qfile_writer_t *w, uid_t uid,
                       bool *input_bad, const char **why_r)
{
    char *chunk = xmalloc(PICKUP_COPY_CHUNK);
    uint64_t left = qf->content_size;
    off_t off = qf->content_offset;
    pickup_crlf_t st;
    buf_t out;
    int ret = 0;

    buf_init(&out, BUF_NOLIMIT);
    pickup_received(&out, pickup.myhostname, uid, qfile_writer_qid(w), time(NULL));
    qfile_write_content(w, out.data, out.len);
    pickup_crlf_init(&st);
    while (left > 0) {
        size_t want = left < PICKUP_COPY_CHUNK ? (size_t)left : PICKUP_COPY_CHUNK;
        ssize_t n = pread(fd, chunk, want, off);

        if (n <= 0) {
            *why_r = n < 0 ? strerror(errno) : "file shrank while reading";
            *input_bad = true;
            ret = -1;
            break;
        }
        buf_reset(&out);
        pickup_crlf(&st, chunk, (size_t)n, &out);
        if (qfile_write_content(w, out.data, out.len) < 0) {
            *why_r = "queue file write error";
            ret = -1;
            break;
        }
        off += n;
        left -= (uint64_t)n;
    }
    buf_free(&out);
    free(chunk);
    return ret;
}

/* pickup_write - the real queue file in incoming/, synced and renamed
 * (the directory sync is the caller's, once per batch) */
static int pickup_write(int fd, const qfile_t *qf, uid_t uid, pickup_done_t *done,
                        bool *input_bad, const char **why_r)
{
    struct timespec now;
    qfile_writer_t *w;
    char uidbuf[32];
    const char *name;

    if (qfile_create(".", &w, why_r) < 0)
        return -1;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(uidbuf, sizeof(uidbuf), "%lu", (unsigned long)uid);
    qfile_put_arrival(w, (int64_t)now.tv_sec, (int32_t)(now.tv_nsec / 1000));
    qfile_put_sender(w, qf->sender);
    qfile_put_attr(w, "uid", uidbuf);
    qfile_put_attr(w, "protocol", "local");
    qfile_put_attr(w, "client_name", "localhost");
    if ((name = pickup_full_name(qfile_attr(qf, "full_name"))) != NULL)
        qfile_put_attr(w, "full_name", name);
    for (size_t i = 0; i < qf->nrcpts; i++)
        qfile_put_rcpt(w, qf->rcpts[i].addr, qf->rcpts[i].orcpt ? qf->rcpts[i].orcpt : "",
                       qf->rcpts[i].notify & (QFILE_NOTIFY_NEVER | QFILE_NOTIFY_SUCCESS
                                              | QFILE_NOTIFY_FAILURE | QFILE_NOTIFY_DELAY));
    qfile_begin_content(w);
    if (pickup_copy(fd, qf, w, uid, input_bad, why_r) < 0 || qfile_finish(w, why_r) < 0
        || qfile_sync(w, why_r) < 0 || qfile_commit(w, why_r) < 0) {
        qfile_abort(&w);
        return -1;
    }
    memcpy(done->qid, qfile_writer_qid(w), QID_BUFSIZE);
    done->renamed = qfile_name_needs_dir_sync(w);
    qfile_writer_free(&w);
    return 0;
}

/* pickup_file - one maildrop file: 1 queued (done filled in), 0 skipped
 * or moved aside, -1 the queue cannot take it now (retry later) */
static int pickup_file(const char *name, pickup_done_t *done)
{
    char *path = xasprintf("%s/%s", QUEUE_MAILDROP, name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    const char *why;
    bool input_bad = false;
    qfile_t qf;
    int ret = 0;

    free(path);
    if (fd < 0) {
        if (errno == ELOOP)
            pickup_corrupt(name, "symbolic link");
        else if (errno != ENOENT)
            msg_warn("open maildrop file %s: %s", name, strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(fd);
        pickup_corrupt(name, "not a regular file with one link");
        return 0;
    }
    if (qfile_read(fd, &qf, &why) < 0) {
        close(fd);
        pickup_corrupt(name, why);
        return 0;
    }
    if (pickup_check(&qf, pickup.size_limit, &why) < 0) {
        char *reason = xasprintf("uid=%lu: %s", (unsigned long)st.st_uid, why);

        qfile_free(&qf);
        close(fd);
        pickup_corrupt(name, reason);
        free(reason);
        return 0;
    }
    if (pickup_write(fd, &qf, st.st_uid, done, &input_bad, &why) < 0) {
        /* A file its owner changed under us is the owner's problem; a
         * queue that cannot be written is ours: retry later. */
        if (input_bad) {
            pickup_corrupt(name, why);
        } else {
            msg_warn("maildrop file %s: cannot queue it now: %s", name, why);
            ret = -1;
        }
    } else {
        memcpy(done->name, name, QID_BUFSIZE);
        done->uid = (unsigned long)st.st_uid;
        done->sender = xstrdup(qf.sender);
        ret = 1;
    }
    qfile_free(&qf);
    close(fd);
    return ret;
}

/* pickup_qmgr_new - tell qmgr; a lost notice only delays the message
 * until qmgr's next incoming/ scan */
static void pickup_qmgr_new(const char *qid)
{
    static const char *const socks[] = {"private/qmgr", "public/qmgr", NULL};

    for (int attempt = 0; attempt < 2; attempt++) {
        ipc_msg_t m;
        int rc;

        for (int i = 0; pickup.qmgr_fd < 0 && socks[i]; i++)
            if (access(socks[i], F_OK) == 0)
                pickup.qmgr_fd = ipc_connect(socks[i], "qmgr", PICKUP_QMGR_TIMEOUT_MS, NULL);
        if (pickup.qmgr_fd < 0)
            return;
        ipc_msg_init(&m, IPC_M_QMGR_NEW);
        ipc_put_str(&m, IPC_A_QID, qid);
        rc = ipc_send(pickup.qmgr_fd, &m, PICKUP_QMGR_TIMEOUT_MS);
        ipc_msg_free(&m);
        if (rc == 0)
            return;
        /* qmgr restarted since: reconnect once. */
        close(pickup.qmgr_fd);
        pickup.qmgr_fd = -1;
    }
}

/* pickup_finish_batch - make the batch durable, then tell and clean up */
static void pickup_finish_batch(pickup_done_t *done, size_t n)
{
    bool renamed = false;

    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        renamed |= done[i].renamed;
    if (queue_commit_dir(".", QUEUE_INCOMING, renamed) < 0) {
        /* Not durable: keep the maildrop files (a duplicate later beats
         * a loss); qmgr may still find the new files. */
        msg_warn("fsync %s: %s", QUEUE_INCOMING, strerror(errno));
        for (size_t i = 0; i < n; i++)
            free(done[i].sender);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", QUEUE_MAILDROP, done[i].name);

        msg_info("%s: uid=%lu from=<%s>", done[i].qid, done[i].uid, done[i].sender);
        pickup_qmgr_new(done[i].qid);
        if (unlink(path) < 0 && errno != ENOENT)
            msg_warn("remove %s: %s", path, strerror(errno));
        free(path);
        free(done[i].sender);
    }
}

/* pickup_stale_temp - remove a t.* file a crashed sendmail left */
static void pickup_stale_temp(const char *name, time_t now)
{
    char *path = xasprintf("%s/%s", QUEUE_MAILDROP, name);
    struct stat st;

    if (lstat(path, &st) == 0 && now - st.st_mtime > PICKUP_STALE_TEMP) {
        if (unlink(path) == 0)
            msg_info("removed stale temporary file %s", path);
        else if (errno != ENOENT)
            msg_warn("remove %s: %s", path, strerror(errno));
    }
    free(path);
}

/* pickup_scan - one pass over maildrop/ */
static void pickup_scan(void)
{
    DIR *d = opendir(QUEUE_MAILDROP);
    struct dirent *de;
    pickup_done_t done[PICKUP_BATCH];
    size_t ndone = 0;
    time_t now = time(NULL);
    bool stop = false;

    if (d == NULL) {
        msg_warn("open directory %s: %s", QUEUE_MAILDROP, strerror(errno));
        return;
    }
    while (!stop && !service_stop_requested(pickup.svc) && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (strncmp(name, "t.", 2) == 0) {
            pickup_stale_temp(name, now);
            continue;
        }
        if (!qid_valid(name)) {
            pickup_corrupt(name, "not a queue file name");
            continue;
        }
        switch (pickup_file(name, &done[ndone])) {
        case 1:
            if (++ndone == PICKUP_BATCH) {
                pickup_finish_batch(done, ndone);
                ndone = 0;
            }
            break;
        case -1:
            stop = true;        /* the queue is in trouble: retry at wakeup */
            break;
        default:
            break;
        }
    }
    closedir(d);
    pickup_finish_batch(done, ndone);
}

/* pickup_scan_timer - a scheduled scan */
static void pickup_scan_timer(event_loop_t *loop, void *ctx)
{
    pickup.scan_timer = NULL;
    pickup_scan();
}

/* pickup_schedule - scan soon; wake-ups that arrive meanwhile coalesce */
static void pickup_schedule(void)
{
    if (pickup.scan_timer == NULL)
        pickup.scan_timer = event_timer_add(service_loop(pickup.svc), 0, pickup_scan_timer, NULL);
}

/* pickup_on_msg - PICKUP_WAKE from sendmail; anything else is ignored */
static void pickup_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    if (m->type == IPC_M_PICKUP_WAKE)
        pickup_schedule();
}

/* pickup_on_close - the client is gone */
static void pickup_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    ipc_conn_free(&conn);
    service_client_done(pickup.svc);
}

/* pickup_accept - a client of public/pickup */
static void pickup_accept(service_t *svc, int fd)
{
    if (ipc_hello(fd, "pickup") < 0) {
        close(fd);
        service_client_done(svc);
        return;
    }
    (void)ipc_conn_new(service_loop(svc), fd, pickup_on_msg, pickup_on_close, NULL);
}

/* pickup_wakeup - the periodic scan (-w) */
static void pickup_wakeup(service_t *svc)
{
    pickup_schedule();
}

/* pickup_post_init - settings, sanity of the directories, first scan */
static void pickup_post_init(service_t *svc)
{
    conf_t *conf = service_conf(svc);

    pickup.svc = svc;
    pickup.qmgr_fd = -1;
    pickup.myhostname = conf_str(conf, "myhostname");
    pickup.size_limit = (uint64_t)conf_int(conf, "message_size_limit");
    /* Without write access to maildrop/ every file would be queued again
     * at every scan: refuse to start instead. */
    if (access(QUEUE_MAILDROP, R_OK | W_OK | X_OK) < 0)
        msg_fatal("%s: %s (pickup must be able to read and remove its files)", QUEUE_MAILDROP,
                  strerror(errno));
    if (access(QUEUE_INCOMING, W_OK | X_OK) < 0)
        msg_fatal("%s: %s", QUEUE_INCOMING, strerror(errno));
    pickup_schedule();
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "pickup",
        .client_limit = 100,
        .post_init = pickup_post_init,
        .accept_fn = pickup_accept,
        .wakeup_fn = pickup_wakeup,
    };

    return service_main(argc, argv, &spec);
}
