/* ipc_conn - event-driven IPC connection: framed input, queued output */
#include "ipc/ipc_int.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define IPC_CONN_BURST 64           /* frames handled per wake-up */
#define IPC_CONN_COMPACT 65536      /* compact output once this much is sent */

/* A descriptor to send with the frame that starts at offset off in out. */
typedef struct ipc_outfd {
    size_t off;
    int fd;
} ipc_outfd_t;

/*
 * Lifetime: a user callback may free the conn. Every entry from the loop
 * holds busy; ipc_conn_free only marks a busy conn 'freed', and the
 * entry destroys it on the way out. 'closed' means on_close has been
 * called (or the owner freed it): no more callbacks, no more I/O.
 */
struct ipc_conn {
    event_loop_t *loop;
    int fd;
    ipc_on_msg_fn *on_msg;
    ipc_on_close_fn *on_close;
    void *ctx;
    unsigned char hdr[IPC_HDR_LEN];
    size_t hdr_have;
    uint32_t want;                  /* payload length once hdr is complete */
    buf_t in;                       /* payload of the frame being read */
    int in_fd;                      /* descriptor that came with that frame */
    buf_t out;
    size_t out_head;                /* bytes of out already written */
    ipc_outfd_t *ofds;
    size_t nofds;
    const char *error;              /* deferred failure, reported by the loop */
    char error_text[160];           /* its text: ipc_whyf's buffer is shared */
    unsigned watch;
    int busy;
    bool closed;
    bool freed;
    char *hello_proto;              /* the first frame must be this HELLO */
    ipc_on_drain_fn *on_drain;      /* the producer of a long reply, or NULL */
    ipc_drain_free_fn *drain_free;
    void *drain_ctx;
    size_t drain_low;               /* call on_drain at or below this */
};

static void ipc_conn_event(event_loop_t *loop, int fd, unsigned mask, void *ctx);
static void ipc_conn_watch(ipc_conn_t *c, unsigned mask);
static void ipc_conn_compact(ipc_conn_t *c);
static void ipc_conn_write_now(ipc_conn_t *c);

/* ipc_conn_keep_why - a copy of a deferred failure's text in the conn */
static const char *ipc_conn_keep_why(ipc_conn_t *c, const char *why)
{
    snprintf(c->error_text, sizeof(c->error_text), "%s", why);
    return c->error_text;
}

/* ipc_conn_new - watch fd (the conn owns it) and deliver frames */
ipc_conn_t *ipc_conn_new(event_loop_t *loop, int fd, ipc_on_msg_fn *on_msg,
                         ipc_on_close_fn *on_close, void *ctx)
{
    ipc_conn_t *c = xcalloc(1, sizeof(*c));

    c->loop = loop;
    c->fd = fd;
    c->on_msg = on_msg;
    c->on_close = on_close;
    c->ctx = ctx;
    c->in_fd = -1;
    c->watch = EVENT_READ;
    buf_init(&c->in, IPC_MAX_FRAME);
    buf_init(&c->out, BUF_NOLIMIT);
    if (event_fd_add(loop, fd, c->watch, ipc_conn_event, c) < 0)
        msg_panic("ipc_conn_new: cannot watch fd %d: %m", fd);
    return c;
}

/* ipc_conn_expect_hello - check (and swallow) the server's HELLO when it
 * comes; frames may be sent before it arrives */
void ipc_conn_expect_hello(ipc_conn_t *c, const char *proto)
{
    free(c->hello_proto);
    c->hello_proto = xstrdup(proto);
}

/* ipc_conn_drain_clear - drop the producer and free its context */
static void ipc_conn_drain_clear(ipc_conn_t *c)
{
    ipc_drain_free_fn *fr = c->drain_free;
    void *ctx = c->drain_ctx;

    c->on_drain = NULL;
    c->drain_free = NULL;
    c->drain_ctx = NULL;
    if (fr)
        fr(ctx);
}

/* ipc_conn_set_drain - install (or, with fn NULL, drop) the producer of
 * a long reply: it is called whenever the queued output has been
 * written down to low_water bytes, and returns false when it is done */
void ipc_conn_set_drain(ipc_conn_t *c, size_t low_water, ipc_on_drain_fn *fn, void *ctx,
                        ipc_drain_free_fn *free_ctx)
{
    ipc_conn_drain_clear(c);
    c->on_drain = fn;
    c->drain_ctx = ctx;
    c->drain_free = free_ctx;
    c->drain_low = low_water;
    if (fn && !c->closed)
        ipc_conn_watch(c, EVENT_READ | EVENT_WRITE);    /* the loop calls fn */
}

/* ipc_conn_draining - is a producer installed? */
bool ipc_conn_draining(const ipc_conn_t *c)
{
    return c->on_drain != NULL;
}

