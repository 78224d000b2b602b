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
    /* now is whole seconds: one more, or a deferral late in a second
     * would be due again a moment later, well before its backoff */
    return now + delay + 1;
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

/*
 * Activation reads and moves a file: a thousand take a good part of a
 * second. With a big backlog due at once (a start after downtime, a
 * flush) the slots are filled a batch per loop turn, so qmgr answers
 * and hands the first messages to the agents meanwhile.
 */
#define QMGR_SCHED_BATCH 1000

static event_timer_t *sched_more_timer;

/* qmgr_sched_more - the next batch of due messages */
static void qmgr_sched_more(event_loop_t *loop, void *ctx)
{
    sched_more_timer = NULL;
    qmgr_message_pump();
    qmgr_sched_arm();
}

/* qmgr_sched_run - activate due deferred messages while slots are free,
 * one batch now and the rest on later loop turns */
void qmgr_sched_run(void)
{
    const char *why;
    due_collect_t d = { 0 };

    if (qmgr.nactive >= qmgr.active_limit)
        return;
    d.max = (size_t)(qmgr.active_limit - qmgr.nactive);
    if (d.max > QMGR_SCHED_BATCH)
        d.max = QMGR_SCHED_BATCH;
    d.ids = xcalloc(d.max, QID_BUFSIZE);
    /* collect first: activation changes the btree being walked */
    if (qindex_due(qmgr.index, qmgr_now(), due_collect, &d, &why) < 0)
        msg_warn("queue index due scan: %s", why);
    for (size_t i = 0; i < d.n; i++)
        qmgr_message_activate(d.ids[i], QUEUE_DEFERRED);
    if (d.n == d.max && qmgr.nactive < qmgr.active_limit && sched_more_timer == NULL)
        sched_more_timer = event_timer_add(qmgr.loop, 0, qmgr_sched_more, NULL);
    free(d.ids);
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

/*
 * A flush makes deferred mail due now: each message's deferred/ file
 * gets the current time as its mtime (the next attempt a rebuilt index
 * reads back) and its index entry the same next attempt. Over a queue of
 * a million messages that is tens of seconds of work, so it is done in
 * pieces of QMGR_FLUSH_PIECE index entries, one piece per loop turn:
 * qmgr keeps answering, and the messages of the first piece are being
 * delivered while the rest are made due. Each piece resumes the index
 * walk after the last queue id it looked at, so it sees the queue as it
 * is then (a message activated meanwhile is no longer deferred and is
 * left alone). Flushes asked for while one runs run beside it.
 */
#define QMGR_FLUSH_PIECE 2000

typedef struct flush_job {
    char *site;             /* only mail for this domain, or NULL */
    int64_t now;            /* the due time given to the messages */
    char after[QID_BUFSIZE];    /* the last queue id looked at */
    bool more;              /* the last piece stopped early */
    struct flush_job *next;
} flush_job_t;

static flush_job_t *flush_jobs;     /* flushes still in progress */
static event_timer_t *flush_timer;  /* the next piece */

typedef struct {
    char (*ids)[QID_BUFSIZE];
    size_t n, cap;
    size_t seen;
    flush_job_t *job;
} flush_collect_t;

/* flush_collect - deferred entries (optionally with a recipient at site),
 * up to a piece's worth of entries looked at */
static int flush_collect(const qindex_entry_t *e, void *ctx)
{
    flush_collect_t *f = ctx;
    const char *site = f->job->site;

    memcpy(f->job->after, e->qid, QID_BUFSIZE);
    if (++f->seen >= QMGR_FLUSH_PIECE)
        f->job->more = true;
    if (strcmp(e->queue, QUEUE_DEFERRED) != 0)
        return f->job->more;
    if (site) {
        bool match = false;
        for (size_t i = 0; i < e->nrcpts && !match; i++) {
            const char *at = strrchr(e->rcpts[i].addr, '@');
            match = e->rcpts[i].status == QFILE_RCPT_PENDING && at
                && strcasecmp(at + 1, site) == 0;
        }
        if (!match)
            return f->job->more;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->ids = xreallocarray(f->ids, f->cap, QID_BUFSIZE);
    }
    memcpy(f->ids[f->n++], e->qid, QID_BUFSIZE);
    return f->job->more;
}

/* flush_piece - make the next piece of a flush due; how many messages */
static size_t flush_piece(flush_job_t *job)
{
    flush_collect_t f = { .job = job };
    const char *why;

    job->more = false;
    /* collect first: the updates change the btree being walked */
    if (qindex_walk_from(qmgr.index, job->after, flush_collect, &f, &why) < 0) {
        msg_warn("queue index walk: %s", why);
        job->more = false;
    }
    for (size_t i = 0; i < f.n; i++) {
        char *path = xasprintf("%s/%s/%s", qmgr.qdir, QUEUE_DEFERRED, f.ids[i]);
        (void)qmgr_sched_set_mtime(path, job->now);
        free(path);
        qmgr_index_set_queue(f.ids[i], QUEUE_DEFERRED, job->now);
    }
    free(f.ids);
    return f.n;
}

/* flush_job_free - a finished flush */
static void flush_job_free(flush_job_t *job)
{
    free(job->site);
    free(job);
}

static void flush_timer_fire(event_loop_t *loop, void *ctx);

/* flush_timer_arm - one more loop turn for the flushes in progress */
static void flush_timer_arm(void)
{
    if (flush_jobs && flush_timer == NULL)
        flush_timer = event_timer_add(qmgr.loop, 0, flush_timer_fire, NULL);
}

/* flush_timer_fire - the next piece of every flush in progress */
static void flush_timer_fire(event_loop_t *loop, void *ctx)
{
    flush_job_t **jp = &flush_jobs;

    flush_timer = NULL;
    while (*jp) {
        flush_job_t *job = *jp;
        (void)flush_piece(job);
        if (job->more) {
            jp = &job->next;
        } else {
            *jp = job->next;
            flush_job_free(job);
        }
    }
    qmgr_message_pump();
    qmgr_sched_arm();
    flush_timer_arm();
}

/* qmgr_sched_flush_site - make deferred mail due now (all, or one site);
 * returns how many messages the first piece made due (the whole count
 * unless qmgr_sched_flushing() says the rest goes on in the background) */
size_t qmgr_sched_flush_site(const char *site)
{
    flush_job_t *job = xcalloc(1, sizeof(*job));
    size_t n;

    job->site = site ? xstrdup(site) : NULL;
    job->now = qmgr_now();
    n = flush_piece(job);
    if (job->more) {
        job->next = flush_jobs;
        flush_jobs = job;
    } else {
        flush_job_free(job);
    }
    qmgr_message_pump();
    qmgr_sched_arm();
    flush_timer_arm();
    return n;
}

/* qmgr_sched_flushing - is a flush still making messages due? */
bool qmgr_sched_flushing(void)
{
    return flush_jobs != NULL;
}

/* qmgr_sched_flush - everything deferred is due now */
void qmgr_sched_flush(void)
{
    (void)qmgr_sched_flush_site(NULL);
}
