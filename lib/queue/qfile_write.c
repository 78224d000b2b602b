/*
 * qfile_write - the queue-file writer: buffered records, back-patched
 * content length, END record, then the commit.
 *
 * In incoming/ a file is written under its final name and marked
 * complete by its owner-execute bit, set just before the one fsync that
 * makes content, mode and name durable together (Postfix's scheme). On
 * Linux file systems (ext4 with or without a journal, XFS, btrfs) the
 * fsync of a newly created file also makes its directory entry durable,
 * so the 250 waits for one flush, not two; queue_directory_fsync = yes
 * adds the directory fsync for file systems that do not promise that.
 * A file reused from recycle/ (qfile_recycle.c) got its name by a
 * rename, which its fsync does not cover: the committer fsyncs
 * incoming/ too (qfile_name_needs_dir_sync).
 * Elsewhere (maildrop/, written by sendmail as the user) the file is
 * written as t.QID and renamed, and the caller fsyncs the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/qfile_rec.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QFILE_WBUF_FLUSH (64 * 1024)
#define QFILE_CREATE_TRIES 20

typedef enum { QW_ENVELOPE, QW_CONTENT, QW_FINISHED, QW_COMMITTED } qw_state_t;

struct qfile_writer {
    int fd;
    char qid[QID_BUFSIZE];
    char *tmp_path;             /* the name written: DIR/SUBDIR/t.QID or, direct, the final one */
    char *final_path;           /* DIR/SUBDIR/QID */
    bool direct;                /* incoming/: final name, completion by mode */
    bool recycled;              /* a spent file renamed from recycle/ */
    buf_t out;                  /* pending bytes, written at QFILE_WBUF_FLUSH */
    off_t written;              /* bytes already written to fd */
    off_t content_len_at;       /* file offset of the 'M' record's u64 */
    uint64_t content_size;
    qw_state_t state;
    const char *why;            /* first error: later calls fail with it */
};

static bool qfile_dir_sync;

/* qfile_set_dir_sync - queue_directory_fsync (per process) */
void qfile_set_dir_sync(bool on)
{
    qfile_dir_sync = on;
}

/* qfile_create - a new queue file in incoming/ */
int qfile_create(const char *queue_dir, qfile_writer_t **w_r, const char **why_r)
{
    return qfile_create_in(queue_dir, QUEUE_INCOMING, w_r, why_r);
}

/* qfile_create_in - a new queue file, O_EXCL, retried: incoming/QID
 * (incomplete until qfile_sync) or SUBDIR/t.QID */
int qfile_create_in(const char *queue_dir, const char *subdir, qfile_writer_t **w_r,
                    const char **why_r)
{
    qfile_writer_t *w = xcalloc(1, sizeof(*w));

    w->direct = strcmp(subdir, QUEUE_INCOMING) == 0;
    w->fd = -1;
    if (w->direct && (w->fd = qfile_recycle_claim(queue_dir, w->qid, &w->tmp_path)) >= 0)
        w->recycled = true;
    for (int tries = 0; w->fd < 0 && tries < QFILE_CREATE_TRIES; tries++) {
        qid_new(w->qid);
        w->tmp_path = xasprintf("%s/%s/%s%s", queue_dir, subdir, w->direct ? "" : "t.", w->qid);
        w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, QFILE_MODE_WRITING);
        if (w->fd >= 0)
            break;
        xfreep(&w->tmp_path);
        if (errno != EEXIST) {
            *why_r = strerror(errno);
            free(w);
            return -1;
        }
    }
    if (w->tmp_path == NULL) {
        *why_r = "cannot find a unique queue id";
        free(w);
        return -1;
    }
    w->final_path = xasprintf("%s/%s/%s", queue_dir, subdir, w->qid);
    buf_init(&w->out, BUF_NOLIMIT);
    buf_append(&w->out, QFILE_MAGIC, QFILE_MAGIC_LEN);
    w->state = QW_ENVELOPE;
    *w_r = w;
    return 0;
}

const char *qfile_writer_qid(const qfile_writer_t *w) { return w->qid; }
int qfile_writer_fd(const qfile_writer_t *w) { return w->fd; }
uint64_t qfile_content_size(const qfile_writer_t *w) { return w->content_size; }

/* qfile_name_needs_dir_sync - is the file's name durable only after an
 * fsync of its directory? */
