/*
 * smtp_proto - one SMTP/LMTP session: connect, greeting, EHLO/LHLO (HELO
 * fallback), STARTTLS per the target's TLS level, AUTH, then one mail
 * transaction per job (MAIL, RCPT..., DATA, pipelined when the server
 * offers PIPELINING, replies matched in order), and the idle-session
 * cache (RSET before reuse, QUIT after smtp_connection_cache_time_limit).
 * All I/O goes through lib/stream; every wait has a deadline.
 */
#include "smtp.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BODY_CHUNK (64 * 1024)

typedef enum {
    S_CONNECT, S_GREETING, S_EHLO, S_HELO, S_STARTTLS, S_TLS, S_AUTH, S_RSET, S_XFER,
    S_BODY, S_DOT, S_QUIT, S_IDLE
} sstate_t;

enum { C_MAIL, C_RCPT, C_DATA, C_DOT_IGNORE };

struct smtp_sess {
    smtp_job_t *job;
    stream_t *st;
    int fd;                         /* while connecting */
    event_timer_t *timer;           /* connect timeout, idle time */
    char *host;
    char ip[64];
    unsigned port;
    bool is_unix;
    char label[400];                /* host[ip]:port */
    char *cache_key;
    sstate_t state;
    smtp_resp_t resp;
    smtp_feat_t feat;
    tls_level_t level;
    bool tls_on, authed, starttls_refused;
    int auth_mech, auth_step;
    char *user, *pass;
    /* the transaction */
    int *cmds;
    size_t *cmd_rcpt;
    size_t ncmd, sent, got;
    size_t *acc;
    size_t naccepted, ndot;
    bool aborted;
    /* the body */
    off_t body_off;
    uint64_t body_left;
    bool bol, last_cr, last_lf;
    smtp_sess_t *next;
};

static void sess_event(stream_t *st, int ev, void *ctx);
static void sess_quit(smtp_sess_t *sess);

/* the session whose reply is being handled, and whether it was freed */
static smtp_sess_t *sess_current;
static bool sess_current_freed;

static const char *const state_what[] = {
    [S_CONNECT] = "connecting", [S_GREETING] = "receiving the initial server greeting",
    [S_EHLO] = "performing the EHLO handshake", [S_HELO] = "performing the HELO handshake",
    [S_STARTTLS] = "sending STARTTLS", [S_TLS] = "performing the TLS handshake",
    [S_AUTH] = "authenticating", [S_RSET] = "sending RSET",
    [S_XFER] = "sending the message envelope", [S_BODY] = "sending message body",
    [S_DOT] = "sending end of data -- message may be sent more than once",
    [S_QUIT] = "sending QUIT", [S_IDLE] = "waiting in the connection cache",
};

/* sess_free - close and release */
static void sess_free(smtp_sess_t *sess)
{
    if (sess == sess_current)
        sess_current_freed = true;
    if (sess->timer)
        event_timer_cancel(smtp.loop, &sess->timer);
    if (sess->st)
        stream_free(&sess->st);
    if (sess->fd >= 0) {
        event_fd_del(smtp.loop, sess->fd);
        close(sess->fd);
    }
    smtp_resp_free(&sess->resp);
    free(sess->cmds);
    free(sess->cmd_rcpt);
    free(sess->acc);
    free(sess->host);
    free(sess->cache_key);
    free(sess->user);
    free(sess->pass);
    free(sess);
}

/* cache_remove - take an idle session off the cache list */
static void cache_remove(smtp_sess_t *sess)
{
    for (smtp_sess_t **pp = &smtp.cache; *pp; pp = &(*pp)->next)
        if (*pp == sess) {
            *pp = sess->next;
            break;
        }
    sess->next = NULL;
}

/* sess_end - the job is done with this session; the job continues with
 * the next target (or finishes) from a timer */
static void sess_end(smtp_sess_t *sess, bool keep)
{
    smtp_job_t *job = sess->job;

    sess->job = NULL;
    if (job) {
        job->sess = NULL;
        smtp_job_session_done(job);
    }
    if (!keep)
        sess_free(sess);
}

/* sess_fail - a session-level failure: remember it for the recipients
 * still pending, drop the session, let the job try the next target */
static void sess_fail(smtp_sess_t *sess, const char *dsn, bool final, const char *fmt, ...)
    STORK_PRINTF(4, 5);
