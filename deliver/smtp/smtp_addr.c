/*
 * smtp_addr - next hop to targets (RFC 5321 5.1, RFC 7505, RFC 7672).
 * MX records in preference order (random among equals), the implicit MX
 * when there is none, the null MX as an immediate bounce; then A and
 * AAAA of every MX host, all in parallel; for DANE the lookups are
 * validated and a TLSA lookup runs per host. The targets list one
 * address each, in order, with the TLS level that host gets, cut at
 * smtp_mx_address_limit.
 */
#include "smtp.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RQ_A, RQ_AAAA, RQ_TLSA, RQ_N };

typedef struct rq {
    smtp_resolve_t *res;
    size_t host;
    int kind;
} rq_t;

typedef struct rhost {
    char *name;
    dns_query_t *q[RQ_N];
    dns_result_t *r[RQ_N];
    rq_t ctx[RQ_N];
} rhost_t;

struct smtp_resolve {
    smtp_job_t *job;
    bool want_dane, mx_secure;
    dns_query_t *mxq;
    rhost_t hosts[SMTP_MAX_HOSTS];
    size_t nhosts;
    int outstanding;
};

/* resolve_free - cancel what is pending, free the rest */
static void resolve_free(smtp_resolve_t *res)
{
    if (res->mxq)
        dns_cancel(smtp.dns, &res->mxq);
    for (size_t h = 0; h < res->nhosts; h++) {
        for (int k = 0; k < RQ_N; k++) {
            if (res->hosts[h].q[k])
                dns_cancel(smtp.dns, &res->hosts[h].q[k]);
            dns_result_free(&res->hosts[h].r[k]);
        }
        free(res->hosts[h].name);
    }
    free(res);
}

void smtp_resolve_cancel(smtp_job_t *job)
{
    if (job->res) {
        resolve_free(job->res);
        job->res = NULL;
    }
}

void smtp_targets_free(smtp_job_t *job)
{
    for (size_t i = 0; i < job->ntargets; i++) {
        for (size_t k = 0; k < job->targets[i].ntlsa; k++)
            free((void *)job->targets[i].tlsa[k].data);
        free(job->targets[i].tlsa);
        free(job->targets[i].host);
    }
    free(job->targets);
    job->targets = NULL;
    job->ntargets = 0;
}

/* target_add - one more address to try */
static smtp_target_t *target_add(smtp_job_t *job, const char *host)
{
    smtp_target_t *t;

    job->targets = xreallocarray(job->targets, job->ntargets + 1, sizeof(*job->targets));
    t = &job->targets[job->ntargets++];
    memset(t, 0, sizeof(*t));
    t->host = xstrdup(host);
    t->port = job->dest.port;
    t->level = job->level == TLS_LEV_DANE ? TLS_LEV_MAY : job->level;
    return t;
}

/* target_set_addr - the socket address and its text form */
static void target_set_addr(smtp_target_t *t, const struct sockaddr_storage *ss)
{
    t->sa = *ss;
    if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->sa;
        s6->sin6_port = htons((uint16_t)t->port);
        t->salen = sizeof(*s6);
        inet_ntop(AF_INET6, &s6->sin6_addr, t->ip, sizeof(t->ip));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&t->sa;
        s4->sin_port = htons((uint16_t)t->port);
        t->salen = sizeof(*s4);
        inet_ntop(AF_INET, &s4->sin_addr, t->ip, sizeof(t->ip));
    }
}

/* host_tls - the TLS level of one host, and its TLSA records; -1 when
 * DANE cannot be decided (bogus or failed TLSA lookup) */
static int host_tls(smtp_resolve_t *res, rhost_t *h, tls_level_t *lev, tls_tlsa_t **tlsa,
                    size_t *ntlsa)
{
    smtp_job_t *job = res->job;
    const dns_result_t *ra = h->r[RQ_A], *r6 = h->r[RQ_AAAA], *rt = h->r[RQ_TLSA];
    bool host_secure;

    *lev = job->level;
    *tlsa = NULL;
    *ntlsa = 0;
    if (job->level != TLS_LEV_DANE)
        return 0;
    host_secure = res->want_dane && res->mx_secure && ra && ra->secure && r6 && r6->secure;
    if (!host_secure || rt == NULL) {
        *lev = TLS_LEV_MAY;            /* RFC 7672 2.2.1: no DANE */
        return 0;
    }
    if (rt->status == DNS_BOGUS || rt->status == DNS_TEMPFAIL)
        return -1;
    if (rt->status != DNS_OK || !rt->secure) {
        *lev = TLS_LEV_MAY;
        return 0;
    }
    *tlsa = xcalloc(rt->nrr, sizeof(**tlsa));
    for (size_t i = 0; i < rt->nrr && *ntlsa < TLS_MAX_TLSA; i++) {
        tls_tlsa_t *t = &(*tlsa)[(*ntlsa)++];
        t->usage = rt->rr[i].usage;
        t->selector = rt->rr[i].selector;
        t->mtype = rt->rr[i].mtype;
        t->data = xmemdup(rt->rr[i].data, rt->rr[i].data_len ? rt->rr[i].data_len : 1);
        t->len = rt->rr[i].data_len;
    }
    return 0;
}

