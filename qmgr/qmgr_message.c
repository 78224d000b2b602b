/*
 * qmgr_message - active messages: take a file into active/, collect the
 * per-recipient results of one delivery round, then remove, defer, hold
 * or requeue it. A message is in exactly one queue directory at every
 * instant (rename is atomic), which is what at-least-once rests on.
 */
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

/* qmgr_inq_push - remember an incoming id until there is a free slot */
static void qmgr_inq_push(const char *qid)
{
    if (qmgr.inq_head + qmgr.inq_len == qmgr.inq_cap) {
        if (qmgr.inq_head > 0) {
            memmove(qmgr.inq, qmgr.inq + qmgr.inq_head, qmgr.inq_len * sizeof(*qmgr.inq));
            qmgr.inq_head = 0;
        } else {
            qmgr.inq_cap = qmgr.inq_cap ? 2 * qmgr.inq_cap : 256;
            qmgr.inq = xreallocarray(qmgr.inq, qmgr.inq_cap, sizeof(*qmgr.inq));
        }
    }
    memcpy(qmgr.inq[qmgr.inq_head + qmgr.inq_len++], qid, QID_BUFSIZE);
}

/* qmgr_message_incoming - a new file in incoming/ (a notice or a scan) */
void qmgr_message_incoming(const char *qid)
{
    if (!qid_valid(qid))
        return;
    qmgr_inq_push(qid);
    qmgr_message_pump();
}

/* qmgr_message_pump - fill free active slots: incoming first (new mail
 * is not starved by a large deferred queue), then due deferred mail */
void qmgr_message_pump(void)
{
    char qid[QID_BUFSIZE];

    if (qmgr.in_pump)
        return;
    qmgr.in_pump = true;
    while (qmgr.nactive < qmgr.active_limit && qmgr.inq_len > 0) {
        memcpy(qid, qmgr.inq[qmgr.inq_head], QID_BUFSIZE);
        qmgr.inq_head++;
        if (--qmgr.inq_len == 0)
            qmgr.inq_head = 0;
        qmgr_message_activate(qid, QUEUE_INCOMING);
    }
    if (qmgr.nactive < qmgr.active_limit)
        qmgr_sched_run();
    qmgr.in_pump = false;
}

/* qmgr_message_find - the active message with this id, or NULL */
qmgr_msg_t *qmgr_message_find(const char *qid)
{
    for (qmgr_msg_t *m = qmgr.active; m; m = m->next)
        if (strcmp(m->qid, qid) == 0)
            return m;
    return NULL;
}

/* qmgr_message_free - unlink from the active list and release */
static void qmgr_message_free(qmgr_msg_t *msg)
{
    if (msg->prev)
        msg->prev->next = msg->next;
    else
        qmgr.active = msg->next;
    if (msg->next)
        msg->next->prev = msg->prev;
    qmgr.nactive--;
    for (size_t i = 0; i < msg->qf.nrcpts; i++) {
        free(msg->rs[i].dsn);
        free(msg->rs[i].text);
        free(msg->rs[i].action);
        free(msg->rs[i].relay);
    }
    free(msg->rs);
    qfile_free(&msg->qf);
    if (msg->fd >= 0)
        close(msg->fd);
    free(msg);
}

/* qmgr_path - QUEUE/QID under the queue directory (caller frees) */
static char *qmgr_path(const char *queue, const char *qid)
{
    return xasprintf("%s/%s/%s", qmgr.qdir, queue, qid);
}

/* qmgr_message_recycle - keep a finished message's file in recycle/ for
 * the next writer, while there is room (qfile_recycle.c says why) */
static bool qmgr_message_recycle(const qmgr_msg_t *msg)
{
    if (qmgr.recycle_limit <= 0 || msg->fd < 0)
        return false;
    if (qmgr.recycled >= qmgr.recycle_limit) {
        /* Writers take files without telling us: count again (a stat
         * per file). After a count that found recycle/ at least half
         * full, at most once a second; after one that found it emptier,
         * at once, since half the limit's recycles have passed since. */
        int64_t now = qmgr_now();
        if (now == qmgr.recycle_counted && qmgr.recycle_found >= qmgr.recycle_limit / 2)
            return false;
        qmgr.recycle_counted = now;
        long n = qfile_recycle_tidy(qmgr.qdir, true);
        qmgr.recycled = qmgr.recycle_found = n < 0 ? qmgr.recycle_limit : n;
        if (qmgr.recycled >= qmgr.recycle_limit)
            return false;
    }
    if (qfile_recycle(qmgr.qdir, QUEUE_ACTIVE, msg->qid, msg->fd) < 0)
        return false;
    qmgr.recycled++;
    return true;
}

