/*
 * stream - buffered non-blocking stream over a switchable transport.
 * Every socket operation happens from the loop's fd handler; the user
 * only queues output, asks for input and pulls lines, so a protocol
 * state machine never sees EAGAIN. Both directions are attempted on
 * every wake-up: a TLS read may need the socket writable and a TLS write
 * readable, and a spurious attempt just says "want" again.
 */
#include "stream/stream.h"
#include "tls/tls.h"
#include "util/buf.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_READ_AHEAD (16 * 1024)

struct stream {
    event_loop_t *loop;
    int fd;
    size_t line_limit;
    stream_fn *fn;
    void *ctx;
    const stream_ops_t *ops;
    void *tctx;
    struct tls_conn *tls;
    buf_t in, out;
    size_t in_consumed;         /* the line handed out last */
    bool want_read, eof, rerr, werr, handshaking, dead;
    int in_cb;
    stream_io_t last_read, last_write, hs_want;
    unsigned mask;
    event_timer_t *deadline, *kick;
    char err[512];
};

/* plain_read - read(2) as a transport */
static stream_io_t plain_read(void *tctx, int fd, void *buf, size_t size, size_t *n_r,
                              const char **why_r)
{
    ssize_t n = read(fd, buf, size);

    (void)tctx;
    if (n > 0) {
        *n_r = (size_t)n;
        return STREAM_IO_DONE;
    }
    if (n == 0)
        return STREAM_IO_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return STREAM_IO_WANT_READ;
    *why_r = strerror(errno);
    return STREAM_IO_ERROR;
}

/* plain_write - send(2) without SIGPIPE as a transport */
static stream_io_t plain_write(void *tctx, int fd, const void *buf, size_t len, size_t *n_r,
                               const char **why_r)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

    (void)tctx;
    if (n < 0 && errno == ENOTSOCK)
        n = write(fd, buf, len);
    if (n >= 0) {
        *n_r = (size_t)n;
        return STREAM_IO_DONE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return STREAM_IO_WANT_WRITE;
    *why_r = strerror(errno);
    return STREAM_IO_ERROR;
}

static const stream_ops_t plain_ops = {
    .name = "plain", .read = plain_read, .write = plain_write,
};

/* tls_io_map - lib/tls results as stream results */
static stream_io_t tls_io_map(tls_io_t r)
{
    switch (r) {
    case TLS_IO_DONE: return STREAM_IO_DONE;
    case TLS_IO_WANT_READ: return STREAM_IO_WANT_READ;
    case TLS_IO_WANT_WRITE: return STREAM_IO_WANT_WRITE;
    case TLS_IO_EOF: return STREAM_IO_EOF;
    default: return STREAM_IO_ERROR;
    }
}

static stream_io_t tlsops_read(void *tctx, int fd, void *buf, size_t size, size_t *n_r,
                               const char **why_r)
{
    (void)fd;
    return tls_io_map(tls_read(tctx, buf, size, n_r, why_r));
}

static stream_io_t tlsops_write(void *tctx, int fd, const void *buf, size_t len, size_t *n_r,
                                const char **why_r)
{
    (void)fd;
    return tls_io_map(tls_write(tctx, buf, len, n_r, why_r));
}

static stream_io_t tlsops_handshake(void *tctx, const char **why_r)
{
    return tls_io_map(tls_handshake(tctx, why_r));
}

static size_t tlsops_pending(void *tctx)
{
    return tls_pending(tctx);
}

static void tlsops_free(void *tctx)
{
    tls_conn_t *tc = tctx;

    tls_conn_free(&tc);
}

static const stream_ops_t tls_ops = {
    .name = "tls", .read = tlsops_read, .write = tlsops_write,
    .handshake = tlsops_handshake, .pending = tlsops_pending, .free = tlsops_free,
};

/* stream_seterr - remember why the stream failed */
static void stream_seterr(stream_t *s, const char *why)
{
    safe_cpy(s->err, sizeof(s->err), why && *why ? why : "unknown error");
}

/* stream_update_mask - watch what the pending work needs */
static void stream_update_mask(stream_t *s)
{
    unsigned mask = 0;

    if (s->dead)
        return;
    if (s->handshaking) {
        mask = s->hs_want == STREAM_IO_WANT_READ ? EVENT_READ : EVENT_WRITE;
    } else if (!s->werr) {
        if (s->out.len)
            mask |= s->last_write == STREAM_IO_WANT_READ ? EVENT_READ : EVENT_WRITE;
        if (s->want_read && !s->eof && !s->rerr)
            mask |= s->last_read == STREAM_IO_WANT_WRITE ? EVENT_WRITE : EVENT_READ;
    }
    if (mask != s->mask) {
        event_fd_mod(s->loop, s->fd, mask);
        s->mask = mask;
    }
}

