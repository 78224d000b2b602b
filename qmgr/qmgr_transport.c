/*
 * qmgr_transport - recipients to delivery agents. A transport is a
 * master.cf service (private/NAME) created on first use with its
 * <NAME>_* parameters. Recipients are routed (qmgr_route.c) to a
 * destination (qmgr_dest.c), grouped per message into jobs of up to
 * rcpt_limit recipients; dispatch hands jobs to idle agent connections
 * round robin across destinations, within each destination's window.
 * Each transport keeps up to its limit of connections and reuses them
 * for many requests (the master starts an agent process per connection;
 * nothing is forked here). The agent answers one DELIVER_RCPT per
 * recipient, then DELIVER_DONE. Dispatch runs only from the event loop
 * (qmgr_transport_kick), never inside message or agent code, so the job
 * lists are never changed under a loop.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QMGR_CONNECT_RETRY_MS 1000
#define QMGR_AVAIL_CHECK_MS 1000

static void qmgr_transport_dispatch(qmgr_transport_t *tr);

/* qmgr_tparam - <transport>_NAME if declared, else default_NAME */
static int64_t qmgr_tparam(const char *tr, const char *name, const char *def)
{
    char pname[128];

    snprintf(pname, sizeof(pname), "%s_%s", tr, name);
    return conf_is_known(pname) ? conf_int(qmgr.conf, pname) : conf_int(qmgr.conf, def);
}

/* qmgr_transport_find - the transport of that master.cf name, created
 * with its parameters on first use */
qmgr_transport_t *qmgr_transport_find(const char *name)
{
    qmgr_transport_t *tr;

    for (tr = qmgr.transports; tr; tr = tr->next)
        if (strcmp(tr->name, name) == 0)
            return tr;
    tr = xcalloc(1, sizeof(*tr));
    tr->name = xstrdup(name);
    tr->sock = xasprintf("private/%s", name);
    tr->limit = (int)qmgr_tparam(name, "transport_limit", "default_transport_limit");
    tr->rcpt_limit = (int)qmgr_tparam(name, "destination_recipient_limit",
                                      "default_destination_recipient_limit");
    tr->conc_limit = (int)qmgr_tparam(name, "destination_concurrency_limit",
                                      "default_destination_concurrency_limit");
    tr->init_conc = (int)qmgr_tparam(name, "initial_destination_concurrency",
                                     "initial_destination_concurrency");
    if (tr->init_conc > tr->conc_limit)
        tr->init_conc = tr->conc_limit;
    tr->cohort_limit = (int)conf_int(qmgr.conf,
                                     "default_destination_concurrency_failed_cohort_limit");
    tr->rate_delay_ms = 1000 * qmgr_tparam(name, "destination_rate_delay",
                                           "default_destination_rate_delay");
    tr->per_rcpt = tr->rcpt_limit == 1;
    tr->next = qmgr.transports;
    qmgr.transports = tr;
    return tr;
}

/* qmgr_transport_init - the transports every qmgr knows */
void qmgr_transport_init(void)
{
    (void)qmgr_transport_find("local");
    (void)qmgr_transport_find("smtp");
}

/* qmgr_defer_rcpt - qmgr itself defers one recipient, with a to= line */
void qmgr_defer_rcpt(qmgr_msg_t *msg, size_t i, const char *dsn, const char *text)
{
    qmgr_message_result(msg, i, QR_DEFER, dsn, text);
    qmgr_log_rcpt(msg->qid, &msg->qf, i, "none", dsn, "deferred", text);
}

/* qmgr_job_fail - defer every unanswered recipient of a job, end it */
void qmgr_job_fail(qmgr_job_t *job, const char *dsn, const char *text)
{
    for (size_t k = 0; k < job->n; k++)
        if (job->msg->rs[job->idx[k]].result == QR_NONE)
            qmgr_defer_rcpt(job->msg, job->idx[k], dsn, text);
    qmgr_msg_t *msg = job->msg;
    free(job->idx);
    free(job);
    qmgr_message_job_done(msg);
}

