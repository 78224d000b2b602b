/*
 * smtp - the SMTP/LMTP delivery agent
 *
 * master.cf:  smtp  unix - - n - - smtp
 *             lmtp  unix - - n - - smtp
 *             relay unix - - n - - smtp
 * The -n service name decides the protocol: "lmtp" (or a name starting
 * with "lmtp") speaks LMTP and reads lmtp_* parameters, every other
 * name speaks SMTP. Every service greets qmgr with HELLO proto "smtp".
 * One process serves up to 100 qmgr connections at once from one event
 * loop; each connection carries one DELIVER_REQ at a time (a job), and
 * jobs on different connections run concurrently.
 */
#include "smtp.h"
#include "queue/qid.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

smtp_state_t smtp;

/* One qmgr connection. */
struct smtp_client {
    ipc_conn_t *conn;
    smtp_job_t *job;
    bool closing;
};

double smtp_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* smtp_param - the lmtp_ variant of a smtp_ name, when declared */
static const char *smtp_param(const char *name)
{
    static char alt[128];

    if (smtp.p.lmtp && strncmp(name, "smtp_", 5) == 0) {
        snprintf(alt, sizeof(alt), "lmtp_%s", name + 5);
        if (conf_is_known(alt))
            return alt;
    }
    return name;
}

/* smtp_params_load - settings once at start-up */
static void smtp_params_load(conf_t *c, const char *service)
{
    smtp_params_t *p = &smtp.p;
    char **opts;

    p->lmtp = strncmp(service, "lmtp", 4) == 0;
    p->port = p->lmtp ? 24 : (unsigned)conf_int(c, "smtp_service_port");
    p->connect_ms = conf_int(c, "smtp_connect_timeout") * 1000;
    p->helo_ms = conf_int(c, "smtp_helo_timeout") * 1000;
    p->mail_ms = conf_int(c, "smtp_mail_timeout") * 1000;
    p->rcpt_ms = conf_int(c, "smtp_rcpt_timeout") * 1000;
    p->data_init_ms = conf_int(c, "smtp_data_init_timeout") * 1000;
    p->data_xfer_ms = conf_int(c, "smtp_data_xfer_timeout") * 1000;
    p->data_done_ms = conf_int(c, "smtp_data_done_timeout") * 1000;
    p->quit_ms = conf_int(c, "smtp_quit_timeout") * 1000;
    p->rset_ms = conf_int(c, "smtp_rset_timeout") * 1000;
    p->starttls_ms = conf_int(c, "smtp_starttls_timeout") * 1000;
    p->cache_ms = conf_int(c, "smtp_connection_cache_time_limit") * 1000;
    p->cache_on = conf_bool(c, "smtp_connection_cache_on_demand");
    p->helo_name = conf_str(c, "smtp_helo_name");
    p->mx_address_limit = (int)conf_int(c, "smtp_mx_address_limit");
    p->mx_session_limit = (int)conf_int(c, "smtp_mx_session_limit");
    p->tls_level_name = conf_str(c, smtp_param("smtp_tls_security_level"));
    if (*p->tls_level_name == 0)
        p->tls_level_name = "none";
    if (tls_level_parse(p->tls_level_name, &p->tls_level) < 0)
        msg_fatal("bad %s value: %s", smtp_param("smtp_tls_security_level"),
                  p->tls_level_name);
    p->tls_loglevel = (int)conf_int(c, "smtp_tls_loglevel");
    p->sasl_enable = conf_bool(c, smtp_param("smtp_sasl_auth_enable"));
    p->sasl_noplain = p->sasl_tls_noplain = false;
    opts = conf_list(c, "smtp_sasl_security_options");
    for (size_t i = 0; opts && opts[i]; i++)
        if (strcasecmp(opts[i], "noplaintext") == 0)
            p->sasl_noplain = true;
    opts = conf_list(c, "smtp_sasl_tls_security_options");
    for (size_t i = 0; opts && opts[i]; i++)
        if (strcasecmp(opts[i], "noplaintext") == 0)
            p->sasl_tls_noplain = true;
}

/* smtp_tables_init - open the tables now, before any chroot (a table
 * that is missing now is retried at its first use) */
