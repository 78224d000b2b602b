/*
 * smtpd_enqueue.c - the queue file of a transaction, group commit, and
 * the notice to qmgr.
 *
 * The file is created at the first accepted recipient (so rejected
 * transactions cost no disk: "NOQUEUE: reject"), gets the envelope
 * records as recipients arrive, then the Received: header and the
 * content as it streams in. At the end of the content the session is
 * parked on the commit list. Before the event loop sleeps, the
 * before-sleep hook hands the whole batch to a commit thread, which
 * makes it durable: each file (written as incoming/QID) gets its
 * completion mark and its fsync, which on Linux file systems makes its
 * name durable too (lib/queue/qfile_write.c; queue_directory_fsync = yes
 * adds one fsync of incoming/ per batch); only when that is done does the
 * loop give each session "250 2.0.0 Ok: queued as QID". A failure
 * at any step answers 451 4.3.0 and removes the file. Last, qmgr hears
 * QMGR_NEW {QID} on a persistent connection to public/qmgr (remade
 * lazily, and a second after it is lost; if qmgr is down the message is
 * still safe in incoming/, which qmgr scans when it starts and whenever
 * a client connects).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "mail/addr.h"
#include "smtpd.h"
#include "mail/mail_date.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SMTPD_QMGR_PATH "public/qmgr"
#define SMTPD_QMGR_RETRY_MS 1000
#define SMTPD_QMGR_BACKLOG (256 * 1024)   /* queued notices before we drop them */

/* smtpd_enqueue_proto - "ESMTP" plus S for TLS and A for AUTH (RFC 3848),
 * or with utf8 "UTF8SMTP..." (RFC 6531) */
static void smtpd_enqueue_proto(const smtpd_session_t *s, bool utf8, char *out, size_t size)
{
    if (!s->esmtp) {
        snprintf(out, size, "SMTP");
        return;
    }
    snprintf(out, size, "%s%s%s", utf8 ? "UTF8SMTP" : "ESMTP",
             s->tls_active ? "S" : "", s->sasl_username ? "A" : "");
}

/* smtpd_enqueue_open - create incoming/QID with the envelope so far */
int smtpd_enqueue_open(smtpd_session_t *s, const char **why_r)
{
    struct timeval tv;
    char proto[16];
    qfile_writer_t *w;
    int rc = 0;

    smtpd_enqueue_proto(s, false, proto, sizeof(proto));
    if (qfile_create(".", &w, why_r) < 0)
        return -1;
    gettimeofday(&tv, NULL);
    rc |= qfile_put_arrival(w, tv.tv_sec, (int32_t)tv.tv_usec);
    rc |= qfile_put_sender(w, buf_cstr(&s->mail.addr));
    rc |= qfile_put_attr(w, "client_address", s->client_addr);
    rc |= qfile_put_attr(w, "client_name", s->client_name);
    rc |= qfile_put_attr(w, "helo_name", s->helo ? s->helo : "");
    rc |= qfile_put_attr(w, "protocol", proto);
    if (s->mail.envid_set)
        rc |= qfile_put_attr(w, "envid", buf_cstr(&s->mail.envid));
    if (s->mail.ret != SMTP_RET_NONE)
        rc |= qfile_put_attr(w, "ret", s->mail.ret == SMTP_RET_FULL ? "FULL" : "HDRS");
    if (s->mail.smtputf8)
        rc |= qfile_put_attr(w, "smtputf8", "yes");
    if (s->sasl_username) {
        rc |= qfile_put_attr(w, "sasl_method", s->sasl_method);
        rc |= qfile_put_attr(w, "sasl_username", s->sasl_username);
    }
    /* The smtp client needs the declared body type to pass it on. */
    if (s->mail.body == SMTP_BODY_7BIT || s->mail.body == SMTP_BODY_8BITMIME)
        rc |= qfile_put_attr(w, "body", s->mail.body == SMTP_BODY_7BIT ? "7BIT" : "8BITMIME");
    if (rc != 0) {
        *why_r = "cannot write the envelope";
        qfile_abort(&w);
        return -1;
    }
    s->qf = w;
    memcpy(s->qid, qfile_writer_qid(w), QID_BUFSIZE);
    if (s->sasl_username)
        msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->qid, s->client_desc,
                 s->sasl_method, s->sasl_username);
    else
        msg_info("%s: client=%s", s->qid, s->client_desc);
    return 0;
}

