/*
 * storksuper - queue maintenance for the administrator (Postfix's postsuper)
 *
 *	storksuper [-c DIR] [-s] [-d QID|ALL|-] [-h QID|ALL|-] [-H QID|ALL|-]
 *	           [-r QID|ALL|-] [queue...]
 *
 *	-d  delete (default queues: hold incoming active deferred)
 *	-h  put on hold (default: incoming active deferred)
 *	-H  release from hold (hold → deferred)
 *	-r  requeue: back to incoming, so qmgr takes a fresh look
 *	-s  check the queue structure and rebuild qmgr's index
 *	"-" reads queue ids from standard input, one per line.
 *
 * With the mail system running every request goes to qmgr, the queue's
 * only scheduler. When qmgr does not answer (its socket is absent or
 * refuses connections: the system is stopped) storksuper works on the
 * files itself and removes qmgr's index (a cache) so that qmgr rebuilds
 * it from the files at its next start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "queue/qfile.h"
#include "queue/qid.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SUPER_MAX_REQUESTS 1000000
#define SUPER_STALE_TEMP (3600)

typedef enum { OP_DELETE, OP_HOLD, OP_RELEASE, OP_REQUEUE, OP__COUNT } super_op_t;

typedef struct super_opinfo {
    const char *ipc_op;         /* QMGR_CONTROL op */
    const char *done;           /* summary: "Deleted" */
    const char *logged;         /* per message: "removed" */
    const char *const *queues;  /* default queues */
    const char *target;         /* destination queue, NULL = unlink */
} super_opinfo_t;

static const char *const q_del[] = {QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, NULL};
static const char *const q_hold[] = {QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, NULL};
static const char *const q_rel[] = {QUEUE_HOLD, NULL};

static const super_opinfo_t super_ops[OP__COUNT] = {
    [OP_DELETE] = {"delete", "Deleted", "removed", q_del, NULL},
    [OP_HOLD] = {"hold", "Placed on hold", "placed on hold", q_hold, QUEUE_HOLD},
    [OP_RELEASE] = {"release", "Released from hold", "released from hold", q_rel, QUEUE_DEFERRED},
    [OP_REQUEUE] = {"requeue", "Requeued", "requeued", q_del, QUEUE_INCOMING},
};

typedef struct super_req {
    super_op_t op;
    char *qid;                  /* a queue id or "ALL" */
} super_req_t;

typedef struct super {
    const char *queue_dir;
    super_req_t *reqs;
    size_t nreqs;
    const char *const *queues;  /* from the command line, or NULL */
    int qmgr_fd;                /* -1: work on the files */
    unsigned long counts[OP__COUNT];
    bool changed;               /* direct mode touched the queue */
    int status;
} super_t;

/* usage - the synopsis, then exit EX_USAGE */
static void usage(void)
{
    fprintf(stderr, "usage: storksuper [-c config_dir] [-s] [-d queue_id] [-h queue_id] "
                    "[-H queue_id] [-r queue_id] [queue...]\n"
                    "  queue_id may be ALL, or - to read ids from standard input\n");
    exit(EX_USAGE);
}

/* super_add - remember one request; ids are checked before use */
static void super_add(super_t *s, super_op_t op, const char *qid)
{
    if (s->nreqs >= SUPER_MAX_REQUESTS)
        msg_fatal("too many queue ids (at most %d)", SUPER_MAX_REQUESTS);
    if (strcmp(qid, "ALL") != 0 && !qid_valid(qid)) {
        msg_warn("invalid queue id: %s", qid);
        s->status = EX_USAGE;
        return;
    }
    s->reqs = xreallocarray(s->reqs, s->nreqs + 1, sizeof(*s->reqs));
    s->reqs[s->nreqs].op = op;
    s->reqs[s->nreqs].qid = xstrdup(qid);
    s->nreqs++;
}

/* super_add_stdin - "-": one queue id per input line */
static void super_add_stdin(super_t *s, super_op_t op)
{
    char *line = NULL;
    size_t cap = 0;

    while (getline(&line, &cap, stdin) > 0) {
        char *id = strtok(line, " \t\r\n");

        if (id != NULL)
            super_add(s, op, id);
    }
    free(line);
}

/* super_log_one - the per-message log line (log only, not the terminal) */
static void super_log_one(const char *qid, const char *what)
{
    msg_use_stderr(false);
    msg_info("%s: %s", qid, what);
    msg_use_stderr(true);
}

