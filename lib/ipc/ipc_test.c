/* ipc_test - codec, blocking and event APIs, fd passing, malformed input */
#include "ipc/ipc.h"
#include "test/test.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_MS 5000

/* count_fds - open descriptors, to prove that stray fds are closed */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* raw_attr - append a wire attribute by hand */
static void raw_attr(buf_t *b, uint16_t id, uint8_t type, const void *p, uint32_t len)
{
    unsigned char h[7] = { (unsigned char)id, (unsigned char)(id >> 8), type,
                           (unsigned char)len, (unsigned char)(len >> 8),
                           (unsigned char)(len >> 16), (unsigned char)(len >> 24) };

    buf_append(b, h, 7);
    buf_append(b, p, len);
}

/* raw_frame - wrap a payload in a frame header (len may lie) */
static void raw_frame(buf_t *f, uint16_t type, uint16_t flags, uint32_t len, const buf_t *payload)
{
    unsigned char h[12] = { (unsigned char)len, (unsigned char)(len >> 8),
                            (unsigned char)(len >> 16), (unsigned char)(len >> 24),
                            (unsigned char)type, (unsigned char)(type >> 8),
                            (unsigned char)flags, (unsigned char)(flags >> 8), 7, 0, 0, 0 };

    buf_init(f, BUF_NOLIMIT);
    buf_append(f, h, 12);
    buf_append(f, payload->data ? payload->data : "", payload->len);
}

/* build_deliver - a DELIVER_REQ using every attribute type and nesting */
static void build_deliver(ipc_msg_t *m)
{
    static const unsigned char cookie[] = { 0, 1, 2, 0, 255 };

    ipc_msg_init(m, IPC_M_DELIVER_REQ);
    m->req_id = 42;
    ipc_put_str(m, IPC_A_QID, "4Xy7Zq");
    ipc_put_str(m, IPC_A_QPATH, "active/4/4Xy7Zq");
    ipc_put_str(m, IPC_A_SENDER, "");
    ipc_put_u64(m, IPC_A_ARRIVAL, 1700000000);
    ipc_put_u64(m, IPC_A_CONTENT_OFFSET, 0xfedcba9876543210ULL);
    ipc_put_u64(m, IPC_A_CONTENT_SIZE, 0);
    ipc_put_bool(m, IPC_A_DELAY_WARNED, true);
    ipc_put_bytes(m, IPC_A_COOKIE, cookie, sizeof(cookie));
    for (int i = 0; i < 3; i++) {
        size_t g = ipc_group_begin(m, IPC_A_RCPT);
        char addr[32];

        snprintf(addr, sizeof(addr), "user%d@example.com", i);
        ipc_put_str(m, IPC_A_ADDR, addr);
        ipc_put_u64(m, IPC_A_INDEX, (uint64_t)i);
        if (i == 1) {   /* nested 4 deep: RCPT > RCPT > RCPT > RCPT */
            size_t g2 = ipc_group_begin(m, IPC_A_RCPT), g3, g4;

            g3 = ipc_group_begin(m, IPC_A_RCPT);
            g4 = ipc_group_begin(m, IPC_A_RCPT);
            ipc_put_str(m, IPC_A_ADDR, "deep");
            ipc_group_end(m, g4);
            ipc_group_end(m, g3);
            ipc_group_end(m, g2);
        }
        ipc_group_end(m, g);
    }
}

