/* dns_ub.c - the libunbound back end: DNSSEC-validated lookups on the event loop */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unbound.h>
#include "dns/dns_int.h"
#include "dns/dns_reply.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#define ANCHOR_MAX (64 * 1024)

/* ub_ready - results are waiting in libunbound's pipe */
static void ub_ready(event_loop_t *loop, int fd, unsigned mask, void *arg)
{
    dns_ctx_t *ctx = arg;
    int err = ub_process(ctx->ub);

    if (err != 0)
        msg_warn("dns: ub_process: %s", ub_strerror(err));
}

/* read_anchor - read the trust anchor file now (before any chroot) */
static int read_anchor(dns_ctx_t *ctx, const char *path, const char **why_r)
{
    static char why[300];
    buf_t b;
    char chunk[4096];
    ssize_t n;
    int fd, count = 0, err;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(why, sizeof(why), "dnssec_trust_anchor_file %s: %s", path, strerror(errno));
        *why_r = why;
        return -1;
    }
    buf_init(&b, ANCHOR_MAX);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if (buf_append(&b, chunk, (size_t)n) < 0) {
            n = -2;
            break;
        }
    close(fd);
    if (n < 0) {
        snprintf(why, sizeof(why), "dnssec_trust_anchor_file %s: %s", path,
                 n == -2 ? "larger than 64 KiB" : strerror(errno));
        buf_free(&b);
        *why_r = why;
        return -1;
    }
    /* One RR per line (DS or DNSKEY, as unbound-anchor and Debian's
     * dns-root-data write them); ';' starts a comment. */
    for (char *line = b.data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *semi = strchr(line, ';');
        if (semi)
            *semi = 0;
        if (line[strspn(line, " \t\r")] == 0)
            continue;
        if ((err = ub_ctx_add_ta(ctx->ub, line)) != 0) {
            snprintf(why, sizeof(why), "dnssec_trust_anchor_file %s: %s", path, ub_strerror(err));
            buf_free(&b);
            *why_r = why;
            return -1;
        }
        count++;
    }
    buf_free(&b);
    if (count == 0) {
        snprintf(why, sizeof(why), "dnssec_trust_anchor_file %s: no trust anchor in it", path);
        *why_r = why;
        return -1;
    }
    return 0;
}

/* dns_ub_init - a validating resolver on the configured servers */
int dns_ub_init(dns_ctx_t *ctx, const char *anchor_file, const char **why_r)
{
    int err;

    if ((ctx->ub = ub_ctx_create()) == NULL) {
        *why_r = "cannot create libunbound context";
        return -1;
    }
    /* A thread rather than a forked process: nothing to reap, and it
     * works the same inside a chroot. */
    if ((err = ub_ctx_async(ctx->ub, 1)) != 0)
        goto fail;
    for (size_t i = 0; i < ctx->nservers; i++) {
        char fwd[80];
        const dns_server_t *s = &ctx->servers[i];
        if (s->port)
            snprintf(fwd, sizeof(fwd), "%s@%u", s->addr, s->port);
        else
            snprintf(fwd, sizeof(fwd), "%s", s->addr);
        if ((err = ub_ctx_set_fwd(ctx->ub, fwd)) != 0)
            goto fail;
    }
    if (ctx->nservers) {
        /* The servers were chosen on purpose, loopback ones included.
         * The resolver we forward to decides what exists under "test."
         * (libunbound would otherwise answer RFC 6761's test. itself;
         * "nodefault" is ignored by libunbound 1.17, "transparent" works). */
        if ((err = ub_ctx_set_option(ctx->ub, "do-not-query-localhost:", "no")) != 0
            || (err = ub_ctx_set_option(ctx->ub, "local-zone:", "test. transparent")) != 0)
            goto fail;
    }
    if (read_anchor(ctx, anchor_file, why_r) < 0)
        return -1;
    ctx->ub_fd = ub_fd(ctx->ub);
    if (ctx->ub_fd < 0 || event_fd_add(ctx->loop, ctx->ub_fd, EVENT_READ, ub_ready, ctx) < 0) {
        ctx->ub_fd = -1;
        *why_r = "cannot watch the libunbound result pipe";
        return -1;
    }
    return 0;
fail:
    *why_r = ub_strerror(err);
    return -1;
}

/* ub_done - libunbound's answer for one query */
static void ub_done(void *arg, int err, struct ub_result *r)
{
    dns_query_t *q = arg;
    const char *why;

    q->ub_id = -1;
    dns_result_clear(&q->res);
    if (err != 0) {
        q->res.status = DNS_TEMPFAIL;
        q->res.why = ub_strerror(err);
    } else if (r->bogus) {
        /* Never hand out bogus data, even though libunbound has it. */
        q->res.status = DNS_BOGUS;
        free(q->res.why_owned);
        q->res.why_owned = xasprintf("DNSSEC validation failed: %s",
                                     r->why_bogus ? r->why_bogus : "bogus");
        q->res.why = q->res.why_owned;
    } else if (r->answer_packet && r->answer_len > 0) {
        if (dns_reply_parse(r->answer_packet, (size_t)r->answer_len, q->name,
                            q->type, &q->res, &why) == 0)
            q->res.secure = r->secure != 0;
    } else {
        q->res.status = r->nxdomain ? DNS_NXDOMAIN : DNS_TEMPFAIL;
        q->res.secure = r->secure != 0;
    }
    if (r)
        ub_resolve_free(r);
    dns_query_done(q);
}

/* dns_ub_send - start a validated lookup */
void dns_ub_send(dns_query_t *q)
{
    int err = ub_resolve_async(q->ctx->ub, q->name, q->type, 1 /* IN */, q,
                               ub_done, &q->ub_id);

    if (err != 0) {
        dns_query_fail(q, ub_strerror(err));
        return;
    }
    q->backend_busy = true;
}

/* dns_ub_release - cancel q inside libunbound; its callback never runs */
void dns_ub_release(dns_query_t *q)
{
    if (q->ub_id >= 0 && q->ctx->ub)
        (void)ub_cancel(q->ctx->ub, q->ub_id);
    q->ub_id = -1;
    q->backend_busy = false;
}

/* dns_ub_deinit - stop the validating resolver */
void dns_ub_deinit(dns_ctx_t *ctx)
{
    if (ctx->ub_fd >= 0)
        event_fd_del(ctx->loop, ctx->ub_fd);
    ctx->ub_fd = -1;
    if (ctx->ub)
        ub_ctx_delete(ctx->ub);
    ctx->ub = NULL;
}