static void smtp_tables_init(smtp_tables_t *t, char **specs)
{
    const char *why;

    memset(t, 0, sizeof(*t));
    for (size_t i = 0; specs && specs[i]; i++) {
        t->names = xreallocarray(t->names, t->n + 1, sizeof(*t->names));
        t->t = xreallocarray(t->t, t->n + 1, sizeof(*t->t));
        t->names[t->n] = specs[i];
        if ((t->t[t->n] = table_open(specs[i], &why)) == NULL)
            msg_warn("cannot open %s: %s", specs[i], why);
        t->n++;
    }
}

/* smtp_tables_free - close them (at exit: Berkeley DB pages are only
 * freed by a close) */
static void smtp_tables_free(smtp_tables_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        table_close(&t->t[i]);
    free(t->t);
    free(t->names);
    memset(t, 0, sizeof(*t));
}

/* smtp_tables_get - the first table with key wins: 1, 0 none, -1 error */
int smtp_tables_get(smtp_tables_t *t, const char *key, buf_t *val, const char **why_r)
{
    for (size_t i = 0; i < t->n; i++) {
        int r;

        if (t->t[i] && table_changed(t->t[i])) {
            /* In a chroot the new file is out of reach: keep the old
             * handle until the process is replaced (stork reload). */
            table_t *fresh = table_open(t->names[i], why_r);

            if (fresh) {
                table_close(&t->t[i]);
                t->t[i] = fresh;
            }
        }
        if (t->t[i] == NULL && (t->t[i] = table_open(t->names[i], why_r)) == NULL)
            return -1;
        if ((r = table_get(t->t[i], key, val, why_r)) != 0)
            return r;
    }
    return 0;
}

/* smtp_log - Postfix's delivery line for one recipient */
static void smtp_log(const smtp_job_t *job, const smtp_rcpt_t *r, const char *relay,
                     const char *dsn, const char *status, const char *text)
{
    double now = smtp_now();
    double arrival = (double)job->arrival_sec + (double)job->arrival_usec / 1e6;
    double a = job->t_req - arrival, b, c, d;
    double t_conn = job->t_conn ? job->t_conn : now, t_xfer = job->t_xfer ? job->t_xfer : now;

    if (a < 0)
        a = 0;
    b = t_conn - job->t_req;
    c = t_xfer - t_conn;
    d = now - t_xfer;
    msg_info("%s: to=<%s>, relay=%s, delay=%.2g, delays=%.2g/%.2g/%.2g/%.2g, dsn=%s, "
             "status=%s (%s)", job->qid, r->addr, relay, now - arrival, a, b < 0 ? 0 : b,
             c < 0 ? 0 : c, d < 0 ? 0 : d, dsn, status, text);
}

/* smtp_rcpt_result - one recipient is done: log it, tell qmgr */
void smtp_rcpt_result(smtp_job_t *job, size_t i, int result, const char *dsn,
                      const char *relay, const char *text, const char *logtext)
{
    smtp_rcpt_t *r = &job->rcpts[i];
    const char *action, *status;
    ipc_msg_t m;

    if (r->result != SMTP_R_NONE)
        return;
    r->result = result;
    if (result == SMTP_R_OK) {
        /* "relayed": the next hop took the mail but not the DSN duty
         * (qmgr sends NOTIFY=SUCCESS notices itself); "delivered": LMTP
         * final delivery, or a DSN-capable server got NOTIFY/ORCPT */
        action = smtp.p.lmtp || job->next_dsn ? "delivered" : "relayed";
        status = "sent";
    } else if (result == SMTP_R_FAIL) {
        action = "failed";
        status = "bounced";
    } else {
        action = "deferred";
        status = "deferred";
    }
    smtp_log(job, r, relay ? relay : "none", dsn, status, logtext ? logtext : text);
    if (job->client == NULL || job->client->conn == NULL)
        return;
    ipc_msg_init(&m, IPC_M_DELIVER_RCPT);
    ipc_put_u64(&m, IPC_A_INDEX, r->index);
    ipc_put_str(&m, IPC_A_DSN_STATUS, dsn);
    ipc_put_str(&m, IPC_A_ACTION, action);
    ipc_put_str(&m, IPC_A_TEXT, text);
    if (relay)
        ipc_put_str(&m, IPC_A_RELAY, relay);
    ipc_conn_send(job->client->conn, &m);
    ipc_msg_free(&m);
}

