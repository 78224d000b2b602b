/*
 * bounce - the delivery status notification service (master.cf:
 * "bounce unix - - n - 0 bounce"). qmgr sends BOUNCE_REQ {QID, QPATH,
 * DSN_KIND, RCPT...} for a message in active/; bounce reads that file,
 * writes an RFC 3464 report (bounce_dsn.c) as a new queue file from the
 * null sender with lib/queue (incoming/QID, completion mark and fsync,
 * sync) and answers BOUNCE_REPLY {STATUS 0, QID}; qmgr then takes the
 * new file. Never a bounce of a bounce: a failure report for mail from
 * the null sender goes to $2bounce_notice_recipient as a postmaster
 * copy, and a failed postmaster copy is logged and dropped. Delay and
 * success notices for the null sender are not made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "bounce_dsn.h"
#include "ipc/ipc.h"
#include "queue/qfile.h"
#include "service/service.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define BOUNCE_MAX_RCPTS 1000
#define BOUNCE_KIND_ATTR "dsn_report"   /* qfile attribute on our reports */

static struct {
    service_t *svc;
    const char *myhostname;
    char *postmaster;
    uint64_t size_limit;
    int64_t max_lifetime;
} bounce;

typedef struct bounce_client {
    ipc_conn_t *conn;
} bounce_client_t;

/* bounce_reply - BOUNCE_REPLY {STATUS, [QID], [TEXT]} */
static void bounce_reply(bounce_client_t *c, uint32_t req_id, int status, const char *qid,
                         const char *text)
{
    ipc_msg_t r;

    ipc_msg_init(&r, IPC_M_BOUNCE_REPLY);
    r.req_id = req_id;
    ipc_put_u64(&r, IPC_A_STATUS, (uint64_t)status);
    if (qid)
        ipc_put_str(&r, IPC_A_QID, qid);
    if (text)
        ipc_put_str(&r, IPC_A_TEXT, text);
    ipc_conn_send(c->conn, &r);
    ipc_msg_free(&r);
}

/* bounce_kind - the request's kind (failed becomes double for mail
 * from the null sender); -1 unknown */
static int bounce_kind(const char *kind, const char *sender)
{
    if (strcmp(kind, "failed") == 0)
        return sender[0] ? BOUNCE_FAILED : BOUNCE_DOUBLE;
    if (strcmp(kind, "delayed") == 0)
        return BOUNCE_DELAYED;
    if (strcmp(kind, "success") == 0)
        return BOUNCE_SUCCESS;
    return -1;
}

/* bounce_has_8bit - does the report need 8BITMIME? */
static bool bounce_has_8bit(const buf_t *b)
{
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->data[i] & 0x80)
            return true;
    return false;
}

/* bounce_write - the report as a durable queue file; 0 and its id */
static int bounce_write(const bounce_info_t *bi, bounce_kind_t kind, char qid_r[QID_BUFSIZE],
                        const char **why_r)
{
    static const char *const names[] = { "failed", "delayed", "success", "double" };
    qfile_writer_t *w;
    struct timeval tv;
    buf_t text;
    bounce_info_t info = *bi;

    if (qfile_create(".", &w, why_r) < 0)
        return -1;
    info.new_qid = qfile_writer_qid(w);
    buf_init(&text, BUF_NOLIMIT);
    bounce_dsn_text(&info, &text);
    gettimeofday(&tv, NULL);
    int rc = -1;
    if (qfile_put_arrival(w, tv.tv_sec, (int32_t)tv.tv_usec) == 0
        && qfile_put_sender(w, "") == 0
        && qfile_put_attr(w, "protocol", "bounce") == 0
        && qfile_put_attr(w, BOUNCE_KIND_ATTR, names[kind]) == 0
        && (!bounce_has_8bit(&text) || qfile_put_attr(w, "body", "8BITMIME") == 0)
        && qfile_put_rcpt(w, bi->to, "", 0) == 0
        && qfile_begin_content(w) == 0
        && qfile_write_content(w, text.data, text.len) == 0
        && qfile_finish(w, why_r) == 0 && qfile_sync(w, why_r) == 0
        && qfile_commit(w, why_r) == 0
        && (queue_commit_dir(".", QUEUE_INCOMING, qfile_name_needs_dir_sync(w)) == 0
            || (*why_r = "cannot sync the incoming directory", false))) {
        memcpy(qid_r, qfile_writer_qid(w), QID_BUFSIZE);
        qfile_writer_free(&w);
        rc = 0;
    } else {
        if (*why_r == NULL)
            *why_r = "write error";
        qfile_abort(&w);
    }
    buf_free(&text);
    return rc;
}

