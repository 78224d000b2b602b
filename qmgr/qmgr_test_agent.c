/*
 * qmgr_test_agent - test helper for qmgr (not installed). Subcommands:
 *   agent QDIR OUTDIR [SOCK PROTO]  a fake delivery agent on
 *                        QDIR/private/SOCK (default local, protocol
 *                        local): a process per connection (as the master
 *                        would). Outcome by local part prefix:
 *                        ok* delivered, tmp* deferred on the first
 *                        attempt then delivered, fail* failed (5.1.1),
 *                        slow* delivered after 300 ms, rel* relayed.
 *                        Each delivery is written to OUTDIR/QID.INDEX.N
 *                        (the content). With PROTO smtp: a next hop
 *                        "down*" fails as a site (4.4.1 and DONE with
 *                        REASON), "slow*" answers after 1 s, failures
 *                        carry a remote reply and RELAY. Every request
 *                        appends "SOCK TRANSPORT NEXTHOP FLAGS ENVID RET
 *                        ADDR,..." to OUTDIR/req.log and "NEXTHOP N"
 *                        (requests in progress for that next hop) to
 *                        OUTDIR/par.log.
 *   enqueue QDIR SENDER RCPT...   content from stdin → incoming/, prints
 *                        id; RCPT may be "addr|notify|orcpt";
 *                        QMGR_TEST_ATTRS="name=value;..." adds attributes
 *   notify SOCK QID      QMGR_NEW
 *   list SOCK            QMGR_LIST → one line per entry
 *   control SOCK OP [QID [QUEUE]]  QMGR_CONTROL → "STATUS COUNT TEXT"
 *   read PATH            the envelope: sender, then "status addr" lines
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "queue/qfile.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

static const char *outdir, *sockname = "local", *proto = "local";

/* append_line - one whole line to OUTDIR/name (O_APPEND: atomic enough) */
static void append_line(const char *name, const char *line)
{
    char *path = xasprintf("%s/%s", outdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    free(path);
    if (fd >= 0) {
        if (write(fd, line, strlen(line)) < 0)
            perror("write");
        close(fd);
    }
}

/* busy_enter - mark a request in progress for nexthop; returns the
 * marker path and logs how many are in progress now */
static char *busy_enter(const char *nexthop)
{
    static int seq;
    char *dir = xasprintf("%s/busy", outdir);
    mkdir(dir, 0700);
    char *path = xasprintf("%s/%s.%d.%d", dir, nexthop, (int)getpid(), ++seq);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t len = strlen(nexthop);
    while (d && (de = readdir(d)) != NULL)
        if (strncmp(de->d_name, nexthop, len) == 0 && de->d_name[len] == '.')
            n++;
    if (d)
        closedir(d);
    char *line = xasprintf("%s %d\n", nexthop, n);
    append_line("par.log", line);
    free(line);
    free(dir);
    return path;
}

/* save_content - copy the message content to OUTDIR/QID.INDEX.N */
static int save_content(const char *qid, const char *qpath, uint64_t off, uint64_t size,
                        uint64_t index)
{
    int in = open(qpath, O_RDONLY);
    if (in < 0)
        return -1;
    char *buf = xmalloc(size + 1);
    ssize_t n = pread(in, buf, size, (off_t)off);
    close(in);
    if (n != (ssize_t)size) {
        free(buf);
        return -1;
    }
    for (int k = 1; k < 1000; k++) {
        char *path = xasprintf("%s/%s.%llu.%d", outdir, qid, (unsigned long long)index, k);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        free(path);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0 || write(fd, buf, size) != (ssize_t)size) {
            free(buf);
            return -1;
        }
        fsync(fd);
        close(fd);
        break;
    }
    free(buf);
    return 0;
}

/* attempts - how many times this recipient was tried (a marker file) */
static int attempts(const char *qid, uint64_t index)
{
    char *path = xasprintf("%s/tries.%s.%llu", outdir, qid, (unsigned long long)index);
    int n = 0, fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        n = (int)st.st_size;
        if (write(fd, "x", 1) != 1)
            n = 0;
        close(fd);
    }
    free(path);
    return n;
}

static const char *cur_relay;

