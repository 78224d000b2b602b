/* service - the daemon skeleton: options, config, privileges, accept, retire */
#include "service/service.h"
#include "queue/qfile.h"
#include "util/msg.h"
#include "util/xmalloc.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERVICE_FDS_PER_CLIENT 2
#define SERVICE_FD_RESERVE 64

#define SERVICE_ACCEPT_PAUSE_MS 1000    /* after EMFILE/ENFILE */
#define SERVICE_WAKEUP_MAX 86400

struct service {
    const service_spec_t *spec;
    conf_t *conf;
    event_loop_t *loop;
    const char *config_dir;
    const char *name;               /* -n */
    const char *transport;          /* -t */
    bool unpriv, chroot;            /* -u, -C */
    int wakeup;                     /* -w seconds, 0 = none */
    char **overrides;               /* -o, in order */
    size_t noverrides;
    char **args;                    /* extra arguments (borrowed from argv) */
    int listen_fd, status_fd;       /* -1 when not open */
    int client_limit;
    int64_t max_use, max_idle;      /* max_idle in seconds, 0 = never */
    int64_t clients, served;
    bool stopping, paused, watching;
    int last_status;
    event_timer_t *idle_timer, *pause_timer, *wakeup_timer;
    void *ctx;
};

static void service_listen_update(service_t *svc);

/* service_usage - bad command line: a start-up (environment) error */
static void service_usage(const char *prog)
{
    msg_fatal("usage: %s -c config_dir -n service -t inet|unix [-u] [-C] [-w seconds] "
              "[-o name=value ...] [args]", prog);
}

/* service_parse_args - the MASTER CONTRACT command line into svc */
static void service_parse_args(service_t *svc, int argc, char **argv)
{
    int ch;

    svc->config_dir = "/etc/stork";
    svc->name = svc->spec->name;
    svc->transport = "unix";
    optind = 1;
    while ((ch = getopt(argc, argv, "+c:n:t:uCw:o:")) != -1) {
        char *end;
        long w;

        switch (ch) {
        case 'c': svc->config_dir = optarg; break;
        case 'n': svc->name = optarg; break;
        case 't': svc->transport = optarg; break;
        case 'u': svc->unpriv = true; break;
        case 'C': svc->chroot = true; break;
        case 'w':
            errno = 0;
            w = strtol(optarg, &end, 10);
            if (errno || *end || w <= 0 || w > SERVICE_WAKEUP_MAX)
                msg_fatal("bad -w value: %s", optarg);
            svc->wakeup = (int)w;
            break;
        case 'o':
            svc->overrides = xreallocarray(svc->overrides, svc->noverrides + 1, sizeof(char *));
            svc->overrides[svc->noverrides++] = optarg;
            break;
        default:
            service_usage(argv[0]);
        }
    }
    if (strcmp(svc->transport, "unix") != 0 && strcmp(svc->transport, "inet") != 0)
        service_usage(argv[0]);
    svc->args = argv + optind;
}

/* service_logging - syslog_name and maillog_file from the configuration */
static void service_logging(service_t *svc)
{
    const char *path = conf_str(svc->conf, "maillog_file"), *why;

    msg_init(svc->spec->name, conf_str(svc->conf, "syslog_name"));
    if (*path && msg_set_logfile(path, &why) < 0)
        msg_fatal("open maillog_file %s: %s", path, why);
}

/* service_config - main.cf, -o overrides, logging, then validation */
static void service_config(service_t *svc)
{
    const char *why;
    buf_t errors;
    int n;

    if ((svc->conf = conf_open(svc->config_dir, &why)) == NULL)
        msg_fatal("%s", why);
    for (size_t i = 0; i < svc->noverrides; i++)
        if (conf_override(svc->conf, svc->overrides[i], &why) < 0)
            msg_fatal("-o %s: %s", svc->overrides[i], why);
    service_logging(svc);
    buf_init(&errors, BUF_NOLIMIT);
    if ((n = conf_validate(svc->conf, &errors)) > 0) {
        char *line = errors.data, *nl;

        for (; line && *line; line = nl ? nl + 1 : NULL) {
            if ((nl = strchr(line, '\n')) != NULL)
                *nl = 0;
            if (*line)
                msg_error("%s", line);
        }
        msg_fatal("%d configuration error%s: refusing to run", n, n == 1 ? "" : "s");
    }
    buf_free(&errors);
    qfile_set_dir_sync(conf_bool(svc->conf, "queue_directory_fsync"));
}

