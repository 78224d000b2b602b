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

/* qmgr_flush_text - the reply to a flush; a big one goes on in the
 * background (qmgr_sched.c), and then the count is only the first part */
static void qmgr_flush_text(char *text, size_t size, size_t count)
{
    snprintf(text, size, "%zu message%s scheduled%s", count, count == 1 ? "" : "s",
             qmgr_sched_flushing() ? ", more being scheduled" : "");
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
        qmgr_flush_text(text, sizeof(text), count);
        { qmgr_reply(conn, m->req_id, 0, count, text); return; }
    }
    if (!privileged)
        { qmgr_reply(conn, m->req_id, 1, 0, "permission denied"); return; }
    if (strcmp(op, "flush_site") == 0) {
        if (site == NULL || *site == 0)
            { qmgr_reply(conn, m->req_id, 1, 0, "flush_site needs a site"); return; }
        (void)qmgr_dest_revive(site);
        count = qmgr_sched_flush_site(site);
        qmgr_flush_text(text, sizeof(text), count);
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

/*
 * A listing is streamed: a million-message queue makes a reply of a few
 * hundred megabytes, which must neither sit in memory nor stall the
 * event loop while it is built. qmgr_list sends a piece (at most
 * QMGR_LIST_PIECE entries, or until QMGR_LIST_HIGH bytes wait to be
 * written), and the connection asks for the next piece once its output
 * is down to QMGR_LIST_LOW (ipc_conn_set_drain). Each piece resumes the
 * index walk after the last queue id sent, so deliveries go on between
 * pieces and the listing shows the queue as it is while it is read,
 * as Postfix's showq does. A listing asked for while another runs on
 * the same connection waits for it (the replies never interleave).
 */
#define QMGR_LIST_PIECE 4096
#define QMGR_LIST_HIGH (512 * 1024)
#define QMGR_LIST_LOW (128 * 1024)

/* qmgr_list_fill - r (a QUEUE_ENTRY, emptied) gets one entry with its
 * pending recipients */
static void qmgr_list_fill(ipc_msg_t *r, uint32_t req_id, const qindex_entry_t *e)
{
    ipc_msg_reset(r);
    r->req_id = req_id;
    ipc_put_str(r, IPC_A_QID, e->qid);
    ipc_put_str(r, IPC_A_QUEUE, e->queue);
    ipc_put_u64(r, IPC_A_ARRIVAL, (uint64_t)e->arrival_sec);
    ipc_put_u64(r, IPC_A_SIZE, e->size);
    ipc_put_str(r, IPC_A_SENDER, e->sender ? e->sender : "");
    if (e->next_attempt > 0)
        ipc_put_u64(r, IPC_A_NEXT_ATTEMPT, (uint64_t)e->next_attempt);
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (e->rcpts[i].status != QFILE_RCPT_PENDING)
            continue;
        if (r->payload.len > IPC_MAX_FRAME - 64 * 1024)
            break;              /* a huge recipient list is cut, not fatal */
        size_t g = ipc_group_begin(r, IPC_A_RCPT);
        ipc_put_str(r, IPC_A_ADDR, e->rcpts[i].addr);
        if (e->rcpts[i].reason && *e->rcpts[i].reason)
            ipc_put_str(r, IPC_A_REASON, e->rcpts[i].reason);
        ipc_group_end(r, g);
    }
}

/* qmgr_list_send - one QUEUE_ENTRY */
static void qmgr_list_send(ipc_conn_t *conn, uint32_t req_id, const qindex_entry_t *e)
{
    ipc_msg_t r;

    ipc_msg_init(&r, IPC_M_QUEUE_ENTRY);
    qmgr_list_fill(&r, req_id, e);
    ipc_conn_send(conn, &r);
    ipc_msg_free(&r);
}

/* A listing asked for while another one streams on the same conn. */
typedef struct list_wait {
    uint32_t req_id;
    char *qid;
    struct list_wait *next;
} list_wait_t;

typedef struct list_ctx {
    ipc_conn_t *conn;
    uint32_t req_id;
    const char *qid;        /* only this message, or NULL (owned: qid_buf) */
    uint64_t count;
    char *qid_buf;
    char after[QID_BUFSIZE];    /* the last queue id sent; "" before the first */
    size_t piece;           /* entries sent in this piece */
    bool full;              /* this piece stopped early: more may follow */
    ipc_msg_t entry;        /* reused for every QUEUE_ENTRY */
    list_wait_t *waiting, **waiting_tail;
    struct list_ctx *prev, *next;   /* qmgr_lists */
} list_ctx_t;

