#ifndef STORK_DELIVER_LOCAL_H
#define STORK_DELIVER_LOCAL_H
/*
 * NAME
 *	local - the local delivery agent's internal interfaces
 * SUMMARY
 *	local.c serves qmgr's DELIVER_REQ (one connection at a time) and
 *	hands each recipient to local_rcpt_deliver (local_rcpt.c), which
 *	resolves it: aliases (local_alias.c), virtual aliases and virtual
 *	mailboxes (local_virtual.c), system users with their ~/.forward
 *	(local_forward.c) and Maildir (local_maildir.c), commands and files
 *	(local_command.c, local_file.c), and remote targets (resubmitted
 *	as a new queue file, local_resubmit.c). Every write to a mailbox,
 *	command or file runs as its owner in a per-uid worker
 *	(local_uid.c), never as root.
 * OWNERSHIP
 *	local_state_t lives for the process; local_msg_t and local_exp_t
 *	live for one request / one recipient.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "config/conf.h"
#include "event/event.h"
#include "mail/resolve.h"
#include "queue/qfile.h"
#include "table/table.h"
#include "util/buf.h"

/* local_params - the settings local reads from main.cf */
typedef struct local_params {
    char **alias_maps;
    char **virtual_alias_maps;
    char **virtual_mailbox_maps;
    const char *virtual_mailbox_base;
    const char *virtual_mailbox_owner;
    const char *default_privs;
    const char *home_mailbox;
    const char *recipient_delimiter;
    const char *myhostname;
    const char *myorigin;
    bool cmd_alias, cmd_forward, file_alias, file_forward;
    int64_t command_time_limit;
    int64_t expansion_limit;
    int64_t recursion_limit;
    int64_t worker_limit;
    int64_t worker_idle_time;
    int64_t virtual_minimum_uid;
} local_params_t;

typedef struct local_tables {
    table_t **t;
    char **names;
    size_t n;
    unsigned long checked;      /* the request that last checked for a rebuild */
} local_tables_t;

typedef struct local_uid_pool local_uid_pool_t;
typedef struct local_op local_op_t;

typedef struct local_state {
    conf_t *conf;
    event_loop_t *loop;
    local_params_t p;
    resolve_t *resolve;
    local_tables_t aliases;
    local_tables_t valias;
    local_tables_t vmailbox;
    local_uid_pool_t *pool;
    bool root;                  /* started as root: switch uids per delivery */
    uid_t vowner_uid;           /* virtual_mailbox_owner, looked up ... */
    gid_t vowner_gid;
    double vowner_time;         /* ... at this time (0: not yet) */
    int client_fd;              /* qmgr's connection (-1): workers must not keep it */
} local_state_t;

/* The message being delivered (one DELIVER_REQ). */
typedef struct local_msg {
    const char *qid;
    const char *sender;
    int fd;                     /* the queue file, read-only */
    qfile_t qf;
    off_t content_offset;
    uint64_t content_size;
    int64_t arrival_sec;
    int32_t arrival_usec;
    double req_time;            /* when local got the request */
    char **delivered_to;        /* Delivered-To: values already in the message */
    size_t n_delivered_to;
    char **done;                /* mailboxes, commands, files that got a copy */
    size_t n_done;
} local_msg_t;

/* The outcome of delivering to one address (or a whole expansion). */
typedef enum { LOCAL_OK = 0, LOCAL_DEFER = 1, LOCAL_BOUNCE = 2 } local_status_t;

typedef struct local_result {
    local_status_t status;
    char dsn[16];
    buf_t text;
} local_result_t;

/* The expansion of one top-level recipient: limits and loop detection. */
typedef struct local_exp {
    local_state_t *st;
    local_msg_t *msg;
    const char *orig;           /* the recipient qmgr asked for */
    char **seen;                /* addresses (lower case) already expanded */
    size_t n_seen;
    size_t leaves;              /* recipients reached so far */
    char **remote;              /* remote targets to resubmit */
    size_t n_remote;
    local_result_t worst;       /* deferred beats bounced beats delivered */
    size_t n_ok, n_defer, n_bounce;
    size_t n_dup;               /* targets that already had their copy */
} local_exp_t;

/* local_params.c */
void local_params_load(conf_t *conf, local_params_t *p);

/* local.c: results and logging */
void local_result_init(local_result_t *r);
void local_result_free(local_result_t *r);
void local_result_set(local_result_t *r, local_status_t s, const char *dsn, const char *fmt, ...)
    STORK_PRINTF(4, 5);
void local_log(const local_msg_t *msg, const char *to, const char *orig_to, const char *relay,
               const local_result_t *r, double start);
double local_now(void);
void local_tables_open(local_tables_t *t, char **specs);
int local_tables_get(local_tables_t *t, const char *key, buf_t *val, const char **why_r);
void local_tables_close(local_tables_t *t);