/* bounce_rcpts - the RCPT groups; NULL with why on a bad request */
static bounce_rcpt_t *bounce_rcpts(ipc_view_t v, size_t *n_r, const char **why_r)
{
    ipc_view_t g;
    size_t n = 0, it = 0;
    bounce_rcpt_t *r = xcalloc(BOUNCE_MAX_RCPTS, sizeof(*r));

    while (ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0) {
        if (n == BOUNCE_MAX_RCPTS) {
            *why_r = "too many recipients";
            free(r);
            return NULL;
        }
        r[n].addr = ipc_get_str(g, IPC_A_ADDR);
        r[n].orcpt = ipc_get_str(g, IPC_A_ORCPT);
        r[n].dsn = ipc_get_str(g, IPC_A_DSN_STATUS);
        r[n].action = ipc_get_str(g, IPC_A_ACTION);
        r[n].text = ipc_get_str(g, IPC_A_TEXT);
        r[n].relay = ipc_get_str(g, IPC_A_RELAY);
        if (r[n].addr == NULL || r[n].dsn == NULL || r[n].action == NULL) {
            *why_r = "recipient without address, status or action";
            free(r);
            return NULL;
        }
        n++;
    }
    if (n == 0) {
        *why_r = "no recipients";
        free(r);
        return NULL;
    }
    *n_r = n;
    return r;
}

/* bounce_read_content - the original content up to what the report can
 * use: all of it within bounce_size_limit, else enough for the headers */
static char *bounce_read_content(int fd, const qfile_t *qf, size_t *len_r)
{
    uint64_t want = qf->content_size;
    uint64_t cap = bounce.size_limit > BOUNCE_HEADERS_MAX ? bounce.size_limit : BOUNCE_HEADERS_MAX;

    if (want > cap)
        want = BOUNCE_HEADERS_MAX;
    char *p = xmalloc((size_t)want + 1);
    ssize_t n = want ? pread(fd, p, (size_t)want, qf->content_offset) : 0;
    if (n < 0)
        n = 0;
    p[n] = 0;
    *len_r = (size_t)n;
    return p;
}

