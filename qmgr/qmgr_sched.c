/*
 * qmgr_sched - when deferred mail is tried again. The due ordering is
 * the index's (next attempt, qid) btree; one timer fires at the earliest
 * due time. The next attempt time is also the deferred/ file's mtime, so
 * a rebuilt index keeps the schedule.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

/* qmgr_sched_next - Postfix's backoff: wait as long as the message has
 * already been queued (so waits double), within the configured bounds */
int64_t qmgr_sched_next(const qmgr_msg_t *msg)
{
    int64_t now = qmgr_now(), delay = now - msg->qf.arrival_sec;

    if (delay < qmgr.min_backoff)
        delay = qmgr.min_backoff;
    if (delay > qmgr.max_backoff)
        delay = qmgr.max_backoff;
    return now + delay;
}

/* qmgr_sched_set_mtime - record the next attempt time on the file */
int qmgr_sched_set_mtime(const char *path, int64_t when)
{
    struct timeval tv[2] = { { (time_t)when, 0 }, { (time_t)when, 0 } };

    return utimes(path, tv);
}

typedef struct {
    char (*ids)[QID_BUFSIZE];
    size_t n, max;
    int64_t first;
} due_collect_t;

/* due_collect - take due ids up to the number of free slots */
static int due_collect(const char *qid, int64_t t, void *ctx)
{
    due_collect_t *d = ctx;

    if (d->n == 0)
        d->first = t;
    if (d->n >= d->max)
        return 1;
    memcpy(d->ids[d->n++], qid, QID_BUFSIZE);
    return 0;
}

/* qmgr_sched_run - activate due deferred messages while slots are free */
void qmgr_sched_run(void)
{
    const char *why;
    due_collect_t d = { 0 };

    while (qmgr.nactive < qmgr.active_limit) {
        d.max = (size_t)(qmgr.active_limit - qmgr.nactive);
        if (d.max > 1000)
            d.max = 1000;
        d.ids = xcalloc(d.max, QID_BUFSIZE);
        d.n = 0;
        /* collect first: activation changes the btree being walked */
        if (qindex_due(qmgr.index, qmgr_now(), due_collect, &d, &why) < 0)
            msg_warn("queue index due scan: %s", why);
        size_t n = d.n;
        for (size_t i = 0; i < n; i++)
            qmgr_message_activate(d.ids[i], QUEUE_DEFERRED);
        free(d.ids);
        if (n < d.max)
            break;
    }
}

/* qmgr_sched_fire - the due timer */
static void qmgr_sched_fire(event_loop_t *loop, void *ctx)
{
    qmgr.sched_timer = NULL;
    qmgr.sched_at = 0;
    qmgr_message_pump();
    qmgr_sched_arm();
}

/* qmgr_sched_arm - (re)arm the timer for the earliest due message */
void qmgr_sched_arm(void)
{
    due_collect_t d = { 0 };
    char one[1][QID_BUFSIZE];
    const char *why;
    int64_t now = qmgr_now();

    if (qmgr.nactive >= qmgr.active_limit)
        return;                 /* a finishing message pumps and re-arms */
    d.ids = one;
    d.max = 1;
    if (qindex_due(qmgr.index, INT64_MAX, due_collect, &d, &why) < 0) {
        msg_warn("queue index due scan: %s", why);
        return;
    }
    if (d.n == 0)
        return;
    int64_t at = d.first;
    if (at < now)
        at = now;
    if (at > now + qmgr.run_delay)
        at = now + qmgr.run_delay;
    if (qmgr.sched_timer && qmgr.sched_at <= at)
        return;
    if (qmgr.sched_timer)
        event_timer_cancel(qmgr.loop, &qmgr.sched_timer);
    qmgr.sched_at = at;
    qmgr.sched_timer = event_timer_add(qmgr.loop, (at - now) * 1000, qmgr_sched_fire, NULL);
}

typedef struct {
    char (*ids)[QID_BUFSIZE];
    size_t n, cap;
    const char *site;
} flush_collect_t;

/* flush_collect - deferred entries (optionally with a recipient at site) */
static int flush_collect(const qindex_entry_t *e, void *ctx)
{
    flush_collect_t *f = ctx;

    if (strcmp(e->queue, QUEUE_DEFERRED) != 0)
        return 0;
    if (f->site) {
        bool match = false;
        for (size_t i = 0; i < e->nrcpts && !match; i++) {
            const char *at = strrchr(e->rcpts[i].addr, '@');
            match = e->rcpts[i].status == QFILE_RCPT_PENDING && at
                && strcasecmp(at + 1, f->site) == 0;
        }
        if (!match)
            return 0;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->ids = xreallocarray(f->ids, f->cap, QID_BUFSIZE);
    }
    memcpy(f->ids[f->n++], e->qid, QID_BUFSIZE);
    return 0;
}

/* qmgr_sched_flush_site - make deferred mail due now (all, or one site);
 * returns how many messages */
size_t qmgr_sched_flush_site(const char *site)
{
    flush_collect_t f = { .site = site };
    const char *why;
    int64_t now = qmgr_now();

    if (qindex_walk(qmgr.index, flush_collect, &f, &why) < 0)
        msg_warn("queue index walk: %s", why);
    for (size_t i = 0; i < f.n; i++) {
        char *path = xasprintf("%s/%s/%s", qmgr.qdir, QUEUE_DEFERRED, f.ids[i]);
        (void)qmgr_sched_set_mtime(path, now);
        free(path);
        qmgr_index_set_queue(f.ids[i], QUEUE_DEFERRED, now);
    }
    free(f.ids);
    qmgr_message_pump();
    qmgr_sched_arm();
    return f.n;
}

/* qmgr_sched_flush - everything deferred is due now */
void qmgr_sched_flush(void)
{
    (void)qmgr_sched_flush_site(NULL);
}