/* stream_notify - call the user; false when the stream was freed */
static bool stream_notify(stream_t *s, int ev)
{
    s->in_cb++;
    s->fn(s, ev, s->ctx);
    s->in_cb--;
    if (s->dead) {
        if (s->in_cb == 0)
            free(s);
        return false;
    }
    return true;
}

/* stream_flush - write what the transport takes; -1 on error */
static int stream_flush(stream_t *s)
{
    while (s->out.len) {
        const char *why = NULL;
        size_t n = 0;
        stream_io_t r = s->ops->write(s->tctx, s->fd, s->out.data, s->out.len, &n, &why);

        if (r == STREAM_IO_DONE) {
            buf_consume(&s->out, n);
            continue;
        }
        if (r == STREAM_IO_WANT_READ || r == STREAM_IO_WANT_WRITE) {
            s->last_write = r;
            return 0;
        }
        stream_seterr(s, r == STREAM_IO_EOF ? "lost connection" : why);
        s->werr = true;
        return -1;
    }
    s->last_write = STREAM_IO_DONE;
    return 0;
}

/* stream_fill - read what is there, up to the read-ahead; true if
 * something changed (data, EOF or an error) */
static bool stream_fill(stream_t *s)
{
    bool got = false;
    char tmp[STREAM_READ_AHEAD];

    while (!s->eof && !s->rerr) {
        size_t cap = s->line_limit + STREAM_READ_AHEAD, room, n = 0;
        const char *why = NULL;
        stream_io_t r;

        if (s->in.len >= cap)
            break;
        room = cap - s->in.len;
        if (room > sizeof(tmp))
            room = sizeof(tmp);
        r = s->ops->read(s->tctx, s->fd, tmp, room, &n, &why);
        if (r == STREAM_IO_DONE) {
            (void)buf_append(&s->in, tmp, n);
            got = true;
        } else if (r == STREAM_IO_EOF) {
            s->eof = got = true;
        } else if (r == STREAM_IO_ERROR) {
            stream_seterr(s, why);
            s->rerr = got = true;
        } else {
            s->last_read = r;
            break;
        }
    }
    return got;
}

/* stream_has_line - a whole line, EOF or an error is waiting */
static bool stream_has_line(const stream_t *s)
{
    size_t off = s->in_consumed;

    if (s->eof || s->rerr)
        return true;
    if (s->in.len <= off)
        return false;
    return memchr(s->in.data + off, '\n', s->in.len - off) != NULL
        || s->in.len - off > s->line_limit;
}

/* stream_io - the fd handler */
static void stream_io(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    stream_t *s = ctx;
    bool drained = false, readable = false;

    (void)loop;
    (void)fd;
    (void)mask;
    if (s->handshaking) {
        const char *why = NULL;
        stream_io_t r = s->ops->handshake(s->tctx, &why);

        if (r == STREAM_IO_WANT_READ || r == STREAM_IO_WANT_WRITE) {
            s->hs_want = r;
            stream_update_mask(s);
            return;
        }
        s->handshaking = false;
        if (r != STREAM_IO_DONE) {
            stream_seterr(s, why ? why : "TLS handshake failed");
            s->werr = true;
            stream_update_mask(s);
            (void)stream_notify(s, STREAM_EV_ERROR);
            return;
        }
        stream_update_mask(s);
        (void)stream_notify(s, STREAM_EV_HANDSHAKE);
        return;
    }
    if (s->out.len && !s->werr) {
        if (stream_flush(s) < 0) {
            stream_update_mask(s);
            (void)stream_notify(s, STREAM_EV_ERROR);
            return;
        }
        drained = s->out.len == 0;
    }
    if (s->want_read)
        readable = stream_fill(s);
    stream_update_mask(s);
    if (drained && !stream_notify(s, STREAM_EV_DRAINED))
        return;
    if (readable && s->want_read)
        (void)stream_notify(s, STREAM_EV_READ);
}

stream_t *stream_new(event_loop_t *loop, int fd, size_t line_limit, stream_fn *fn, void *ctx)
{
    stream_t *s = xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->fd = fd;
    s->line_limit = line_limit < 64 ? 64 : line_limit;
    s->fn = fn;
    s->ctx = ctx;
    s->ops = &plain_ops;
    buf_init(&s->in, BUF_NOLIMIT);
    buf_init(&s->out, STREAM_OUT_LIMIT);
    if (event_fd_add(loop, fd, 0, stream_io, s) < 0)
        msg_warn("stream: cannot watch fd %d: %m", fd);
    return s;
}

