#ifndef STORK_SMTPD_SMTPD_H
#define STORK_SMTPD_SMTPD_H
/*
 * NAME
 *	smtpd.h - the SMTP server's internal interfaces (smtpd/ only)
 * SUMMARY
 *	One process serves many sessions on one event loop.
 *	smtpd.c         main(), settings, accept
 *	smtpd_session.c connection state, input/output buffers, deadlines,
 *	                the input loop (pipelining), close and logging
 *	smtpd_cmd.c     the command table and the small commands
 *	smtpd_helo.c    EHLO/HELO
 *	smtpd_mail.c    MAIL
 *	smtpd_rcpt.c    RCPT (verify service, relay policy, limits)
 *	smtpd_data.c    DATA and BDAT, the content state machine
 *	smtpd_enqueue.c the queue file, group commit, qmgr notices
 *	smtpd_verify.c  the asynchronous client of the verify service
 *	                (recipient checks and AUTH credential checks)
 *	smtpd_tls.c     STARTTLS (RFC 3207), wrapper mode (RFC 8314), the
 *	                session's transport (plain or TLS reads and writes)
 *	smtpd_auth.c    AUTH (RFC 4954): PLAIN and LOGIN
 *	smtpd_sasl.c    pure parsers for AUTH (base64, PLAIN, LOGIN)
 *	smtpd_restrict.c the RCPT restriction lists (relay policy)
 *	smtpd_cidr.c    mynetworks matching (IPv4/IPv6 CIDR)
 * OWNERSHIP
 *	A session owns everything hanging off it (buffers, transaction,
 *	queue writer) and frees it in smtpd_session_free(). Sessions are
 *	freed only from top-level event handlers (smtpd_session_resume),
 *	so no callee ever holds a dangling session pointer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "event/event.h"
#include "ipc/ipc.h"
#include "queue/qfile.h"
#include "service/service.h"
#include "smtp/smtp_parse.h"
#include "smtpd_cidr.h"
#include "smtpd_restrict.h"
#include "smtpd_sasl.h"
#include "tls/tls.h"
#include "util/buf.h"

/* Settings: every parameter smtpd reads, converted once at start. */
typedef struct smtpd_settings {
    const char *myhostname;
    const char *banner;
    uint64_t message_size_limit;        /* 0 = unlimited */
    int64_t timeout_ms;                 /* smtpd_timeout */
    int64_t session_limit_ms;           /* smtpd_session_time_limit */
    int64_t verify_timeout_ms;          /* smtpd_verify_timeout */
    int64_t error_sleep_ms;             /* smtpd_error_sleep_time */
    size_t line_limit;                  /* line_length_limit */
    int recipient_limit;
    int soft_error_limit;
    int hard_error_limit;
    int junk_command_limit;
    bool vrfy_enabled;                  /* !disable_vrfy_command */
    bool forbid_bare_newline;
    bool smtputf8;
    bool strict_rfc821;
    smtpd_cidr_t mynetworks;
    uint64_t conn_count_limit;          /* smtpd_client_connection_count_limit, 0 = none */
    uint64_t conn_rate_limit;           /* smtpd_client_connection_rate_limit, 0 = none */
    smtpd_cidr_t limit_exceptions;      /* smtpd_client_event_limit_exceptions */
    smtpd_restrict_t relay_restrictions;        /* smtpd_relay_restrictions */
    smtpd_restrict_t recipient_restrictions;    /* smtpd_recipient_restrictions */
    /* TLS */
    tls_ctx_t *tls_ctx;                 /* NULL: no TLS at all */
    tls_level_t tls_level;              /* NONE, MAY or ENCRYPT */
    bool tls_wrapper;                   /* smtpd_tls_wrappermode */
    bool tls_auth_only;
    bool tls_received_header;
    int tls_loglevel;
    int64_t starttls_timeout_ms;
    /* AUTH */
    bool sasl_enable;
    bool broken_sasl_clients;
} smtpd_settings_t;

typedef struct smtpd_session smtpd_session_t;
typedef struct smtpd_verify smtpd_verify_t;

/* The per-process server. */
typedef struct smtpd_server {
    service_t *svc;
    event_loop_t *loop;
    smtpd_settings_t set;
    smtpd_verify_t *verify;
    smtpd_session_t *commit_head;       /* sessions parked for group commit */
    smtpd_session_t **commit_tail;
    struct smtpd_commit_pool *commit_pool;      /* fsync threads (smtpd_enqueue.c) */
    ipc_conn_t *qmgr;                   /* QMGR_NEW notices */
    int64_t qmgr_retry_ms;              /* no reconnect before this time */
    event_timer_t *qmgr_timer;          /* reconnect after a lost notice */
    size_t nsessions;
} smtpd_server_t;

