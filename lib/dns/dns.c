/* dns.c - contexts and queries: the one place that routes, times and delivers lookups */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dns/dns_int.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define MAX_SERVERS 8

/* parse_server - "ip", "ip:port" or "[ipv6]:port" into a dns_server_t */
static int parse_server(const char *s, dns_server_t *srv, const char **why_r)
{
    char host[64];
    const char *port = NULL, *end;
    unsigned char tmp[16];
    size_t hl;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (!end || (end[1] != 0 && end[1] != ':'))
            goto bad;
        hl = (size_t)(end - s - 1);
        if (hl >= sizeof(host))
            goto bad;
        memcpy(host, s + 1, hl);
        host[hl] = 0;
        if (end[1] == ':')
            port = end + 2;
    } else {
        end = strchr(s, ':');
        if (end && strchr(end + 1, ':'))
            end = NULL;             /* a bare IPv6 address: no port */
        hl = end ? (size_t)(end - s) : strlen(s);
        if (hl >= sizeof(host))
            goto bad;
        memcpy(host, s, hl);
        host[hl] = 0;
        if (end)
            port = end + 1;
    }
    if (inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1)
        goto bad;
    srv->port = 0;
    if (port) {
        char *ep;
        unsigned long p = strtoul(port, &ep, 10);
        if (*port == 0 || *ep != 0 || p == 0 || p > 65535)
            goto bad;
        srv->port = (unsigned)p;
    }
    safe_cpy(srv->addr, sizeof(srv->addr), host);
    return 0;
bad:
    {
        static char why[160];
        snprintf(why, sizeof(why),
                 "dns_servers: bad server \"%.64s\" (want ip, ip:port or [ipv6]:port)", s);
        *why_r = why;
    }
    return -1;
}

/* dns_ctx_new - a context with both resolvers set up */
dns_ctx_t *dns_ctx_new(event_loop_t *loop, const char *const *servers,
                       const char *anchor_file, const char **why_r)
{
    dns_ctx_t *ctx = xcalloc(1, sizeof(*ctx));

    ctx->loop = loop;
    ctx->timeout_ms = DNS_DEF_TIMEOUT_MS;
    ctx->ub_fd = -1;
    for (size_t i = 0; servers && servers[i]; i++) {
        if (ctx->nservers >= MAX_SERVERS) {
            *why_r = "dns_servers: more than 8 servers";
            goto fail;
        }
        ctx->servers = xreallocarray(ctx->servers, ctx->nservers + 1,
                                     sizeof(*ctx->servers));
        if (parse_server(servers[i], &ctx->servers[ctx->nservers], why_r) < 0)
            goto fail;
        ctx->nservers++;
    }
    if (dns_ares_init(ctx, why_r) < 0)
        goto fail;
    if (anchor_file && *anchor_file && dns_ub_init(ctx, anchor_file, why_r) < 0)
        goto fail;
    return ctx;
fail:
    dns_ctx_free(&ctx);
    return NULL;
}

/* dns_ctx_set_timeout - the per-lookup time limit */
void dns_ctx_set_timeout(dns_ctx_t *ctx, int ms)
{
    ctx->timeout_ms = ms > 0 ? ms : DNS_DEF_TIMEOUT_MS;
}

/* dns_ctx_free - destroy a context; pending lookups never call back */
void dns_ctx_free(dns_ctx_t **ctxp)
{
    dns_ctx_t *ctx = *ctxp;

    if (ctx == NULL)
        return;
    if (ctx->in_callback)
        msg_panic("dns_ctx_free called from a dns callback");
    ctx->destroying = true;
    for (dns_query_t *q = ctx->queries; q; q = q->next)
        q->cb = NULL;
    dns_ub_deinit(ctx);             /* pending unbound queries: dropped */
    dns_ares_deinit(ctx);           /* frees its orphans via callbacks */
    while (ctx->queries) {
        ctx->queries->backend_busy = false;
        dns_query_free(ctx->queries);
    }
    free(ctx->servers);
    xfreep(ctxp);
}

/* dns_query_free - unlink and free a query the back end no longer holds */
void dns_query_free(dns_query_t *q)
{
    dns_ctx_t *ctx = q->ctx;

    if (q->backend_busy)
        msg_panic("dns_query_free: query for %s still in a resolver", q->name);
    event_timer_cancel(ctx->loop, &q->deadline);
    event_timer_cancel(ctx->loop, &q->deliver);
    if (q->prev)
        q->prev->next = q->next;
    else
        ctx->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    dns_result_clear(&q->res);
    free(q->res.why_owned);
    free(q->name);
    free(q);
}

