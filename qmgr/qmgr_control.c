/*
 * qmgr_control - storkqueue/storksuper requests: list the queue; flush,
 * flush_site, hold, release, delete, requeue, rebuild. Because qmgr is
 * the only process that moves queue files, the admin commands go
 * through it and never race a delivery.
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

typedef struct {
    qid_buf_t *ids;
    size_t n, cap;
    const char *queue;      /* filter, or NULL */
} targets_t;

/* targets_add - one more queue id */
static void targets_add(targets_t *t, const char *qid)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->ids = xreallocarray(t->ids, t->cap, sizeof(*t->ids));
    }
    memcpy(t->ids[t->n++], qid, QID_BUFSIZE);
}

/* targets_from_index - every indexed message (of one queue) */
static int targets_from_index(const qindex_entry_t *e, void *ctx)
{
    targets_t *t = ctx;

    if (strcmp(e->queue, QUEUE_ACTIVE) != 0 && (t->queue == NULL || strcmp(t->queue, e->queue) == 0))
        targets_add(t, e->qid);
    return 0;
}

/* targets_all - ALL: indexed, active and not yet activated messages */
static void targets_all(targets_t *t)
{
    const char *why;

    if (qindex_walk(qmgr.index, targets_from_index, t, &why) < 0)
        msg_warn("queue index walk: %s", why);
    if (t->queue == NULL || strcmp(t->queue, QUEUE_ACTIVE) == 0)
        for (qmgr_msg_t *m = qmgr.active; m; m = m->next)
            targets_add(t, m->qid);
    if (t->queue == NULL || strcmp(t->queue, QUEUE_INCOMING) == 0) {
        DIR *d = opendir(QUEUE_INCOMING);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL)
            if (qid_valid(de->d_name))
                targets_add(t, de->d_name);
        if (d)
            closedir(d);
    }
}

/* qmgr_file_queue - which of the given/usual queues holds qid, or NULL */
static const char *qmgr_file_queue(const char *qid, const char *only)
{
    static const char *queues[] = { QUEUE_INCOMING, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };
    struct stat st;
    char path[64];

    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
        if (only && strcmp(only, queues[i]) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", queues[i], qid);
        if (stat(path, &st) == 0)
            return queues[i];
    }
    return NULL;
}

/* qmgr_move - rename queue/qid to to/qid */
static int qmgr_move(const char *from, const char *to, const char *qid)
{
    char a[64], b[64];

    snprintf(a, sizeof(a), "%s/%s", from, qid);
    snprintf(b, sizeof(b), "%s/%s", to, qid);
    if (rename(a, b) < 0) {
        if (errno != ENOENT)
            msg_warn("%s: cannot move from %s/ to %s/: %m", qid, from, to);
        return -1;
    }
    return 0;
}

/* qmgr_control_one - apply op to one message; 1 if it did something */
static int qmgr_control_one(const char *op, const char *qid, const char *only)
{
    qmgr_msg_t *msg = qmgr_message_find(qid);
    char path[64];

    if (msg) {
        if (only && strcmp(only, QUEUE_ACTIVE) != 0)
            return 0;
        /* applied when the delivery round ends */
        if (strcmp(op, "hold") == 0)
            msg->ops |= QMGR_MSG_HOLD;
        else if (strcmp(op, "delete") == 0)
            msg->ops |= QMGR_MSG_DELETE;
        else if (strcmp(op, "requeue") == 0)
            msg->ops |= QMGR_MSG_REQUEUE;
        else
            return 0;
        return 1;
    }
    const char *q = qmgr_file_queue(qid, only);
    if (q == NULL)
        return 0;
    if (strcmp(op, "delete") == 0) {
        snprintf(path, sizeof(path), "%s/%s", q, qid);
        if (unlink(path) < 0)
            return 0;
        msg_info("%s: removed", qid);
        qmgr_index_del(qid);
        return 1;
    }
    if (strcmp(op, "hold") == 0 && strcmp(q, QUEUE_HOLD) != 0 && strcmp(q, QUEUE_CORRUPT) != 0) {
        if (qmgr_move(q, QUEUE_HOLD, qid) < 0)
            return 0;
        msg_info("%s: placed on hold", qid);
        qmgr_index_file(QUEUE_HOLD, qid, 0);
        return 1;
    }
    if (strcmp(op, "release") == 0 && strcmp(q, QUEUE_HOLD) == 0) {
        int64_t now = qmgr_now();
        snprintf(path, sizeof(path), "%s/%s", QUEUE_HOLD, qid);
        (void)qmgr_sched_set_mtime(path, now);
        if (qmgr_move(QUEUE_HOLD, QUEUE_DEFERRED, qid) < 0)
            return 0;
        msg_info("%s: released from hold", qid);
        qmgr_index_file(QUEUE_DEFERRED, qid, now);
        return 1;
    }
    if (strcmp(op, "requeue") == 0 && strcmp(q, QUEUE_INCOMING) != 0) {
        if (qmgr_move(q, QUEUE_INCOMING, qid) < 0)
            return 0;
        msg_info("%s: requeued", qid);
        qmgr_index_del(qid);
        qmgr_message_incoming(qid);
        return 1;
    }
    return 0;
}

