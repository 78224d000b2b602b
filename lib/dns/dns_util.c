/* dns_util.c - pure helpers on DNS results: MX order, null MX, reverse names */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "dns/dns.h"
#include "util/xmalloc.h"

/* splitmix64 - a small, good mixer for shuffling with a given seed */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* mx_cmp - order by preference only; ties are shuffled afterwards */
static int mx_cmp(const void *a, const void *b)
{
    const dns_rr_t *x = a, *y = b;
    return (x->pref > y->pref) - (x->pref < y->pref);
}

/* dns_mx_sort - preference order, random order among equal preferences */
void dns_mx_sort(dns_result_t *res, uint64_t seed)
{
    size_t i, j, k;

    if (res->type != DNS_T_MX || res->nrr < 2)
        return;
    if (seed == 0 && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)(uintptr_t)res ^ (uint64_t)rand();
    /* qsort is not stable, which does not matter: ties are shuffled. */
    qsort(res->rr, res->nrr, sizeof(*res->rr), mx_cmp);
    for (i = 0; i < res->nrr; i = j) {
        for (j = i + 1; j < res->nrr && res->rr[j].pref == res->rr[i].pref; j++)
            ;
        /* Fisher-Yates over [i, j). */
        for (k = j - 1; k > i; k--) {
            size_t r = i + (size_t)(splitmix64(&seed) % (k - i + 1));
            dns_rr_t tmp = res->rr[k];
            res->rr[k] = res->rr[r];
            res->rr[r] = tmp;
        }
    }
}

/* dns_mx_is_null - RFC 7505: a single MX with preference 0 and host "." */
bool dns_mx_is_null(const dns_result_t *res)
{
    return res->status == DNS_OK && res->type == DNS_T_MX && res->nrr == 1
        && res->rr[0].pref == 0 && res->rr[0].host != NULL
        && strcmp(res->rr[0].host, ".") == 0;
}

/* dns_rev_name - "4.3.2.1.in-addr.arpa", nibbles for IPv6, or a DNSBL name */
int dns_rev_name(const struct sockaddr *sa, const char *suffix, char *buf,
                 size_t size)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[80];
    size_t n = 0;
    int len;

    if (sa->sa_family == AF_INET) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = (size_t)snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", a[3], a[2], a[1], a[0]);
        if (!suffix)
            suffix = "in-addr.arpa";
    } else if (sa->sa_family == AF_INET6) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        for (int i = 15; i >= 0; i--) {
            tmp[n++] = hex[a[i] & 0xF];
            tmp[n++] = '.';
            tmp[n++] = hex[a[i] >> 4];
            tmp[n++] = i ? '.' : 0;
        }
        n--;
        if (!suffix)
            suffix = "ip6.arpa";
    } else {
        return -1;
    }
    len = snprintf(buf, size, "%.*s.%s", (int)n, tmp, suffix);
    return len < 0 || (size_t)len >= size ? -1 : 0;
}

/* dns_type_name - "MX" etc. for logs */
const char *dns_type_name(uint16_t type)
{
    switch (type) {
    case DNS_T_A: return "A";
    case DNS_T_NS: return "NS";
    case DNS_T_CNAME: return "CNAME";
    case DNS_T_PTR: return "PTR";
    case DNS_T_MX: return "MX";
    case DNS_T_TXT: return "TXT";
    case DNS_T_AAAA: return "AAAA";
    case DNS_T_TLSA: return "TLSA";
    default: return "unknown";
    }
}

/* dns_status_name - for logs and tests */
const char *dns_status_name(dns_status_t status)
{
    switch (status) {
    case DNS_OK: return "ok";
    case DNS_NXDOMAIN: return "nxdomain";
    case DNS_NODATA: return "nodata";
    case DNS_TEMPFAIL: return "tempfail";
    case DNS_BOGUS: return "bogus";
    }
    return "unknown";
}

/* dns_result_clear - free what a result points to; keep it reusable */
void dns_result_clear(dns_result_t *res)
{
    for (size_t i = 0; i < res->nrr; i++) {
        free(res->rr[i].host);
        free(res->rr[i].data);
    }
    free(res->rr);
    free(res->canon);
    res->rr = NULL;
    res->nrr = 0;
    res->canon = NULL;
}

/* dns_result_dup - a copy the caller owns */
dns_result_t *dns_result_dup(const dns_result_t *res)
{
    dns_result_t *d = xcalloc(1, sizeof(*d));

    d->status = res->status;
    d->secure = res->secure;
    d->type = res->type;
    d->name = res->name ? xstrdup(res->name) : NULL;
    d->canon = res->canon ? xstrdup(res->canon) : NULL;
    if (res->why) {
        d->why_owned = xstrdup(res->why);
        d->why = d->why_owned;
    }
    if (res->nrr) {
        d->rr = xcalloc(res->nrr, sizeof(*d->rr));
        d->nrr = res->nrr;
        for (size_t i = 0; i < res->nrr; i++) {
            d->rr[i] = res->rr[i];
            if (res->rr[i].host)
                d->rr[i].host = xstrdup(res->rr[i].host);
            if (res->rr[i].data)
                d->rr[i].data = xmemdup(res->rr[i].data, res->rr[i].data_len + 1);
        }
    }
    return d;
}

/* dns_result_free - free a dns_result_dup copy and NULL the pointer */
void dns_result_free(dns_result_t **res)
{
    if (*res == NULL)
        return;
    dns_result_clear(*res);
    free((*res)->name);
    free((*res)->why_owned);
    xfreep(res);
}