/* service_fd_fit - the open file limit must hold client_limit clients
 * (a socket each, and a file or a peer connection while busy): raise the
 * soft limit toward the hard one, else serve fewer clients, and say so
 * (info, not a warning: qmgr's 10,000 is "never busy", not a need) */
static void service_fd_fit(service_t *svc)
{
    rlim_t want = (rlim_t)svc->client_limit * SERVICE_FDS_PER_CLIENT + SERVICE_FD_RESERVE;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < want) {
        int fit = rl.rlim_cur > 2 * SERVICE_FD_RESERVE
            ? (int)((rl.rlim_cur - SERVICE_FD_RESERVE) / SERVICE_FDS_PER_CLIENT) : 1;
        msg_info("%s: the open file limit (%llu) holds %d clients, not client_limit %d",
                 svc->name, (unsigned long long)rl.rlim_cur, fit, svc->client_limit);
        svc->client_limit = fit;
    }
}

/* service_limits - client_limit (service or program parameter), max_use, max_idle */
static void service_limits(service_t *svc)
{
    const char *names[2] = { svc->name, svc->spec->name };

    svc->client_limit = svc->spec->client_limit > 0 ? svc->spec->client_limit : 1;
    for (int i = 0; i < 2; i++) {
        char *param = xasprintf("%s_client_limit", names[i]);
        bool known = conf_is_known(param);

        if (known)
            svc->client_limit = (int)conf_int(svc->conf, param);
        free(param);
        if (known)
            break;
    }
    if (svc->client_limit < 1)
        svc->client_limit = 1;
    service_fd_fit(svc);
    svc->max_use = conf_int(svc->conf, "max_use");
    svc->max_idle = svc->wakeup > 0 ? 0 : conf_int(svc->conf, "max_idle");
}

/* service_privileges - chroot and drop ids when root and asked; chdir always */
static void service_privileges(service_t *svc, pid_t parent)
{
    const char *qdir = conf_str(svc->conf, "queue_directory");
    const char *owner = conf_str(svc->conf, "mail_owner");
    bool root = geteuid() == 0;
    uid_t uid;
    gid_t gid;

    if (root && svc->unpriv) {
        if (privdrop_lookup(owner, &uid, &gid) < 0)
            msg_fatal("mail_owner %s: unknown user", owner);
        if (uid == 0)
            msg_fatal("mail_owner %s: must not be a root account", owner);
        privdrop(uid, gid, svc->chroot ? qdir : NULL);
    } else if (root && svc->chroot) {
        if (chroot(qdir) < 0 || chdir("/") < 0)
            msg_fatal("chroot %s: %m", qdir);
    }
    /* After chroot the queue directory is "/" and we are already there. */
    if (!(root && svc->chroot) && chdir(qdir) < 0)
        msg_fatal("chdir %s: %m", qdir);
    /* An id change clears the death signal, so arm it only now. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        msg_warn("prctl PR_SET_PDEATHSIG: %m");
    if (getppid() != parent)
        msg_fatal("parent process exited during start-up");
}

/* service_fd_ok - is fd open? (started by hand, 3 and 4 may be missing) */
static bool service_fd_ok(int fd, bool want_socket)
{
    struct stat st;

    if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &st) < 0)
        return false;
    return !want_socket || S_ISSOCK(st.st_mode);
}

/* service_fd_reserve - put /dev/null on a missing descriptor number */
static void service_fd_reserve(int fd)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (null >= 0 && null != fd) {
        (void)dup2(null, fd);
        close(null);
    }
}

/* service_status - tell the master AVAIL or BUSY when that changes */
static void service_status(service_t *svc)
{
    int code = svc->stopping || svc->clients >= svc->client_limit
        ? SERVICE_STATUS_BUSY : SERVICE_STATUS_AVAIL;
    service_status_t rec = { .pid = (int32_t)proc_pid(), .status = code };

    if (svc->status_fd < 0 || svc->listen_fd < 0 || code == svc->last_status)
        return;
    svc->last_status = code;
    if (write(svc->status_fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec)) {
        msg_warn("status pipe: %m");
        svc->status_fd = -1;        /* fd 3 stays open: its number stays ours */
    }
}