/* qmgr_reply - CONTROL_REPLY {STATUS, COUNT, TEXT} */
static void qmgr_reply(ipc_conn_t *conn, uint32_t req_id, int status, uint64_t count,
                       const char *text)
{
    ipc_msg_t r;

    ipc_msg_init(&r, IPC_M_CONTROL_REPLY);
    r.req_id = req_id;
    ipc_put_u64(&r, IPC_A_STATUS, (uint64_t)status);
    ipc_put_u64(&r, IPC_A_COUNT, count);
    ipc_put_str(&r, IPC_A_TEXT, text);
    ipc_conn_send(conn, &r);
    ipc_msg_free(&r);
}

/* qmgr_valid_queue - a queue name a client may name */
static bool qmgr_valid_queue(const char *q)
{
    return strcmp(q, QUEUE_INCOMING) == 0 || strcmp(q, QUEUE_ACTIVE) == 0
        || strcmp(q, QUEUE_DEFERRED) == 0 || strcmp(q, QUEUE_HOLD) == 0
        || strcmp(q, QUEUE_CORRUPT) == 0;
}

/* qmgr_control - one QMGR_CONTROL request */
void qmgr_control(ipc_conn_t *conn, ipc_msg_t *m, bool privileged)
{
    ipc_view_t v = ipc_msg_view(m);
    const char *op = ipc_get_str(v, IPC_A_OP);
    const char *qid = ipc_get_str(v, IPC_A_QID);
    const char *queue = ipc_get_str(v, IPC_A_QUEUE);
    const char *site = ipc_get_str(v, IPC_A_SITE);
    char text[128];
    size_t count = 0;

    if (queue && !qmgr_valid_queue(queue))
        { qmgr_reply(conn, m->req_id, 1, 0, "unknown queue name"); return; }
    if (qid && strcmp(qid, "ALL") != 0 && !qid_valid(qid))
        { qmgr_reply(conn, m->req_id, 1, 0, "bad queue id"); return; }
    if (strcmp(op, "flush") == 0) {
        if (qid && strcmp(qid, "ALL") != 0) {
            if (qmgr_file_queue(qid, QUEUE_DEFERRED)) {
                char path[64];
                snprintf(path, sizeof(path), "%s/%s", QUEUE_DEFERRED, qid);
                (void)qmgr_sched_set_mtime(path, qmgr_now());
                qmgr_index_set_queue(qid, QUEUE_DEFERRED, qmgr_now());
                count = 1;
            }
            qmgr_message_pump();
            qmgr_sched_arm();
        } else {
            qmgr_scan_incoming();           /* as Postfix's flush: incoming/ too */
            (void)qmgr_dest_revive(NULL);   /* as postqueue -f: forget dead sites */
            count = qmgr_sched_flush_site(NULL);
        }
        snprintf(text, sizeof(text), "%zu message%s scheduled", count, count == 1 ? "" : "s");
        { qmgr_reply(conn, m->req_id, 0, count, text); return; }
    }
    if (!privileged)
        { qmgr_reply(conn, m->req_id, 1, 0, "permission denied"); return; }
    if (strcmp(op, "flush_site") == 0) {
        if (site == NULL || *site == 0)
            { qmgr_reply(conn, m->req_id, 1, 0, "flush_site needs a site"); return; }
        (void)qmgr_dest_revive(site);
        count = qmgr_sched_flush_site(site);
        snprintf(text, sizeof(text), "%zu message%s scheduled", count, count == 1 ? "" : "s");
        { qmgr_reply(conn, m->req_id, 0, count, text); return; }
    }
    if (strcmp(op, "rebuild") == 0) {
        qmgr_rebuild(false);
        qmgr_message_pump();
        qmgr_sched_arm();
        { qmgr_reply(conn, m->req_id, 0, 0, "queue index rebuilt"); return; }
    }
    if (strcmp(op, "hold") && strcmp(op, "release") && strcmp(op, "delete") && strcmp(op, "requeue"))
        { qmgr_reply(conn, m->req_id, 1, 0, "unknown operation"); return; }
    if (qid == NULL)
        { qmgr_reply(conn, m->req_id, 1, 0, "no queue id"); return; }
    targets_t t = { .queue = queue };
    if (strcmp(qid, "ALL") == 0)
        targets_all(&t);
    else
        targets_add(&t, qid);
    for (size_t i = 0; i < t.n; i++)
        count += (size_t)qmgr_control_one(op, t.ids[i], queue);
    free(t.ids);
    qmgr_message_pump();
    qmgr_sched_arm();
    snprintf(text, sizeof(text), "%s: %zu message%s", op, count, count == 1 ? "" : "s");
    qmgr_reply(conn, m->req_id, 0, count, text);
}

