/*
 * qmgr_dest - destinations and Postfix's concurrency feedback. A
 * destination is (transport, next hop), or (transport, recipient) when
 * the transport takes one recipient per request. Its window starts at
 * <transport>_initial_destination_concurrency, grows by 1/window for
 * every request that ends without a site failure (so it roughly doubles
 * per window of successes, up to <transport>_destination_concurrency_
 * limit), and shrinks by 1 for every site failure (DELIVER_DONE with
 * REASON, or every recipient deferred with a 4.4.x network status).
 * A site failure while the window is already 1, or
 * default_destination_concurrency_failed_cohort_limit failures in a row
 * at window 1, marks the destination dead for minimal_backoff_time:
 * its queued and new mail is deferred at once with "delivery
 * temporarily suspended: REASON", without a connection attempt.
 * Destinations live in a per-transport hash table while they have work,
 * a dead mark, or mail at an agent; the ones with waiting jobs are on
 * the transport's round-robin ring.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"
#include "util/str.h"

/* qmgr_mono_ms - monotonic milliseconds (rate delays) */
int64_t qmgr_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* qmgr_dest_grow - double the table when it is full */
static void qmgr_dest_grow(qmgr_transport_t *tr)
{
    size_t nsize = tr->hsize ? tr->hsize * 2 : 64;
    qmgr_dest_t **nt = xcalloc(nsize, sizeof(*nt));

    for (size_t i = 0; i < tr->hsize; i++)
        for (qmgr_dest_t *d = tr->htab[i], *next; d; d = next) {
            next = d->hnext;
            size_t h = (size_t)str_hash(d->key) % nsize;
            d->hnext = nt[h];
            nt[h] = d;
        }
    free(tr->htab);
    tr->htab = nt;
    tr->hsize = nsize;
}

/* qmgr_dest_get - find or create the destination */
qmgr_dest_t *qmgr_dest_get(qmgr_transport_t *tr, const char *key, const char *nexthop)
{
    if (tr->hsize) {
        for (qmgr_dest_t *d = tr->htab[(size_t)str_hash(key) % tr->hsize]; d; d = d->hnext)
            if (strcmp(d->key, key) == 0)
                return d;
    }
    if (tr->ndests >= tr->hsize)
        qmgr_dest_grow(tr);
    qmgr_dest_t *d = xcalloc(1, sizeof(*d));
    d->tr = tr;
    d->key = xstrdup(key);
    d->nexthop = xstrdup(nexthop);
    d->window = tr->init_conc;
    size_t h = (size_t)str_hash(key) % tr->hsize;
    d->hnext = tr->htab[h];
    tr->htab[h] = d;
    tr->ndests++;
    return d;
}

/* qmgr_ring_remove - off the transport's ring */
static void qmgr_ring_remove(qmgr_dest_t *d)
{
    qmgr_transport_t *tr = d->tr;

    if (!d->in_ring)
        return;
    if (d->rnext == d) {
        tr->ring = NULL;
    } else {
        d->rprev->rnext = d->rnext;
        d->rnext->rprev = d->rprev;
        if (tr->ring == d)
            tr->ring = d->rnext;
    }
    d->rnext = d->rprev = NULL;
    d->in_ring = false;
}

/* qmgr_ring_add - on the ring, just before the next one served (so a
 * newcomer waits one turn: round robin, no starvation) */
static void qmgr_ring_add(qmgr_dest_t *d)
{
    qmgr_transport_t *tr = d->tr;

    if (d->in_ring)
        return;
    if (tr->ring == NULL) {
        d->rnext = d->rprev = d;
        tr->ring = d;
    } else {
        d->rnext = tr->ring;
        d->rprev = tr->ring->rprev;
        d->rprev->rnext = d;
        tr->ring->rprev = d;
    }
    d->in_ring = true;
}

/* qmgr_dest_dead - dead now? (an expired mark is cleared here) */
bool qmgr_dest_dead(qmgr_dest_t *d)
{
    if (d->dead_until == 0)
        return false;
    if (qmgr_now() < d->dead_until)
        return true;
    d->dead_until = 0;
    d->failures = 0;
    d->window = d->tr->init_conc;
    free(d->dead_reason);
    d->dead_reason = NULL;
    return false;
}

/* qmgr_dest_maybe_free - forget a destination with nothing left */
void qmgr_dest_maybe_free(qmgr_dest_t *d)
{
    qmgr_transport_t *tr = d->tr;

    if (d->nwaiting > 0 || d->busy > 0 || qmgr_dest_dead(d))
        return;
    qmgr_ring_remove(d);
    size_t h = (size_t)str_hash(d->key) % tr->hsize;
    for (qmgr_dest_t **pp = &tr->htab[h]; *pp; pp = &(*pp)->hnext)
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    tr->ndests--;
    free(d->key);
    free(d->nexthop);
    free(d->dead_reason);
    free(d);
}