/* service_idle - max_idle seconds passed without a client: retire */
static void service_idle(event_loop_t *loop, void *ctx)
{
    service_t *svc = ctx;

    svc->idle_timer = NULL;
    msg_info("idle timeout -- exiting");
    svc->stopping = true;
    event_loop_stop(loop);
}

/* service_idle_arm - (re)start the idle timer while there are no clients */
static void service_idle_arm(service_t *svc)
{
    event_timer_cancel(svc->loop, &svc->idle_timer);
    if (svc->max_idle > 0 && svc->clients == 0 && !svc->stopping)
        svc->idle_timer = event_timer_add(svc->loop, svc->max_idle * 1000, service_idle, svc);
}

/* service_retire - stop accepting, tell the daemon, exit when clients are gone */
static void service_retire(service_t *svc, const char *why)
{
    if (svc->stopping)
        return;
    msg_info("%s -- retiring", why);
    svc->stopping = true;
    event_timer_cancel(svc->loop, &svc->idle_timer);
    event_timer_cancel(svc->loop, &svc->pause_timer);
    service_status(svc);            /* BUSY: the master must not count on us */
    if (svc->listen_fd >= 0) {
        event_fd_del(svc->loop, svc->listen_fd);
        close(svc->listen_fd);
        svc->listen_fd = -1;
    }
    if (svc->spec->stop_fn)
        svc->spec->stop_fn(svc);
    if (svc->clients == 0)
        event_loop_stop(svc->loop);
}

/* service_unpause - resume accepting after running out of descriptors */
static void service_unpause(event_loop_t *loop, void *ctx)
{
    service_t *svc = ctx;

    svc->pause_timer = NULL;
    svc->paused = false;
    service_listen_update(svc);
}

/* service_accept_error - EAGAIN is normal (shared socket); EMFILE pauses */
static bool service_accept_error(service_t *svc)
{
    if (errno == EINTR || errno == ECONNABORTED)
        return true;                            /* try again */
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        msg_warn("accept: %m; pausing");
        svc->paused = true;
        svc->pause_timer = event_timer_add(svc->loop, SERVICE_ACCEPT_PAUSE_MS, service_unpause, svc);
        service_listen_update(svc);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        msg_warn("accept: %m");
    }
    return false;
}

/* service_accept - take connections while below client_limit */
static void service_accept(event_loop_t *loop, int lfd, unsigned mask, void *ctx)
{
    service_t *svc = ctx;

    while (svc->listen_fd >= 0 && !svc->stopping && !svc->paused
           && svc->clients < svc->client_limit) {
        int fd = accept4(svc->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (service_accept_error(svc))
                continue;
            break;
        }
        svc->clients++;
        svc->served++;
        event_timer_cancel(loop, &svc->idle_timer);
        service_status(svc);
        service_listen_update(svc);
        svc->spec->accept_fn(svc, fd);
        if (svc->max_use > 0 && svc->served >= svc->max_use)
            service_retire(svc, "max_use reached");
    }
}

/* service_listen_update - watch the listening socket only when accepting */
static void service_listen_update(service_t *svc)
{
    bool want = svc->listen_fd >= 0 && !svc->stopping && !svc->paused
        && svc->clients < svc->client_limit;

    if (svc->listen_fd < 0 || want == svc->watching)
        return;
    if (event_fd_mod(svc->loop, svc->listen_fd, want ? EVENT_READ : 0) == 0)
        svc->watching = want;
}

/* service_client_done - one client is gone */
void service_client_done(service_t *svc)
{
    if (svc->clients <= 0)
        msg_panic("service_client_done: no client to be done with");
    svc->clients--;
    if (svc->stopping) {
        if (svc->clients == 0)
            event_loop_stop(svc->loop);
        return;
    }
    service_status(svc);
    service_listen_update(svc);
    if (svc->clients == 0)
        service_idle_arm(svc);
}

/* service_on_signal - SIGTERM exits now; SIGUSR1 retires */
static void service_on_signal(event_loop_t *loop, int signo, void *ctx)
{
    if (signo == SIGTERM) {
        msg_info("terminating on signal %d", signo);
        exit(0);
    }
    service_retire(ctx, "reload or retirement requested");
}

/* service_wakeup - the -w timer */
static void service_wakeup(event_loop_t *loop, void *ctx)
{
    service_t *svc = ctx;

    svc->wakeup_timer = event_timer_add(loop, (int64_t)svc->wakeup * 1000, service_wakeup, svc);
    if (svc->spec->wakeup_fn)
        svc->spec->wakeup_fn(svc);
}