size_t smtp_job_pending(const smtp_job_t *job)
{
    size_t n = 0;

    for (size_t i = 0; i < job->nrcpt; i++)
        if (job->rcpts[i].result == SMTP_R_NONE)
            n++;
    return n;
}

/* smtp_job_free - release everything a job holds */
static void smtp_job_free(smtp_job_t *job)
{
    smtp_resolve_cancel(job);
    if (job->next_timer)
        event_timer_cancel(smtp.loop, &job->next_timer);
    if (job->sess)
        smtp_sess_detach(job->sess);
    smtp_targets_free(job);
    if (job->fd >= 0)
        close(job->fd);
    qfile_free(&job->qf);
    free(job->rcpts);
    str_argv_free(&job->match);
    buf_free(&job->err_text);
    ipc_msg_free(&job->req);
    free(job);
}

/* smtp_job_finish - every recipient has a result: DELIVER_DONE */
static void smtp_job_finish(smtp_job_t *job)
{
    smtp_client_t *cl = job->client;
    bool site = false;
    ipc_msg_t m;

    /* recipients left over get the last site-level error */
    for (size_t i = 0; i < job->nrcpt; i++) {
        if (job->rcpts[i].result != SMTP_R_NONE)
            continue;
        site = true;
        smtp_rcpt_result(job, i, job->err_final ? SMTP_R_FAIL : SMTP_R_DEFER,
                         job->err_dsn[0] ? job->err_dsn : "4.4.1",
                         job->err_relay[0] ? job->err_relay : NULL,
                         job->err_text.len ? buf_cstr(&job->err_text)
                         : "delivery temporarily suspended", NULL);
    }
    if (cl && cl->conn) {
        ipc_msg_init(&m, IPC_M_DELIVER_DONE);
        ipc_put_u64(&m, IPC_A_STATUS, 0);
        if (site && !job->err_final)
            ipc_put_str(&m, IPC_A_REASON, job->err_text.len ? buf_cstr(&job->err_text)
                        : "delivery temporarily suspended");
        ipc_conn_send(cl->conn, &m);
        ipc_msg_free(&m);
    }
    if (cl)
        cl->job = NULL;
    smtp_job_free(job);
}

/* smtp_job_site_error - remember a destination-level failure; recipients
 * still without a result get it when the targets run out */
void smtp_job_site_error(smtp_job_t *job, const char *dsn, bool final, const char *fmt, ...)
{
    va_list ap;

    safe_cpy(job->err_dsn, sizeof(job->err_dsn), dsn);
    job->err_final = final;
    job->err_relay[0] = 0;
    buf_reset(&job->err_text);
    va_start(ap, fmt);
    if (buf_vprintf(&job->err_text, fmt, ap) < 0)
        buf_puts(&job->err_text, "(error text too long)");
    va_end(ap);
}

/* smtp_job_next_cb - from a timer, so no session code is on the stack */
static void smtp_job_next_cb(event_loop_t *loop, void *ctx)
{
    smtp_job_t *job = ctx;

    (void)loop;
    job->next_timer = NULL;
    if (smtp_job_pending(job) == 0 || job->ti >= job->ntargets
        || (smtp.p.mx_session_limit > 0 && job->sessions >= smtp.p.mx_session_limit)) {
        smtp_job_finish(job);
        return;
    }
    smtp_sess_connect(job, &job->targets[job->ti]);
}

/* smtp_job_next_target - try the current target (again, or the next one
 * after a session ended); finish when done */
void smtp_job_next_target(smtp_job_t *job)
{
    if (job->next_timer == NULL)
        job->next_timer = event_timer_add(smtp.loop, 0, smtp_job_next_cb, job);
}

/* smtp_job_session_done - a session ended (job->sess is NULL again) */
void smtp_job_session_done(smtp_job_t *job)
{
    if (!job->plain_retry)
        job->ti++;
    smtp_job_next_target(job);
}