/* qmgr_dest_cap - how many requests may be at agents at once */
int qmgr_dest_cap(const qmgr_dest_t *d)
{
    if (d->tr->rate_delay_ms > 0)
        return 1;               /* as Postfix: a rate delay means one at a time */
    int cap = (int)d->window;
    if (cap < 1)
        cap = 1;
    if (cap > d->tr->conc_limit)
        cap = d->tr->conc_limit;
    return cap;
}

/* qmgr_dest_enqueue - a job waits at its destination */
void qmgr_dest_enqueue(qmgr_dest_t *d, qmgr_job_t *job)
{
    job->dest = d;
    job->next = NULL;
    if (d->tail)
        d->tail->next = job;
    else
        d->head = job;
    d->tail = job;
    d->nwaiting++;
    job->msg->jobs_out++;
    qmgr_ring_add(d);
}

/* qmgr_dest_pop - the oldest waiting job (off the ring when none left) */
qmgr_job_t *qmgr_dest_pop(qmgr_dest_t *d)
{
    qmgr_job_t *job = d->head;

    if (job == NULL)
        return NULL;
    d->head = job->next;
    if (d->head == NULL)
        d->tail = NULL;
    d->nwaiting--;
    job->next = NULL;
    if (d->fill == job)
        d->fill = NULL;
    if (d->nwaiting == 0)
        qmgr_ring_remove(d);
    return job;
}

/* qmgr_dest_feedback - a request ended: grow on success, shrink on a
 * site failure, and suspend the destination when it keeps failing */
void qmgr_dest_feedback(qmgr_dest_t *d, bool site_failure, const char *reason)
{
    qmgr_transport_t *tr = d->tr;

    if (!site_failure) {
        d->failures = 0;
        if (d->window < tr->conc_limit)
            d->window += 1.0 / d->window;
        if (d->window > tr->conc_limit)
            d->window = tr->conc_limit;
        return;
    }
    bool at_floor = d->window <= 1.0;
    d->window = d->window - 1.0 < 1.0 ? 1.0 : d->window - 1.0;
    if (at_floor)
        d->failures++;
    if (at_floor && d->failures >= tr->cohort_limit && d->dead_until == 0) {
        d->dead_until = qmgr_now() + qmgr.min_backoff;
        free(d->dead_reason);
        d->dead_reason = xstrdup(reason && *reason ? reason : "destination unavailable");
        msg_info("%s destination %s: delivery temporarily suspended: %s", tr->name,
                 d->nexthop, d->dead_reason);
        qmgr_transport_kick(tr);        /* defers what waits there */
    }
}

/* qmgr_dest_revive_tr - clear dead marks of one transport (site NULL:
 * all); returns how many */
static size_t qmgr_dest_revive_tr(qmgr_transport_t *tr, const char *site)
{
    size_t n = 0;

    for (size_t i = 0; i < tr->hsize; i++)
        for (qmgr_dest_t *d = tr->htab[i]; d; d = d->hnext) {
            if (d->dead_until == 0)
                continue;
            const char *nh = d->nexthop;
            size_t len = site ? strlen(site) : 0;
            if (site && strcasecmp(nh, site) != 0
                && !(nh[0] == '[' && strncasecmp(nh + 1, site, len) == 0 && nh[1 + len] == ']'))
                continue;
            d->dead_until = 1;  /* expired: cleared at the next look */
            n++;
        }
    if (n)
        qmgr_transport_kick(tr);
    return n;
}

/* qmgr_dest_revive - storkqueue -f / -s: forget that destinations were
 * dead, so their mail is tried now */
size_t qmgr_dest_revive(const char *site)
{
    size_t n = 0;

    for (qmgr_transport_t *tr = qmgr.transports; tr; tr = tr->next)
        n += qmgr_dest_revive_tr(tr, site);
    return n;
}

/* qmgr_dest_sweep - free idle destinations whose dead mark expired */
void qmgr_dest_sweep(void)
{
    for (qmgr_transport_t *tr = qmgr.transports; tr; tr = tr->next)
        for (size_t i = 0; i < tr->hsize; i++)
            for (qmgr_dest_t *d = tr->htab[i], *next; d; d = next) {
                next = d->hnext;
                qmgr_dest_maybe_free(d);
            }
}
