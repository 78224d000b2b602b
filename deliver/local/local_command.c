/* local_command - deliver to "|command" (only when allow_mail_to_commands allows) */
#include "local.h"
#include "service/service.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_CMD_OUTPUT_MAX 512    /* command output kept for the bounce text */

/* local_src_next - the next block of the message as commands and files
 * see it (header lines, then the content with LF line ends); 0 at the
 * end, -1 on a read error */
ssize_t local_src_next(local_src_t *s, char *out, size_t size)
{
    size_t plen = s->op->prepend ? strlen(s->op->prepend) : 0;
    size_t o = 0;
    char in[8192];
    ssize_t n;

    if (s->prepend_done < plen) {
        size_t k = plen - s->prepend_done < size ? plen - s->prepend_done : size;

        memcpy(out, s->op->prepend + s->prepend_done, k);
        s->prepend_done += k;
        return (ssize_t)k;
    }
    if (s->done >= s->op->length)
        return s->held_cr ? (s->held_cr = false, out[0] = '\r', 1) : 0;
    n = pread(s->op->fd, in, sizeof(in) < size - 1 ? sizeof(in) : size - 1,
              s->op->offset + (off_t)s->done);
    if (n <= 0)
        return -1;
    if ((uint64_t)n > s->op->length - s->done)
        n = (ssize_t)(s->op->length - s->done);
    s->done += (uint64_t)n;
    /* CR LF → LF, also across blocks (a trailing CR waits for the next) */
    for (ssize_t i = 0; i < n; i++) {
        if (s->held_cr) {
            s->held_cr = false;
            if (in[i] != '\n')
                out[o++] = '\r';
        }
        if (in[i] == '\r' && i + 1 == n) {
            s->held_cr = true;
            continue;
        }
        if (in[i] == '\r' && in[i + 1] == '\n')
            continue;
        out[o++] = in[i];
    }
    return (ssize_t)o;
}

/* sysexit_dsn - Postfix's reading of sendmail-style exit codes */
static void sysexit_dsn(int code, const char **dsn, local_status_t *st)
{
    *st = LOCAL_BOUNCE;
    switch (code) {
    case EX_TEMPFAIL: case EX_OSERR: *st = LOCAL_DEFER; *dsn = "4.3.0"; break;
    case EX_NOUSER: *dsn = "5.1.1"; break;
    case EX_NOHOST: *dsn = "5.1.2"; break;
    case EX_DATAERR: *dsn = "5.6.0"; break;
    case EX_CANTCREAT: *dsn = "5.2.0"; break;
    case EX_NOPERM: *dsn = "5.7.0"; break;
    case EX_PROTOCOL: *dsn = "5.5.0"; break;
    case EX_CONFIG: *dsn = "5.3.5"; break;
    default: *dsn = "5.3.0"; break;
    }
}

/* cmd_child - the command process: /bin/sh -c with a small environment */
static void cmd_child(const local_op_t *op, int in_fd, int out_fd)
{
    struct passwd *pw = getpwuid(getuid());
    const char *home = pw ? pw->pw_dir : "/";
    char *env[8];
    int n = 0;

    setsid();
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(EX_OSERR);
    if (chdir(home) < 0 && chdir("/") < 0)
        _exit(EX_OSERR);
    env[n++] = xasprintf("HOME=%s", home);
    env[n++] = xasprintf("USER=%s", pw ? pw->pw_name : "nobody");
    env[n++] = xasprintf("LOGNAME=%s", pw ? pw->pw_name : "nobody");
    env[n++] = xasprintf("SHELL=/bin/sh");
    env[n++] = xasprintf("PATH=/usr/bin:/bin");
    env[n++] = xasprintf("SENDER=%s", op->sender ? op->sender : "");
    env[n++] = xasprintf("RECIPIENT=%s", op->rcpt ? op->rcpt : "");
    env[n] = NULL;
    execle("/bin/sh", "sh", "-c", op->command, (char *)NULL, env);
    _exit(EX_OSERR);
}

