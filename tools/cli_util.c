/*
 * cli_util - configuration, qmgr connection and direct queue access for
 * the queue commands (see cli_util.h)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli_util.h"
#include "ipc/ipc.h"
#include "queue/qfile.h"
#include "queue/qid.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define CLI_IPC_TIMEOUT_MS 30000
#define CLI_CONNECT_TIMEOUT_MS 5000
#define CLI_BUSY_TIMEOUT_MS 60000
#define CLI_DEFAULT_CONFIG_DIR "/etc/stork"

const char *const CLI_QUEUES_ALL[] = {
    QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, NULL
};

/* cli_init - logging for a command: syslog, and a copy on stderr */
void cli_init(const char *argv0, const char *name)
{
    (void)argv0;
    msg_init(name, "stork");
    msg_use_stderr(true);
}

/* cli_conf - open and validate main.cf; exits EX_CONFIG on problems */
conf_t *cli_conf(const char *config_dir)
{
    const char *why;
    conf_t *conf;
    buf_t errors;

    if (config_dir == NULL)
        config_dir = secure_getenv("STORK_CONFIG_DIR");  /* not in a set-gid sendmail */
    if (config_dir == NULL || *config_dir == 0)
        config_dir = CLI_DEFAULT_CONFIG_DIR;
    if ((conf = conf_open(config_dir, &why)) == NULL) {
        msg_error("%s", why);
        exit(EX_CONFIG);
    }
    buf_init(&errors, BUF_NOLIMIT);
    if (conf_validate(conf, &errors) > 0) {
        fputs(buf_cstr(&errors), stderr);
        if (errors.len && errors.data[errors.len - 1] != '\n')
            fputc('\n', stderr);
        msg_error("%s/main.cf: configuration errors, giving up", config_dir);
        exit(EX_CONFIG);
    }
    buf_free(&errors);
    /* Commands log where the daemons do, so one log tells the story. */
    if (*conf_str(conf, "maillog_file")
        && msg_set_logfile(conf_str(conf, "maillog_file"), &why) < 0)
        msg_set_logfile(NULL, &why);
    return conf;
}

/* cli_queue_dir - $queue_directory */
const char *cli_queue_dir(conf_t *conf)
{
    return conf_str(conf, "queue_directory");
}

/* cli_qmgr_connect - connect to qmgr's query/control service */
int cli_qmgr_connect(const char *queue_dir, const char **why_r)
{
    static const char *const socks[] = {"public/qmgr", "private/qmgr", NULL};
    const char *why = "no qmgr socket";

    for (int i = 0; socks[i]; i++) {
        char *path = xasprintf("%s/%s", queue_dir, socks[i]);
        int fd;

        if (access(path, F_OK) < 0) {
            free(path);
            continue;
        }
        fd = ipc_connect(path, "qmgr", CLI_CONNECT_TIMEOUT_MS, &why);
        /* Connected but no HELLO in time: qmgr is alive but busy (a
         * restart over a big queue). Falling back to reading a million
         * queue files would take minutes, so wait for it longer. */
        if (fd < 0 && strcmp(why, "timeout") == 0)
            fd = ipc_connect(path, "qmgr", CLI_BUSY_TIMEOUT_MS, &why);
        free(path);
        if (fd >= 0)
            return fd;
    }
    *why_r = why;
    return -1;
}

/*
 * A listing is a stream of frames, up to one per queued message: it is
 * read in large pieces (not two reads per frame), and each entry handed
 * to the callback borrows its strings from its frame.
 */
#define CLI_READ_PIECE (256 * 1024)

typedef struct cli_reader {
    int fd;
    buf_t in;
    size_t head;                /* start of the unread bytes in in */
    cli_qrcpt_t *rcpts;         /* reused recipient array */
    size_t cap;
} cli_reader_t;

/* cli_read_more - one read of at least want more bytes' room, waiting
 * at most CLI_IPC_TIMEOUT_MS for something to arrive */
static int cli_read_more(cli_reader_t *r, size_t want, const char **why_r)
{
    struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
    ssize_t n;

    if (r->head > 0) {
        buf_consume(&r->in, r->head);
        r->head = 0;
    }
    if (buf_reserve(&r->in, want > CLI_READ_PIECE ? want : CLI_READ_PIECE) < 0)
        return *why_r = "listing frame too large", -1;
    for (;;) {
        n = recv(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len - 1, MSG_DONTWAIT);
        if (n > 0) {
            r->in.len += (size_t)n;
            r->in.data[r->in.len] = 0;
            return 0;
        }
        if (n == 0)
            return *why_r = "connection closed", -1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return *why_r = strerror(errno), -1;
        int p = poll(&pfd, 1, CLI_IPC_TIMEOUT_MS);
        if (p == 0)
            return *why_r = "timeout", -1;
        if (p < 0 && errno != EINTR)
            return *why_r = "poll error", -1;
    }
}

