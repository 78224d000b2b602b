/*
 * service_test - the daemon skeleton from the master's side: fork
 * service_test_daemon with a status pipe on fd 3 and a listening UNIX
 * socket on fd 4, then check AVAIL/BUSY, retirement, idle exit, config
 * errors, running by hand, wakeups and SIGTERM.
 */
#include "service/service.h"
#include "test/test.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/service_test.XXXXXX";
static char sock_path[PATH_MAX], log_path[PATH_MAX], queue_dir[PATH_MAX];

/* setup - a config dir whose main.cf points the queue and the log here */
static void setup(void)
{
    char cf[PATH_MAX];
    FILE *fp;

    TEST_CHECK(mkdtemp(dir) != NULL);
    snprintf(queue_dir, sizeof(queue_dir), "%s/queue", dir);
    snprintf(log_path, sizeof(log_path), "%s/maillog", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
    snprintf(cf, sizeof(cf), "%s/main.cf", dir);
    TEST_CHECK(mkdir(queue_dir, 0700) == 0);
    fp = fopen(cf, "w");
    TEST_CHECK(fp != NULL);
    if (fp) {
        fprintf(fp, "queue_directory = %s\nmaillog_file = %s\n", queue_dir, log_path);
        fclose(fp);
    }
}

/* listen_sock - a fresh non-blocking listening socket at sock_path */
static int listen_sock(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

    unlink(sock_path);
    memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
    TEST_CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    TEST_CHECK(listen(fd, 16) == 0);
    return fd;
}

/*
 * start - fork+exec the test daemon. status_r gets the pipe's read end
 * (or -1 when fds is false: then fd 3 and 4 are closed, as by hand).
 */
static pid_t start(bool fds, int *status_r, const char *const *extra)
{
    const char *argv[32] = { SERVICE_TEST_DAEMON, "-c", dir, "-n", "svctest", "-t", "unix" };
    int n = 7, p[2] = { -1, -1 }, lfd = -1;
    pid_t pid;

    for (; extra && *extra && n < 30; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    if (fds) {
        TEST_CHECK(pipe2(p, O_CLOEXEC) == 0);
        lfd = listen_sock();
    }
    if ((pid = fork()) == 0) {
        if (fds && (dup2(p[1], 3) < 0 || dup2(lfd, 4) < 0))
            _exit(99);
        for (int fd = fds ? 5 : 3; fd < 256; fd++)
            close(fd);
        execv(argv[0], (char **)argv);
        _exit(98);
    }
    if (fds) {
        close(p[1]);
        close(lfd);         /* only the daemon holds the socket now */
    }
    *status_r = p[0];
    return pid;
}

/* read_status - next status record code, or -1 after timeout_ms */
static int read_status(int fd, pid_t pid, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    service_status_t rec;

    if (poll(&pfd, 1, timeout_ms) != 1 || read(fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec))
        return -1;
    TEST_INTEQ(rec.pid, pid);
    return rec.status;
}

/* wait_exit - the child's exit status, or -1 if it is still running */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int status;

    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(20000);
    }
    return -1;
}

/* log_has - does the maillog contain text (waiting up to timeout_ms)? */
static bool log_has(const char *text, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        FILE *fp = fopen(log_path, "r");
        char line[4096];
        bool found = false;

        while (fp && !found && fgets(line, sizeof(line), fp))
            found = strstr(line, text) != NULL;
        if (fp)
            fclose(fp);
        if (found)
            return true;
        usleep(20000);
    }
    fprintf(stderr, "maillog lacks \"%s\"\n", text);
    return false;
}

