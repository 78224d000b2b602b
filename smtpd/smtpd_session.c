/*
 * smtpd_session.c - one SMTP connection: buffers, the input loop,
 * deadlines, output flushing and the end of a session.
 *
 * Input is read into a bounded buffer and handled in order by
 * smtpd_session_process(): command lines go to the command table, DATA
 * and BDAT bytes to the content code. Replies collect in the output
 * buffer and are written when the input buffer has no complete command
 * left, or when the session must wait for the client or a timer (group
 * commit, error tarpit): that is RFC 2920 pipelining with "flush before
 * blocking". A verify lookup is not a wait for the client: the replies
 * are held until it answers, so MAIL, RCPT and DATA replies to one
 * pipelined batch leave in one packet. While a session waits it does
 * not read, so its replies stay in command order.
 * Reads and writes go through smtpd_io_read/smtpd_io_write
 * (smtpd_tls.c), which are plain socket calls or lib/tls once STARTTLS
 * (or wrapper mode) switched the transport; while the handshake runs,
 * readiness events drive it instead of the input loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "smtp/smtp_reply.h"
#include "smtpd.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SMTPD_READ_CHUNK (64 * 1024)
#define SMTPD_OUT_HIGH (256 * 1024)     /* stop reading commands above this */
#define SMTPD_OUT_LIMIT (1024 * 1024)   /* a session that exceeds it is dropped */
#define SMTPD_HDR_LINE_MAX 4096
#define SMTPD_AUTH_LINE_MAX 12288       /* RFC 4954 4: AUTH lines may be this long */

static const char *const smtpd_cmd_names[SMTPD_C_COUNT] = {
    "ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy", "help", "quit",
    "unknown",
};

static void smtpd_session_io(event_loop_t *loop, int fd, unsigned mask, void *ctx);
static void smtpd_session_timer(event_loop_t *loop, void *ctx);
static bool smtpd_session_limited(const smtpd_session_t *s);
static void smtpd_session_greet(smtpd_session_t *s);
static void smtpd_session_admitted(void *ctx, const smtpd_verify_result_t *res);

/* smtpd_peer - the client's address as text ("unknown" never happens
 * for TCP; a UNIX-domain client is the local host) */
