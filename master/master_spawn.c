/* master_spawn - fork/exec daemons, reap them, throttle, spawn on demand */
#include "master.h"
#include "service/service.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void master_spawn(master_t *m, master_serv_t *s);

master_proc_t *master_proc_find(master_t *m, pid_t pid)
{
    for (master_proc_t *p = m->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

/* master_proc_set_avail - one child's AVAIL/BUSY state, kept in its service's counts */
void master_proc_set_avail(master_proc_t *p, bool avail)
{
    if (p->retiring || p->avail == avail)
        return;
    p->avail = avail;
    p->serv->n_avail += avail ? 1 : -1;
}

/* master_proc_retire - out of the service's accounting; it keeps running */
static void master_proc_retire(master_proc_t *p)
{
    if (p->retiring)
        return;
    if (p->avail)
        p->serv->n_avail--;
    p->avail = false;
    p->serv->n_active--;
    p->retiring = true;
}

/* master_proc_retire_all - signal every child: SIGUSR1 (reload) or SIGTERM */
void master_proc_retire_all(master_t *m, int signo)
{
    for (master_proc_t *p = m->procs; p; p = p->next) {
        if (p->retiring && signo != SIGTERM)
            continue;
        if (kill(p->pid, signo) < 0 && errno != ESRCH)
            msg_warn("kill %d: %m", (int)p->pid);
        master_proc_retire(p);
    }
}

/* master_listen_ready - a connection waits and no child is available */
static void master_listen_ready(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    master_serv_t *s = ctx;

    master_spawn(s->master, s);
    master_spawn_check(s->master, s);
}

/* master_watch - watch or stop watching the listening sockets */
static void master_watch(master_t *m, master_serv_t *s, bool on)
{
    if (s->watching == on)
        return;
    for (size_t i = 0; i < s->n_listen; i++) {
        if (on && event_fd_add(m->loop, s->listen_fds[i], EVENT_READ, master_listen_ready, s) < 0)
            msg_fatal("event_fd_add: %m");
        if (!on)
            event_fd_del(m->loop, s->listen_fds[i]);
    }
    s->watching = on;
}

void master_spawn_check(master_t *m, master_serv_t *s)
{
    if (m->stopping || s->removed || s->throttled) {
        master_watch(m, s, false);
        return;
    }
    /* A wakeup service (qmgr, pickup) is started at boot and kept running. */
    if (s->wakeup > 0 && s->n_active == 0)
        master_spawn(m, s);
    master_watch(m, s, s->n_avail == 0 && s->n_active < s->maxproc && !s->throttled);
}

void master_spawn_check_all(master_t *m)
{
    for (master_serv_t *s = m->servs; s; s = s->next)
        master_spawn_check(m, s);
}

/*
 * master_child - in the new process: the contract's descriptors, a clean
 * signal state, exec. Only simple system calls between fork and exec.
 */
static void master_child(master_serv_t *s, char **envp)
{
    sigset_t mask;
    int st, lfd[MASTER_LISTEN_MAX];

    /* SIGUSR1 (retire, sent on reload) stays blocked across exec: a
     * daemon still starting up would die of its default action; blocked,
     * it waits for the signalfd the service skeleton sets up. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    (void)sigprocmask(SIG_SETMASK, &mask, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    /* Move the sources out of the way of 3..4+n, then place them. */
    if ((st = fcntl(s->status_wr, F_DUPFD_CLOEXEC, 64)) < 0)
        _exit(2);
    for (size_t i = 0; i < s->n_listen; i++)
        if ((lfd[i] = fcntl(s->listen_fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
            _exit(2);
    if (dup2(st, SERVICE_STATUS_FD) < 0)
        _exit(2);
    for (size_t i = 0; i < s->n_listen; i++)
        if (dup2(lfd[i], SERVICE_LISTEN_FD + (int)i) < 0)
            _exit(2);
    execve(s->path, s->argv, envp);
    msg_error("exec %s: %m", s->path);
    _exit(2);
}

/* master_throttle_end - try the service again */
static void master_throttle_end(event_loop_t *loop, void *ctx)
{
    master_serv_t *s = ctx;

    s->throttle_timer = NULL;
    s->throttled = false;
    master_spawn_check(s->master, s);
}

/* master_throttle - a child died abnormally at start: wait before respawning */
static void master_throttle(master_t *m, master_serv_t *s)
{
    int64_t secs = conf_int(m->conf, "service_throttle_time");

    if (secs <= 0 || s->throttled)
        return;
    msg_warn("%s: bad command startup -- throttling", s->path);
    s->throttled = true;
    s->throttle_timer = event_timer_add(m->loop, secs * 1000, master_throttle_end, s);
    master_watch(m, s, false);
}

/*
 * master_child_env - the master's environment plus STORK_LISTEN_FDS (how
 * many listening sockets start at fd 4), built before fork.
 */
static char **master_child_env(master_serv_t *s)
{
    extern char **environ;
    size_t n = 0, k = 0;
    char **envp;

    while (environ[n])
        n++;
    envp = xmallocarray(n + 2, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "STORK_LISTEN_FDS=", 17) != 0)
            envp[k++] = environ[i];
    envp[k++] = xasprintf("STORK_LISTEN_FDS=%zu", s->n_listen);
    envp[k] = NULL;
    return envp;
}

/* master_spawn - one more process for the service */
static void master_spawn(master_t *m, master_serv_t *s)
{
    master_proc_t *p;
    char **envp;
    size_t k;
    pid_t pid;

    if (s->n_active >= s->maxproc || s->throttled || m->stopping)
        return;
    envp = master_child_env(s);
    pid = fork();
    if (pid == 0)
        master_child(s, envp);
    for (k = 0; envp[k + 1]; k++)
        continue;
    free(envp[k]);              /* ours is last; the rest belong to environ */
    free(envp);
    if (pid < 0) {
        msg_warn("fork: %m");
        master_throttle(m, s);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->pid = pid;
    p->serv = s;
    p->avail = true;            /* until it says BUSY */
    p->start_ms = event_now_ms(m->loop);
    p->next = m->procs;
    m->procs = p;
    s->n_active++;
    s->n_avail++;
    s->n_total++;
    if (msg_verbose)
        msg_info("%s/%s: started pid %d", s->name, master_serv_type(s), (int)pid);
}

/* master_proc_gone - account for one reaped child and say why it died */
static void master_proc_gone(master_t *m, master_proc_t *p, int status)
{
    master_serv_t *s = p->serv;
    bool abnormal = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    bool was_retiring = p->retiring;

    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        msg_warn("process %s pid %d exit status %d", s->path, (int)p->pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status) && !(m->stopping && WTERMSIG(status) == SIGTERM))
        msg_warn("process %s pid %d killed by signal %d", s->path, (int)p->pid,
                 WTERMSIG(status));
    master_proc_retire(p);
    s->n_total--;
    for (master_proc_t **pp = &m->procs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    /* A process killed from outside (kill -9, the OOM killer) says
     * nothing about its program: only an exit status or a crash signal
     * soon after start counts as a bad start-up (Postfix throttles only
     * processes that never served; this is the same idea without a use
     * count). */
    bool killed = WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM);
    if (abnormal && !killed && !was_retiring && !m->stopping
        && event_now_ms(m->loop) - p->start_ms < MASTER_THROTTLE_UPTIME_MS)
        master_throttle(m, s);
    free(p);
    if (s->removed && s->n_total == 0)
        master_serv_free(m, s);
    else
        master_spawn_check(m, s);
}

void master_reap(master_t *m)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        master_proc_t *p = master_proc_find(m, pid);

        if (p)
            master_proc_gone(m, p, status);
    }
    if (m->stopping && m->procs == NULL)
        master_exit(m, 0);
}