bool qfile_name_needs_dir_sync(const qfile_writer_t *w)
{
    return qfile_dir_sync || w->recycled || !w->direct;
}

/* qfile_flush - write out the buffer; remember the first error */
static int qfile_flush(qfile_writer_t *w)
{
    size_t done = 0;

    while (done < w->out.len) {
        ssize_t n = write(w->fd, w->out.data + done, w->out.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            w->why = n < 0 ? strerror(errno) : "short write";
            return -1;
        }
        done += (size_t)n;
        w->written += n;
    }
    buf_reset(&w->out);
    return 0;
}

/* qfile_put_record - append one envelope record (header + two parts) */
static int qfile_put_record(qfile_writer_t *w, int type, const void *a, size_t alen,
                            const void *b, size_t blen)
{
    unsigned char hdr[QREC_HDR_LEN];

    if (w->why)
        return -1;
    if (w->state != QW_ENVELOPE) {
        w->why = "envelope record after content";
        return -1;
    }
    if (alen > QFILE_MAX_RECORD || blen > QFILE_MAX_RECORD - alen) {
        w->why = "queue file record too long";
        return -1;
    }
    hdr[0] = (unsigned char)type;
    qrec_put_u32(hdr + 1, (uint32_t)(alen + blen));
    buf_append(&w->out, hdr, sizeof(hdr));
    if (alen)
        buf_append(&w->out, a, alen);
    if (blen)
        buf_append(&w->out, b, blen);
    if (w->out.len >= QFILE_WBUF_FLUSH)
        return qfile_flush(w);
    return 0;
}

/* qfile_put_arrival - 'A': u64 seconds, u32 microseconds */
int qfile_put_arrival(qfile_writer_t *w, int64_t sec, int32_t usec)
{
    unsigned char p[12];

    qrec_put_u64(p, (uint64_t)sec);
    qrec_put_u32(p + 8, (uint32_t)usec);
    return qfile_put_record(w, QREC_ARRIVAL, p, sizeof(p), NULL, 0);
}

/* qfile_put_sender - 'S': may be empty (the null sender) */
int qfile_put_sender(qfile_writer_t *w, const char *sender)
{
    return qfile_put_record(w, QREC_SENDER, sender, strlen(sender), NULL, 0);
}

/* qfile_put_attr - 'N': "name=value"; name must be non-empty without '=' */
int qfile_put_attr(qfile_writer_t *w, const char *name, const char *value)
{
    size_t nlen = strlen(name);

    if (nlen == 0 || strchr(name, '=') != NULL) {
        if (!w->why)
            w->why = "bad attribute name";
        return -1;
    }
    char *nv = xasprintf("%s=%s", name, value);
    int rc = qfile_put_record(w, QREC_ATTR, nv, strlen(nv), NULL, 0);
    free(nv);
    return rc;
}

/* qfile_put_rcpt - 'R': status, notify, "address\0orcpt" */
int qfile_put_rcpt(qfile_writer_t *w, const char *addr, const char *orcpt, unsigned notify)
{
    size_t alen = strlen(addr), olen = orcpt ? strlen(orcpt) : 0;
    unsigned char head[2] = { QFILE_RCPT_PENDING, (unsigned char)(notify & 0xff) };

    if (alen == 0 || notify > 0xff) {
        if (!w->why)
            w->why = "bad recipient";
        return -1;
    }
    if (alen + 1 > QFILE_MAX_RECORD - 2 || olen > QFILE_MAX_RECORD - 3 - alen) {
        if (!w->why)
            w->why = "queue file record too long";
        return -1;
    }
    char *body = xmalloc(alen + 1 + olen);
    memcpy(body, addr, alen + 1);
    if (olen)
        memcpy(body + alen + 1, orcpt, olen);
    int rc = qfile_put_record(w, QREC_RCPT, head, 2, body, alen + 1 + olen);
    free(body);
    return rc;
}

/* qfile_begin_content - 'M' with a placeholder length, patched at finish */
int qfile_begin_content(qfile_writer_t *w)
{
    unsigned char zero[8] = { 0 };

    if (qfile_put_record(w, QREC_CONTENT, zero, sizeof(zero), NULL, 0) < 0)
        return -1;
    w->content_len_at = w->written + (off_t)w->out.len - 8;
    w->state = QW_CONTENT;
    return 0;
}

