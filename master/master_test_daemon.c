/*
 * master_test_daemon - a tiny daemon that follows the MASTER CONTRACT
 * (lib/service/service.h) without the service skeleton, so that the
 * master's test does not depend on it. One client at a time: greets
 * "hello PID SERVICE", echoes lines ("echo TEXT"), says BUSY/AVAIL on the
 * status pipe, retires on SIGUSR1 after its client leaves. Extra argument
 * "fail" makes it exit 1 at once (a bad command, for throttling).
 */
#include "config/conf.h"
#include "service/service.h"
#include "util/msg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t retire;

static void on_usr1(int sig)
{
    retire = 1;
}

/* status - one record to the master */
static void status(int code)
{
    service_status_t st = { .pid = (int32_t)getpid(), .status = code };

    if (write(SERVICE_STATUS_FD, &st, sizeof(st)) != sizeof(st))
        msg_fatal("status pipe: %m");
}

int main(int argc, char **argv)
{
    const char *config_dir = ".", *service = "?", *why;
    char *overrides[64];
    int n_over = 0, ch, client = -1, listening = 1;
    char line[512];
    size_t len = 0;
    conf_t *conf;

    msg_init("master_test_daemon", "stork");
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    while ((ch = getopt(argc, argv, "c:n:t:uCw:o:")) != -1) {
        if (ch == 'c') config_dir = optarg;
        else if (ch == 'n') service = optarg;
        else if (ch == 'o' && n_over < 64) overrides[n_over++] = optarg;
        else if (ch == '?') msg_fatal("bad option");
    }
    if ((conf = conf_open(config_dir, &why)) == NULL)
        msg_fatal("%s", why);
    for (int i = 0; i < n_over; i++)
        if (conf_override(conf, overrides[i], &why) < 0)
            msg_fatal("%s", why);
    if (*conf_str(conf, "maillog_file"))
        (void)msg_set_logfile(conf_str(conf, "maillog_file"), &why);
    msg_info("test daemon started: service=%s syslog_name=%s", service,
             conf_str(conf, "syslog_name"));
    if (optind < argc && strcmp(argv[optind], "fail") == 0)
        msg_fatal("failing at start as asked");
    signal(SIGUSR1, on_usr1);
    {
        /* The master execs us with SIGUSR1 blocked (it may come while we
         * start): take it now that the handler is in place. */
        sigset_t usr1;

        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    }

    for (;;) {
        struct pollfd pfd = { .fd = client >= 0 ? client : SERVICE_LISTEN_FD, .events = POLLIN };

        if (retire && listening) {
            close(SERVICE_LISTEN_FD);
            listening = 0;
            msg_info("retiring");
        }
        if (retire && client < 0)
            return 0;
        if (client < 0 && !listening)
            return 0;
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        if (client < 0) {
            client = accept4(SERVICE_LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
            if (client < 0)
                continue;       /* another process took it (EAGAIN) */
            status(SERVICE_STATUS_BUSY);
            dprintf(client, "hello %d %s\n", (int)getpid(), service);
            len = 0;
            continue;
        }
        ssize_t n = read(client, line + len, sizeof(line) - 1 - len);
        if (n <= 0) {
            close(client);
            client = -1;
            status(SERVICE_STATUS_AVAIL);
            continue;
        }
        len += (size_t)n;
        line[len] = 0;
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = 0;
            dprintf(client, "echo %s\n", line);
            memmove(line, nl + 1, len - (size_t)(nl + 1 - line) + 1);
            len -= (size_t)(nl + 1 - line);
        }
        if (len >= sizeof(line) - 1)
            len = 0;
    }
}