/* local_delivered.c: Delivered-To headers already in the message */
int local_delivered_scan(local_msg_t *msg, const char **why_r);
bool local_delivered_has(const local_msg_t *msg, const char *addr);
void local_delivered_free(local_msg_t *msg);

/* A system user, copied out of getpwnam's static storage. */
typedef struct local_user {
    char *name;
    uid_t uid;
    gid_t gid;
    char *home;
} local_user_t;

/* local_rcpt.c: one recipient, recursively */
void local_rcpt_deliver(local_state_t *st, local_msg_t *msg, const char *addr,
                        local_result_t *res);
void local_exp_address(local_exp_t *x, const char *addr, int depth);
void local_exp_leaf(local_exp_t *x, const char *to, const char *relay, local_result_t *r,
                    double start);
/* local_exp_list - expand an alias/.forward value; origin is "alias",
 * "forward" or "virtual alias"; owner (NULL: default_privs) runs its
 * commands and writes its files */
void local_exp_list(local_exp_t *x, const char *list, const char *origin,
                    const local_user_t *owner, const char *addr, int depth);
/* local_exp_seen - true if kind:key was met before in this expansion
 * (and remember it) */
bool local_exp_seen(local_exp_t *x, char kind, const char *key);
/* local_exp_dup - true if target kind:key already got this message in
 * this request (Postfix's duplicate filter: one copy per mailbox even
 * when several recipients lead there); counts it in x->n_dup.
 * local_exp_done records a successful delivery to the target. */
bool local_exp_dup(local_exp_t *x, char kind, const char *key);
void local_exp_done(local_exp_t *x, char kind, const char *key);
void local_msg_done_free(local_msg_t *msg);
int local_user_lookup(const char *name, local_user_t *u, const char **why_r);
void local_user_free(local_user_t *u);
/* local_prepend - "Return-Path: <sender>\nDelivered-To: rcpt\n" */
void local_prepend(const local_msg_t *msg, const char *rcpt, buf_t *out);

/* local_alias.c: 1 found (val), 0 not, -1 error (r set) */
int local_alias_lookup(local_exp_t *x, const char *key, buf_t *val, local_result_t *r);

/* local_virtual.c */
int local_virtual_alias(local_exp_t *x, const char *addr, buf_t *val, local_result_t *r);
void local_virtual_mailbox(local_exp_t *x, const char *addr);

/* local_forward.c: 1 when the user has a usable .forward (then expanded
 * into x), 0 when not, -1 on an error (r set) */
int local_forward(local_exp_t *x, const local_user_t *u, const char *addr, int depth,
                  local_result_t *r);

/* local_maildir.c: deliver addr to user u's home_mailbox */
void local_maildir_user(local_exp_t *x, const char *addr, const local_user_t *u);

/* local_command.c, local_file.c: a |command or /file target (the
 * allow_mail_to_* check is done by the caller) */
void local_command_target(local_exp_t *x, const char *cmd, const local_user_t *owner,
                          const char *addr);
void local_file_target(local_exp_t *x, const char *path, const local_user_t *owner,
                       const char *addr);
void local_command_exec(const struct local_op *op, local_result_t *r);
typedef struct local_src {
    const struct local_op *op;
    size_t prepend_done;
    uint64_t done;
    bool held_cr;
} local_src_t;
ssize_t local_src_next(local_src_t *s, char *out, size_t size);
void local_file_exec(const struct local_op *op, local_result_t *r);

/* local_resubmit.c */
void local_resubmit(local_exp_t *x);

/* local_uid.c: the privileged step */
struct local_op {
    const char *op;             /* "maildir" "forward" "command" "file" */
    uid_t uid;
    gid_t gid;
    const char *maildir;        /* maildir */
    const char *path;           /* forward, file: the file */
    const char *command;        /* command */
    const char *prepend;        /* header lines (LF) before the content */
    const char *sender;
    const char *rcpt;
    int fd;                     /* the queue file */
    off_t offset;
    uint64_t length;
    uint64_t quota;
    int64_t time_limit;         /* command: seconds (not sent; the worker knows it) */
};

local_uid_pool_t *local_uid_pool_new(local_state_t *st);
void local_uid_pool_free(local_uid_pool_t **pool);
/* local_uid_run - run op as op->uid/op->gid (a worker when root,
 * in-process otherwise); fills r */
void local_uid_run(local_state_t *st, const local_op_t *op, local_result_t *r);
/* local_op_exec - perform op with the current ids (worker side) */
void local_op_exec(const local_op_t *op, local_result_t *r);
/* local_op_message - the message, recipient and header fields of op */
void local_op_message(local_op_t *op, const local_exp_t *x, const char *rcpt, buf_t *prepend);

#endif
