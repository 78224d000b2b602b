/*
 * smtpd_tls.c - TLS in smtpd: STARTTLS (RFC 3207), wrapper mode for
 * port 465 (RFC 8314), and the session's transport.
 *
 * The transport is a switch inside the session: smtpd_io_read and
 * smtpd_io_write use read(2)/send(2) until a TLS conn exists, and
 * lib/tls after that. The input loop, pipelining and group commit in
 * smtpd_session.c do not change.
 *
 * STARTTLS: the 220 reply is queued and the input loop stops at once.
 * When the 220 has been written, every byte already read (plaintext
 * the client pipelined after STARTTLS: the CVE-2011-0411 injection) is
 * thrown away, and the handshake starts on the socket. Until the
 * handshake is done, nothing is read into the session and nothing is
 * written but the handshake itself; it has its own deadline
 * (smtpd_starttls_timeout). Afterwards the session forgets HELO, the
 * transaction and any AUTH, as RFC 3207 4.2 requires. A failed
 * handshake ends that session only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "smtpd.h"
#include "util/msg.h"
#include "util/xmalloc.h"

/* smtpd_tls_init - parse the TLS settings and load the certificate
 * (pre_init: still privileged and outside the chroot) */
void smtpd_tls_init(smtpd_settings_t *set, conf_t *conf)
{
    const char *level = conf_str(conf, "smtpd_tls_security_level");
    const char *cert = conf_str(conf, "smtpd_tls_cert_file");
    const char *key = conf_str(conf, "smtpd_tls_key_file");
    tls_ctx_opts_t opts = { 0 };
    const char *why;

    set->tls_wrapper = conf_bool(conf, "smtpd_tls_wrappermode");
    set->tls_auth_only = conf_bool(conf, "smtpd_tls_auth_only");
    set->tls_received_header = conf_bool(conf, "smtpd_tls_received_header");
    set->tls_loglevel = (int)conf_int(conf, "smtpd_tls_loglevel");
    set->starttls_timeout_ms = conf_int(conf, "smtpd_starttls_timeout") * 1000;
    /* Postfix's empty default means none. */
    if (*level == 0)
        set->tls_level = TLS_LEV_NONE;
    else if (tls_level_parse(level, &set->tls_level) < 0
             || (set->tls_level != TLS_LEV_NONE && set->tls_level != TLS_LEV_MAY
                 && set->tls_level != TLS_LEV_ENCRYPT))
        msg_fatal("smtpd_tls_security_level: \"%s\": expected none, may or encrypt", level);
    if (set->tls_level == TLS_LEV_NONE && !set->tls_wrapper)
        return;
    /* A server that was told to offer or require TLS but cannot is a
     * configuration error: refuse to start rather than run without. */
    if (*cert == 0)
        msg_fatal("%s requires smtpd_tls_cert_file",
                  set->tls_wrapper ? "smtpd_tls_wrappermode = yes"
                  : set->tls_level == TLS_LEV_MAY ? "smtpd_tls_security_level = may"
                  : "smtpd_tls_security_level = encrypt");
    opts.cert_file = cert;
    opts.key_file = *key ? key : cert;
    opts.protocols = conf_str(conf, "smtpd_tls_protocols");
    opts.ciphers = conf_str(conf, "smtpd_tls_ciphers");
    if ((set->tls_ctx = tls_ctx_server_new(&opts, &why)) == NULL)
        msg_fatal("cannot set up the TLS server: %s", why);
    /* In wrapper mode every session is encrypted before it says a word. */
    if (set->tls_wrapper)
        set->tls_level = TLS_LEV_ENCRYPT;
}

/* smtpd_tls_required - encrypt level and still in plaintext: the
 * command gets "530 5.7.0 Must issue a STARTTLS command first" */
bool smtpd_tls_required(smtpd_session_t *s)
{
    if (s->srv->set.tls_level != TLS_LEV_ENCRYPT || s->tls_active)
        return false;
    smtpd_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
    return true;
}

/* smtpd_cmd_starttls - STARTTLS: 220, then the switch (see above) */
int smtpd_cmd_starttls(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    if (s->srv->set.tls_ctx == NULL) {
        smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
        return -1;
    }
    if (cl->arg_len) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
        return -1;
    }
    if (s->tls) {
        smtpd_reply(s, 554, "5.5.1", "Error: TLS already active");
        return -1;
    }
    if (s->have_mail) {
        smtpd_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
        return -1;
    }
    smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
    s->starttls_pending = true;
    return 0;
}

