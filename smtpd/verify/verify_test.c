/* verify_test - run the real verify daemon under the master contract
 * (fd 3 status pipe, fd 4 listening socket) and talk to it over IPC.
 * usage: verify_test PATH_TO_VERIFY_DAEMON */
#include "test/test.h"
#include "ipc/ipc.h"
#include "service/service.h"
#include "table/table.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIMEOUT_MS 5000

static char dir[] = "/tmp/verify_test.XXXXXX";
static char *sock_path;

/* put - write a file in the test dir */
static void put(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *fp = fopen(p, "w");

    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
        msg_fatal("write %s", p);
    free(p);
}

/* build - table_build hash:DIR/name */
static void build(const char *name, table_syntax_t syntax)
{
    char *spec = xasprintf("hash:%s/%s", dir, name);
    buf_t err;

    buf_init(&err, BUF_NOLIMIT);
    if (table_build(spec, NULL, syntax, &err) != 0)
        msg_fatal("build %s: %s", spec, buf_cstr(&err));
    buf_free(&err);
    free(spec);
}

/* start_daemon - listening socket on fd 4, status pipe on fd 3, exec */
static pid_t start_daemon(const char *daemon, int *status_fd)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0), pfd[2];
    pid_t pid;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 16) < 0
        || pipe(pfd) < 0)
        msg_fatal("listen %s: %m", sock_path);
    if ((pid = fork()) < 0)
        msg_fatal("fork: %m");
    if (pid == 0) {
        /* move both out of the way first: either may already be 3 or 4 */
        int st = fcntl(pfd[1], F_DUPFD, 10), ls = fcntl(lfd, F_DUPFD, 10);

        dup2(st, SERVICE_STATUS_FD);
        dup2(ls, SERVICE_LISTEN_FD);
        for (int fd = 5; fd < 64; fd++)
            close(fd);
        execl(daemon, "verify", "-c", dir, "-n", "verify", "-t", "unix", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    close(lfd);
    *status_fd = pfd[0];
    return pid;
}

/* send_req - one VERIFY_REQ with a request id */
static void send_req(int fd, const char *addr, uint32_t id)
{
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_VERIFY_REQ);
    m.req_id = id;
    ipc_put_str(&m, IPC_A_ADDR, addr);
    TEST_INTEQ(ipc_send(fd, &m, TIMEOUT_MS), 0);
    ipc_msg_free(&m);
}

/* recv_reply - "id class dsn text" of the next reply, or "ERROR why" */
static const char *recv_reply(int fd)
{
    static char out[1024];
    ipc_msg_t m;
    const char *why, *text;
    ipc_view_t v;

    if (ipc_recv(fd, &m, TIMEOUT_MS, &why) < 0) {
        snprintf(out, sizeof(out), "ERROR %s", why);
        return out;
    }
    v = ipc_msg_view(&m);
    text = ipc_get_str(v, IPC_A_TEXT);
    snprintf(out, sizeof(out), "%u %s %s %s", (unsigned)m.req_id,
             m.type == IPC_M_VERIFY_REPLY ? ipc_get_str(v, IPC_A_CLASS) : "?",
             ipc_get_str(v, IPC_A_DSN_STATUS), text ? text : "-");
    ipc_msg_free(&m);
    return out;
}

/* send_auth - one AUTH_REQ */
static void send_auth(int fd, const char *user, const char *password, uint32_t id)
{
    ipc_msg_t m;

    ipc_msg_init(&m, IPC_M_AUTH_REQ);
    m.req_id = id;
    ipc_put_str(&m, IPC_A_USER, user);
    ipc_put_str(&m, IPC_A_PASSWORD, password);
    ipc_put_str(&m, IPC_A_CLIENT_ADDR, "192.0.2.1");
    TEST_INTEQ(ipc_send(fd, &m, TIMEOUT_MS), 0);
    ipc_msg_free(&m);
}

/* recv_auth - "id auth_reply status text" of the next reply, or "ERROR why" */
static const char *recv_auth(int fd)
{
    static char out[512];
    ipc_msg_t m;
    const char *why, *text;
    uint64_t status = 99;

    if (ipc_recv(fd, &m, TIMEOUT_MS, &why) < 0) {
        snprintf(out, sizeof(out), "ERROR %s", why);
        return out;
    }
    (void)ipc_get_u64(ipc_msg_view(&m), IPC_A_STATUS, &status);
    text = ipc_get_str(ipc_msg_view(&m), IPC_A_TEXT);
    snprintf(out, sizeof(out), "%u %s %u %s", (unsigned)m.req_id,
             m.type == IPC_M_AUTH_REPLY ? "auth_reply" : "?", (unsigned)status,
             text ? text : "-");
    ipc_msg_free(&m);
    return out;
}

