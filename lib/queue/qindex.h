#ifndef STORK_QUEUE_QINDEX_H
#define STORK_QUEUE_QINDEX_H
/*
 * NAME
 *	qindex - qmgr's rebuildable index of the queue (queue.db)
 * SUMMARY
 *	A cache over the queue files, owned by qmgr alone: queue id →
 *	queue name (state), arrival, size, sender, recipients with their
 *	status and last deferral reason, next attempt time; and a second
 *	ordering by (next attempt, queue id) for due scans. The files are
 *	the truth: an entry may be stale, and the whole index can be thrown
 *	away and rebuilt from the files at any time.
 * DESCRIPTION
 *	qindex_open(path, &clean, &why): opens or creates the index file
 *	(one file, Berkeley DB btrees in a private environment: no shared
 *	regions, so a kill -9 wedges nothing). *clean is true only if the
 *	previous owner closed it with qindex_close(.., true) and the file
 *	opened without error; an unreadable file is removed and recreated
 *	(then *clean is false). The marker is cleared and flushed to disk
 *	before qindex_open returns, so a crash from then on leaves the index
 *	untrusted at the next start.
 *	qindex_reset: drop every entry (remove and recreate the file) before
 *	a rebuild from the files.
 *	qindex_put: insert or replace the entry for e->qid (and its place in
 *	the due ordering; next_attempt 0 means "not scheduled").
 *	qindex_get: 1 and *e filled (free with qindex_entry_free), 0 if no
 *	entry, -1 on error.
 *	qindex_del: remove an entry (absent is fine).
 *	qindex_walk: every entry in queue id (= arrival) order; fn returns
 *	non-zero to stop.
	qindex_walk_from: the same for the entries whose queue id sorts
	after `after` (all when NULL or ""): a long walk done in pieces
	(a queue listing) resumes where the previous piece stopped, and
	sees the changes made in between.
 *	qindex_due: the entries with 0 < next_attempt <= now, earliest
 *	first (fn gets the queue id and the time); fn non-zero stops.
 *	qindex_close(&qi, clean): flush; if clean, set the clean marker.
 *	Writes are not synced one by one: the index need not be durable,
 *	only detectably stale.
 * ERRORS
 *	-1 with *why_r (a static or BDB message) on database errors; a
 *	stored value that does not decode is reported as an error, and the
 *	caller should rebuild.
 * OWNERSHIP
 *	Entries filled by qindex_get belong to the caller
 *	(qindex_entry_free); entries passed to walk callbacks are borrowed
 *	for the duration of the call.
 * LIMITS
 *	One process at a time (qmgr holds the master lock's guarantee that
 *	it is alone). Queue names at most QINDEX_QUEUE_MAX - 1 bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "queue/qid.h"

#define QINDEX_QUEUE_MAX 16

typedef struct qindex_rcpt {
    char *addr;
    char status;            /* QFILE_RCPT_PENDING or QFILE_RCPT_DONE */
    char *reason;           /* last deferral reason, "" if none */
} qindex_rcpt_t;

typedef struct qindex_entry {
    char qid[QID_BUFSIZE];
    char queue[QINDEX_QUEUE_MAX];   /* incoming active deferred hold corrupt */
    int64_t arrival_sec;
    int32_t arrival_usec;
    uint64_t size;
    char *sender;
    int64_t next_attempt;           /* unix seconds; 0 = not scheduled */
    size_t nrcpts;
    qindex_rcpt_t *rcpts;
} qindex_entry_t;

typedef struct qindex qindex_t;
typedef int qindex_walk_fn(const qindex_entry_t *e, void *ctx);
typedef int qindex_due_fn(const char *qid, int64_t next_attempt, void *ctx);

qindex_t *qindex_open(const char *path, bool *clean_r, const char **why_r);
int qindex_reset(qindex_t *qi, const char **why_r);
int qindex_put(qindex_t *qi, const qindex_entry_t *e, const char **why_r);
int qindex_get(qindex_t *qi, const char *qid, qindex_entry_t *e, const char **why_r);
int qindex_del(qindex_t *qi, const char *qid, const char **why_r);
int qindex_walk(qindex_t *qi, qindex_walk_fn *fn, void *ctx, const char **why_r);
int qindex_walk_from(qindex_t *qi, const char *after, qindex_walk_fn *fn, void *ctx,
                     const char **why_r);
int qindex_due(qindex_t *qi, int64_t now, qindex_due_fn *fn, void *ctx, const char **why_r);
uint64_t qindex_generation(const qindex_t *qi);
int qindex_sync(qindex_t *qi, const char **why_r);
void qindex_close(qindex_t **qi, bool clean);
void qindex_entry_free(qindex_entry_t *e);

#endif
