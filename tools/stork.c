/*
 * stork - start, stop, reload, check the mail system (Postfix's postfix(1))
 *
 *	stork [-c CONFIG_DIR] [-v] start | start-fg | stop | reload | status | check
 *
 * start execs stork-master from daemon_directory, which checks the
 * configuration, opens its sockets and goes to the background; start waits
 * (at most STORK_START_WAIT seconds) until the pid file names a live,
 * locked master. start-fg runs the master in the foreground (systemd).
 * stop sends SIGTERM and waits for the master to exit. reload sends
 * SIGHUP. status exits 0 when running, 1 when not. check validates main.cf,
 * master.cf and the queue directory and prints every problem.
 * The configuration directory is -c, else $STORK_CONFIG_DIR, else
 * $MAIL_CONFIG, else /etc/stork.
 */
#include "config/conf.h"
#include "config/master_cf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STORK_START_WAIT 10     /* seconds */
#define STORK_STOP_WAIT  15

static conf_t *conf;
static char *config_dir;

/* say - Postfix's "postfix/postfix-script: text" to stderr and the log */
static void say(const char *fmt, ...) STORK_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    char text[1024];

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s/stork-script: %s\n", conf ? conf_str(conf, "syslog_name") : "stork", text);
    msg_info("%s", text);
}

/* usage - the synopsis, then exit 2 */
static void usage(void)
{
    fprintf(stderr, "usage: stork [-c config_dir] [-v] command\n"
            "commands:\n"
            "  start     start the mail system in the background\n"
            "  start-fg  run the master in the foreground\n"
            "  stop      stop the mail system\n"
            "  reload    re-read the configuration (SIGHUP)\n"
            "  status    is it running? (exit 0 yes, 1 no)\n"
            "  check     check main.cf, master.cf and the queue directory\n");
    exit(2);
}

/* master_pid - the running master's pid, or 0 (pid file read and lock held) */
static pid_t master_pid(void)
{
    char *path = xasprintf("%s/pid/master.pid", conf_str(conf, "queue_directory"));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char text[32];
    ssize_t n;
    long pid;

    free(path);
    if (fd < 0)
        return 0;
    /* A live master holds an exclusive flock; if we get a shared one, none runs. */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        close(fd);
        return 0;
    }
    n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = 0;
    pid = strtol(text, NULL, 10);
    if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno != EPERM))
        return 0;
    return (pid_t)pid;
}

/* print_errors - every problem line, to stderr and the log */
static void print_errors(const buf_t *errors)
{
    char *copy = xstrdup(buf_cstr(errors)), *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        fprintf(stderr, "stork: error: %s\n", line);
        msg_error("%s", line);
    }
    free(copy);
}