/* ipc_conn_destroy - release everything (the conn is no longer in use) */
static void ipc_conn_destroy(ipc_conn_t *c)
{
    ipc_conn_drain_clear(c);
    for (size_t i = 0; i < c->nofds; i++)
        close(c->ofds[i].fd);
    free(c->ofds);
    if (c->in_fd >= 0)
        close(c->in_fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->hello_proto);
    close(c->fd);
    free(c);
}

/* ipc_conn_free - destroy now, or when the callback that runs returns */
void ipc_conn_free(ipc_conn_t **cp)
{
    ipc_conn_t *c = *cp;

    if (c == NULL)
        return;
    *cp = NULL;
    if (!c->closed)
        event_fd_del(c->loop, c->fd);
    c->closed = true;
    c->freed = true;
    if (c->busy == 0)
        ipc_conn_destroy(c);
}

/* ipc_conn_fail - stop I/O and call on_close, exactly once */
static void ipc_conn_fail(ipc_conn_t *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = true;
    event_fd_del(c->loop, c->fd);
    c->on_close(c, why, c->ctx);
}

/* ipc_conn_watch - change the event mask when it differs */
static void ipc_conn_watch(ipc_conn_t *c, unsigned mask)
{
    if (c->closed || c->watch == mask)
        return;
    if (event_fd_mod(c->loop, c->fd, mask) == 0)
        c->watch = mask;
}

/* ipc_conn_fd - the socket */
int ipc_conn_fd(const ipc_conn_t *c)
{
    return c->fd;
}

/* ipc_conn_pending - output bytes not yet written */
size_t ipc_conn_pending(const ipc_conn_t *c)
{
    return c->out.len - c->out_head;
}

/* ipc_conn_send - queue a frame (m's fd is duplicated) and write it now
 * when nothing else is waiting; the rest is written when possible */
void ipc_conn_send(ipc_conn_t *c, const ipc_msg_t *m)
{
    size_t start = c->out.len;
    bool idle = c->out_head == c->out.len;

    if (c->closed || c->error)
        return;
    if (ipc_encode(m, &c->out) < 0) {
        c->error = "message too large";
    } else if (m->fd >= 0) {
        int dup = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);

        if (dup < 0) {
            c->error = ipc_conn_keep_why(c, ipc_whyf("dup: %s", strerror(errno)));
        } else {
            c->ofds = xreallocarray(c->ofds, c->nofds + 1, sizeof(*c->ofds));
            c->ofds[c->nofds++] = (ipc_outfd_t){ start, dup };
        }
    }
    if (idle && !c->error)
        ipc_conn_write_now(c);
    else
        ipc_conn_watch(c, EVENT_READ | EVENT_WRITE);
}

/* ipc_conn_compact - drop written output so the buffer does not grow forever */
static void ipc_conn_compact(ipc_conn_t *c)
{
    if (c->out_head == c->out.len) {
        buf_reset(&c->out);
        c->out_head = 0;
    } else if (c->out_head >= IPC_CONN_COMPACT && c->out_head > c->out.len / 2) {
        for (size_t i = 0; i < c->nofds; i++)
            c->ofds[i].off -= c->out_head;
        buf_consume(&c->out, c->out_head);
        c->out_head = 0;
    }
}

/* ipc_conn_write_once - one sendmsg; the fd goes with its frame's first byte */
static ssize_t ipc_conn_write_once(ipc_conn_t *c)
{
    size_t end = c->out.len;
    int pass = -1;
    ssize_t n;

    if (c->nofds > 0 && c->ofds[0].off == c->out_head)
        pass = c->ofds[0].fd;
    for (size_t i = 0; i < c->nofds; i++)
        if (c->ofds[i].off > c->out_head) {
            end = c->ofds[i].off;
            break;
        }
    n = ipc_write_fd(c->fd, c->out.data + c->out_head, end - c->out_head, pass);
    if (n > 0 && pass >= 0) {
        close(pass);
        memmove(c->ofds, c->ofds + 1, (c->nofds - 1) * sizeof(*c->ofds));
        c->nofds--;
    }
    return n;
}

/* ipc_conn_write_some - write queued output until done (1) or the socket
 * is full (0); -1 with *why_r on an error */
