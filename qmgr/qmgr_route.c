/*
 * qmgr_route - which transport and next hop a recipient goes to.
 * resolve_addr() gives the address class (local, virtual, remote); then
 * $transport_maps (Postfix's transport(5) lookups: "user@domain",
 * "domain", ".parent" for subdomains, and "*" for remote domains only),
 * then $default_transport and $relayhost for remote mail. A result is
 * "transport:nexthop": an empty transport means the class's default; an
 * empty next hop means the recipient domain after an explicit transport
 * ("smtp:" bypasses $relayhost), the class's default after ":" alone.
 * Deviation from Postfix, on purpose: "*" never catches local or
 * virtual domains (a catch-all relay must not swallow local mail).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmgr.h"
#include "table/table.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QMGR_ROUTE_KEY_MAX 512

struct qmgr_route {
    char **specs;           /* $transport_maps */
    table_t **tables;       /* NULL where not open (retried on refresh) */
    size_t ntables;
    char *def_transport, *def_nexthop;  /* from $default_transport */
    const char *relayhost;
    char *tr_buf, *nh_buf;  /* the last answer */
    buf_t val;
};

/* qmgr_route_parse - "transport:nexthop" (either part may be empty; no
 * ':' means a transport alone); 0 or -1 for a bad transport name */
int qmgr_route_parse(const char *value, char **transport_r, char **nexthop_r)
{
    const char *colon = strchr(value, ':');
    size_t tlen = colon ? (size_t)(colon - value) : strlen(value);

    if (tlen > 32)
        return -1;
    for (size_t i = 0; i < tlen; i++)
        if (!(islower((unsigned char)value[i]) || isdigit((unsigned char)value[i])
              || value[i] == '-' || value[i] == '_'))
            return -1;
    *transport_r = xstrndup(value, tlen);
    *nexthop_r = xstrdup(colon ? colon + 1 : "");
    return 0;
}

/* qmgr_route_open - (re)open one table */
static void qmgr_route_open(qmgr_route_t *rt, size_t i)
{
    const char *why;

    if ((rt->tables[i] = table_open(rt->specs[i], &why)) == NULL)
        msg_warn("transport_maps: cannot open %s: %s", rt->specs[i], why);
}

/* qmgr_route_new - tables and defaults from the configuration */
qmgr_route_t *qmgr_route_new(conf_t *conf)
{
    qmgr_route_t *rt = xcalloc(1, sizeof(*rt));
    char **list = conf_list(conf, "transport_maps");

    for (size_t i = 0; list && list[i]; i++)
        rt->ntables++;
    rt->specs = xcalloc(rt->ntables + 1, sizeof(char *));
    rt->tables = xcalloc(rt->ntables + 1, sizeof(table_t *));
    for (size_t i = 0; i < rt->ntables; i++) {
        rt->specs[i] = xstrdup(list[i]);
        qmgr_route_open(rt, i);
    }
    if (qmgr_route_parse(conf_str(conf, "default_transport"), &rt->def_transport,
                         &rt->def_nexthop) < 0 || *rt->def_transport == 0) {
        msg_warn("bad default_transport \"%s\": using smtp", conf_str(conf, "default_transport"));
        free(rt->def_transport);
        rt->def_transport = xstrdup("smtp");
    }
    rt->relayhost = conf_str(conf, "relayhost");
    rt->tr_buf = xstrdup("");
    rt->nh_buf = xstrdup("");
    buf_init(&rt->val, 64 * 1024);
    return rt;
}

/* qmgr_route_free - close the tables and release everything */
void qmgr_route_free(qmgr_route_t **rtp)
{
    qmgr_route_t *rt = *rtp;

    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->ntables; i++) {
        table_close(&rt->tables[i]);
        free(rt->specs[i]);
    }
    free(rt->tables);
    free(rt->specs);
    free(rt->def_transport);
    free(rt->def_nexthop);
    free(rt->tr_buf);
    free(rt->nh_buf);
    buf_free(&rt->val);
    xfreep(rtp);
}