static list_ctx_t *qmgr_lists;      /* listings in progress */

/* list_one - index walk callback: send one entry; stop when the piece is full */
static int list_one(const qindex_entry_t *e, void *ctx)
{
    list_ctx_t *l = ctx;

    if (l->qid && strcmp(l->qid, e->qid) != 0)
        return 0;
    qmgr_list_fill(&l->entry, l->req_id, e);
    ipc_conn_send(l->conn, &l->entry);
    memcpy(l->after, e->qid, QID_BUFSIZE);
    l->count++;
    if (++l->piece >= QMGR_LIST_PIECE || ipc_conn_pending(l->conn) >= QMGR_LIST_HIGH)
        return l->full = true, 1;
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

/* list_end - LIST_END {COUNT} for the current request */
static void list_end(list_ctx_t *l)
{
    ipc_msg_t r;

    ipc_msg_init(&r, IPC_M_LIST_END);
    r.req_id = l->req_id;
    ipc_put_u64(&r, IPC_A_COUNT, l->count);
    ipc_conn_send(l->conn, &r);
    ipc_msg_free(&r);
}

/* list_start - begin a request: from the first queue id */
static void list_start(list_ctx_t *l, uint32_t req_id, char *qid)
{
    free(l->qid_buf);
    l->qid_buf = qid;
    l->qid = qid;
    l->req_id = req_id;
    l->count = 0;
    l->after[0] = 0;
}

/* list_one_qid - the entry of one message, if indexed */
static void list_one_qid(list_ctx_t *l)
{
    qindex_entry_t e;
    const char *why;
    int rc = qindex_get(qmgr.index, l->qid, &e, &why);

    if (rc < 0)
        msg_warn("queue index lookup: %s", why);
    if (rc == 1) {
        (void)list_one(&e, l);
        qindex_entry_free(&e);
    }
}

/* list_piece - send the next piece; false when nothing more is wanted */
static bool list_piece(ipc_conn_t *conn, void *ctx)
{
    list_ctx_t *l = ctx;
    const char *why;

    l->piece = 0;
    l->full = false;
    if (l->qid)
        list_one_qid(l);
    else if (qindex_walk_from(qmgr.index, l->after, list_one, l, &why) < 0)
        msg_warn("queue index walk: %s", why);
    if (l->full && !l->qid)
        return true;
    list_incoming(l);
    list_end(l);
    if (l->waiting == NULL)
        return false;
    list_wait_t *w = l->waiting;
    if ((l->waiting = w->next) == NULL)
        l->waiting_tail = &l->waiting;
    list_start(l, w->req_id, w->qid);
    free(w);
    return true;            /* the LIST_END went out: called again */
}

/* list_free - the conn is gone or the listing is done */
static void list_free(void *ctx)
{
    list_ctx_t *l = ctx;

    while (l->waiting) {
        list_wait_t *w = l->waiting;
        l->waiting = w->next;
        free(w->qid);
        free(w);
    }
    if (l->prev)
        l->prev->next = l->next;
    else
        qmgr_lists = l->next;
    if (l->next)
        l->next->prev = l->prev;
    ipc_msg_free(&l->entry);
    free(l->qid_buf);
    free(l);
}

/* qmgr_list - QMGR_LIST [QID]: QUEUE_ENTRY frames, then LIST_END */
void qmgr_list(ipc_conn_t *conn, ipc_msg_t *m)
{
    const char *qid = ipc_get_str(ipc_msg_view(m), IPC_A_QID);
    char *q = qid ? xstrdup(qid) : NULL;
    list_ctx_t *l;

    if (ipc_conn_draining(conn)) {
        for (l = qmgr_lists; l && l->conn != conn; l = l->next)
            ;
        if (l) {
            list_wait_t *w = xcalloc(1, sizeof(*w));
            w->req_id = m->req_id;
            w->qid = q;
            *l->waiting_tail = w;
            l->waiting_tail = &w->next;
            return;
        }
    }
    l = xcalloc(1, sizeof(*l));
    l->conn = conn;
    l->waiting_tail = &l->waiting;
    ipc_msg_init(&l->entry, IPC_M_QUEUE_ENTRY);
    list_start(l, m->req_id, q);
    if ((l->next = qmgr_lists) != NULL)
        qmgr_lists->prev = l;
    qmgr_lists = l;
    if (list_piece(conn, l))
        ipc_conn_set_drain(conn, QMGR_LIST_LOW, list_piece, l, list_free);
    else
        list_free(l);
}