/* check_deliver - everything build_deliver put in comes back out */
static void check_deliver(const ipc_msg_t *m)
{
    ipc_view_t v = ipc_msg_view(m), g, g2;
    uint64_t u = 0;
    bool b = false;
    const void *p = NULL;
    size_t n = 0, it = 0, it2;
    int count = 0;

    TEST_INTEQ(m->type, IPC_M_DELIVER_REQ);
    TEST_INTEQ(m->req_id, 42);
    TEST_STREQ(ipc_get_str(v, IPC_A_QID), "4Xy7Zq");
    TEST_STREQ(ipc_get_str(v, IPC_A_SENDER), "");
    TEST_CHECK(ipc_get_str(v, IPC_A_ADDR) == NULL);     /* only inside groups */
    TEST_CHECK(ipc_get_u64(v, IPC_A_CONTENT_OFFSET, &u) == 0 && u == 0xfedcba9876543210ULL);
    TEST_CHECK(ipc_get_u64(v, IPC_A_SIZE, &u) == -1);
    TEST_CHECK(ipc_get_bool(v, IPC_A_DELAY_WARNED, &b) == 0 && b);
    TEST_CHECK(ipc_get_bytes(v, IPC_A_COOKIE, &p, &n) == 0 && n == 5
               && memcmp(p, "\0\1\2\0\377", 5) == 0);
    while (ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0) {
        char want[32];

        snprintf(want, sizeof(want), "user%d@example.com", count);
        TEST_STREQ(ipc_get_str(g, IPC_A_ADDR), want);
        TEST_CHECK(ipc_get_u64(g, IPC_A_INDEX, &u) == 0 && u == (uint64_t)count);
        it2 = 0;
        if (count == 1) {
            TEST_CHECK(ipc_next_group(g, IPC_A_RCPT, &it2, &g2) == 0);
            it2 = 0;
            TEST_CHECK(ipc_next_group(g2, IPC_A_RCPT, &it2, &g2) == 0);
            it2 = 0;
            TEST_CHECK(ipc_next_group(g2, IPC_A_RCPT, &it2, &g2) == 0);
            TEST_STREQ(ipc_get_str(g2, IPC_A_ADDR), "deep");
        } else {
            TEST_CHECK(ipc_next_group(g, IPC_A_RCPT, &it2, &g2) == -1);
        }
        count++;
    }
    TEST_INTEQ(count, 3);
}

/* test_roundtrip - every type over a socketpair with the blocking API */
static void test_roundtrip(void)
{
    int sv[2];
    ipc_msg_t m, r;
    const char *why = NULL;

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    build_deliver(&m);
    TEST_CHECK(ipc_validate(&m, &why) == 0);
    check_deliver(&m);
    TEST_CHECK(ipc_send(sv[0], &m, T_MS) == 0);
    TEST_CHECK(ipc_recv(sv[1], &r, T_MS, &why) == 0);
    check_deliver(&r);
    TEST_INTEQ(r.fd, -1);
    ipc_msg_free(&r);
    ipc_msg_free(&m);
    /* EOF and timeout */
    TEST_CHECK(ipc_recv(sv[1], &r, 50, &why) == -1);
    TEST_STREQ(why, "timeout");
    close(sv[0]);
    TEST_CHECK(ipc_recv(sv[1], &r, T_MS, &why) == -1);
    TEST_STREQ(why, "connection closed");
    ipc_msg_free(&r);
    close(sv[1]);
    TEST_STREQ(ipc_msg_name(IPC_M_QMGR_NEW), "qmgr_new");
    TEST_STREQ(ipc_attr_name(IPC_A_DSN_STATUS), "dsn_status");
    TEST_STREQ(ipc_msg_name(9999), "unknown");
}

/* test_encode_decode - ipc_encode/ipc_decode and the wire form of strings */
static void test_encode_decode(void)
{
    ipc_msg_t m, r;
    buf_t out;
    const char *why;

    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    ipc_put_str(&m, IPC_A_QID, "AB");
    buf_init(&out, BUF_NOLIMIT);
    TEST_CHECK(ipc_encode(&m, &out) == 0);
    /* 12 header + 7 attr header + 2 bytes, no NUL on the wire */
    TEST_INTEQ(out.len, 21);
    TEST_CHECK(memcmp(out.data, "\x09\0\0\0\x02\0\0\0\0\0\0\0\x04\0\x02\x02\0\0\0AB", 21) == 0);
    TEST_CHECK(ipc_decode(out.data, out.len, &r, &why) == 0);
    TEST_STREQ(ipc_get_str(ipc_msg_view(&r), IPC_A_QID), "AB");
    ipc_msg_free(&r);
    TEST_CHECK(ipc_decode(out.data, out.len - 1, &r, &why) == -1);
    ipc_msg_free(&r);
    buf_free(&out);
    ipc_msg_free(&m);
}