static void sess_fail(smtp_sess_t *sess, const char *dsn, bool final, const char *fmt, ...)
{
    char text[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (sess->job) {
        smtp_job_site_error(sess->job, dsn, final, "%s", text);
        if (sess->st)
            safe_cpy(sess->job->err_relay, sizeof(sess->job->err_relay), sess->label);
        msg_info("%s: %s", sess->job->qid, text);
        sess->job->plain_retry = false;
    }
    sess_end(sess, false);
}

/* sess_reply_fail - a reply ended the session: "host X said: ..." */
static void sess_reply_fail(smtp_sess_t *sess, const char *cmd)
{
    char dsn[16];

    smtp_resp_dsn(&sess->resp, dsn);
    sess_fail(sess, dsn, sess->resp.code >= 500, "host %s said: %s (in reply to %s)",
              sess->label, buf_cstr(&sess->resp.text), cmd);
}

/* sess_send - queue a command and wait for its reply */
static void sess_send(smtp_sess_t *sess, sstate_t state, int64_t ms, const char *fmt, ...)
    STORK_PRINTF(4, 5);
static void sess_send(smtp_sess_t *sess, sstate_t state, int64_t ms, const char *fmt, ...)
{
    va_list ap;
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    va_start(ap, fmt);
    (void)buf_vprintf(&b, fmt, ap);
    va_end(ap);
    (void)stream_write(sess->st, b.data, b.len);
    buf_free(&b);
    sess->state = state;
    stream_set_deadline(sess->st, ms);
    stream_want_read(sess->st, true);
}

/* sess_helo - EHLO (or LHLO) */
static void sess_helo(smtp_sess_t *sess)
{
    sess_send(sess, S_EHLO, smtp.p.helo_ms, "%s %s\r\n", smtp.p.lmtp ? "LHLO" : "EHLO",
              smtp.p.helo_name);
}

static void sess_begin_tx(smtp_sess_t *sess);

/* sess_auth - AUTH when enabled and a password is known for this server */
static bool sess_auth(smtp_sess_t *sess)
{
    const char *why;
    buf_t cmd;

    if (!smtp.p.sasl_enable || sess->authed || !(sess->feat.bits & SMTP_FEAT_AUTH))
        return false;
    if (sess->user == NULL) {
        int r = smtp_sasl_lookup(sess->job, sess->host, &sess->user, &sess->pass);

        if (r < 0) {
            /* As Postfix: a password table that cannot be read defers the
             * mail rather than sending it without the login it needs. */
            sess_fail(sess, "4.3.0", false, "SASL password table lookup failed for %s",
                      sess->label);
            return true;
        }
        if (r == 0)
            return false;
    }
    buf_init(&cmd, 8192);
    if (smtp_sasl_start(sess->feat.auth, sess->user, sess->pass, sess->tls_on, &cmd,
                        &sess->auth_mech, &why) < 0) {
        buf_free(&cmd);
        sess_fail(sess, "4.7.0", false, "SASL authentication failed with %s: %s",
                  sess->label, why);
        return true;
    }
    sess->auth_step = 0;
    sess_send(sess, S_AUTH, smtp.p.helo_ms, "%s", buf_cstr(&cmd));
    buf_free(&cmd);
    return true;
}

/* sess_after_helo - STARTTLS, the TLS requirement, AUTH, then mail */
static void sess_after_helo(smtp_sess_t *sess)
{
    smtp_job_t *job = sess->job;

    if (!sess->tls_on && sess->level != TLS_LEV_NONE && !job->plain_retry
        && !sess->starttls_refused && (sess->feat.bits & SMTP_FEAT_STARTTLS)) {
        sess_send(sess, S_STARTTLS, smtp.p.starttls_ms, "STARTTLS\r\n");
        return;
    }
    if (!sess->tls_on && sess->level >= TLS_LEV_ENCRYPT) {
        sess_fail(sess, "4.7.4", false, "TLS is required, but was not offered by host %s",
                  sess->label);
        return;
    }
    if (sess_auth(sess))
        return;
    sess_begin_tx(sess);
}

/* sess_starttls - the server said go: start the handshake */
static void sess_starttls(smtp_sess_t *sess)
{
    tls_client_params_t p;
    smtp_target_t t = { 0 };
    tls_conn_t *tc;
    const char *why;

    t.host = sess->host;
    safe_cpy(t.ip, sizeof(t.ip), sess->ip);
    t.port = sess->port;
    t.is_unix = sess->is_unix;
    if (sess->job->ti < sess->job->ntargets) {
        t.tlsa = sess->job->targets[sess->job->ti].tlsa;
        t.ntlsa = sess->job->targets[sess->job->ti].ntlsa;
    }
    smtp_tls_params(sess->job, &t, sess->level, &p);
    if ((tc = tls_conn_client_new(smtp.tls, stream_fd(sess->st), &p, &why)) == NULL) {
        sess_fail(sess, "4.7.5", false, "Cannot start TLS with %s: %s", sess->label, why);
        return;
    }
    if (stream_start_tls(sess->st, tc, &why) < 0) {
        tls_conn_free(&tc);
        sess_fail(sess, "4.7.5", false, "Cannot start TLS with %s: %s", sess->label, why);
        return;
    }
    sess->state = S_TLS;
    stream_set_deadline(sess->st, smtp.p.starttls_ms);
    stream_want_read(sess->st, false);
}

/* sess_tls_done - the handshake succeeded: log it, EHLO again */
static void sess_tls_done(smtp_sess_t *sess)
{
    tls_conn_t *tc = stream_tls(sess->st);

    sess->tls_on = true;
    if (smtp.p.tls_loglevel >= 1) {
        buf_t line;

        buf_init(&line, 4096);
        tls_conn_describe(tc, &line);
        msg_info("%s", buf_cstr(&line));
        buf_free(&line);
    }
    if (sess->level == TLS_LEV_DANE && !tls_conn_dane_usable(tc))
        msg_info("%s: no usable TLSA records for %s: encrypting without authentication",
                 sess->job->qid, sess->label);
    sess_helo(sess);
}

/* sess_tls_failed - the handshake failed: in the clear again for "may",
 * else defer (never plaintext after a failed verify or DANE) */
static void sess_tls_failed(smtp_sess_t *sess, const char *why)
{
    smtp_job_t *job = sess->job;

    if (sess->level == TLS_LEV_MAY) {
        msg_info("%s: TLS handshake with %s failed: %s; retrying without TLS", job->qid,
                 sess->label, why);
        job->plain_retry = true;
        job->sessions--;            /* the same session, in the clear */
        sess_end(sess, false);
        return;
    }
    sess_fail(sess, "4.7.5", false, "TLS handshake with %s failed: %s", sess->label, why);
}

/* rcpt_fail_text - one recipient's result from the current reply */
static void rcpt_reply(smtp_sess_t *sess, size_t i, const char *cmd)
{
    char dsn[16], text[SMTP_RESP_MAX + 600];
    int code = sess->resp.code;

    smtp_resp_dsn(&sess->resp, dsn);
    if (code / 100 == 2) {
        snprintf(text, sizeof(text), "%s (in reply to %s)", buf_cstr(&sess->resp.text), cmd);
        smtp_rcpt_result(sess->job, i, SMTP_R_OK, dsn, sess->label, text,
                         buf_cstr(&sess->resp.text));
    } else {
        snprintf(text, sizeof(text), "host %s said: %s (in reply to %s)", sess->label,
                 buf_cstr(&sess->resp.text), cmd);
        smtp_rcpt_result(sess->job, i, code >= 500 ? SMTP_R_FAIL : SMTP_R_DEFER,
                         dsn, sess->label, text, NULL);
    }
}

/* fail_pending - every recipient still pending gets the same result */
static void fail_pending(smtp_sess_t *sess, int result, const char *dsn, const char *text)
{
    for (size_t i = 0; i < sess->job->nrcpt; i++)
        smtp_rcpt_result(sess->job, i, result, dsn, sess->label, text, NULL);
}

/* sess_idle_expired - nobody wanted the cached session */
static void sess_idle_expired(event_loop_t *loop, void *ctx)
{
    (void)loop;
    sess_quit(ctx);
}

/* tx_end - the transaction is over: cache the session or QUIT */
static void tx_end(smtp_sess_t *sess)
{
    smtp_job_t *job = sess->job;

    free(sess->cmds);
    free(sess->cmd_rcpt);
    free(sess->acc);
    sess->cmds = NULL;
    sess->cmd_rcpt = sess->acc = NULL;
    sess->job = NULL;
    job->sess = NULL;
    job->plain_retry = false;
    smtp_job_session_done(job);
    if (smtp.p.cache_on && job->nexthop) {
        free(sess->cache_key);
        sess->cache_key = xasprintf("%s|%s", job->transport ? job->transport : "",
                                    job->nexthop);
        sess->state = S_IDLE;
        stream_set_deadline(sess->st, 0);
        stream_want_read(sess->st, true);
        sess->next = smtp.cache;
        smtp.cache = sess;
        sess->timer = event_timer_add(smtp.loop, smtp.p.cache_ms, sess_idle_expired, sess);
        return;
    }
    sess_quit(sess);
}

/* cmd_write - the text of transaction command k */
static void cmd_write(smtp_sess_t *sess, size_t k)
{
    smtp_job_t *job = sess->job;
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    if (sess->cmds[k] == C_MAIL) {
        buf_printf(&b, "MAIL FROM:<%s>", job->sender ? job->sender : "");
        if (sess->feat.bits & SMTP_FEAT_SIZE)
            buf_printf(&b, " SIZE=%llu", (unsigned long long)job->content_size);
        if (job->body8 && (sess->feat.bits & SMTP_FEAT_8BITMIME))
            buf_puts(&b, " BODY=8BITMIME");
        if ((job->flags & DELIVER_F_SMTPUTF8) && (sess->feat.bits & SMTP_FEAT_SMTPUTF8))
            buf_puts(&b, " SMTPUTF8");
        if (sess->feat.bits & SMTP_FEAT_DSN) {
            if (job->ret && (strcasecmp(job->ret, "FULL") == 0
                             || strcasecmp(job->ret, "HDRS") == 0))
                buf_printf(&b, " RET=%s", strcasecmp(job->ret, "FULL") == 0 ? "FULL" : "HDRS");
            if (job->envid && *job->envid) {
                buf_puts(&b, " ENVID=");
                smtp_xtext_encode(&b, job->envid);
            }
        }
    } else if (sess->cmds[k] == C_RCPT) {
        const smtp_rcpt_t *r = &job->rcpts[sess->cmd_rcpt[k]];

        buf_printf(&b, "RCPT TO:<%s>", r->addr);
        if ((sess->feat.bits & SMTP_FEAT_DSN) && r->notify) {
            const char *sep = "";
            buf_puts(&b, " NOTIFY=");
            if (r->notify & QFILE_NOTIFY_NEVER) {
                buf_puts(&b, "NEVER");
            } else {
                if (r->notify & QFILE_NOTIFY_SUCCESS) { buf_printf(&b, "%sSUCCESS", sep); sep = ","; }
                if (r->notify & QFILE_NOTIFY_FAILURE) { buf_printf(&b, "%sFAILURE", sep); sep = ","; }
                if (r->notify & QFILE_NOTIFY_DELAY) buf_printf(&b, "%sDELAY", sep);
            }
        }
        if ((sess->feat.bits & SMTP_FEAT_DSN) && r->orcpt && *r->orcpt) {
            const char *semi = strchr(r->orcpt, ';');
            buf_puts(&b, " ORCPT=");
            if (semi) {
                buf_append(&b, r->orcpt, (size_t)(semi - r->orcpt) + 1);
                smtp_xtext_encode(&b, semi + 1);
            } else {
                buf_puts(&b, "rfc822;");
                smtp_xtext_encode(&b, r->orcpt);
            }
        }
    } else if (sess->cmds[k] == C_DATA) {
        buf_puts(&b, "DATA");
    }
    buf_puts(&b, "\r\n");
    (void)stream_write(sess->st, b.data, b.len);
    buf_free(&b);
}

/* sess_begin_tx - MAIL, RCPT..., DATA for the job's pending recipients */
static void sess_begin_tx(smtp_sess_t *sess)
{
    smtp_job_t *job = sess->job;
    size_t n = 0;
    char text[600];

    job->t_xfer = smtp_now();
    job->next_dsn = (sess->feat.bits & SMTP_FEAT_DSN) != 0;
    if ((sess->feat.bits & SMTP_FEAT_SIZE) && sess->feat.size_limit
        && job->content_size > sess->feat.size_limit) {
        snprintf(text, sizeof(text), "message size %llu exceeds size limit %llu of server %s",
                 (unsigned long long)job->content_size,
                 (unsigned long long)sess->feat.size_limit, sess->label);
        fail_pending(sess, SMTP_R_FAIL, "5.3.4", text);
        tx_end(sess);
        return;
    }
    if ((job->flags & DELIVER_F_SMTPUTF8) && !(sess->feat.bits & SMTP_FEAT_SMTPUTF8)) {
        snprintf(text, sizeof(text), "SMTPUTF8 is required, but was not offered by host %s",
                 sess->label);
        fail_pending(sess, SMTP_R_FAIL, "5.6.7", text);
        tx_end(sess);
        return;
    }
    sess->cmds = xcalloc(job->nrcpt + 3, sizeof(*sess->cmds));
    sess->cmd_rcpt = xcalloc(job->nrcpt + 3, sizeof(*sess->cmd_rcpt));
    sess->acc = xcalloc(job->nrcpt + 1, sizeof(*sess->acc));
    sess->cmds[n++] = C_MAIL;
    for (size_t i = 0; i < job->nrcpt; i++) {
        job->rcpts[i].accepted = false;
        if (job->rcpts[i].result == SMTP_R_NONE) {
            sess->cmd_rcpt[n] = i;
            sess->cmds[n++] = C_RCPT;
        }
    }
    sess->cmds[n++] = C_DATA;
    sess->ncmd = n;
    sess->sent = sess->got = sess->naccepted = sess->ndot = 0;
    sess->aborted = false;
    do {
        cmd_write(sess, sess->sent++);
    } while ((sess->feat.bits & SMTP_FEAT_PIPELINING) && sess->sent < sess->ncmd);
    sess->state = S_XFER;
    stream_set_deadline(sess->st, smtp.p.mail_ms);
    stream_want_read(sess->st, true);
}

/* body_pump - the next piece of the content, dot-stuffed, CRLF lines */
static void body_pump(smtp_sess_t *sess)
{
    smtp_job_t *job = sess->job;
    char in[16384];
    buf_t out;

    buf_init(&out, BUF_NOLIMIT);
    while (sess->body_left > 0 && out.len < BODY_CHUNK) {
        size_t want = sess->body_left < sizeof(in) ? (size_t)sess->body_left : sizeof(in);
        ssize_t n = pread(job->fd, in, want, sess->body_off);

        if (n <= 0) {
            buf_free(&out);
            sess_fail(sess, "4.3.0", false, "error reading queue file: %s",
                      n < 0 ? strerror(errno) : "unexpected end of file");
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char c = in[i];
            if (sess->bol && c == '.')
                buf_putc(&out, '.');
            if (c == '\n' && !sess->last_cr)
                buf_putc(&out, '\r');
            buf_putc(&out, c);
            sess->last_cr = c == '\r';
            sess->bol = c == '\n';
        }
        sess->body_off += n;
        sess->body_left -= (uint64_t)n;
    }
    if (sess->body_left == 0) {
        if (!sess->bol)
            buf_puts(&out, sess->last_cr ? "\n" : "\r\n");
        buf_puts(&out, ".\r\n");
        sess->state = S_DOT;
        stream_set_deadline(sess->st, smtp.p.data_done_ms);
        stream_want_read(sess->st, true);
    } else {
        stream_set_deadline(sess->st, smtp.p.data_xfer_ms);
    }
    (void)stream_write(sess->st, out.data, out.len);
    buf_free(&out);
}

/* xfer_reply - a reply to MAIL, RCPT, DATA (or the "." after a 354 that
 * came with no recipient accepted) */
static void xfer_reply(smtp_sess_t *sess)
{
    size_t k = sess->got++;
    int code = sess->resp.code;
    bool pipelined = (sess->feat.bits & SMTP_FEAT_PIPELINING) != 0;
    char dsn[16], text[SMTP_RESP_MAX + 600];

    switch (sess->cmds[k]) {
    case C_MAIL:
        if (code / 100 != 2) {
            smtp_resp_dsn(&sess->resp, dsn);
            snprintf(text, sizeof(text), "host %s said: %s (in reply to MAIL FROM command)",
                     sess->label, buf_cstr(&sess->resp.text));
            fail_pending(sess, code >= 500 ? SMTP_R_FAIL : SMTP_R_DEFER, dsn, text);
            sess->aborted = true;
        }
        break;
    case C_RCPT:
        if (sess->aborted)
            break;
        if (code / 100 == 2) {
            sess->job->rcpts[sess->cmd_rcpt[k]].accepted = true;
            sess->acc[sess->naccepted++] = sess->cmd_rcpt[k];
        } else {
            rcpt_reply(sess, sess->cmd_rcpt[k], "RCPT TO command");
        }
        break;
    case C_DATA:
        if (code == 354) {
            if (sess->aborted || sess->naccepted == 0) {
                sess->cmds[sess->ncmd++] = C_DOT_IGNORE;
                sess->sent++;
                (void)stream_write(sess->st, ".\r\n", 3);
                return;
            }
            sess->state = S_BODY;
            sess->body_off = sess->job->content_offset;
            sess->body_left = sess->job->content_size;
            sess->bol = true;
            sess->last_cr = false;
            stream_want_read(sess->st, false);
            body_pump(sess);
            return;
        }
        if (!sess->aborted)
            for (size_t i = 0; i < sess->naccepted; i++)
                rcpt_reply(sess, sess->acc[i], "DATA command");
        tx_end(sess);
        return;
    case C_DOT_IGNORE:
        tx_end(sess);
        return;
    }
    if (!pipelined && sess->got == sess->sent && sess->sent < sess->ncmd) {
        if (sess->aborted || (sess->cmds[sess->sent] == C_DATA && sess->naccepted == 0)) {
            tx_end(sess);
            return;
        }
        stream_set_deadline(sess->st, sess->cmds[sess->sent] == C_DATA
                            ? smtp.p.data_init_ms : smtp.p.rcpt_ms);
        cmd_write(sess, sess->sent++);
    }
}

/* dot_reply - the reply (SMTP) or one of the replies (LMTP) to "." */
static void dot_reply(smtp_sess_t *sess)
{
    if (!smtp.p.lmtp) {
        for (size_t i = 0; i < sess->naccepted; i++)
            rcpt_reply(sess, sess->acc[i], "end of DATA command");
        tx_end(sess);
        return;
    }
    rcpt_reply(sess, sess->acc[sess->ndot++], "end of DATA command");
    if (sess->ndot == sess->naccepted)
        tx_end(sess);
}

/* sess_reply - one complete reply, by state */
static void sess_reply(smtp_sess_t *sess)
{
    int code = sess->resp.code;

    switch (sess->state) {
    case S_GREETING:
        if (code / 100 == 2) {
            sess_helo(sess);
        } else {
            char dsn[16];
            smtp_resp_dsn(&sess->resp, dsn);
            sess_fail(sess, dsn, code >= 500, "host %s refused to talk to me: %s",
                      sess->label, buf_cstr(&sess->resp.text));
        }
        break;
    case S_EHLO:
        if (code / 100 == 2) {
            smtp_ehlo_parse(buf_cstr(&sess->resp.lines), &sess->feat);
            sess_after_helo(sess);
        } else if (code >= 500 && !smtp.p.lmtp && !sess->tls_on) {
            sess_send(sess, S_HELO, smtp.p.helo_ms, "HELO %s\r\n", smtp.p.helo_name);
        } else {
            sess_reply_fail(sess, smtp.p.lmtp ? "LHLO command" : "EHLO command");
        }
        break;
    case S_HELO:
        if (code / 100 == 2) {
            memset(&sess->feat, 0, sizeof(sess->feat));
            sess_after_helo(sess);
        } else {
            sess_reply_fail(sess, "HELO command");
        }
        break;
    case S_STARTTLS:
        if (code / 100 == 2) {
            sess_starttls(sess);
        } else if (sess->level == TLS_LEV_MAY) {
            sess->starttls_refused = true;
            sess_after_helo(sess);
        } else {
            char dsn[16];
            smtp_resp_dsn(&sess->resp, dsn);
            sess_fail(sess, code >= 500 ? "4.7.5" : dsn, false, "TLS is required, but host %s "
                      "refused to start TLS: %s", sess->label, buf_cstr(&sess->resp.text));
        }
        break;
    case S_AUTH:
        if (code == 235) {
            sess->authed = true;
            sess_begin_tx(sess);
        } else if (code == 334) {
            buf_t cmd;
            buf_init(&cmd, 8192);
            if (smtp_sasl_step(sess->auth_mech, sess->auth_step++, sess->user, sess->pass,
                               &cmd) < 0) {
                buf_free(&cmd);
                sess_fail(sess, "4.7.0", false, "SASL authentication failed; unexpected "
                          "challenge from server %s", sess->label);
                return;
            }
            sess_send(sess, S_AUTH, smtp.p.helo_ms, "%s", buf_cstr(&cmd));
            buf_free(&cmd);
        } else {
            sess_fail(sess, "4.7.0", false, "SASL authentication failed; server %s said: %s",
                      sess->label, buf_cstr(&sess->resp.text));
        }
        break;
    case S_RSET:
        if (code / 100 == 2) {
            sess_begin_tx(sess);
        } else {
            smtp_job_t *job = sess->job;
            job->sess = NULL;
            sess->job = NULL;
            sess_quit(sess);
            smtp_resolve_start(job);
        }
        break;
    case S_XFER:
        xfer_reply(sess);
        break;
    case S_DOT:
        dot_reply(sess);
        break;
    case S_QUIT:
        sess_free(sess);
        break;
    default:                /* S_IDLE: the server spoke out of turn */
        cache_remove(sess);
        sess_free(sess);
        break;
    }
}

/* sess_lost - EOF, read/write error or time-out */
static void sess_lost(smtp_sess_t *sess, bool timeout, const char *why)
{
    smtp_job_t *job = sess->job;

    if (sess->state == S_QUIT) {
        sess_free(sess);
        return;
    }
    if (sess->state == S_IDLE) {
        cache_remove(sess);
        sess_free(sess);
        return;
    }
    if (sess->state == S_TLS) {
        sess_tls_failed(sess, why);
        return;
    }
    if (sess->state == S_RSET) {    /* a cached session went stale: start afresh */
        job->sess = NULL;
        sess->job = NULL;
        sess_free(sess);
        smtp_resolve_start(job);
        return;
    }
    if (timeout)
        sess_fail(sess, "4.4.2", false, "conversation with %s timed out while %s",
                  sess->label, state_what[sess->state]);
    else
        sess_fail(sess, "4.4.2", false, "lost connection with %s while %s (%s)",
                  sess->label, state_what[sess->state], why);
}

/* sess_event - the stream's callback */
static void sess_event(stream_t *st, int ev, void *ctx)
{
    smtp_sess_t *sess = ctx;
    const char *line, *why;
    size_t len;
    int r;

    switch (ev) {
    case STREAM_EV_READ:
        /* one reply at a time: the handler may change state or free sess */
        while ((r = stream_get_line(st, &line, &len)) == 1) {
            int c = smtp_resp_line(&sess->resp, line, len, &why);
            if (c < 0) {
                sess_fail(sess, "4.4.2", false, "%s from %s while %s", why, sess->label,
                          state_what[sess->state]);
                return;
            }
            if (c == 1) {
                sess_current = sess;
                sess_current_freed = false;
                sess_reply(sess);
                sess_current = NULL;
                if (sess_current_freed || sess->st != st)
                    return;
            }
        }
        if (r < 0)
            sess_lost(sess, false, stream_error(st));
        break;
    case STREAM_EV_DRAINED:
        if (sess->state == S_BODY)
            body_pump(sess);
        break;
    case STREAM_EV_HANDSHAKE:
        sess_tls_done(sess);
        break;
    case STREAM_EV_TIMEOUT:
        sess_lost(sess, true, "timeout");
        break;
    case STREAM_EV_ERROR:
        sess_lost(sess, false, stream_error(st));
        break;
    }
}

/* sess_quit - say goodbye (also the idle timer's callback) */
static void sess_quit(smtp_sess_t *sess)
{
    if (sess->state == S_IDLE) {
        sess->timer = NULL;
        cache_remove(sess);
    }
    if (sess->st == NULL) {
        sess_free(sess);
        return;
    }
    sess_send(sess, S_QUIT, smtp.p.quit_ms < 5000 ? smtp.p.quit_ms : 5000, "QUIT\r\n");
}

/* sess_connected - the socket is connected: wait for the greeting */
static void sess_connected(smtp_sess_t *sess)
{
    int fd = sess->fd;

    if (sess->timer)
        event_timer_cancel(smtp.loop, &sess->timer);
    event_fd_del(smtp.loop, fd);
    sess->fd = -1;
    sess->job->sessions++;
    sess->st = stream_new(smtp.loop, fd, SMTP_REPLY_LINE_MAX, sess_event, sess);
    sess->state = S_GREETING;
    stream_set_deadline(sess->st, smtp.p.helo_ms);
    stream_want_read(sess->st, true);
}

/* sess_connect_fail - this address did not answer */
static void sess_connect_fail(smtp_sess_t *sess, const char *why)
{
    if (sess->is_unix)
        sess_fail(sess, "4.4.1", false, "connect to %s: %s", sess->ip, why);
    else
        sess_fail(sess, "4.4.1", false, "connect to %s[%s]:%u: %s", sess->host, sess->ip,
                  sess->port, why);
}

static void sess_connect_ready(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    smtp_sess_t *sess = ctx;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)loop;
    (void)mask;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        sess_connect_fail(sess, strerror(err));
        return;
    }
    sess_connected(sess);
}

