#ifndef STORK_MASTER_H
#define STORK_MASTER_H
/*
 * NAME
 *	master - stork-master's internal interfaces (not a library)
 * SUMMARY
 *	One master_t per process: the configuration, the services built from
 *	master.cf (master_serv_t: listening sockets, a status pipe, process
 *	accounting) and the child processes (master_proc_t). Split by concern:
 *	master_ent.c (master.cf entry -> service), master_listen.c (sockets),
 *	master_spawn.c (fork/exec, reaping, throttling, spawn on demand),
 *	master_status.c (AVAIL/BUSY records), master_reload.c (SIGHUP),
 *	master_sig.c (signals, SIGTERM shutdown), master_queue.c (queue
 *	directory and the lock).
 * DESCRIPTION
 *	Process accounting per service: n_active counts children of the
 *	current configuration (against maxproc), n_avail those of them that
 *	said AVAIL (a child counts as available from fork until it says
 *	BUSY), n_total every live child including retiring ones (a removed
 *	service is freed when it reaches 0, so retiring children keep a
 *	status pipe reader and never see SIGPIPE).
 *	master_spawn_check(m, s) is called after any change: it spawns a
 *	wakeup service's first process, and watches the listening sockets
 *	only while n_avail == 0 && n_active < maxproc && not throttled.
 * LIMITS
 *	A service has at most MASTER_LISTEN_MAX listening sockets.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/conf.h"
#include "config/master_cf.h"
#include "event/event.h"

#define MASTER_LISTEN_MAX       16
#define MASTER_THROTTLE_UPTIME_MS 5000  /* abnormal death sooner = bad start */
#define MASTER_STOP_WAIT_MS     5000    /* SIGTERM: wait for children */

typedef struct master_serv master_serv_t;
typedef struct master_proc master_proc_t;

struct master_serv {
    char *name;                 /* master.cf service column */
    master_cf_type_t type;
    bool private_, unpriv, chroot;
    int wakeup;
    int maxproc;                /* resolved: '-' = default_process_limit */
    char *path;                 /* program to exec */
    char **argv;                /* full exec argv, NULL-terminated */
    int listen_fds[MASTER_LISTEN_MAX];
    size_t n_listen;
    int status_rd, status_wr;   /* status pipe; children get status_wr as fd 3 */
    unsigned char status_buf[8];
    size_t status_len;
    int n_active, n_avail, n_total;
    bool watching;              /* listening fds registered with the loop */
    bool removed;               /* gone from master.cf; waiting for children */
    bool throttled;
    event_timer_t *throttle_timer;
    struct master *master;
    master_serv_t *next;
};

struct master_proc {
    pid_t pid;
    master_serv_t *serv;
    bool avail;
    bool retiring;              /* got SIGUSR1 (reload) or SIGTERM */
    int64_t start_ms;
    master_proc_t *next;
};

typedef struct master {
    event_loop_t *loop;
    conf_t *conf;
    char *config_dir;           /* absolute */
    master_serv_t *servs;       /* current and removed services */
    master_proc_t *procs;
    int lock_fd;
    char *pid_path;
    bool stopping;
    event_timer_t *stop_timer;
} master_t;

/* master_ent.c */
int master_load_config(const char *config_dir, conf_t **conf_r, master_cf_entry_t **ents_r,
                       size_t *n_r, buf_t *errors);
master_serv_t *master_serv_new(master_t *m, const master_cf_entry_t *e);
void master_serv_update(master_t *m, master_serv_t *s, const master_cf_entry_t *e);
master_serv_t *master_serv_find(master_t *m, const char *name, master_cf_type_t type);
void master_serv_free(master_t *m, master_serv_t *s);
const char *master_serv_type(const master_serv_t *s);

/* master_listen.c */
int master_listen_open(master_t *m, master_serv_t *s, const char **why_r);
void master_listen_close(master_t *m, master_serv_t *s);

/* master_status.c */
int master_status_open(master_t *m, master_serv_t *s);
void master_status_close(master_t *m, master_serv_t *s);

/* master_spawn.c */
void master_spawn_check(master_t *m, master_serv_t *s);
void master_spawn_check_all(master_t *m);
void master_reap(master_t *m);
void master_proc_retire_all(master_t *m, int signo);
master_proc_t *master_proc_find(master_t *m, pid_t pid);
void master_proc_set_avail(master_proc_t *p, bool avail);

/* master_reload.c */
void master_reload(master_t *m);

/* master_sig.c */
void master_sig_init(master_t *m);
void master_exit(master_t *m, int status);

/* master_queue.c */
int master_queue_setup(conf_t *conf, const char **why_r);
int master_lock(conf_t *conf, int *fd_r, char **path_r, const char **why_r);
int master_write_pid(int fd);

#endif