/* auth - one AUTH_REQ, one reply */
static const char *auth(int fd, const char *user, const char *password, uint32_t id)
{
    send_auth(fd, user, password, id);
    return recv_auth(fd);
}

/* test_auth - AUTH_REQ against the virtual users table */
static void test_auth(int fd)
{
    TEST_STREQ(auth(fd, "auth@virt.example", "secret", 5), "5 auth_reply 0 ok");
    TEST_STREQ(auth(fd, "Auth@VIRT.example", "secret", 6), "6 auth_reply 0 ok");
    TEST_STREQ(auth(fd, "auth@virt.example", "Secret", 7), "7 auth_reply 1 authentication failure");
    TEST_STREQ(auth(fd, "auth@virt.example", "", 7), "7 auth_reply 1 authentication failure");
    TEST_STREQ(auth(fd, "nosuch@virt.example", "secret", 8),
               "8 auth_reply 1 authentication failure");
    /* no usable hash: mail is delivered, login is refused */
    TEST_STREQ(auth(fd, "user@virt.example", "", 9), "9 auth_reply 1 authentication failure");
    TEST_STREQ(auth(fd, "locked@virt.example", "secret", 10),
               "10 auth_reply 1 authentication failure");
    /* system users are not in the table */
    TEST_STREQ(auth(fd, "root", "secret", 11), "11 auth_reply 1 authentication failure");
    /* recipient checks and AUTH on one connection, in order */
    send_req(fd, "root@example.org", 12);
    send_auth(fd, "auth@virt.example", "secret", 13);
    send_req(fd, "nosuch@example.org", 14);
    TEST_STREQ(recv_reply(fd), "12 local 2.1.5 -");
    TEST_STREQ(recv_auth(fd), "13 auth_reply 0 ok");
    TEST_CHECK(strncmp(recv_reply(fd), "14 unknown 5.1.1", 16) == 0);
}

/* ask - one request, one reply */
static const char *ask(int fd, const char *addr)
{
    send_req(fd, addr, 1);
    return recv_reply(fd);
}

static void test_daemon(const char *daemon)
{
    int status_fd, fd, fd2;
    const char *why;
    pid_t pid = start_daemon(daemon, &status_fd);
    int wstatus;

    fd = ipc_connect(sock_path, "verify", TIMEOUT_MS, &why);
    TEST_CHECK(fd >= 0);
    if (fd < 0) {
        fprintf(stderr, "connect: %s\n", why);
        kill(pid, SIGTERM);
        waitpid(pid, &wstatus, 0);
        return;
    }
    TEST_STREQ(ask(fd, "root@example.org"), "1 local 2.1.5 -");
    TEST_STREQ(ask(fd, "List+x@Example.ORG"), "1 local 2.1.5 -");
    TEST_STREQ(ask(fd, "nosuch@example.org"),
               "1 unknown 5.1.1 <nosuch@example.org>: Recipient address rejected: "
               "User unknown in local recipient table");
    TEST_STREQ(ask(fd, "root%remote.example@example.org"),
               "1 unknown 5.1.1 <root%remote.example@example.org>: Recipient address "
               "rejected: User unknown in local recipient table");
    TEST_STREQ(ask(fd, "user@virt.example"), "1 virtual 2.1.5 -");
    TEST_STREQ(ask(fd, "bob@remote.example"), "1 remote 2.0.0 -");
    test_auth(fd);
    /* virtual_alias_maps names a table not built yet: temporary error */
    TEST_STREQ(ask(fd, "other@virt.example"),
               "1 error 4.3.0 <other@virt.example>: Temporary lookup failure");

    /* pipelined requests and a second client at the same time */
    fd2 = ipc_connect(sock_path, "verify", TIMEOUT_MS, &why);
    TEST_CHECK(fd2 >= 0);
    send_req(fd, "root@localhost", 11);
    send_req(fd, "nosuch@localhost", 12);
    send_req(fd2, "postmaster@virt.example", 21);
    send_req(fd, "x@remote.example", 13);
    TEST_STREQ(recv_reply(fd2), "21 virtual 2.1.5 -");
    TEST_STREQ(recv_reply(fd), "11 local 2.1.5 -");
    TEST_CHECK(strncmp(recv_reply(fd), "12 unknown 5.1.1", 16) == 0);
    TEST_STREQ(recv_reply(fd), "13 remote 2.0.0 -");

    /* rebuilt and newly built tables are used without a restart */
    put("valias", "sales@virt.example user@virt.example\n");
    build("valias", TABLE_SYNTAX_MAP);
    put("aliases", "list: root\nnewuser: root\n");
    build("aliases", TABLE_SYNTAX_ALIASES);
    usleep(1100 * 1000);
    TEST_STREQ(ask(fd, "newuser@example.org"), "1 local 2.1.5 -");
    TEST_STREQ(ask(fd, "sales@virt.example"), "1 virtual 2.1.5 -");
    TEST_STREQ(ask(fd, "other@virt.example"),
               "1 unknown 5.1.1 <other@virt.example>: Recipient address rejected: "
               "User unknown in virtual mailbox table");

    /* a wrong message type closes that connection, not the daemon */
    {
        ipc_msg_t m;

        ipc_msg_init(&m, IPC_M_PICKUP_WAKE);
        TEST_INTEQ(ipc_send(fd2, &m, TIMEOUT_MS), 0);
        ipc_msg_free(&m);
        TEST_CHECK(strncmp(recv_reply(fd2), "ERROR", 5) == 0);
        close(fd2);
    }
    TEST_STREQ(ask(fd, "root@example.org"), "1 local 2.1.5 -");

    /* the skeleton reported availability on the status pipe */
    {
        char rec[64];

        fcntl(status_fd, F_SETFL, O_NONBLOCK);
        TEST_CHECK(read(status_fd, rec, sizeof(rec)) > 0);
        close(status_fd);
    }

    /* retirement (SIGUSR1): the idle client is let go and the process
     * exits by itself */
    kill(pid, SIGUSR1);
    TEST_CHECK(strncmp(recv_reply(fd), "ERROR", 5) == 0);
    close(fd);
    for (int i = 0; i < 50 && waitpid(pid, &wstatus, WNOHANG) == 0; i++)
        usleep(100 * 1000);
    if (kill(pid, 0) == 0) {
        TEST_CHECK(!"verify did not exit after SIGUSR1");
        kill(pid, SIGTERM);
        waitpid(pid, &wstatus, 0);
    } else {
        TEST_CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    }
}

