#ifndef STORK_CONFIG_MASTER_CF_H
#define STORK_CONFIG_MASTER_CF_H
/*
 * NAME
 *	master_cf - the service table (master.cf), shared by stork-master,
 *	`stork check` and storkconf -M
 * SUMMARY
 *	Postfix's columns: service type private unpriv chroot wakeup maxproc
 *	command [args...]. '-' takes the default (private y, unpriv y,
 *	chroot n, wakeup 0, maxproc = default_process_limit). A line that
 *	starts with white space continues the previous entry's command
 *	line; '#' comments and blank lines are skipped. Arguments "-o
 *	name=value" are kept in argv (in order) for the daemon, and also
 *	checked here: the name must be a declared parameter.
 *	For type inet the service is "[host:]port" (host may be [v6]);
 *	for unix it is a socket name under $queue_directory/private (or
 *	public when private = n).
 *	wakeup > 0 (seconds; "60?" as in Postfix is accepted) marks a
 *	service that the master starts at boot and keeps running (qmgr,
 *	pickup) and wakes periodically.
 * ERRORS
 *	master_cf_load returns the number of problems and appends
 *	"PATH:LINE: ..." lines to errors; entries are returned only when
 *	there are none. Duplicate service name+type is an error.
 *	master_cf_inet_split(service, &host, &port, &why): split an inet
 *	service "[host:]port" into host (NULL = every address in
 *	inet_interfaces; "[v6]" brackets removed) and a numeric port
 *	string; well-known names map to ports (smtp 25, submission 587,
 *	submissions/smtps 465, else getservbyname). -1 with why on junk.
 * OWNERSHIP
 *	master_cf_free releases the array from master_cf_load.
 *	master_cf_inet_split's strings are the caller's to free.
 */
#include <stdbool.h>
#include <stddef.h>
#include "util/buf.h"

typedef enum { MASTER_CF_INET, MASTER_CF_UNIX } master_cf_type_t;

typedef struct master_cf_entry {
    char *service;          /* "2525", "127.0.0.1:2525", "qmgr" */
    master_cf_type_t type;
    bool private_;          /* unix: private/ (true) or public/ */
    bool unpriv;            /* drop to mail_owner */
    bool chroot;            /* chroot to queue_directory */
    int wakeup;             /* seconds, 0 = none */
    int maxproc;            /* -1 = default_process_limit, 0 = no limit */
    char **argv;            /* command and its arguments, NULL-terminated */
    size_t argc;
    int line;
} master_cf_entry_t;

int master_cf_load(const char *path, master_cf_entry_t **entries_r, size_t *n_r,
                   buf_t *errors);
void master_cf_free(master_cf_entry_t **entries, size_t n);
int master_cf_inet_split(const char *service, char **host_r, char **port_r,
                         const char **why_r);

#endif
