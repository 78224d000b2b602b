/*
 * local - the local delivery agent: aliases, ~/.forward, Maildir for
 * system users and virtual mailboxes
 *
 * master.cf: local unix - n n - - local
 * It runs as root when the master does (unpriv n), only so that its
 * per-uid workers (local_uid.c) can become each mailbox owner; it never
 * writes a mailbox as root. It serves one qmgr connection at a time
 * (client_limit 1); each connection carries many DELIVER_REQ.
 */
#include "local.h"
#include "ipc/ipc.h"
#include "maildir/maildir_deliver.h"
#include "queue/qid.h"
#include "service/service.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define LOCAL_REPLY_TIMEOUT_MS 60000

static local_state_t local_state;
static unsigned long local_request_seq = 1;  /* DELIVER_REQs so far (from 1) */

/* One qmgr connection. */
typedef struct local_conn {
    service_t *svc;
    ipc_conn_t *conn;
} local_conn_t;

double local_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void local_result_init(local_result_t *r)
{
    r->status = LOCAL_OK;
    r->dsn[0] = 0;
    buf_init(&r->text, 4096);
}

void local_result_free(local_result_t *r)
{
    buf_free(&r->text);
}

/* local_result_set - status, DSN code and text in one call */
void local_result_set(local_result_t *r, local_status_t s, const char *dsn, const char *fmt, ...)
{
    va_list ap;

    r->status = s;
    safe_cpy(r->dsn, sizeof(r->dsn), dsn);
    buf_reset(&r->text);
    va_start(ap, fmt);
    if (buf_vprintf(&r->text, fmt, ap) < 0)
        buf_puts(&r->text, "(text too long)");
    va_end(ap);
}

/* local_log - the Postfix-shaped delivery line for one recipient */
void local_log(const local_msg_t *msg, const char *to, const char *orig_to, const char *relay,
               const local_result_t *r, double start)
{
    double now = local_now();
    double arrival = (double)msg->arrival_sec + (double)msg->arrival_usec / 1e6;
    double before = msg->req_time - arrival;
    static const char *const status[] = {"sent", "deferred", "bounced"};
    char orig[1100] = "";

    if (before < 0)
        before = 0;
    if (orig_to && *orig_to && strcasecmp(orig_to, to) != 0)
        snprintf(orig, sizeof(orig), ", orig_to=<%.1000s>", orig_to);
    /* delays=a/b/c/d: before local got it / 0 / 0 / this delivery */
    msg_info("%s: to=<%s>%s, relay=%s, delay=%.2g, delays=%.2g/0/0/%.2g, dsn=%s, status=%s (%s)",
             msg->qid, to, orig, relay, now - arrival, before, now - start, r->dsn,
             status[r->status], buf_cstr(&r->text));
}

/* local_tables_open - remember a list of tables; each opens on first use,
 * so a missing aliases.db defers mail instead of stopping the daemon */
void local_tables_open(local_tables_t *t, char **specs)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; specs && specs[i]; i++) {
        t->t = xreallocarray(t->t, t->n + 1, sizeof(*t->t));
        t->names = xreallocarray(t->names, t->n + 1, sizeof(*t->names));
        t->t[t->n] = NULL;
        t->names[t->n++] = specs[i];
    }
}

/* local_tables_get - the first table that has key wins (1), 0 none, -1 error */
int local_tables_get(local_tables_t *t, const char *key, buf_t *val, const char **why_r)
{
    bool check = t->checked != local_request_seq;

    /* newaliases/storkmap replaced a file: use the new one. Checked once
     * per request, not per lookup (up to three lookups per address). */
    t->checked = local_request_seq;
    for (size_t i = 0; i < t->n; i++) {
        int ret;

        if (check && t->t[i] && table_changed(t->t[i]))
            table_close(&t->t[i]);
        if (t->t[i] == NULL && (t->t[i] = table_open(t->names[i], why_r)) == NULL)
            return -1;
        if ((ret = table_get(t->t[i], key, val, why_r)) != 0)
            return ret;
    }
    return 0;
}

void local_tables_close(local_tables_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->t[i])
            table_close(&t->t[i]);
    xfreep(&t->t);
    xfreep(&t->names);
    t->n = 0;
}

/* reply_rcpt - one DELIVER_RCPT frame */
static void reply_rcpt(ipc_conn_t *conn, uint64_t index, const local_result_t *r)
{
    static const char *const action[] = {"delivered", "deferred", "failed"};
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_DELIVER_RCPT);
    ipc_put_u64(&m, IPC_A_INDEX, index);
    ipc_put_str(&m, IPC_A_DSN_STATUS, r->dsn);
    ipc_put_str(&m, IPC_A_ACTION, action[r->status]);
    ipc_put_str(&m, IPC_A_TEXT, buf_cstr(&r->text));
    ipc_put_str(&m, IPC_A_RELAY, "local");
    ipc_conn_send(conn, &m);
    ipc_msg_free(&m);
}

/* reply_done - DELIVER_DONE ends the reply to one request */
static void reply_done(ipc_conn_t *conn, uint64_t status)
{
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_DELIVER_DONE);
    ipc_put_u64(&m, IPC_A_STATUS, status);
    ipc_conn_send(conn, &m);
    ipc_msg_free(&m);
}