/* test_fd_passing - a pipe end rides along; stray fds are closed */
static void test_fd_passing(void)
{
    int sv[2], p[2], before;
    ipc_msg_t m, r;
    const char *why;
    char c = 0;
    buf_t pl, f;

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    TEST_CHECK(pipe(p) == 0);
    ipc_msg_init(&m, IPC_M_PICKUP_WAKE);
    ipc_set_fd(&m, p[0]);
    TEST_CHECK(ipc_send(sv[0], &m, T_MS) == 0);
    ipc_msg_free(&m);
    TEST_CHECK(ipc_recv(sv[1], &r, T_MS, &why) == 0);
    TEST_CHECK(r.fd >= 0 && (r.flags & IPC_FLAG_FD));
    TEST_CHECK(write(p[1], "x", 1) == 1);
    TEST_CHECK(read(r.fd, &c, 1) == 1 && c == 'x');
    ipc_msg_free(&r);
    TEST_INTEQ(r.fd, -1);

    /* an fd sent on a frame without IPC_FLAG_FD is closed */
    buf_init(&pl, BUF_NOLIMIT);
    raw_frame(&f, IPC_M_PICKUP_WAKE, 0, 0, &pl);
    before = count_fds();
    {
        union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(int))]; } cb = { 0 };
        struct iovec iov = { f.data, f.len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
                             .msg_controllen = sizeof(cb.b) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
        TEST_CHECK(sendmsg(sv[0], &mh, 0) == (ssize_t)f.len);
    }
    TEST_CHECK(ipc_recv(sv[1], &r, T_MS, &why) == 0);
    TEST_INTEQ(r.fd, -1);
    TEST_INTEQ(count_fds(), before);
    ipc_msg_free(&r);
    buf_free(&f);
    /* the flag without a descriptor is a protocol error */
    raw_frame(&f, IPC_M_PICKUP_WAKE, IPC_FLAG_FD, 0, &pl);
    TEST_CHECK(write(sv[0], f.data, f.len) == (ssize_t)f.len);
    TEST_CHECK(ipc_recv(sv[1], &r, T_MS, &why) == -1);
    TEST_STREQ(why, "descriptor flag without a descriptor");
    buf_free(&f);
    buf_free(&pl);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* expect_reject - a hand-made frame is refused by ipc_recv and ipc_decode */
static void expect_reject(uint16_t type, const buf_t *payload, uint32_t len, const char *what)
{
    int sv[2];
    buf_t f;
    ipc_msg_t r;
    const char *why = NULL;

    raw_frame(&f, type, 0, len, payload);
    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    TEST_CHECK(write(sv[0], f.data, f.len) == (ssize_t)f.len);
    close(sv[0]);
    TEST_CHECK(ipc_recv(sv[1], &r, T_MS, &why) == -1);
    if (why == NULL || strstr(why, what) == NULL)
        fprintf(stderr, "reject: want \"%s\", got \"%s\"\n", what, why ? why : "(null)");
    TEST_CHECK(why != NULL && strstr(why, what) != NULL);
    ipc_msg_free(&r);
    TEST_CHECK(ipc_decode(f.data, f.len, &r, &why) == -1);
    ipc_msg_free(&r);
    close(sv[1]);
    buf_free(&f);
}

