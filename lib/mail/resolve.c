/* resolve - classify a recipient address: local, virtual or remote */
#include "mail/resolve.h"
#include "table/table.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define RESOLVE_MAX_LOCALPART 64        /* RFC 5321 4.5.3.1.1 */
#define RESOLVE_MAX_ADDR 1024
#define RESOLVE_REFRESH_INTERVAL 1      /* seconds between table checks */

/*
 * A table named by a parameter. A table that cannot be opened (a missing
 * aliases.db, say) does not stop the daemon: its lookups fail with a
 * temporary error until resolve_refresh() manages to open it, as
 * Postfix's surrogate tables do.
 */
typedef struct resolve_table {
    char *spec;
    table_t *t;         /* NULL when the open failed */
    char *open_why;
} resolve_table_t;

/* A list parameter: literal names plus tables to look names up in. */
typedef struct resolve_list {
    char **names;       /* lower-cased literals, NULL-terminated */
    size_t nnames;
    resolve_table_t *tables;
    size_t ntables;
} resolve_list_t;

/* An address of this host, for [address literal] destinations. */
typedef struct resolve_ip {
    int family;
    unsigned char addr[16];
} resolve_ip_t;

struct resolve {
    resolve_list_t mydestination;
    resolve_list_t virtual_domains;
    resolve_list_t alias_maps;
    resolve_list_t virtual_mailbox_maps;
    resolve_list_t virtual_alias_maps;
    char *myorigin;
    char *delimiters;
    resolve_ip_t *ips;
    size_t nips;
    time_t last_refresh;
    buf_t nexthop;
    buf_t why;
    buf_t key;
    buf_t val;
};

/* table_slot_open - open (or re-open) one table */
static void table_slot_open(resolve_table_t *s)
{
    const char *why;
    table_t *t = table_open(s->spec, &why);

    if (t == NULL) {
        if (s->open_why == NULL || strcmp(s->open_why, why) != 0)
            msg_warn("cannot open table %s: %s", s->spec, why);
        free(s->open_why);
        s->open_why = xstrdup(why);
        return;
    }
    table_close(&s->t);
    s->t = t;
    xfreep(&s->open_why);
}

/* list_add_name - a literal entry */
static void list_add_name(resolve_list_t *l, const char *name)
{
    l->names = xreallocarray(l->names, l->nnames + 2, sizeof(*l->names));
    l->names[l->nnames] = str_lower(xstrdup(name));
    l->names[++l->nnames] = NULL;
}

