/*
 * smtpd_enqueue.c - the queue file of a transaction, group commit, and
 * the notice to qmgr.
 *
 * The file is created at the first accepted recipient (so rejected
 * transactions cost no disk: "NOQUEUE: reject"), gets the envelope
 * records as recipients arrive, then the Received: header and the
 * content as it streams in. At the end of the content the session is
 * parked on the commit list. Before the event loop sleeps, the
 * before-sleep hook makes the whole batch durable: fsync of every file,
 * rename to incoming/QID, one fsync of incoming/ for all of them; only
 * then does each session get "250 2.0.0 Ok: queued as QID". A failure
 * at any step answers 451 4.3.0 and removes the file. Last, qmgr hears
 * QMGR_NEW {QID} on a persistent connection to public/qmgr (remade
 * lazily; if qmgr is down the message is still safe in incoming/, which
 * qmgr scans when it starts).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "mail/addr.h"
#include "smtpd.h"
#include "mail/mail_date.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SMTPD_QMGR_PATH "public/qmgr"
#define SMTPD_QMGR_RETRY_MS 1000
#define SMTPD_QMGR_BACKLOG (256 * 1024)   /* queued notices before we drop them */

/* smtpd_enqueue_proto - "ESMTP" plus S for TLS and A for AUTH (RFC 3848),
 * or with utf8 "UTF8SMTP..." (RFC 6531) */
static void smtpd_enqueue_proto(const smtpd_session_t *s, bool utf8, char *out, size_t size)
{
    if (!s->esmtp) {
        snprintf(out, size, "SMTP");
        return;
    }
    snprintf(out, size, "%s%s%s", utf8 ? "UTF8SMTP" : "ESMTP",
             s->tls_active ? "S" : "", s->sasl_username ? "A" : "");
}

/* smtpd_enqueue_open - create incoming/t.QID with the envelope so far */
int smtpd_enqueue_open(smtpd_session_t *s, const char **why_r)
{
    struct timeval tv;
    char proto[16];
    qfile_writer_t *w;
    int rc = 0;

    smtpd_enqueue_proto(s, false, proto, sizeof(proto));
    if (qfile_create(".", &w, why_r) < 0)
        return -1;
    gettimeofday(&tv, NULL);
    rc |= qfile_put_arrival(w, tv.tv_sec, (int32_t)tv.tv_usec);
    rc |= qfile_put_sender(w, buf_cstr(&s->mail.addr));
    rc |= qfile_put_attr(w, "client_address", s->client_addr);
    rc |= qfile_put_attr(w, "client_name", s->client_name);
    rc |= qfile_put_attr(w, "helo_name", s->helo ? s->helo : "");
    rc |= qfile_put_attr(w, "protocol", proto);
    if (s->mail.envid_set)
        rc |= qfile_put_attr(w, "envid", buf_cstr(&s->mail.envid));
    if (s->mail.ret != SMTP_RET_NONE)
        rc |= qfile_put_attr(w, "ret", s->mail.ret == SMTP_RET_FULL ? "FULL" : "HDRS");
    if (s->mail.smtputf8)
        rc |= qfile_put_attr(w, "smtputf8", "yes");
    if (s->sasl_username) {
        rc |= qfile_put_attr(w, "sasl_method", s->sasl_method);
        rc |= qfile_put_attr(w, "sasl_username", s->sasl_username);
    }
    /* The smtp client needs the declared body type to pass it on. */
    if (s->mail.body == SMTP_BODY_7BIT || s->mail.body == SMTP_BODY_8BITMIME)
        rc |= qfile_put_attr(w, "body", s->mail.body == SMTP_BODY_7BIT ? "7BIT" : "8BITMIME");
    if (rc != 0) {
        *why_r = "cannot write the envelope";
        qfile_abort(&w);
        return -1;
    }
    s->qf = w;
    memcpy(s->qid, qfile_writer_qid(w), QID_BUFSIZE);
    if (s->sasl_username)
        msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->qid, s->client_desc,
                 s->sasl_method, s->sasl_username);
    else
        msg_info("%s: client=%s", s->qid, s->client_desc);
    return 0;
}

/* smtpd_enqueue_rcpt - one accepted recipient */
int smtpd_enqueue_rcpt(smtpd_session_t *s, const char *addr, const char *orcpt, unsigned notify)
{
    if (qfile_put_rcpt(s->qf, addr, orcpt, notify) < 0) {
        msg_warn("%s: cannot write a recipient record", s->qid);
        return -1;
    }
    return 0;
}