/* smtpd_enqueue_rcpt - one accepted recipient */
int smtpd_enqueue_rcpt(smtpd_session_t *s, const char *addr, const char *orcpt, unsigned notify)
{
    if (qfile_put_rcpt(s->qf, addr, orcpt, notify) < 0) {
        msg_warn("%s: cannot write a recipient record", s->qid);
        return -1;
    }
    return 0;
}

/* smtpd_enqueue_begin_content - start the content with Received: */
int smtpd_enqueue_begin_content(smtpd_session_t *s)
{
    const smtpd_settings_t *set = &s->srv->set;
    buf_t hdr;
    char with[16];
    int rc;

    if (s->qf == NULL || qfile_begin_content(s->qf) < 0)
        return -1;
    smtpd_enqueue_proto(s, s->mail.smtputf8, with, sizeof(with));
    buf_init(&hdr, BUF_NOLIMIT);
    /* Postfix's shape, so log and header tools read it:
     * Received: from HELO (NAME [ADDR])
     *	(using TLSv1.3 with cipher X (256/256 bits))      (TLS only)
     *	(No client certificate requested)
     *	by MYHOSTNAME (Stork) with ESMTPSA id QID
     *	for <RCPT>; DATE                  (one recipient only) */
    buf_printf(&hdr, "Received: from %s (%s [%s%s])\r\n",
               s->helo ? s->helo : "unknown", s->client_name,
               strchr(s->client_addr, ':') ? "IPv6:" : "", s->client_addr);
    if (s->tls_active && s->tls_info && set->tls_received_header)
        buf_printf(&hdr, "\t(using %s)\r\n\t(No client certificate requested)\r\n",
                   s->tls_info);
    buf_printf(&hdr, "\tby %s (Stork) with %s id %s", set->myhostname, with, s->qid);
    if (s->nrcpts == 1) {
        buf_puts(&hdr, "\r\n\tfor <");
        addr_quote(s->rcpts[0], &hdr);
        buf_puts(&hdr, ">; ");
        mail_date(&hdr, time(NULL));
        buf_puts(&hdr, "\r\n");
    } else {
        buf_puts(&hdr, ";\r\n\t");
        mail_date(&hdr, time(NULL));
        buf_puts(&hdr, "\r\n");
    }
    rc = qfile_write_content(s->qf, hdr.data, hdr.len);
    buf_free(&hdr);
    return rc;
}

/* smtpd_enqueue_write - client content into the file */
void smtpd_enqueue_write(smtpd_session_t *s, const char *p, size_t n)
{
    if (s->qf == NULL || qfile_write_content(s->qf, p, n) < 0)
        s->write_error = true;
}

/* smtpd_enqueue_abort - remove the temp file of a failed transaction */
void smtpd_enqueue_abort(smtpd_session_t *s)
{
    qfile_abort(&s->qf);
    s->qid[0] = 0;
}

/* smtpd_enqueue_finish - complete the file and park for group commit */
void smtpd_enqueue_finish(smtpd_session_t *s)
{
    smtpd_server_t *srv = s->srv;
    const char *why;

    if (qfile_finish(s->qf, &why) < 0) {
        msg_warn("%s: queue file write error: %s", s->qid, why);
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        smtpd_transaction_reset(s);
        return;
    }
    s->parked = true;
    s->commit_next = NULL;
    *srv->commit_tail = s;
    srv->commit_tail = &s->commit_next;
}

static bool smtpd_qmgr_connect(smtpd_server_t *srv);
static void smtpd_qmgr_retry(event_loop_t *loop, void *ctx);

/* smtpd_qmgr_on_msg - qmgr sends nothing we need */
static void smtpd_qmgr_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
}

/* smtpd_qmgr_on_close - qmgr went away: notices sent since it stopped
 * reading are lost, so reconnect soon (qmgr rescans incoming/ when a
 * client connects) rather than at the next message */
static void smtpd_qmgr_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    smtpd_server_t *srv = ctx;

    ipc_conn_free(&srv->qmgr);
    if (srv->qmgr_timer == NULL)
        srv->qmgr_timer = event_timer_add(srv->loop, SMTPD_QMGR_RETRY_MS, smtpd_qmgr_retry, srv);
}

/* smtpd_qmgr_retry - reconnect after lost notices: qmgr rescans
 * incoming/ whenever a client connects, so the reconnection alone makes
 * it find the files whose notices were lost */
static void smtpd_qmgr_retry(event_loop_t *loop, void *ctx)
{
    smtpd_server_t *srv = ctx;

    srv->qmgr_timer = NULL;
    (void)smtpd_qmgr_connect(srv);
}

