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

/* maildir_ready - tmp/, new/ and cur/ exist (the common case: three
 * lookups), or are made. maildir_make costs a mkdir per path component,
 * and each takes its parent directory's lock even when the directory
 * exists, which serializes concurrent deliveries under one base. */
static int maildir_ready(const char *dir)
{
    static const char *const subs[] = {"tmp", "new", "cur"};
    struct stat st;
    buf_t path;
    bool ok = true;

    buf_init(&path, BUF_NOLIMIT);
    for (size_t i = 0; ok && i < 3; i++) {
        buf_reset(&path);
        buf_printf(&path, "%s/%s", dir, subs[i]);
        ok = stat(path.data, &st) == 0 && S_ISDIR(st.st_mode);
    }
    buf_free(&path);
    return ok ? 0 : maildir_make(dir);
}

/* copy_write - write all of p, counting bytes and bare LFs */
static int copy_write(maildir_copy_t *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && (i > 0 ? p[i - 1] : c->last) != '\r')
            c->bare_lf++;
    }
    if (n > 0)
        c->last = (unsigned char)p[n - 1];
    while (n > 0) {
        ssize_t w = write(c->fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        c->size += (uint64_t)w;
    }
    return 0;
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

/* copy_content - in->length bytes of in->fd from in->offset */
static int copy_content(maildir_copy_t *c, const maildir_input_t *in, const char **what_r)
{
    char *block = xmalloc(MAILDIR_COPY_BLOCK);
    uint64_t left = in->length;
    off_t off = in->offset;
    bool held_cr = false;
    char prefix[1];
    size_t prefix_len;
    int ret = 0;

    while (left > 0) {
        size_t want = left < MAILDIR_COPY_BLOCK ? (size_t)left : MAILDIR_COPY_BLOCK;
        ssize_t n = pread(in->fd, block, want, off);
        size_t out;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
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
        if (copy_write(c, prefix, prefix_len) < 0 || copy_write(c, block, out) < 0) {
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

/* sync_dir - make a directory entry durable */
static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ret;

    if (fd < 0)
        return -1;
    ret = fsync(fd);
    close(fd);
    return ret;
}

/* move_to_new - link tmp/NAME to new/NAME,S=,W= (retry on a name clash) */
static int move_to_new(const char *dir, const char *tmp, const maildir_copy_t *c, buf_t *path)
{
    for (int tries = 0; tries < MAILDIR_LINK_TRIES; tries++) {
        buf_reset(path);
        buf_printf(path, "%s/new/", dir);
        maildir_name_new(path);
        maildir_name_sizes(path, c->size, c->size + c->bare_lf);
        if (link(tmp, path->data) == 0) {
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

/* maildir_deliver - write, fsync, link into new/, fsync new/ */
int maildir_deliver(const char *dir, const maildir_input_t *in, maildir_result_t *res)
{
    maildir_copy_t c = {.fd = -1, .last = -1};
    maildir_usage_t usage;
    buf_t tmp, newdir;
    const char *what = "create";
    const char *why;
    int ret = -1, qret;

    res->size = 0;
    buf_reset(&res->path);
    res->dsn[0] = 0;
    if (maildir_ready(dir) < 0)
        return maildir_fail(res, errno, "create maildir", dir);
    qret = maildir_quota_check(dir, in->quota, in->prepend_len + in->length, &usage, &why);
    if (qret > 0) {
        safe_cpy(res->dsn, sizeof(res->dsn), "4.2.2");
        buf_reset(&res->why);
        buf_printf(&res->why, "mailbox full (quota %llu bytes, %lld in use)",
                   (unsigned long long)in->quota, (long long)usage.bytes);
        return -1;
    }
    if (qret < 0)
        msg_warn("%s: cannot read quota: %s", dir, why);    /* deliver anyway */

    buf_init(&tmp, BUF_NOLIMIT);
    buf_init(&newdir, BUF_NOLIMIT);
    buf_printf(&tmp, "%s/tmp/", dir);
    maildir_name_new(&tmp);
    buf_printf(&newdir, "%s/new", dir);
    c.fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (c.fd < 0) {
        maildir_fail(res, errno, "create", tmp.data);
        goto out;
    }
    what = "write";
    if (in->prepend_len > 0 && copy_write(&c, in->prepend, in->prepend_len) < 0)
        goto fail;
    if (copy_content(&c, in, &what) < 0)
        goto fail;
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
    if (move_to_new(dir, tmp.data, &c, &res->path) < 0)
        goto fail;
    if (sync_dir(newdir.data) < 0) {
        /* The file is in new/ but not durably: take it back out, so a
         * retry cannot produce a second copy the user already sees. */
        int err = errno;

        unlink(res->path.data);
        maildir_fail(res, err, "fsync", newdir.data);
        buf_reset(&res->path);
        goto out;
    }
    res->size = c.size;
    maildir_quota_add(dir, in->quota, (int64_t)c.size, 1);
    ret = 0;
    goto out;

fail:
    if (errno == 0 && strcmp(what, "read message content") == 0) {
        safe_cpy(res->dsn, sizeof(res->dsn), "4.3.0");
        buf_reset(&res->why);
        buf_printf(&res->why, "queue file content is shorter than its size record");
    } else {
        maildir_fail(res, errno, what, tmp.data);
    }
    if (c.fd >= 0)
        close(c.fd);
    unlink(tmp.data);
out:
    buf_free(&tmp);
    buf_free(&newdir);
    return ret;
}