/* test_malformed - truncation, types, required, size, NUL, depth */
static void test_malformed(void)
{
    buf_t p;
    unsigned char u64[8] = { 1 }, two = 2;
    buf_t g;

    buf_init(&p, BUF_NOLIMIT);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "abc", 3);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len + 5, "connection closed");  /* truncated */
    buf_truncate(&p, 5);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "truncated attribute header");
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "abc", 3);
    p.data[3] = 50;                                     /* attr len beyond frame */
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "exceeds the frame");
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_U64, u64, 8);         /* wrong type */
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "wrong type");
    buf_reset(&p);
    raw_attr(&p, IPC_A_SIZE, IPC_T_U64, u64, 8);        /* QID missing */
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "missing required attribute qid");
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "a\0c", 3);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "embedded NUL");
    buf_reset(&p);
    expect_reject(IPC_M_QMGR_NEW, &p, IPC_MAX_FRAME + 1, "frame too large");
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "a", 1);
    raw_attr(&p, IPC_A_DELAY_WARNED, IPC_T_BOOL, &two, 1);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "bad bool");
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "a", 1);
    raw_attr(&p, IPC_A_SIZE, IPC_T_U64, u64, 4);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "bad u64 length");
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "a", 1);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "b", 1);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "repeated");
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "a", 1);
    raw_attr(&p, 999, 9, "zz", 2);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "bad attribute type");
    buf_reset(&p);
    expect_reject(777, &p, 0, "unknown message type");
    /* five nested groups */
    buf_init(&g, BUF_NOLIMIT);
    raw_attr(&g, IPC_A_ADDR, IPC_T_STR, "x", 1);
    for (int i = 0; i < 5; i++) {
        buf_reset(&p);
        raw_attr(&p, IPC_A_RCPT, IPC_T_GROUP, g.data, (uint32_t)g.len);
        buf_reset(&g);
        buf_append(&g, p.data, p.len);
    }
    buf_reset(&p);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "a", 1);
    buf_append(&p, g.data, g.len);
    expect_reject(IPC_M_QMGR_NEW, &p, (uint32_t)p.len, "nested too deep");
    buf_free(&g);
    buf_free(&p);
}

/* test_unknown_attr - unknown attributes are skipped, not errors */
static void test_unknown_attr(void)
{
    buf_t p, f, g;
    ipc_msg_t r;
    const char *why = NULL;

    buf_init(&p, BUF_NOLIMIT);
    buf_init(&g, BUF_NOLIMIT);
    raw_attr(&g, 4002, IPC_T_STR, "inner", 5);
    raw_attr(&g, IPC_A_QID, IPC_T_STR, "not top level", 13);
    raw_attr(&p, 4000, IPC_T_STR, "future", 6);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "q1", 2);
    raw_attr(&p, 4001, IPC_T_GROUP, g.data, (uint32_t)g.len);
    raw_frame(&f, IPC_M_QMGR_NEW, 0, (uint32_t)p.len, &p);
    TEST_CHECK(ipc_decode(f.data, f.len, &r, &why) == 0);
    TEST_STREQ(ipc_get_str(ipc_msg_view(&r), IPC_A_QID), "q1");
    ipc_msg_free(&r);
    buf_free(&f);
    buf_free(&g);
    buf_free(&p);
}

/* test_limits - overflow on build, depth limit in validate */
static void test_limits(void)
{
    ipc_msg_t m;
    char *big = xmalloc(300000);
    const char *why;
    int sv[2];
    size_t g[5];

    memset(big, 'a', 299999);
    big[299999] = 0;
    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    for (int i = 0; i < 5; i++) {
        size_t mark = ipc_group_begin(&m, IPC_A_RCPT);

        ipc_put_str(&m, IPC_A_ADDR, big);
        ipc_group_end(&m, mark);
    }
    ipc_put_str(&m, IPC_A_QID, "x");
    TEST_CHECK(m.overflow);
    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    errno = 0;
    TEST_CHECK(ipc_send(sv[0], &m, T_MS) == -1 && errno == EMSGSIZE);
    ipc_msg_free(&m);
    close(sv[0]);
    close(sv[1]);
    free(big);

    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    ipc_put_str(&m, IPC_A_QID, "x");
    for (int i = 0; i < 5; i++)
        g[i] = ipc_group_begin(&m, IPC_A_RCPT);
    for (int i = 4; i >= 0; i--)
        ipc_group_end(&m, g[i]);
    TEST_CHECK(ipc_validate(&m, &why) == -1);
    TEST_STREQ(why, "groups nested too deep");
    ipc_msg_free(&m);
}