/* super_direct_one - apply op to QID in queue QUEUE; 1 done, 0 absent */
static int super_direct_one(super_t *s, super_op_t op, const char *queue, const char *qid)
{
    const super_opinfo_t *oi = &super_ops[op];
    char *from = xasprintf("%s/%s/%s", s->queue_dir, queue, qid);
    int ret = 0;

    if (oi->target == NULL) {
        if (unlink(from) == 0)
            ret = 1;
        else if (errno != ENOENT) {
            msg_warn("remove %s: %s", from, strerror(errno));
            s->status = EX_NOPERM;
        }
    } else if (strcmp(queue, oi->target) != 0 && access(from, F_OK) == 0) {
        char *to = xasprintf("%s/%s/%s", s->queue_dir, oi->target, qid);

        /* rename() replaces silently; a file of the same id in the
         * target queue would be lost, so refuse instead. */
        if (access(to, F_OK) == 0) {
            msg_warn("%s: already in %s queue, %s left alone", qid, oi->target, from);
        } else if (rename(from, to) == 0) {
            ret = 1;
            queue_sync_dir(s->queue_dir, oi->target);
        } else if (errno != ENOENT) {
            msg_warn("rename %s to %s: %s", from, to, strerror(errno));
            s->status = EX_NOPERM;
        }
        free(to);
    }
    if (ret) {
        queue_sync_dir(s->queue_dir, queue);
        super_log_one(qid, oi->logged);
        s->changed = true;
    }
    free(from);
    return ret;
}

/* super_direct_all - apply op to every message of one queue */
static unsigned long super_direct_all(super_t *s, super_op_t op, const char *queue)
{
    char *dir = xasprintf("%s/%s", s->queue_dir, queue);
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned long n = 0;
    char **ids = NULL;
    size_t nids = 0;

    if (d == NULL) {
        if (errno != ENOENT) {
            msg_warn("open directory %s: %s", dir, strerror(errno));
            s->status = EX_NOPERM;
        }
        free(dir);
        return 0;
    }
    /* Collect first: renaming while reading a directory may show a file
     * twice or not at all. */
    while ((de = readdir(d)) != NULL)
        if (qid_valid(de->d_name)) {
            ids = xreallocarray(ids, nids + 1, sizeof(*ids));
            ids[nids++] = xstrdup(de->d_name);
        }
    closedir(d);
    for (size_t i = 0; i < nids; i++) {
        n += (unsigned long)super_direct_one(s, op, queue, ids[i]);
        free(ids[i]);
    }
    free(ids);
    free(dir);
    return n;
}

/* super_run_req - one request, through qmgr or on the files */
static void super_run_req(super_t *s, const super_req_t *r)
{
    const super_opinfo_t *oi = &super_ops[r->op];
    const char *const *queues = s->queues ? s->queues : oi->queues;
    bool all = strcmp(r->qid, "ALL") == 0;

    if (s->qmgr_fd >= 0) {
        const char *why;
        uint64_t count = 0;

        /* qmgr applies its own default queues when none is named. */
        for (int q = 0; s->queues == NULL ? q == 0 : s->queues[q] != NULL; q++) {
            if (cli_qmgr_control(s->qmgr_fd, oi->ipc_op, r->qid, s->queues ? s->queues[q] : NULL,
                                 NULL, &count, &why) < 0) {
                msg_warn("%s %s: %s", oi->ipc_op, r->qid, why);
                s->status = EX_SOFTWARE;
                continue;
            }
            s->counts[r->op] += count;
        }
        return;
    }
    for (int q = 0; queues[q]; q++) {
        if (all) {
            s->counts[r->op] += super_direct_all(s, r->op, queues[q]);
        } else if (super_direct_one(s, r->op, queues[q], r->qid)) {
            /* A message is in one queue: done (it may now be in a later
             * queue of the list, e.g. requeued to incoming). */
            s->counts[r->op]++;
            break;
        }
    }
}

/* super_check_file - -s: a queue file that does not read goes to corrupt/ */
static void super_check_file(super_t *s, const char *queue, const char *name, time_t now)
{
    char *path = xasprintf("%s/%s/%s", s->queue_dir, queue, name);
    struct stat st;
    int fd;
    qfile_t qf;
    const char *why;

    if (lstat(path, &st) < 0) {
        free(path);
        return;
    }
    if (strncmp(name, "t.", 2) == 0) {
        /* Nothing writes while the system is stopped: a temp file is
         * what a crash left. An hour's grace covers a clock skew. */
        if (now - st.st_mtime > SUPER_STALE_TEMP && unlink(path) == 0) {
            msg_info("%s: removed stale temporary file", path);
            s->changed = true;
        }
    } else if (!qid_valid(name) || !S_ISREG(st.st_mode)) {
        msg_warn("%s: unexpected file in the queue (left alone)", path);
    } else if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        msg_warn("open %s: %s", path, strerror(errno));
        s->status = EX_NOPERM;
    } else {
        if (qfile_read(fd, &qf, &why) < 0) {
            char *to = xasprintf("%s/%s/%s", s->queue_dir, QUEUE_CORRUPT, name);

            if (access(to, F_OK) == 0 || rename(path, to) < 0)
                msg_warn("%s: %s; cannot move it to %s", path, why, QUEUE_CORRUPT);
            else {
                msg_warn("%s: %s; moved to %s", path, why, QUEUE_CORRUPT);
                s->changed = true;
            }
            free(to);
        } else {
            qfile_free(&qf);
        }
        close(fd);
    }
    free(path);
}