/* smtpd_qmgr_connect - the persistent connection to qmgr, made lazily;
 * on failure retry in the background until it works */
static bool smtpd_qmgr_connect(smtpd_server_t *srv)
{
    int64_t now = event_now_ms(srv->loop);
    const char *why;
    int fd;

    if (srv->qmgr)
        return true;
    if (now < srv->qmgr_retry_ms)
        return false;
    fd = ipc_connect_start(SMTPD_QMGR_PATH, &why);
    if (fd < 0) {
        if (srv->qmgr_timer == NULL)
            msg_warn("connect to %s: %s (mail waits in incoming/ until qmgr is back)",
                     SMTPD_QMGR_PATH, why);
        srv->qmgr_retry_ms = now + SMTPD_QMGR_RETRY_MS;
        if (srv->qmgr_timer == NULL)
            srv->qmgr_timer = event_timer_add(srv->loop, SMTPD_QMGR_RETRY_MS, smtpd_qmgr_retry, srv);
        return false;
    }
    srv->qmgr = ipc_conn_new(srv->loop, fd, smtpd_qmgr_on_msg, smtpd_qmgr_on_close, srv);
    ipc_conn_expect_hello(srv->qmgr, "qmgr");
    return true;
}

/* smtpd_qmgr_notify - QMGR_NEW {QID}; best effort (qmgr also scans) */
static void smtpd_qmgr_notify(smtpd_server_t *srv, const char *qid)
{
    ipc_msg_t m;

    if (!smtpd_qmgr_connect(srv))
        return;
    if (ipc_conn_pending(srv->qmgr) > SMTPD_QMGR_BACKLOG)
        return;
    ipc_msg_init(&m, IPC_M_QMGR_NEW);
    ipc_put_str(&m, IPC_A_QID, qid);
    ipc_conn_send(srv->qmgr, &m);
    ipc_msg_free(&m);
}

/*
 * The commit threads. Making a batch durable (fsync of each file, and
 * one of incoming/ when a file was reused from recycle/ or
 * queue_directory_fsync asks) blocks for a millisecond or more per
 * file, so it runs in threads while the event loop keeps serving the
 * other sessions (greetings, EHLO, the next messages' content): a
 * session's other steps never wait behind someone else's fsync. Up to
 * SMTPD_COMMIT_INFLIGHT batches are in flight at a time (a message
 * finished just after a batch left need not wait for that batch's
 * flush before its own starts); their files and directory fsyncs are
 * taken, oldest batch first, by up to SMTPD_COMMIT_THREADS threads at
 * once (concurrent fsyncs share the disk's cache flushes: this disk
 * does 4x more durable commits with 16 writers than with one), and the
 * thread that finishes a batch's last item hands the batch back. The threads touch only the
 * batch's writers; the sessions stay parked, and are not freed
 * (smtpd_session_resume), until the loop answers them. Meanwhile
 * finished messages wait on the commit list and go together as the next
 * batch: that is the group commit. A finished batch comes back through
 * a pipe.
 */
#define SMTPD_COMMIT_THREADS 4
#define SMTPD_COMMIT_INFLIGHT 2         /* batches committing at once */

typedef struct smtpd_commit_job {
    smtpd_session_t *batch;             /* the sessions, through commit_next */
    size_t n;
    qfile_writer_t **w;                 /* batch order */
    bool *ok;                           /* fsync and rename done */
    const char **why;
    bool dir_ok;
    size_t nitems;                      /* the files, plus one for incoming/ if it needs a fsync */
    size_t next;                        /* the next item to take (pool lock) */
    size_t ndone;                       /* items finished (pool lock) */
    struct smtpd_commit_job *link;      /* on the pool's todo or done list */
} smtpd_commit_job_t;

/* A FIFO of jobs, through job->link */
typedef struct smtpd_commit_list {
    smtpd_commit_job_t *head;
    smtpd_commit_job_t **tail;
} smtpd_commit_list_t;

typedef struct smtpd_commit_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    smtpd_commit_list_t todo;           /* jobs with items not taken yet */
    smtpd_commit_list_t done;           /* finished jobs, for the loop */
    unsigned inflight;                  /* submitted and not yet answered (loop only) */
    int pipe[2];                        /* threads → loop */
    unsigned nthreads;
} smtpd_commit_pool_t;

