#ifndef STORK_DNS_DNS_INT_H
#define STORK_DNS_DNS_INT_H
/*
 * NAME
 *	dns_int - lib/dns internals shared by the core and its two back ends
 * DESCRIPTION
 *	dns.c owns contexts and queries (timers, delivery, cancellation).
 *	A back end (dns_ares.c: c-ares; dns_ub.c: libunbound) sends a query
 *	and later calls dns_query_done() with the result filled in q->res;
 *	while it may still call back, q->backend_busy is true.
 *	xxx_release(q) tells the back end to forget q: dns_ub cancels it;
 *	c-ares cannot cancel one query, so its callback later frees an
 *	orphaned q (dns_query_orphan_done).
 */
#include <ares.h>
#include "dns/dns.h"

struct dns_query {
    dns_ctx_t *ctx;
    dns_query_t *prev, *next;       /* ctx->queries: every live query */
    char *name;
    uint16_t type;
    unsigned flags;
    dns_cb_fn *cb;                  /* NULL once delivered or cancelled */
    void *arg;
    event_timer_t *deadline;        /* the overall time limit */
    event_timer_t *deliver;         /* delivery of a result found early */
    dns_result_t res;
    bool in_submit;                 /* inside dns_lookup: don't call back */
    bool backend_busy;              /* the back end still holds q */
    bool orphan;                    /* nobody waits; free on back-end return */
    bool validated;                 /* sent to libunbound */
    int ub_id;
};

typedef struct dns_server {
    char addr[64];                  /* numeric IPv4 or IPv6 */
    unsigned port;                  /* 0: default 53 */
} dns_server_t;

struct dns_ctx {
    event_loop_t *loop;
    int timeout_ms;
    int in_callback;
    dns_query_t *queries;
    dns_server_t *servers;
    size_t nservers;
    /* c-ares */
    ares_channel channel;
    int *ares_fds;
    size_t ares_nfds;
    event_timer_t *ares_timer;
    bool destroying;
    /* libunbound */
    struct ub_ctx *ub;
    int ub_fd;
};

void dns_query_done(dns_query_t *q);
void dns_query_fail(dns_query_t *q, const char *why);
void dns_query_free(dns_query_t *q);

int dns_ares_init(dns_ctx_t *ctx, const char **why_r);
void dns_ares_send(dns_query_t *q);
void dns_ares_deinit(dns_ctx_t *ctx);

int dns_ub_init(dns_ctx_t *ctx, const char *anchor_file, const char **why_r);
void dns_ub_send(dns_query_t *q);
void dns_ub_release(dns_query_t *q);
void dns_ub_deinit(dns_ctx_t *ctx);

#endif
