/* dns_test.c - unit tests of the pure parts of lib/dns: reply parser, MX order, names */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "dns/dns.h"
#include "dns/dns_reply.h"
#include "test/test.h"
#include "util/xmalloc.h"

/* A tiny packet builder for hand-made replies. */
typedef struct pkt {
    unsigned char b[4096];
    size_t n;
} pkt_t;

static void p8(pkt_t *p, unsigned v) { p->b[p->n++] = (unsigned char)v; }
static void p16(pkt_t *p, unsigned v) { p8(p, v >> 8); p8(p, v & 0xFF); }
static void p32(pkt_t *p, uint32_t v) { p16(p, v >> 16); p16(p, v & 0xFFFF); }
static void pbytes(pkt_t *p, const void *d, size_t n) { memcpy(p->b + p->n, d, n); p->n += n; }

/* pname - an uncompressed name ("" = root) */
static void pname(pkt_t *p, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p8(p, (unsigned)l);
        pbytes(p, name, l);
        name += l + (dot ? 1 : 0);
    }
    p8(p, 0);
}

/* start - header + one question; returns the offset of the qname */
static size_t start(pkt_t *p, unsigned rcode, unsigned ancount, const char *qname, unsigned qtype)
{
    p->n = 0;
    p16(p, 0x1234);
    p16(p, 0x8180 | rcode);
    p16(p, 1); p16(p, ancount); p16(p, 0); p16(p, 0);
    pname(p, qname);
    p16(p, qtype); p16(p, 1);
    return 12;
}

/* rr_hdr - owner as a pointer to off, type, class IN, ttl, rdlength */
static void rr_ptr(pkt_t *p, size_t off, unsigned type, unsigned rdlen)
{
    p16(p, 0xC000 | (unsigned)off);
    p16(p, type); p16(p, 1); p32(p, 300); p16(p, rdlen);
}

static void test_mx(void)
{
    pkt_t p;
    dns_result_t r = { 0 };
    const char *why = NULL;
    size_t q = start(&p, 0, 3, "example.test", DNS_T_MX);

    rr_ptr(&p, q, DNS_T_MX, 2 + 4 + 2);             /* 20 mx1.<ptr> */
    p16(&p, 20); p8(&p, 3); pbytes(&p, "mx1", 3); p16(&p, 0xC000 | q);
    rr_ptr(&p, q, DNS_T_MX, 2 + 4 + 2);
    p16(&p, 10); p8(&p, 3); pbytes(&p, "mx0", 3); p16(&p, 0xC000 | q);
    rr_ptr(&p, q, DNS_T_MX, 2 + 4 + 2);
    p16(&p, 20); p8(&p, 3); pbytes(&p, "mx2", 3); p16(&p, 0xC000 | q);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "example.test.", DNS_T_MX, &r, &why), 0);
    TEST_INTEQ(r.status, DNS_OK);
    TEST_INTEQ(r.nrr, 3);
    TEST_CHECK(!r.secure);
    TEST_STREQ(r.canon, "example.test");
    TEST_STREQ(r.rr[0].host, "mx1.example.test");
    TEST_INTEQ(r.rr[1].pref, 10);
    TEST_INTEQ(r.rr[0].ttl, 300);
    TEST_CHECK(!dns_mx_is_null(&r));
    dns_mx_sort(&r, 42);
    TEST_STREQ(r.rr[0].host, "mx0.example.test");
    TEST_INTEQ(r.rr[1].pref, 20);
    TEST_INTEQ(r.rr[2].pref, 20);
    dns_result_clear(&r);

    /* Null MX (RFC 7505) */
    q = start(&p, 0, 1, "null.test", DNS_T_MX);
    rr_ptr(&p, q, DNS_T_MX, 3);
    p16(&p, 0); p8(&p, 0);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "null.test", DNS_T_MX, &r, &why), 0);
    TEST_INTEQ(r.nrr, 1);
    TEST_STREQ(r.rr[0].host, ".");
    TEST_CHECK(dns_mx_is_null(&r));
    r.rr[0].pref = 10;              /* "." with preference 10 is not null MX */
    TEST_CHECK(!dns_mx_is_null(&r));
    dns_result_clear(&r);
}