/* local_command_exec - run the command with the message on stdin */
void local_command_exec(const local_op_t *op, local_result_t *r)
{
    local_src_t src = {.op = op};
    int in[2], out[2], status = 0;
    char block[8192], output[LOCAL_CMD_OUTPUT_MAX + 1];
    size_t out_len = 0, pend = 0, pend_off = 0;
    time_t deadline = time(NULL) + (op->time_limit > 0 ? op->time_limit : 1000);
    bool in_open = true, out_open = true, timed_out = false, src_err = false;
    pid_t pid;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "pipe: %s", strerror(errno));
        return;
    }
    if ((pid = fork()) < 0) {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "fork: %s", strerror(errno));
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        return;
    }
    if (pid == 0)
        cmd_child(op, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    while ((in_open || out_open) && !timed_out) {
        struct pollfd pfd[2] = {{.fd = in_open ? in[1] : -1, .events = POLLOUT},
                                {.fd = out_open ? out[0] : -1, .events = POLLIN}};
        time_t left = deadline - time(NULL);

        if (left <= 0 || poll(pfd, 2, (int)(left > 60 ? 60000 : left * 1000)) < 0) {
            timed_out = left <= 0;
            if (!timed_out && errno == EINTR)
                continue;
            break;
        }
        if (in_open && (pfd[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            if (pend == 0) {
                ssize_t n = local_src_next(&src, block, sizeof(block));

                if (n < 0)
                    src_err = true;
                if (n <= 0) {
                    close(in[1]);
                    in_open = false;
                } else {
                    pend = (size_t)n;
                    pend_off = 0;
                }
            }
            if (pend > 0) {
                ssize_t w = write(in[1], block + pend_off, pend);

                if (w > 0) {
                    pend -= (size_t)w;
                    pend_off += (size_t)w;
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    close(in[1]);   /* the command stopped reading: its exit status decides */
                    in_open = false;
                }
            }
        }
        if (out_open && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP))) {
            char tmp[1024];
            ssize_t n = read(out[0], tmp, sizeof(tmp));

            if (n <= 0) {
                close(out[0]);
                out_open = false;
            } else if (out_len < LOCAL_CMD_OUTPUT_MAX) {
                size_t k = (size_t)n < LOCAL_CMD_OUTPUT_MAX - out_len
                    ? (size_t)n : LOCAL_CMD_OUTPUT_MAX - out_len;

                memcpy(output + out_len, tmp, k);
                out_len += k;
            }
        }
    }
    if (in_open)
        close(in[1]);
    if (out_open)
        close(out[0]);
    if (timed_out)
        kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    output[out_len] = 0;
    for (size_t i = 0; i < out_len; i++)
        if ((unsigned char)output[i] < 0x20)
            output[i] = ' ';
    if (timed_out) {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "command time limit exceeded: \"%s\"",
                         op->command);
    } else if (src_err) {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "cannot read the queue file");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        local_result_set(r, LOCAL_OK, "2.0.0", "delivered to command: %s", op->command);
    } else if (WIFEXITED(status)) {
        const char *dsn;
        local_status_t s;

        sysexit_dsn(WEXITSTATUS(status), &dsn, &s);
        local_result_set(r, s, dsn, "Command died with status %d: \"%s\"%s%s",
                         WEXITSTATUS(status), op->command, out_len ? ". Command output: " : "",
                         output);
    } else {
        local_result_set(r, LOCAL_DEFER, "4.3.0", "Command died with signal %d: \"%s\"",
                         WTERMSIG(status), op->command);
    }
}

/* owner_ids - who runs an alias's (default_privs) or a user's command */
static int owner_ids(local_exp_t *x, const local_user_t *owner, uid_t *uid, gid_t *gid,
                     local_result_t *r)
{
    if (!x->st->root) {
        *uid = geteuid();
        *gid = getegid();
    } else if (owner) {
        *uid = owner->uid;
        *gid = owner->gid;
    } else if (privdrop_lookup(x->st->p.default_privs, uid, gid) < 0 || *uid == 0) {
        local_result_set(r, LOCAL_DEFER, "4.3.5", "default_privs \"%s\" is not an unprivileged user",
                         x->st->p.default_privs);
        return -1;
    }
    return 0;
}

/* local_command_target - deliver to |command as its owner */
void local_command_target(local_exp_t *x, const char *cmd, const local_user_t *owner,
                          const char *addr)
{
    double start = local_now();
    local_result_t r;
    local_op_t op;
    buf_t prepend;

    memset(&op, 0, sizeof(op));
    local_result_init(&r);
    buf_init(&prepend, BUF_NOLIMIT);
    if (owner_ids(x, owner, &op.uid, &op.gid, &r) == 0) {
        op.op = "command";
        op.command = cmd;
        local_op_message(&op, x, addr, &prepend);
        local_uid_run(x->st, &op, &r);
        if (r.status == LOCAL_OK)
            local_exp_done(x, 'C', cmd);
    }
    local_exp_leaf(x, addr, "local", &r, start);
    buf_free(&prepend);
    local_result_free(&r);
}

/* local_file_target - deliver to /file (or /dir/ as a Maildir) as its owner */
void local_file_target(local_exp_t *x, const char *path, const local_user_t *owner,
                       const char *addr)
{
    double start = local_now();
    local_result_t r;
    local_op_t op;
    buf_t prepend;
    size_t len = strlen(path);

    memset(&op, 0, sizeof(op));
    local_result_init(&r);
    buf_init(&prepend, BUF_NOLIMIT);
    if (owner_ids(x, owner, &op.uid, &op.gid, &r) == 0) {
        /* Postfix: a path ending in '/' is a Maildir. */
        op.op = len > 1 && path[len - 1] == '/' ? "maildir" : "file";
        op.maildir = path;
        op.path = path;
        local_op_message(&op, x, addr, &prepend);
        local_uid_run(x->st, &op, &r);
        if (r.status == LOCAL_OK)
            local_exp_done(x, 'P', path);
    }
    local_exp_leaf(x, addr, "local", &r, start);
    buf_free(&prepend);
    local_result_free(&r);
}