static int ipc_conn_write_some(ipc_conn_t *c, const char **why_r)
{
    while (c->out_head < c->out.len) {
        ssize_t n = ipc_conn_write_once(c);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) {
            *why_r = ipc_whyf("write: %s", n < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        c->out_head += (size_t)n;
    }
    return 1;
}

/* ipc_conn_write_now - write from ipc_conn_send, saving a trip through
 * the loop (two epoll_ctl calls and a wake-up per frame). A failure is
 * left for the loop to report: the sender may hold state that on_close
 * frees. A producer (on_drain) is still driven by write events. */
static void ipc_conn_write_now(ipc_conn_t *c)
{
    const char *why;
    int rc = ipc_conn_write_some(c, &why);

    if (rc < 0)
        c->error = ipc_conn_keep_why(c, why);
    if (rc > 0 && c->on_drain == NULL) {
        ipc_conn_compact(c);
        ipc_conn_watch(c, EVENT_READ);
        return;
    }
    ipc_conn_watch(c, EVENT_READ | EVENT_WRITE);
}

/* ipc_conn_flush - write queued output until done or the socket is full */
static void ipc_conn_flush(ipc_conn_t *c)
{
    const char *why;
    int rc = ipc_conn_write_some(c, &why);

    if (rc < 0)
        ipc_conn_fail(c, why);
    if (rc <= 0)
        return;
    ipc_conn_compact(c);
    ipc_conn_watch(c, EVENT_READ);
}

/* ipc_conn_read_some - one read of the current frame's header or payload */
static int ipc_conn_read_some(ipc_conn_t *c)
{
    bool in_hdr = c->hdr_have < IPC_HDR_LEN;
    unsigned char *p = in_hdr ? c->hdr + c->hdr_have : (unsigned char *)c->in.data + c->in.len;
    size_t n = in_hdr ? IPC_HDR_LEN - c->hdr_have : c->want - c->in.len;
    ssize_t r = ipc_read_fds(c->fd, p, n, &c->in_fd);

    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r < 0)
        return ipc_conn_fail(c, ipc_whyf("read: %s", strerror(errno))), -1;
    if (r == 0)
        return ipc_conn_fail(c, "connection closed"), -1;
    if (in_hdr)
        c->hdr_have += (size_t)r;
    else
        c->in.data[c->in.len += (size_t)r] = 0;
    return 1;
}

/* ipc_conn_start_payload - header complete: check the length, make room */
static int ipc_conn_start_payload(ipc_conn_t *c)
{
    c->want = ipc_rd32(c->hdr);
    if (c->want > IPC_MAX_FRAME)
        return ipc_conn_fail(c, "frame too large"), -1;
    buf_reset(&c->in);
    if (buf_reserve(&c->in, c->want) < 0)
        return ipc_conn_fail(c, "frame too large"), -1;
    return 0;
}

/* ipc_conn_take_frame - decode the complete frame into m; -1 on error */
static int ipc_conn_take_frame(ipc_conn_t *c, ipc_msg_t *m)
{
    uint32_t len;
    const char *why;
    int fd = c->in_fd;

    c->in_fd = -1;
    c->hdr_have = 0;
    ipc_msg_init(m, 0);
    ipc_hdr_parse(c->hdr, &len, &m->type, &m->flags, &m->req_id);
    if (ipc_payload_decode(m, (const unsigned char *)c->in.data, c->in.len, &why) < 0
        || ((m->flags & IPC_FLAG_FD) && fd < 0 && (why = "descriptor flag without a descriptor"))) {
        if (fd >= 0)
            close(fd);
        ipc_msg_free(m);
        return ipc_conn_fail(c, why), -1;
    }
    if (!(m->flags & IPC_FLAG_FD) && fd >= 0)
        close(fd);                      /* not announced: never kept */
    else
        m->fd = fd;
    return 0;
}

/* ipc_conn_read - read and deliver up to IPC_CONN_BURST frames */
static void ipc_conn_read(ipc_conn_t *c)
{
    int frames = 0;

    while (!c->closed && frames < IPC_CONN_BURST) {
        bool was_hdr = c->hdr_have < IPC_HDR_LEN;
        ipc_msg_t m;

        if (ipc_conn_read_some(c) <= 0)
            return;
        if (was_hdr && c->hdr_have == IPC_HDR_LEN && ipc_conn_start_payload(c) < 0)
            return;
        if (c->hdr_have < IPC_HDR_LEN || c->in.len < c->want)
            continue;
        if (ipc_conn_take_frame(c, &m) < 0)
            return;
        frames++;
        if (c->hello_proto) {
            const char *why;
            int bad = ipc_hello_check(&m, c->hello_proto, &why);

            ipc_msg_free(&m);
            xfreep(&c->hello_proto);
            if (bad) {
                ipc_conn_fail(c, why);
                return;
            }
            continue;
        }
        c->on_msg(c, &m, c->ctx);
        ipc_msg_free(&m);
    }
}

/* ipc_conn_event - loop callback: output, deferred errors, then input */
static void ipc_conn_event(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    ipc_conn_t *c = ctx;

    c->busy++;
    if (c->error)
        ipc_conn_fail(c, c->error);
    if (!c->closed && (mask & EVENT_WRITE))
        ipc_conn_flush(c);
    if (!c->closed && !c->error && c->on_drain && ipc_conn_pending(c) <= c->drain_low
        && !c->on_drain(c, c->drain_ctx))
        ipc_conn_drain_clear(c);
    if (!c->closed && (mask & EVENT_READ))
        ipc_conn_read(c);
    c->busy--;
    if (c->freed && c->busy == 0)
        ipc_conn_destroy(c);
}