/* smtpd_commit_job_new - the parked list as one job */
static smtpd_commit_job_t *smtpd_commit_job_new(smtpd_session_t *batch)
{
    smtpd_commit_job_t *job = xcalloc(1, sizeof(*job));
    size_t i = 0;

    for (smtpd_session_t *s = batch; s; s = s->commit_next)
        job->n++;
    job->batch = batch;
    job->w = xcalloc(job->n, sizeof(*job->w));
    job->ok = xcalloc(job->n, sizeof(*job->ok));
    job->why = xcalloc(job->n, sizeof(*job->why));
    bool renamed = false;
    for (smtpd_session_t *s = batch; s; s = s->commit_next) {
        renamed |= qfile_name_needs_dir_sync(s->qf);
        job->w[i++] = s->qf;
    }
    /* Every name in the batch exists already (the files were created or
     * renamed when their transactions began), so the directory's fsync
     * runs beside the files' own, not after them. */
    job->nitems = job->n + renamed;
    job->dir_ok = true;
    return job;
}

static void smtpd_commit_job_free(smtpd_commit_job_t *job)
{
    free(job->w);
    free(job->ok);
    free(job->why);
    free(job);
}

/* smtpd_commit_item - item i of the job (any thread: no logging, no
 * session state): fsync file i, or, as the last item, incoming/ */
static void smtpd_commit_item(smtpd_commit_job_t *job, size_t i)
{
    if (i == job->n) {
        job->dir_ok = queue_sync_dir(".", QUEUE_INCOMING) == 0;
        return;
    }
    job->ok[i] = qfile_sync(job->w[i], &job->why[i]) == 0
        && qfile_commit(job->w[i], &job->why[i]) == 0;
}

/* smtpd_commit_answer - in the loop: 250 or 451 to every session of a
 * job whose work is done, then the notices to qmgr */
static void smtpd_commit_answer(smtpd_server_t *srv, smtpd_commit_job_t *job)
{
    char **qids = xcalloc(job->n ? job->n : 1, sizeof(*qids));
    size_t i = 0;

    if (!job->dir_ok)
        /* The renames may not survive a crash: take them back rather
         * than acknowledge mail that could vanish. */
        msg_warn("cannot sync the %s directory", QUEUE_INCOMING);
    for (smtpd_session_t *s = job->batch, *next; s; s = next, i++) {
        next = s->commit_next;
        s->commit_next = NULL;
        s->parked = false;
        if (job->ok[i] && job->dir_ok) {
            if (s->message_id)
                msg_info("%s: message-id=%s", s->qid, s->message_id + strspn(s->message_id, " \t"));
            smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", s->qid);
            s->cmd_ok[s->used_bdat ? SMTPD_C_BDAT : SMTPD_C_DATA]++;
            qids[i] = xstrdup(s->qid);
            qfile_writer_free(&s->qf);     /* committed: keep the file */
            s->error_count = 0;
            s->junk_count = 0;
        } else {
            if (job->ok[i]) {
                char *path = xasprintf("%s/%s", QUEUE_INCOMING, s->qid);
                if (unlink(path) < 0 && errno != ENOENT)
                    msg_warn("%s: cannot remove %s: %m", s->qid, path);
                free(path);
                qfile_writer_free(&s->qf);
            } else {
                msg_warn("%s: cannot commit the queue file: %s", s->qid,
                         job->why[i] ? job->why[i] : "unknown error");
            }
            smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        }
        smtpd_transaction_reset(s);
        smtpd_session_resume(s);
    }
    for (i = 0; i < job->n; i++) {
        if (qids[i])
            smtpd_qmgr_notify(srv, qids[i]);
        free(qids[i]);
    }
    free(qids);
    smtpd_commit_job_free(job);
}