/*
 * service_descriptors - adopt fd 3 and fd 4. Runs first thing: when they
 * are missing (started by hand), /dev/null holds their numbers so that
 * no log file or table opened later is mistaken for them.
 */
static void service_descriptors(service_t *svc)
{
    svc->status_fd = svc->listen_fd = -1;
    if (service_fd_ok(SERVICE_STATUS_FD, false))
        svc->status_fd = SERVICE_STATUS_FD;
    else
        service_fd_reserve(SERVICE_STATUS_FD);
    if (service_fd_ok(SERVICE_LISTEN_FD, true))
        svc->listen_fd = SERVICE_LISTEN_FD;
    else
        service_fd_reserve(SERVICE_LISTEN_FD);
    for (int fd = SERVICE_STATUS_FD; fd <= SERVICE_LISTEN_FD; fd++)
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (svc->listen_fd >= 0)
        (void)fcntl(svc->listen_fd, F_SETFL, fcntl(svc->listen_fd, F_GETFL) | O_NONBLOCK);
}

/* service_descriptors_report - say what is missing, once logging is set up */
static void service_descriptors_report(service_t *svc)
{
    if (svc->listen_fd < 0)
        msg_warn("no listening socket on fd %d (started by hand?): not accepting connections",
                 SERVICE_LISTEN_FD);
    if (svc->status_fd < 0)
        msg_warn("no status pipe on fd %d (started by hand?)", SERVICE_STATUS_FD);
}

/* service_serve_setup - signals, timers, the listening socket, first AVAIL */
static void service_serve_setup(service_t *svc)
{
    if (event_signal_add(svc->loop, SIGTERM, service_on_signal, svc) < 0
        || event_signal_add(svc->loop, SIGUSR1, service_on_signal, svc) < 0)
        msg_fatal("signal setup: %m");
    if (svc->wakeup > 0)
        svc->wakeup_timer = event_timer_add(svc->loop, (int64_t)svc->wakeup * 1000,
                                            service_wakeup, svc);
    if (svc->listen_fd >= 0) {
        if (event_fd_add(svc->loop, svc->listen_fd, EVENT_READ, service_accept, svc) < 0)
            msg_fatal("watch listening socket: %m");
        svc->watching = true;
    }
    service_status(svc);
    service_idle_arm(svc);
}

/* service_cleanup - release what the skeleton owns */
static void service_cleanup(service_t *svc)
{
    event_timer_cancel(svc->loop, &svc->idle_timer);
    event_timer_cancel(svc->loop, &svc->pause_timer);
    event_timer_cancel(svc->loop, &svc->wakeup_timer);
    if (svc->listen_fd >= 0)
        close(svc->listen_fd);
    close(SERVICE_STATUS_FD);       /* the pipe or its /dev/null stand-in */
    event_loop_free(&svc->loop);
    conf_free(&svc->conf);
    free(svc->overrides);
}

/* service_main - the whole life of a daemon */
int service_main(int argc, char **argv, const service_spec_t *spec)
{
    service_t svc = { .spec = spec, .listen_fd = -1, .status_fd = -1 };
    pid_t parent = getppid();

    service_descriptors(&svc);
    msg_init(spec->name, "stork");
    if (isatty(STDERR_FILENO))
        msg_use_stderr(true);
    signal(SIGPIPE, SIG_IGN);
    service_parse_args(&svc, argc, argv);
    service_config(&svc);
    service_descriptors_report(&svc);
    service_limits(&svc);
    svc.loop = event_loop_new();
    if (spec->pre_init)
        spec->pre_init(&svc);
    service_privileges(&svc, parent);
    if (spec->post_init)
        spec->post_init(&svc);
    service_serve_setup(&svc);
    event_loop_run(svc.loop);
    service_cleanup(&svc);
    return 0;
}

conf_t *service_conf(service_t *svc) { return svc->conf; }
event_loop_t *service_loop(service_t *svc) { return svc->loop; }
const char *service_name(service_t *svc) { return svc->name; }
char **service_args(service_t *svc) { return svc->args; }
bool service_stop_requested(service_t *svc) { return svc->stopping; }
void *service_get_ctx(service_t *svc) { return svc->ctx; }
void service_set_ctx(service_t *svc, void *ctx) { svc->ctx = ctx; }