/* test_mutation - random corruption of a valid frame never crashes */
static void test_mutation(void)
{
    ipc_msg_t m, r;
    buf_t good, f;
    const char *why;
    int accepted = 0;

    srandom(12345);
    build_deliver(&m);
    buf_init(&good, BUF_NOLIMIT);
    TEST_CHECK(ipc_encode(&m, &good) == 0);
    for (int iter = 0; iter < 2000; iter++) {
        int flips = 1 + (int)(random() % 4);
        size_t it = 0;
        ipc_view_t v, gv;
        uint64_t u;

        buf_init(&f, BUF_NOLIMIT);
        buf_append(&f, good.data, good.len);
        for (int k = 0; k < flips; k++)
            f.data[random() % f.len] = (char)random();
        if (iter % 7 == 0)
            buf_truncate(&f, (size_t)random() % f.len);
        if (ipc_decode(f.data, f.len, &r, &why) == 0) {
            accepted++;
            v = ipc_msg_view(&r);
            (void)ipc_get_str(v, IPC_A_QID);
            while (ipc_next_group(v, IPC_A_RCPT, &it, &gv) == 0)
                (void)ipc_get_u64(gv, IPC_A_INDEX, &u);
        }
        ipc_msg_free(&r);
        /* garbage straight into ipc_validate as an in-memory payload */
        ipc_msg_init(&r, (uint16_t)(random() % 16));
        buf_append(&r.payload, f.data + IPC_HDR_LEN * (f.len > IPC_HDR_LEN),
                   f.len > IPC_HDR_LEN ? f.len - IPC_HDR_LEN : 0);
        (void)ipc_validate(&r, &why);
        (void)ipc_get_str(ipc_msg_view(&r), IPC_A_QID);
        ipc_msg_free(&r);
        buf_free(&f);
    }
    TEST_CHECK(accepted > 0 && accepted < 2000);
    buf_free(&good);
    ipc_msg_free(&m);
}

/* The event test: a client conn and a server conn in one loop. */
typedef struct ev_state {
    event_loop_t *loop;
    ipc_conn_t *cli, *srv;
    int replies, requests, closes, fd_ok;
    const char *close_why;
    char *big;
} ev_state_t;

/* srv_on_msg - echo each request with the same req_id; pass a pipe on #5 */
static void srv_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    ev_state_t *st = ctx;
    ipc_msg_t reply;

    st->requests++;
    ipc_msg_init(&reply, IPC_M_CONTROL_REPLY);
    reply.req_id = m->req_id;
    ipc_put_u64(&reply, IPC_A_STATUS, 0);
    ipc_put_str(&reply, IPC_A_TEXT, m->req_id == 9 ? st->big : "ok");
    if (m->req_id == 5) {
        int p[2];

        if (pipe(p) == 0) {
            ipc_set_fd(&reply, p[0]);
            TEST_CHECK(write(p[1], "y", 1) == 1);
            close(p[1]);
        }
    }
    ipc_conn_send(conn, &reply);
    ipc_msg_free(&reply);
}

/* srv_on_close - the client went away: exactly once, then free */
static void srv_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    ev_state_t *st = ctx;

    st->closes++;
    st->close_why = why;
    ipc_conn_free(&st->srv);
    event_loop_stop(st->loop);
}

/* cli_on_msg - count replies; free the conn from inside the callback */
static void cli_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    ev_state_t *st = ctx;
    char c = 0;

    TEST_INTEQ(m->req_id, st->replies);
    if (m->req_id == 5 && m->fd >= 0 && read(m->fd, &c, 1) == 1 && c == 'y')
        st->fd_ok = 1;
    if (m->req_id == 9)
        TEST_INTEQ(strlen(ipc_get_str(ipc_msg_view(m), IPC_A_TEXT)), 900000);
    if (++st->replies == 10)
        ipc_conn_free(&st->cli);
}

/* cli_on_close - not expected: the client frees itself first */
static void cli_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    TEST_CHECK(!"client on_close called");
}

/* ev_timeout - a bound on the test */
static void ev_timeout(event_loop_t *loop, void *ctx)
{
    TEST_CHECK(!"event test timed out");
    event_loop_stop(loop);
}