/* smtpd_enqueue_begin_content - start the content with Received: */
int smtpd_enqueue_begin_content(smtpd_session_t *s)
{
    const smtpd_settings_t *set = &s->srv->set;
    buf_t hdr;
    char with[16];
    int rc;

    if (s->qf == NULL || qfile_begin_content(s->qf) < 0)
        return -1;
    smtpd_enqueue_proto(s, s->mail.smtputf8, with, sizeof(with));
    buf_init(&hdr, BUF_NOLIMIT);
    /* Postfix's shape, so log and header tools read it:
     * Received: from HELO (NAME [ADDR])
     *	(using TLSv1.3 with cipher X (256/256 bits))      (TLS only)
     *	(No client certificate requested)
     *	by MYHOSTNAME (Stork) with ESMTPSA id QID
     *	for <RCPT>; DATE                  (one recipient only) */
    buf_printf(&hdr, "Received: from %s (%s [%s%s])\r\n",
               s->helo ? s->helo : "unknown", s->client_name,
               strchr(s->client_addr, ':') ? "IPv6:" : "", s->client_addr);
    if (s->tls_active && s->tls_info && set->tls_received_header)
        buf_printf(&hdr, "\t(using %s)\r\n\t(No client certificate requested)\r\n",
                   s->tls_info);
    buf_printf(&hdr, "\tby %s (Stork) with %s id %s", set->myhostname, with, s->qid);
    if (s->nrcpts == 1) {
        buf_puts(&hdr, "\r\n\tfor <");
        addr_quote(s->rcpts[0], &hdr);
        buf_puts(&hdr, ">; ");
        mail_date(&hdr, time(NULL));
        buf_puts(&hdr, "\r\n");
    } else {
        buf_puts(&hdr, ";\r\n\t");
        mail_date(&hdr, time(NULL));
        buf_puts(&hdr, "\r\n");
    }
    rc = qfile_write_content(s->qf, hdr.data, hdr.len);
    buf_free(&hdr);
    return rc;
}

/* smtpd_enqueue_write - client content into the file */
void smtpd_enqueue_write(smtpd_session_t *s, const char *p, size_t n)
{
    if (s->qf == NULL || qfile_write_content(s->qf, p, n) < 0)
        s->write_error = true;
}

/* smtpd_enqueue_abort - remove the temp file of a failed transaction */
void smtpd_enqueue_abort(smtpd_session_t *s)
{
    qfile_abort(&s->qf);
    s->qid[0] = 0;
}

/* smtpd_enqueue_finish - complete the file and park for group commit */
void smtpd_enqueue_finish(smtpd_session_t *s)
{
    smtpd_server_t *srv = s->srv;
    const char *why;

    if (qfile_finish(s->qf, &why) < 0) {
        msg_warn("%s: queue file write error: %s", s->qid, why);
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        smtpd_transaction_reset(s);
        return;
    }
    s->parked = true;
    s->commit_next = NULL;
    *srv->commit_tail = s;
    srv->commit_tail = &s->commit_next;
}

static bool smtpd_qmgr_connect(smtpd_server_t *srv);
static void smtpd_qmgr_retry(event_loop_t *loop, void *ctx);

/* smtpd_qmgr_on_msg - qmgr sends nothing we need */
static void smtpd_qmgr_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
}

/* smtpd_qmgr_on_close - qmgr went away: notices sent since it stopped
 * reading are lost, so reconnect soon (qmgr rescans incoming/ when a
 * client connects) rather than at the next message */
static void smtpd_qmgr_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    smtpd_server_t *srv = ctx;

    ipc_conn_free(&srv->qmgr);
    if (srv->qmgr_timer == NULL)
        srv->qmgr_timer = event_timer_add(srv->loop, SMTPD_QMGR_RETRY_MS, smtpd_qmgr_retry, srv);
}

/* smtpd_qmgr_retry - reconnect after lost notices: qmgr rescans
 * incoming/ whenever a client connects, so the reconnection alone makes
 * it find the files whose notices were lost */
static void smtpd_qmgr_retry(event_loop_t *loop, void *ctx)
{
    smtpd_server_t *srv = ctx;

    srv->qmgr_timer = NULL;
    (void)smtpd_qmgr_connect(srv);
}

/* smtpd_qmgr_connect - the persistent connection to qmgr, made lazily;
 * on failure retry in the background until it works */