/* qmgr_message_remove - all done (or deleted): recycle or unlink the
 * file, and forget the message */
static void qmgr_message_remove(qmgr_msg_t *msg)
{
    char *path = qmgr_path(QUEUE_ACTIVE, msg->qid);

    if (!qmgr_message_recycle(msg) && unlink(path) < 0 && errno != ENOENT)
        msg_warn("%s: cannot remove %s: %m", msg->qid, path);
    else
        msg_info("%s: removed", msg->qid);
    qmgr_index_del(msg->qid);
    free(path);
}

/* qmgr_message_activate - move queue/qid to active/ and start delivery;
 * -1 if there was nothing to deliver from that file */
int qmgr_message_activate(const char *qid, const char *from)
{
    char *apath = qmgr_path(QUEUE_ACTIVE, qid);
    const char *why;

    if (strcmp(from, QUEUE_ACTIVE) != 0) {
        char *fpath = qmgr_path(from, qid);
        int rc = rename(fpath, apath);
        int err = errno;
        free(fpath);
        if (rc < 0) {
            /* incoming: a duplicate notice for a file already taken */
            if (err != ENOENT)
                msg_warn("%s: cannot move from %s/ to %s/: %s", qid, from, QUEUE_ACTIVE,
                         strerror(err));
            if (strcmp(from, QUEUE_DEFERRED) == 0) {
                if (err == ENOENT)
                    qmgr_index_del(qid);
                else
                    qmgr_index_set_queue(qid, QUEUE_DEFERRED, qmgr_now() + qmgr.min_backoff);
            }
            free(apath);
            return -1;
        }
    }
    int fd = open(apath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    free(apath);
    if (fd < 0) {
        msg_warn("%s: cannot open %s/%s: %m", qid, QUEUE_ACTIVE, qid);
        return -1;
    }
    qmgr_msg_t *msg = xcalloc(1, sizeof(*msg));
    memcpy(msg->qid, qid, QID_BUFSIZE);
    msg->fd = fd;
    if (qfile_read(fd, &msg->qf, &why) < 0) {
        close(fd);
        free(msg);
        qmgr_move_corrupt(QUEUE_ACTIVE, qid, why);
        return -1;
    }
    msg->rs = xcalloc(msg->qf.nrcpts, sizeof(*msg->rs));
    struct stat st;
    msg->delay_warned = fstat(fd, &st) == 0 && (st.st_mode & QFILE_MODE_WARNED);
    msg->next = qmgr.active;
    if (qmgr.active)
        qmgr.active->prev = msg;
    qmgr.active = msg;
    qmgr.nactive++;

    size_t pending = 0;
    for (size_t i = 0; i < msg->qf.nrcpts; i++)
        if (msg->qf.rcpts[i].status == QFILE_RCPT_PENDING)
            pending++;
    if (pending == 0) {             /* finished before a crash: just unlink */
        qmgr_message_remove(msg);
        qmgr_message_free(msg);
        return 0;
    }
    int64_t lifetime = msg->qf.sender[0] ? qmgr.max_lifetime : qmgr.bounce_lifetime;
    msg->expired = qmgr_now() - msg->qf.arrival_sec >= lifetime;
    msg_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", qid, msg->qf.sender,
             (unsigned long long)msg->qf.content_size, pending);
    qmgr_index_put_file(qid, QUEUE_ACTIVE, &msg->qf, NULL, 0);
    qmgr_transport_assign(msg);
    return 0;
}

/* qmgr_message_result - one recipient's outcome; a success is written
 * to the file at once (no fsync: losing it only means a redelivery) */
void qmgr_message_result(qmgr_msg_t *msg, size_t i, qmgr_result_t r, const char *dsn,
                         const char *text)
{
    qmgr_rstate_t *rs = &msg->rs[i];

    rs->result = r;
    free(rs->dsn);
    free(rs->text);
    rs->dsn = xstrdup(dsn);
    rs->text = xstrdup(text);
    if (r == QR_DONE) {
        if (qfile_mark_rcpt(msg->fd, msg->qf.rcpts[i].status_offset, QFILE_RCPT_DONE) < 0)
            msg_warn("%s: cannot mark recipient %s done: %m", msg->qid, msg->qf.rcpts[i].addr);
        msg->qf.rcpts[i].status = QFILE_RCPT_DONE;
    }
}