/* test_event - requests, replies, an fd, a large frame, free in callback */
static void test_event(void)
{
    ev_state_t st = { 0 };
    int sv[2];
    event_timer_t *t;

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    st.big = xmalloc(900001);
    memset(st.big, 'b', 900000);
    st.big[900000] = 0;
    st.loop = event_loop_new();
    st.cli = ipc_conn_new(st.loop, sv[0], cli_on_msg, cli_on_close, &st);
    st.srv = ipc_conn_new(st.loop, sv[1], srv_on_msg, srv_on_close, &st);
    for (uint32_t i = 0; i < 10; i++) {
        ipc_msg_t m;

        ipc_msg_init(&m, IPC_M_QMGR_CONTROL);
        m.req_id = i;
        ipc_put_str(&m, IPC_A_OP, "flush");
        ipc_conn_send(st.cli, &m);
        ipc_msg_free(&m);
    }
    TEST_INTEQ(ipc_conn_pending(st.cli), 0);   /* written at once: the socket had room */
    TEST_INTEQ(ipc_conn_fd(st.cli), sv[0]);
    t = event_timer_add(st.loop, T_MS, ev_timeout, &st);
    event_loop_run(st.loop);
    event_timer_cancel(st.loop, &t);
    TEST_INTEQ(st.requests, 10);
    TEST_INTEQ(st.replies, 10);
    TEST_INTEQ(st.closes, 1);
    TEST_CHECK(st.fd_ok);
    TEST_STREQ(st.close_why, "connection closed");
    TEST_CHECK(st.cli == NULL && st.srv == NULL);
    event_loop_free(&st.loop);
    free(st.big);
}

/* The drain test: a long reply produced piece by piece. */
#define DRAIN_FRAMES 20000
#define DRAIN_PIECE 700
typedef struct drain_state {
    event_loop_t *loop;
    ipc_conn_t *cli, *srv;
    uint32_t sent, got;
    int calls, freed, max_pending_ok;
} drain_state_t;

/* drain_piece - send the next DRAIN_PIECE frames; false after the last */
static bool drain_piece(ipc_conn_t *conn, void *ctx)
{
    drain_state_t *st = ctx;
    ipc_msg_t m;

    st->calls++;
    if (ipc_conn_pending(conn) > 4096)
        st->max_pending_ok = 0;
    ipc_msg_init(&m, IPC_M_QUEUE_ENTRY);
    for (int i = 0; i < DRAIN_PIECE && st->sent < DRAIN_FRAMES; i++, st->sent++) {
        ipc_msg_reset(&m);
        m.req_id = st->sent;
        ipc_put_str(&m, IPC_A_QID, "QID");
        ipc_put_str(&m, IPC_A_QUEUE, "deferred");
        ipc_put_u64(&m, IPC_A_ARRIVAL, st->sent);
        ipc_put_u64(&m, IPC_A_SIZE, 1);
        ipc_put_str(&m, IPC_A_SENDER, "a@b");
        ipc_conn_send(conn, &m);
    }
    ipc_msg_free(&m);
    return st->sent < DRAIN_FRAMES;
}

/* drain_free - the producer's context is released exactly once */
static void drain_free(void *ctx)
{
    ((drain_state_t *)ctx)->freed++;
}

/* drain_cli_on_msg - frames arrive complete and in order */
static void drain_cli_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    drain_state_t *st = ctx;
    uint64_t arrival = 0;

    TEST_INTEQ(m->req_id, st->got);
    TEST_CHECK(ipc_get_u64(ipc_msg_view(m), IPC_A_ARRIVAL, &arrival) == 0 && arrival == st->got);
    if (++st->got == DRAIN_FRAMES)
        event_loop_stop(st->loop);
}

/* drain_srv_on_msg - nothing is sent to the server in this test */
static void drain_srv_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    TEST_CHECK(!"server got a frame");
}

/* drain_on_close - not expected */
static void drain_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    TEST_CHECK(!"drain test conn closed");
    event_loop_stop(((drain_state_t *)ctx)->loop);
}