/* reply_rcpt - one DELIVER_RCPT */
static void reply_rcpt(int fd, uint64_t index, const char *dsn, const char *action, const char *text)
{
    ipc_msg_t r;
    ipc_msg_init(&r, IPC_M_DELIVER_RCPT);
    ipc_put_u64(&r, IPC_A_INDEX, index);
    ipc_put_str(&r, IPC_A_DSN_STATUS, dsn);
    ipc_put_str(&r, IPC_A_ACTION, action);
    ipc_put_str(&r, IPC_A_TEXT, text);
    if (cur_relay)
        ipc_put_str(&r, IPC_A_RELAY, cur_relay);
    ipc_send(fd, &r, 10000);
    ipc_msg_free(&r);
}

/* agent_conn - serve one qmgr connection until EOF */
static void agent_conn(int fd)
{
    ipc_msg_t m;
    const char *why;

    ipc_hello(fd, proto);
    bool smtp = strcmp(proto, "local") != 0;
    while (ipc_recv(fd, &m, 600000, &why) == 0) {
        ipc_view_t v = ipc_msg_view(&m), g;
        const char *qid = ipc_get_str(v, IPC_A_QID), *qpath = ipc_get_str(v, IPC_A_QPATH);
        const char *tr = ipc_get_str(v, IPC_A_TRANSPORT), *nh = ipc_get_str(v, IPC_A_NEXTHOP);
        const char *envid = ipc_get_str(v, IPC_A_ENVID), *ret = ipc_get_str(v, IPC_A_RET);
        uint64_t off = 0, size = 0, index, flags = 99;
        char relay[300], text[600];
        buf_t line;
        ipc_get_u64(v, IPC_A_CONTENT_OFFSET, &off);
        ipc_get_u64(v, IPC_A_CONTENT_SIZE, &size);
        ipc_get_u64(v, IPC_A_FLAGS, &flags);
        nh = nh ? nh : "-";
        buf_init(&line, BUF_NOLIMIT);
        buf_printf(&line, "%s %s %s %llu %s %s ", sockname, tr ? tr : "-", nh,
                   (unsigned long long)flags, envid ? envid : "-", ret ? ret : "-");
        for (size_t it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0;)
            buf_printf(&line, "%s%s", it > 1 && line.data[line.len - 1] != ' ' ? "," : "",
                       ipc_get_str(g, IPC_A_ADDR));
        buf_puts(&line, "\n");
        append_line("req.log", buf_cstr(&line));
        buf_free(&line);
        char *busy = busy_enter(nh);
        snprintf(relay, sizeof(relay), "mx.%s[127.0.0.1]:25", nh);
        cur_relay = smtp ? relay : NULL;
        if (smtp && strncmp(nh, "slow", 4) == 0)
            sleep(1);
        bool down = smtp && strncmp(nh, "down", 4) == 0;
        if (down) {
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            cur_relay = NULL;
        }
        for (size_t it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0;) {
            const char *addr = ipc_get_str(g, IPC_A_ADDR);
            ipc_get_u64(g, IPC_A_INDEX, &index);
            if (down) {
                snprintf(text, sizeof(text), "connect to %s[127.0.0.1]:25: Connection refused", nh);
                reply_rcpt(fd, index, "4.4.1", "deferred", text);
                continue;
            }
            int tries = attempts(qid, index);
            if (strncmp(addr, "fail", 4) == 0) {
                if (smtp) {
                    snprintf(text, sizeof(text), "host mx.%s[127.0.0.1] said: 550 5.1.1 <%s>: "
                             "Recipient address rejected: User unknown (in reply to RCPT TO "
                             "command)", nh, addr);
                    reply_rcpt(fd, index, "5.1.1", "failed", text);
                } else {
                    reply_rcpt(fd, index, "5.1.1", "failed", "unknown user: \"fail\"");
                }
                continue;
            }
            if (strncmp(addr, "tmp", 3) == 0 && tries == 0) {
                reply_rcpt(fd, index, "4.2.0", "deferred", smtp
                           ? "host mx.remote[127.0.0.1] said: 450 4.2.0 try again later"
                           : "mailbox temporarily unavailable");
                continue;
            }
            if (strncmp(addr, "slow", 4) == 0) {
                struct timespec ts = { 0, 300 * 1000 * 1000 };
                nanosleep(&ts, NULL);
            }
            if (save_content(qid, qpath, off, size, index) < 0)
                reply_rcpt(fd, index, "4.3.0", "deferred", "cannot read the queue file");
            else if (strncmp(addr, "rel", 3) == 0)
                reply_rcpt(fd, index, "2.0.0", "relayed", "250 2.0.0 Ok: queued as 1234");
            else
                reply_rcpt(fd, index, "2.0.0", "delivered", smtp ? "250 2.0.0 Ok: queued as 1234"
                           : "delivered to maildir");
        }
        unlink(busy);
        free(busy);
        ipc_msg_t d;
        ipc_msg_init(&d, IPC_M_DELIVER_DONE);
        ipc_put_u64(&d, IPC_A_STATUS, 0);
        if (down) {
            snprintf(text, sizeof(text), "connect to %s[127.0.0.1]:25: Connection refused", nh);
            ipc_put_str(&d, IPC_A_REASON, text);
        }
        ipc_msg_free(&m);       /* nh points into it */
        ipc_send(fd, &d, 10000);
        ipc_msg_free(&d);
    }
}

