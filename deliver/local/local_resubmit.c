/*
 * local_resubmit - alias and .forward targets in remote domains: a new
 * queue file with the same content (plus Delivered-To: of the expanded
 * recipient, so a forwarding loop that comes back is caught), the same
 * sender, and the remote addresses as recipients; then QMGR_NEW.
 * The original recipient counts as delivered once the new file is
 * durable (fsync'd and its directory entry too).
 */
#include "local.h"
#include "ipc/ipc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define LOCAL_QMGR_TIMEOUT_MS 5000

/* copy_content - the original content into the new queue file */
static int copy_content(local_msg_t *msg, qfile_writer_t *w, const char **why_r)
{
    char block[65536];
    uint64_t left = msg->content_size;
    off_t off = msg->content_offset;

    while (left > 0) {
        size_t want = left < sizeof(block) ? (size_t)left : sizeof(block);
        ssize_t n = pread(msg->fd, block, want, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *why_r = n < 0 ? strerror(errno) : "queue file is truncated";
            return -1;
        }
        if (qfile_write_content(w, block, (size_t)n) < 0) {
            *why_r = strerror(errno);
            return -1;
        }
        off += n;
        left -= (uint64_t)n;
    }
    return 0;
}

/* write_queue_file - the new message; its id in qid_r */
static int write_queue_file(local_exp_t *x, char *qid_r, size_t qid_size, const char **why_r)
{
    local_msg_t *msg = x->msg;
    qfile_writer_t *w = NULL;
    struct timeval tv;
    buf_t hdr;
    int ret = -1;

    if (qfile_create(".", &w, why_r) < 0)
        return -1;
    gettimeofday(&tv, NULL);
    buf_init(&hdr, BUF_NOLIMIT);
    buf_printf(&hdr, "Delivered-To: %s\r\n", x->orig);
    for (char *p = hdr.data; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\r' && *p != '\n')
            *p = '?';
    if (qfile_put_arrival(w, tv.tv_sec, (int32_t)tv.tv_usec) < 0
        || qfile_put_sender(w, msg->sender ? msg->sender : "") < 0) {
        *why_r = "cannot write envelope";
        goto out;
    }
    for (size_t i = 0; i < msg->qf.nattrs; i++)
        if (qfile_put_attr(w, msg->qf.attr_names[i], msg->qf.attr_values[i]) < 0) {
            *why_r = "cannot write envelope";
            goto out;
        }
    for (size_t i = 0; i < x->n_remote; i++)
        if (qfile_put_rcpt(w, x->remote[i], "", 0) < 0) {
            *why_r = "cannot write envelope";
            goto out;
        }
    if (qfile_begin_content(w) < 0 || qfile_write_content(w, hdr.data, hdr.len) < 0) {
        *why_r = strerror(errno);
        goto out;
    }
    if (copy_content(msg, w, why_r) < 0 || qfile_finish(w, why_r) < 0 || qfile_sync(w, why_r) < 0
        || qfile_commit(w, why_r) < 0)
        goto out;
    if (queue_commit_dir(".", QUEUE_INCOMING, qfile_name_needs_dir_sync(w)) < 0) {
        *why_r = strerror(errno);
        goto out;
    }
    snprintf(qid_r, qid_size, "%s", qfile_writer_qid(w));
    ret = 0;
out:
    if (ret < 0)
        qfile_abort(&w);
    else
        qfile_writer_free(&w);
    buf_free(&hdr);
    return ret;
}

/* notify_qmgr - QMGR_NEW, so the new file goes out without waiting for a scan */
static void notify_qmgr(const char *qid)
{
    static const char *const paths[] = {"private/qmgr", "public/qmgr"};
    const char *why = "no qmgr socket";
    ipc_msg_t m;

    for (size_t i = 0; i < 2; i++) {
        int fd = ipc_connect(paths[i], "qmgr", LOCAL_QMGR_TIMEOUT_MS, &why);

        if (fd < 0)
            continue;
        ipc_msg_init(&m, IPC_M_QMGR_NEW);
        ipc_put_str(&m, IPC_A_QID, qid);
        if (ipc_send(fd, &m, LOCAL_QMGR_TIMEOUT_MS) < 0)
            why = strerror(errno);
        ipc_msg_free(&m);
        close(fd);
        return;
    }
    msg_warn("%s: cannot notify qmgr: %s (it will find the file on its next scan)", qid, why);
}

/* local_resubmit - queue the remote targets of x as one new message */
void local_resubmit(local_exp_t *x)
{
    double start = local_now();
    char qid[QID_BUFSIZE + 1];
    const char *why = NULL;
    local_result_t r;
    bool ok;

    local_result_init(&r);
    ok = write_queue_file(x, qid, sizeof(qid), &why) == 0;
    if (ok) {
        msg_info("%s: forwarded as %s", x->msg->qid, qid);
        notify_qmgr(qid);
        local_result_set(&r, LOCAL_OK, "2.0.0", "forwarded as %s", qid);
    } else {
        msg_warn("%s: cannot resubmit for %s: %s", x->msg->qid, x->orig, why);
        local_result_set(&r, LOCAL_DEFER, "4.3.0", "cannot queue forwarded mail: %s", why);
    }
    /* The leaves were counted when found; local_exp_leaf counts again. */
    x->leaves -= x->n_remote;
    for (size_t i = 0; i < x->n_remote; i++) {
        local_exp_leaf(x, x->remote[i], "local", &r, start);
        if (ok)
            local_exp_done(x, 'R', x->remote[i]);
    }
    local_result_free(&r);
}