static void sess_connect_timeout(event_loop_t *loop, void *ctx)
{
    smtp_sess_t *sess = ctx;

    (void)loop;
    sess->timer = NULL;
    sess_connect_fail(sess, "Connection timed out");
}

/* smtp_sess_connect - open a session to one target for the job */
void smtp_sess_connect(smtp_job_t *job, const smtp_target_t *tgt)
{
    smtp_sess_t *sess = xcalloc(1, sizeof(*sess));
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    const struct sockaddr *sa = (const struct sockaddr *)&tgt->sa;
    socklen_t salen = tgt->salen;
    int fd;

    sess->fd = -1;
    sess->job = job;
    job->sess = sess;
    sess->host = xstrdup(tgt->host);
    safe_cpy(sess->ip, sizeof(sess->ip), tgt->ip);
    sess->port = tgt->port;
    sess->is_unix = tgt->is_unix;
    sess->level = job->plain_retry ? TLS_LEV_NONE : tgt->level;
    smtp_resp_init(&sess->resp);
    if (tgt->is_unix)
        snprintf(sess->label, sizeof(sess->label), "%s[%s]", tgt->host, tgt->ip);
    else
        snprintf(sess->label, sizeof(sess->label), "%s[%s]:%u", tgt->host, tgt->ip, tgt->port);
    if (job->t_conn == 0)
        job->t_conn = smtp_now();
    if (tgt->is_unix) {
        safe_cpy(sun.sun_path, sizeof(sun.sun_path), tgt->ip);
        sa = (const struct sockaddr *)&sun;
        salen = sizeof(sun);
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sess_connect_fail(sess, strerror(errno));
        return;
    }
    sess->fd = fd;
    if (connect(fd, sa, salen) == 0) {
        event_fd_add(smtp.loop, fd, 0, sess_connect_ready, sess);
        sess_connected(sess);
        return;
    }
    if (errno != EINPROGRESS && errno != EAGAIN) {
        sess_connect_fail(sess, strerror(errno));
        return;
    }
    event_fd_add(smtp.loop, fd, EVENT_WRITE, sess_connect_ready, sess);
    sess->timer = event_timer_add(smtp.loop, smtp.p.connect_ms, sess_connect_timeout, sess);
}