/* qmgr_transport_take - every waiting job of tr (dead_only: of its dead
 * destinations), unlinked into a private list */
static qmgr_job_t *qmgr_transport_take(qmgr_transport_t *tr, bool dead_only)
{
    qmgr_job_t *list = NULL, **tail = &list;
    size_t n = 0, k = 0;

    if (tr->ring == NULL)
        return NULL;
    for (qmgr_dest_t *d = tr->ring;; d = d->rnext) {
        n++;
        if (d->rnext == tr->ring)
            break;
    }
    qmgr_dest_t **ds = xcalloc(n, sizeof(*ds));
    for (qmgr_dest_t *d = tr->ring; k < n; d = d->rnext)
        ds[k++] = d;
    for (k = 0; k < n; k++) {
        if (dead_only && !qmgr_dest_dead(ds[k]))
            continue;
        qmgr_job_t *job;
        while ((job = qmgr_dest_pop(ds[k])) != NULL) {
            *tail = job;
            tail = &job->next;
        }
    }
    free(ds);
    return list;
}

/* qmgr_transport_sweep - free the transport's empty destinations */
static void qmgr_transport_sweep(qmgr_transport_t *tr)
{
    for (size_t i = 0; i < tr->hsize; i++)
        for (qmgr_dest_t *d = tr->htab[i], *next; d; d = next) {
            next = d->hnext;
            qmgr_dest_maybe_free(d);
        }
}

/* qmgr_transport_fail_list - defer the recipients of taken jobs (text
 * NULL: "delivery temporarily suspended" with the destination's reason;
 * a dead destination is never freed, so job->dest stays valid) */
static void qmgr_transport_fail_list(qmgr_transport_t *tr, qmgr_job_t *list, const char *dsn,
                                     const char *text)
{
    char buf[512];

    while (list) {
        qmgr_job_t *job = list;
        list = job->next;
        const char *why = text;
        if (why == NULL) {
            snprintf(buf, sizeof(buf), "delivery temporarily suspended: %s",
                     job->dest->dead_reason ? job->dest->dead_reason : "destination unavailable");
            why = buf;
        }
        qmgr_job_fail(job, dsn, why);
    }
    qmgr_transport_sweep(tr);
}

/* qmgr_transport_fail_waiting - the agent cannot be reached: defer all
 * jobs waiting for it (from a timer, never inside dispatch) */
