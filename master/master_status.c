/* master_status - read AVAIL/BUSY records from a service's children */
#include "master.h"
#include "service/service.h"
#include "util/msg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(service_status_t) == sizeof(((master_serv_t *)0)->status_buf),
               "status record size");

/* master_status_record - apply one record from the pipe */
static void master_status_record(master_t *m, master_serv_t *s, const service_status_t *st)
{
    master_proc_t *p = master_proc_find(m, (pid_t)st->pid);

    /* A stale record (the child is gone) or one from another service. */
    if (p == NULL || p->serv != s) {
        if (msg_verbose)
            msg_info("%s: status record from unknown pid %d", s->name, (int)st->pid);
        return;
    }
    switch (st->status) {
    case SERVICE_STATUS_AVAIL:
        master_proc_set_avail(p, true);
        break;
    case SERVICE_STATUS_BUSY:
        master_proc_set_avail(p, false);
        break;
    default:
        msg_warn("%s: pid %d: bad status %d", s->name, (int)st->pid, (int)st->status);
        return;
    }
    master_spawn_check(m, s);
}

/* master_status_ready - the pipe is readable: whole records, any number */
static void master_status_ready(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    master_serv_t *s = ctx;
    master_t *m = s->master;
    ssize_t n;

    for (;;) {
        n = read(fd, s->status_buf + s->status_len, sizeof(s->status_buf) - s->status_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;          /* EAGAIN, or EOF (we hold the write end: not seen) */
        s->status_len += (size_t)n;
        if (s->status_len == sizeof(s->status_buf)) {
            service_status_t st;

            memcpy(&st, s->status_buf, sizeof(st));
            s->status_len = 0;
            master_status_record(m, s, &st);
        }
    }
}

/* master_status_open - the pipe whose write end every child gets as fd 3 */
int master_status_open(master_t *m, master_serv_t *s)
{
    int fds[2];

    if (s->status_rd >= 0)
        return 0;
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    /* Children block on a full pipe rather than lose a record. */
    (void)fcntl(fds[1], F_SETFL, 0);
    s->status_rd = fds[0];
    s->status_wr = fds[1];
    if (event_fd_add(m->loop, s->status_rd, EVENT_READ, master_status_ready, s) < 0) {
        master_status_close(m, s);
        return -1;
    }
    return 0;
}

void master_status_close(master_t *m, master_serv_t *s)
{
    if (s->status_rd >= 0) {
        event_fd_del(m->loop, s->status_rd);
        close(s->status_rd);
    }
    if (s->status_wr >= 0)
        close(s->status_wr);
    s->status_rd = s->status_wr = -1;
    s->status_len = 0;
}