/* cli_read_frame - the next frame, decoded and validated into m */
static int cli_read_frame(cli_reader_t *r, ipc_msg_t *m, const char **why_r)
{
    for (;;) {
        const unsigned char *h = (const unsigned char *)r->in.data + r->head;
        size_t have = r->in.len - r->head, want = IPC_HDR_LEN;

        if (have >= IPC_HDR_LEN) {
            uint32_t plen = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16
                | (uint32_t)h[3] << 24;

            if (plen > IPC_MAX_FRAME)
                return *why_r = "frame too large", -1;
            want = IPC_HDR_LEN + plen;
            if (have >= want) {
                r->head += want;
                return ipc_decode(h, want, m, why_r);
            }
        }
        if (cli_read_more(r, want - have, why_r) < 0)
            return -1;
    }
}

/* cli_entry_from_ipc - a QUEUE_ENTRY frame to an entry that borrows its
 * strings from m (the callback gets it const); -1 if malformed */
static int cli_entry_from_ipc(const ipc_msg_t *m, cli_qentry_t *e, cli_reader_t *r)
{
    ipc_view_t v = ipc_msg_view(m), g;
    const char *qid = ipc_get_str(v, IPC_A_QID);
    const char *queue = ipc_get_str(v, IPC_A_QUEUE);
    const char *sender = ipc_get_str(v, IPC_A_SENDER);
    uint64_t arrival, size, flags = 0;

    if (!qid || !queue || !sender || ipc_get_u64(v, IPC_A_ARRIVAL, &arrival) < 0
        || ipc_get_u64(v, IPC_A_SIZE, &size) < 0)
        return -1;
    (void)ipc_get_u64(v, IPC_A_FLAGS, &flags);
    memset(e, 0, sizeof(*e));
    e->qid = (char *)qid;
    e->queue = (char *)queue;
    e->sender = (char *)sender;
    e->arrival = (int64_t)arrival;
    e->size = size;
    e->forced_expire = (flags & CLI_QMGR_FLAG_FORCED_EXPIRE) != 0;
    for (size_t it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0;) {
        const char *addr = ipc_get_str(g, IPC_A_ADDR);
        const char *reason = ipc_get_str(g, IPC_A_REASON);

        if (addr == NULL)
            continue;
        if (e->nrcpts == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 16;
            r->rcpts = xreallocarray(r->rcpts, r->cap, sizeof(*r->rcpts));
        }
        r->rcpts[e->nrcpts].addr = (char *)addr;
        r->rcpts[e->nrcpts].reason = (char *)(reason ? reason : "");
        e->nrcpts++;
    }
    e->rcpts = r->rcpts;
    return 0;
}

/* cli_qmgr_list_read - the QUEUE_ENTRY stream up to LIST_END */
static int cli_qmgr_list_read(cli_reader_t *r, cli_entry_fn *fn, void *ctx, const char **why_r)
{
    for (;;) {
        cli_qentry_t e;
        ipc_msg_t m;

        if (cli_read_frame(r, &m, why_r) < 0)
            return -1;
        if (m.type == IPC_M_LIST_END && !(m.flags & IPC_FLAG_FD)) {
            ipc_msg_free(&m);
            return 0;
        }
        if (m.type != IPC_M_QUEUE_ENTRY || (m.flags & IPC_FLAG_FD)
            || cli_entry_from_ipc(&m, &e, r) < 0) {
            ipc_msg_free(&m);
            *why_r = "malformed qmgr listing reply";
            return -1;
        }
        fn(&e, ctx);
        ipc_msg_free(&m);
    }
}

/* cli_send_request - send m to qmgr and free it */
static int cli_send_request(int fd, ipc_msg_t *m, const char **why_r)
{
    int rc = ipc_send(fd, m, CLI_IPC_TIMEOUT_MS);

    if (rc < 0)
        *why_r = strerror(errno);
    ipc_msg_free(m);
    return rc;
}

/* cli_qmgr_list - QMGR_LIST and the stream of QUEUE_ENTRY replies */
int cli_qmgr_list(int fd, const char *qid, cli_entry_fn *fn, void *ctx, const char **why_r)
{
    cli_reader_t r = { .fd = fd };
    ipc_msg_t m;
    int rc;

    ipc_msg_init(&m, IPC_M_QMGR_LIST);
    if (qid)
        ipc_put_str(&m, IPC_A_QID, qid);
    if (cli_send_request(fd, &m, why_r) < 0)
        return -1;
    buf_init(&r.in, BUF_NOLIMIT);
    rc = cli_qmgr_list_read(&r, fn, ctx, why_r);
    buf_free(&r.in);
    free(r.rcpts);
    return rc;
}