/* super_structure - -s on the files: create missing queue directories,
 * move unreadable files to corrupt/, remove stale temp files */
static void super_structure(super_t *s)
{
    static const char *const dirs[] = {QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
                                       QUEUE_HOLD, QUEUE_CORRUPT, NULL};
    time_t now = time(NULL);

    for (int q = 0; dirs[q]; q++) {
        char *dir = xasprintf("%s/%s", s->queue_dir, dirs[q]);
        DIR *d;
        struct dirent *de;

        if (mkdir(dir, 0700) == 0)
            msg_info("created missing directory %s", dir);
        if (strcmp(dirs[q], QUEUE_CORRUPT) != 0 && (d = opendir(dir)) != NULL) {
            char **names = NULL;
            size_t n = 0;

            while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                    names = xreallocarray(names, n + 1, sizeof(*names));
                    names[n++] = xstrdup(de->d_name);
                }
            closedir(d);
            for (size_t i = 0; i < n; i++) {
                super_check_file(s, dirs[q], names[i], now);
                free(names[i]);
            }
            free(names);
        } else if (strcmp(dirs[q], QUEUE_CORRUPT) != 0) {
            msg_warn("open directory %s: %s", dir, strerror(errno));
            s->status = EX_NOPERM;
        }
        free(dir);
    }
    s->changed = true;
}

/* super_connect - qmgr, or -1 when the mail system is stopped; exits
 * when qmgr exists but cannot be reached (never race a live qmgr) */
static int super_connect(const char *queue_dir)
{
    const char *why;
    int fd = cli_qmgr_connect(queue_dir, &why);
    int err = errno;

    if (fd >= 0)
        return fd;
    if (err == EACCES || err == EPERM) {
        msg_error("cannot talk to qmgr: %s (run as root or the mail_owner)", why);
        exit(EX_NOPERM);
    }
    if (err == ETIMEDOUT) {
        msg_error("qmgr does not answer: %s", why);
        exit(EX_TEMPFAIL);
    }
    return -1;
}

int main(int argc, char **argv)
{
    super_t s = {.qmgr_fd = -1};
    const char *config_dir = NULL;
    bool structure = false;
    conf_t *conf;
    int c;

    cli_init(argv[0], "storksuper");
    while ((c = getopt(argc, argv, "c:d:h:H:r:sv")) != -1) {
        super_op_t op;

        switch (c) {
        case 'c':
            config_dir = optarg;
            continue;
        case 's':
            structure = true;
            continue;
        case 'v':
            msg_verbose++;
            continue;
        case 'd': op = OP_DELETE; break;
        case 'h': op = OP_HOLD; break;
        case 'H': op = OP_RELEASE; break;
        case 'r': op = OP_REQUEUE; break;
        default:
            usage();
        }
        if (strcmp(optarg, "-") == 0)
            super_add_stdin(&s, op);
        else
            super_add(&s, op, optarg);
    }
    if (optind < argc) {
        static const char *const known[] = {QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE,
                                            QUEUE_DEFERRED, QUEUE_MAILDROP, NULL};

        for (int i = optind; i < argc; i++) {
            int k;

            for (k = 0; known[k] && strcmp(known[k], argv[i]) != 0; k++)
                ;
            if (known[k] == NULL) {
                msg_error("unknown queue name: %s", argv[i]);
                return EX_USAGE;
            }
        }
        s.queues = (const char *const *)argv + optind;
    }
    if (s.nreqs == 0 && !structure) {
        if (s.status)
            return s.status;
        usage();
    }
    conf = cli_conf(config_dir);
    s.queue_dir = cli_queue_dir(conf);
    s.qmgr_fd = super_connect(s.queue_dir);
    if (structure) {
        if (s.qmgr_fd >= 0) {
            const char *why;

            if (cli_qmgr_control(s.qmgr_fd, "rebuild", NULL, NULL, NULL, NULL, &why) < 0) {
                msg_error("rebuild: %s", why);
                s.status = EX_SOFTWARE;
            }
        } else {
            super_structure(&s);
        }
    }
    for (size_t i = 0; i < s.nreqs; i++)
        super_run_req(&s, &s.reqs[i]);
    for (int op = 0; op < OP__COUNT; op++)
        if (s.counts[op] > 0)
            msg_info("%s: %lu message%s", super_ops[op].done, s.counts[op],
                     s.counts[op] == 1 ? "" : "s");
    if (s.qmgr_fd < 0 && s.changed)
        cli_index_dirty(s.queue_dir);
    if (s.qmgr_fd >= 0)
        close(s.qmgr_fd);
    for (size_t i = 0; i < s.nreqs; i++)
        free(s.reqs[i].qid);
    free(s.reqs);
    conf_free(&conf);
    return s.status;
}