/* qfile_write_content - content bytes, buffered */
int qfile_write_content(qfile_writer_t *w, const void *p, size_t n)
{
    if (w->why)
        return -1;
    if (w->state != QW_CONTENT) {
        w->why = "content outside the content section";
        return -1;
    }
    if (n >= QFILE_WBUF_FLUSH) {
        if (qfile_flush(w) < 0)
            return -1;
        /* large pieces go straight through */
        buf_append(&w->out, p, n);
        w->content_size += n;
        return qfile_flush(w);
    }
    buf_append(&w->out, p, n);
    w->content_size += n;
    if (w->out.len >= QFILE_WBUF_FLUSH)
        return qfile_flush(w);
    return 0;
}

/* qfile_finish - back-patch the content length, add 'E', write out */
int qfile_finish(qfile_writer_t *w, const char **why_r)
{
    unsigned char end[QREC_HDR_LEN] = { QREC_END, 0, 0, 0, 0 };
    unsigned char len[8];

    if (!w->why && w->state != QW_CONTENT)
        w->why = "queue file finished without content";
    if (w->why) {
        *why_r = w->why;
        return -1;
    }
    buf_append(&w->out, end, sizeof(end));
    if (qfile_flush(w) < 0) {
        *why_r = w->why;
        return -1;
    }
    qrec_put_u64(len, w->content_size);
    if (pwrite(w->fd, len, sizeof(len), w->content_len_at) != (ssize_t)sizeof(len)) {
        w->why = "cannot write the content length";
        *why_r = w->why;
        return -1;
    }
    w->state = QW_FINISHED;
    return 0;
}

/* qfile_sync - mark the finished file complete (direct) and fsync it */
int qfile_sync(qfile_writer_t *w, const char **why_r)
{
    if (w->state != QW_FINISHED) {
        *why_r = w->why ? w->why : "queue file not finished";
        return -1;
    }
    if (w->direct && fchmod(w->fd, QFILE_MODE_COMPLETE) < 0) {
        w->why = strerror(errno);
        *why_r = w->why;
        return -1;
    }
    if (fsync(w->fd) < 0) {
        w->why = strerror(errno);
        *why_r = w->why;
        return -1;
    }
    return 0;
}

/* qfile_commit - rename t.QID to QID (durable after queue_sync_dir);
 * nothing to do for a direct file, which qfile_sync made complete */
int qfile_commit(qfile_writer_t *w, const char **why_r)
{
    if (w->state != QW_FINISHED) {
        *why_r = w->why ? w->why : "queue file not finished";
        return -1;
    }
    if (!w->direct && rename(w->tmp_path, w->final_path) < 0) {
        w->why = strerror(errno);
        *why_r = w->why;
        return -1;
    }
    w->state = QW_COMMITTED;
    return 0;
}

/* qfile_abort - unlink the file being written (if not committed) and free */
void qfile_abort(qfile_writer_t **wp)
{
    qfile_writer_t *w = *wp;

    if (w == NULL)
        return;
    if (w->state != QW_COMMITTED && unlink(w->tmp_path) < 0 && errno != ENOENT)
        msg_warn("cannot remove %s: %m", w->tmp_path);
    qfile_writer_free(wp);
}

/* qfile_writer_free - close and free; never unlinks */
void qfile_writer_free(qfile_writer_t **wp)
{
    qfile_writer_t *w = *wp;

    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    buf_free(&w->out);
    free(w->tmp_path);
    free(w->final_path);
    free(w);
    *wp = NULL;
}

/* queue_sync_dir - fsync a queue directory so renames in it are durable */
int queue_sync_dir(const char *queue_dir, const char *subdir)
{
    char *path = xasprintf("%s/%s", queue_dir, subdir);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;

    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(path);
    return rc < 0 ? -1 : 0;
}

/* queue_commit_dir - after a batch of files: the directory fsync when a
 * name in it needs one (renamed: qfile_name_needs_dir_sync of any) */
int queue_commit_dir(const char *queue_dir, const char *subdir, bool renamed)
{
    return renamed ? queue_sync_dir(queue_dir, subdir) : 0;
}

/* qfile_mode_complete - a direct file's mode says it is committed */
bool qfile_mode_complete(mode_t mode)
{
    return (mode & S_IXUSR) != 0;
}