static void test_rcodes(void)
{
    pkt_t p;
    dns_result_t r = { 0 };
    const char *why = NULL;

    start(&p, 3, 0, "nx.test", DNS_T_A);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "nx.test", DNS_T_A, &r, &why), 0);
    TEST_INTEQ(r.status, DNS_NXDOMAIN);
    dns_result_clear(&r);

    start(&p, 2, 0, "sf.test", DNS_T_A);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "sf.test", DNS_T_A, &r, &why), 0);
    TEST_INTEQ(r.status, DNS_TEMPFAIL);
    TEST_STREQ(r.why, "SERVFAIL");
    dns_result_clear(&r);

    start(&p, 5, 0, "sf.test", DNS_T_A);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "sf.test", DNS_T_A, &r, &why), 0);
    TEST_INTEQ(r.status, DNS_TEMPFAIL);
    TEST_STREQ(r.why, "REFUSED");
    dns_result_clear(&r);

    start(&p, 0, 0, "empty.test", DNS_T_MX);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "EMPTY.test", DNS_T_MX, &r, &why), 0);
    TEST_INTEQ(r.status, DNS_NODATA);
    dns_result_clear(&r);
}

static void test_types(void)
{
    pkt_t p;
    dns_result_t r = { 0 };
    const char *why = NULL;
    unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
    char text[INET6_ADDRSTRLEN];
    size_t q, c;

    /* CNAME alias.test -> real.test, then A for real.test, plus an A for
     * an unrelated owner that must be ignored. */
    q = start(&p, 0, 3, "alias.test", DNS_T_A);
    rr_ptr(&p, q, DNS_T_CNAME, 7);
    c = p.n;
    p8(&p, 4); pbytes(&p, "real", 4); p16(&p, 0xC000 | (q + 6));
    p16(&p, 0xC000 | c); p16(&p, DNS_T_A); p16(&p, 1); p32(&p, 60); p16(&p, 4);
    p8(&p, 192); p8(&p, 0); p8(&p, 2); p8(&p, 1);
    pname(&p, "other.test"); p16(&p, DNS_T_A); p16(&p, 1); p32(&p, 60); p16(&p, 4);
    p8(&p, 10); p8(&p, 0); p8(&p, 0); p8(&p, 1);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "alias.test", DNS_T_A, &r, &why), 0);
    TEST_INTEQ(r.status, DNS_OK);
    TEST_STREQ(r.canon, "real.test");
    TEST_INTEQ(r.nrr, 1);
    TEST_INTEQ(r.rr[0].addr.ss_family, AF_INET);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&r.rr[0].addr)->sin_addr, text, sizeof(text));
    TEST_STREQ(text, "192.0.2.1");
    dns_result_clear(&r);

    q = start(&p, 0, 1, "v6.test", DNS_T_AAAA);
    rr_ptr(&p, q, DNS_T_AAAA, 16);
    pbytes(&p, v6, 16);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "v6.test", DNS_T_AAAA, &r, &why), 0);
    TEST_INTEQ(r.rr[0].addr.ss_family, AF_INET6);
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&r.rr[0].addr)->sin6_addr, text, sizeof(text));
    TEST_STREQ(text, "2001:db8::1");
    dns_result_clear(&r);

    q = start(&p, 0, 1, "txt.test", DNS_T_TXT);
    rr_ptr(&p, q, DNS_T_TXT, 6 + 4);
    p8(&p, 5); pbytes(&p, "hello", 5); p8(&p, 3); pbytes(&p, " ok", 3);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "txt.test", DNS_T_TXT, &r, &why), 0);
    TEST_STREQ((char *)r.rr[0].data, "hello ok");
    TEST_INTEQ(r.rr[0].data_len, 8);
    dns_result_clear(&r);

    q = start(&p, 0, 1, "_25._tcp.mx.test", DNS_T_TLSA);
    rr_ptr(&p, q, DNS_T_TLSA, 3 + 32);
    p8(&p, 3); p8(&p, 1); p8(&p, 1);
    for (unsigned i = 0; i < 32; i++)
        p8(&p, i);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "_25._tcp.mx.test", DNS_T_TLSA, &r, &why), 0);
    TEST_INTEQ(r.rr[0].usage, 3);
    TEST_INTEQ(r.rr[0].selector, 1);
    TEST_INTEQ(r.rr[0].mtype, 1);
    TEST_INTEQ(r.rr[0].data_len, 32);
    TEST_INTEQ(r.rr[0].data[31], 31);
    dns_result_clear(&r);

    q = start(&p, 0, 1, "1.0.0.127.in-addr.arpa", DNS_T_PTR);
    rr_ptr(&p, q, DNS_T_PTR, 11);
    pname(&p, "localhost");
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "1.0.0.127.in-addr.arpa", DNS_T_PTR, &r, &why), 0);
    TEST_STREQ(r.rr[0].host, "localhost");
    dns_result_clear(&r);
}

