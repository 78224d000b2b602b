/* local_file - append to "/file" in mbox form (only when allow_mail_to_files allows) */
#include "local.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_LOCK_TRIES 20         /* x 0.5 s */
#define LOCAL_LINE_CHUNK 4096

/* write_all - the whole buffer or -1 */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* is_from_line - ">*From " at the start of a line (mboxrd quoting) */
static bool is_from_line(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && p[i] == '>')
        i++;
    return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* append_message - the From_ line, the message with >From quoting, a blank line */
static int append_message(int fd, const local_op_t *op)
{
    local_src_t src = {.op = op};
    char block[8192];
    buf_t line;
    time_t now = time(NULL);
    char date[64];
    bool bol = true;
    ssize_t n;
    int ret = 0;

    buf_init(&line, BUF_NOLIMIT);
    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", localtime(&now));
    buf_printf(&line, "From %s  %s\n", op->sender && *op->sender ? op->sender : "MAILER-DAEMON",
               date);
    if (write_all(fd, line.data, line.len) < 0)
        ret = -1;
    buf_reset(&line);
    while (ret == 0 && (n = local_src_next(&src, block, sizeof(block))) > 0) {
        for (ssize_t i = 0; i < n && ret == 0; i++) {
            buf_putc(&line, (unsigned char)block[i]);
            if (block[i] != '\n' && line.len < LOCAL_LINE_CHUNK)
                continue;
            if (bol && is_from_line(line.data, line.len) && write_all(fd, ">", 1) < 0)
                ret = -1;
            if (ret == 0 && write_all(fd, line.data, line.len) < 0)
                ret = -1;
            bol = block[i] == '\n';
            buf_reset(&line);
        }
        if (n < 0)
            ret = -1;
    }
    if (ret == 0 && line.len > 0) {
        if ((bol && is_from_line(line.data, line.len) && write_all(fd, ">", 1) < 0)
            || write_all(fd, line.data, line.len) < 0 || write_all(fd, "\n", 1) < 0)
            ret = -1;
    }
    if (ret == 0 && write_all(fd, "\n", 1) < 0)
        ret = -1;
    buf_free(&line);
    return ret;
}

/* local_file_exec - append the message to op->path under an exclusive lock */
void local_file_exec(const local_op_t *op, local_result_t *r)
{
    struct stat st;
    int fd, tries = 0;

    fd = open(op->path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0) {
        local_result_set(r, LOCAL_DEFER, errno == EDQUOT ? "4.2.2" : "4.2.0", "cannot open %s: %s",
                         op->path, strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        local_result_set(r, LOCAL_BOUNCE, "5.2.0", "%s is not a regular file with one link",
                         op->path);
        close(fd);
        return;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (++tries >= LOCAL_LOCK_TRIES) {
            local_result_set(r, LOCAL_DEFER, "4.2.0", "cannot lock %s", op->path);
            close(fd);
            return;
        }
        usleep(500000);
    }
    /* The size to roll back to is the one under the lock. */
    if (fstat(fd, &st) < 0) {
        local_result_set(r, LOCAL_DEFER, "4.2.0", "fstat %s: %s", op->path, strerror(errno));
        close(fd);
        return;
    }
    if (append_message(fd, op) < 0 || fsync(fd) < 0) {
        int err = errno;

        /* Leave no partial message behind. */
        if (ftruncate(fd, st.st_size) < 0)
            msg_warn("%s: cannot truncate after a failed delivery: %m", op->path);
        local_result_set(r, LOCAL_DEFER,
                         err == EDQUOT || err == EFBIG ? "4.2.2" : err == ENOSPC ? "4.3.1" : "4.2.0",
                         "write %s: %s", op->path, strerror(err));
    } else {
        local_result_set(r, LOCAL_OK, "2.0.0", "delivered to file: %s", op->path);
    }
    close(fd);
}
