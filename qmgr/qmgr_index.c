/*
 * qmgr_index - the only code that touches queue.db. Failures are logged
 * and otherwise ignored: the index is a cache, the files are the truth,
 * and a broken index is rebuilt at the next start (it is not clean).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/xmalloc.h"

/* In a directory of its own, owned by mail_owner: queue_directory itself
 * belongs to root, and BDB wants to create files beside the database. */
#define QMGR_INDEX_DIR "index"
#define QMGR_INDEX_FILE QMGR_INDEX_DIR "/queue.db"

/* qmgr_index_open - open; true if the previous owner closed it cleanly */
bool qmgr_index_open(void)
{
    const char *why;
    bool clean = false;

    /* The master makes it; an older queue tree may lack it. */
    if (mkdir(QMGR_INDEX_DIR, 0700) < 0 && errno != EEXIST)
        msg_fatal("mkdir %s: %m", QMGR_INDEX_DIR);
    qmgr.index = qindex_open(QMGR_INDEX_FILE, &clean, &why);
    if (qmgr.index == NULL)
        msg_fatal("cannot open the queue index %s: %s", QMGR_INDEX_FILE, why);
    return clean;
}

/* qmgr_index_close - flush and, if clean, set the marker */
void qmgr_index_close(bool clean)
{
    qindex_close(&qmgr.index, clean);
}

/* qmgr_index_reset - start a rebuild from nothing */
void qmgr_index_reset(void)
{
    const char *why;

    if (qindex_reset(qmgr.index, &why) < 0)
        msg_fatal("cannot reset the queue index: %s", why);
}

/* qmgr_index_put_file - the entry for a message as read from its file;
 * rs (may be NULL) gives the latest deferral reasons */
void qmgr_index_put_file(const char *qid, const char *queue, const qfile_t *qf,
                         const qmgr_rstate_t *rs, int64_t next_attempt)
{
    qindex_entry_t e;
    const char *why;

    memset(&e, 0, sizeof(e));
    memcpy(e.qid, qid, QID_BUFSIZE);
    snprintf(e.queue, sizeof(e.queue), "%s", queue);
    e.arrival_sec = qf->arrival_sec;
    e.arrival_usec = qf->arrival_usec;
    e.size = qf->content_size;
    e.sender = qf->sender;
    e.next_attempt = next_attempt;
    e.nrcpts = qf->nrcpts;
    e.rcpts = xcalloc(qf->nrcpts ? qf->nrcpts : 1, sizeof(*e.rcpts));
    for (size_t i = 0; i < qf->nrcpts; i++) {
        e.rcpts[i].addr = qf->rcpts[i].addr;
        e.rcpts[i].status = qf->rcpts[i].status;
        e.rcpts[i].reason = rs && rs[i].text && qf->rcpts[i].status == QFILE_RCPT_PENDING
            ? rs[i].text : "";
    }
    if (qindex_put(qmgr.index, &e, &why) < 0)
        msg_warn("%s: cannot update the queue index: %s", qid, why);
    free(e.rcpts);      /* the strings are borrowed from qf and rs */
}

/* qmgr_index_set_queue - change only the queue and next attempt */
void qmgr_index_set_queue(const char *qid, const char *queue, int64_t next_attempt)
{
    qindex_entry_t e;
    const char *why;

    if (qindex_get(qmgr.index, qid, &e, &why) != 1)
        return;
    snprintf(e.queue, sizeof(e.queue), "%s", queue);
    e.next_attempt = next_attempt;
    if (qindex_put(qmgr.index, &e, &why) < 0)
        msg_warn("%s: cannot update the queue index: %s", qid, why);
    qindex_entry_free(&e);
}

/* qmgr_index_del - forget a message */
void qmgr_index_del(const char *qid)
{
    const char *why;

    if (qindex_del(qmgr.index, qid, &why) < 0)
        msg_warn("%s: cannot update the queue index: %s", qid, why);
}