/* cli_qmgr_control - one QMGR_CONTROL request and its reply */
int cli_qmgr_control(int fd, const char *op, const char *qid, const char *queue,
                     const char *site, uint64_t *count_r, const char **why_r)
{
    static char text[512];
    ipc_msg_t m;
    uint64_t status = 1;
    ipc_view_t v;

    ipc_msg_init(&m, IPC_M_QMGR_CONTROL);
    ipc_put_str(&m, IPC_A_OP, op);
    if (qid)
        ipc_put_str(&m, IPC_A_QID, qid);
    if (queue)
        ipc_put_str(&m, IPC_A_QUEUE, queue);
    if (site)
        ipc_put_str(&m, IPC_A_SITE, site);
    if (cli_send_request(fd, &m, why_r) < 0)
        return -1;
    if (ipc_recv(fd, &m, CLI_IPC_TIMEOUT_MS, why_r) < 0)
        return -1;
    if (m.type != IPC_M_CONTROL_REPLY) {
        ipc_msg_free(&m);
        *why_r = "unexpected reply from qmgr";
        return -1;
    }
    v = ipc_msg_view(&m);
    (void)ipc_get_u64(v, IPC_A_STATUS, &status);
    if (count_r && ipc_get_u64(v, IPC_A_COUNT, count_r) < 0)
        *count_r = 0;
    if (status != 0) {
        const char *t = ipc_get_str(v, IPC_A_TEXT);

        safe_cpy(text, sizeof(text), t ? t : "request failed");
        *why_r = text;
        ipc_msg_free(&m);
        return -1;
    }
    ipc_msg_free(&m);
    return 0;
}

/* cli_qscan_file - read one queue file into an entry and report it */
static void cli_qscan_file(const char *queue_dir, const char *queue, const char *qid,
                           cli_entry_fn *fn, void *ctx)
{
    char *path = xasprintf("%s/%s/%s", queue_dir, queue, qid);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    const char *why;
    qfile_t qf;
    cli_qentry_t e = {0};

    if (fd < 0) {
        /* Gone meanwhile (delivered, moved): not worth a word. */
        if (errno != ENOENT)
            msg_warn("open %s: %s", path, strerror(errno));
        free(path);
        return;
    }
    if (qfile_read(fd, &qf, &why) < 0) {
        msg_warn("%s: skipped: %s", path, why);
        close(fd);
        free(path);
        return;
    }
    close(fd);
    e.queue = xstrdup(queue);
    e.qid = xstrdup(qid);
    e.arrival = qf.arrival_sec;
    e.size = qf.content_size;
    e.sender = xstrdup(qf.sender ? qf.sender : "");
    for (size_t i = 0; i < qf.nrcpts; i++)
        if (qf.rcpts[i].status != QFILE_RCPT_DONE)
            cli_qentry_add_rcpt(&e, qf.rcpts[i].addr, "");
    qfile_free(&qf);
    fn(&e, ctx);
    cli_qentry_free(&e);
    free(path);
}

/* cli_qid_cmp - qsort order for queue ids (= arrival order) */
static int cli_qid_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* cli_qscan - the listing read from the files themselves */
int cli_qscan(const char *queue_dir, const char *const *queues, const char *qid,
              cli_entry_fn *fn, void *ctx)
{
    int found = 0;

    for (int q = 0; queues[q]; q++) {
        char *dir = xasprintf("%s/%s", queue_dir, queues[q]);
        DIR *d = opendir(dir);
        struct dirent *de;
        char **ids = NULL;
        size_t n = 0;

        if (d == NULL) {
            if (errno != ENOENT) {
                msg_warn("open directory %s: %s", dir, strerror(errno));
                found = -1;
            }
            free(dir);
            continue;
        }
        while ((de = readdir(d)) != NULL) {
            if (!qid_valid(de->d_name) || (qid && strcmp(qid, de->d_name) != 0))
                continue;
            ids = xreallocarray(ids, n + 1, sizeof(*ids));
            ids[n++] = xstrdup(de->d_name);
        }
        closedir(d);
        if (n > 1)
            qsort(ids, n, sizeof(*ids), cli_qid_cmp);
        for (size_t i = 0; i < n; i++) {
            cli_qscan_file(queue_dir, queues[q], ids[i], fn, ctx);
            free(ids[i]);
            if (found >= 0)
                found++;
        }
        free(ids);
        free(dir);
    }
    return found;
}

/* cli_qfind - which queue holds QID? */
const char *cli_qfind(const char *queue_dir, const char *qid, const char *const *queues)
{
    if (queues == NULL)
        queues = CLI_QUEUES_ALL;
    for (int q = 0; queues[q]; q++) {
        char *path = xasprintf("%s/%s/%s", queue_dir, queues[q], qid);
        struct stat st;
        int ok = lstat(path, &st) == 0 && S_ISREG(st.st_mode);

        free(path);
        if (ok)
            return queues[q];
    }
    return NULL;
}

/* cli_index_dirty - make qmgr rebuild its index at its next start */
void cli_index_dirty(const char *queue_dir)
{
    char *path = xasprintf("%s/%s", queue_dir, CLI_QINDEX_FILE);

    /* qindex_open finds no clean marker in a new index and qmgr then
     * rebuilds it from the files; removing the cache loses nothing. */
    if (unlink(path) < 0 && errno != ENOENT)
        msg_warn("remove %s: %s (run storksuper -s after starting)", path, strerror(errno));
    free(path);
}