/* qmgr_mark_done - a recipient needs nothing more (bounced or dropped) */
static void qmgr_mark_done(qmgr_msg_t *msg, size_t i)
{
    if (qfile_mark_rcpt(msg->fd, msg->qf.rcpts[i].status_offset, QFILE_RCPT_DONE) < 0)
        msg_warn("%s: cannot mark recipient %s done: %m", msg->qid, msg->qf.rcpts[i].addr);
    msg->qf.rcpts[i].status = QFILE_RCPT_DONE;
}

/* RFC 3461: NOTIFY absent means FAILURE,DELAY; NEVER means nothing */
static bool qmgr_wants_failure_dsn(unsigned notify)
{
    return notify == 0 || (notify & QFILE_NOTIFY_FAILURE);
}

static bool qmgr_wants_delay_dsn(unsigned notify)
{
    return notify == 0 || (notify & QFILE_NOTIFY_DELAY);
}

/* Recipients per bounce request: keeps a BOUNCE_REQ well inside one IPC
 * frame (addresses and diagnostics are capped far below 2 KiB). A huge
 * failure list becomes several reports. */
#define QMGR_BOUNCE_BATCH 200

typedef enum { QMGR_N_FAILED, QMGR_N_DELAYED, QMGR_N_SUCCESS } qmgr_notice_t;

typedef struct qmgr_notice_req {
    qmgr_notice_t kind;
    size_t *idx;
    size_t n;
} qmgr_notice_req_t;

static void qmgr_message_settle(qmgr_msg_t *msg);

/* qmgr_notice_done - the bounce service answered one request */
static void qmgr_notice_done(qmgr_msg_t *msg, void *ctx, int status, const char *bqid)
{
    qmgr_notice_req_t *q = ctx;

    for (size_t k = 0; k < q->n; k++) {
        size_t i = q->idx[k];
        if (q->kind != QMGR_N_FAILED || msg->qf.rcpts[i].status != QFILE_RCPT_PENDING)
            continue;
        if (status == 0)
            qmgr_mark_done(msg, i);
        else
            msg->rs[i].result = QR_DEFER;   /* the report is retried with the message */
    }
    if (q->kind == QMGR_N_DELAYED && status == 0) {
        /* remembered on the file itself (group-execute bit): survives
         * an index rebuild and every rename */
        struct stat st;
        if (fstat(msg->fd, &st) < 0 || fchmod(msg->fd, (st.st_mode & 07777) | QFILE_MODE_WARNED) < 0)
            msg_warn("%s: cannot record the delay warning: %m", msg->qid);
        msg->delay_warned = true;
    }
    if (q->kind == QMGR_N_SUCCESS && status < 0)
        msg_warn("%s: delivery status notification not sent", msg->qid);
    free(q->idx);
    free(q);
    if (bqid)
        qmgr_message_incoming(bqid);
    if (--msg->bounces_out == 0)
        qmgr_message_settle(msg);
}

/* qmgr_notice_send - requests for idx[0..n), in batches */
static void qmgr_notice_send(qmgr_msg_t *msg, qmgr_notice_t kind, const size_t *idx, size_t n)
{
    static const char *const names[] = { "failed", "delayed", "success" };

    for (size_t off = 0; off < n; off += QMGR_BOUNCE_BATCH) {
        qmgr_notice_req_t *q = xcalloc(1, sizeof(*q));
        q->kind = kind;
        q->n = n - off < QMGR_BOUNCE_BATCH ? n - off : QMGR_BOUNCE_BATCH;
        q->idx = xcalloc(q->n, sizeof(size_t));
        memcpy(q->idx, idx + off, q->n * sizeof(size_t));
        msg->bounces_out++;
        qmgr_bounce_request(msg, names[kind], q->idx, q->n, qmgr_notice_done, q);
    }
}

/* qmgr_message_notices - the round's DSNs: failures (and expiry) to the
 * sender (a failure without a wanted report is just done), success
 * notices owed, and one delay warning after delay_warning_time */
