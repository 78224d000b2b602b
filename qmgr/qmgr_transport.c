/*
 * qmgr_transport - recipients to delivery agents. Each transport keeps up
 * to its limit of connections to the agent's service socket and reuses
 * them for many requests (the master starts an agent process per
 * connection; nothing is forked here). A request is one DELIVER_REQ with
 * up to rcpt_limit recipients; the agent answers one DELIVER_RCPT per
 * recipient, then DELIVER_DONE. Nothing here calls back into message
 * code synchronously from a dispatch: failures are reported from timers
 * or connection events, so the job lists are never changed under a loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QMGR_SMTP_RCPT_LIMIT 50
#define QMGR_CONNECT_RETRY_MS 1000

static void qmgr_transport_dispatch(qmgr_transport_t *tr);

/* qmgr_transport_init - the transports this qmgr knows */
void qmgr_transport_init(void)
{
    qmgr.local = (qmgr_transport_t){
        .name = "local", .sock = "private/local",
        .limit = (int)conf_int(qmgr.conf, "local_transport_limit"),
        .rcpt_limit = (int)conf_int(qmgr.conf, "local_destination_recipient_limit"),
    };
    qmgr.smtp = (qmgr_transport_t){
        .name = "smtp", .sock = "private/smtp",
        .limit = (int)conf_int(qmgr.conf, "smtp_transport_limit"),
        .rcpt_limit = QMGR_SMTP_RCPT_LIMIT,
    };
}

/* qmgr_defer_rcpt - qmgr itself defers one recipient, with a to= line */
static void qmgr_defer_rcpt(qmgr_msg_t *msg, size_t i, const char *dsn, const char *text)
{
    qmgr_message_result(msg, i, QR_DEFER, dsn, text);
    qmgr_log_rcpt(msg->qid, &msg->qf, i, "none", dsn, "deferred", text);
}

/* qmgr_job_fail - defer every unanswered recipient of a job, end it */
static void qmgr_job_fail(qmgr_job_t *job, const char *dsn, const char *text)
{
    for (size_t k = 0; k < job->n; k++)
        if (job->msg->rs[job->idx[k]].result == QR_NONE)
            qmgr_defer_rcpt(job->msg, job->idx[k], dsn, text);
    qmgr_msg_t *msg = job->msg;
    free(job->idx);
    free(job);
    qmgr_message_job_done(msg);
}

/* qmgr_transport_fail_waiting - the agent cannot be reached: defer all
 * jobs waiting for it (from a timer, never inside dispatch) */
static void qmgr_transport_fail_waiting(event_loop_t *loop, void *ctx)
{
    qmgr_transport_t *tr = ctx;
    char text[128];

    tr->retry = NULL;
    snprintf(text, sizeof(text), "mail transport unavailable (%s)", tr->sock);
    while (tr->head) {
        qmgr_job_t *job = tr->head;
        tr->head = job->next;
        if (tr->head == NULL)
            tr->tail = NULL;
        tr->nwaiting--;
        qmgr_job_fail(job, "4.3.0", text);
    }
}

/* qmgr_transport_retry - a connect would have blocked: try again soon */
static void qmgr_transport_retry(event_loop_t *loop, void *ctx)
{
    qmgr_transport_t *tr = ctx;

    tr->retry = NULL;
    qmgr_transport_dispatch(tr);
}

/* qmgr_agent_remove - unlink an agent from its transport and free it */
static void qmgr_agent_remove(qmgr_agent_t *a)
{
    qmgr_transport_t *tr = a->tr;

    for (qmgr_agent_t **pp = &tr->agents; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    tr->nagents--;
    if (a->timer)
        event_timer_cancel(qmgr.loop, &a->timer);
    ipc_conn_free(&a->conn);
    free(a);
}

/* qmgr_agent_gone - the connection is over; a job in progress has its
 * unanswered recipients deferred (the agent may have died mid-delivery:
 * they will be delivered again, at least once) */
static void qmgr_agent_gone(qmgr_agent_t *a, const char *why)
{
    qmgr_transport_t *tr = a->tr;
    qmgr_job_t *job = a->job;

    if (job)
        msg_warn("%s: connection to %s agent lost during delivery: %s", job->msg->qid,
                 tr->name, why);
    /* an agent that never got ready (wrong protocol, crash at start-up):
     * defer what waits instead of reconnecting in a tight loop */
    if (!a->ready && tr->retry == NULL) {
        msg_warn("%s agent on %s did not start: %s", tr->name, tr->sock, why);
        tr->retry = event_timer_add(qmgr.loop, 0, qmgr_transport_fail_waiting, tr);
    }
    qmgr_agent_remove(a);
    if (job)
        qmgr_job_fail(job, "4.3.0", "unknown mail transport error");
    qmgr_transport_dispatch(tr);
}

/* qmgr_agent_on_close - the agent closed or broke the connection */
static void qmgr_agent_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    qmgr_agent_gone(ctx, why);
}