/* stream_free - release now; the struct itself after the callback */
void stream_free(stream_t **sp)
{
    stream_t *s = *sp;

    if (s == NULL)
        return;
    *sp = NULL;
    event_fd_del(s->loop, s->fd);
    close(s->fd);
    if (s->deadline)
        event_timer_cancel(s->loop, &s->deadline);
    if (s->kick)
        event_timer_cancel(s->loop, &s->kick);
    if (s->ops->free && s->tctx)
        s->ops->free(s->tctx);
    buf_free(&s->in);
    buf_free(&s->out);
    s->dead = true;
    if (s->in_cb == 0)
        free(s);
}

int stream_fd(const stream_t *s)
{
    return s->fd;
}

/* stream_kick - deliver READ for input that was already buffered */
static void stream_kick(event_loop_t *loop, void *ctx)
{
    stream_t *s = ctx;

    (void)loop;
    s->kick = NULL;
    if (s->want_read && stream_has_line(s))
        (void)stream_notify(s, STREAM_EV_READ);
}

void stream_want_read(stream_t *s, bool on)
{
    s->want_read = on;
    stream_update_mask(s);
    if (on && s->kick == NULL && stream_has_line(s))
        s->kick = event_timer_add(s->loop, 0, stream_kick, s);
}

/* stream_timeout - the deadline passed */
static void stream_timeout(event_loop_t *loop, void *ctx)
{
    stream_t *s = ctx;

    (void)loop;
    s->deadline = NULL;
    stream_seterr(s, "timeout");
    (void)stream_notify(s, STREAM_EV_TIMEOUT);
}

void stream_set_deadline(stream_t *s, int64_t ms)
{
    if (s->deadline)
        event_timer_cancel(s->loop, &s->deadline);
    if (ms > 0)
        s->deadline = event_timer_add(s->loop, ms, stream_timeout, s);
}

int stream_write(stream_t *s, const void *p, size_t n)
{
    if (buf_append(&s->out, p, n) < 0)
        return -1;
    stream_update_mask(s);
    return 0;
}

int stream_puts(stream_t *s, const char *str)
{
    return stream_write(s, str, strlen(str));
}

int stream_printf(stream_t *s, const char *fmt, ...)
{
    va_list ap;
    int ret;

    va_start(ap, fmt);
    ret = buf_vprintf(&s->out, fmt, ap);
    va_end(ap);
    stream_update_mask(s);
    return ret;
}

size_t stream_out_pending(const stream_t *s)
{
    return s->out.len;
}

int stream_get_line(stream_t *s, const char **line_r, size_t *len_r)
{
    char *nl;
    size_t len;

    if (s->in_consumed) {
        buf_consume(&s->in, s->in_consumed);
        s->in_consumed = 0;
    }
    if ((nl = memchr(s->in.data ? s->in.data : "", '\n', s->in.len)) == NULL) {
        if (s->in.len > s->line_limit) {
            stream_seterr(s, "line too long");
            return -1;
        }
        if (s->rerr)
            return -1;
        if (s->eof) {
            stream_seterr(s, "lost connection");
            return -1;
        }
        return 0;
    }
    len = (size_t)(nl - s->in.data);
    s->in_consumed = len + 1;
    if (len > 0 && s->in.data[len - 1] == '\r')
        len--;
    if (len > s->line_limit) {
        stream_seterr(s, "line too long");
        return -1;
    }
    s->in.data[len] = 0;
    *line_r = s->in.data;
    *len_r = len;
    return 1;
}

int stream_set_ops(stream_t *s, const stream_ops_t *ops, void *tctx, const char **why_r)
{
    if (s->out.len) {
        *why_r = "output pending";
        return -1;
    }
    if (s->in.len > s->in_consumed) {
        *why_r = "unexpected plaintext data before the transport switch";
        return -1;
    }
    buf_reset(&s->in);
    s->in_consumed = 0;
    if (s->ops->free && s->tctx)
        s->ops->free(s->tctx);
    s->ops = ops;
    s->tctx = tctx;
    s->last_read = s->last_write = STREAM_IO_DONE;
    s->handshaking = ops->handshake != NULL;
    s->hs_want = STREAM_IO_WANT_WRITE;
    stream_update_mask(s);
    return 0;
}

int stream_start_tls(stream_t *s, struct tls_conn *tc, const char **why_r)
{
    if (stream_set_ops(s, &tls_ops, tc, why_r) < 0)
        return -1;
    s->tls = tc;
    return 0;
}

struct tls_conn *stream_tls(const stream_t *s)
{
    return s->tls;
}

const char *stream_error(const stream_t *s)
{
    return s->err[0] ? s->err : "unknown error";
}