/* agent_main - listen on private/local, a child per connection */
static int agent_main(const char *qdir, const char *out)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);

    outdir = out;
    if (chdir(qdir) < 0)
        return 1;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "private/%s", sockname);
    unlink(sun.sun_path);
    if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 64) < 0)
        return 1;
    signal(SIGCHLD, SIG_IGN);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        if (fork() == 0) {
            close(lfd);
            agent_conn(fd);
            _exit(0);
        }
        close(fd);
    }
}

/* enqueue_main - write a queue file with lib/queue, print its id */
static int enqueue_main(const char *qdir, const char *sender, int n, char **rcpts)
{
    qfile_writer_t *w;
    const char *why;
    char buf[8192];
    ssize_t k;

    if (qfile_create(qdir, &w, &why) < 0) {
        fprintf(stderr, "create: %s\n", why);
        return 1;
    }
    const char *arrival = getenv("QMGR_TEST_ARRIVAL");     /* to test expiry */
    qfile_put_arrival(w, arrival ? atoll(arrival) : time(NULL), 0);
    qfile_put_sender(w, sender);
    char *attrs = getenv("QMGR_TEST_ATTRS") ? xstrdup(getenv("QMGR_TEST_ATTRS")) : NULL;
    for (char *save = NULL, *a = attrs ? strtok_r(attrs, ";", &save) : NULL; a;
         a = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(a, '=');
        if (eq) {
            *eq = 0;
            qfile_put_attr(w, a, eq + 1);
        }
    }
    free(attrs);
    for (int i = 0; i < n; i++) {
        char *spec = xstrdup(rcpts[i]), *bar = strchr(spec, '|'), *orcpt = "";
        unsigned notify = 0;
        if (bar) {
            *bar = 0;
            notify = (unsigned)strtoul(bar + 1, &orcpt, 10);
            orcpt = *orcpt == '|' ? orcpt + 1 : "";
        }
        qfile_put_rcpt(w, spec, orcpt, notify);
        free(spec);
    }
    qfile_begin_content(w);
    while ((k = read(0, buf, sizeof(buf))) > 0)
        qfile_write_content(w, buf, (size_t)k);
    if (qfile_finish(w, &why) < 0 || qfile_sync(w, &why) < 0 || qfile_commit(w, &why) < 0) {
        fprintf(stderr, "write: %s\n", why);
        return 1;
    }
    queue_sync_dir(qdir, QUEUE_INCOMING);
    printf("%s\n", qfile_writer_qid(w));
    qfile_writer_free(&w);
    return 0;
}

/* connect_qmgr - the service socket */
static int connect_qmgr(const char *sock)
{
    const char *why;
    int fd = ipc_connect(sock, "qmgr", 10000, &why);
    if (fd < 0)
        fprintf(stderr, "connect %s: %s\n", sock, why);
    return fd;
}