/* qmgr_agent_timeout - no HELLO, or no answer within ipc_timeout */
static void qmgr_agent_timeout(event_loop_t *loop, void *ctx)
{
    qmgr_agent_t *a = ctx;

    a->timer = NULL;
    msg_warn("%s agent: %s timed out", a->tr->name, a->ready ? "delivery request" : "hello");
    qmgr_agent_gone(a, "timeout");
}

/* qmgr_agent_hello - the first frame names the right protocol */
static int qmgr_agent_hello(qmgr_agent_t *a, ipc_msg_t *m)
{
    ipc_view_t v = ipc_msg_view(m);
    const char *proto = ipc_get_str(v, IPC_A_PROTO);
    uint64_t major = 0;

    if (m->type != IPC_M_HELLO || proto == NULL || strcmp(proto, a->tr->name) != 0
        || ipc_get_u64(v, IPC_A_MAJOR, &major) < 0 || major != IPC_PROTO_MAJOR) {
        msg_warn("%s: unexpected hello (protocol %s): check master.cf", a->tr->sock,
                 proto ? proto : "?");
        return -1;
    }
    a->ready = true;
    event_timer_cancel(qmgr.loop, &a->timer);
    return 0;
}

/* qmgr_job_has - is recipient index i part of this job? */
static bool qmgr_job_has(const qmgr_job_t *job, uint64_t i)
{
    for (size_t k = 0; k < job->n; k++)
        if (job->idx[k] == i)
            return true;
    return false;
}

/* qmgr_agent_rcpt - DELIVER_RCPT: one recipient's outcome */
static int qmgr_agent_rcpt(qmgr_agent_t *a, ipc_msg_t *m)
{
    ipc_view_t v = ipc_msg_view(m);
    qmgr_msg_t *msg = a->job->msg;
    uint64_t i;
    const char *dsn = ipc_get_str(v, IPC_A_DSN_STATUS);
    const char *action = ipc_get_str(v, IPC_A_ACTION);
    const char *text = ipc_get_str(v, IPC_A_TEXT);
    qmgr_result_t r;

    if (ipc_get_u64(v, IPC_A_INDEX, &i) < 0 || !qmgr_job_has(a->job, i)
        || msg->rs[i].result != QR_NONE || dsn == NULL || action == NULL || text == NULL)
        return -1;
    if (strcmp(action, "delivered") == 0 || strcmp(action, "relayed") == 0
        || strcmp(action, "expanded") == 0)
        r = QR_DONE;
    else if (strcmp(action, "failed") == 0)
        r = QR_BOUNCE;
    else if (strcmp(action, "deferred") == 0)
        r = QR_DEFER;
    else
        r = dsn[0] == '2' ? QR_DONE : dsn[0] == '5' ? QR_BOUNCE : QR_DEFER;
    qmgr_message_result(msg, (size_t)i, r, dsn, text);
    return 0;
}

/* qmgr_agent_on_msg - frames from a delivery agent */
static void qmgr_agent_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    qmgr_agent_t *a = ctx;
    int rc = -1;

    if (!a->ready) {
        rc = qmgr_agent_hello(a, m);
        if (rc == 0) {
            qmgr_transport_dispatch(a->tr);
            return;
        }
    } else if (a->job && m->type == IPC_M_DELIVER_RCPT) {
        rc = qmgr_agent_rcpt(a, m);
    } else if (a->job && m->type == IPC_M_DELIVER_DONE) {
        qmgr_job_t *job = a->job;
        a->job = NULL;
        event_timer_cancel(qmgr.loop, &a->timer);
        qmgr_job_fail(job, "4.3.0", "unknown mail transport error");   /* unanswered only */
        qmgr_transport_dispatch(a->tr);
        return;
    }
    if (rc < 0) {
        msg_warn("%s agent: unexpected %s: closing the connection", a->tr->name,
                 ipc_msg_name(m->type));
        qmgr_agent_gone(a, "protocol error");
    }
}

