/*
 * smtpd_verify.c - the asynchronous client of the verify service
 * (smtpd/verify, protocol "verify"). One persistent connection per smtpd
 * process, made lazily and remade after a failure; requests carry a
 * request id that the server echoes, and replies are matched by it
 * (oldest first when the id is unknown). When the service cannot be
 * reached, does not answer within smtpd_verify_timeout, or breaks the
 * protocol, every pending request gets class "error" (451 4.3.0): a
 * recipient is never accepted without a verdict.
 * A retiring verify process closes connections it sees idle, and a
 * request may cross that close on the wire. So when the connection
 * closes under unanswered requests, they are sent once more on a fresh
 * connection (both kinds of request are read-only lookups); a second
 * loss fails them.
 * It also counts sessions per client address for the connection limits
 * (CLIENT_CONNECT → CLIENT_COUNT, CLIENT_DISCONNECT).
 * The same connection carries AUTH credential checks (AUTH_REQ →
 * AUTH_REPLY): their result class is "ok", "fail" or "error"; the
 * password is wiped from our copy of the frame when the request ends.
 */
#include <stdlib.h>
#include <string.h>
#include "smtpd.h"
#include "util/msg.h"
#include "util/xmalloc.h"


typedef struct smtpd_verify_req {
    uint32_t id;
    uint16_t reply_type;            /* VERIFY_REPLY or AUTH_REPLY */
    int64_t sent_ms;
    bool resent;                    /* already sent on a second connection */
    ipc_msg_t msg;                  /* kept for that one resend */
    smtpd_verify_fn *fn;
    void *ctx;
    struct smtpd_verify_req *next;
} smtpd_verify_req_t;

struct smtpd_verify {
    event_loop_t *loop;
    char *path;
    int64_t timeout_ms;
    ipc_conn_t *conn;
    uint32_t next_id;
    smtpd_verify_req_t *head;
    smtpd_verify_req_t **tail;
    event_timer_t *timer;
};

static void smtpd_verify_timer(event_loop_t *loop, void *ctx);
static void smtpd_verify_on_close(ipc_conn_t *conn, const char *why, void *ctx);

/* smtpd_verify_req_free - a request ends; its frame may hold a password */
static void smtpd_verify_req_free(smtpd_verify_req_t *r)
{
    if (r->msg.payload.data)
        explicit_bzero(r->msg.payload.data, r->msg.payload.len);
    ipc_msg_free(&r->msg);
    free(r);
}

/* smtpd_verify_new - a client for the service at path (relative to the queue) */
smtpd_verify_t *smtpd_verify_new(event_loop_t *loop, const char *path, int64_t timeout_ms)
{
    smtpd_verify_t *v = xcalloc(1, sizeof(*v));

    v->loop = loop;
    v->path = xstrdup(path);
    v->timeout_ms = timeout_ms;
    v->next_id = 1;
    v->tail = &v->head;
    return v;
}

/* smtpd_verify_unlink - take r off the pending list */
static void smtpd_verify_unlink(smtpd_verify_t *v, smtpd_verify_req_t *r)
{
    for (smtpd_verify_req_t **pp = &v->head; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            if (v->tail == &r->next)
                v->tail = pp;
            return;
        }
    }
}

/* smtpd_verify_fail_all - every pending request gets "error" (the list
 * is detached first: a callback may already send a new request) */
static void smtpd_verify_fail_all(smtpd_verify_t *v)
{
    smtpd_verify_result_t res = { .cls = "error", .dsn = "4.3.0" };
    smtpd_verify_req_t *list = v->head;

    event_timer_cancel(v->loop, &v->timer);
    v->head = NULL;
    v->tail = &v->head;
    while (list) {
        smtpd_verify_req_t *r = list;
        list = r->next;
        if (r->fn)
            r->fn(r->ctx, &res);
        smtpd_verify_req_free(r);
    }
}

/* smtpd_verify_drop - close the connection (it is remade on demand) */
static void smtpd_verify_drop(smtpd_verify_t *v, const char *why)
{
    msg_warn("verify service %s: %s", v->path, why);
    ipc_conn_free(&v->conn);
    smtpd_verify_fail_all(v);
}

