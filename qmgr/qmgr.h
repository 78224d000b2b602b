#ifndef STORK_QMGR_H
#define STORK_QMGR_H
/*
 * NAME
 *	qmgr - the queue manager's internal interfaces (one process)
 * SUMMARY
 *	qmgr moves each message incoming/ → active/ → (removed | deferred/ |
 *	hold/), hands recipients to delivery agents (qmgr_transport.c),
 *	records per-recipient results in the queue file, returns failures
 *	to the sender (qmgr_bounce.c) and retries deferrals with backoff
 *	(qmgr_sched.c). queue.db is a cache owned by qmgr_index.c and
 *	rebuilt from the files (qmgr_rebuild.c) whenever it is not known to
 *	be clean. Clients (smtpd, pickup, local, storkqueue, storksuper)
 *	talk to it over the service socket (qmgr_notify.c, qmgr_control.c).
 * OWNERSHIP
 *	One global qmgr_t (the process is the queue manager). Active
 *	messages belong to qmgr_message.c; jobs to the transport that
 *	queued them, and they point at (never own) their message.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/conf.h"
#include "event/event.h"
#include "ipc/ipc.h"
#include "mail/resolve.h"
#include "queue/qfile.h"
#include "queue/qindex.h"
#include "service/service.h"

#define QMGR_STALE_TEMP_SECS 3600
#define QMGR_HELLO_TIMEOUT_MS 60000

/* A recipient's outcome in the current delivery round. */
typedef enum { QR_NONE = 0, QR_DONE, QR_DEFER, QR_BOUNCE } qmgr_result_t;

typedef struct qmgr_rstate {
    qmgr_result_t result;
    char *dsn;              /* "4.4.1" */
    char *text;             /* reason, for logs, bounces and the index */
} qmgr_rstate_t;

/* Operations asked for while the message was being delivered. */
#define QMGR_MSG_HOLD    1u
#define QMGR_MSG_DELETE  2u
#define QMGR_MSG_REQUEUE 4u

typedef struct qmgr_msg {
    char qid[QID_BUFSIZE];
    int fd;                 /* active/QID, O_RDWR for the status bytes */
    qfile_t qf;
    qmgr_rstate_t *rs;      /* one per qf.rcpts */
    bool expired;           /* older than its queue lifetime */
    unsigned ops;           /* QMGR_MSG_* */
    int jobs_out;           /* jobs queued or at an agent */
    bool assigning;         /* inside qmgr_transport_assign */
    struct qmgr_msg *prev, *next;
} qmgr_msg_t;

typedef struct qmgr_transport qmgr_transport_t;

typedef struct qmgr_job {
    qmgr_msg_t *msg;
    size_t *idx;            /* recipient indexes into msg->qf.rcpts */
    size_t n;
    struct qmgr_job *next;
} qmgr_job_t;

typedef struct qmgr_agent {
    qmgr_transport_t *tr;
    ipc_conn_t *conn;
    bool ready;             /* HELLO checked */
    qmgr_job_t *job;        /* in progress, or NULL when idle */
    event_timer_t *timer;   /* hello or request deadline */
    struct qmgr_agent *next;
} qmgr_agent_t;

struct qmgr_transport {
    const char *name;       /* "local" */
    const char *sock;       /* "private/local" */
    int limit;              /* connections */
    int rcpt_limit;         /* recipients per request */
    qmgr_agent_t *agents;
    int nagents;
    qmgr_job_t *head, *tail;
    int nwaiting;
    event_timer_t *retry;   /* after a connect that would block */
};

typedef struct qmgr {
    service_t *svc;
    conf_t *conf;
    event_loop_t *loop;
    const char *qdir;       /* "." : the skeleton chdir'd to queue_directory */
    const char *myhostname;
    int64_t min_backoff, max_backoff, max_lifetime, bounce_lifetime;
    int64_t run_delay, ipc_timeout;
    int active_limit;
    uid_t uid;
    qindex_t *index;
    resolve_t *resolve;
    qmgr_msg_t *active;     /* doubly linked */
    int nactive;
    char (*inq)[QID_BUFSIZE];   /* incoming ids waiting for a slot (FIFO) */
    size_t inq_head, inq_len, inq_cap;
    qmgr_transport_t local, smtp;
    event_timer_t *sched_timer;
    int64_t sched_at;       /* unix time the timer fires, 0 = none */
    bool in_pump;
} qmgr_t;

extern qmgr_t qmgr;

/* qmgr.c */
int64_t qmgr_now(void);
void qmgr_log_rcpt(const char *qid, const qfile_t *qf, size_t i, const char *relay,
                   const char *dsn, const char *status, const char *text);

/* qmgr_index.c */
bool qmgr_index_open(void);
void qmgr_index_close(bool clean);
void qmgr_index_reset(void);
void qmgr_index_put_file(const char *qid, const char *queue, const qfile_t *qf,
                         const qmgr_rstate_t *rs, int64_t next_attempt);
void qmgr_index_set_queue(const char *qid, const char *queue, int64_t next_attempt);
void qmgr_index_del(const char *qid);

/* qmgr_rebuild.c */
void qmgr_rebuild(bool trust_index);
void qmgr_scan_incoming(void);
int qmgr_index_file(const char *queue, const char *qid, int64_t next_attempt);
void qmgr_move_corrupt(const char *queue, const char *qid, const char *why);

/* qmgr_message.c */
void qmgr_message_incoming(const char *qid);
void qmgr_message_pump(void);
int qmgr_message_activate(const char *qid, const char *from);
qmgr_msg_t *qmgr_message_find(const char *qid);
void qmgr_message_result(qmgr_msg_t *msg, size_t i, qmgr_result_t r, const char *dsn,
                         const char *text);
void qmgr_message_job_done(qmgr_msg_t *msg);

/* qmgr_sched.c */
int64_t qmgr_sched_next(const qmgr_msg_t *msg);
int qmgr_sched_set_mtime(const char *path, int64_t when);
void qmgr_sched_arm(void);
void qmgr_sched_run(void);
void qmgr_sched_flush(void);
size_t qmgr_sched_flush_site(const char *site);

/* qmgr_transport.c */
void qmgr_transport_init(void);
void qmgr_transport_assign(qmgr_msg_t *msg);

/* qmgr_bounce.c */
int qmgr_bounce(qmgr_msg_t *msg, const size_t *idx, size_t n, char qid_r[QID_BUFSIZE]);

/* qmgr_notify.c */
void qmgr_notify_accept(service_t *svc, int fd);

/* qmgr_control.c */
void qmgr_control(ipc_conn_t *conn, ipc_msg_t *m, bool privileged);
void qmgr_list(ipc_conn_t *conn, ipc_msg_t *m);

#endif
