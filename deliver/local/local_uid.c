/*
 * local_uid - the privileged step: run a delivery as the mailbox owner
 *
 * When local runs as root, every operation that touches a user's files
 * (write a Maildir, read ~/.forward, run a |command, append to a /file)
 * happens in a worker child that has dropped ALL ids to that user
 * (setgroups, setgid, setuid, then checks that root cannot come back).
 * Workers stay alive per uid, so forks scale with users, not messages:
 * the parent keeps at most local_worker_limit of them (the least
 * recently used goes first) and closes one after local_worker_idle_time
 * seconds without work. The parent passes the open queue file with
 * each LOCAL_OP (SCM_RIGHTS); the worker replies LOCAL_RESULT.
 * The operations are an enumerated set; the worker never takes a path
 * or command it did not get from its (root) parent.
 * Without root (a private instance) the same operations run in-process
 * as the current user; callers refuse other users before getting here.
 */
#include "local.h"
#include "ipc/ipc.h"
#include "maildir/maildir_deliver.h"
#include "service/service.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOCAL_FORWARD_MAX (64 * 1024)
#define LOCAL_WORKER_SEND_MS 30000
#define LOCAL_POOL_TICK_MS 5000

typedef struct local_worker {
    uid_t uid;
    gid_t gid;
    pid_t pid;
    int fd;
    double last_used;
} local_worker_t;

struct local_uid_pool {
    local_state_t *st;
    local_worker_t *w;
    size_t n;
};

/* worker_close - end a worker: EOF tells it to exit */
static void worker_close(local_uid_pool_t *pool, size_t i)
{
    close(pool->w[i].fd);
    (void)waitpid(pool->w[i].pid, NULL, WNOHANG);
    pool->w[i] = pool->w[--pool->n];
}