/* qmgr_list_send - one QUEUE_ENTRY (pending recipients only) */
static void qmgr_list_send(ipc_conn_t *conn, uint32_t req_id, const qindex_entry_t *e)
{
    ipc_msg_t r;

    ipc_msg_init(&r, IPC_M_QUEUE_ENTRY);
    r.req_id = req_id;
    ipc_put_str(&r, IPC_A_QID, e->qid);
    ipc_put_str(&r, IPC_A_QUEUE, e->queue);
    ipc_put_u64(&r, IPC_A_ARRIVAL, (uint64_t)e->arrival_sec);
    ipc_put_u64(&r, IPC_A_SIZE, e->size);
    ipc_put_str(&r, IPC_A_SENDER, e->sender ? e->sender : "");
    if (e->next_attempt > 0)
        ipc_put_u64(&r, IPC_A_NEXT_ATTEMPT, (uint64_t)e->next_attempt);
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (e->rcpts[i].status != QFILE_RCPT_PENDING)
            continue;
        if (r.payload.len > IPC_MAX_FRAME - 64 * 1024)
            break;              /* a huge recipient list is cut, not fatal */
        size_t g = ipc_group_begin(&r, IPC_A_RCPT);
        ipc_put_str(&r, IPC_A_ADDR, e->rcpts[i].addr);
        if (e->rcpts[i].reason && *e->rcpts[i].reason)
            ipc_put_str(&r, IPC_A_REASON, e->rcpts[i].reason);
        ipc_group_end(&r, g);
    }
    ipc_conn_send(conn, &r);
    ipc_msg_free(&r);
}

typedef struct {
    ipc_conn_t *conn;
    uint32_t req_id;
    const char *qid;
    uint64_t count;
} list_ctx_t;

/* list_one - index walk callback */
static int list_one(const qindex_entry_t *e, void *ctx)
{
    list_ctx_t *l = ctx;

    if (l->qid && strcmp(l->qid, e->qid) != 0)
        return 0;
    qmgr_list_send(l->conn, l->req_id, e);
    l->count++;
    return 0;
}

/* list_incoming - files in incoming/ that are not yet indexed */
static void list_incoming(list_ctx_t *l)
{
    for (size_t k = 0; k < qmgr.inq_len; k++) {
        const char *qid = qmgr.inq[qmgr.inq_head + k];
        char path[64];
        qfile_t qf;
        const char *why;
        if (l->qid && strcmp(l->qid, qid) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", QUEUE_INCOMING, qid);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        if (qfile_read(fd, &qf, &why) == 0) {
            qindex_entry_t e = { .arrival_sec = qf.arrival_sec, .size = qf.content_size,
                                 .sender = qf.sender, .nrcpts = qf.nrcpts };
            memcpy(e.qid, qid, QID_BUFSIZE);
            snprintf(e.queue, sizeof(e.queue), "%s", QUEUE_INCOMING);
            e.rcpts = xcalloc(qf.nrcpts ? qf.nrcpts : 1, sizeof(*e.rcpts));
            for (size_t i = 0; i < qf.nrcpts; i++) {
                e.rcpts[i].addr = qf.rcpts[i].addr;
                e.rcpts[i].status = qf.rcpts[i].status;
            }
            qmgr_list_send(l->conn, l->req_id, &e);
            l->count++;
            free(e.rcpts);
            qfile_free(&qf);
        }
        close(fd);
    }
}

/* qmgr_list - QMGR_LIST [QID]: QUEUE_ENTRY frames, then LIST_END */
void qmgr_list(ipc_conn_t *conn, ipc_msg_t *m)
{
    const char *why;
    list_ctx_t l = { conn, m->req_id, ipc_get_str(ipc_msg_view(m), IPC_A_QID), 0 };
    ipc_msg_t r;

    if (qindex_walk(qmgr.index, list_one, &l, &why) < 0)
        msg_warn("queue index walk: %s", why);
    list_incoming(&l);
    ipc_msg_init(&r, IPC_M_LIST_END);
    r.req_id = m->req_id;
    ipc_put_u64(&r, IPC_A_COUNT, l.count);
    ipc_conn_send(conn, &r);
    ipc_msg_free(&r);
}
