/* dns_ares.c - the c-ares back end: ordinary (unvalidated) lookups on the event loop */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dns/dns_int.h"
#include "dns/dns_reply.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#define ARES_TRY_MS 2000
#define ARES_TRIES 3
#define EDNS_UDP_SIZE 1232

static void ares_rearm(dns_ctx_t *ctx);

/* ares_fd_ready - a c-ares socket is ready: let c-ares read or write */
static void ares_fd_ready(event_loop_t *loop, int fd, unsigned mask, void *arg)
{
    dns_ctx_t *ctx = arg;
    ares_socket_t r = ARES_SOCKET_BAD, w = ARES_SOCKET_BAD;

    if (mask & (EVENT_READ | EVENT_ERROR))
        r = fd;
    if (mask & EVENT_WRITE)
        w = fd;
    ares_process_fd(ctx->channel, r, w);
    ares_rearm(ctx);
}

/* ares_tick - c-ares' retransmission and time-out clock */
static void ares_tick(event_loop_t *loop, void *arg)
{
    dns_ctx_t *ctx = arg;

    ctx->ares_timer = NULL;
    ares_process_fd(ctx->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    ares_rearm(ctx);
}

/* ares_rearm - set our timer to c-ares' next deadline, if it has one */
static void ares_rearm(dns_ctx_t *ctx)
{
    struct timeval tv, *tvp;

    if (ctx->destroying)
        return;
    event_timer_cancel(ctx->loop, &ctx->ares_timer);
    tvp = ares_timeout(ctx->channel, NULL, &tv);
    if (tvp)
        ctx->ares_timer = event_timer_add(ctx->loop,
                                          (int64_t)tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1,
                                          ares_tick, ctx);
}

/* ares_sock_state - c-ares opened, changed or closed a socket */
static void ares_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_ctx_t *ctx = data;
    unsigned mask = (readable ? EVENT_READ : 0) | (writable ? EVENT_WRITE : 0);
    size_t i;

    for (i = 0; i < ctx->ares_nfds && ctx->ares_fds[i] != fd; i++)
        ;
    if (mask == 0) {
        if (i < ctx->ares_nfds) {
            event_fd_del(ctx->loop, fd);
            ctx->ares_fds[i] = ctx->ares_fds[--ctx->ares_nfds];
        }
        return;
    }
    if (i < ctx->ares_nfds) {
        event_fd_mod(ctx->loop, fd, mask);
        return;
    }
    if (event_fd_add(ctx->loop, fd, mask, ares_fd_ready, ctx) < 0) {
        /* c-ares will time the query out; say why once. */
        msg_warn("dns: cannot watch resolver socket %d: %m", fd);
        return;
    }
    ctx->ares_fds = xreallocarray(ctx->ares_fds, ctx->ares_nfds + 1, sizeof(int));
    ctx->ares_fds[ctx->ares_nfds++] = fd;
}

/* dns_ares_init - a channel on the configured servers, never resolv.conf's */
int dns_ares_init(dns_ctx_t *ctx, const char **why_r)
{
    static bool lib_done;
    struct ares_options opts;
    int optmask, st;

    if (!lib_done) {
        if ((st = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
            *why_r = ares_strerror(st);
            return -1;
        }
        lib_done = true;
    }
    memset(&opts, 0, sizeof(opts));
    /* NOCHECKRESP: a SERVFAIL reaches us as an rcode, not as "could not
     * contact DNS servers", so logs say what happened. */
    opts.flags = ARES_FLAG_NOCHECKRESP;
    opts.timeout = ARES_TRY_MS;
    opts.tries = ARES_TRIES;
    opts.sock_state_cb = ares_sock_state;
    opts.sock_state_cb_data = ctx;
    optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES
        | ARES_OPT_SOCK_STATE_CB;
    if ((st = ares_init_options(&ctx->channel, &opts, optmask)) != ARES_SUCCESS) {
        ctx->channel = NULL;
        *why_r = ares_strerror(st);
        return -1;
    }
    if (ctx->nservers) {
        buf_t csv;
        buf_init(&csv, BUF_NOLIMIT);
        for (size_t i = 0; i < ctx->nservers; i++) {
            const dns_server_t *s = &ctx->servers[i];
            bool v6 = strchr(s->addr, ':') != NULL;
            if (i)
                buf_putc(&csv, ',');
            if (s->port)
                buf_printf(&csv, v6 ? "[%s]:%u" : "%s:%u", s->addr, s->port);
            else
                buf_puts(&csv, s->addr);
        }
        st = ares_set_servers_ports_csv(ctx->channel, buf_cstr(&csv));
        buf_free(&csv);
        if (st != ARES_SUCCESS) {
            *why_r = ares_strerror(st);
            return -1;
        }
    }
    return 0;
}

/* ares_done - c-ares finished (or dropped) a query */
static void ares_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    dns_query_t *q = arg;

    if (q->orphan || q->cb == NULL || status == ARES_EDESTRUCTION) {
        q->backend_busy = false;
        q->orphan = true;
        dns_query_done(q);          /* frees it */
        return;
    }
    dns_result_clear(&q->res);
    if (abuf && alen > 0) {
        const char *why;
        (void)dns_reply_parse(abuf, (size_t)alen, q->name, q->type, &q->res, &why);
    } else {
        q->res.status = DNS_TEMPFAIL;
        q->res.why = status == ARES_ETIMEOUT ? "DNS lookup timed out" : ares_strerror(status);
    }
    dns_query_done(q);
}

/* dns_ares_send - send q as a raw query (RD set, EDNS0, no DO bit) */
void dns_ares_send(dns_query_t *q)
{
    unsigned char *pkt;
    int len, st;

    st = ares_create_query(q->name, 1 /* IN */, q->type, 0, 1, &pkt, &len, EDNS_UDP_SIZE);
    if (st != ARES_SUCCESS) {
        dns_query_fail(q, ares_strerror(st));
        return;
    }
    q->backend_busy = true;
    ares_send(q->ctx->channel, pkt, len, ares_done, q);
    ares_free_string(pkt);
    ares_rearm(q->ctx);
}

/* dns_ares_deinit - destroy the channel; pending queries call back once */
void dns_ares_deinit(dns_ctx_t *ctx)
{
    if (ctx->channel)
        ares_destroy(ctx->channel);
    ctx->channel = NULL;
    event_timer_cancel(ctx->loop, &ctx->ares_timer);
    for (size_t i = 0; i < ctx->ares_nfds; i++)
        event_fd_del(ctx->loop, ctx->ares_fds[i]);
    xfreep(&ctx->ares_fds);
    ctx->ares_nfds = 0;
}