/* qmgr_agent_new - connect (non-blocking) to the transport's socket */
static int qmgr_agent_new(qmgr_transport_t *tr)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", qmgr.qdir, tr->sock);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        msg_warn("socket: %m");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = errno;
        close(fd);
        if (tr->retry == NULL) {
            if (err == EAGAIN || err == EINPROGRESS) {
                tr->retry = event_timer_add(qmgr.loop, QMGR_CONNECT_RETRY_MS,
                                            qmgr_transport_retry, tr);
            } else {
                msg_warn("connect to %s transport %s: %s", tr->name, tr->sock, strerror(err));
                tr->retry = event_timer_add(qmgr.loop, 0, qmgr_transport_fail_waiting, tr);
            }
        }
        return -1;
    }
    qmgr_agent_t *a = xcalloc(1, sizeof(*a));
    a->tr = tr;
    a->conn = ipc_conn_new(qmgr.loop, fd, qmgr_agent_on_msg, qmgr_agent_on_close, a);
    a->timer = event_timer_add(qmgr.loop, QMGR_HELLO_TIMEOUT_MS, qmgr_agent_timeout, a);
    a->next = tr->agents;
    tr->agents = a;
    tr->nagents++;
    return 0;
}

/* qmgr_agent_send - hand a job to an idle agent */
static void qmgr_agent_send(qmgr_agent_t *a, qmgr_job_t *job)
{
    qmgr_msg_t *msg = job->msg;
    ipc_msg_t m;
    char qpath[sizeof(QUEUE_ACTIVE) + QID_BUFSIZE + 1];
    const char *envid = qfile_attr(&msg->qf, "envid"), *ret = qfile_attr(&msg->qf, "ret");

    snprintf(qpath, sizeof(qpath), "%s/%s", QUEUE_ACTIVE, msg->qid);
    ipc_msg_init(&m, IPC_M_DELIVER_REQ);
    ipc_put_str(&m, IPC_A_QID, msg->qid);
    ipc_put_str(&m, IPC_A_QPATH, qpath);
    ipc_put_str(&m, IPC_A_SENDER, msg->qf.sender);
    ipc_put_u64(&m, IPC_A_ARRIVAL, (uint64_t)msg->qf.arrival_sec);
    ipc_put_u64(&m, IPC_A_ARRIVAL_USEC, (uint64_t)msg->qf.arrival_usec);
    ipc_put_u64(&m, IPC_A_CONTENT_OFFSET, (uint64_t)msg->qf.content_offset);
    ipc_put_u64(&m, IPC_A_CONTENT_SIZE, msg->qf.content_size);
    if (envid)
        ipc_put_str(&m, IPC_A_ENVID, envid);
    if (ret)
        ipc_put_str(&m, IPC_A_RET, ret);
    for (size_t k = 0; k < job->n; k++) {
        const qfile_rcpt_t *r = &msg->qf.rcpts[job->idx[k]];
        size_t g = ipc_group_begin(&m, IPC_A_RCPT);
        ipc_put_str(&m, IPC_A_ADDR, r->addr);
        ipc_put_str(&m, IPC_A_ORCPT, r->orcpt);
        ipc_put_u64(&m, IPC_A_OFFSET, (uint64_t)r->status_offset);
        ipc_put_u64(&m, IPC_A_INDEX, job->idx[k]);
        ipc_put_u64(&m, IPC_A_NOTIFY, r->notify);
        ipc_group_end(&m, g);
    }
    ipc_conn_send(a->conn, &m);
    ipc_msg_free(&m);
    a->job = job;
    a->timer = event_timer_add(qmgr.loop, qmgr.ipc_timeout * 1000, qmgr_agent_timeout, a);
}

/* qmgr_transport_dispatch - waiting jobs to idle agents; open more
 * connections (up to the limit) while jobs outnumber connecting agents */