/* Commands counted for the "disconnect from" line, in Postfix's order. */
typedef enum {
    SMTPD_C_EHLO, SMTPD_C_HELO, SMTPD_C_STARTTLS, SMTPD_C_AUTH, SMTPD_C_MAIL, SMTPD_C_RCPT, SMTPD_C_DATA, SMTPD_C_BDAT,
    SMTPD_C_RSET, SMTPD_C_NOOP, SMTPD_C_VRFY, SMTPD_C_HELP, SMTPD_C_QUIT, SMTPD_C_UNKNOWN,
    SMTPD_C_COUNT
} smtpd_cmd_id_t;

typedef enum {
    SMTPD_ST_CMD,           /* reading command lines */
    SMTPD_ST_DATA,          /* reading DATA content up to CRLF.CRLF */
    SMTPD_ST_BDAT,          /* reading a BDAT chunk of known size */
    SMTPD_ST_AUTH,          /* reading SASL responses after a 334 */
} smtpd_state_t;

/* Content state machine (smtpd_data.c). */
typedef enum {
    SMTPD_D_BOL, SMTPD_D_DOT, SMTPD_D_DOTCR, SMTPD_D_MID, SMTPD_D_CR
} smtpd_dstate_t;

struct smtpd_session {
    smtpd_server_t *srv;
    int fd;
    char *client_addr;                  /* "192.0.2.1" */
    char *client_name;                  /* "unknown" until DNS exists */
    char *client_desc;                  /* "unknown[192.0.2.1]" */
    bool client_trusted;                /* in mynetworks */
    buf_t in;
    buf_t out;
    smtpd_state_t state;
    bool skip_line;                     /* discarding an over-long line */
    bool eof;                           /* the client closed its side */
    bool quit;                          /* close once out is written */
    bool dead;                          /* close now */
    bool wait_verify;                   /* an RCPT waits for the verify service */
    bool wait_anvil;                    /* the greeting waits for the session count */
    bool anvil_counted;                 /* the verify service counted this session */
    bool over_limit;                    /* refused by a connection limit */
    bool parked;                        /* on the group commit list */
    bool in_process;                    /* inside smtpd_session_process */
    bool reading;                       /* the fd is watched for input */
    unsigned watch;                     /* current event mask */
    int64_t start_ms;
    int64_t activity_ms;
    event_timer_t *timer;               /* deadline check */
    event_timer_t *sleep_timer;         /* error tarpit */
    const char *last_cmd;               /* for "timeout after X" */
    event_timer_t *kick_timer;          /* TLS input already decrypted */

    /* TLS (smtpd_tls.c) */
    tls_conn_t *tls;                    /* non-NULL from the handshake on */
    bool tls_active;                    /* handshake done */
    bool tls_handshaking;
    bool tls_hs_want_write;             /* the handshake waits for POLLOUT */
    bool tls_rd_want_write;             /* a TLS read waits for POLLOUT */
    bool tls_wr_want_read;              /* a TLS write waits for POLLIN */
    bool starttls_pending;              /* 220 queued: switch once it is out */
    int64_t tls_deadline_ms;            /* end of the handshake */
    char *tls_info;                     /* "TLSv1.3 with cipher X (256/256 bits)" */

    /* AUTH (smtpd_auth.c) */
    char *sasl_username;                /* set once authenticated */
    const char *sasl_method;
    smtpd_sasl_mech_t auth_mech;        /* the exchange in progress */
    char *auth_user;                    /* LOGIN: the name of step 1 */
    bool wait_auth;                     /* the verify service checks a password */
    int auth_failures;

    /* session */
    char *helo;
    bool esmtp;
    int error_count;
    int junk_count;
    unsigned cmd_ok[SMTPD_C_COUNT];
    unsigned cmd_total[SMTPD_C_COUNT];

    /* transaction */
    bool have_mail;
    smtp_mail_t mail;
    smtp_rcpt_t rcpt;                   /* the RCPT being verified */
    char **rcpts;                       /* accepted, internal form */
    size_t nrcpts;
    qfile_writer_t *qf;
    char qid[QID_BUFSIZE];              /* "" until the file exists */
    bool content_started;
    bool used_bdat;
    smtpd_dstate_t dstate;
    bool bare_lf, bare_cr, too_big, write_error;
    uint64_t bdat_chunk;                /* size of the chunk being read */
    uint64_t content_bytes;             /* client content, after unstuffing */
    bool in_header;
    buf_t hdr_line;                     /* current header line (capped) */
    bool hdr_in_msgid;
    char *message_id;
    uint64_t bdat_remaining;
    bool bdat_last;
    bool bdat_discard;                  /* read and drop this chunk */
    int bdat_err_code;                  /* reply after the chunk instead of 250 */
    const char *bdat_err_dsn;
    const char *bdat_err_text;

    /* group commit */
    smtpd_session_t *commit_next;
};