/* test_drain - ipc_conn_set_drain: pieces on demand, in order, freed once */
static void test_drain(void)
{
    drain_state_t st = { .max_pending_ok = 1 };
    int sv[2];
    event_timer_t *t;

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    st.loop = event_loop_new();
    st.cli = ipc_conn_new(st.loop, sv[0], drain_cli_on_msg, drain_on_close, &st);
    st.srv = ipc_conn_new(st.loop, sv[1], drain_srv_on_msg, drain_on_close, &st);
    TEST_CHECK(!ipc_conn_draining(st.srv));
    ipc_conn_set_drain(st.srv, 4096, drain_piece, &st, drain_free);
    TEST_CHECK(ipc_conn_draining(st.srv));
    t = event_timer_add(st.loop, T_MS, ev_timeout, &st);
    event_loop_run(st.loop);
    event_timer_cancel(st.loop, &t);
    TEST_INTEQ(st.got, DRAIN_FRAMES);
    TEST_INTEQ(st.calls, (DRAIN_FRAMES + DRAIN_PIECE - 1) / DRAIN_PIECE);
    TEST_CHECK(st.max_pending_ok);
    TEST_INTEQ(st.freed, 1);
    TEST_CHECK(!ipc_conn_draining(st.srv));
    /* a producer still installed is released with the conn */
    ipc_conn_set_drain(st.srv, 0, drain_piece, &st, drain_free);
    ipc_conn_free(&st.srv);
    TEST_INTEQ(st.freed, 2);
    ipc_conn_free(&st.cli);
    event_loop_free(&st.loop);
}

/* bad_on_msg / bad_on_close - a protocol error closes with a reason */
static void bad_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    int *n = ctx;

    n[0]++;
}

static void bad_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    int *n = ctx;

    n[1]++;
    TEST_CHECK(strstr(why, "missing required attribute") != NULL);
    ipc_conn_free(&conn);
}

/* stop_loop - end one turn of the loop */
static void stop_loop(event_loop_t *loop, void *ctx)
{
    event_loop_stop(loop);
}

/* test_event_protocol_error - a bad frame after a good one */
static void test_event_protocol_error(void)
{
    event_loop_t *loop = event_loop_new();
    int sv[2], counts[2] = { 0, 0 };
    buf_t p, f;

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    buf_init(&p, BUF_NOLIMIT);
    raw_attr(&p, IPC_A_QID, IPC_T_STR, "q", 1);
    raw_frame(&f, IPC_M_QMGR_NEW, 0, (uint32_t)p.len, &p);
    TEST_CHECK(write(sv[0], f.data, f.len) == (ssize_t)f.len);
    buf_free(&f);
    buf_reset(&p);
    raw_frame(&f, IPC_M_QMGR_NEW, 0, 0, &p);
    TEST_CHECK(write(sv[0], f.data, f.len) == (ssize_t)f.len);
    (void)ipc_conn_new(loop, sv[1], bad_on_msg, bad_on_close, counts);
    for (int i = 0; i < 5 && counts[1] == 0; i++) {
        (void)event_timer_add(loop, 100, stop_loop, NULL);
        event_loop_run(loop);
    }
    TEST_INTEQ(counts[0], 1);
    TEST_INTEQ(counts[1], 1);
    close(sv[0]);
    buf_free(&f);
    buf_free(&p);
    event_loop_free(&loop);
}

/* gone_on_close - the peer of test_send_to_gone_peer went away */
static void gone_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    int *n = ctx;

    n[1]++;
    TEST_CHECK(strncmp(why, "write:", 6) == 0 || strcmp(why, "connection closed") == 0);
    ipc_conn_free(&conn);
}

/* test_send_to_gone_peer - a write that fails inside ipc_conn_send is
 * reported by the loop, never to the sender in the middle of its send */
static void test_send_to_gone_peer(void)
{
    event_loop_t *loop = event_loop_new();
    int sv[2], counts[2] = { 0, 0 };
    ipc_conn_t *c;
    ipc_msg_t m;

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    close(sv[1]);
    c = ipc_conn_new(loop, sv[0], bad_on_msg, gone_on_close, counts);
    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    ipc_put_str(&m, IPC_A_QID, "q");
    ipc_conn_send(c, &m);
    ipc_msg_free(&m);
    TEST_INTEQ(counts[1], 0);
    for (int i = 0; i < 5 && counts[1] == 0; i++) {
        (void)event_timer_add(loop, 100, stop_loop, NULL);
        event_loop_run(loop);
    }
    TEST_INTEQ(counts[0], 0);
    TEST_INTEQ(counts[1], 1);
    event_loop_free(&loop);
}