/* open_message - open and check the queue file named in the request */
static int open_message(local_msg_t *msg, const char *qpath, const char **why_r)
{
    if (qfile_open_request(qpath, msg->content_offset, msg->content_size, &msg->fd,
                           &msg->qf, why_r) < 0)
        return -1;
    msg->arrival_sec = msg->qf.arrival_sec;
    msg->arrival_usec = msg->qf.arrival_usec;
    return local_delivered_scan(msg, why_r);
}

/* local_request - serve one DELIVER_REQ; false on a protocol error */
static bool local_request(ipc_conn_t *conn, ipc_msg_t *m)
{
    ipc_view_t v = ipc_msg_view(m), g;
    local_msg_t msg;
    uint64_t u, arrival;
    const char *qpath, *why = NULL;
    bool open_ok;
    size_t it;

    memset(&msg, 0, sizeof(msg));
    local_request_seq++;
    msg.fd = -1;
    msg.req_time = local_now();
    msg.qid = ipc_get_str(v, IPC_A_QID);
    msg.sender = ipc_get_str(v, IPC_A_SENDER);
    qpath = ipc_get_str(v, IPC_A_QPATH);
    if (ipc_get_u64(v, IPC_A_CONTENT_OFFSET, &u) < 0 || u > INT64_MAX)
        return false;
    msg.content_offset = (off_t)u;
    if (ipc_get_u64(v, IPC_A_CONTENT_SIZE, &msg.content_size) < 0
        || ipc_get_u64(v, IPC_A_ARRIVAL, &arrival) < 0 || !qid_valid(msg.qid))
        return false;
    msg.arrival_sec = (int64_t)arrival;
    /* Every recipient needs an INDEX to be answered. */
    for (it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0; )
        if (ipc_get_u64(g, IPC_A_INDEX, &u) < 0)
            return false;

    open_ok = open_message(&msg, qpath, &why) == 0;
    if (!open_ok)
        msg_warn("%s: cannot use queue file %s: %s", msg.qid, qpath, why);
    for (it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0; ) {
        const char *addr = ipc_get_str(g, IPC_A_ADDR);
        local_result_t r;
        uint64_t index = 0;

        (void)ipc_get_u64(g, IPC_A_INDEX, &index);
        local_result_init(&r);
        if (addr == NULL) {
            local_result_set(&r, LOCAL_BOUNCE, "5.1.3", "recipient address is missing");
        } else if (!open_ok) {
            local_result_set(&r, LOCAL_DEFER, "4.3.0", "cannot read queue file: %s", why);
            local_log(&msg, addr, NULL, "local", &r, msg.req_time);
        } else {
            local_rcpt_deliver(&local_state, &msg, addr, &r);
        }
        reply_rcpt(conn, index, &r);
        local_result_free(&r);
    }
    reply_done(conn, 0);
    if (msg.fd >= 0)
        close(msg.fd);
    qfile_free(&msg.qf);
    local_delivered_free(&msg);
    local_msg_done_free(&msg);
    return true;
}

/* local_on_close - qmgr hung up (or spoke nonsense) */
static void local_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    local_conn_t *c = ctx;

    if (why && strcmp(why, "connection closed") != 0)
        msg_warn("qmgr connection: %s", why);
    ipc_conn_free(&c->conn);
    local_state.client_fd = -1;
    service_client_done(c->svc);
    free(c);
}

/* local_on_msg - one frame from qmgr */
static void local_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    if (m->type != IPC_M_DELIVER_REQ || !local_request(conn, m)) {
        msg_warn("protocol error from qmgr: unexpected or malformed %s", ipc_msg_name(m->type));
        local_on_close(conn, NULL, ctx);
    }
}

/* local_accept - a new qmgr connection */
static void local_accept(service_t *svc, int fd)
{
    local_conn_t *c = xcalloc(1, sizeof(*c));

    c->svc = svc;
    if (ipc_hello(fd, "local") < 0) {
        msg_warn("cannot greet qmgr: %m");
        close(fd);
        free(c);
        service_client_done(svc);
        return;
    }
    local_state.client_fd = fd;
    c->conn = ipc_conn_new(service_loop(svc), fd, local_on_msg, local_on_close, c);
}

/* local_cleanup - at exit: close the tables (Berkeley DB handles) */
static void local_cleanup(void)
{
    local_state_t *st = &local_state;

    if (st->pool == NULL)
        return;
    local_uid_pool_free(&st->pool);
    local_tables_close(&st->aliases);
    local_tables_close(&st->valias);
    local_tables_close(&st->vmailbox);
    resolve_free(&st->resolve);
}

/* local_pre_init - as root: settings and tables */
static void local_pre_init(service_t *svc)
{
    local_state_t *st = &local_state;
    const char *why;

    st->conf = service_conf(svc);
    st->loop = service_loop(svc);
    st->root = geteuid() == 0;
    st->client_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    local_params_load(st->conf, &st->p);
    if ((st->resolve = resolve_new(st->conf, &why)) == NULL)
        msg_fatal("cannot set up address resolution: %s", why);
    local_tables_open(&st->aliases, st->p.alias_maps);
    local_tables_open(&st->valias, st->p.virtual_alias_maps);
    local_tables_open(&st->vmailbox, st->p.virtual_mailbox_maps);
    st->pool = local_uid_pool_new(st);
    atexit(local_cleanup);
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "local",
        .client_limit = 1,
        .pre_init = local_pre_init,
        .accept_fn = local_accept,
    };

    return service_main(argc, argv, &spec);
}