/* bounce_request - one BOUNCE_REQ; replies in every case */
static void bounce_request(bounce_client_t *c, ipc_msg_t *m)
{
    ipc_view_t v = ipc_msg_view(m);
    const char *qid = ipc_get_str(v, IPC_A_QID), *qpath = ipc_get_str(v, IPC_A_QPATH);
    const char *kname = ipc_get_str(v, IPC_A_DSN_KIND), *why = NULL;
    char expect[sizeof(QUEUE_ACTIVE) + QID_BUFSIZE + 1], nqid[QID_BUFSIZE];
    bounce_rcpt_t *rcpts;
    size_t n = 0;
    qfile_t qf;

    if (!qid_valid(qid)) {
        bounce_reply(c, m->req_id, 1, NULL, "bad queue id");
        return;
    }
    snprintf(expect, sizeof(expect), "%s/%s", QUEUE_ACTIVE, qid);
    if (strcmp(qpath, expect) != 0) {
        bounce_reply(c, m->req_id, 1, NULL, "bad queue file path");
        return;
    }
    if ((rcpts = bounce_rcpts(v, &n, &why)) == NULL) {
        bounce_reply(c, m->req_id, 1, NULL, why);
        return;
    }
    int fd = open(qpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || qfile_read(fd, &qf, &why) < 0) {
        msg_warn("%s: cannot read %s: %s", qid, qpath, fd < 0 ? strerror(errno) : why);
        if (fd >= 0)
            close(fd);
        free(rcpts);
        bounce_reply(c, m->req_id, 1, NULL, "cannot read the queue file");
        return;
    }
    int kind = bounce_kind(kname, qf.sender);
    const char *prev = qfile_attr(&qf, BOUNCE_KIND_ATTR);
    if (kind < 0) {
        bounce_reply(c, m->req_id, 1, NULL, "unknown notification kind");
    } else if (kind == BOUNCE_DOUBLE && prev && strcmp(prev, "double") == 0) {
        msg_info("%s: undeliverable postmaster notification discarded", qid);
        bounce_reply(c, m->req_id, 0, NULL, "discarded");
    } else if (!qf.sender[0] && kind != BOUNCE_DOUBLE) {
        bounce_reply(c, m->req_id, 0, NULL, "no notification for the null sender");
    } else {
        size_t clen;
        char *content = bounce_read_content(fd, &qf, &clen);
        struct timeval tv;
        gettimeofday(&tv, NULL);
        bounce_info_t bi = {
            .kind = (bounce_kind_t)kind, .myhostname = bounce.myhostname, .qid = qid,
            .sender = qf.sender, .to = kind == BOUNCE_DOUBLE ? bounce.postmaster : qf.sender,
            .envid = qfile_attr(&qf, "envid"), .ret = qfile_attr(&qf, "ret"),
            .arrival = qf.arrival_sec, .now = tv.tv_sec,
            .retry_until = qf.arrival_sec + bounce.max_lifetime,
            .content = content, .content_len = clen, .content_size = qf.content_size,
            .size_limit = bounce.size_limit, .rcpts = rcpts, .n = n,
        };
        if (bounce_write(&bi, (bounce_kind_t)kind, nqid, &why) < 0) {
            msg_warn("%s: cannot write a notification: %s", qid, why);
            bounce_reply(c, m->req_id, 1, NULL, "cannot write the notification");
        } else {
            static const char *const logs[] = {
                "sender non-delivery notification", "sender delay notification",
                "sender delivery status notification", "postmaster non-delivery notification",
            };
            msg_info("%s: %s: %s", qid, logs[kind], nqid);
            bounce_reply(c, m->req_id, 0, nqid, NULL);
        }
        free(content);
    }
    qfile_free(&qf);
    close(fd);
    free(rcpts);
}

/* bounce_on_close - the client is gone */
static void bounce_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    bounce_client_t *c = ctx;

    ipc_conn_free(&c->conn);
    free(c);
    service_client_done(bounce.svc);
}

/* bounce_on_msg - requests */
static void bounce_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    bounce_client_t *c = ctx;

    if (m->type != IPC_M_BOUNCE_REQ) {
        msg_warn("unexpected %s from a client: closing the connection", ipc_msg_name(m->type));
        bounce_on_close(conn, "protocol error", c);
        return;
    }
    bounce_request(c, m);
}

/* bounce_accept - HELLO, then requests */
static void bounce_accept(service_t *svc, int fd)
{
    if (ipc_hello(fd, "bounce") < 0) {
        close(fd);
        service_client_done(svc);
        return;
    }
    bounce_client_t *c = xcalloc(1, sizeof(*c));
    c->conn = ipc_conn_new(service_loop(svc), fd, bounce_on_msg, bounce_on_close, c);
}

/* bounce_post_init - parameters */
static void bounce_post_init(service_t *svc)
{
    conf_t *conf = service_conf(svc);
    const char *pm = conf_str(conf, "2bounce_notice_recipient");

    bounce.svc = svc;
    bounce.myhostname = conf_str(conf, "myhostname");
    bounce.size_limit = (uint64_t)conf_int(conf, "bounce_size_limit");
    bounce.max_lifetime = conf_int(conf, "maximal_queue_lifetime");
    /* qualified, so the To: header and the envelope agree */
    bounce.postmaster = strchr(pm, '@') ? xstrdup(pm)
        : xasprintf("%s@%s", pm, conf_str(conf, "myorigin"));
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "bounce",
        .client_limit = 50,
        .post_init = bounce_post_init,
        .accept_fn = bounce_accept,
    };

    return service_main(argc, argv, &spec);
}