/* smtp_sess_reuse - an idle session to the same next hop: RSET and go */
bool smtp_sess_reuse(smtp_job_t *job)
{
    char key[1100];

    if (!smtp.p.cache_on || job->nexthop == NULL)
        return false;
    snprintf(key, sizeof(key), "%s|%s", job->transport ? job->transport : "", job->nexthop);
    for (smtp_sess_t *s = smtp.cache; s; s = s->next) {
        if (strcmp(s->cache_key, key) != 0)
            continue;
        cache_remove(s);
        if (s->timer)
            event_timer_cancel(smtp.loop, &s->timer);
        s->job = job;
        job->sess = s;
        job->t_conn = smtp_now();
        job->ti = job->ntargets;            /* no targets: after this, finish */
        msg_info("%s: reusing the connection to %s", job->qid, s->label);
        sess_send(s, S_RSET, smtp.p.rset_ms, "RSET\r\n");
        return true;
    }
    return false;
}

/* smtp_sess_detach - the job goes away (qmgr hung up): drop the session */
void smtp_sess_detach(smtp_sess_t *sess)
{
    if (sess->job)
        sess->job->sess = NULL;
    sess->job = NULL;
    sess_free(sess);
}

/* smtp_cache_flush - QUIT every idle session (retirement) */
void smtp_cache_flush(void)
{
    while (smtp.cache) {
        smtp_sess_t *s = smtp.cache;
        if (s->timer)
            event_timer_cancel(smtp.loop, &s->timer);
        sess_quit(s);
    }
}