/* smtpd_tls_begin - the 220 is out (or wrapper mode): start the handshake */
void smtpd_tls_begin(smtpd_session_t *s)
{
    const char *why;

    s->starttls_pending = false;
    if (s->in.len > 0) {
        /* Never commands: they were sent before the client could know
         * the TLS session, so anyone on the path could have put them
         * there. */
        msg_info("%s: discarding %zu bytes of plaintext input pipelined after STARTTLS",
                 s->client_desc, s->in.len);
        buf_reset(&s->in);
    }
    s->skip_line = false;
    s->tls = tls_conn_server_new(s->srv->set.tls_ctx, s->fd, s->client_name, s->client_addr,
                                 &why);
    if (s->tls == NULL) {
        msg_warn("%s: cannot start TLS: %s", s->client_desc, why);
        s->dead = true;
        return;
    }
    s->tls_handshaking = true;
    s->tls_hs_want_write = false;
    s->tls_deadline_ms = event_now_ms(s->srv->loop) + s->srv->set.starttls_timeout_ms;
    smtpd_session_rearm(s);
    /* RFC 3207 4.2: forget what the client said in plaintext. */
    free(s->helo);
    s->helo = NULL;
    s->esmtp = false;
    smtpd_transaction_reset(s);
    smtpd_auth_reset(s);
    smtpd_tls_handshake(s);
}

/* smtpd_tls_established - log, remember the cipher for Received:, and
 * in wrapper mode greet */
static void smtpd_tls_established(smtpd_session_t *s)
{
    buf_t desc;
    const char *bits;

    s->tls_handshaking = false;
    s->tls_active = true;
    s->activity_ms = event_now_ms(s->srv->loop);
    buf_init(&desc, BUF_NOLIMIT);
    (void)tls_conn_describe(s->tls, &desc);
    if (s->srv->set.tls_loglevel >= 1)
        msg_info("%s", buf_cstr(&desc));
    /* "(256/256 bits)" is the last parenthesis of the log line. */
    bits = strrchr(buf_cstr(&desc), '(');
    s->tls_info = xasprintf("%s with cipher %s%s%s", tls_conn_protocol(s->tls),
                            tls_conn_cipher(s->tls), bits ? " " : "", bits ? bits : "");
    buf_free(&desc);
    if (s->srv->set.tls_wrapper && s->over_limit)
        smtpd_session_refuse(s);
    else if (s->srv->set.tls_wrapper)
        smtpd_reply(s, 220, NULL, "%s", s->srv->set.banner);
}

/* smtpd_tls_handshake - one step; the session's io handler calls it
 * on every readiness event while handshaking */
void smtpd_tls_handshake(smtpd_session_t *s)
{
    const char *why = NULL;

    switch (tls_handshake(s->tls, &why)) {
    case TLS_IO_DONE:
        smtpd_tls_established(s);
        break;
    case TLS_IO_WANT_READ:
        s->tls_hs_want_write = false;
        break;
    case TLS_IO_WANT_WRITE:
        s->tls_hs_want_write = true;
        break;
    default:
        /* Postfix's shape; the session ends, nothing else is affected. */
        msg_info("SSL_accept error from %s: %s", s->client_desc, why ? why : "lost connection");
        s->tls_handshaking = false;
        s->eof = true;
        s->dead = true;
        break;
    }
}

/* smtpd_io_read - 1 bytes read, 0 try later, -1 end of input */
int smtpd_io_read(smtpd_session_t *s, void *buf, size_t size, size_t *n_r)
{
    const char *why = NULL;

    *n_r = 0;
    if (s->tls == NULL) {
        ssize_t n = read(s->fd, buf, size);
        if (n > 0) {
            *n_r = (size_t)n;
            return 1;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        return -1;
    }
    s->tls_rd_want_write = false;
    switch (tls_read(s->tls, buf, size, n_r, &why)) {
    case TLS_IO_DONE:
        return 1;
    case TLS_IO_WANT_WRITE:
        s->tls_rd_want_write = true;
        return 0;
    case TLS_IO_WANT_READ:
        return 0;
    case TLS_IO_EOF:
        return -1;
    default:
        msg_info("%s: %s", s->client_desc, why ? why : "TLS read failed");
        return -1;
    }
}

/* smtpd_io_write - 1 bytes written, 0 try later, -1 the connection is gone */
int smtpd_io_write(smtpd_session_t *s, const void *buf, size_t len, size_t *n_r)
{
    const char *why = NULL;

    *n_r = 0;
    if (s->tls == NULL) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(s->fd, buf, len);
        if (n >= 0) {
            *n_r = (size_t)n;
            return 1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return -1;
    }
    s->tls_wr_want_read = false;
    switch (tls_write(s->tls, buf, len, n_r, &why)) {
    case TLS_IO_DONE:
        return 1;
    case TLS_IO_WANT_READ:
        s->tls_wr_want_read = true;
        return 0;
    case TLS_IO_WANT_WRITE:
        return 0;
    default:
        return -1;
    }
}

/* smtpd_tls_close - send close_notify (best effort) and free the conn */
void smtpd_tls_close(smtpd_session_t *s)
{
    const char *why;

    if (s->tls && s->tls_active && !s->dead)
        (void)tls_shutdown(s->tls, &why);
    tls_conn_free(&s->tls);
    xfreep(&s->tls_info);
    s->tls_active = s->tls_handshaking = false;
}