/* smtpd_verify_on_msg - a VERIFY_REPLY */
static void smtpd_verify_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    smtpd_verify_t *v = ctx;
    smtpd_verify_req_t *r;
    ipc_view_t view = ipc_msg_view(m);
    smtpd_verify_result_t res;

    if ((m->type != IPC_M_VERIFY_REPLY && m->type != IPC_M_AUTH_REPLY
         && m->type != IPC_M_CLIENT_COUNT) || v->head == NULL) {
        smtpd_verify_drop(v, "unexpected message");
        return;
    }
    for (r = v->head; r && r->id != m->req_id; r = r->next)
        ;
    if (r == NULL)
        r = v->head;
    if (r->reply_type != m->type) {
        /* A password check must never be answered by a recipient
         * verdict or the other way round. */
        smtpd_verify_drop(v, "reply of the wrong type");
        return;
    }
    smtpd_verify_unlink(v, r);
    memset(&res, 0, sizeof(res));
    res.text = ipc_get_str(view, IPC_A_TEXT);
    if (m->type == IPC_M_CLIENT_COUNT) {
        res.cls = "ok";
        res.dsn = "2.0.0";
        (void)ipc_get_u64(view, IPC_A_COUNT, &res.count);
        (void)ipc_get_u64(view, IPC_A_RATE, &res.rate);
    } else if (m->type == IPC_M_AUTH_REPLY) {
        uint64_t status = 2;
        (void)ipc_get_u64(view, IPC_A_STATUS, &status);
        res.cls = status == 0 ? "ok" : status == 1 ? "fail" : "error";
        res.dsn = status == 0 ? "2.7.0" : status == 1 ? "5.7.8" : "4.7.0";
    } else {
        res.cls = ipc_get_str(view, IPC_A_CLASS);
        res.dsn = ipc_get_str(view, IPC_A_DSN_STATUS);
        if (res.cls == NULL)
            res.cls = "error";
    }
    if (r->fn)
        r->fn(r->ctx, &res);
    smtpd_verify_req_free(r);
    if (v->head == NULL)
        event_timer_cancel(v->loop, &v->timer);
}

/* smtpd_verify_open - connect; the HELLO is not awaited here: the master
 * may be starting the verify process, and this loop serves every session */
static int smtpd_verify_open(smtpd_verify_t *v, const char **why)
{
    int fd = ipc_connect_start(v->path, why);

    if (fd < 0)
        return -1;
    v->conn = ipc_conn_new(v->loop, fd, smtpd_verify_on_msg, smtpd_verify_on_close, v);
    ipc_conn_expect_hello(v->conn, "verify");
    return 0;
}

/* smtpd_verify_resend - the connection closed under unanswered requests:
 * send them once more on a fresh one; false when that is not possible */
static bool smtpd_verify_resend(smtpd_verify_t *v)
{
    const char *why;

    for (smtpd_verify_req_t *r = v->head; r; r = r->next)
        if (r->resent)
            return false;
    if (smtpd_verify_open(v, &why) < 0) {
        msg_warn("connect to verify service %s: %s", v->path, why);
        return false;
    }
    for (smtpd_verify_req_t *r = v->head; r; r = r->next) {
        r->resent = true;
        ipc_conn_send(v->conn, &r->msg);
    }
    return true;
}

/* smtpd_verify_on_close - the service went away (a retiring process
 * closes connections it sees idle: that alone is no cause for alarm) */
static void smtpd_verify_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    smtpd_verify_t *v = ctx;

    ipc_conn_free(&v->conn);
    if (v->head == NULL || smtpd_verify_resend(v))
        return;
    smtpd_verify_drop(v, why ? why : "connection closed");
}

/* smtpd_verify_timer - the oldest request waited too long */
static void smtpd_verify_timer(event_loop_t *loop, void *ctx)
{
    smtpd_verify_t *v = ctx;
    int64_t now = event_now_ms(loop);

    v->timer = NULL;
    if (v->head == NULL)
        return;
    if (now - v->head->sent_ms >= v->timeout_ms) {
        smtpd_verify_drop(v, "timeout");
        return;
    }
    v->timer = event_timer_add(loop, v->head->sent_ms + v->timeout_ms - now, smtpd_verify_timer, v);
}