static void smtpd_commit_list_init(smtpd_commit_list_t *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void smtpd_commit_list_append(smtpd_commit_list_t *l, smtpd_commit_job_t *job)
{
    job->link = NULL;
    *l->tail = job;
    l->tail = &job->link;
}

static smtpd_commit_job_t *smtpd_commit_list_pop(smtpd_commit_list_t *l)
{
    smtpd_commit_job_t *job = l->head;

    if (job && (l->head = job->link) == NULL)
        l->tail = &l->head;
    return job;
}

/* smtpd_commit_thread - take the oldest job's next item; the thread
 * that finishes a job's last item hands the job back */
static void *smtpd_commit_thread(void *ctx)
{
    smtpd_commit_pool_t *pool = ctx;

    pthread_mutex_lock(&pool->mu);
    for (;;) {
        smtpd_commit_job_t *job = pool->todo.head;
        size_t i;
        char c = 1;

        if (job == NULL) {
            pthread_cond_wait(&pool->cv, &pool->mu);
            continue;
        }
        i = job->next++;
        if (job->next == job->nitems)
            smtpd_commit_list_pop(&pool->todo);
        pthread_mutex_unlock(&pool->mu);
        smtpd_commit_item(job, i);
        pthread_mutex_lock(&pool->mu);
        if (++job->ndone < job->nitems)
            continue;
        smtpd_commit_list_append(&pool->done, job);
        /* A full pipe already holds a wake-up: losing this byte is fine. */
        while (write(pool->pipe[1], &c, 1) < 0 && errno == EINTR)
            ;
    }
    return NULL;
}

/* smtpd_commit_submit - give the parked list to the threads (or, without
 * threads, commit it right here) */
static void smtpd_commit_submit(smtpd_server_t *srv)
{
    smtpd_commit_pool_t *pool = srv->commit_pool;
    smtpd_commit_job_t *job = smtpd_commit_job_new(srv->commit_head);

    srv->commit_head = NULL;
    srv->commit_tail = &srv->commit_head;
    if (pool == NULL) {
        for (size_t i = 0; i < job->nitems; i++)
            smtpd_commit_item(job, i);
        smtpd_commit_answer(srv, job);
        return;
    }
    pool->inflight++;
    pthread_mutex_lock(&pool->mu);
    smtpd_commit_list_append(&pool->todo, job);
    /* Wake as many threads as there are items to take. */
    for (size_t i = 0; i < job->nitems && i < pool->nthreads; i++)
        pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

/* smtpd_commit_done - the pipe: answer the finished batches */
static void smtpd_commit_done(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    smtpd_server_t *srv = ctx;
    smtpd_commit_pool_t *pool = srv->commit_pool;
    smtpd_commit_list_t done;
    smtpd_commit_job_t *job;
    char drain[64];

    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&pool->mu);
    done = pool->done;
    smtpd_commit_list_init(&pool->done);
    pthread_mutex_unlock(&pool->mu);
    if (done.head == NULL)
        return;
    while ((job = smtpd_commit_list_pop(&done)) != NULL) {
        pool->inflight--;
        smtpd_commit_answer(srv, job);
    }
}

/* smtpd_commit_hook - before the loop sleeps: the parked messages go as
 * one batch, unless SMTPD_COMMIT_INFLIGHT batches are in flight already
 * (then they wait and make the next batch larger) */
static void smtpd_commit_hook(event_loop_t *loop, void *ctx)
{
    smtpd_server_t *srv = ctx;

    /* Without threads: answering a batch may let a pipelining session
     * finish its next message at once, so go on until none is parked. */
    while (srv->commit_head
           && (srv->commit_pool == NULL || srv->commit_pool->inflight < SMTPD_COMMIT_INFLIGHT)) {
        smtpd_commit_submit(srv);
        if (srv->commit_pool)
            break;
    }
}

/* smtpd_commit_pool_new - the threads; NULL (commit in the loop) if
 * they cannot be made */
static smtpd_commit_pool_t *smtpd_commit_pool_new(smtpd_server_t *srv)
{
    smtpd_commit_pool_t *pool = xcalloc(1, sizeof(*pool));
    sigset_t all, old;

    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    smtpd_commit_list_init(&pool->todo);
    smtpd_commit_list_init(&pool->done);
    if (pipe2(pool->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        msg_warn("commit threads: pipe: %m (committing in the event loop)");
        free(pool);
        return NULL;
    }
    /* Signals belong to the event loop's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < SMTPD_COMMIT_THREADS; i++) {
        pthread_t t;

        if (pthread_create(&t, NULL, smtpd_commit_thread, pool) != 0)
            break;
        pthread_detach(t);
        pool->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool->nthreads == 0) {
        msg_warn("commit threads: cannot start one (committing in the event loop)");
        close(pool->pipe[0]);
        close(pool->pipe[1]);
        free(pool);
        return NULL;
    }
    if (event_fd_add(srv->loop, pool->pipe[0], EVENT_READ, smtpd_commit_done, srv) < 0)
        msg_fatal("commit threads: cannot watch the pipe: %m");
    return pool;
}

/* smtpd_enqueue_init - the group commit hook and its threads */
void smtpd_enqueue_init(smtpd_server_t *srv)
{
    srv->commit_head = NULL;
    srv->commit_tail = &srv->commit_head;
    srv->commit_pool = smtpd_commit_pool_new(srv);
    event_before_sleep(srv->loop, smtpd_commit_hook, srv);
}