/* list_main - QMGR_LIST: "QID QUEUE SENDER NEXT rcpt(reason) ..." */
static int list_main(const char *sock)
{
    int fd = connect_qmgr(sock);
    ipc_msg_t m;
    const char *why;

    if (fd < 0)
        return 1;
    ipc_msg_init(&m, IPC_M_QMGR_LIST);
    ipc_send(fd, &m, 10000);
    ipc_msg_free(&m);
    while (ipc_recv(fd, &m, 10000, &why) == 0) {
        ipc_view_t v = ipc_msg_view(&m), g;
        if (m.type == IPC_M_LIST_END) {
            ipc_msg_free(&m);
            return 0;
        }
        uint64_t next = 0;
        ipc_get_u64(v, IPC_A_NEXT_ATTEMPT, &next);
        printf("%s %s <%s> %llu", ipc_get_str(v, IPC_A_QID), ipc_get_str(v, IPC_A_QUEUE),
               ipc_get_str(v, IPC_A_SENDER), (unsigned long long)next);
        for (size_t it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0;) {
            const char *reason = ipc_get_str(g, IPC_A_REASON);
            printf(" %s(%s)", ipc_get_str(g, IPC_A_ADDR), reason ? reason : "");
        }
        printf("\n");
        ipc_msg_free(&m);
    }
    return 1;
}

/* control_main - QMGR_CONTROL */
static int control_main(const char *sock, const char *op, const char *qid, const char *queue)
{
    int fd = connect_qmgr(sock);
    ipc_msg_t m;
    const char *why;
    uint64_t status = 9, count = 0;

    if (fd < 0)
        return 1;
    ipc_msg_init(&m, IPC_M_QMGR_CONTROL);
    ipc_put_str(&m, IPC_A_OP, op);
    if (qid && strcmp(op, "flush_site") != 0)
        ipc_put_str(&m, IPC_A_QID, qid);
    if (queue)
        ipc_put_str(&m, IPC_A_QUEUE, queue);
    if (strcmp(op, "flush_site") == 0 && qid)
        ipc_put_str(&m, IPC_A_SITE, qid);       /* control SOCK flush_site SITE */
    ipc_send(fd, &m, 10000);
    ipc_msg_free(&m);
    if (ipc_recv(fd, &m, 10000, &why) < 0) {
        fprintf(stderr, "recv: %s\n", why);
        return 1;
    }
    ipc_view_t v = ipc_msg_view(&m);
    ipc_get_u64(v, IPC_A_STATUS, &status);
    ipc_get_u64(v, IPC_A_COUNT, &count);
    const char *text = ipc_get_str(v, IPC_A_TEXT);
    printf("%llu %llu %s\n", (unsigned long long)status, (unsigned long long)count,
           text ? text : "");
    ipc_msg_free(&m);
    return 0;
}

/* notify_main - QMGR_NEW */
static int notify_main(const char *sock, const char *qid)
{
    int fd = connect_qmgr(sock);
    ipc_msg_t m;

    if (fd < 0)
        return 1;
    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    ipc_put_str(&m, IPC_A_QID, qid);
    int rc = ipc_send(fd, &m, 10000);
    ipc_msg_free(&m);
    close(fd);
    return rc < 0;
}

/* read_main - dump a queue file's envelope */
static int read_main(const char *path)
{
    int fd = open(path, O_RDONLY);
    qfile_t qf;
    const char *why;

    if (fd < 0 || qfile_read(fd, &qf, &why) < 0) {
        printf("error\n");
        return 1;
    }
    printf("%s\n", qf.sender);
    for (size_t i = 0; i < qf.nrcpts; i++)
        printf("%c %s\n", qf.rcpts[i].status, qf.rcpts[i].addr);
    qfile_free(&qf);
    return 0;
}

int main(int argc, char **argv)
{
    msg_init("qmgr_test_agent", "stork");
    if (argc >= 4 && strcmp(argv[1], "agent") == 0) {
        if (argc >= 6) {
            sockname = argv[4];
            proto = argv[5];
        }
        return agent_main(argv[2], argv[3]);
    }
    if (argc >= 5 && strcmp(argv[1], "enqueue") == 0)
        return enqueue_main(argv[2], argv[3], argc - 4, argv + 4);
    if (argc == 4 && strcmp(argv[1], "notify") == 0)
        return notify_main(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "list") == 0)
        return list_main(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "control") == 0)
        return control_main(argv[2], argv[3], argc > 4 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
    if (argc == 3 && strcmp(argv[1], "read") == 0)
        return read_main(argv[2]);
    fprintf(stderr, "usage: see the comment at the top of qmgr_test_agent.c\n");
    return 2;
}