/* pool_tick - close idle workers and reap the exited ones */
static void pool_tick(event_loop_t *loop, void *ctx)
{
    local_uid_pool_t *pool = ctx;
    double now = local_now();

    for (size_t i = 0; i < pool->n; ) {
        if (now - pool->w[i].last_used > (double)pool->st->p.worker_idle_time)
            worker_close(pool, i);
        else
            i++;
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    event_timer_add(loop, LOCAL_POOL_TICK_MS, pool_tick, pool);
}

local_uid_pool_t *local_uid_pool_new(local_state_t *st)
{
    local_uid_pool_t *pool = xcalloc(1, sizeof(*pool));

    pool->st = st;
    if (st->root)
        event_timer_add(st->loop, LOCAL_POOL_TICK_MS, pool_tick, pool);
    return pool;
}

void local_uid_pool_free(local_uid_pool_t **pool)
{
    if (*pool == NULL)
        return;
    while ((*pool)->n > 0)
        worker_close(*pool, 0);
    free((*pool)->w);
    xfreep(pool);
}

/* ---------------------------------------------------------------- */
/* The operations (run with the target ids).                         */

/* op_maildir - one Maildir delivery */
static void op_maildir(const local_op_t *op, local_result_t *r)
{
    maildir_input_t in = {
        .prepend = op->prepend,
        .prepend_len = op->prepend ? strlen(op->prepend) : 0,
        .fd = op->fd,
        .offset = op->offset,
        .length = op->length,
        .crlf_to_lf = true,
        .quota = op->quota,
    };
    maildir_result_t res;

    maildir_result_init(&res);
    if (maildir_deliver(op->maildir, &in, &res) == 0)
        local_result_set(r, LOCAL_OK, "2.0.0", "delivered to maildir");
    else
        local_result_set(r, LOCAL_DEFER, res.dsn, "maildir delivery failed: %s",
                         buf_cstr(&res.why));
    maildir_result_free(&res);
}

/* op_forward - read ~/.forward: OK with its text, BOUNCE if absent */
static void op_forward(const local_op_t *op, local_result_t *r)
{
    struct stat st;
    char block[4096];
    ssize_t n;
    int fd;

    /* O_NONBLOCK: a FIFO planted as .forward must not hang us. */
    if ((fd = open(op->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EACCES)
            local_result_set(r, LOCAL_BOUNCE, "5.0.0", "no .forward");
        else
            local_result_set(r, LOCAL_DEFER, "4.3.0", "cannot open %s: %s", op->path,
                             strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)
        || (st.st_uid != getuid() && st.st_uid != 0) || (st.st_mode & 022)) {
        /* Postfix's rule: only a file the user owns and alone may write. */
        msg_warn("%s: not a regular file owned and writable only by uid %ld: ignored",
                 op->path, (long)getuid());
        local_result_set(r, LOCAL_BOUNCE, "5.0.0", "unusable .forward");
        close(fd);
        return;
    }
    local_result_set(r, LOCAL_OK, "2.0.0", "%s", "");
    while ((n = read(fd, block, sizeof(block))) > 0) {
        if (r->text.len + (size_t)n > LOCAL_FORWARD_MAX || memchr(block, 0, (size_t)n)) {
            local_result_set(r, LOCAL_DEFER, "4.3.0", "%s is too large or not text", op->path);
            close(fd);
            return;
        }
        buf_append(&r->text, block, (size_t)n);
    }
    if (n < 0)
        local_result_set(r, LOCAL_DEFER, "4.3.0", "read %s: %s", op->path, strerror(errno));
    close(fd);
}

/* local_op_exec - perform op with the current ids */
void local_op_exec(const local_op_t *op, local_result_t *r)
{
    if (strcmp(op->op, "maildir") == 0 && op->maildir)
        op_maildir(op, r);
    else if (strcmp(op->op, "forward") == 0 && op->path)
        op_forward(op, r);
    else if (strcmp(op->op, "command") == 0 && op->command)
        local_command_exec(op, r);
    else if (strcmp(op->op, "file") == 0 && op->path)
        local_file_exec(op, r);
    else
        local_result_set(r, LOCAL_DEFER, "4.3.0", "local: bad worker operation");
}

/* ---------------------------------------------------------------- */
/* The wire form of an operation.                                    */

static void op_encode(const local_op_t *op, ipc_msg_t *m)
{
    ipc_msg_init(m, IPC_M_LOCAL_OP);
    ipc_put_str(m, IPC_A_OP, op->op);
    if (op->maildir)
        ipc_put_str(m, IPC_A_MAILDIR, op->maildir);
    if (op->path)
        ipc_put_str(m, IPC_A_PATH, op->path);
    if (op->command)
        ipc_put_str(m, IPC_A_COMMAND, op->command);
    if (op->prepend)
        ipc_put_str(m, IPC_A_TEXT, op->prepend);
    if (op->sender)
        ipc_put_str(m, IPC_A_SENDER, op->sender);
    if (op->rcpt)
        ipc_put_str(m, IPC_A_ADDR, op->rcpt);
    ipc_put_u64(m, IPC_A_CONTENT_OFFSET, (uint64_t)op->offset);
    ipc_put_u64(m, IPC_A_CONTENT_SIZE, op->length);
    ipc_put_u64(m, IPC_A_QUOTA, op->quota);
    if (op->fd >= 0)
        ipc_set_fd(m, dup(op->fd));
}

static void op_decode(const ipc_msg_t *m, local_op_t *op)
{
    ipc_view_t v = ipc_msg_view(m);
    uint64_t u = 0;

    memset(op, 0, sizeof(*op));
    op->op = ipc_get_str(v, IPC_A_OP);
    op->maildir = ipc_get_str(v, IPC_A_MAILDIR);
    op->path = ipc_get_str(v, IPC_A_PATH);
    op->command = ipc_get_str(v, IPC_A_COMMAND);
    op->prepend = ipc_get_str(v, IPC_A_TEXT);
    op->sender = ipc_get_str(v, IPC_A_SENDER);
    op->rcpt = ipc_get_str(v, IPC_A_ADDR);
    (void)ipc_get_u64(v, IPC_A_CONTENT_OFFSET, &u);
    op->offset = u > INT64_MAX ? 0 : (off_t)u;
    (void)ipc_get_u64(v, IPC_A_CONTENT_SIZE, &op->length);
    (void)ipc_get_u64(v, IPC_A_QUOTA, &op->quota);
    op->fd = m->fd;
    op->uid = getuid();
    op->gid = getgid();
}

/* ---------------------------------------------------------------- */
/* The worker (child) side.                                          */

/* worker_drop - become uid/gid for good; exits if root could come back */
static void worker_drop(uid_t uid, gid_t gid)
{
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        msg_error("local worker: cannot switch to uid %ld gid %ld: %m", (long)uid, (long)gid);
        _exit(1);
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0 || getuid() != uid || geteuid() != uid
                     || getegid() != gid)) {
        msg_error("local worker: root privileges could be regained; refusing to run");
        _exit(1);
    }
}