static char *smtpd_peer(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[INET6_ADDRSTRLEN];

    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return xstrdup("unknown");
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
        return xstrdup(text);
    }
    if (ss.ss_family == AF_INET6) {
        struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        /* An IPv4 client on a dual-stack socket is logged as IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, a->s6_addr + 12, text, sizeof(text));
        else
            inet_ntop(AF_INET6, a, text, sizeof(text));
        return xstrdup(text);
    }
    return xstrdup("127.0.0.1");
}

/* smtpd_session_new - a new connection: log, greet, start reading */
void smtpd_session_new(smtpd_server_t *srv, int fd)
{
    smtpd_session_t *s = xcalloc(1, sizeof(*s));

    s->srv = srv;
    s->fd = fd;
    s->client_addr = smtpd_peer(fd);
    s->client_name = xstrdup("unknown");
    s->client_desc = xasprintf("%s[%s]", s->client_name, s->client_addr);
    s->client_trusted = smtpd_cidr_match(&srv->set.mynetworks, s->client_addr);
    buf_init(&s->in, srv->set.line_limit + SMTPD_READ_CHUNK);
    buf_init(&s->out, SMTPD_OUT_LIMIT);
    buf_init(&s->hdr_line, SMTPD_HDR_LINE_MAX);
    smtp_mail_init(&s->mail);
    smtp_rcpt_init(&s->rcpt);
    s->start_ms = s->activity_ms = event_now_ms(srv->loop);
    s->last_cmd = "CONNECT";
    srv->nsessions++;
    msg_info("connect from %s", s->client_desc);
    if (event_fd_add(srv->loop, fd, EVENT_READ, smtpd_session_io, s) < 0) {
        msg_warn("cannot watch the connection from %s: %m", s->client_desc);
        s->dead = true;
    }
    s->watch = EVENT_READ;
    s->reading = true;
    s->timer = event_timer_add(srv->loop, srv->set.timeout_ms, smtpd_session_timer, s);
    if (smtpd_session_limited(s)) {
        /* The answer may come at once: the session must not be resumed
         * (and maybe freed) from inside the request. */
        s->wait_anvil = true;
        s->in_process = true;
        smtpd_verify_connect(srv->verify, s->client_addr, smtpd_session_admitted, s);
        s->in_process = false;
    } else {
        smtpd_session_greet(s);
    }
    smtpd_session_resume(s);
}

/* smtpd_session_limited - do the per-client connection limits apply? */
static bool smtpd_session_limited(const smtpd_session_t *s)
{
    const smtpd_settings_t *set = &s->srv->set;

    return (set->conn_count_limit > 0 || set->conn_rate_limit > 0)
        && !smtpd_cidr_match(&set->limit_exceptions, s->client_addr);
}

/* smtpd_session_greet - the 220, or on the TLS wrapper port the
 * handshake that comes before it */
static void smtpd_session_greet(smtpd_session_t *s)
{
    char c;

    if (s->srv->set.tls_wrapper) {
        /* RFC 8314: TLS first; the greeting follows the handshake. */
        if (!s->dead)
            smtpd_tls_begin(s);
        return;
    }
    /* An early talker sends before seeing the greeting (RFC 5321 4.3.1
     * says it must wait). Logged as Postfix does; not rejected. */
    if (recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
        msg_info("improper command pipelining after CONNECT from %s", s->client_desc);
    smtpd_reply(s, 220, NULL, "%s", s->srv->set.banner);
}

/* smtpd_session_admitted - the verify service counted the session: over
 * a limit it gets 421 and is closed, as Postfix's anvil does; when the
 * service cannot say, the client is served (the limits are a defence
 * against floods, not a reason to refuse mail when a helper is down) */
static void smtpd_session_admitted(void *ctx, const smtpd_verify_result_t *res)
{
    smtpd_session_t *s = ctx;
    const smtpd_settings_t *set = &s->srv->set;
    const char *what = NULL;
    uint64_t n = 0;

    s->wait_anvil = false;
    if (strcmp(res->cls, "ok") == 0) {
        s->anvil_counted = true;
        if (set->conn_count_limit > 0 && res->count > set->conn_count_limit)
            what = "concurrency", n = res->count;
        else if (set->conn_rate_limit > 0 && res->rate > set->conn_rate_limit)
            what = "rate", n = res->rate;
    }
    if (what) {
        msg_warn("Connection %s limit exceeded: %llu from %s for service %s", what,
                 (unsigned long long)n, s->client_desc, service_name(s->srv->svc));
        s->over_limit = true;
    }
    /* On the TLS wrapper port the 421 follows the handshake, as the 220
     * would: a client cannot read a plaintext reply there. */
    if (s->over_limit && !set->tls_wrapper)
        smtpd_session_refuse(s);
    else
        smtpd_session_greet(s);
    smtpd_session_wake(s);
}

/* smtpd_session_refuse - the 421 instead of the greeting, then close */
void smtpd_session_refuse(smtpd_session_t *s)
{
    smtpd_reply(s, 421, "4.7.0", "%s Error: too many connections from %s",
                s->srv->set.myhostname, s->client_addr);
    s->quit = true;
}

/* smtpd_reply - queue one reply; 4xx/5xx count as errors (tarpit, limits) */
void smtpd_reply(smtpd_session_t *s, int code, const char *dsn, const char *fmt, ...)
{
    buf_t text;
    va_list ap;

    buf_init(&text, 4096);
    va_start(ap, fmt);
    (void)buf_vprintf(&text, fmt, ap);
    va_end(ap);
    if (smtp_reply(&s->out, code, dsn, buf_cstr(&text)) < 0) {
        /* The client does not read its replies: drop it. */
        msg_warn("%s: output limit exceeded, disconnecting", s->client_desc);
        s->dead = true;
    }
    buf_free(&text);
    if (code >= 400 && code != 421) {
        s->error_count++;
        if (s->error_count > s->srv->set.soft_error_limit && s->srv->set.error_sleep_ms > 0)
            smtpd_session_sleep_after_error(s);
    }
}

/* smtpd_reject_log - "QID: reject: CMD from host[ip]: CODE DSN TEXT; from=<> ..." */
void smtpd_reject_log(smtpd_session_t *s, const char *cmd, int code, const char *dsn,
                      const char *text, const char *rcpt)
{
    buf_t to;

    buf_init(&to, BUF_NOLIMIT);
    if (rcpt)
        buf_printf(&to, " to=<%s>", rcpt);
    msg_info("%s: reject: %s from %s: %d %s %s;%s%s%s%s proto=%s helo=<%s>",
             s->qid[0] ? s->qid : "NOQUEUE", cmd, s->client_desc, code, dsn, text,
             s->have_mail ? " from=<" : "", s->have_mail ? buf_cstr(&s->mail.addr) : "",
             s->have_mail ? ">" : "", buf_cstr(&to), s->esmtp ? "ESMTP" : "SMTP",
             s->helo ? s->helo : "");
    buf_free(&to);
}

/* smtpd_transaction_reset - forget MAIL/RCPT/content; remove any temp file */
void smtpd_transaction_reset(smtpd_session_t *s)
{
    smtpd_enqueue_abort(s);
    s->have_mail = false;
    for (size_t i = 0; i < s->nrcpts; i++)
        free(s->rcpts[i]);
    xfreep(&s->rcpts);
    s->nrcpts = 0;
    s->content_started = s->used_bdat = false;
    s->bare_lf = s->bare_cr = s->too_big = s->write_error = false;
    s->content_bytes = 0;
    s->dstate = SMTPD_D_BOL;
    s->in_header = true;
    s->hdr_in_msgid = false;
    buf_reset(&s->hdr_line);
    xfreep(&s->message_id);
    s->bdat_remaining = 0;
    s->bdat_last = s->bdat_discard = false;
    s->bdat_err_code = 0;
}

/* smtpd_sleep_done - the error tarpit is over */
static void smtpd_sleep_done(event_loop_t *loop, void *ctx)
{
    smtpd_session_t *s = ctx;

    s->sleep_timer = NULL;
    smtpd_session_wake(s);
}

/* smtpd_session_sleep - pause ms before reading the next command */
void smtpd_session_sleep(smtpd_session_t *s, int64_t ms)
{
    if (s->sleep_timer || s->dead)
        return;
    s->sleep_timer = event_timer_add(s->srv->loop, ms, smtpd_sleep_done, s);
}

/* smtpd_session_sleep_after_error - Postfix's smtpd_error_sleep_time:
 * past the soft error limit, pause before reading the next command */
void smtpd_session_sleep_after_error(smtpd_session_t *s)
{
    smtpd_session_sleep(s, s->srv->set.error_sleep_ms);
}

/* smtpd_line_limit - line_length_limit, or RFC 4954's 12288 for AUTH
 * and SASL response lines (the input buffer holds line_limit + 64 KiB) */
static size_t smtpd_line_limit(const smtpd_session_t *s)
{
    size_t limit = s->srv->set.line_limit;

    if (limit < SMTPD_AUTH_LINE_MAX && s->srv->set.sasl_enable
        && (s->state == SMTPD_ST_AUTH
            || (s->in.len >= 5 && strncasecmp(s->in.data, "AUTH ", 5) == 0)))
        return SMTPD_AUTH_LINE_MAX;
    return limit;
}

/* smtpd_session_process - handle buffered input in order until blocked */
static void smtpd_session_process(smtpd_session_t *s)
{
    const smtpd_settings_t *set = &s->srv->set;

    s->in_process = true;
    /* STARTTLS stops the loop: what follows it in the buffer is
     * discarded, never executed (smtpd_tls.c). */
    while (!s->dead && !s->quit && !smtpd_session_waiting(s) && !s->starttls_pending
           && !s->tls_handshaking && s->out.len <= SMTPD_OUT_HIGH) {
        if (s->state == SMTPD_ST_BDAT) {
            size_t n;
            if (s->bdat_remaining == 0) {
                smtpd_bdat_chunk_done(s);
                continue;
            }
            if (s->in.len == 0)
                break;
            n = s->in.len < s->bdat_remaining ? s->in.len : (size_t)s->bdat_remaining;
            smtpd_bdat_input(s, s->in.data, n);
            buf_consume(&s->in, n);
            s->bdat_remaining -= n;
            continue;
        }
        if (s->state == SMTPD_ST_DATA) {
            bool done;
            size_t n;
            if (s->in.len == 0)
                break;
            n = smtpd_data_input(s, s->in.data, s->in.len, &done);
            buf_consume(&s->in, n);
            if (done)
                smtpd_data_done(s);
            continue;
        }
        if (s->error_count >= set->hard_error_limit) {
            msg_info("too many errors after %s from %s", s->last_cmd, s->client_desc);
            smtpd_reply(s, 421, "4.7.0", "%s Error: too many errors", set->myhostname);
            s->quit = true;
            break;
        }
        {
            char *nl = s->in.len ? memchr(s->in.data, '\n', s->in.len) : NULL;
            size_t len;

            if (s->skip_line) {
                if (nl == NULL) {
                    buf_reset(&s->in);
                    break;
                }
                buf_consume(&s->in, (size_t)(nl - s->in.data) + 1);
                s->skip_line = false;
                continue;
            }
            if (nl == NULL) {
                if (s->in.len > smtpd_line_limit(s)) {
                    smtpd_auth_abort(s);
                    smtpd_reply(s, 500, "5.5.2", "Error: line too long");
                    buf_reset(&s->in);
                    s->skip_line = true;
                    continue;
                }
                break;
            }
            len = (size_t)(nl - s->in.data);
            if (len > 0 && s->in.data[len - 1] == '\r')
                len--;
            if (len > smtpd_line_limit(s)) {
                smtpd_auth_abort(s);
                smtpd_reply(s, 500, "5.5.2", "Error: line too long");
            } else if (s->state == SMTPD_ST_AUTH) {
                smtpd_auth_input(s, s->in.data, len);
            } else {
                smtpd_cmd_dispatch(s, s->in.data, len);
            }
            buf_consume(&s->in, (size_t)(nl - s->in.data) + 1);
        }
    }
    s->in_process = false;
}

/* smtpd_session_flush - write what the socket takes */
static void smtpd_session_flush(smtpd_session_t *s)
{
    if (s->tls_handshaking)
        return;
    while (s->out.len > 0) {
        size_t n;
        int r = smtpd_io_write(s, s->out.data, s->out.len, &n);

        if (r > 0 && n > 0) {
            buf_consume(&s->out, n);
            s->activity_ms = event_now_ms(s->srv->loop);
        } else {
            if (r < 0) {
                if (!s->quit)
                    msg_info("lost connection after %s from %s", s->last_cmd, s->client_desc);
                s->eof = true;
                s->dead = true;
                buf_reset(&s->out);
            }
            return;
        }
    }
}

static void smtpd_session_fill(smtpd_session_t *s);

/* smtpd_session_kick - read what TLS already decrypted (epoll cannot
 * report it: the bytes left the socket) */
static void smtpd_session_kick(event_loop_t *loop, void *ctx)
{
    smtpd_session_t *s = ctx;

    s->kick_timer = NULL;
    if (s->reading)
        smtpd_session_fill(s);
    smtpd_session_resume(s);
}

/* smtpd_session_watch - read only when we can use the input */
static void smtpd_session_watch(smtpd_session_t *s)
{
    unsigned mask = 0;

    if (s->tls_handshaking) {
        s->reading = false;
        mask = s->tls_hs_want_write ? EVENT_WRITE : EVENT_READ;
        if (mask != s->watch) {
            event_fd_mod(s->srv->loop, s->fd, mask);
            s->watch = mask;
        }
        return;
    }
    s->reading = !s->eof && !s->quit && !smtpd_session_waiting(s) && s->in.len < s->in.limit
        && s->out.len <= SMTPD_OUT_HIGH && !s->starttls_pending;
    if (s->reading)
        mask |= s->tls_rd_want_write ? EVENT_WRITE : EVENT_READ;
    if (s->out.len > 0 && !s->wait_verify)     /* held replies: see above */
        mask |= s->tls_wr_want_read ? EVENT_READ : EVENT_WRITE;
    if (s->reading && s->tls && tls_pending(s->tls) > 0 && s->kick_timer == NULL)
        s->kick_timer = event_timer_add(s->srv->loop, 0, smtpd_session_kick, s);
    if (mask != s->watch) {
        event_fd_mod(s->srv->loop, s->fd, mask);
        s->watch = mask;
    }
}

/* smtpd_session_free - log the end, release everything */
static void smtpd_session_free(smtpd_session_t *s)
{
    smtpd_server_t *srv = s->srv;
    buf_t line;
    unsigned ok = 0, total = 0;

    if (s->eof && !s->quit)
        msg_info("lost connection after %s from %s", s->last_cmd, s->client_desc);
    buf_init(&line, BUF_NOLIMIT);
    for (int i = 0; i < SMTPD_C_COUNT; i++) {
        if (s->cmd_total[i] == 0)
            continue;
        ok += s->cmd_ok[i];
        total += s->cmd_total[i];
        if (s->cmd_ok[i] == s->cmd_total[i])
            buf_printf(&line, " %s=%u", smtpd_cmd_names[i], s->cmd_ok[i]);
        else
            buf_printf(&line, " %s=%u/%u", smtpd_cmd_names[i], s->cmd_ok[i], s->cmd_total[i]);
    }
    if (ok == total)
        buf_printf(&line, " commands=%u", total);
    else
        buf_printf(&line, " commands=%u/%u", ok, total);
    msg_info("disconnect from %s%s", s->client_desc, buf_cstr(&line));
    buf_free(&line);

    smtpd_verify_cancel(srv->verify, s);
    if (s->anvil_counted)
        smtpd_verify_disconnect(srv->verify, s->client_addr);
    event_timer_cancel(srv->loop, &s->timer);
    event_timer_cancel(srv->loop, &s->sleep_timer);
    event_timer_cancel(srv->loop, &s->kick_timer);
    event_fd_del(srv->loop, s->fd);
    smtpd_tls_close(s);
    close(s->fd);
    smtpd_transaction_reset(s);
    smtpd_auth_reset(s);
    smtp_mail_free(&s->mail);
    smtp_rcpt_free(&s->rcpt);
    buf_free(&s->in);
    buf_free(&s->out);
    buf_free(&s->hdr_line);
    free(s->helo);
    free(s->client_addr);
    free(s->client_name);
    free(s->client_desc);
    free(s);
    srv->nsessions--;
    service_client_done(srv->svc);
}

/* smtpd_session_resume - process, flush, then close or re-arm (only
 * from top-level event handlers: it may free s) */
void smtpd_session_resume(smtpd_session_t *s)
{
    if (!s->dead)
        smtpd_session_process(s);
    if (!s->wait_verify || s->dead)
        smtpd_session_flush(s);
    /* The 220 to STARTTLS is out: switch the transport now, before
     * anything more is read. */
    if (s->starttls_pending && s->out.len == 0 && !s->dead)
        smtpd_tls_begin(s);
    /* A parked session's queue file is being committed (by the commit
     * thread, or it is on the commit list): it is freed only after the
     * commit has answered it (smtpd_enqueue.c). */
    if (!s->parked && (s->dead || (s->quit && s->out.len == 0)
                       || (s->eof && !smtpd_session_waiting(s)))) {
        smtpd_session_free(s);
        return;
    }
    smtpd_session_watch(s);
}

/* smtpd_session_waiting - is an asynchronous step still running?
 * Each kind of wait has its own flag, so that one finishing cannot end
 * another (a tarpit timer must not release a session whose RCPT is
 * still being verified). */
bool smtpd_session_waiting(const smtpd_session_t *s)
{
    return s->wait_verify || s->wait_auth || s->wait_anvil || s->parked || s->sleep_timer != NULL;
}

/* smtpd_session_wake - an asynchronous step finished: go on if nothing
 * else holds the session (never re-entered from inside the input loop) */
void smtpd_session_wake(smtpd_session_t *s)
{
    if (!s->in_process)
        smtpd_session_resume(s);
}

/* smtpd_session_fill - read what the transport has, up to the buffer
 * limit (over TLS, also the rest of a record OpenSSL already holds) */
static void smtpd_session_fill(smtpd_session_t *s)
{
    static char chunk[SMTPD_READ_CHUNK];

    do {
        size_t room = s->in.limit - s->in.len, n;
        int r;

        if (room == 0)
            break;
        if (room > sizeof(chunk))
            room = sizeof(chunk);
        r = smtpd_io_read(s, chunk, room, &n);
        if (r > 0 && n > 0) {
            buf_append(&s->in, chunk, n);
            s->activity_ms = event_now_ms(s->srv->loop);
        } else {
            if (r < 0 || (r > 0 && n == 0))
                s->eof = true;
            break;
        }
    } while (s->tls && tls_pending(s->tls) > 0);
}

/* smtpd_session_io - socket readiness */
static void smtpd_session_io(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    smtpd_session_t *s = ctx;

    if (s->tls_handshaking) {
        smtpd_tls_handshake(s);
    } else if (s->reading && ((mask & (EVENT_READ | EVENT_ERROR))
                              || (s->tls_rd_want_write && (mask & EVENT_WRITE)))) {
        smtpd_session_fill(s);
    } else if ((mask & EVENT_ERROR) && !s->parked) {
        /* Hang-up while we do not read (waiting for verify or in the
         * tarpit): epoll keeps reporting it, so end the session now. */
        s->eof = true;
        s->dead = true;
    } else if (mask & EVENT_ERROR) {
        /* Hang-up while the message is being committed: stop watching
         * (epoll would report it on every turn until the commit ends);
         * the session ends when the commit has answered it. */
        s->eof = true;
        event_fd_del(loop, fd);
    }
    smtpd_session_resume(s);
}

/* smtpd_session_rearm - the deadline changed (a TLS handshake began) */
void smtpd_session_rearm(smtpd_session_t *s)
{
    event_timer_cancel(s->srv->loop, &s->timer);
    s->timer = event_timer_add(s->srv->loop, 0, smtpd_session_timer, s);
}

/* smtpd_session_timer - enforce smtpd_timeout, smtpd_starttls_timeout
 * and the session limit */
static void smtpd_session_timer(event_loop_t *loop, void *ctx)
{
    smtpd_session_t *s = ctx;
    const smtpd_settings_t *set = &s->srv->set;
    int64_t now = event_now_ms(loop);
    int64_t idle_end = s->tls_handshaking ? s->tls_deadline_ms : s->activity_ms + set->timeout_ms;
    int64_t session_end = s->start_ms + set->session_limit_ms;
    int64_t deadline = idle_end < session_end ? idle_end : session_end;

    s->timer = NULL;
    /* A message being committed is never cut off: the commit takes
     * milliseconds, so this wait is short. */
    if (s->parked) {
        s->timer = event_timer_add(loop, 1000, smtpd_session_timer, s);
        return;
    }
    if (now < deadline) {
        s->timer = event_timer_add(loop, deadline - now, smtpd_session_timer, s);
        return;
    }
    msg_info("timeout after %s from %s", s->last_cmd, s->client_desc);
    buf_reset(&s->out);
    /* In the middle of a handshake there is no channel for a reply. */
    if (!s->tls_handshaking) {
        smtpd_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", set->myhostname);
        smtpd_session_flush(s);
    }
    s->quit = true;
    s->dead = true;
    smtpd_session_resume(s);
}
