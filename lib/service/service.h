#ifndef STORK_SERVICE_H
#define STORK_SERVICE_H
/*
 * NAME
 *	service - the daemon skeleton: the contract between stork-master and
 *	every daemon it runs, and the one place privileges are dropped
 * SUMMARY
 *	A daemon's main() is: return service_main(argc, argv, &spec);
 *
 * THE MASTER CONTRACT (what stork-master does, what the daemon expects)
 *	Command line:  DAEMON -c CONFIG_DIR -n SERVICE -t inet|unix
 *	               [-u] [-C] [-w WAKEUP] [-o name=value ...] [extra args]
 *	  -u  drop to mail_owner (unpriv column = y)
 *	  -C  chroot to queue_directory (chroot column = y)
 *	  -w  the wakeup interval in seconds (spec->wakeup_fn is called)
 *	  -o  parameter overrides, applied in order after main.cf
 *	Descriptors:
 *	  fd 3  status pipe, write end (SERVICE_STATUS_FD). The daemon writes
 *	        service_status_t records: AVAIL when it can take another
 *	        client, BUSY when it has client_limit clients. The master
 *	        forks another process (up to maxproc) only while no process
 *	        of the service is AVAIL and a connection is waiting.
 *	  fd 4  the listening socket, non-blocking (SERVICE_LISTEN_FD), for
 *	        every service type; several processes share it, so accept()
 *	        may fail with EAGAIN and that is normal.
 *	Signals:
 *	  SIGTERM  exit now (stork stop).
 *	  SIGUSR1  retire: close the listening socket, finish the clients
 *	           that are connected, then exit (stork reload, max_use).
 *	The daemon exits when the master dies (PR_SET_PDEATHSIG, re-armed
 *	after the privilege drop).
 *
 * DESCRIPTION
 *	service_main: parses the command line, opens main.cf, applies -o,
 *	validates the configuration (exit 1 with the errors logged), sets up
 *	logging (maillog_file, syslog_name), calls spec->pre_init (still
 *	with privileges: open tables, certificates, sockets), then if
 *	running as root and asked: chroot(queue_directory), setgroups,
 *	setgid/setuid to mail_owner and verifies root cannot be regained;
 *	chdir(queue_directory) always. Then spec->post_init, then the event
 *	loop. Without -u and -C, or when not started as root (a private
 *	instance), no ids change.
 *	Each accepted connection goes to spec->accept_fn(svc, fd) (the fd is
 *	non-blocking and close-on-exec). The daemon calls
 *	service_client_done(svc) when that client is gone; the skeleton
 *	counts clients against client_limit (spec default, or the
 *	SERVICE_client_limit parameter if declared, else 1) and sends
 *	AVAIL/BUSY accordingly, and retires after max_use clients
 *	(0 = never) or max_idle seconds without clients (0 = never; the
 *	skeleton uses the max_idle parameter for services without wakeup).
 *	service_stop_requested(svc): true after SIGUSR1/retirement; the
 *	daemon should finish and call service_client_done for each client.
 * DETAILS (service.c)
 *	client_limit: spec->client_limit (at least 1), replaced by the
 *	parameter "<-n name>_client_limit", else "<spec->name>_client_limit",
 *	whichever is declared first. A retiring process writes BUSY (it will
 *	take no more clients) and stop_fn runs after the listening socket is
 *	closed; service_main returns 0 when the last client is done, on
 *	max_idle, or after max_use clients have come and gone. SIGTERM
 *	exits 0 at once. Logging is set up before validation, so the
 *	configuration errors land in maillog_file. A missing fd 3/4 (run by
 *	hand) is logged as a warning and reserved with /dev/null so no later
 *	open takes its number; without fd 4 nothing is accepted and no
 *	status is written. mail_owner must not be uid 0. PDEATHSIG is
 *	armed after the drop, and start-up stops if the parent pid changed.
 *	LIMITS: -w at most 86400; accept pauses 1 s on EMFILE/ENFILE.
 * OWNERSHIP
 *	svc, its conf and its loop belong to the skeleton.
 * SECURITY
 *	This file and privdrop.c are the only places ids change outside
 *	deliver/local's recipient switch.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "config/conf.h"
#include "event/event.h"

#define SERVICE_STATUS_FD 3
#define SERVICE_LISTEN_FD 4

typedef enum { SERVICE_STATUS_AVAIL = 1, SERVICE_STATUS_BUSY = 2 } service_status_code_t;

/* What a child writes to the status pipe: fixed size, native layout
 * (both ends are the same build and the same host). */
typedef struct service_status {
    int32_t pid;
    int32_t status;     /* service_status_code_t */
} service_status_t;

typedef struct service service_t;

typedef struct service_spec {
    const char *name;                   /* program name for logs: "smtpd" */
    int client_limit;                   /* default clients per process */
    void (*pre_init)(service_t *svc);   /* privileged */
    void (*post_init)(service_t *svc);  /* unprivileged, before serving */
    void (*accept_fn)(service_t *svc, int fd);
    void (*wakeup_fn)(service_t *svc);  /* every -w seconds, if given */
    void (*stop_fn)(service_t *svc);    /* retirement begins (optional) */
} service_spec_t;

int service_main(int argc, char **argv, const service_spec_t *spec);
conf_t *service_conf(service_t *svc);
event_loop_t *service_loop(service_t *svc);
const char *service_name(service_t *svc);     /* the -n value */
char **service_args(service_t *svc);          /* extra args, NULL-terminated */
void service_client_done(service_t *svc);
bool service_stop_requested(service_t *svc);
void *service_get_ctx(service_t *svc);
void service_set_ctx(service_t *svc, void *ctx);

/* privdrop - chroot (if dir != NULL) and drop to uid/gid for good;
 * fatal if root can be regained. */
void privdrop(uid_t uid, gid_t gid, const char *chroot_dir);
/* privdrop_lookup - the uid/gid of a user name; -1 if unknown */
int privdrop_lookup(const char *user, uid_t *uid_r, gid_t *gid_r);

#endif
