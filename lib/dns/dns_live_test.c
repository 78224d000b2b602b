/* dns_live_test.c - lib/dns against a real DNS environment on loopback
 *
 * Run by `dns_env.py --run dns_live_test` (ctest unit.dns_live), which
 * starts nsd + a validating unbound with the zones of add_default_zones()
 * and sets STORK_DNS_SERVERS and STORK_DNS_ANCHOR. Without them the test
 * skips (exit 77). Every lookup runs concurrently in one event loop,
 * bounded by a 30 s guard timer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "dns/dns.h"
#include "test/test.h"
#include "util/xmalloc.h"

typedef struct want want_t;
typedef void check_fn(const want_t *w, const dns_result_t *r);

struct want {
    const char *name;
    uint16_t type;
    unsigned flags;
    dns_status_t status;
    int secure;                     /* -1: don't care */
    check_fn *check;
    int done;
};

static event_loop_t *loop;
static int outstanding;
static int cancelled_called;

/* addr_text - the address of rr i as text */
static const char *addr_text(const dns_result_t *r, size_t i)
{
    static char buf[INET6_ADDRSTRLEN];
    const struct sockaddr_storage *ss = &r->rr[i].addr;

    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof(buf));
    return buf;
}

static void check_mx4(const want_t *w, const dns_result_t *r)
{
    dns_result_t *d = dns_result_dup(r);

    TEST_INTEQ(d->nrr, 4);
    dns_mx_sort(d, 0);
    TEST_STREQ(d->rr[0].host, "mx1.mx.test");
    TEST_INTEQ(d->rr[0].pref, 10);
    TEST_INTEQ(d->rr[1].pref, 20);
    TEST_INTEQ(d->rr[2].pref, 20);
    TEST_STREQ(d->rr[3].host, "mx4.mx.test");
    TEST_CHECK(!dns_mx_is_null(d));
    dns_result_free(&d);
}

static void check_null(const want_t *w, const dns_result_t *r)
{
    TEST_CHECK(dns_mx_is_null(r));
}

static void check_a7(const want_t *w, const dns_result_t *r)
{
    TEST_INTEQ(r->nrr, 1);
    TEST_STREQ(addr_text(r, 0), "127.0.0.7");
}

static void check_aaaa(const want_t *w, const dns_result_t *r)
{
    TEST_INTEQ(r->nrr, 1);
    TEST_STREQ(addr_text(r, 0), "::1");
}

static void check_cname(const want_t *w, const dns_result_t *r)
{
    TEST_STREQ(r->canon, "mx1.mx.test");
    TEST_STREQ(addr_text(r, 0), "127.0.0.11");
}

static void check_txt(const want_t *w, const dns_result_t *r)
{
    TEST_STREQ((const char *)r->rr[0].data, "v=spf1 -all second");
}

static void check_ptr(const want_t *w, const dns_result_t *r)
{
    TEST_STREQ(r->rr[0].host, "localhost.test");
}

static void check_tlsa(const want_t *w, const dns_result_t *r)
{
    TEST_INTEQ(r->nrr, 1);
    TEST_INTEQ(r->rr[0].usage, 3);
    TEST_INTEQ(r->rr[0].selector, 1);
    TEST_INTEQ(r->rr[0].mtype, 1);
    TEST_INTEQ(r->rr[0].data_len, 32);
    TEST_INTEQ(r->rr[0].data[0], 0);
    TEST_INTEQ(r->rr[0].data[31], 31);
}

static void check_why(const want_t *w, const dns_result_t *r)
{
    TEST_CHECK(r->why != NULL);
    TEST_INTEQ(r->nrr, 0);
    fprintf(stderr, "  %s %s: %s\n", w->name, dns_type_name(w->type), r->why ? r->why : "");
}

static want_t wants[] = {
    /* c-ares: never secure, even for the signed zone */
    { "mx.test", DNS_T_MX, 0, DNS_OK, 0, check_mx4, 0 },
    { "nullmx.test", DNS_T_MX, 0, DNS_OK, 0, check_null, 0 },
    { "nomx.test", DNS_T_MX, 0, DNS_NODATA, 0, NULL, 0 },
    { "nomx.test", DNS_T_A, 0, DNS_OK, 0, check_a7, 0 },
    { "nomx.test.", DNS_T_AAAA, 0, DNS_OK, 0, check_aaaa, 0 },
    { "nosuch.test", DNS_T_A, 0, DNS_NXDOMAIN, 0, NULL, 0 },
    { "alias.mx.test", DNS_T_A, 0, DNS_OK, 0, check_cname, 0 },
    { "txt.test", DNS_T_TXT, 0, DNS_OK, 0, check_txt, 0 },
    { "1.0.0.127.in-addr.arpa", DNS_T_PTR, 0, DNS_OK, 0, check_ptr, 0 },
    { "dane.test", DNS_T_MX, 0, DNS_OK, 0, NULL, 0 },
    { "_25._tcp.mx.dane.test", DNS_T_TLSA, 0, DNS_OK, 0, check_tlsa, 0 },
    { "bad..name", DNS_T_A, 0, DNS_TEMPFAIL, 0, check_why, 0 },
    /* libunbound: secure only for the signed chain */
    { "_25._tcp.mx.dane.test", DNS_T_TLSA, DNS_F_VALIDATE, DNS_OK, 1, check_tlsa, 0 },
    { "dane.test", DNS_T_MX, DNS_F_VALIDATE, DNS_OK, 1, NULL, 0 },
    { "nosuch.dane.test", DNS_T_A, DNS_F_VALIDATE, DNS_NXDOMAIN, 1, NULL, 0 },
    { "mx.dane.test", DNS_T_AAAA, DNS_F_VALIDATE, DNS_NODATA, 1, NULL, 0 },
    { "mx.test", DNS_T_MX, DNS_F_VALIDATE, DNS_OK, 0, check_mx4, 0 },
    { "_25._tcp.mx1.mx.test", DNS_T_TLSA, DNS_F_VALIDATE, DNS_NXDOMAIN, 0, NULL, 0 },
    { "bogus.test", DNS_T_MX, DNS_F_VALIDATE, DNS_BOGUS, 0, check_why, 0 },
    { "_25._tcp.mx.bogus.test", DNS_T_TLSA, DNS_F_VALIDATE, DNS_BOGUS, 0, check_why, 0 },
};
#define NWANTS (sizeof(wants) / sizeof(wants[0]))