static void qmgr_transport_fail_waiting(event_loop_t *loop, void *ctx)
{
    qmgr_transport_t *tr = ctx;
    char text[128];

    tr->retry = NULL;
    snprintf(text, sizeof(text), "mail transport unavailable (%s)", tr->sock);
    qmgr_transport_fail_list(tr, qmgr_transport_take(tr, false), "4.3.0", text);
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

/* qmgr_job_end - a request is over (answered or not): the destination
 * gets its feedback, unanswered recipients are deferred */
static void qmgr_job_end(qmgr_job_t *job, bool feedback, bool site_failure,
                         const char *reason, const char *dsn, const char *text)
{
    qmgr_dest_t *d = job->dest;

    d->busy--;
    if (feedback)
        qmgr_dest_feedback(d, site_failure, reason);
    qmgr_dest_maybe_free(d);
    qmgr_job_fail(job, dsn, text);
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
    a->job = NULL;
    qmgr_agent_remove(a);
    if (job)
        qmgr_job_end(job, false, false, NULL, "4.3.0", "unknown mail transport error");
    qmgr_transport_kick(tr);
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

/* qmgr_agent_hello - the first frame names the right protocol: the
 * transport's own name, or smtp/lmtp for a remote transport (master.cf
 * may run the smtp agent as "relay", "lmtp", ...) */
static int qmgr_agent_hello(qmgr_agent_t *a, ipc_msg_t *m)
{
    ipc_view_t v = ipc_msg_view(m);
    const char *proto = ipc_get_str(v, IPC_A_PROTO);
    uint64_t major = 0;
    bool local = strcmp(a->tr->name, "local") == 0;

    if (m->type != IPC_M_HELLO || proto == NULL
        || !(strcmp(proto, a->tr->name) == 0
             || (!local && (strcmp(proto, "smtp") == 0 || strcmp(proto, "lmtp") == 0)))
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

/* qmgr_success_owed - does a done recipient get a NOTIFY=SUCCESS
 * notice from us? Local final delivery ("delivered" by the local
 * transport) and "relayed" (the next hop did not take the DSN duty);
 * "delivered" by a remote transport means the next hop took it over. */
static bool qmgr_success_owed(const qmgr_transport_t *tr, const qfile_rcpt_t *r,
                              const char *action)
{
    if (!(r->notify & QFILE_NOTIFY_SUCCESS) || (r->notify & QFILE_NOTIFY_NEVER))
        return false;
    if (strcmp(action, "relayed") == 0)
        return true;
    return strcmp(action, "delivered") == 0 && strcmp(tr->name, "local") == 0;
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
    const char *relay = ipc_get_str(v, IPC_A_RELAY);
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
    qmgr_rstate_t *rs = &msg->rs[i];
    rs->action = xstrdup(action);
    if (relay && *relay)
        rs->relay = xstrdup(relay);
    rs->success_dsn = r == QR_DONE && qmgr_success_owed(a->tr, &msg->qf.rcpts[i], action);
    return 0;
}

/* qmgr_site_failure - did the whole destination fail? DONE with REASON
 * (the agent says so), or every recipient deferred with a 4.4.x
 * (network/routing) status */
static bool qmgr_site_failure(const qmgr_job_t *job, const char *reason)
{
    if (reason && *reason)
        return true;
    for (size_t k = 0; k < job->n; k++) {
        const qmgr_rstate_t *rs = &job->msg->rs[job->idx[k]];
        if (rs->result != QR_DEFER || rs->dsn == NULL || strncmp(rs->dsn, "4.4.", 4) != 0)
            return false;
    }
    return job->n > 0;
}

/* qmgr_agent_done - DELIVER_DONE: the request is over */
static void qmgr_agent_done(qmgr_agent_t *a, ipc_msg_t *m)
{
    qmgr_job_t *job = a->job;
    const char *reason = ipc_get_str(ipc_msg_view(m), IPC_A_REASON);
    char text[512];
    bool site = qmgr_site_failure(job, reason);

    a->job = NULL;
    event_timer_cancel(qmgr.loop, &a->timer);
    if (reason && *reason)
        snprintf(text, sizeof(text), "%s", reason);
    else
        snprintf(text, sizeof(text), "unknown mail transport error");
    if (site && !(reason && *reason)) {
        const qmgr_rstate_t *rs = &job->msg->rs[job->idx[0]];
        reason = rs->text;
    }
    qmgr_job_end(job, true, site, reason, "4.3.0", text);   /* unanswered only */
    qmgr_transport_kick(a->tr);
}

/* qmgr_agent_on_msg - frames from a delivery agent */
static void qmgr_agent_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    qmgr_agent_t *a = ctx;
    int rc = -1;

    if (!a->ready) {
        rc = qmgr_agent_hello(a, m);
        if (rc == 0) {
            qmgr_transport_kick(a->tr);
            return;
        }
    } else if (a->job && m->type == IPC_M_DELIVER_RCPT) {
        rc = qmgr_agent_rcpt(a, m);
    } else if (a->job && m->type == IPC_M_DELIVER_DONE) {
        qmgr_agent_done(a, m);
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

/* qmgr_req_flags - DELIVER_F_* from the queue file's attributes */
static uint64_t qmgr_req_flags(const qfile_t *qf)
{
    const char *utf8 = qfile_attr(qf, "smtputf8"), *body = qfile_attr(qf, "body");
    uint64_t flags = 0;

    if (utf8 && strcmp(utf8, "yes") == 0)
        flags |= 1;             /* DELIVER_F_SMTPUTF8 */
    if (body && strcasecmp(body, "8BITMIME") == 0)
        flags |= 2;             /* DELIVER_F_8BITMIME */
    else if (body && strcasecmp(body, "7BIT") == 0)
        flags |= 4;             /* DELIVER_F_7BIT */
    return flags;
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
    ipc_put_str(&m, IPC_A_TRANSPORT, a->tr->name);
    ipc_put_str(&m, IPC_A_NEXTHOP, job->dest->nexthop);
    ipc_put_u64(&m, IPC_A_FLAGS, qmgr_req_flags(&msg->qf));
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

/* qmgr_rate_fire - a rate-delayed destination may start again */
static void qmgr_rate_fire(event_loop_t *loop, void *ctx)
{
    qmgr_transport_t *tr = ctx;

    tr->rate_timer = NULL;
    qmgr_transport_dispatch(tr);
}

/* qmgr_dest_startable - how many jobs of d may start now (and the
 * monotonic ms at which a rate-delayed one may) */
static int qmgr_dest_startable(qmgr_dest_t *d, int64_t now_ms, int64_t *wake_r)
{
    if (d->nwaiting == 0 || qmgr_dest_dead(d))
        return 0;
    if (d->tr->rate_delay_ms > 0 && now_ms < d->next_start_ms) {
        if (*wake_r == 0 || d->next_start_ms < *wake_r)
            *wake_r = d->next_start_ms;
        return 0;
    }
    int n = qmgr_dest_cap(d) - d->busy;
    if (n > d->nwaiting)
        n = d->nwaiting;
    return n > 0 ? n : 0;
}

/* qmgr_transport_dispatch - waiting jobs to idle agents, one destination
 * after the other around the ring (round robin: a slow or busy
 * destination never holds up the others); more connections are opened
 * (up to the transport limit) while startable jobs outnumber those
 * being opened. Dead destinations have their jobs deferred. */
static void qmgr_transport_dispatch(qmgr_transport_t *tr)
{
    qmgr_job_t *dead = qmgr_transport_take(tr, true);

    if (dead)
        qmgr_transport_fail_list(tr, dead, "4.4.1", NULL);
    int64_t now_ms = qmgr_mono_ms(), wake = 0;
    while (tr->ring) {
        qmgr_agent_t *idle = NULL;
        int connecting = 0;
        for (qmgr_agent_t *a = tr->agents; a; a = a->next) {
            if (!a->ready)
                connecting++;
            else if (a->job == NULL && idle == NULL)
                idle = a;
        }
        qmgr_dest_t *d = tr->ring, *pick = NULL;
        int startable = 0;
        /* with an idle agent: the first destination that may start;
         * without: are there more startable jobs than connections being
         * opened? (both scans stop early) */
        do {
            int n = qmgr_dest_startable(d, now_ms, &wake);
            if (n > 0 && pick == NULL)
                pick = d;
            startable += n;
            d = d->rnext;
        } while (d != tr->ring && !(idle && pick) && !(!idle && startable > connecting));
        if (pick == NULL)
            break;
        if (idle) {
            tr->ring = pick->rnext;         /* the next turn is the next one's */
            qmgr_job_t *job = qmgr_dest_pop(pick);
            pick->busy++;
            if (tr->rate_delay_ms > 0)
                pick->next_start_ms = now_ms + tr->rate_delay_ms;
            qmgr_agent_send(idle, job);
            continue;
        }
        if (connecting >= startable || tr->nagents >= tr->limit || tr->retry)
            break;
        if (qmgr_agent_new(tr) < 0)
            break;
    }
    if (wake && tr->rate_timer == NULL)
        tr->rate_timer = event_timer_add(qmgr.loop, wake > now_ms ? wake - now_ms : 1,
                                         qmgr_rate_fire, tr);
}

/* qmgr_transport_kick_fire - the deferred dispatch */
static void qmgr_transport_kick_fire(event_loop_t *loop, void *ctx)
{
    qmgr_transport_t *tr = ctx;

    tr->kick = NULL;
    qmgr_transport_dispatch(tr);
}

/* qmgr_transport_kick - dispatch soon, from the event loop: callers are
 * often deep inside message or agent code that must not see the job
 * lists change under it */
void qmgr_transport_kick(qmgr_transport_t *tr)
{
    if (tr->kick == NULL)
        tr->kick = event_timer_add(qmgr.loop, 0, qmgr_transport_kick_fire, tr);
}

/* qmgr_transport_available - an agent socket exists for tr (checked at
 * most once a second) */
static bool qmgr_transport_available(qmgr_transport_t *tr)
{
    struct stat st;
    char path[256];
    int64_t now = qmgr_mono_ms();

    if (tr->avail_at && now - tr->avail_at < QMGR_AVAIL_CHECK_MS)
        return tr->avail;
    snprintf(path, sizeof(path), "%s/%s", qmgr.qdir, tr->sock);
    tr->avail = stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
    tr->avail_at = now;
    return tr->avail;
}

/* qmgr_job_for - the job of this message being filled at d, or a new
 * one queued there (nothing is dispatched during an assignment, so a
 * queued job can still take recipients) */
static qmgr_job_t *qmgr_job_for(qmgr_dest_t *d, qmgr_msg_t *msg)
{
    qmgr_job_t *job = d->fill;

    if (job && d->fill_gen == qmgr.assign_gen && job->n < job->cap)
        return job;
    size_t cap = (size_t)d->tr->rcpt_limit;
    if (cap > msg->qf.nrcpts)
        cap = msg->qf.nrcpts;
    job = xcalloc(1, sizeof(*job));
    job->msg = msg;
    job->cap = cap ? cap : 1;
    job->idx = xcalloc(job->cap, sizeof(size_t));
    qmgr_dest_enqueue(d, job);
    d->fill = job;
    d->fill_gen = qmgr.assign_gen;
    return job;
}

/* qmgr_assign_one - recipient i to its destination, or deferred now */
static void qmgr_assign_one(qmgr_msg_t *msg, size_t i)
{
    const char *tname, *nexthop, *why;
    char text[512];

    if (qmgr_route_addr(qmgr.route, msg->qf.rcpts[i].addr, &tname, &nexthop, &why) < 0) {
        qmgr_defer_rcpt(msg, i, "4.3.0", why);
        return;
    }
    qmgr_transport_t *tr = qmgr_transport_find(tname);
    if (!qmgr_transport_available(tr)) {
        snprintf(text, sizeof(text), "delivery temporarily suspended: transport %s unavailable",
                 tname);
        qmgr_defer_rcpt(msg, i, "4.4.1", text);
        return;
    }
    char *lkey = NULL;
    if (tr->per_rcpt) {
        lkey = xstrdup(msg->qf.rcpts[i].addr);
        for (char *p = lkey; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    qmgr_dest_t *d = qmgr_dest_get(tr, lkey ? lkey : nexthop, nexthop);
    free(lkey);
    if (qmgr_dest_dead(d)) {
        snprintf(text, sizeof(text), "delivery temporarily suspended: %s",
                 d->dead_reason ? d->dead_reason : "destination unavailable");
        qmgr_defer_rcpt(msg, i, "4.4.1", text);
        qmgr_dest_maybe_free(d);
        return;
    }
    qmgr_job_t *job = qmgr_job_for(d, msg);
    job->idx[job->n++] = i;
    qmgr_transport_kick(tr);
}

/* qmgr_transport_assign - every pending recipient to a destination; the
 * guard count keeps the message from finishing before all are placed */
void qmgr_transport_assign(qmgr_msg_t *msg)
{
    msg->jobs_out++;                            /* the guard */
    qmgr.assign_gen++;
    (void)resolve_refresh(qmgr.resolve);
    qmgr_route_refresh(qmgr.route);
    for (size_t i = 0; i < msg->qf.nrcpts; i++)
        if (msg->qf.rcpts[i].status == QFILE_RCPT_PENDING)
            qmgr_assign_one(msg, i);
    qmgr.assign_gen++;                          /* no more filling */
    qmgr_message_job_done(msg);                 /* drop the guard */
}
