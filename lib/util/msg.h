#ifndef STORK_UTIL_MSG_H
#define STORK_UTIL_MSG_H
/*
 * NAME
 *	msg - diagnostics and mail log lines
 * SUMMARY
 *	msg_init() names the program ("smtpd") and the syslog name ("stork");
 *	msg_info/warn/error log one line; msg_fatal logs and exits(1);
 *	msg_panic logs and aborts.
 * DESCRIPTION
 *	Lines go to syslog (facility mail) by default. msg_set_logfile()
 *	switches to a file opened O_APPEND ("/dev/stderr" works), where each
 *	line has syslog's shape so that Postfix log tools read it:
 *	    "Nov 22 09:04:43 host stork/smtpd[123]: warning: text"
 *	Each line is written with one write(2), so several processes may
 *	share the file.
 *	msg_fatal is only for the environment at start-up (the master
 *	restarts the daemon); never call it on peer or client input.
 * LIMITS
 *	A line is cut at 4000 bytes. Control characters are replaced by '?'
 *	so that client data can never forge a log line.
 */
#include <stdarg.h>
#include <stdbool.h>

#define STORK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define STORK_NORETURN __attribute__((noreturn))

extern int msg_verbose;

void msg_init(const char *progname, const char *syslog_name);
int msg_set_logfile(const char *path, const char **why_r);
/* msg_use_stderr - also copy lines to stderr (commands, before a log is set) */
void msg_use_stderr(bool on);
const char *msg_progname(void);

void msg_info(const char *fmt, ...) STORK_PRINTF(1, 2);
void msg_warn(const char *fmt, ...) STORK_PRINTF(1, 2);
void msg_error(const char *fmt, ...) STORK_PRINTF(1, 2);
void msg_fatal(const char *fmt, ...) STORK_PRINTF(1, 2) STORK_NORETURN;
void msg_panic(const char *fmt, ...) STORK_PRINTF(1, 2) STORK_NORETURN;
void msg_vlog(int level, const char *fmt, va_list ap) STORK_PRINTF(2, 0);

#endif