/* worker_main - serve LOCAL_OP until EOF or idle timeout */
static void worker_main(local_state_t *st, int fd, uid_t uid, gid_t gid)
{
    sigset_t none;
    int idle_ms = (int)(st->p.worker_idle_time * 2 + 10) * 1000;

    /* The event loop blocked its signals; a worker wants the defaults. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    worker_drop(uid, gid);
    /* The death signal is cleared by the id change: arm it again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(0);
    for (;;) {
        ipc_msg_t m, reply;
        local_op_t op;
        local_result_t r;
        const char *why;

        if (ipc_recv(fd, &m, idle_ms, &why) < 0)
            _exit(0);
        if (m.type != IPC_M_LOCAL_OP) {
            ipc_msg_free(&m);
            _exit(1);
        }
        op_decode(&m, &op);
        op.time_limit = st->p.command_time_limit;
        local_result_init(&r);
        local_op_exec(&op, &r);
        ipc_msg_init(&reply, IPC_M_LOCAL_RESULT);
        ipc_put_u64(&reply, IPC_A_STATUS, (uint64_t)r.status);
        ipc_put_str(&reply, IPC_A_DSN_STATUS, r.dsn[0] ? r.dsn : "4.3.0");
        ipc_put_str(&reply, IPC_A_TEXT, buf_cstr(&r.text));
        if (ipc_send(fd, &reply, LOCAL_WORKER_SEND_MS) < 0)
            _exit(1);
        ipc_msg_free(&reply);
        ipc_msg_free(&m);
        local_result_free(&r);
    }
}

/* worker_spawn - fork a worker for uid/gid; -1 on failure */
static int worker_spawn(local_uid_pool_t *pool, uid_t uid, gid_t gid, local_worker_t *w)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if ((pid = fork()) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* No descriptor of the parent's clients or other workers stays. */
        close(sv[0]);
        for (size_t i = 0; i < pool->n; i++)
            close(pool->w[i].fd);
        close(SERVICE_STATUS_FD);
        close(SERVICE_LISTEN_FD);
        if (pool->st->client_fd >= 0)
            close(pool->st->client_fd);
        worker_main(pool->st, sv[1], uid, gid);
        _exit(0);
    }
    close(sv[1]);
    w->uid = uid;
    w->gid = gid;
    w->pid = pid;
    w->fd = sv[0];
    w->last_used = local_now();
    return 0;
}

/* worker_get - the worker for uid/gid, started if needed */
static local_worker_t *worker_get(local_uid_pool_t *pool, uid_t uid, gid_t gid)
{
    local_worker_t w;
    size_t lru = 0;

    for (size_t i = 0; i < pool->n; i++)
        if (pool->w[i].uid == uid && pool->w[i].gid == gid)
            return &pool->w[i];
    if (pool->n >= (size_t)pool->st->p.worker_limit && pool->n > 0) {
        for (size_t i = 1; i < pool->n; i++)
            if (pool->w[i].last_used < pool->w[lru].last_used)
                lru = i;
        worker_close(pool, lru);
    }
    if (worker_spawn(pool, uid, gid, &w) < 0)
        return NULL;
    pool->w = xreallocarray(pool->w, pool->n + 1, sizeof(*pool->w));
    pool->w[pool->n] = w;
    return &pool->w[pool->n++];
}

/* local_uid_run - run op as its uid: a worker when root, in-process if not */
void local_uid_run(local_state_t *st, const local_op_t *op, local_result_t *r)
{
    local_uid_pool_t *pool = st->pool;
    local_worker_t *w = NULL;
    ipc_msg_t m, reply;
    const char *why = "cannot start a worker";
    uint64_t status;
    int send_ok = -1;

    if (!st->root) {
        local_op_t copy = *op;

        copy.time_limit = st->p.command_time_limit;
        local_op_exec(&copy, r);
        return;
    }
    if (op->uid == 0) {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "refusing to deliver as root");
        return;
    }
    op_encode(op, &m);
    /* One retry when the send fails: an idle worker may have just gone,
     * and a frame it never read cannot have been delivered. */
    for (int attempt = 0; attempt < 2 && send_ok < 0; attempt++) {
        if ((w = worker_get(pool, op->uid, op->gid)) == NULL)
            break;
        if ((send_ok = ipc_send(w->fd, &m, LOCAL_WORKER_SEND_MS)) < 0) {
            why = strerror(errno);
            worker_close(pool, (size_t)(w - pool->w));
            w = NULL;
        }
    }
    ipc_msg_free(&m);
    if (send_ok < 0 || w == NULL) {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "local delivery worker: %s", why);
        return;
    }
    if (ipc_recv(w->fd, &reply, (int)(st->p.command_time_limit + 120) * 1000, &why) < 0
        || (reply.type != IPC_M_LOCAL_RESULT && (ipc_msg_free(&reply), why = "unexpected reply"))) {
        msg_warn("local delivery worker for uid %ld failed: %s", (long)op->uid, why);
        local_result_set(r, LOCAL_DEFER, "4.3.0", "local delivery worker failed: %s", why);
        kill(w->pid, SIGKILL);
        worker_close(pool, (size_t)(w - pool->w));
        return;
    }
    w->last_used = local_now();
    {
        ipc_view_t v = ipc_msg_view(&reply);

        (void)ipc_get_u64(v, IPC_A_STATUS, &status);
        if (status > LOCAL_BOUNCE)
            status = LOCAL_DEFER;
        local_result_set(r, (local_status_t)status, ipc_get_str(v, IPC_A_DSN_STATUS), "%s",
                         ipc_get_str(v, IPC_A_TEXT));
    }
    ipc_msg_free(&reply);
}