/* smtp_job_scan8 - does the content have 8-bit bytes? (when FLAGS do not say) */
static bool smtp_job_scan8(smtp_job_t *job)
{
    char buf[65536];
    uint64_t left = job->content_size;
    off_t off = job->content_offset;

    while (left > 0) {
        ssize_t n = pread(job->fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf), off);

        if (n <= 0)
            return false;
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] & 0x80)
                return true;
        left -= (uint64_t)n;
        off += n;
    }
    return false;
}

/* smtp_job_open - the queue file named by the request, checked */
static int smtp_job_open(smtp_job_t *job, const char *qpath, const char **why_r)
{
    if (qfile_open_request(qpath, job->content_offset, job->content_size, &job->fd,
                           &job->qf, why_r) < 0)
        return -1;
    job->arrival_sec = job->qf.arrival_sec;
    job->arrival_usec = job->qf.arrival_usec;
    if (job->flags_given)
        job->body8 = (job->flags & DELIVER_F_8BITMIME) != 0;
    else
        job->body8 = smtp_job_scan8(job);
    return 0;
}

/* smtp_default_nexthop - without NEXTHOP: the first recipient's domain */
static const char *smtp_default_nexthop(smtp_job_t *job)
{
    const char *at;

    if (job->nrcpt == 0 || (at = strrchr(job->rcpts[0].addr, '@')) == NULL)
        return NULL;
    return at + 1;
}

/* smtp_request - a DELIVER_REQ becomes a job; false on a protocol error */
static bool smtp_request(smtp_client_t *cl, ipc_msg_t *m)
{
    smtp_job_t *job = xcalloc(1, sizeof(*job));
    ipc_view_t v, g;
    uint64_t u;
    const char *qpath, *why = NULL;
    size_t it, n = 0;

    job->fd = -1;
    job->t_req = smtp_now();
    buf_init(&job->err_text, 4096);
    ipc_msg_move(&job->req, m);
    v = ipc_msg_view(&job->req);
    job->qid = ipc_get_str(v, IPC_A_QID);
    job->sender = ipc_get_str(v, IPC_A_SENDER);
    job->envid = ipc_get_str(v, IPC_A_ENVID);
    job->ret = ipc_get_str(v, IPC_A_RET);
    job->nexthop = ipc_get_str(v, IPC_A_NEXTHOP);
    job->transport = ipc_get_str(v, IPC_A_TRANSPORT);
    qpath = ipc_get_str(v, IPC_A_QPATH);
    if (ipc_get_u64(v, IPC_A_FLAGS, &u) == 0) {
        job->flags = (unsigned)u;
        job->flags_given = true;
    }
    if (ipc_get_u64(v, IPC_A_CONTENT_OFFSET, &u) < 0 || u > INT64_MAX
        || ipc_get_u64(v, IPC_A_CONTENT_SIZE, &job->content_size) < 0
        || ipc_get_u64(v, IPC_A_ARRIVAL, &u) < 0 || !qid_valid(job->qid)) {
        smtp_job_free(job);
        return false;
    }
    job->arrival_sec = (int64_t)u;
    (void)ipc_get_u64(v, IPC_A_CONTENT_OFFSET, &u);
    job->content_offset = (off_t)u;
    for (it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0; )
        n++;
    job->rcpts = xcalloc(n ? n : 1, sizeof(*job->rcpts));
    for (it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0; ) {
        smtp_rcpt_t *r = &job->rcpts[job->nrcpt];

        r->addr = ipc_get_str(g, IPC_A_ADDR);
        r->orcpt = ipc_get_str(g, IPC_A_ORCPT);
        if (ipc_get_u64(g, IPC_A_NOTIFY, &u) == 0)
            r->notify = (unsigned)u;
        if (ipc_get_u64(g, IPC_A_INDEX, &r->index) < 0 || r->addr == NULL) {
            smtp_job_free(job);
            return false;
        }
        job->nrcpt++;
    }
    job->client = cl;
    cl->job = job;
    if (smtp_job_open(job, qpath, &why) < 0) {
        msg_warn("%s: cannot use queue file %s: %s", job->qid, qpath, why);
        smtp_job_site_error(job, "4.3.0", false, "cannot read queue file: %s", why);
        smtp_job_finish(job);
        return true;
    }
    if (job->nexthop == NULL || *job->nexthop == 0)
        job->nexthop = smtp_default_nexthop(job);
    if (smtp_nexthop_parse(job->nexthop, smtp.p.lmtp, smtp.p.port, &job->dest, &why) < 0) {
        msg_warn("%s: bad next hop \"%s\": %s", job->qid, job->nexthop ? job->nexthop : "",
                 why);
        smtp_job_site_error(job, "4.3.5", false, "mail transport configuration error: "
                            "bad next hop \"%s\"", job->nexthop ? job->nexthop : "");
        smtp_job_finish(job);
        return true;
    }
    if (smtp_tls_policy(job, &why) < 0) {
        smtp_job_site_error(job, "4.7.5", false, "TLS policy lookup for %s: %s",
                            job->nexthop, why);
        smtp_job_finish(job);
        return true;
    }
    if (smtp_sess_reuse(job))
        return true;
    smtp_resolve_start(job);
    return true;
}

