/*
 * qmgr_bounce - requests to the bounce service (qmgr/bounce/, master.cf
 * "bounce unix - - n - 0 bounce"). One connection per request: connect
 * to private/bounce without blocking, check its HELLO, send BOUNCE_REQ
 * {QID, QPATH, DSN_KIND, RCPT...}, wait for BOUNCE_REPLY {STATUS, [QID]}.
 * The report is durable in incoming/ before the reply, so qmgr marks
 * failed recipients done only after a good reply; any failure (no
 * service, timeout, bad reply) reports status -1 and the caller keeps
 * the recipients pending. The callback always runs from the event loop,
 * never from inside qmgr_bounce_request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QMGR_BOUNCE_SOCK "private/bounce"
#define QMGR_BOUNCE_TIMEOUT_MS 100000

typedef struct qmgr_breq {
    qmgr_msg_t *msg;
    qmgr_bounce_cb *cb;
    void *ctx;
    ipc_conn_t *conn;
    event_timer_t *timer;
    ipc_msg_t req;
    bool hello;
    int status;
    char bqid[QID_BUFSIZE];
} qmgr_breq_t;

/* qmgr_breq_end - report and free (from a callback or timer) */
static void qmgr_breq_end(qmgr_breq_t *b, int status, const char *why)
{
    if (b->timer)
        event_timer_cancel(qmgr.loop, &b->timer);
    if (b->conn)
        ipc_conn_free(&b->conn);
    ipc_msg_free(&b->req);
    if (status < 0)
        msg_warn("%s: bounce service: %s", b->msg->qid, why);
    b->cb(b->msg, b->ctx, status, b->bqid[0] ? b->bqid : NULL);
    free(b);
}

/* qmgr_breq_fail_now - a failure found before any I/O (timer) */
static void qmgr_breq_fail_now(event_loop_t *loop, void *ctx)
{
    qmgr_breq_t *b = ctx;

    b->timer = NULL;
    qmgr_breq_end(b, -1, "service unavailable (" QMGR_BOUNCE_SOCK ")");
}

/* qmgr_breq_timeout - no answer in time */
static void qmgr_breq_timeout(event_loop_t *loop, void *ctx)
{
    qmgr_breq_t *b = ctx;

    b->timer = NULL;
    qmgr_breq_end(b, -1, "request timed out");
}

/* qmgr_breq_on_close - the service went away before answering */
static void qmgr_breq_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    qmgr_breq_end(ctx, -1, why);
}

/* qmgr_breq_on_msg - HELLO, then the reply */
static void qmgr_breq_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    qmgr_breq_t *b = ctx;
    ipc_view_t v = ipc_msg_view(m);

    if (!b->hello) {
        const char *proto = ipc_get_str(v, IPC_A_PROTO);
        if (m->type != IPC_M_HELLO || proto == NULL || strcmp(proto, "bounce") != 0) {
            qmgr_breq_end(b, -1, "unexpected hello: check master.cf");
            return;
        }
        b->hello = true;
        ipc_conn_send(b->conn, &b->req);
        return;
    }
    uint64_t status = 1;
    const char *bqid = ipc_get_str(v, IPC_A_QID);
    const char *text = ipc_get_str(v, IPC_A_TEXT);
    if (m->type != IPC_M_BOUNCE_REPLY || ipc_get_u64(v, IPC_A_STATUS, &status) < 0
        || (bqid && !qid_valid(bqid))) {
        qmgr_breq_end(b, -1, "bad reply");
        return;
    }
    if (status != 0) {
        qmgr_breq_end(b, -1, text ? text : "request failed");
        return;
    }
    if (bqid)
        memcpy(b->bqid, bqid, QID_BUFSIZE);
    qmgr_breq_end(b, 0, NULL);
}

/* qmgr_breq_build - the BOUNCE_REQ for recipients idx[0..n) */
static void qmgr_breq_build(qmgr_breq_t *b, const char *kind, const size_t *idx, size_t n)
{
    qmgr_msg_t *msg = b->msg;
    char qpath[sizeof(QUEUE_ACTIVE) + QID_BUFSIZE + 1];

    snprintf(qpath, sizeof(qpath), "%s/%s", QUEUE_ACTIVE, msg->qid);
    ipc_msg_init(&b->req, IPC_M_BOUNCE_REQ);
    ipc_put_str(&b->req, IPC_A_QID, msg->qid);
    ipc_put_str(&b->req, IPC_A_QPATH, qpath);
    ipc_put_str(&b->req, IPC_A_DSN_KIND, kind);
    for (size_t k = 0; k < n; k++) {
        const qmgr_rstate_t *rs = &msg->rs[idx[k]];
        const qfile_rcpt_t *r = &msg->qf.rcpts[idx[k]];
        size_t g = ipc_group_begin(&b->req, IPC_A_RCPT);
        const char *action = strcmp(kind, "failed") == 0 ? "failed"
            : strcmp(kind, "delayed") == 0 ? "delayed" : rs->action ? rs->action : "delivered";
        const char *dsn = rs->dsn ? rs->dsn : strcmp(kind, "failed") == 0 ? "5.0.0" : "4.0.0";
        ipc_put_str(&b->req, IPC_A_ADDR, r->addr);
        ipc_put_str(&b->req, IPC_A_ORCPT, r->orcpt);
        ipc_put_str(&b->req, IPC_A_DSN_STATUS, dsn);
        ipc_put_str(&b->req, IPC_A_ACTION, action);
        /* capped: the report cuts fields at 900 bytes anyway, and 200
         * recipients must fit one frame whatever an agent reported */
        char text[1024], relay[256];
        snprintf(text, sizeof(text), "%s", rs->text ? rs->text : "");
        ipc_put_str(&b->req, IPC_A_TEXT, text);
        if (rs->relay) {
            snprintf(relay, sizeof(relay), "%s", rs->relay);
            ipc_put_str(&b->req, IPC_A_RELAY, relay);
        }
        ipc_group_end(&b->req, g);
    }
}

/* qmgr_bounce_request - ask for one report; cb(msg, ctx, 0|-1, bqid)
 * runs later from the event loop. The caller sizes n so the request
 * fits in a frame (see QMGR_BOUNCE_BATCH in qmgr_message.c). */
void qmgr_bounce_request(qmgr_msg_t *msg, const char *kind, const size_t *idx, size_t n,
                         qmgr_bounce_cb *cb, void *ctx)
{
    qmgr_breq_t *b = xcalloc(1, sizeof(*b));
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    b->msg = msg;
    b->cb = cb;
    b->ctx = ctx;
    qmgr_breq_build(b, kind, idx, n);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", qmgr.qdir, QMGR_BOUNCE_SOCK);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0 || b->req.overflow) {
        if (fd >= 0)
            close(fd);
        b->timer = event_timer_add(qmgr.loop, 0, qmgr_breq_fail_now, b);
        return;
    }
    b->conn = ipc_conn_new(qmgr.loop, fd, qmgr_breq_on_msg, qmgr_breq_on_close, b);
    b->timer = event_timer_add(qmgr.loop, QMGR_BOUNCE_TIMEOUT_MS, qmgr_breq_timeout, b);
}
