/* ipc_io - blocking request/reply API with deadlines and fd passing */
#include "ipc/ipc_int.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IPC_HELLO_TIMEOUT_MS 10000

/* ipc_clock_ms - monotonic milliseconds */
static int64_t ipc_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ipc_deadline - absolute deadline for timeout_ms (< 0: none) */
static int64_t ipc_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ipc_clock_ms() + timeout_ms;
}

/* ipc_wait - poll fd for events until the deadline; -1 ETIMEDOUT */
static int ipc_wait(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = events };

    for (;;) {
        int left = -1, n;

        if (deadline >= 0) {
            int64_t d = deadline - ipc_clock_ms();

            left = d < 0 ? 0 : (d > 3600000 ? 3600000 : (int)d);
        }
        n = poll(&pfd, 1, left);
        if (n > 0)
            return 0;
        if (n == 0 && left == 0)
            return errno = ETIMEDOUT, -1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* ipc_take_fds - collect SCM_RIGHTS descriptors: first to *fd_r, extras closed */
static void ipc_take_fds(struct msghdr *mh, int *fd_r)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        size_t n;
        int *fds;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        fds = (int *)(void *)CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, fds + i, sizeof(fd));
            if (*fd_r < 0)
                *fd_r = fd;
            else
                close(fd);
        }
    }
}

/* ipc_read_fds - one recvmsg (non-blocking) that also collects descriptors */
ssize_t ipc_read_fds(int fd, void *p, size_t n, int *fd_r)
{
    union { struct cmsghdr align; char b[CMSG_SPACE(4 * sizeof(int))]; } cbuf;
    struct iovec iov = { p, n };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b) };
    ssize_t r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

    if (r >= 0)
        ipc_take_fds(&mh, fd_r);
    return r;
}

/* ipc_write_fd - one sendmsg (non-blocking), with fd attached when >= 0 */
ssize_t ipc_write_fd(int fd, const void *p, size_t n, int pass_fd)
{
    union { struct cmsghdr align; char b[CMSG_SPACE(sizeof(int))]; } cbuf;
    struct iovec iov = { (void *)p, n };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (pass_fd >= 0) {
        struct cmsghdr *c;

        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf.b;
        mh.msg_controllen = sizeof(cbuf.b);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ipc_send - write one frame (and its fd) before the deadline */
int ipc_send(int fd, const ipc_msg_t *m, int timeout_ms)
{
    int64_t deadline = ipc_deadline(timeout_ms);
    buf_t out;
    size_t off = 0;
    int rc = 0;

    buf_init(&out, BUF_NOLIMIT);
    if (ipc_encode(m, &out) < 0)
        return -1;
    while (off < out.len && rc == 0) {
        ssize_t n = ipc_write_fd(fd, out.data + off, out.len - off, off == 0 ? m->fd : -1);

        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR))
            rc = ipc_wait(fd, POLLOUT, deadline);
        else
            rc = -1;
    }
    buf_free(&out);
    return rc;
}

/* ipc_read_full - exactly n bytes before the deadline, collecting fds */
static int ipc_read_full(int fd, unsigned char *p, size_t n, int64_t deadline, int *fd_r,
                         const char **why_r)
{
    size_t off = 0;

    while (off < n) {
        ssize_t r = ipc_read_fds(fd, p + off, n - off, fd_r);

        if (r > 0) {
            off += (size_t)r;
        } else if (r == 0) {
            return *why_r = "connection closed", -1;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (ipc_wait(fd, POLLIN, deadline) < 0)
                return *why_r = errno == ETIMEDOUT ? "timeout" : "poll error", -1;
        } else {
            return *why_r = ipc_whyf("read: %s", strerror(errno)), -1;
        }
    }
    return 0;
}

/* ipc_recv_frame - header and payload of one frame into m */
static int ipc_recv_frame(int fd, ipc_msg_t *m, int64_t deadline, int *rfd, const char **why_r)
{
    unsigned char h[IPC_HDR_LEN], *p;
    uint32_t len;
    int rc;

    if (ipc_read_full(fd, h, sizeof(h), deadline, rfd, why_r) < 0)
        return -1;
    ipc_hdr_parse(h, &len, &m->type, &m->flags, &m->req_id);
    if (len > IPC_MAX_FRAME)
        return *why_r = "frame too large", -1;
    p = xmalloc(len ? len : 1);
    rc = ipc_read_full(fd, p, len, deadline, rfd, why_r);
    if (rc == 0)
        rc = ipc_payload_decode(m, p, len, why_r);
    free(p);
    return rc;
}