/* smtp_client_free - the qmgr connection is gone */
static void smtp_client_free(smtp_client_t *cl)
{
    if (cl->job) {
        cl->job->client = NULL;
        smtp_job_free(cl->job);
    }
    ipc_conn_free(&cl->conn);
    free(cl);
    service_client_done(smtp.svc);
}

static void smtp_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    (void)conn;
    if (why && strcmp(why, "connection closed") != 0)
        msg_warn("qmgr connection: %s", why);
    smtp_client_free(ctx);
}

static void smtp_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    smtp_client_t *cl = ctx;

    (void)conn;
    if (m->type != IPC_M_DELIVER_REQ || cl->job != NULL || !smtp_request(cl, m)) {
        msg_warn("protocol error from qmgr: unexpected or malformed %s",
                 ipc_msg_name(m->type));
        smtp_client_free(cl);
    }
}

static void smtp_accept(service_t *svc, int fd)
{
    smtp_client_t *cl;

    if (ipc_hello(fd, "smtp") < 0) {
        msg_warn("cannot greet qmgr: %m");
        close(fd);
        service_client_done(svc);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    cl->conn = ipc_conn_new(service_loop(svc), fd, smtp_on_msg, smtp_on_close, cl);
}

static void smtp_stop(service_t *svc)
{
    (void)svc;
    smtp_cache_flush();
}

/* smtp_exit - release what only a close frees (leak checkers look) */
static void smtp_exit(void)
{
    smtp_tables_free(&smtp.tls_policy);
    smtp_tables_free(&smtp.sasl_passwd);
}

/* smtp_pre_init - settings, tables, TLS context and resolvers */
static void smtp_pre_init(service_t *svc)
{
    conf_t *c = service_conf(svc);
    char **servers;
    const char *anchor, *why;

    smtp.svc = svc;
    smtp.conf = c;
    smtp.loop = service_loop(svc);
    signal(SIGPIPE, SIG_IGN);
    smtp_params_load(c, service_name(svc));
    smtp_tables_init(&smtp.tls_policy, conf_list(c, smtp_param("smtp_tls_policy_maps")));
    smtp_tables_init(&smtp.sasl_passwd, conf_list(c, smtp_param("smtp_sasl_password_maps")));
    atexit(smtp_exit);
    if (smtp_tls_init(&smtp, &why) < 0)
        msg_fatal("TLS client set-up: %s", why);
    servers = conf_list(c, "dns_servers");
    anchor = conf_str(c, "dnssec_trust_anchor_file");
    smtp.dnssec_ok = anchor && *anchor && access(anchor, R_OK) == 0;
    if ((smtp.dns = dns_ctx_new(smtp.loop, (const char *const *)servers,
                                smtp.dnssec_ok ? anchor : NULL, &why)) == NULL)
        msg_fatal("DNS resolver set-up: %s", why);
    dns_ctx_set_timeout(smtp.dns, (int)conf_int(c, "dns_lookup_timeout") * 1000);
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "smtp",
        .client_limit = 100,
        .pre_init = smtp_pre_init,
        .accept_fn = smtp_accept,
        .stop_fn = smtp_stop,
    };

    return service_main(argc, argv, &spec);
}
