/* maildir_deliver - durable delivery of one message into a Maildir */
#include "maildir/maildir_deliver.h"
#include "maildir/maildir_name.h"
#include "maildir/maildir_quota.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAILDIR_COPY_BLOCK (64 * 1024)
#define MAILDIR_LINK_TRIES 5

/* The state of one copy: where it writes, and what it has seen. */
typedef struct maildir_copy {
    int fd;
    uint64_t size;              /* bytes written */
    uint64_t bare_lf;           /* LFs written without a CR before them */
    int last;                   /* last byte written, -1 before the first */
} maildir_copy_t;

void maildir_result_init(maildir_result_t *res)
{
    memset(res, 0, sizeof(*res));
    buf_init(&res->why, 4096);
    buf_init(&res->path, BUF_NOLIMIT);
}

void maildir_result_free(maildir_result_t *res)
{
    buf_free(&res->why);
    buf_free(&res->path);
}

/* maildir_fail - set the DSN from errno and the text; always -1 */
static int maildir_fail(maildir_result_t *res, int err, const char *what, const char *path)
{
    const char *dsn = "4.2.0";

    if (err == EDQUOT || err == EFBIG)
        dsn = "4.2.2";
    else if (err == ENOSPC)
        dsn = "4.3.1";
    safe_cpy(res->dsn, sizeof(res->dsn), dsn);
    buf_reset(&res->why);
    if (err == EDQUOT || err == EFBIG)
        buf_printf(&res->why, "mailbox full: %s %s: %s", what, path, strerror(err));
    else
        buf_printf(&res->why, "%s %s: %s", what, path, strerror(err));
    return -1;
}

/* maildir_make - create dir and any missing parents, then tmp/new/cur */
int maildir_make(const char *dir)
{
    static const char *const subs[] = {"tmp", "new", "cur"};
    buf_t path;
    int ret = 0;

    buf_init(&path, BUF_NOLIMIT);
    buf_puts(&path, dir);
    /* Parents first (a virtual user's domain directory may be new). */
    for (char *p = path.data + 1; ret == 0 && *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path.data, 0700) < 0 && errno != EEXIST)
            ret = -1;
        *p = '/';
    }
    if (ret == 0 && mkdir(path.data, 0700) < 0 && errno != EEXIST)
        ret = -1;
    for (size_t i = 0; ret == 0 && i < 3; i++) {
        buf_truncate(&path, strlen(dir));
        buf_printf(&path, "/%s", subs[i]);
        if (mkdir(path.data, 0700) < 0 && errno != EEXIST)
            ret = -1;
    }
    buf_free(&path);
    return ret;
}

/* copy_writev - write all of iov[0..n), counting bytes and bare LFs;
 * one system call for the usual message (headers and body together) */
static int copy_writev(maildir_copy_t *c, struct iovec *iov, int n)
{
    size_t total = 0;

    for (int k = 0; k < n; k++) {
        const char *p = iov[k].iov_base;

        for (size_t i = 0; i < iov[k].iov_len; i++) {
            if (p[i] == '\n' && (i > 0 ? p[i - 1] : c->last) != '\r')
                c->bare_lf++;
        }
        if (iov[k].iov_len > 0)
            c->last = (unsigned char)p[iov[k].iov_len - 1];
        total += iov[k].iov_len;
    }
    while (total > 0) {
        ssize_t w = writev(c->fd, iov, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c->size += (uint64_t)w;
        total -= (size_t)w;
        /* A short write: skip what went out and go on with the rest. */
        while (n > 0 && (size_t)w >= iov[0].iov_len) {
            w -= (ssize_t)iov[0].iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + w;
            iov[0].iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* copy_write - write all of p (see copy_writev) */
static int copy_write(maildir_copy_t *c, const char *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};

    return copy_writev(c, &iov, 1);
}

/* crlf_squeeze - CR LF → LF in place; returns the new length. A CR at the
 * end is held back in *held_cr until the next block shows what follows. */
static size_t crlf_squeeze(char *p, size_t n, bool *held_cr, char *out_prefix, size_t *prefix_len)
{
    size_t o = 0;

    *prefix_len = 0;
    if (*held_cr) {
        /* The previous block ended in CR: it is kept unless LF follows. */
        if (n == 0 || p[0] != '\n')
            out_prefix[(*prefix_len)++] = '\r';
        *held_cr = false;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            if (i + 1 == n) {
                *held_cr = true;
                break;
            }
            if (p[i + 1] == '\n')
                continue;
        }
        p[o++] = p[i];
    }
    return o;
}

/* copy_content - in->prepend, then in->length bytes of in->fd from
 * in->offset; the prepend goes out with the first block */
static int copy_content(maildir_copy_t *c, const maildir_input_t *in, const char **what_r)
{
    char *block = xmalloc(MAILDIR_COPY_BLOCK);
    uint64_t left = in->length;
    off_t off = in->offset;
    bool held_cr = false;
    bool first = true;
    char prefix[1];
    size_t prefix_len;
    int ret = 0;

    *what_r = "write";
    while (left > 0 || first) {
        size_t want = left < MAILDIR_COPY_BLOCK ? (size_t)left : MAILDIR_COPY_BLOCK;
        ssize_t n = want > 0 ? pread(in->fd, block, want, off) : 0;
        struct iovec iov[3];
        int niov = 0;
        size_t out;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n == 0 && want > 0)) {
            if (n == 0)
                errno = 0;          /* the queue file is shorter than it says */
            *what_r = "read message content";
            ret = -1;
            break;
        }
        off += n;
        left -= (uint64_t)n;
        out = (size_t)n;
        if (in->crlf_to_lf)
            out = crlf_squeeze(block, out, &held_cr, prefix, &prefix_len);
        else
            prefix_len = 0;
        if (first && in->prepend_len > 0)
            iov[niov++] = (struct iovec){.iov_base = (void *)in->prepend,
                                         .iov_len = in->prepend_len};
        first = false;
        if (prefix_len > 0)
            iov[niov++] = (struct iovec){.iov_base = prefix, .iov_len = prefix_len};
        if (out > 0)
            iov[niov++] = (struct iovec){.iov_base = block, .iov_len = out};
        if (niov > 0 && copy_writev(c, iov, niov) < 0) {
            *what_r = "write";
            ret = -1;
            break;
        }
    }
    if (ret == 0 && held_cr && copy_write(c, "\r", 1) < 0) {
        *what_r = "write";
        ret = -1;
    }
    {
        int err = errno;    /* the caller reports this errno */

        free(block);
        errno = err;
    }
    return ret;
}

