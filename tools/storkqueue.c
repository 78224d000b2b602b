/*
 * storkqueue - queue listing and flushing for users (Postfix's postqueue)
 *
 *	storkqueue [-c DIR] -p          list the queue (mailq layout)
 *	storkqueue [-c DIR] -j          list as one JSON object per message
 *	storkqueue [-c DIR] -f          flush: attempt every deferred message
 *	storkqueue [-c DIR] -s site     flush mail for one destination
 *	storkqueue [-c DIR] -i QID      attempt one message now
 *
 * Listing asks qmgr and, when the mail system is stopped, reads the queue
 * files directly. Flushing needs a running qmgr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli_showq.h"
#include "cli_util.h"
#include "queue/qid.h"
#include "util/msg.h"

/* usage - the synopsis, then exit EX_USAGE */
static void usage(void)
{
    fprintf(stderr, "usage: storkqueue [-c config_dir] -p | -j | -f | -s site | -i queue_id\n");
    exit(EX_USAGE);
}

/* storkqueue_control - flush requests go to qmgr */
static int storkqueue_control(const char *queue_dir, const char *op, const char *qid,
                              const char *site)
{
    const char *why;
    uint64_t count = 0;
    int fd = cli_qmgr_connect(queue_dir, &why);

    if (fd < 0) {
        msg_error("Cannot flush mail queue - mail system is down (%s)", why);
        return EX_UNAVAILABLE;
    }
    if (cli_qmgr_control(fd, op, qid, NULL, site, &count, &why) < 0) {
        close(fd);
        msg_error("%s%s%s: %s", op, qid ? " " : "", qid ? qid : "", why);
        return EX_UNAVAILABLE;
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL, *site = NULL, *qid = NULL;
    int mode = 0, c;
    conf_t *conf;
    int status;

    cli_init(argv[0], "storkqueue");
    while ((c = getopt(argc, argv, "c:fi:js:pv")) != -1) {
        switch (c) {
        case 'c':
            config_dir = optarg;
            break;
        case 'i':
            qid = optarg;
            /* FALLTHROUGH */
        case 'f':
        case 'j':
        case 'p':
            if (mode && mode != c)
                usage();
            mode = c;
            break;
        case 's':
            if (mode && mode != c)
                usage();
            mode = c;
            site = optarg;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || mode == 0)
        usage();
    if (qid && !qid_valid(qid)) {
        msg_error("invalid queue id: %s", qid);
        return EX_USAGE;
    }
    conf = cli_conf(config_dir);
    switch (mode) {
    case 'p':
    case 'j':
        status = cli_showq(cli_queue_dir(conf), mode == 'j');
        break;
    case 'f':
        status = storkqueue_control(cli_queue_dir(conf), "flush", NULL, NULL);
        break;
    case 'i':
        status = storkqueue_control(cli_queue_dir(conf), "flush", qid, NULL);
        break;
    default:
        status = storkqueue_control(cli_queue_dir(conf), "flush_site", NULL, site);
        break;
    }
    conf_free(&conf);
    return status;
}