/* smtpd_session.c */
void smtpd_session_new(smtpd_server_t *srv, int fd);
void smtpd_session_resume(smtpd_session_t *s);
void smtpd_session_wake(smtpd_session_t *s);
void smtpd_session_refuse(smtpd_session_t *s);
bool smtpd_session_waiting(const smtpd_session_t *s);
void smtpd_reply(smtpd_session_t *s, int code, const char *dsn, const char *fmt, ...)
    STORK_PRINTF(4, 5);
void smtpd_session_sleep_after_error(smtpd_session_t *s);
void smtpd_session_sleep(smtpd_session_t *s, int64_t ms);
void smtpd_session_rearm(smtpd_session_t *s);
void smtpd_reject_log(smtpd_session_t *s, const char *cmd, int code, const char *dsn,
                      const char *text, const char *rcpt);
void smtpd_transaction_reset(smtpd_session_t *s);

/* smtpd_cmd.c */
void smtpd_cmd_dispatch(smtpd_session_t *s, const char *line, size_t len);

/* smtpd_tls.c */
void smtpd_tls_init(smtpd_settings_t *set, conf_t *conf);
int smtpd_cmd_starttls(smtpd_session_t *s, const smtp_cmdline_t *cl);
void smtpd_tls_begin(smtpd_session_t *s);
void smtpd_tls_handshake(smtpd_session_t *s);
int smtpd_io_read(smtpd_session_t *s, void *buf, size_t size, size_t *n_r);
int smtpd_io_write(smtpd_session_t *s, const void *buf, size_t len, size_t *n_r);
void smtpd_tls_close(smtpd_session_t *s);
bool smtpd_tls_required(smtpd_session_t *s);

/* smtpd_auth.c */
int smtpd_cmd_auth(smtpd_session_t *s, const smtp_cmdline_t *cl);
void smtpd_auth_input(smtpd_session_t *s, const char *line, size_t len);
void smtpd_auth_abort(smtpd_session_t *s);
void smtpd_auth_reset(smtpd_session_t *s);
bool smtpd_auth_offered(const smtpd_session_t *s);

/* smtpd_helo.c */
int smtpd_cmd_ehlo(smtpd_session_t *s, const smtp_cmdline_t *cl);
int smtpd_cmd_helo(smtpd_session_t *s, const smtp_cmdline_t *cl);

/* smtpd_mail.c */
int smtpd_cmd_mail(smtpd_session_t *s, const smtp_cmdline_t *cl);

/* smtpd_rcpt.c */
int smtpd_cmd_rcpt(smtpd_session_t *s, const smtp_cmdline_t *cl);

/* smtpd_data.c */
int smtpd_cmd_data(smtpd_session_t *s, const smtp_cmdline_t *cl);
int smtpd_cmd_bdat(smtpd_session_t *s, const smtp_cmdline_t *cl);
size_t smtpd_data_input(smtpd_session_t *s, const char *p, size_t n, bool *done_r);
void smtpd_data_done(smtpd_session_t *s);
void smtpd_bdat_input(smtpd_session_t *s, const char *p, size_t n);
void smtpd_bdat_chunk_done(smtpd_session_t *s);

/* smtpd_enqueue.c */
int smtpd_enqueue_open(smtpd_session_t *s, const char **why_r);
int smtpd_enqueue_rcpt(smtpd_session_t *s, const char *addr, const char *orcpt,
                       unsigned notify);
int smtpd_enqueue_begin_content(smtpd_session_t *s);
void smtpd_enqueue_write(smtpd_session_t *s, const char *p, size_t n);
void smtpd_enqueue_finish(smtpd_session_t *s);
void smtpd_enqueue_abort(smtpd_session_t *s);
void smtpd_enqueue_init(smtpd_server_t *srv);

/* smtpd_verify.c */
typedef struct smtpd_verify_result {
    const char *cls;        /* local virtual remote unknown error; ok */
    const char *dsn;
    const char *text;       /* may be NULL */
    uint64_t count, rate;   /* a session count: the client's sessions, connections */
} smtpd_verify_result_t;
typedef void smtpd_verify_fn(void *ctx, const smtpd_verify_result_t *res);
smtpd_verify_t *smtpd_verify_new(event_loop_t *loop, const char *path, int64_t timeout_ms);
void smtpd_verify_query(smtpd_verify_t *v, const char *addr, const char *client_addr,
                        smtpd_verify_fn *fn, void *ctx);
void smtpd_verify_auth(smtpd_verify_t *v, const char *user, const char *password,
                       const char *client_addr, smtpd_verify_fn *fn, void *ctx);
void smtpd_verify_cancel(smtpd_verify_t *v, void *ctx);
void smtpd_verify_connect(smtpd_verify_t *v, const char *client_addr, smtpd_verify_fn *fn,
                          void *ctx);
void smtpd_verify_disconnect(smtpd_verify_t *v, const char *client_addr);

#endif