/* list_add_file - a "/file" entry: its words are entries ('#' comments) */
static void list_add_file(resolve_list_t *l, const char *path)
{
    FILE *fp = fopen(path, "re");
    char line[1024];

    if (fp == NULL) {
        msg_warn("cannot open %s: %s", path, strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char **words;

        line[strcspn(line, "#")] = 0;
        str_split(line, ", \t\r\n", &words);
        for (char **w = words; *w; w++)
            list_add_name(l, *w);
        str_argv_free(&words);
    }
    fclose(fp);
}

/* is_table_spec - "type:name" (not an address literal or a plain name) */
static bool is_table_spec(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");

    return n > 0 && s[n] == ':';
}

/* list_init - build a list from a list parameter */
static void list_init(resolve_list_t *l, conf_t *conf, const char *param, bool tables_only)
{
    char **v = conf_list(conf, param);

    memset(l, 0, sizeof(*l));
    for (; v && *v; v++) {
        if (tables_only || is_table_spec(*v)) {
            l->tables = xreallocarray(l->tables, l->ntables + 1, sizeof(*l->tables));
            l->tables[l->ntables].spec = xstrdup(*v);
            l->tables[l->ntables].t = NULL;
            l->tables[l->ntables].open_why = NULL;
            table_slot_open(&l->tables[l->ntables++]);
        } else if (**v == '/') {
            list_add_file(l, *v);
        } else {
            list_add_name(l, *v);
        }
    }
}

/* list_free - release a list */
static void list_free(resolve_list_t *l)
{
    for (size_t i = 0; i < l->nnames; i++)
        free(l->names[i]);
    free(l->names);
    for (size_t i = 0; i < l->ntables; i++) {
        table_close(&l->tables[i].t);
        free(l->tables[i].spec);
        free(l->tables[i].open_why);
    }
    free(l->tables);
    memset(l, 0, sizeof(*l));
}

/* list_lookup - 1 if key is in a table of the list, 0 if not, -1 on error */
static int list_lookup(resolve_t *r, resolve_list_t *l, const char *key)
{
    const char *why;

    for (size_t i = 0; i < l->ntables; i++) {
        resolve_table_t *s = &l->tables[i];
        int ret;

        if (s->t == NULL) {
            buf_reset(&r->why);
            buf_printf(&r->why, "table %s is unavailable: %s", s->spec, s->open_why);
            return -1;
        }
        if ((ret = table_get(s->t, key, &r->val, &why)) != 0) {
            if (ret < 0) {
                buf_reset(&r->why);
                buf_printf(&r->why, "table %s lookup error: %s", s->spec, why);
            }
            return ret;
        }
    }
    return 0;
}

/* list_match - is name (lower case) a literal entry or a table key? */
static int list_match(resolve_t *r, resolve_list_t *l, const char *name)
{
    for (size_t i = 0; i < l->nnames; i++)
        if (strcmp(l->names[i], name) == 0)
            return 1;
    return list_lookup(r, l, name);
}

/* add_ip - remember an address of this host */
static void add_ip(resolve_t *r, int family, const void *addr)
{
    resolve_ip_t *ip;

    r->ips = xreallocarray(r->ips, r->nips + 1, sizeof(*r->ips));
    ip = &r->ips[r->nips++];
    memset(ip, 0, sizeof(*ip));
    ip->family = family;
    memcpy(ip->addr, addr, family == AF_INET ? 4 : 16);
}

/* add_ip_text - an address given as text in inet_interfaces */
static void add_ip_text(resolve_t *r, const char *text)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, text, a) == 1)
        add_ip(r, AF_INET, a);
    else if (inet_pton(AF_INET6, text, a) == 1)
        add_ip(r, AF_INET6, a);
}

/* init_ips - loopback always; every interface address with inet_interfaces=all */
static void init_ips(resolve_t *r, conf_t *conf)
{
    char **ifs = conf_list(conf, "inet_interfaces");
    bool all = ifs == NULL || *ifs == NULL;
    struct ifaddrs *ifa, *p;

    add_ip_text(r, "127.0.0.1");
    add_ip_text(r, "::1");
    for (char **v = ifs; v && *v; v++) {
        if (strcasecmp(*v, "all") == 0)
            all = true;
        else
            add_ip_text(r, *v);
    }
    if (!all)
        return;
    if (getifaddrs(&ifa) < 0) {
        msg_warn("getifaddrs: %s", strerror(errno));
        return;
    }
    for (p = ifa; p; p = p->ifa_next) {
        if (p->ifa_addr == NULL)
            continue;
        if (p->ifa_addr->sa_family == AF_INET)
            add_ip(r, AF_INET, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr);
        else if (p->ifa_addr->sa_family == AF_INET6)
            add_ip(r, AF_INET6, &((struct sockaddr_in6 *)(void *)p->ifa_addr)->sin6_addr);
    }
    freeifaddrs(ifa);
}

/* resolve_new - read the parameters and open the tables */
resolve_t *resolve_new(conf_t *conf, const char **why_r)
{
    resolve_t *r = xcalloc(1, sizeof(*r));

    list_init(&r->mydestination, conf, "mydestination", false);
    list_init(&r->virtual_domains, conf, "virtual_mailbox_domains", false);
    list_init(&r->alias_maps, conf, "alias_maps", true);
    list_init(&r->virtual_mailbox_maps, conf, "virtual_mailbox_maps", true);
    list_init(&r->virtual_alias_maps, conf, "virtual_alias_maps", true);
    r->myorigin = str_lower(xstrdup(conf_str(conf, "myorigin")));
    r->delimiters = xstrdup(conf_str(conf, "recipient_delimiter"));
    init_ips(r, conf);
    r->last_refresh = time(NULL);
    buf_init(&r->nexthop, RESOLVE_MAX_ADDR);
    buf_init(&r->why, 4096);
    buf_init(&r->key, RESOLVE_MAX_ADDR * 2);
    buf_init(&r->val, 1024 * 1024);
    return r;
}