/* qmgr_route_refresh - reopen tables that changed on disk or failed */
void qmgr_route_refresh(qmgr_route_t *rt)
{
    for (size_t i = 0; i < rt->ntables; i++) {
        if (rt->tables[i] && !table_changed(rt->tables[i]))
            continue;
        if (rt->tables[i])
            table_close(&rt->tables[i]);
        qmgr_route_open(rt, i);
    }
}

/* qmgr_route_get - one key in every table; 1 found (rt->val), 0, -1 */
static int qmgr_route_get(qmgr_route_t *rt, const char *key, const char **why_r)
{
    for (size_t i = 0; i < rt->ntables; i++) {
        if (rt->tables[i] == NULL) {
            *why_r = "transport table unavailable";
            return -1;
        }
        int rc = table_get(rt->tables[i], key, &rt->val, why_r);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* qmgr_route_lookup - Postfix's order: address, domain, parents, "*" */
static int qmgr_route_lookup(qmgr_route_t *rt, const char *addr, const char *domain,
                             bool remote, const char **why_r)
{
    char key[QMGR_ROUTE_KEY_MAX];
    int rc;

    if (rt->ntables == 0)
        return 0;
    if (strlen(addr) < sizeof(key) && strchr(addr, '@')) {
        snprintf(key, sizeof(key), "%s", addr);
        for (char *p = key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if ((rc = qmgr_route_get(rt, key, why_r)) != 0)
            return rc;
    }
    if (*domain && strlen(domain) < sizeof(key)) {
        if ((rc = qmgr_route_get(rt, domain, why_r)) != 0)
            return rc;
        for (const char *p = strchr(domain, '.'); p; p = strchr(p + 1, '.')) {
            if ((rc = qmgr_route_get(rt, p, why_r)) != 0)
                return rc;
        }
    }
    return remote ? qmgr_route_get(rt, "*", why_r) : 0;
}

/* qmgr_route_set - the answer, in rt's buffers */
static void qmgr_route_set(qmgr_route_t *rt, const char *transport, const char *nexthop)
{
    char *t = xstrdup(transport), *n = xstrdup(nexthop);

    free(rt->tr_buf);
    free(rt->nh_buf);
    rt->tr_buf = t;
    rt->nh_buf = n;
}

/* qmgr_route_addr - 0 and the transport/nexthop (owned by rt, valid
 * until the next call), or -1 with why (a temporary error) */
int qmgr_route_addr(qmgr_route_t *rt, const char *addr, const char **transport_r,
                    const char **nexthop_r, const char **why_r)
{
    resolve_result_t res;
    char domain[QMGR_ROUTE_KEY_MAX];

    /* -1 with a LOCAL/VIRTUAL class: only the "known" lookup failed
     * (e.g. aliases.db missing); the agent does its own lookups */
    if (resolve_addr(qmgr.resolve, addr, &res) < 0 && res.cls == RESOLVE_REMOTE) {
        *why_r = res.why && *res.why ? res.why : "address resolver failure";
        return -1;
    }
    bool remote = res.cls == RESOLVE_REMOTE;
    snprintf(domain, sizeof(domain), "%s", res.nexthop ? res.nexthop : "");
    for (char *p = domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *def_tr = remote ? rt->def_transport : res.transport ? res.transport : "local";
    const char *def_nh = domain;
    if (remote && *rt->def_nexthop)
        def_nh = rt->def_nexthop;
    else if (remote && *rt->relayhost)
        def_nh = rt->relayhost;
    int rc = qmgr_route_lookup(rt, addr, domain, remote, why_r);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        qmgr_route_set(rt, def_tr, def_nh);
    } else {
        char *t, *n;
        if (qmgr_route_parse(buf_cstr(&rt->val), &t, &n) < 0) {
            msg_warn("transport_maps: bad entry for %s: \"%.100s\"", addr, buf_cstr(&rt->val));
            *why_r = "bad transport table entry";
            return -1;
        }
        /* "smtp:" names a transport: its next hop is the recipient
         * domain (so an entry can bypass $relayhost); ":" alone is
         * the same as no entry */
        qmgr_route_set(rt, *t ? t : def_tr, *n ? n : *t ? domain : def_nh);
        free(t);
        free(n);
    }
    *transport_r = rt->tr_buf;
    *nexthop_r = rt->nh_buf;
    return 0;
}