static bool smtpd_qmgr_connect(smtpd_server_t *srv)
{
    int64_t now = event_now_ms(srv->loop);
    const char *why;
    int fd;

    if (srv->qmgr)
        return true;
    if (now < srv->qmgr_retry_ms)
        return false;
    fd = ipc_connect_start(SMTPD_QMGR_PATH, &why);
    if (fd < 0) {
        if (srv->qmgr_timer == NULL)
            msg_warn("connect to %s: %s (mail waits in incoming/ until qmgr is back)",
                     SMTPD_QMGR_PATH, why);
        srv->qmgr_retry_ms = now + SMTPD_QMGR_RETRY_MS;
        if (srv->qmgr_timer == NULL)
            srv->qmgr_timer = event_timer_add(srv->loop, SMTPD_QMGR_RETRY_MS, smtpd_qmgr_retry, srv);
        return false;
    }
    srv->qmgr = ipc_conn_new(srv->loop, fd, smtpd_qmgr_on_msg, smtpd_qmgr_on_close, srv);
    ipc_conn_expect_hello(srv->qmgr, "qmgr");
    return true;
}

/* smtpd_qmgr_notify - QMGR_NEW {QID}; best effort (qmgr also scans) */
static void smtpd_qmgr_notify(smtpd_server_t *srv, const char *qid)
{
    ipc_msg_t m;

    if (!smtpd_qmgr_connect(srv))
        return;
    if (ipc_conn_pending(srv->qmgr) > SMTPD_QMGR_BACKLOG)
        return;
    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    ipc_put_str(&m, IPC_A_QID, qid);
    ipc_conn_send(srv->qmgr, &m);
    ipc_msg_free(&m);
}

/* smtpd_commit_batch - make one batch durable, then answer it */
static void smtpd_commit_batch(smtpd_server_t *srv, smtpd_session_t *batch)
{
    size_t n = 0, i = 0, ncommitted = 0;
    bool dir_ok = true;
    char **qids;
    bool *ok;
    const char *why;

    for (smtpd_session_t *s = batch; s; s = s->commit_next)
        n++;
    qids = xcalloc(n, sizeof(*qids));
    ok = xcalloc(n, sizeof(*ok));
    for (smtpd_session_t *s = batch; s; s = s->commit_next, i++) {
        if (qfile_sync(s->qf, &why) < 0 || qfile_commit(s->qf, &why) < 0) {
            msg_warn("%s: cannot commit the queue file: %s", s->qid, why);
            continue;
        }
        ok[i] = true;
        ncommitted++;
    }
    if (ncommitted && queue_sync_dir(".", QUEUE_INCOMING) < 0) {
        /* The renames may not survive a crash: take them back rather
         * than acknowledge mail that could vanish. */
        msg_warn("cannot sync the %s directory: %m", QUEUE_INCOMING);
        dir_ok = false;
    }
    i = 0;
    for (smtpd_session_t *s = batch, *next; s; s = next, i++) {
        next = s->commit_next;
        s->commit_next = NULL;
        s->parked = false;
        if (ok[i] && dir_ok) {
            if (s->message_id)
                msg_info("%s: message-id=%s", s->qid, s->message_id + strspn(s->message_id, " \t"));
            smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", s->qid);
            s->cmd_ok[s->used_bdat ? SMTPD_C_BDAT : SMTPD_C_DATA]++;
            qids[i] = xstrdup(s->qid);
            qfile_writer_free(&s->qf);     /* committed: keep the file */
            s->error_count = 0;
            s->junk_count = 0;
        } else {
            if (ok[i]) {
                char *path = xasprintf("%s/%s", QUEUE_INCOMING, s->qid);
                if (unlink(path) < 0 && errno != ENOENT)
                    msg_warn("%s: cannot remove %s: %m", s->qid, path);
                free(path);
                qfile_writer_free(&s->qf);
            }
            smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        }
        smtpd_transaction_reset(s);
        smtpd_session_resume(s);
    }
    for (i = 0; i < n; i++) {
        if (qids[i])
            smtpd_qmgr_notify(srv, qids[i]);
        free(qids[i]);
    }
    free(qids);
    free(ok);
}

/* smtpd_commit_hook - before the loop sleeps: commit what is parked */
static void smtpd_commit_hook(event_loop_t *loop, void *ctx)
{
    smtpd_server_t *srv = ctx;

    /* Answering a batch may let a pipelining session finish its next
     * message at once: loop until nothing is parked. */
    while (srv->commit_head) {
        smtpd_session_t *batch = srv->commit_head;
        srv->commit_head = NULL;
        srv->commit_tail = &srv->commit_head;
        smtpd_commit_batch(srv, batch);
    }
}

/* smtpd_enqueue_init - the group commit hook */
void smtpd_enqueue_init(smtpd_server_t *srv)
{
    srv->commit_head = NULL;
    srv->commit_tail = &srv->commit_head;
    event_before_sleep(srv->loop, smtpd_commit_hook, srv);
}