static void test_malformed(void)
{
    pkt_t p;
    dns_result_t r = { 0 };
    const char *why = NULL;
    size_t q, off;
    char out[DNS_NAME_BUFSIZE];

    q = start(&p, 0, 1, "a.test", DNS_T_A);
    rr_ptr(&p, q, DNS_T_A, 4);
    p8(&p, 1); p8(&p, 2); p8(&p, 3); p8(&p, 4);
    for (size_t cut = 0; cut < p.n; cut++) {
        int rc = dns_reply_parse(p.b, cut, "a.test", DNS_T_A, &r, &why);
        TEST_CHECK(rc == -1 || r.status != DNS_OK);
        dns_result_clear(&r);
    }
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "b.test", DNS_T_A, &r, &why), -1);
    TEST_STREQ(why, "DNS reply does not match the question");
    TEST_INTEQ(r.status, DNS_TEMPFAIL);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "a.test", DNS_T_AAAA, &r, &why), -1);
    /* A record with the wrong rdlength. */
    p.b[p.n - 5] = 3;
    TEST_INTEQ(dns_reply_parse(p.b, p.n - 1, "a.test", DNS_T_A, &r, &why), -1);

    /* Compression loop and forward pointer. */
    memset(&p, 0, sizeof(p));
    p.n = 12;
    p16(&p, 0xC000 | 12);
    off = 12;
    TEST_INTEQ(dns_name_expand(p.b, p.n, &off, out, sizeof(out)), -1);
    p.n = 12;
    p16(&p, 0xC000 | 20);
    pname(&p, "x");
    off = 12;
    TEST_INTEQ(dns_name_expand(p.b, p.n, &off, out, sizeof(out)), -1);
    /* Escapes: a dot, a backslash and a control byte inside a label. */
    p.n = 12;
    p8(&p, 4); pbytes(&p, "a.\\\001", 4); p8(&p, 1); pbytes(&p, "b", 1); p8(&p, 0);
    off = 12;
    TEST_INTEQ(dns_name_expand(p.b, p.n, &off, out, sizeof(out)), 0);
    TEST_STREQ(out, "a\\.\\\\\\001.b");
    TEST_INTEQ(off, p.n);
    /* A name over 255 bytes. */
    p.n = 12;
    for (int i = 0; i < 5; i++) {
        p8(&p, 63);
        for (int j = 0; j < 63; j++)
            p8(&p, 'x');
    }
    p8(&p, 0);
    off = 12;
    TEST_INTEQ(dns_name_expand(p.b, p.n, &off, out, sizeof(out)), -1);
    /* Not a response. */
    start(&p, 0, 0, "a.test", DNS_T_A);
    p.b[2] = 0x01;
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "a.test", DNS_T_A, &r, &why), -1);
}

