/*
 * qmgr - the queue manager daemon: main, parameters, shared log helpers.
 * One process (master.cf: maxproc 1, wakeup 300), event driven.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

qmgr_t qmgr;

/* qmgr_now - wall-clock seconds (queue times are unix times) */
int64_t qmgr_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec;
}

/* qmgr_fmt_delay - Postfix's delay shape: "0.06", "1.5", "3016" */
static void qmgr_fmt_delay(char *out, size_t size, double d)
{
    if (d < 0)
        d = 0;
    snprintf(out, size, d < 10 ? "%.2g" : "%.0f", d);
}

/* qmgr_log_rcpt - a Postfix-shaped to= line for a result qmgr decided
 * itself (no agent involved): relay=none, delays all in the queue */
void qmgr_log_rcpt(const char *qid, const qfile_t *qf, size_t i, const char *relay,
                   const char *dsn, const char *status, const char *text)
{
    struct timeval tv;
    char d[32];

    gettimeofday(&tv, NULL);
    qmgr_fmt_delay(d, sizeof(d), (double)(tv.tv_sec - qf->arrival_sec)
                   + (double)(tv.tv_usec - qf->arrival_usec) / 1e6);
    const char *orcpt = qf->rcpts[i].orcpt;
    const char *semi = strchr(orcpt, ';');
    const char *orig = semi ? semi + 1 : orcpt;
    if (*orig && strcasecmp(orig, qf->rcpts[i].addr) != 0)
        msg_info("%s: to=<%s>, orig_to=<%s>, relay=%s, delay=%s, delays=%s/0/0/0, "
                 "dsn=%s, status=%s (%s)", qid, qf->rcpts[i].addr, orig, relay, d, d,
                 dsn, status, text);
    else
        msg_info("%s: to=<%s>, relay=%s, delay=%s, delays=%s/0/0/0, dsn=%s, status=%s (%s)",
                 qid, qf->rcpts[i].addr, relay, d, d, dsn, status, text);
}

/* qmgr_active_cap - qmgr_message_active_limit, lowered to what the
 * open file limit allows: every active message holds its queue file
 * open, and agent and client connections need descriptors too. Without
 * this a big queue fills the table, agents cannot be reached ("socket:
 * Too many open files") and nothing is delivered. */
#define QMGR_START_RESCAN1_MS 2000
#define QMGR_START_RESCAN2_MS 8000

static void qmgr_start_rescan(event_loop_t *loop, void *ctx);

#define QMGR_FD_RESERVE 1024            /* connections, index, logs */

static int qmgr_active_cap(int64_t want)
{
    struct rlimit rl;
    int64_t cap;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return (int)want;
    /* Use what the administrator allows us (the soft limit may be low). */
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t cur = rl.rlim_cur;

        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rl.rlim_cur = cur;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        return (int)want;
    cap = (int64_t)rl.rlim_cur > 2 * QMGR_FD_RESERVE ? (int64_t)rl.rlim_cur - QMGR_FD_RESERVE
                                                      : (int64_t)rl.rlim_cur / 2;
    if (want <= cap)
        return (int)want;
    msg_warn("qmgr_message_active_limit %lld is more than the open file limit (%lld) allows: "
             "using %lld", (long long)want, (long long)rl.rlim_cur, (long long)cap);
    return (int)cap;
}

/* qmgr_exit - at exit (SIGTERM or retirement): mark the index clean.
 * The skeleton handles signals inside the loop, so no index operation
 * is half done when this runs. */
static void qmgr_exit(void)
{
    if (qmgr.index)
        qmgr_index_close(true);
    /* Berkeley DB table handles hold pages that only a close frees. */
    qmgr_route_free(&qmgr.route);
    resolve_free(&qmgr.resolve);
}

/* qmgr_post_init - parameters, index, rebuild, first scheduling */
static void qmgr_post_init(service_t *svc)
{
    conf_t *conf = service_conf(svc);
    const char *why;

    qmgr.svc = svc;
    qmgr.conf = conf;
    qmgr.loop = service_loop(svc);
    qmgr.qdir = ".";
    qmgr.uid = getuid();
    qmgr.myhostname = conf_str(conf, "myhostname");
    qmgr.min_backoff = conf_int(conf, "minimal_backoff_time");
    qmgr.max_backoff = conf_int(conf, "maximal_backoff_time");
    if (qmgr.max_backoff < qmgr.min_backoff)
        qmgr.max_backoff = qmgr.min_backoff;
    qmgr.max_lifetime = conf_int(conf, "maximal_queue_lifetime");
    qmgr.bounce_lifetime = conf_int(conf, "bounce_queue_lifetime");
    if (qmgr.bounce_lifetime > qmgr.max_lifetime)
        qmgr.bounce_lifetime = qmgr.max_lifetime;
    qmgr.run_delay = conf_int(conf, "queue_run_delay");
    qmgr.ipc_timeout = conf_int(conf, "ipc_timeout");
    qmgr.active_limit = qmgr_active_cap(conf_int(conf, "qmgr_message_active_limit"));
    qmgr.delay_warning = conf_int(conf, "delay_warning_time");
    qmgr.recycle_limit = conf_int(conf, "queue_file_recycle_limit");
    /* A crash can leave a spent file that must not be reused. */
    qmgr.recycled = qfile_recycle_tidy(qmgr.qdir, qmgr.recycle_limit > 0);
    if (qmgr.recycled < 0)
        qmgr.recycle_limit = 0;
    if ((qmgr.resolve = resolve_new(conf, &why)) == NULL)
        msg_fatal("cannot set up address resolution: %s", why);
    qmgr.route = qmgr_route_new(conf);
    qmgr_transport_init();
    bool clean = qmgr_index_open();
    atexit(qmgr_exit);
    qmgr_rebuild(clean);
    qmgr_message_pump();
    qmgr_sched_arm();
    event_timer_add(qmgr.loop, QMGR_START_RESCAN1_MS, qmgr_start_rescan, NULL);
}

/* qmgr_start_rescan - incoming/ again 2 s and 10 s after start: a writer
 * that finished while the previous qmgr was retiring (stork reload) sent
 * its notice to that process, and its file may have been completed just
 * after our first scan; without this it would wait for the wakeup */
static void qmgr_start_rescan(event_loop_t *loop, void *ctx)
{
    bool last = ctx != NULL;

    qmgr_scan_incoming();
    qmgr_message_pump();
    if (!last)
        event_timer_add(loop, QMGR_START_RESCAN2_MS, qmgr_start_rescan, &qmgr);
}

/* qmgr_wakeup - every -w seconds: catch lost notices and due messages */
static void qmgr_wakeup(service_t *svc)
{
    qmgr_scan_incoming();
    qmgr_dest_sweep();
    qmgr_message_pump();
    qmgr_sched_arm();
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "qmgr",
        .client_limit = 10000,      /* never BUSY: one process serves all */
        .post_init = qmgr_post_init,
        .accept_fn = qmgr_notify_accept,
        .wakeup_fn = qmgr_wakeup,
    };

    return service_main(argc, argv, &spec);
}
