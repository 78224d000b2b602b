/* msg - diagnostics to syslog or a log file */
#include "util/msg.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int msg_verbose;

static char msg_prog[64] = "stork";
static char msg_ident[128] = "stork";
static char msg_host[256];
static int msg_fd = -1;
static bool msg_stderr;

/* msg_init - set the names used on every line */
void msg_init(const char *progname, const char *syslog_name)
{
    const char *slash = strrchr(progname, '/');

    if (slash)
        progname = slash + 1;
    snprintf(msg_prog, sizeof(msg_prog), "%s", progname);
    snprintf(msg_ident, sizeof(msg_ident), "%s/%s",
             syslog_name ? syslog_name : "stork", msg_prog);
    if (gethostname(msg_host, sizeof(msg_host) - 1) != 0)
        snprintf(msg_host, sizeof(msg_host), "localhost");
    /* LOG_NDELAY opens /dev/log now, before any chroot. */
    openlog(msg_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    tzset();
}

const char *msg_progname(void)
{
    return msg_prog;
}

/* msg_set_logfile - log to a file instead of syslog; NULL or "" = syslog */
int msg_set_logfile(const char *path, const char **why_r)
{
    int fd;

    if (path == NULL || *path == 0) {
        if (msg_fd >= 0)
            close(msg_fd);
        msg_fd = -1;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        if (why_r)
            *why_r = strerror(errno);
        return -1;
    }
    if (msg_fd >= 0)
        close(msg_fd);
    msg_fd = fd;
    return 0;
}

void msg_use_stderr(bool on)
{
    msg_stderr = on;
}

static const char *msg_level_prefix(int level)
{
    switch (level) {
    case LOG_WARNING: return "warning: ";
    case LOG_ERR: return "error: ";
    case LOG_CRIT: return "fatal: ";
    case LOG_ALERT: return "panic: ";
    default: return "";
    }
}

/* msg_vlog - format, sanitize and emit one line */
void msg_vlog(int level, const char *fmt, va_list ap)
{
    char text[4000];
    char line[4800];
    int saved_errno = errno;
    size_t n;

    vsnprintf(text, sizeof(text), fmt, ap);
    for (char *cp = text; *cp; cp++)
        if ((unsigned char)*cp < 0x20 || *cp == 0x7f)
            *cp = '?';
    if (msg_fd >= 0 || msg_stderr) {
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        snprintf(line, sizeof(line), "%s.%06ld %s %s[%ld]: %s%s\n", stamp,
                 ts.tv_nsec / 1000, msg_host, msg_ident, (long)proc_pid(),
                 msg_level_prefix(level), text);
        n = strlen(line);
        if (msg_fd >= 0 && write(msg_fd, line, n) < 0) {
            /* nowhere left to report it */
        }
        if (msg_stderr && msg_fd != 2) {
            fprintf(stderr, "%s: %s%s\n", msg_prog, msg_level_prefix(level), text);
        }
    }
    if (msg_fd < 0) {
        syslog(level, "%s%s", msg_level_prefix(level), text);
        /* A daemon that dies before its maillog_file is open (a bad
         * configuration, say) must not leave only a syslog line that a
         * host without syslog drops: stderr is the master's. */
        if (level <= LOG_CRIT && !msg_stderr)
            fprintf(stderr, "%s: %s%s\n", msg_prog, msg_level_prefix(level), text);
    }
    errno = saved_errno;
}

void msg_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_INFO, fmt, ap);
    va_end(ap);
}

void msg_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_WARNING, fmt, ap);
    va_end(ap);
}

void msg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_ERR, fmt, ap);
    va_end(ap);
}

void msg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_CRIT, fmt, ap);
    va_end(ap);
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_ALERT, fmt, ap);
    va_end(ap);
    abort();
}