/* smtpd_verify_send - queue one request; fn(ctx, result) runs once, maybe now */
static void smtpd_verify_send(smtpd_verify_t *v, ipc_msg_t *m, uint16_t reply_type,
                              smtpd_verify_fn *fn, void *ctx)
{
    smtpd_verify_req_t *r;

    if (v->conn == NULL) {
        const char *why;
        if (smtpd_verify_open(v, &why) < 0) {
            smtpd_verify_result_t res = { .cls = "error", .dsn = "4.3.0" };
            msg_warn("connect to verify service %s: %s", v->path, why);
            fn(ctx, &res);
            return;
        }
    }
    r = xcalloc(1, sizeof(*r));
    r->id = v->next_id++;
    if (v->next_id == 0)
        v->next_id = 1;
    r->reply_type = reply_type;
    r->sent_ms = event_now_ms(v->loop);
    r->fn = fn;
    r->ctx = ctx;
    *v->tail = r;
    v->tail = &r->next;
    m->req_id = r->id;
    ipc_conn_send(v->conn, m);
    ipc_msg_move(&r->msg, m);
    if (v->timer == NULL)
        v->timer = event_timer_add(v->loop, v->timeout_ms, smtpd_verify_timer, v);
}

/* smtpd_verify_query - classify addr; fn(ctx, result) runs once, maybe now */
void smtpd_verify_query(smtpd_verify_t *v, const char *addr, const char *client_addr,
                        smtpd_verify_fn *fn, void *ctx)
{
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_VERIFY_REQ);
    ipc_put_str(&m, IPC_A_ADDR, addr);
    if (client_addr)
        ipc_put_str(&m, IPC_A_CLIENT_ADDR, client_addr);
    smtpd_verify_send(v, &m, IPC_M_VERIFY_REPLY, fn, ctx);
    ipc_msg_free(&m);
}

/* smtpd_verify_auth - check SMTP AUTH credentials; result class ok,
 * fail or error; fn(ctx, result) runs once, maybe now */
void smtpd_verify_auth(smtpd_verify_t *v, const char *user, const char *password,
                       const char *client_addr, smtpd_verify_fn *fn, void *ctx)
{
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_AUTH_REQ);
    ipc_put_str(&m, IPC_A_USER, user);
    ipc_put_str(&m, IPC_A_PASSWORD, password);
    if (client_addr)
        ipc_put_str(&m, IPC_A_CLIENT_ADDR, client_addr);
    smtpd_verify_send(v, &m, IPC_M_AUTH_REPLY, fn, ctx);
    if (m.payload.data)             /* still ours when the send failed */
        explicit_bzero(m.payload.data, m.payload.len);
    ipc_msg_free(&m);
}

/* smtpd_verify_connect - count a new session from client_addr (on every
 * smtpd of the instance); fn(ctx, result) runs once, maybe now, with
 * class "ok" and the client's session count and connection rate, or
 * "error" when the service cannot say (the session is then admitted) */
void smtpd_verify_connect(smtpd_verify_t *v, const char *client_addr, smtpd_verify_fn *fn,
                          void *ctx)
{
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_CLIENT_CONNECT);
    ipc_put_str(&m, IPC_A_CLIENT_ADDR, client_addr);
    smtpd_verify_send(v, &m, IPC_M_CLIENT_COUNT, fn, ctx);
    ipc_msg_free(&m);
}

/* smtpd_verify_disconnect - a counted session ended (no reply; when the
 * connection it was counted on is gone, the service forgot it already) */
void smtpd_verify_disconnect(smtpd_verify_t *v, const char *client_addr)
{
    ipc_msg_t m;

    if (v->conn == NULL)
        return;
    ipc_msg_init(&m, IPC_M_CLIENT_DISCONNECT);
    ipc_put_str(&m, IPC_A_CLIENT_ADDR, client_addr);
    ipc_conn_send(v->conn, &m);
    ipc_msg_free(&m);
}

/* smtpd_verify_cancel - a session is gone: forget its requests (the
 * replies that still arrive are matched to nobody and dropped) */
void smtpd_verify_cancel(smtpd_verify_t *v, void *ctx)
{
    for (smtpd_verify_req_t *r = v->head; r; r = r->next)
        if (r->ctx == ctx)
            r->fn = NULL;
}