static void test_sort(void)
{
    dns_result_t r = { .status = DNS_OK, .type = DNS_T_MX };
    dns_rr_t rr[6];
    static const unsigned prefs[6] = { 30, 10, 20, 20, 20, 5 };
    char names[6][8];
    bool first_seen[3] = { false, false, false };

    for (int seed = 1; seed <= 60; seed++) {
        for (int i = 0; i < 6; i++) {
            memset(&rr[i], 0, sizeof(rr[i]));
            rr[i].type = DNS_T_MX;
            rr[i].pref = (uint16_t)prefs[i];
            snprintf(names[i], sizeof(names[i]), "mx%d", i);
            rr[i].host = names[i];
        }
        r.rr = rr;
        r.nrr = 6;
        dns_mx_sort(&r, (uint64_t)seed);
        bool ordered = true;
        for (int i = 1; i < 6; i++)
            ordered &= rr[i - 1].pref <= rr[i].pref;
        TEST_CHECK(ordered);
        TEST_STREQ(rr[0].host, "mx5");
        TEST_STREQ(rr[5].host, "mx0");
        first_seen[rr[2].host[2] - '2'] = true;
    }
    /* Each of the three preference-20 hosts came first at least once. */
    TEST_CHECK(first_seen[0] && first_seen[1] && first_seen[2]);
    /* Same seed, same order. */
    for (int i = 0; i < 6; i++)
        rr[i].host = names[i], rr[i].pref = (uint16_t)prefs[i];
    dns_mx_sort(&r, 7);
    char order1[8];
    for (int i = 0; i < 6; i++)
        order1[i] = rr[i].host[2];
    for (int i = 0; i < 6; i++)
        rr[i].host = names[i], rr[i].pref = (uint16_t)prefs[i];
    dns_mx_sort(&r, 7);
    for (int i = 0; i < 6; i++)
        TEST_CHECK(order1[i] == rr[i].host[2]);
    r.rr = NULL;
    r.nrr = 0;
}

static void test_names(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    char buf[128];

    inet_pton(AF_INET, "192.0.2.10", &sin.sin_addr);
    TEST_INTEQ(dns_rev_name((struct sockaddr *)&sin, NULL, buf, sizeof(buf)), 0);
    TEST_STREQ(buf, "10.2.0.192.in-addr.arpa");
    TEST_INTEQ(dns_rev_name((struct sockaddr *)&sin, "zen.example", buf, sizeof(buf)), 0);
    TEST_STREQ(buf, "10.2.0.192.zen.example");
    TEST_INTEQ(dns_rev_name((struct sockaddr *)&sin, NULL, buf, 10), -1);
    inet_pton(AF_INET6, "2001:db8::567:89ab", &sin6.sin6_addr);
    TEST_INTEQ(dns_rev_name((struct sockaddr *)&sin6, NULL, buf, sizeof(buf)), 0);
    TEST_STREQ(buf, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    TEST_STREQ(dns_type_name(DNS_T_TLSA), "TLSA");
    TEST_STREQ(dns_status_name(DNS_BOGUS), "bogus");
}

static void test_dup(void)
{
    pkt_t p;
    dns_result_t r = { 0 }, *d;
    const char *why;
    size_t q = start(&p, 0, 1, "txt.test", DNS_T_TXT);

    rr_ptr(&p, q, DNS_T_TXT, 4);
    p8(&p, 3); pbytes(&p, "abc", 3);
    TEST_INTEQ(dns_reply_parse(p.b, p.n, "txt.test", DNS_T_TXT, &r, &why), 0);
    r.name = "txt.test";
    r.why = "static";
    d = dns_result_dup(&r);
    dns_result_clear(&r);
    TEST_STREQ((char *)d->rr[0].data, "abc");
    TEST_STREQ(d->name, "txt.test");
    TEST_STREQ(d->why, "static");
    dns_result_free(&d);
    TEST_CHECK(d == NULL);
}

static void test_ctx_errors(void)
{
    event_loop_t *loop = event_loop_new();
    const char *why = NULL;
    const char *bad[] = { "127.0.0.1:99999", NULL };
    const char *bad2[] = { "not-an-ip", NULL };
    const char *good[] = { "127.0.0.1:5353", "[::1]:53", "::1", NULL };
    dns_ctx_t *ctx;

    TEST_CHECK(dns_ctx_new(loop, bad, NULL, &why) == NULL);
    TEST_CHECK(why && strstr(why, "dns_servers") != NULL);
    TEST_CHECK(dns_ctx_new(loop, bad2, NULL, &why) == NULL);
    TEST_CHECK(dns_ctx_new(loop, good, "/nonexistent/root.key", &why) == NULL);
    TEST_CHECK(why && strstr(why, "dnssec_trust_anchor_file") != NULL);
    ctx = dns_ctx_new(loop, good, NULL, &why);
    TEST_CHECK(ctx != NULL);
    dns_ctx_free(&ctx);
    TEST_CHECK(ctx == NULL);
    event_loop_free(&loop);
}

int main(void)
{
    test_mx();
    test_rcodes();
    test_types();
    test_malformed();
    test_sort();
    test_names();
    test_dup();
    test_ctx_errors();
    return test_done();
}