/* refresh_list - re-open the tables of a list that changed or failed */
static int refresh_list(resolve_list_t *l)
{
    int n = 0;

    for (size_t i = 0; i < l->ntables; i++) {
        resolve_table_t *s = &l->tables[i];

        if (s->t == NULL || table_changed(s->t)) {
            table_slot_open(s);
            n += s->t != NULL && s->open_why == NULL;
        }
    }
    return n;
}

/* resolve_refresh - see resolve.h (at most once a second) */
int resolve_refresh(resolve_t *r)
{
    time_t now = time(NULL);
    int n = 0;

    if (now - r->last_refresh < RESOLVE_REFRESH_INTERVAL && now >= r->last_refresh)
        return 0;
    r->last_refresh = now;
    n += refresh_list(&r->mydestination);
    n += refresh_list(&r->virtual_domains);
    n += refresh_list(&r->alias_maps);
    n += refresh_list(&r->virtual_mailbox_maps);
    n += refresh_list(&r->virtual_alias_maps);
    return n;
}

/* literal_is_local - "[1.2.3.4]" or "[IPv6:...]" naming this host */
static bool literal_is_local(resolve_t *r, const char *domain)
{
    size_t len = strlen(domain);
    char text[64];
    unsigned char a[16];
    int family = AF_INET;
    const char *p = domain + 1;

    if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof(text))
        return false;
    if (strncasecmp(p, "ipv6:", 5) == 0) {
        family = AF_INET6;
        p += 5;
    }
    memcpy(text, p, (size_t)(domain + len - 1 - p));
    text[domain + len - 1 - p] = 0;
    if (inet_pton(family, text, a) != 1)
        return false;
    for (size_t i = 0; i < r->nips; i++)
        if (r->ips[i].family == family
            && memcmp(r->ips[i].addr, a, family == AF_INET ? 4 : 16) == 0)
            return true;
    return false;
}

/* plausible_user - a local part we may hand to aliases and getpwnam */
static bool plausible_user(const char *local)
{
    size_t len = strlen(local);

    if (len == 0 || len > RESOLVE_MAX_LOCALPART)
        return false;
    for (const unsigned char *p = (const unsigned char *)local; *p; p++)
        if (*p == '/' || *p == '@' || *p == '%' || *p == '!' || *p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* strip_ext - cut "user+ext" to "user" in place; false if nothing cut */
static bool strip_ext(const resolve_t *r, char *local)
{
    size_t n;

    if (*r->delimiters == 0)
        return false;
    n = strcspn(local, r->delimiters);
    if (n == 0 || local[n] == 0)
        return false;
    local[n] = 0;
    return true;
}

/* system_user - 1 if getpwnam knows name, 0 if not, -1 on error */
static int system_user(resolve_t *r, const char *name)
{
    struct passwd pw, *res = NULL;
    char sbuf[4096];
    int err = getpwnam_r(name, &pw, sbuf, sizeof(sbuf), &res);

    if (res != NULL)
        return 1;
    if (err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM)
        return 0;
    buf_reset(&r->why);
    buf_printf(&r->why, "password file lookup error for \"%s\": %s", name, strerror(err));
    return -1;
}

/* local_known - the LOCAL class test on a lower-cased local part */
static int local_known(resolve_t *r, char *local)
{
    int ret;

    if (!plausible_user(local))
        return 0;
    if (strcmp(local, "postmaster") == 0)
        return 1;
    /* Like Postfix: the full local part first ("user+ext" may be an
     * alias of its own), then without the extension. */
    if ((ret = list_lookup(r, &r->alias_maps, local)) != 0)
        return ret;
    if ((ret = system_user(r, local)) != 0)
        return ret;
    if (!strip_ext(r, local))
        return 0;
    if (strcmp(local, "postmaster") == 0)
        return 1;
    if ((ret = list_lookup(r, &r->alias_maps, local)) != 0)
        return ret;
    return system_user(r, local);
}

/* virtual_lookup - key in virtual_mailbox_maps or virtual_alias_maps */
static int virtual_lookup(resolve_t *r, const char *key)
{
    int ret;

    if ((ret = list_lookup(r, &r->virtual_mailbox_maps, key)) != 0)
        return ret;
    return list_lookup(r, &r->virtual_alias_maps, key);
}

/* virtual_known - the VIRTUAL class test: address, address less
 * extension, then the "@domain" catch-all */
static int virtual_known(resolve_t *r, char *local, const char *domain)
{
    int ret;

    if (!plausible_user(local))
        return 0;
    if (strcmp(local, "postmaster") == 0)
        return 1;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1 && !strip_ext(r, local))
            continue;
        if (pass == 1 && strcmp(local, "postmaster") == 0)
            return 1;
        buf_reset(&r->key);
        if (buf_printf(&r->key, "%s@%s", pass == 2 ? "" : local, domain) < 0)
            return 0;
        if ((ret = virtual_lookup(r, buf_cstr(&r->key))) != 0)
            return ret;
    }
    return 0;
}

