#ifndef STORK_DELIVER_SMTP_H
#define STORK_DELIVER_SMTP_H
/*
 * NAME
 *	smtp - the SMTP/LMTP delivery agent (internal interfaces)
 * SUMMARY
 *	One process serves many qmgr connections from one event loop; each
 *	connection carries one DELIVER_REQ at a time (a "job"). A job
 *	resolves its next hop (smtp_addr.c) into a list of targets (one per
 *	address, with the TLS decision for that host), then runs sessions
 *	(smtp_proto.c) against the targets in order until every recipient
 *	has a result or the targets run out. Idle sessions are cached per
 *	next hop for a few seconds (smtp_cache.c). TLS policy lives in
 *	smtp_tls.c, SASL in smtp_sasl.c, and the pure text helpers (next
 *	hop syntax, replies, EHLO features, xtext) in smtp_text.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config/conf.h"
#include "dns/dns.h"
#include "event/event.h"
#include "ipc/ipc.h"
#include "queue/qfile.h"
#include "service/service.h"
#include "stream/stream.h"
#include "table/table.h"
#include "tls/tls.h"
#include "util/buf.h"
#include "smtp_text.h"

#define DELIVER_F_SMTPUTF8 1u
#define DELIVER_F_8BITMIME 2u
#define DELIVER_F_7BIT     4u

#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_MAX_HOSTS 20

typedef struct smtp_tables {
    char **names;
    table_t **t;
    size_t n;
} smtp_tables_t;

/* settings, read once (smtp_ or lmtp_ names per mode) */
typedef struct smtp_params {
    bool lmtp;
    unsigned port;
    int64_t connect_ms, helo_ms, mail_ms, rcpt_ms, data_init_ms, data_xfer_ms, data_done_ms;
    int64_t quit_ms, rset_ms, starttls_ms, cache_ms;
    const char *helo_name;
    int mx_address_limit, mx_session_limit;
    bool cache_on;
    tls_level_t tls_level;
    const char *tls_level_name;
    int tls_loglevel;
    bool sasl_enable, sasl_noplain, sasl_tls_noplain;
} smtp_params_t;

typedef struct smtp_state {
    service_t *svc;
    conf_t *conf;
    event_loop_t *loop;
    smtp_params_t p;
    dns_ctx_t *dns;
    bool dnssec_ok;
    tls_ctx_t *tls;
    smtp_tables_t tls_policy, sasl_passwd;
    struct smtp_sess *cache;        /* idle sessions */
} smtp_state_t;

extern smtp_state_t smtp;

enum { SMTP_R_NONE, SMTP_R_OK, SMTP_R_DEFER, SMTP_R_FAIL };

typedef struct smtp_rcpt {
    const char *addr, *orcpt;       /* borrowed from the request */
    unsigned notify;
    uint64_t index;
    int result;
    bool accepted;                  /* RCPT 2xx in the current transaction */
} smtp_rcpt_t;

/* one address to try, with what TLS needs to know about its host */
typedef struct smtp_target {
    char *host;
    char ip[64];                    /* or the unix socket path */
    unsigned port;
    bool is_unix;
    struct sockaddr_storage sa;
    socklen_t salen;
    tls_level_t level;
    tls_tlsa_t *tlsa;               /* data owned by the target */
    size_t ntlsa;
} smtp_target_t;

typedef struct smtp_resolve smtp_resolve_t;
typedef struct smtp_client smtp_client_t;

typedef struct smtp_job {
    smtp_client_t *client;
    ipc_msg_t req;
    const char *qid, *sender, *envid, *ret, *nexthop, *transport;
    unsigned flags;
    bool flags_given, body8;
    bool next_dsn;                  /* the server took NOTIFY (DSN extension) */
    int fd;
    qfile_t qf;
    off_t content_offset;
    uint64_t content_size;
    int64_t arrival_sec, arrival_usec;
    double t_req, t_conn, t_xfer;
    smtp_rcpt_t *rcpts;
    size_t nrcpt;
    smtp_dest_t dest;
    /* TLS policy for this next hop */
    tls_level_t level;
    char **match;
    bool dane_only;
    /* next-hop resolution and the targets */
    smtp_resolve_t *res;
    smtp_target_t *targets;
    size_t ntargets, ti;
    int sessions;
    bool plain_retry;               /* retry this target without STARTTLS */
    struct smtp_sess *sess;
    /* the last site-level failure, for recipients left without a result */
    char err_dsn[16];
    buf_t err_text;
    bool err_final;                 /* 5xx: bounce rather than defer */
    char err_relay[400];            /* the server that failed, when connected */
    event_timer_t *next_timer;
} smtp_job_t;

/* smtp.c */
void smtp_rcpt_result(smtp_job_t *job, size_t i, int result, const char *dsn,
                      const char *relay, const char *text, const char *logtext);
void smtp_job_next_target(smtp_job_t *job);
void smtp_job_session_done(smtp_job_t *job);
void smtp_job_site_error(smtp_job_t *job, const char *dsn, bool final, const char *fmt, ...)
    STORK_PRINTF(4, 5);
size_t smtp_job_pending(const smtp_job_t *job);
double smtp_now(void);
int smtp_tables_get(smtp_tables_t *t, const char *key, buf_t *val, const char **why_r);

/* smtp_addr.c: next hop to targets; calls smtp_job_next_target or
 * ends the job with a site error when done */
void smtp_resolve_start(smtp_job_t *job);
void smtp_resolve_cancel(smtp_job_t *job);
void smtp_targets_free(smtp_job_t *job);

/* smtp_proto.c */
typedef struct smtp_sess smtp_sess_t;
void smtp_sess_connect(smtp_job_t *job, const smtp_target_t *tgt);
bool smtp_sess_reuse(smtp_job_t *job);
void smtp_sess_detach(smtp_sess_t *sess);
void smtp_cache_flush(void);

/* smtp_tls.c */
int smtp_tls_init(smtp_state_t *st, const char **why_r);
int smtp_tls_policy(smtp_job_t *job, const char **why_r);
int smtp_tls_params(const smtp_job_t *job, const smtp_target_t *tgt, tls_level_t level,
                    tls_client_params_t *p);

/* smtp_sasl.c */
int smtp_sasl_lookup(const smtp_job_t *job, const char *host, char **user_r, char **pass_r);
int smtp_sasl_start(const char *mechs, const char *user, const char *pass, bool tls_on,
                    buf_t *cmd, int *mech_r, const char **why_r);
int smtp_sasl_step(int mech, int step, const char *user, const char *pass, buf_t *cmd);

#endif
