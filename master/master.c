/*
 * stork-master - the supervisor: opens every listening socket in master.cf,
 * starts the daemons, keeps them within their process limits, restarts
 * them with throttling, reloads on SIGHUP and stops on SIGTERM.
 *
 * usage: stork-master [-c CONFIG_DIR] [-d] [-t] [-v]
 *	-c  configuration directory (default $STORK_CONFIG_DIR, $MAIL_CONFIG
 *	    or /etc/stork)
 *	-d  stay in the foreground (do not daemonize)
 *	-t  test: validate main.cf and master.cf, print problems, exit 0/1
 *	-v  verbose logging
 */
#include "master.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* master_usage - the one-line synopsis, then exit */
static void master_usage(void)
{
    fprintf(stderr, "usage: stork-master [-c config_dir] [-d] [-t] [-v]\n"
            "  -c DIR  configuration directory (default /etc/stork)\n"
            "  -d      stay in the foreground\n"
            "  -t      check the configuration and exit\n"
            "  -v      verbose logging\n");
    exit(2);
}

/* master_default_config_dir - $STORK_CONFIG_DIR, $MAIL_CONFIG or /etc/stork */
static const char *master_default_config_dir(void)
{
    const char *d = getenv("STORK_CONFIG_DIR");

    if (d == NULL || *d == 0)
        d = getenv("MAIL_CONFIG");
    return d && *d ? d : "/etc/stork";
}

/* master_report - configuration problems to the log (and stderr) */
static void master_report(const buf_t *errors)
{
    char *copy = xstrdup(buf_cstr(errors)), *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        msg_error("%s", line);
    free(copy);
}

/* master_daemonize - background, new session, stdio to /dev/null */
static void master_daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        msg_fatal("fork: %m");
    if (pid > 0)
        _exit(0);
    (void)setsid();
    if ((fd = open("/dev/null", O_RDWR)) >= 0) {
        (void)dup2(fd, 0);
        (void)dup2(fd, 1);
        (void)dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
}

/* master_open_services - every service's sockets and status pipe, or fatal */
static void master_open_services(master_t *m, master_cf_entry_t *ents, size_t n)
{
    const char *why;

    for (size_t i = 0; i < n; i++) {
        master_serv_t *s = master_serv_new(m, &ents[i]);

        if (master_listen_open(m, s, &why) < 0)
            msg_fatal("%s", why);
        if (master_status_open(m, s) < 0)
            msg_fatal("%s: cannot create status pipe: %m", s->name);
    }
}

int main(int argc, char **argv)
{
    master_t master = { .lock_fd = -1 };
    master_t *m = &master;
    const char *config_dir = master_default_config_dir(), *why;
    char real[PATH_MAX];
    bool foreground = false, test_only = false;
    master_cf_entry_t *ents;
    size_t n;
    buf_t errors;
    int ch;

    msg_init("master", "stork");
    msg_use_stderr(true);
    while ((ch = getopt(argc, argv, "c:dtv")) != -1) {
        switch (ch) {
        case 'c': config_dir = optarg; break;
        case 'd': foreground = true; break;
        case 't': test_only = true; break;
        case 'v': msg_verbose++; break;
        default: master_usage();
        }
    }
    if (optind != argc)
        master_usage();
    if (realpath(config_dir, real) == NULL)
        msg_fatal("configuration directory %s: %m", config_dir);
    m->config_dir = xstrdup(real);

    /* The whole configuration is checked before anything is opened. */
    buf_init(&errors, 1024 * 1024);
    if (master_load_config(m->config_dir, &m->conf, &ents, &n, &errors) > 0) {
        master_report(&errors);
        msg_fatal("%s: configuration errors; not started", m->config_dir);
    }
    buf_free(&errors);
    msg_init("master", conf_str(m->conf, "syslog_name"));
    if (test_only)
        return 0;
    if (*conf_str(m->conf, "maillog_file")
        && msg_set_logfile(conf_str(m->conf, "maillog_file"), &why) < 0)
        msg_fatal("maillog_file %s: %s", conf_str(m->conf, "maillog_file"), why);
    if (master_queue_setup(m->conf, &why) < 0)
        msg_fatal("%s", why);
    if (master_lock(m->conf, &m->lock_fd, &m->pid_path, &why) < 0)
        msg_fatal("%s", why);
    if (chdir(conf_str(m->conf, "queue_directory")) < 0)
        msg_fatal("chdir %s: %m", conf_str(m->conf, "queue_directory"));

    m->loop = event_loop_new();
    master_open_services(m, ents, n);
    master_cf_free(&ents, n);
    if (!foreground) {
        master_daemonize();
        msg_use_stderr(false);
    }
    if (master_write_pid(m->lock_fd) < 0)
        msg_fatal("write %s: %m", m->pid_path);
    master_sig_init(m);
    msg_info("daemon started -- version %s, configuration %s", STORK_VERSION, m->config_dir);
    master_spawn_check_all(m);
    event_loop_run(m->loop);
    master_exit(m, 0);
}