/* open_new_dir - new/ of dir, opened once for the link and the fsync;
 * a missing Maildir is made (tmp/, new/, cur/) only then, as Postfix
 * does: the common case costs one open and no mkdir or stat */
static int open_new_dir(const char *dir, buf_t *path)
{
    int fd;

    buf_reset(path);
    buf_printf(path, "%s/new", dir);
    fd = open(path->data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (maildir_make(dir) < 0)
            return -1;
        fd = open(path->data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    return fd;
}

/* new_name - res->path = DIR/new/NAME,S=,W=; returns NAME's offset */
static size_t new_name(const char *dir, const maildir_copy_t *c, buf_t *path)
{
    size_t off;

    buf_reset(path);
    buf_printf(path, "%s/new/", dir);
    off = path->len;
    maildir_name_new(path);
    maildir_name_sizes(path, c->size, c->size + c->bare_lf);
    return off;
}

/* copy_fail - the result for a failed copy_content (what, errno) */
static int copy_fail(maildir_result_t *res, const char *what, const char *path)
{
    if (errno == 0 && strcmp(what, "read message content") == 0) {
        safe_cpy(res->dsn, sizeof(res->dsn), "4.3.0");
        buf_reset(&res->why);
        buf_printf(&res->why, "queue file content is shorter than its size record");
        return -1;
    }
    return maildir_fail(res, errno, what, path);
}

/* commit_new - fsync new/ after the link; on failure take the entry
 * back out, so a retry cannot produce a second copy the user sees */
static int commit_new(int newfd, const char *name, const buf_t *newdir, maildir_result_t *res)
{
    int err;

    if (fsync(newfd) == 0)
        return 0;
    err = errno;
    (void)unlinkat(newfd, name, 0);
    buf_reset(&res->path);
    return maildir_fail(res, err, "fsync", newdir->data);
}

/* move_to_new - link tmp/NAME to new/NAME,S=,W= (retry on a name clash);
 * the new name's offset in path goes to *off_r */
static int move_to_new(const char *dir, int newfd, const char *tmp, const maildir_copy_t *c,
                       buf_t *path, size_t *off_r)
{
    for (int tries = 0; tries < MAILDIR_LINK_TRIES; tries++) {
        *off_r = new_name(dir, c, path);
        if (linkat(AT_FDCWD, tmp, newfd, path->data + *off_r, 0) == 0) {
            unlink(tmp);
            return 0;
        }
        if (errno == EEXIST)
            continue;
        /* File systems without hard links: rename may replace, so
         * check for a clash first (a race here needs a name collision). */
        if (errno == EPERM || errno == ENOSYS || errno == EOPNOTSUPP) {
            if (access(path->data, F_OK) == 0)
                continue;
            return rename(tmp, path->data);
        }
        return -1;
    }
    errno = EEXIST;
    return -1;
}

static bool maildir_dir_sync;

/* maildir_set_dir_sync - maildir_directory_fsync (per process) */
void maildir_set_dir_sync(bool on)
{
    maildir_dir_sync = on;
}

/* open_tmp - create tmp/NAME; a missing tmp/ is made once */
static int open_tmp(const char *dir, buf_t *tmp)
{
    int fd;

    for (int attempt = 0; attempt < 2; attempt++) {
        buf_reset(tmp);
        buf_printf(tmp, "%s/tmp/", dir);
        maildir_name_new(tmp);
        fd = open(tmp->data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != ENOENT || attempt > 0 || maildir_make(dir) < 0)
            return fd;
    }
    return -1;
}

/* link_then_sync - the one-flush commit: link tmp/NAME into new/, unlink
 * tmp/NAME, then fsync the file. The fsync of an inode makes the names it
 * got before it durable with it: ext4 with a journal commits the
 * transaction holding the link, XFS forces the log past it, btrfs logs
 * the inode's names, and ext4 without a journal syncs the directory of a
 * new inode's (only remaining) name. The file is visible in new/ before
 * it is durable; a crash then costs a redelivery (qmgr still holds the
 * message), never a loss. maildir_directory_fsync = yes restores the
 * two-flush order. Consumes c->fd. */
static int link_then_sync(const char *dir, int newfd, const buf_t *tmp, maildir_copy_t *c,
                          maildir_result_t *res)
{
    size_t off = 0;
    int err;

    if (move_to_new(dir, newfd, tmp->data, c, &res->path, &off) < 0) {
        err = errno;
        close(c->fd);
        unlink(tmp->data);
        buf_reset(&res->path);
        return maildir_fail(res, err, "link into new/", tmp->data);
    }
    int synced = fsync(c->fd);

    err = errno;
    if (close(c->fd) < 0 && synced == 0) {
        synced = -1;
        err = errno;
    }
    if (synced < 0) {
        (void)unlinkat(newfd, res->path.data + off, 0);
        buf_reset(&res->path);
        return maildir_fail(res, err, "fsync", tmp->data);
    }
    res->size = c->size;
    return 0;
}

/* deliver_tmp - tmp/NAME: write, then link_then_sync, or (with
 * maildir_directory_fsync) fsync, link into new/, unlink tmp/NAME, fsync
 * new/. (An O_TMPFILE linked into new/ would save tmp/'s blocks,
 * but on ext4 without a journal its inode reaches the disk with a link
 * count of 0 unless fsynced again, and fsck then drops the message.) */
static int deliver_tmp(const char *dir, int newfd, const buf_t *newdir,
                       const maildir_input_t *in, maildir_result_t *res)
{
    maildir_copy_t c = {.fd = -1, .last = -1};
    const char *what = "create";
    buf_t tmp;
    size_t off = 0;
    int ret = -1;

    buf_init(&tmp, BUF_NOLIMIT);
    c.fd = open_tmp(dir, &tmp);
    if (c.fd < 0) {
        maildir_fail(res, errno, "create", tmp.data);
        goto out;
    }
    if (copy_content(&c, in, &what) < 0)
        goto fail;
    if (!maildir_dir_sync) {
        ret = link_then_sync(dir, newfd, &tmp, &c, res);
        goto out;
    }
    what = "fsync";
    if (fsync(c.fd) < 0)
        goto fail;
    what = "close";
    if (close(c.fd) < 0) {
        c.fd = -1;
        goto fail;
    }
    c.fd = -1;
    what = "link into new/";
    if (move_to_new(dir, newfd, tmp.data, &c, &res->path, &off) < 0)
        goto fail;
    if (commit_new(newfd, res->path.data + off, newdir, res) < 0)
        goto out;
    res->size = c.size;
    ret = 0;
    goto out;

fail:
    copy_fail(res, what, tmp.data);
    buf_reset(&res->path);
    if (c.fd >= 0)
        close(c.fd);
    unlink(tmp.data);
out:
    buf_free(&tmp);
    return ret;
}

/* maildir_deliver - write, fsync, link into new/, fsync new/ */
int maildir_deliver(const char *dir, const maildir_input_t *in, maildir_result_t *res)
{
    maildir_usage_t usage;
    buf_t newdir;
    const char *why;
    int ret = -1, qret, newfd;

    res->size = 0;
    buf_reset(&res->path);
    res->dsn[0] = 0;
    buf_init(&newdir, BUF_NOLIMIT);
    if ((newfd = open_new_dir(dir, &newdir)) < 0) {
        maildir_fail(res, errno, "create maildir", dir);
        buf_free(&newdir);
        return -1;
    }
    qret = maildir_quota_check(dir, in->quota, in->prepend_len + in->length, &usage, &why);
    if (qret > 0) {
        safe_cpy(res->dsn, sizeof(res->dsn), "4.2.2");
        buf_reset(&res->why);
        buf_printf(&res->why, "mailbox full (quota %llu bytes, %lld in use)",
                   (unsigned long long)in->quota, (long long)usage.bytes);
        goto out;
    }
    if (qret < 0)
        msg_warn("%s: cannot read quota: %s", dir, why);    /* deliver anyway */
    ret = deliver_tmp(dir, newfd, &newdir, in, res);
    if (ret == 0)
        maildir_quota_add(dir, in->quota, (int64_t)res->size, 1);
out:
    close(newfd);
    buf_free(&newdir);
    return ret;
}