/* client - connect to the daemon's socket; -1 with errno on failure */
static int client(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* echo_ok - the daemon serves this client */
static bool echo_ok(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char b[8];

    return write(fd, "ping", 4) == 4 && poll(&pfd, 1, 3000) == 1 && read(fd, b, sizeof(b)) == 4
        && memcmp(b, "ping", 4) == 0;
}

/* test_busy_avail_retire - client_limit 1: AVAIL/BUSY, then SIGUSR1 */
static void test_busy_avail_retire(void)
{
    static const char *const extra[] = { "extra1", "extra2", NULL };
    char want[PATH_MAX + 64], real[PATH_MAX];
    int st, c1, c2, refused = 0;
    pid_t pid = start(true, &st, extra);

    TEST_INTEQ(read_status(st, pid, 5000), SERVICE_STATUS_AVAIL);
    c1 = client();
    TEST_CHECK(c1 >= 0 && echo_ok(c1));
    TEST_INTEQ(read_status(st, pid, 3000), SERVICE_STATUS_BUSY);
    c2 = client();                          /* waits in the backlog */
    TEST_CHECK(c2 >= 0);
    TEST_INTEQ(read_status(st, pid, 300), -1);
    close(c1);
    TEST_INTEQ(read_status(st, pid, 3000), SERVICE_STATUS_AVAIL);
    TEST_INTEQ(read_status(st, pid, 3000), SERVICE_STATUS_BUSY);
    TEST_CHECK(echo_ok(c2));
    TEST_CHECK(kill(pid, SIGUSR1) == 0);
    TEST_CHECK(log_has("stop_fn", 3000));
    for (int i = 0; i < 100 && !refused; i++) {
        int c = client();

        refused = c < 0 && errno == ECONNREFUSED;
        if (c >= 0)
            close(c);
        usleep(20000);
    }
    TEST_CHECK(refused);                    /* the listening socket is closed */
    TEST_INTEQ(wait_exit(pid, 200), -1);    /* still serving c2 */
    TEST_CHECK(echo_ok(c2));
    close(c2);
    TEST_INTEQ(wait_exit(pid, 5000), 0);
    TEST_CHECK(realpath(queue_dir, real) != NULL);
    snprintf(want, sizeof(want), "post_init cwd=%s args=extra1,extra2 name=svctest uid=%ld",
             real, (long)getuid());
    TEST_CHECK(log_has(want, 0));
    TEST_CHECK(log_has("stork/svctest[", 0));
    close(st);
}

/* test_idle - no clients for max_idle seconds: exit 0 */
static void test_idle(void)
{
    static const char *const extra[] = { "-o", "max_idle=1", NULL };
    int st;
    pid_t pid = start(true, &st, extra);

    TEST_INTEQ(read_status(st, pid, 5000), SERVICE_STATUS_AVAIL);
    TEST_INTEQ(wait_exit(pid, 5000), 0);
    TEST_CHECK(log_has("idle timeout", 0));
    close(st);
}

/* test_max_use - retire after max_use clients */
static void test_max_use(void)
{
    static const char *const extra[] = { "-o", "max_use=1", NULL };
    int st, c;
    pid_t pid = start(true, &st, extra);

    TEST_INTEQ(read_status(st, pid, 5000), SERVICE_STATUS_AVAIL);
    c = client();
    TEST_CHECK(c >= 0 && echo_ok(c));
    TEST_CHECK(log_has("max_use reached", 3000));
    close(c);
    TEST_INTEQ(wait_exit(pid, 5000), 0);
    close(st);
}

/* test_config_error - a bad -o stops the daemon with exit 1 */
static void test_config_error(void)
{
    static const char *const bad_name[] = { "-o", "no_such_parameter=1", NULL };
    static const char *const bad_value[] = { "-o", "max_use=lots", NULL };
    int st;
    pid_t pid = start(true, &st, bad_name);

    TEST_INTEQ(wait_exit(pid, 5000), 1);
    TEST_INTEQ(read_status(st, pid, 0), -1);
    close(st);
    pid = start(true, &st, bad_value);
    TEST_INTEQ(wait_exit(pid, 5000), 1);
    TEST_CHECK(log_has("refusing to run", 0));
    close(st);
}

/* test_early_fatal_on_stderr - a daemon that dies before its log file is
 * open says why on stderr (the master's), not only to syslog */
static void test_early_fatal_on_stderr(void)
{
    char out[4096];
    size_t have = 0;
    ssize_t n;
    int p[2];
    pid_t pid;

    TEST_CHECK(pipe2(p, O_CLOEXEC) == 0);
    if ((pid = fork()) == 0) {
        if (dup2(p[1], 2) < 0)
            _exit(99);
        execl(SERVICE_TEST_DAEMON, SERVICE_TEST_DAEMON, "-c", dir, "-n", "svctest",
              "-t", "unix", "-o", "no-equals-sign", (char *)NULL);
        _exit(98);
    }
    close(p[1]);
    while (have < sizeof(out) - 1 && (n = read(p[0], out + have, sizeof(out) - 1 - have)) > 0)
        have += (size_t)n;
    out[have] = 0;
    close(p[0]);
    TEST_INTEQ(wait_exit(pid, 5000), 1);
    TEST_CHECK(strstr(out, "svctest: fatal: -o no-equals-sign") != NULL);
}

/* test_by_hand - no fd 3/4: warn, still wake up; SIGTERM exits at once */
static void test_by_hand(void)
{
    static const char *const extra[] = { "-w", "1", NULL };
    int st;
    pid_t pid = start(false, &st, extra);

    TEST_CHECK(log_has("no listening socket on fd 4", 5000));
    TEST_CHECK(log_has("wakeup", 3000));
    TEST_CHECK(kill(pid, SIGTERM) == 0);
    TEST_INTEQ(wait_exit(pid, 3000), 0);
}

/* test_privdrop - as root with -u -C: chroot to the queue, become nobody */
static void test_privdrop(void)
{
    static const char *const extra[] = { "-u", "-C", "-o", "mail_owner=nobody", NULL };
    char want[64];
    uid_t uid;
    gid_t gid;
    int st, c;
    pid_t pid;

    if (geteuid() != 0 || privdrop_lookup("nobody", &uid, &gid) < 0) {
        printf("test_privdrop: skipped (needs root and user nobody)\n");
        return;
    }
    TEST_CHECK(chmod(dir, 0755) == 0 && chmod(queue_dir, 0755) == 0);
    /* LeakSanitizer needs /proc, which a chroot hides (no-op without ASan). */
    {
        const char *old = getenv("ASAN_OPTIONS");
        char *saved = old ? strdup(old) : NULL;
        char *opts = old ? xasprintf("%s:detect_leaks=0", old) : strdup("detect_leaks=0");

        setenv("ASAN_OPTIONS", opts, 1);
        pid = start(true, &st, extra);
        if (saved)
            setenv("ASAN_OPTIONS", saved, 1);
        else
            unsetenv("ASAN_OPTIONS");
        free(saved);
        free(opts);
    }
    TEST_INTEQ(read_status(st, pid, 5000), SERVICE_STATUS_AVAIL);
    snprintf(want, sizeof(want), "post_init cwd=/ args= name=svctest uid=%ld", (long)uid);
    TEST_CHECK(log_has(want, 3000));
    c = client();
    TEST_CHECK(c >= 0 && echo_ok(c));
    TEST_CHECK(kill(pid, SIGTERM) == 0);
    TEST_INTEQ(wait_exit(pid, 3000), 0);
    if (c >= 0)
        close(c);
    close(st);
    /* root as mail_owner is refused */
    {
        static const char *const bad[] = { "-u", "-o", "mail_owner=root", NULL };

        pid = start(true, &st, bad);
        TEST_INTEQ(wait_exit(pid, 5000), 1);
        TEST_CHECK(log_has("must not be a root account", 0));
        close(st);
    }
}

/* cleanup - remove the temp tree */
static void cleanup(void)
{
    char cf[PATH_MAX];

    snprintf(cf, sizeof(cf), "%s/main.cf", dir);
    unlink(cf);
    unlink(log_path);
    unlink(sock_path);
    rmdir(queue_dir);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setup();
    test_busy_avail_retire();
    test_idle();
    test_max_use();
    test_config_error();
    test_early_fatal_on_stderr();
    test_by_hand();
    test_privdrop();
    cleanup();
    return test_done();
}