static void qmgr_transport_dispatch(qmgr_transport_t *tr)
{
    while (tr->head) {
        qmgr_agent_t *idle = NULL;
        int connecting = 0;
        for (qmgr_agent_t *a = tr->agents; a; a = a->next) {
            if (!a->ready)
                connecting++;
            else if (a->job == NULL && idle == NULL)
                idle = a;
        }
        if (idle) {
            qmgr_job_t *job = tr->head;
            tr->head = job->next;
            if (tr->head == NULL)
                tr->tail = NULL;
            tr->nwaiting--;
            job->next = NULL;
            qmgr_agent_send(idle, job);
            continue;
        }
        if (connecting >= tr->nwaiting || tr->nagents >= tr->limit || tr->retry)
            return;
        if (qmgr_agent_new(tr) < 0)
            return;
    }
}

/* qmgr_transport_queue - a job waits for an agent of tr */
static void qmgr_transport_queue(qmgr_transport_t *tr, qmgr_job_t *job)
{
    job->next = NULL;
    if (tr->tail)
        tr->tail->next = job;
    else
        tr->head = job;
    tr->tail = job;
    tr->nwaiting++;
    job->msg->jobs_out++;
}

/* qmgr_transport_available - an agent socket exists for tr */
static bool qmgr_transport_available(qmgr_transport_t *tr)
{
    struct stat st;
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", qmgr.qdir, tr->sock);
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* qmgr_job_new - an empty job for msg */
static qmgr_job_t *qmgr_job_new(qmgr_msg_t *msg, size_t cap)
{
    qmgr_job_t *job = xcalloc(1, sizeof(*job));

    job->msg = msg;
    job->idx = xcalloc(cap, sizeof(size_t));
    return job;
}

/* qmgr_transport_assign - every pending recipient to a transport; the
 * guard count keeps the message from finishing before all are placed */
void qmgr_transport_assign(qmgr_msg_t *msg)
{
    qmgr_job_t *ljob = NULL, *sjob = NULL;
    char *snexthop = NULL;
    resolve_result_t res;

    msg->jobs_out++;                            /* the guard */
    (void)resolve_refresh(qmgr.resolve);
    bool smtp_ok = qmgr_transport_available(&qmgr.smtp);
    for (size_t i = 0; i < msg->qf.nrcpts; i++) {
        if (msg->qf.rcpts[i].status != QFILE_RCPT_PENDING)
            continue;
        /* -1 with a LOCAL/VIRTUAL class: only the "known" lookup failed
         * (e.g. aliases.db missing); qmgr needs just the transport, and
         * the agent does its own lookups with its own temporary errors */
        if (resolve_addr(qmgr.resolve, msg->qf.rcpts[i].addr, &res) < 0
            && res.cls == RESOLVE_REMOTE) {
            qmgr_defer_rcpt(msg, i, "4.3.0", res.why && *res.why ? res.why
                            : "address resolver failure");
            continue;
        }
        if (res.transport == NULL)
            res.transport = "local";
        if (strcmp(res.transport, "local") == 0) {
            if (ljob == NULL)
                ljob = qmgr_job_new(msg, (size_t)qmgr.local.rcpt_limit);
            ljob->idx[ljob->n++] = i;
            if (ljob->n == (size_t)qmgr.local.rcpt_limit) {
                qmgr_transport_queue(&qmgr.local, ljob);
                ljob = NULL;
            }
        } else if (strcmp(res.transport, "smtp") == 0 && smtp_ok) {
            /* one request per next hop */
            if (sjob && (sjob->n == QMGR_SMTP_RCPT_LIMIT
                         || strcmp(snexthop, res.nexthop ? res.nexthop : "") != 0)) {
                qmgr_transport_queue(&qmgr.smtp, sjob);
                sjob = NULL;
            }
            if (sjob == NULL) {
                sjob = qmgr_job_new(msg, QMGR_SMTP_RCPT_LIMIT);
                free(snexthop);
                snexthop = xstrdup(res.nexthop ? res.nexthop : "");
            }
            sjob->idx[sjob->n++] = i;
        } else {
            char text[128];
            snprintf(text, sizeof(text), "delivery temporarily suspended: transport %s unavailable",
                     res.transport);
            qmgr_defer_rcpt(msg, i, "4.4.1", text);
        }
    }
    if (ljob)
        qmgr_transport_queue(&qmgr.local, ljob);
    if (sjob)
        qmgr_transport_queue(&qmgr.smtp, sjob);
    free(snexthop);
    qmgr_transport_dispatch(&qmgr.local);
    if (smtp_ok)
        qmgr_transport_dispatch(&qmgr.smtp);
    qmgr_message_job_done(msg);                 /* drop the guard */
}
