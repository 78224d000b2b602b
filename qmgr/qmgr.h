#ifndef STORK_QMGR_H
#define STORK_QMGR_H
/*
 * NAME
 *	qmgr - the queue manager's internal interfaces (one process)
 * SUMMARY
 *	qmgr moves each message incoming/ → active/ → (removed | deferred/ |
 *	hold/), routes recipients (qmgr_route.c) to destinations with
 *	concurrency feedback (qmgr_dest.c) served by delivery agents
 *	(qmgr_transport.c), records per-recipient results in the queue
 *	file, has the bounce service (qmgr/bounce/) write DSNs
 *	(qmgr_bounce.c) and retries deferrals with backoff (qmgr_sched.c). queue.db is a cache owned by qmgr_index.c and
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
    char *action;           /* the agent's ACTION, or NULL */
    char *relay;            /* the agent's RELAY (remote MTA), or NULL */
    bool success_dsn;       /* done, and a NOTIFY=SUCCESS notice is owed */
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
    bool delay_warned;      /* the file's owner-execute bit (see QUEUE.md) */
    unsigned ops;           /* QMGR_MSG_* */
    int jobs_out;           /* jobs queued or at an agent */
    int bounces_out;        /* requests at the bounce service */
    struct qmgr_msg *prev, *next;
} qmgr_msg_t;

typedef struct qmgr_transport qmgr_transport_t;
typedef struct qmgr_dest qmgr_dest_t;

typedef struct qmgr_job {
    qmgr_msg_t *msg;
    qmgr_dest_t *dest;
    size_t *idx;            /* recipient indexes into msg->qf.rcpts */
    size_t n, cap;
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

/* A destination: (transport, next hop), or (transport, recipient) for
 * transports with a recipient limit of 1 (Postfix's per-recipient
 * destinations, e.g. local). Concurrency feedback lives here. */
struct qmgr_dest {
    qmgr_transport_t *tr;
    char *key;              /* hash key: nexthop, or the recipient */
    char *nexthop;          /* NEXTHOP sent to the agent */
    qmgr_job_t *head, *tail;
    int nwaiting;           /* jobs queued here */
    int busy;               /* jobs at agents */
    double window;          /* concurrency window (feedback) */
    int failures;           /* site failures since the last success */
    int64_t dead_until;     /* unix time; 0 = alive */
    char *dead_reason;
    int64_t next_start_ms;  /* rate delay: monotonic ms of the next start */
    qmgr_job_t *fill;       /* the job being filled by this assignment */
    uint64_t fill_gen;
    bool in_ring;
    qmgr_dest_t *hnext;     /* hash chain */
    qmgr_dest_t *rprev, *rnext;     /* ring of destinations with work */
};

struct qmgr_transport {
    char *name;             /* "smtp" (master.cf service name) */
    char *sock;             /* "private/smtp" */
    int limit;              /* agent connections */
    int rcpt_limit;         /* recipients per request */
    int init_conc, conc_limit, cohort_limit;
    int64_t rate_delay_ms;
    bool per_rcpt;          /* rcpt_limit 1: one destination per recipient */
    qmgr_agent_t *agents;
    int nagents;
    qmgr_dest_t **htab;
    size_t hsize, ndests;
    qmgr_dest_t *ring;      /* next destination served (round robin) */
    int64_t avail_at;       /* when private/NAME was last seen, monotonic ms */
    bool avail;
    event_timer_t *retry;   /* after a connect that would block or failed */
    event_timer_t *kick;    /* deferred dispatch */
    event_timer_t *rate_timer;
    struct qmgr_transport *next;
};

typedef struct qmgr_route qmgr_route_t;

typedef struct qmgr {
    service_t *svc;
    conf_t *conf;
    event_loop_t *loop;
    const char *qdir;       /* "." : the skeleton chdir'd to queue_directory */
    const char *myhostname;
    int64_t min_backoff, max_backoff, max_lifetime, bounce_lifetime;
    int64_t run_delay, ipc_timeout, delay_warning;
    int active_limit;
    long recycle_limit;     /* queue_file_recycle_limit (0: unlink spent files) */
    long recycled;          /* files in recycle/, as last counted plus our own since */
    int64_t recycle_counted;    /* when recycle/ was last counted */
    long recycle_found;         /* and how many files it held then */
    uid_t uid;
    qindex_t *index;
    resolve_t *resolve;
    qmgr_route_t *route;
    qmgr_msg_t *active;     /* doubly linked */
    int nactive;
    char (*inq)[QID_BUFSIZE];   /* incoming ids waiting for a slot (FIFO) */
    size_t inq_head, inq_len, inq_cap;
    qmgr_transport_t *transports;
    uint64_t assign_gen;
    event_timer_t *sched_timer;
    event_timer_t *scan_timer;          /* pending incoming/ rescan */
    int64_t scan_last_ms;               /* when incoming/ was last rescanned */
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
void qmgr_scan_incoming_soon(void);
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
bool qmgr_sched_flushing(void);

/* qmgr_route.c: recipient → (transport, nexthop) */
qmgr_route_t *qmgr_route_new(conf_t *conf);
void qmgr_route_free(qmgr_route_t **rt);
void qmgr_route_refresh(qmgr_route_t *rt);
int qmgr_route_addr(qmgr_route_t *rt, const char *addr, const char **transport_r,
                    const char **nexthop_r, const char **why_r);
int qmgr_route_parse(const char *value, char **transport_r, char **nexthop_r);

/* qmgr_dest.c: destinations and their concurrency feedback */
int64_t qmgr_mono_ms(void);
qmgr_dest_t *qmgr_dest_get(qmgr_transport_t *tr, const char *key, const char *nexthop);
void qmgr_dest_maybe_free(qmgr_dest_t *d);
bool qmgr_dest_dead(qmgr_dest_t *d);
int qmgr_dest_cap(const qmgr_dest_t *d);
void qmgr_dest_enqueue(qmgr_dest_t *d, qmgr_job_t *job);
qmgr_job_t *qmgr_dest_pop(qmgr_dest_t *d);
void qmgr_dest_feedback(qmgr_dest_t *d, bool site_failure, const char *reason);
size_t qmgr_dest_revive(const char *site);
void qmgr_dest_sweep(void);

/* qmgr_transport.c */
void qmgr_transport_init(void);
qmgr_transport_t *qmgr_transport_find(const char *name);
void qmgr_transport_kick(qmgr_transport_t *tr);
void qmgr_transport_assign(qmgr_msg_t *msg);
void qmgr_defer_rcpt(qmgr_msg_t *msg, size_t i, const char *dsn, const char *text);
void qmgr_job_fail(qmgr_job_t *job, const char *dsn, const char *text);

/* qmgr_bounce.c: requests to the bounce service */
typedef void qmgr_bounce_cb(qmgr_msg_t *msg, void *ctx, int status, const char *bqid);
void qmgr_bounce_request(qmgr_msg_t *msg, const char *kind, const size_t *idx, size_t n,
                         qmgr_bounce_cb *cb, void *ctx);

/* qmgr_notify.c */
void qmgr_notify_accept(service_t *svc, int fd);

/* qmgr_control.c */
void qmgr_control(ipc_conn_t *conn, ipc_msg_t *m, bool privileged);
void qmgr_list(ipc_conn_t *conn, ipc_msg_t *m);

#endif
