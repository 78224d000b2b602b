/*
 * qmgr_notify - the service socket: new-message notices (smtpd, pickup,
 * local), queue listings and control requests (storkqueue, storksuper).
 * A client's peer credentials decide whether it may change the queue.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

typedef struct qmgr_client {
    ipc_conn_t *conn;
    bool privileged;        /* root or qmgr's own uid */
} qmgr_client_t;

/* qmgr_client_on_close - the client is gone */
static void qmgr_client_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    qmgr_client_t *c = ctx;

    ipc_conn_free(&c->conn);
    free(c);
    service_client_done(qmgr.svc);
}

/* qmgr_client_new_msg - QMGR_NEW {QID}: take incoming/QID now */
static void qmgr_client_new_msg(qmgr_client_t *c, ipc_msg_t *m)
{
    const char *qid = ipc_get_str(ipc_msg_view(m), IPC_A_QID);

    if (qid == NULL || !qid_valid(qid)) {
        msg_warn("qmgr_new: bad queue id from client");
        return;
    }
    qmgr_message_incoming(qid);
    qmgr_sched_arm();
}

/* qmgr_client_on_msg - dispatch one request */
static void qmgr_client_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    qmgr_client_t *c = ctx;

    switch (m->type) {
    case IPC_M_QMGR_NEW:
        qmgr_client_new_msg(c, m);
        break;
    case IPC_M_QMGR_LIST:
        qmgr_list(conn, m);
        break;
    case IPC_M_QMGR_CONTROL:
        qmgr_control(conn, m, c->privileged);
        break;
    default:
        msg_warn("unexpected %s from a client: closing the connection", ipc_msg_name(m->type));
        qmgr_client_on_close(conn, "protocol error", c);
        break;
    }
}

/* qmgr_notify_accept - a new client: HELLO, then frames */
void qmgr_notify_accept(service_t *svc, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    qmgr_client_t *c;

    if (ipc_hello(fd, "qmgr") < 0) {
        close(fd);
        service_client_done(svc);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->privileged = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0
        && (cr.uid == 0 || cr.uid == qmgr.uid);
    c->conn = ipc_conn_new(qmgr.loop, fd, qmgr_client_on_msg, qmgr_client_on_close, c);
    qmgr_scan_incoming_soon();
}