/* got - one result: compare with what we want */
static void got(const dns_result_t *r, void *arg)
{
    want_t *w = arg;

    w->done++;
    if (r->status != w->status)
        fprintf(stderr, "%s %s flags %u: status %s (%s), want %s\n", w->name,
                dns_type_name(w->type), w->flags, dns_status_name(r->status),
                r->why ? r->why : "", dns_status_name(w->status));
    TEST_INTEQ(r->status, w->status);
    if (w->secure >= 0)
        TEST_INTEQ(r->secure, w->secure);
    TEST_INTEQ(r->type, w->type);
    TEST_STREQ(r->name, w->name);
    if (w->check && r->status == w->status)
        w->check(w, r);
    if (--outstanding == 0)
        event_loop_stop(loop);
}

static void never(const dns_result_t *r, void *arg)
{
    cancelled_called++;
}

static void guard(event_loop_t *l, void *arg)
{
    fprintf(stderr, "dns_live_test: guard timer fired, %d lookups outstanding\n", outstanding);
    TEST_CHECK(0);
    event_loop_stop(l);
}

/* test_main_set - every wanted lookup at once, plus a cancelled one */
static void test_main_set(const char *const *servers, const char *anchor)
{
    const char *why = NULL;
    dns_ctx_t *ctx = dns_ctx_new(loop, servers, anchor, &why);
    event_timer_t *g;
    dns_query_t *c1, *c2;

    TEST_CHECK(ctx != NULL);
    if (!ctx) {
        fprintf(stderr, "dns_ctx_new: %s\n", why);
        return;
    }
    for (size_t i = 0; i < NWANTS; i++) {
        outstanding++;
        dns_lookup(ctx, wants[i].name, wants[i].type, wants[i].flags, got, &wants[i]);
    }
    c1 = dns_lookup(ctx, "mx.test", DNS_T_MX, 0, never, NULL);
    c2 = dns_lookup(ctx, "dane.test", DNS_T_MX, DNS_F_VALIDATE, never, NULL);
    dns_cancel(ctx, &c1);
    dns_cancel(ctx, &c2);
    TEST_CHECK(c1 == NULL && c2 == NULL);
    g = event_timer_add(loop, 30000, guard, NULL);
    event_loop_run(loop);
    event_timer_cancel(loop, &g);
    for (size_t i = 0; i < NWANTS; i++)
        if (wants[i].done != 1)
            fprintf(stderr, "%s %s: called back %d times\n", wants[i].name,
                    dns_type_name(wants[i].type), wants[i].done);
    for (size_t i = 0; i < NWANTS; i++)
        TEST_INTEQ(wants[i].done, 1);
    /* Pending lookups at free: dropped without callbacks or leaks. */
    dns_lookup(ctx, "nomx.test", DNS_T_A, 0, never, NULL);
    dns_lookup(ctx, "nomx.test", DNS_T_A, DNS_F_VALIDATE, never, NULL);
    dns_ctx_free(&ctx);
    TEST_INTEQ(cancelled_called, 0);
}

static void on_timeout(const dns_result_t *r, void *arg)
{
    int *n = arg;

    TEST_INTEQ(r->status, DNS_TEMPFAIL);
    TEST_STREQ(r->why, "DNS lookup timed out");
    if (++*n == 2)
        event_loop_stop(loop);
}

/* test_timeout - a server that never answers: both back ends give up in time */
static void test_timeout(const char *anchor)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    char server[64];
    const char *servers[] = { server, NULL };
    const char *why;
    dns_ctx_t *ctx;
    event_timer_t *g;
    int n = 0;
    int64_t t0;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0
        || getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        TEST_CHECK(0);
        return;
    }
    snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(sin.sin_port));
    ctx = dns_ctx_new(loop, servers, anchor, &why);
    TEST_CHECK(ctx != NULL);
    if (!ctx)
        return;
    dns_ctx_set_timeout(ctx, 700);
    t0 = event_now_ms(loop);
    dns_lookup(ctx, "mx.test", DNS_T_MX, 0, on_timeout, &n);
    dns_lookup(ctx, "dane.test", DNS_T_MX, DNS_F_VALIDATE, on_timeout, &n);
    g = event_timer_add(loop, 10000, guard, NULL);
    event_loop_run(loop);
    event_timer_cancel(loop, &g);
    TEST_INTEQ(n, 2);
    TEST_CHECK(event_now_ms(loop) - t0 < 3000);
    dns_ctx_free(&ctx);
    close(fd);
}

int main(void)
{
    const char *servers_env = getenv("STORK_DNS_SERVERS");
    const char *anchor = getenv("STORK_DNS_ANCHOR");
    const char *servers[] = { servers_env, NULL };

    if (!servers_env || !anchor) {
        printf("dns_live_test: skipped (run it through tests/harness/dns_env.py --run)\n");
        printf("0 passed, 0 failed, 1 skipped\n");
        return 77;
    }
    msg_init("dns_live_test", "stork");
    loop = event_loop_new();
    test_main_set(servers, anchor);
    test_timeout(anchor);
    event_loop_free(&loop);
    return test_done();
}