/* check_dir - a queue subdirectory's type and mode */
static int check_dir(const char *qdir, const char *sub, mode_t mode, buf_t *errors)
{
    char *path = xasprintf("%s/%s", qdir, sub);
    struct stat st;
    int bad = 0;

    if (stat(path, &st) < 0) {
        if (errno != ENOENT) {
            buf_printf(errors, "%s: %s\n", path, strerror(errno));
            bad = 1;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        buf_printf(errors, "%s: not a directory\n", path);
        bad = 1;
    } else if ((st.st_mode & 07777) != mode) {
        fprintf(stderr, "stork: warning: %s: mode %04o, expected %04o (fixed at start)\n",
                path, (unsigned)(st.st_mode & 07777), (unsigned)mode);
    }
    free(path);
    return bad;
}

/* check_queue - the queue directory and the users the system needs */
static int check_queue(buf_t *errors)
{
    static const struct { const char *name; mode_t mode; } dirs[] = {
        { "incoming", 0700 }, { "active", 0700 }, { "deferred", 0700 }, { "hold", 0700 },
        { "corrupt", 0700 }, { "private", 0700 }, { "public", 0711 }, { "maildrop", 01730 },
        { "index", 0700 },
        { "pid", 0755 },
    };
    const char *qdir = conf_str(conf, "queue_directory");
    struct stat st;
    int problems = 0;

    if (qdir[0] != '/') {
        buf_printf(errors, "queue_directory: must be an absolute path: %s\n", qdir);
        return 1;
    }
    if (stat(qdir, &st) < 0) {
        if (errno != ENOENT) {
            buf_printf(errors, "queue_directory: %s: %s\n", qdir, strerror(errno));
            return 1;
        }
        fprintf(stderr, "stork: warning: %s does not exist yet (created at start)\n", qdir);
    } else if (!S_ISDIR(st.st_mode)) {
        buf_printf(errors, "queue_directory: %s: not a directory\n", qdir);
        return 1;
    } else {
        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
            problems += check_dir(qdir, dirs[i].name, dirs[i].mode, errors);
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(conf_str(conf, "mail_owner"));

        if (pw == NULL) {
            buf_printf(errors, "mail_owner: unknown user: %s\n", conf_str(conf, "mail_owner"));
            problems++;
        } else if (pw->pw_uid == 0) {
            buf_printf(errors, "mail_owner: %s must not be root\n", conf_str(conf, "mail_owner"));
            problems++;
        }
    }
    return problems;
}

/* check_commands - every master.cf command exists and is executable */
static int check_commands(const master_cf_entry_t *ents, size_t n, buf_t *errors)
{
    char *master_cf = xasprintf("%s/master.cf", config_dir), *master;
    int problems = 0;

    for (size_t i = 0; i < n; i++) {
        const char *cmd = ents[i].argv[0];
        char *path = cmd[0] == '/' ? xstrdup(cmd)
                                   : xasprintf("%s/%s", conf_str(conf, "daemon_directory"), cmd);

        if (access(path, X_OK) < 0) {
            buf_printf(errors, "%s:%d: %s: command %s: %s\n", master_cf, ents[i].line,
                       ents[i].service, path, strerror(errno));
            problems++;
        }
        free(path);
    }
    master = xasprintf("%s/stork-master", conf_str(conf, "daemon_directory"));
    if (access(master, X_OK) < 0) {
        buf_printf(errors, "daemon_directory: %s: %s\n", master, strerror(errno));
        problems++;
    }
    free(master);
    free(master_cf);
    return problems;
}

/* do_check - validate everything; 0 when clean, else 1 (problems printed) */
static int do_check(bool quiet)
{
    master_cf_entry_t *ents = NULL;
    size_t n = 0;
    buf_t errors;
    char *path = xasprintf("%s/master.cf", config_dir);
    int problems;

    buf_init(&errors, BUF_NOLIMIT);
    problems = conf_validate(conf, &errors);
    problems += master_cf_load(path, &ents, &n, &errors);
    free(path);
    problems += check_queue(&errors);
    if (ents)
        problems += check_commands(ents, n, &errors);
    master_cf_free(&ents, n);
    print_errors(&errors);
    buf_free(&errors);
    if (problems && !quiet)
        fprintf(stderr, "stork: %d problem%s found\n", problems, problems == 1 ? "" : "s");
    return problems ? 1 : 0;
}

/* master_path - $daemon_directory/stork-master */
static char *master_path(void)
{
    return xasprintf("%s/stork-master", conf_str(conf, "daemon_directory"));
}

/* do_start - run the master (it daemonizes) and wait until it is up */
static int do_start(void)
{
    char *path = master_path();
    pid_t pid, child;
    int status;

    if ((pid = master_pid()) > 0) {
        say("fatal: the Stork mail system is already running (pid %d)", (int)pid);
        return 1;
    }
    if (do_check(false) != 0) {
        say("fatal: configuration problems; not starting");
        return 1;
    }
    say("starting the Stork mail system");
    if ((child = fork()) < 0)
        msg_fatal("fork: %m");
    if (child == 0) {
        execl(path, path, "-c", config_dir, (char *)NULL);
        fprintf(stderr, "stork: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    free(path);
    /* The master validates and binds before it forks into the background. */
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            msg_fatal("waitpid: %m");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        say("fatal: mail system startup failed");
        return 1;
    }
    for (int i = 0; i < STORK_START_WAIT * 10; i++) {
        if (master_pid() > 0)
            return 0;
        usleep(100 * 1000);
    }
    say("fatal: the master did not come up within %d seconds", STORK_START_WAIT);
    return 1;
}

/* do_stop - SIGTERM and wait for the master to go */
static int do_stop(void)
{
    pid_t pid = master_pid();

    if (pid <= 0) {
        say("fatal: the Stork mail system is not running");
        return 1;
    }
    say("stopping the Stork mail system");
    if (kill(pid, SIGTERM) < 0)
        msg_fatal("kill %d: %m", (int)pid);
    for (int i = 0; i < STORK_STOP_WAIT * 10; i++) {
        if (master_pid() <= 0)
            return 0;
        usleep(100 * 1000);
    }
    say("fatal: the master (pid %d) did not stop within %d seconds", (int)pid, STORK_STOP_WAIT);
    return 1;
}

/* do_signal - reload (SIGHUP) */
static int do_reload(void)
{
    pid_t pid = master_pid();

    if (pid <= 0) {
        say("fatal: the Stork mail system is not running");
        return 1;
    }
    if (do_check(false) != 0) {
        say("fatal: configuration problems; not reloading");
        return 1;
    }
    say("refreshing the Stork mail system");
    if (kill(pid, SIGHUP) < 0)
        msg_fatal("kill %d: %m", (int)pid);
    return 0;
}

/* do_status - running or not */
static int do_status(void)
{
    pid_t pid = master_pid();

    if (pid > 0) {
        say("the Stork mail system is running: PID: %d", (int)pid);
        return 0;
    }
    say("the Stork mail system is not running");
    return 1;
}

/* do_start_fg - become the master, in the foreground */
static int do_start_fg(void)
{
    char *path = master_path();

    if (do_check(false) != 0)
        return 1;
    execl(path, path, "-c", config_dir, "-d", (char *)NULL);
    msg_fatal("exec %s: %m", path);
}

int main(int argc, char **argv)
{
    const char *dir = getenv("STORK_CONFIG_DIR"), *why, *cmd;
    char real[PATH_MAX];
    int ch;

    if (dir == NULL || *dir == 0)
        dir = getenv("MAIL_CONFIG");
    if (dir == NULL || *dir == 0)
        dir = "/etc/stork";
    msg_init("stork-script", "stork");
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c': dir = optarg; break;
        case 'v': msg_verbose++; break;
        default: usage();
        }
    }
    if (optind + 1 != argc)
        usage();
    cmd = argv[optind];
    if (realpath(dir, real) == NULL) {
        fprintf(stderr, "stork: fatal: configuration directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    config_dir = xstrdup(real);
    if ((conf = conf_open(config_dir, &why)) == NULL) {
        fprintf(stderr, "stork: fatal: %s\n", why);
        return 1;
    }
    msg_init("stork-script", conf_str(conf, "syslog_name"));
    if (*conf_str(conf, "maillog_file"))
        (void)msg_set_logfile(conf_str(conf, "maillog_file"), &why);

    if (strcmp(cmd, "start") == 0)
        return do_start();
    if (strcmp(cmd, "start-fg") == 0)
        return do_start_fg();
    if (strcmp(cmd, "stop") == 0)
        return do_stop();
    if (strcmp(cmd, "reload") == 0)
        return do_reload();
    if (strcmp(cmd, "status") == 0)
        return do_status();
    if (strcmp(cmd, "check") == 0)
        return do_check(false);
    usage();
}