/* test_connect - ipc_connect checks the server's HELLO */
static void test_connect(void)
{
    char dir[] = "/tmp/ipc_test.XXXXXX", path[128];
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    const char *why = NULL;
    int lfd, fd, status;
    pid_t pid;

    TEST_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/sock", dir);
    memcpy(sun.sun_path, path, strlen(path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TEST_CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(lfd, 8) == 0);
    if ((pid = fork()) == 0) {
        for (int i = 0; i < 2; i++) {
            int c = accept(lfd, NULL, NULL);

            ipc_hello(c, "qmgr");
            close(c);
        }
        _exit(0);
    }
    fd = ipc_connect(path, "qmgr", T_MS, &why);
    TEST_CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    TEST_CHECK(ipc_connect(path, "verify", T_MS, &why) == -1);
    TEST_CHECK(why && strstr(why, "protocol mismatch") != NULL);
    TEST_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(lfd);
    unlink(path);
    TEST_CHECK(ipc_connect(path, "qmgr", T_MS, &why) == -1);
    rmdir(dir);
}

/* hello_on_msg/hello_on_close - count what reaches the owner */
static void hello_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    ((int *)ctx)[0]++;
}

static void hello_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    ((int *)ctx)[1]++;
    TEST_CHECK(strstr(why, "protocol mismatch") != NULL);
    ipc_conn_free(&conn);
}

/* test_connect_start - the event API checks and swallows the HELLO: the
 * right one never reaches on_msg, a wrong one closes the conn */
static void test_connect_start(void)
{
    char dir[] = "/tmp/ipc_test.XXXXXX", path[128];
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    event_loop_t *loop = event_loop_new();
    int lfd, fd, srv, counts[2] = { 0, 0 };
    const char *why = NULL;
    ipc_conn_t *conn;
    ipc_msg_t m;

    TEST_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/sock", dir);
    memcpy(sun.sun_path, path, strlen(path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TEST_CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(lfd, 8) == 0);
    for (int round = 0; round < 2; round++) {
        fd = ipc_connect_start(path, &why);
        TEST_CHECK(fd >= 0);
        conn = ipc_conn_new(loop, fd, hello_on_msg, hello_on_close, counts);
        ipc_conn_expect_hello(conn, "qmgr");
        srv = accept(lfd, NULL, NULL);
        /* Round 0: the right HELLO, then one frame for the owner.
         * Round 1: the wrong protocol. */
        TEST_CHECK(ipc_hello(srv, round == 0 ? "qmgr" : "verify") == 0);
        ipc_msg_init(&m, IPC_M_QMGR_NEW);
        ipc_put_str(&m, IPC_A_QID, "x");
        TEST_CHECK(ipc_send(srv, &m, T_MS) == 0);
        ipc_msg_free(&m);
        for (int i = 0; i < 5 && counts[round] == 0; i++) {
            (void)event_timer_add(loop, 100, stop_loop, NULL);
            event_loop_run(loop);
        }
        if (round == 0)
            ipc_conn_free(&conn);
        close(srv);
    }
    TEST_INTEQ(counts[0], 1);       /* only the frame after the HELLO */
    TEST_INTEQ(counts[1], 1);       /* the mismatch closed the conn */
    close(lfd);
    unlink(path);
    TEST_CHECK(ipc_connect_start(path, &why) == -1);
    rmdir(dir);
    event_loop_free(&loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_roundtrip();
    test_encode_decode();
    test_fd_passing();
    test_malformed();
    test_unknown_attr();
    test_limits();
    test_mutation();
    test_event();
    test_drain();
    test_event_protocol_error();
    test_send_to_gone_peer();
    test_connect();
    test_connect_start();
    return test_done();
}