/* resolve_addr - see resolve.h */
int resolve_addr(resolve_t *r, const char *addr, resolve_result_t *res)
{
    const char *at = strrchr(addr, '@');
    char *local, *domain;
    size_t dlen;
    int ret = 0, known = 0;

    memset(res, 0, sizeof(*res));
    buf_reset(&r->why);
    buf_reset(&r->nexthop);
    local = at ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
    domain = xstrdup(at ? at + 1 : r->myorigin);
    str_lower(local);
    str_lower(domain);
    dlen = strlen(domain);
    if (dlen > 0 && domain[dlen - 1] == '.')
        domain[dlen - 1] = 0;
    if (buf_puts(&r->nexthop, domain) < 0)
        buf_puts(&r->nexthop, "");
    res->nexthop = buf_cstr(&r->nexthop);
    res->transport = "local";
    res->cls = RESOLVE_REMOTE;

    if (*domain == 0 || (ret = list_match(r, &r->mydestination, domain)) == 1
        || (*domain == '[' && literal_is_local(r, domain))) {
        res->cls = RESOLVE_LOCAL;
        known = local_known(r, local);
    } else if (ret < 0) {
        known = -1;
    } else if ((ret = list_match(r, &r->virtual_domains, domain)) == 1) {
        res->cls = RESOLVE_VIRTUAL;
        known = virtual_known(r, local, domain);
    } else if (ret < 0) {
        known = -1;
    } else {
        res->transport = "smtp";
    }
    free(local);
    free(domain);
    if (known < 0) {
        res->why = buf_cstr(&r->why);
        return -1;
    }
    res->known = known == 1;
    return 0;
}

/* resolve_class_name - "local", "virtual", "remote" */
const char *resolve_class_name(resolve_class_t cls)
{
    switch (cls) {
    case RESOLVE_LOCAL:
        return "local";
    case RESOLVE_VIRTUAL:
        return "virtual";
    case RESOLVE_REMOTE:
        return "remote";
    }
    return "unknown";
}

/* resolve_free - release everything and NULL the pointer */
void resolve_free(resolve_t **rp)
{
    resolve_t *r = *rp;

    if (r == NULL)
        return;
    list_free(&r->mydestination);
    list_free(&r->virtual_domains);
    list_free(&r->alias_maps);
    list_free(&r->virtual_mailbox_maps);
    list_free(&r->virtual_alias_maps);
    free(r->myorigin);
    free(r->delimiters);
    free(r->ips);
    buf_free(&r->nexthop);
    buf_free(&r->why);
    buf_free(&r->key);
    buf_free(&r->val);
    free(r);
    *rp = NULL;
}