/* cleanup - remove the test dir (one level deep is all there is) */
static void cleanup(void)
{
    DIR *d = opendir(dir);

    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] != '.') {
            char *p = xasprintf("%s/%s", dir, de->d_name);

            unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* test_sigterm - stop now (stork stop): a clean exit status */
static void test_sigterm(const char *daemon)
{
    int status_fd, fd, wstatus = -1;
    const char *why;
    pid_t pid;

    unlink(sock_path);
    pid = start_daemon(daemon, &status_fd);
    fd = ipc_connect(sock_path, "verify", TIMEOUT_MS, &why);
    TEST_CHECK(fd >= 0);
    if (fd >= 0) {
        TEST_STREQ(ask(fd, "root@example.org"), "1 local 2.1.5 -");
        close(fd);
    }
    kill(pid, SIGTERM);
    TEST_INTEQ(waitpid(pid, &wstatus, 0), pid);
    TEST_CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    close(status_fd);
}

int main(int argc, char **argv)
{
    char *main_cf;

    if (argc != 2) {
        fprintf(stderr, "usage: verify_test /path/to/verify\n");
        return 2;
    }
    alarm(60);
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        return 1;
    sock_path = xasprintf("%s/verify.sock", dir);
    main_cf = xasprintf("queue_directory = %s\n"
                        "maillog_file = %s/maillog\n"
                        "mydestination = localhost, example.org\n"
                        "myorigin = example.org\n"
                        "alias_maps = hash:%s/aliases\n"
                        "virtual_mailbox_domains = virt.example\n"
                        "virtual_mailbox_maps = hash:%s/vmailbox\n"
                        "virtual_alias_maps = hash:%s/valias\n",
                        dir, dir, dir, dir, dir);
    put("main.cf", main_cf);
    free(main_cf);
    put("aliases", "list: root\n");
    build("aliases", TABLE_SYNTAX_ALIASES);
    /* the hash: openssl passwd -6 -salt storktest secret */
    put("vmailbox", "user@virt.example :virt.example/user/:\n"
        "auth@virt.example $6$storktest$XgwZ/Qf/2Ym4o2IZFfH.xEYn8bfk4JWuoNaUNnF3UCVuZAMG8SSwrOkt"
        "2i.Gaf3ByjQlLxP04tF9igAl13Qvz1:virt.example/auth/:\n"
        "locked@virt.example !$6$storktest$XgwZ/Qf/2Ym4o2IZFfH.xEYn8bfk4JWuoNaUNnF3UCVuZAMG8SSwr"
        "Okt2i.Gaf3ByjQlLxP04tF9igAl13Qvz1:virt.example/locked/:\n");
    build("vmailbox", TABLE_SYNTAX_MAP);
    test_daemon(argv[1]);
    test_sigterm(argv[1]);
    if (getenv("VERIFY_TEST_KEEP") == NULL)
        cleanup();
    else
        fprintf(stderr, "kept %s\n", dir);
    free(sock_path);
    return test_done();
}