/* resolve_done - all lookups are in: the targets, or a site error */
static void resolve_done(smtp_resolve_t *res)
{
    smtp_job_t *job = res->job;
    const char *temp_host = NULL, *tlsa_host = NULL, *none_host = NULL;
    size_t limit = smtp.p.mx_address_limit > 0 ? (size_t)smtp.p.mx_address_limit : SIZE_MAX;

    for (size_t h = 0; h < res->nhosts; h++) {
        rhost_t *rh = &res->hosts[h];
        tls_level_t lev;
        tls_tlsa_t *tlsa;
        size_t ntlsa, before = job->ntargets;
        bool any = false;

        for (int k = RQ_A; k <= RQ_AAAA; k++) {
            const dns_result_t *r = rh->r[k];
            if (r && (r->status == DNS_TEMPFAIL || r->status == DNS_BOGUS))
                temp_host = rh->name;
            if (r && r->status == DNS_OK)
                any = true;
        }
        if (!any) {
            none_host = rh->name;
            continue;
        }
        if (host_tls(res, rh, &lev, &tlsa, &ntlsa) < 0) {
            tlsa_host = rh->name;
            continue;
        }
        for (int k = RQ_A; k <= RQ_AAAA; k++) {
            const dns_result_t *r = rh->r[k];
            for (size_t i = 0; r && r->status == DNS_OK && i < r->nrr; i++) {
                smtp_target_t *t;
                if (job->ntargets >= limit)
                    break;
                t = target_add(job, rh->name);
                target_set_addr(t, &r->rr[i].addr);
                t->level = lev;
                if (ntlsa) {
                    t->tlsa = xcalloc(ntlsa, sizeof(*t->tlsa));
                    t->ntlsa = ntlsa;
                    for (size_t j = 0; j < ntlsa; j++) {
                        t->tlsa[j] = tlsa[j];
                        t->tlsa[j].data = xmemdup(tlsa[j].data, tlsa[j].len ? tlsa[j].len : 1);
                    }
                }
            }
        }
        for (size_t j = 0; j < ntlsa; j++)
            free((void *)tlsa[j].data);
        free(tlsa);
        (void)before;
    }
    if (job->ntargets == 0) {
        if (tlsa_host)
            smtp_job_site_error(job, "4.7.5", false, "TLSA lookup error for %s:%u",
                                tlsa_host, job->dest.port);
        else if (temp_host)
            smtp_job_site_error(job, "4.4.3", false, "Host or domain name not found. Name "
                                "service error for name=%s type=A: Host not found, try again",
                                temp_host);
        else
            smtp_job_site_error(job, "5.4.4", true, "Host or domain name not found. Name "
                                "service error for name=%s type=A: Host not found",
                                none_host ? none_host : job->dest.host);
    }
    job->res = NULL;
    resolve_free(res);
    smtp_job_next_target(job);
}

/* host_cb - an A, AAAA or TLSA answer */
static void host_cb(const dns_result_t *r, void *arg)
{
    rq_t *q = arg;
    smtp_resolve_t *res = q->res;
    rhost_t *h = &res->hosts[q->host];

    h->q[q->kind] = NULL;
    h->r[q->kind] = dns_result_dup(r);
    if (--res->outstanding == 0)
        resolve_done(res);
}

/* host_lookup - start one lookup for host h */
static void host_lookup(smtp_resolve_t *res, size_t h, int kind, const char *name,
                        uint16_t type, unsigned flags)
{
    rhost_t *rh = &res->hosts[h];

    rh->ctx[kind] = (rq_t){ .res = res, .host = h, .kind = kind };
    res->outstanding++;
    rh->q[kind] = dns_lookup(smtp.dns, name, type, flags, host_cb, &rh->ctx[kind]);
}