static void qmgr_message_notices(qmgr_msg_t *msg)
{
    size_t nr = msg->qf.nrcpts;
    size_t *fail = xcalloc(nr, sizeof(size_t)), *ok = xcalloc(nr, sizeof(size_t));
    size_t *late = xcalloc(nr, sizeof(size_t)), nf = 0, nok = 0, nlate = 0, nexp = 0;

    for (size_t i = 0; i < nr; i++) {
        qmgr_rstate_t *rs = &msg->rs[i];
        unsigned notify = msg->qf.rcpts[i].notify;
        if (msg->expired && rs->result == QR_DEFER
            && msg->qf.rcpts[i].status == QFILE_RCPT_PENDING) {
            rs->result = QR_BOUNCE;
            nexp++;
        }
        if (rs->result == QR_DONE && rs->success_dsn)
            ok[nok++] = i;
        if (rs->result != QR_BOUNCE || msg->qf.rcpts[i].status != QFILE_RCPT_PENDING)
            continue;
        if (qmgr_wants_failure_dsn(notify))
            fail[nf++] = i;
        else
            qmgr_mark_done(msg, i);
    }
    if (nexp)
        msg_info("%s: from=<%s>, status=expired, returned to sender", msg->qid, msg->qf.sender);
    if (qmgr.delay_warning > 0 && !msg->delay_warned && !msg->expired && msg->qf.sender[0]
        && qmgr_now() - msg->qf.arrival_sec >= qmgr.delay_warning)
        for (size_t i = 0; i < nr; i++)
            if (msg->rs[i].result == QR_DEFER && msg->qf.rcpts[i].status == QFILE_RCPT_PENDING
                && qmgr_wants_delay_dsn(msg->qf.rcpts[i].notify))
                late[nlate++] = i;
    if (nf)
        qmgr_notice_send(msg, QMGR_N_FAILED, fail, nf);
    if (nok && msg->qf.sender[0])
        qmgr_notice_send(msg, QMGR_N_SUCCESS, ok, nok);
    if (nlate)
        qmgr_notice_send(msg, QMGR_N_DELAYED, late, nlate);
    free(fail);
    free(ok);
    free(late);
}

/* qmgr_message_move - rename active/QID to another queue */
static int qmgr_message_move(qmgr_msg_t *msg, const char *to)
{
    char *from = qmgr_path(QUEUE_ACTIVE, msg->qid), *dst = qmgr_path(to, msg->qid);
    int rc = rename(from, dst);

    if (rc < 0)
        msg_warn("%s: cannot move to %s/: %m", msg->qid, to);
    free(from);
    free(dst);
    return rc;
}

/* qmgr_message_finish - the round is over: notices first (the bounce
 * service answers later), then qmgr_message_settle */
static void qmgr_message_finish(qmgr_msg_t *msg)
{
    if (!(msg->ops & QMGR_MSG_DELETE))
        qmgr_message_notices(msg);
    if (msg->bounces_out == 0)
        qmgr_message_settle(msg);
}

/* qmgr_message_settle - remove, hold, requeue or defer */
static void qmgr_message_settle(qmgr_msg_t *msg)
{
    size_t pending = 0;
    char qid[QID_BUFSIZE];

    memcpy(qid, msg->qid, QID_BUFSIZE);
    for (size_t i = 0; i < msg->qf.nrcpts; i++)
        if (msg->qf.rcpts[i].status == QFILE_RCPT_PENDING)
            pending++;
    bool requeue = false;
    if (pending == 0 || (msg->ops & QMGR_MSG_DELETE)) {
        qmgr_message_remove(msg);
    } else if (msg->ops & QMGR_MSG_HOLD) {
        if (qmgr_message_move(msg, QUEUE_HOLD) == 0) {
            msg_info("%s: placed on hold", qid);
            qmgr_index_put_file(qid, QUEUE_HOLD, &msg->qf, msg->rs, 0);
        }
    } else if (msg->ops & QMGR_MSG_REQUEUE) {
        requeue = qmgr_message_move(msg, QUEUE_INCOMING) == 0;
        if (requeue)
            msg_info("%s: requeued", qid);
    } else {
        int64_t next = qmgr_sched_next(msg);
        char *path = qmgr_path(QUEUE_ACTIVE, qid);
        /* the schedule survives losing the index: it is the file's mtime */
        if (qmgr_sched_set_mtime(path, next) < 0)
            msg_warn("%s: cannot set the next attempt time: %m", qid);
        free(path);
        if (qmgr_message_move(msg, QUEUE_DEFERRED) == 0)
            qmgr_index_put_file(qid, QUEUE_DEFERRED, &msg->qf, msg->rs, next);
    }
    qmgr_message_free(msg);
    if (requeue)
        qmgr_message_incoming(qid);
    qmgr_message_pump();
    qmgr_sched_arm();
}

/* qmgr_message_job_done - one job (or the assignment guard) is over */
void qmgr_message_job_done(qmgr_msg_t *msg)
{
    if (--msg->jobs_out == 0)
        qmgr_message_finish(msg);
}
