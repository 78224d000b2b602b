/* master_sig - signals: SIGCHLD reaps, SIGHUP reloads, SIGTERM stops */
#include "master.h"
#include "util/msg.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* master_exit - remove the pid file and go (the lock goes with the process) */
void master_exit(master_t *m, int status)
{
    if (m->pid_path)
        (void)unlink(m->pid_path);
    msg_info("terminating on signal or request");
    exit(status);
}

/* master_stop_timeout - children that ignored SIGTERM */
static void master_stop_timeout(event_loop_t *loop, void *ctx)
{
    master_t *m = ctx;

    m->stop_timer = NULL;
    for (master_proc_t *p = m->procs; p; p = p->next) {
        msg_warn("process %s pid %d did not stop; killing it", p->serv->path, (int)p->pid);
        (void)kill(p->pid, SIGKILL);
    }
    master_exit(m, 0);
}

/* master_sig_term - stop: every child gets SIGTERM; wait a few seconds */
static void master_sig_term(event_loop_t *loop, int signo, void *ctx)
{
    master_t *m = ctx;

    if (m->stopping)
        return;
    msg_info("stopping on signal %d", signo);
    m->stopping = true;
    for (master_serv_t *s = m->servs; s; s = s->next)
        master_spawn_check(m, s);       /* stops watching sockets */
    master_proc_retire_all(m, SIGTERM);
    if (m->procs == NULL)
        master_exit(m, 0);
    m->stop_timer = event_timer_add(loop, MASTER_STOP_WAIT_MS, master_stop_timeout, m);
}

/* master_sig_hup - reload */
static void master_sig_hup(event_loop_t *loop, int signo, void *ctx)
{
    master_t *m = ctx;

    if (!m->stopping)
        master_reload(m);
}

/* master_sig_chld - reap */
static void master_sig_chld(event_loop_t *loop, int signo, void *ctx)
{
    master_reap(ctx);
}

void master_sig_init(master_t *m)
{
    signal(SIGPIPE, SIG_IGN);
    if (event_signal_add(m->loop, SIGCHLD, master_sig_chld, m) < 0
        || event_signal_add(m->loop, SIGHUP, master_sig_hup, m) < 0
        || event_signal_add(m->loop, SIGTERM, master_sig_term, m) < 0
        || event_signal_add(m->loop, SIGINT, master_sig_term, m) < 0)
        msg_fatal("cannot set up signal handling: %m");
}