/* release - nobody waits for q any more: free it or leave it to its back end */
static void release(dns_query_t *q)
{
    q->cb = NULL;
    event_timer_cancel(q->ctx->loop, &q->deadline);
    event_timer_cancel(q->ctx->loop, &q->deliver);
    if (q->backend_busy && q->validated)
        dns_ub_release(q);
    if (q->backend_busy)
        q->orphan = true;           /* c-ares frees it when it returns */
    else
        dns_query_free(q);
}

/* deliver - run the caller's callback once, then let go of q */
static void deliver(dns_query_t *q)
{
    dns_cb_fn *cb = q->cb;

    q->cb = NULL;
    event_timer_cancel(q->ctx->loop, &q->deadline);
    event_timer_cancel(q->ctx->loop, &q->deliver);
    if (q->res.why == NULL && q->res.status != DNS_OK
        && q->res.status != DNS_NXDOMAIN && q->res.status != DNS_NODATA)
        q->res.why = "DNS lookup failed";
    /* Authenticated only if libunbound said so (set in dns_ub.c). */
    if (!q->validated)
        q->res.secure = false;
    if (cb) {
        q->ctx->in_callback++;
        cb(&q->res, q->arg);
        q->ctx->in_callback--;
    }
    release(q);
}

/* deliver_later - timer callback for results found inside dns_lookup */
static void deliver_later(event_loop_t *loop, void *arg)
{
    dns_query_t *q = arg;

    q->deliver = NULL;
    deliver(q);
}

/* dns_query_done - a back end has filled q->res */
void dns_query_done(dns_query_t *q)
{
    q->backend_busy = false;
    if (q->orphan || q->cb == NULL) {
        dns_query_free(q);
        return;
    }
    if (q->in_submit) {
        if (q->deliver == NULL)
            q->deliver = event_timer_add(q->ctx->loop, 0, deliver_later, q);
        return;
    }
    deliver(q);
}

/* dns_query_fail - finish q with a temporary failure */
void dns_query_fail(dns_query_t *q, const char *why)
{
    dns_result_clear(&q->res);
    q->res.status = DNS_TEMPFAIL;
    q->res.why = why;
    dns_query_done(q);
}

/* deadline_expired - the lookup took too long: answer DNS_TEMPFAIL now */
static void deadline_expired(event_loop_t *loop, void *arg)
{
    dns_query_t *q = arg;

    q->deadline = NULL;
    dns_result_clear(&q->res);
    q->res.status = DNS_TEMPFAIL;
    q->res.why = "DNS lookup timed out";
    deliver(q);
}

/* name_ok - a lookup name we are willing to send */
static bool name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > DNS_MAX_NAME + 1 || (len == DNS_MAX_NAME + 1 && name[len - 1] != '.'))
        return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '\\')
            return false;
    return strstr(name, "..") == NULL && name[0] != '.';
}

/* dns_lookup - start a lookup; the callback always runs from the loop */
dns_query_t *dns_lookup(dns_ctx_t *ctx, const char *name, uint16_t type,
                        unsigned flags, dns_cb_fn *cb, void *arg)
{
    dns_query_t *q = xcalloc(1, sizeof(*q));

    q->ctx = ctx;
    q->name = xstrdup(name);
    q->type = type;
    q->flags = flags;
    q->cb = cb;
    q->arg = arg;
    q->ub_id = -1;
    q->res.name = q->name;
    q->res.type = type;
    q->next = ctx->queries;
    if (ctx->queries)
        ctx->queries->prev = q;
    ctx->queries = q;
    q->deadline = event_timer_add(ctx->loop, ctx->timeout_ms, deadline_expired, q);

    q->in_submit = true;
    if (!name_ok(name)) {
        dns_query_fail(q, "invalid domain name");
    } else if (flags & DNS_F_VALIDATE) {
        q->validated = true;
        if (ctx->ub == NULL)
            dns_query_fail(q, "DNSSEC validation is not configured (dnssec_trust_anchor_file)");
        else
            dns_ub_send(q);
    } else {
        dns_ares_send(q);
    }
    q->in_submit = false;
    return q;
}

/* dns_cancel - forget a pending lookup; its callback never runs */
void dns_cancel(dns_ctx_t *ctx, dns_query_t **qp)
{
    if (*qp == NULL)
        return;
    release(*qp);
    *qp = NULL;
}