/* ipc_recv - read and validate one frame before the deadline */
int ipc_recv(int fd, ipc_msg_t *m, int timeout_ms, const char **why_r)
{
    const char *why = "";
    int rfd = -1;

    if (why_r == NULL)
        why_r = &why;
    ipc_msg_init(m, 0);
    if (ipc_recv_frame(fd, m, ipc_deadline(timeout_ms), &rfd, why_r) < 0) {
        if (rfd >= 0)
            close(rfd);
        ipc_msg_free(m);
        return -1;
    }
    if ((m->flags & IPC_FLAG_FD) && rfd < 0) {
        ipc_msg_free(m);
        return *why_r = "descriptor flag without a descriptor", -1;
    }
    if (!(m->flags & IPC_FLAG_FD) && rfd >= 0) {
        close(rfd);                     /* not expected: never kept */
        rfd = -1;
    }
    m->fd = rfd;
    return 0;
}

/* ipc_hello - send the server's HELLO {proto, major, minor} */
int ipc_hello(int fd, const char *proto)
{
    ipc_msg_t m;
    int rc;

    ipc_msg_init(&m, IPC_M_HELLO);
    ipc_put_str(&m, IPC_A_PROTO, proto);
    ipc_put_u64(&m, IPC_A_MAJOR, IPC_PROTO_MAJOR);
    ipc_put_u64(&m, IPC_A_MINOR, IPC_PROTO_MINOR);
    rc = ipc_send(fd, &m, IPC_HELLO_TIMEOUT_MS);
    ipc_msg_free(&m);
    return rc;
}

/* ipc_hello_check - is m the HELLO of protocol proto, our major version? */
int ipc_hello_check(const ipc_msg_t *m, const char *proto, const char **why_r)
{
    const char *name;
    uint64_t major = 0;

    if (m->type != IPC_M_HELLO)
        return *why_r = ipc_whyf("expected hello, got %s", ipc_msg_name(m->type)), -1;
    if ((name = ipc_get_str(ipc_msg_view(m), IPC_A_PROTO)) == NULL || strcmp(name, proto) != 0)
        return *why_r = ipc_whyf("protocol mismatch: want %s, got %s", proto,
                                 name ? name : "?"), -1;
    if (ipc_get_u64(ipc_msg_view(m), IPC_A_MAJOR, &major) < 0 || major != IPC_PROTO_MAJOR)
        return *why_r = ipc_whyf("protocol %s major version %llu, want %d", proto,
                                 (unsigned long long)major, IPC_PROTO_MAJOR), -1;
    return 0;
}

/* ipc_check_hello - the server's first frame names our protocol and major */
static int ipc_check_hello(int fd, const char *proto, int timeout_ms, const char **why_r)
{
    ipc_msg_t m;
    int rc;

    if (ipc_recv(fd, &m, timeout_ms, why_r) < 0)
        return -1;
    rc = ipc_hello_check(&m, proto, why_r);
    ipc_msg_free(&m);
    return rc;
}

/* ipc_connect_path - connect a UNIX stream socket, the wait capped by timeout */
static int ipc_connect_path(const char *path, int timeout_ms, const char **why_r)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 }, zero = { 0, 0 };
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path))
        return *why_r = "socket path too long", -1;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return *why_r = ipc_whyf("socket: %s", strerror(errno)), -1;
    /* A full backlog blocks connect(); SO_SNDTIMEO bounds that wait. */
    if (timeout_ms > 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        *why_r = ipc_whyf("connect %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero));
    return fd;
}

/*
 * ipc_connect_start - a non-blocking connect for event-driven clients,
 * which check the HELLO with ipc_conn_expect_hello instead of waiting
 * for it (a server being started by the master must not stall the
 * client's whole event loop). A UNIX socket connects at once or fails.
 */
int ipc_connect_start(const char *path, const char **why_r)
{
    const char *why = "";
    int fd;

    if (why_r == NULL)
        why_r = &why;
    if ((fd = ipc_connect_path(path, 0, why_r)) < 0)
        return -1;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        *why_r = ipc_whyf("fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ipc_connect - connect to a service socket and check its HELLO */
int ipc_connect(const char *path, const char *proto, int timeout_ms, const char **why_r)
{
    const char *why = "";
    int fd;

    if (why_r == NULL)
        why_r = &why;
    if ((fd = ipc_connect_path(path, timeout_ms, why_r)) < 0)
        return -1;
    if (ipc_check_hello(fd, proto, timeout_ms, why_r) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}