/* hosts_start - address (and TLSA) lookups for every host */
static void hosts_start(smtp_resolve_t *res)
{
    unsigned vflag = res->want_dane && res->mx_secure ? DNS_F_VALIDATE : 0;
    char tname[300];

    for (size_t h = 0; h < res->nhosts; h++) {
        host_lookup(res, h, RQ_A, res->hosts[h].name, DNS_T_A, vflag);
        host_lookup(res, h, RQ_AAAA, res->hosts[h].name, DNS_T_AAAA, vflag);
        if (vflag) {
            snprintf(tname, sizeof(tname), "_%u._tcp.%s", res->job->dest.port,
                     res->hosts[h].name);
            host_lookup(res, h, RQ_TLSA, tname, DNS_T_TLSA, DNS_F_VALIDATE);
        }
    }
}

/* host_add - one more host name to resolve */
static void host_add(smtp_resolve_t *res, const char *name)
{
    if (res->nhosts < SMTP_MAX_HOSTS)
        res->hosts[res->nhosts++].name = xstrdup(name);
}

/* mx_cb - the MX answer */
static void mx_cb(const dns_result_t *r, void *arg)
{
    smtp_resolve_t *res = arg;
    smtp_job_t *job = res->job;
    dns_result_t *copy;

    res->mxq = NULL;
    switch (r->status) {
    case DNS_NXDOMAIN:
        smtp_job_site_error(job, "5.1.2", true, "Host or domain name not found. Name service "
                            "error for name=%s type=MX: Host not found", job->dest.host);
        break;
    case DNS_TEMPFAIL:
    case DNS_BOGUS:
        smtp_job_site_error(job, "4.4.3", false, "Host or domain name not found. Name service "
                            "error for name=%s type=MX: Host not found, try again",
                            job->dest.host);
        break;
    case DNS_NODATA:
        res->mx_secure = r->secure;
        host_add(res, job->dest.host);           /* the implicit MX */
        hosts_start(res);
        return;
    case DNS_OK:
        if (dns_mx_is_null(r)) {
            smtp_job_site_error(job, "5.1.10", true, "recipient address domain has a null MX "
                                "(Domain %s does not accept mail)", job->dest.host);
            break;
        }
        res->mx_secure = r->secure;
        copy = dns_result_dup(r);
        dns_mx_sort(copy, 0);
        for (size_t i = 0; i < copy->nrr; i++)
            if (strcmp(copy->rr[i].host, ".") != 0 && *copy->rr[i].host)
                host_add(res, copy->rr[i].host);
        dns_result_free(&copy);
        if (res->nhosts) {
            hosts_start(res);
            return;
        }
        smtp_job_site_error(job, "5.4.4", true, "no usable MX host for %s", job->dest.host);
        break;
    }
    job->res = NULL;
    resolve_free(res);
    smtp_job_next_target(job);
}

/* smtp_resolve_start - from job->dest to job->targets */
void smtp_resolve_start(smtp_job_t *job)
{
    smtp_resolve_t *res;
    smtp_target_t *t;

    job->ti = 0;
    if (job->dest.is_unix) {
        t = target_add(job, "localhost");
        t->is_unix = true;
        t->level = TLS_LEV_NONE;
        safe_cpy(t->ip, sizeof(t->ip), job->dest.path);
        smtp_job_next_target(job);
        return;
    }
    if (job->dest.literal) {
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        if (inet_pton(AF_INET, job->dest.host, &s4->sin_addr) == 1)
            ss.ss_family = AF_INET;
        else if (inet_pton(AF_INET6, job->dest.host, &s6->sin6_addr) == 1)
            ss.ss_family = AF_INET6;
        t = target_add(job, job->dest.host);
        target_set_addr(t, &ss);
        smtp_job_next_target(job);
        return;
    }
    res = xcalloc(1, sizeof(*res));
    res->job = job;
    job->res = res;
    res->want_dane = job->level == TLS_LEV_DANE;
    if (res->want_dane && !smtp.dnssec_ok) {
        msg_warn("%s: DANE requested for %s, but no DNSSEC trust anchor is configured "
                 "(dnssec_trust_anchor_file): using opportunistic TLS", job->qid,
                 job->dest.host);
        res->want_dane = false;
    }
    if (job->dest.mx) {
        res->mxq = dns_lookup(smtp.dns, job->dest.host, DNS_T_MX,
                              res->want_dane ? DNS_F_VALIDATE : 0, mx_cb, res);
    } else {
        res->mx_secure = true;        /* the name came from the configuration */
        host_add(res, job->dest.host);
        hosts_start(res);
    }
}
