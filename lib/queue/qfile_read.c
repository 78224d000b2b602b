/*
 * qfile_read - the strict queue-file reader and the in-place recipient mark.
 * Every length is checked against the record limit and the file size before
 * it is used; the content length must land exactly on the END record.
 * Anything else is a torn or garbled file. Bytes after END are slack left
 * by an earlier message in a recycled file (qfile_recycle.c) and are
 * never read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/qfile_rec.h"
#include "util/xmalloc.h"

#define QFILE_READ_CHUNK (128 * 1024)
#define QFILE_MAX_ATTRS 1024

/* A window on the file, so the envelope is read in large chunks. */
typedef struct qreader {
    int fd;
    uint64_t size;
    uint64_t pos;               /* next byte to parse */
    unsigned char *buf;
    uint64_t buf_off;           /* file offset of buf[0] */
    size_t buf_len;
} qreader_t;

/* qreader_get - n bytes at pos (n <= QFILE_MAX_RECORD + header) */
static const unsigned char *qreader_get(qreader_t *r, size_t n, const char **why_r)
{
    if (n > r->size || r->pos > r->size - n) {
        *why_r = "queue file is truncated";
        return NULL;
    }
    if (r->pos < r->buf_off || r->pos + n > r->buf_off + r->buf_len) {
        size_t want = QFILE_READ_CHUNK;
        if (want > r->size - r->pos)
            want = (size_t)(r->size - r->pos);
        size_t got = 0;
        while (got < want) {
            ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(r->pos + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                *why_r = k < 0 ? "queue file read error" : "queue file shrank while reading";
                return NULL;
            }
            got += (size_t)k;
        }
        r->buf_off = r->pos;
        r->buf_len = got;
    }
    const unsigned char *p = r->buf + (r->pos - r->buf_off);
    r->pos += n;
    return p;
}

/* has_nul - does p[0..n) contain a NUL? */
static bool has_nul(const unsigned char *p, size_t n)
{
    return memchr(p, 0, n) != NULL;
}

/* qfile_parse_rcpt - 'R' body: status, notify, "address\0orcpt" */
static int qfile_parse_rcpt(qfile_t *qf, const unsigned char *p, uint32_t len,
                            off_t rec_off, const char **why_r)
{
    if (len < 3) {
        *why_r = "recipient record too short";
        return -1;
    }
    if (p[0] != QFILE_RCPT_PENDING && p[0] != QFILE_RCPT_DONE) {
        *why_r = "bad recipient status";
        return -1;
    }
    const unsigned char *s = p + 2, *nul = memchr(s, 0, len - 2);
    if (nul == NULL || nul == s) {
        *why_r = "bad recipient address";
        return -1;
    }
    size_t alen = (size_t)(nul - s), olen = len - 2 - alen - 1;
    if (has_nul(nul + 1, olen)) {
        *why_r = "bad original recipient";
        return -1;
    }
    if (qf->nrcpts >= QFILE_MAX_RCPTS) {
        *why_r = "too many recipients";
        return -1;
    }
    qf->rcpts = xreallocarray(qf->rcpts, qf->nrcpts + 1, sizeof(*qf->rcpts));
    qfile_rcpt_t *rc = &qf->rcpts[qf->nrcpts++];
    rc->addr = xstrndup((const char *)s, alen);
    rc->orcpt = xstrndup((const char *)nul + 1, olen);
    rc->notify = p[1];
    rc->status = (char)p[0];
    rc->status_offset = rec_off + QREC_HDR_LEN;
    return 0;
}

/* qfile_parse_attr - 'N' body: "name=value" */
static int qfile_parse_attr(qfile_t *qf, const unsigned char *p, uint32_t len,
                            const char **why_r)
{
    const unsigned char *eq = memchr(p, '=', len);

    if (eq == NULL || eq == p || has_nul(p, len)) {
        *why_r = "bad named attribute";
        return -1;
    }
    if (qf->nattrs >= QFILE_MAX_ATTRS) {
        *why_r = "too many named attributes";
        return -1;
    }
    qf->attr_names = xreallocarray(qf->attr_names, qf->nattrs + 1, sizeof(char *));
    qf->attr_values = xreallocarray(qf->attr_values, qf->nattrs + 1, sizeof(char *));
    qf->attr_names[qf->nattrs] = xstrndup((const char *)p, (size_t)(eq - p));
    qf->attr_values[qf->nattrs] = xstrndup((const char *)eq + 1, len - (size_t)(eq - p) - 1);
    qf->nattrs++;
    return 0;
}

/* qfile_parse_content - 'M': the content must end exactly at 'E' */
static int qfile_parse_content(qreader_t *r, qfile_t *qf, const unsigned char *p,
                               uint32_t len, const char **why_r)
{
    if (len != 8) {
        *why_r = "bad content record";
        return -1;
    }
    uint64_t clen = qrec_get_u64(p);
    if (clen > r->size - r->pos || r->size - r->pos - clen < QREC_HDR_LEN) {
        *why_r = "content length does not match the file (torn file)";
        return -1;
    }
    qf->content_offset = (off_t)r->pos;
    qf->content_size = clen;
    r->pos += clen;
    const unsigned char *e = qreader_get(r, QREC_HDR_LEN, why_r);
    if (e == NULL)
        return -1;
    if (e[0] != QREC_END || qrec_get_u32(e + 1) != 0) {
        *why_r = "missing end record";
        return -1;
    }
    return 0;
}

/* qfile_parse - the record loop; qf is filled as far as it gets */
static int qfile_parse(qreader_t *r, qfile_t *qf, const char **why_r)
{
    bool have_arrival = false, have_sender = false;
    const unsigned char *p;

    if ((p = qreader_get(r, QFILE_MAGIC_LEN, why_r)) == NULL)
        return -1;
    if (memcmp(p, QFILE_MAGIC, QFILE_MAGIC_LEN) != 0) {
        *why_r = "bad queue file magic";
        return -1;
    }
    for (;;) {
        off_t rec_off = (off_t)r->pos;
        if ((p = qreader_get(r, QREC_HDR_LEN, why_r)) == NULL)
            return -1;
        int type = p[0];
        uint32_t len = qrec_get_u32(p + 1);
        if (len > QFILE_MAX_RECORD) {
            *why_r = "queue file record too long";
            return -1;
        }
        if ((p = qreader_get(r, len, why_r)) == NULL)
            return -1;
        switch (type) {
        case QREC_ARRIVAL:
            if (have_arrival || len != 12 || qrec_get_u32(p + 8) >= 1000000) {
                *why_r = "bad arrival record";
                return -1;
            }
            qf->arrival_sec = (int64_t)qrec_get_u64(p);
            qf->arrival_usec = (int32_t)qrec_get_u32(p + 8);
            have_arrival = true;
            break;
        case QREC_SENDER:
            if (have_sender || has_nul(p, len)) {
                *why_r = "bad sender record";
                return -1;
            }
            qf->sender = xstrndup((const char *)p, len);
            have_sender = true;
            break;
        case QREC_ATTR:
            if (qfile_parse_attr(qf, p, len, why_r) < 0)
                return -1;
            break;
        case QREC_RCPT:
            if (qfile_parse_rcpt(qf, p, len, rec_off, why_r) < 0)
                return -1;
            break;
        case QREC_CONTENT:
            if (!have_arrival || !have_sender || qf->nrcpts == 0) {
                *why_r = "incomplete envelope";
                return -1;
            }
            return qfile_parse_content(r, qf, p, len, why_r);
        default:
            *why_r = "unknown queue file record type";
            return -1;
        }
    }
}

/* qfile_read - parse a whole queue file; on error qf is left empty */
int qfile_read(int fd, qfile_t *qf, const char **why_r)
{
    struct stat st;
    qreader_t r = { .fd = fd };

    memset(qf, 0, sizeof(*qf));
    if (fstat(fd, &st) < 0) {
        *why_r = "cannot stat queue file";
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *why_r = "not a regular file";
        return -1;
    }
    r.size = (uint64_t)st.st_size;
    r.buf = xmalloc(QFILE_READ_CHUNK);
    int rc = qfile_parse(&r, qf, why_r);
    free(r.buf);
    qf->file_size = r.pos;      /* the end of 'E': slack is not the message's */
    if (rc < 0)
        qfile_free(qf);
    return rc;
}

/* qfile_attr - a named attribute, or NULL (borrowed from qf) */
const char *qfile_attr(const qfile_t *qf, const char *name)
{
    for (size_t i = 0; i < qf->nattrs; i++)
        if (strcmp(qf->attr_names[i], name) == 0)
            return qf->attr_values[i];
    return NULL;
}

/* qfile_free - release what qfile_read allocated */
void qfile_free(qfile_t *qf)
{
    for (size_t i = 0; i < qf->nrcpts; i++) {
        free(qf->rcpts[i].addr);
        free(qf->rcpts[i].orcpt);
    }
    for (size_t i = 0; i < qf->nattrs; i++) {
        free(qf->attr_names[i]);
        free(qf->attr_values[i]);
    }
    free(qf->rcpts);
    free(qf->attr_names);
    free(qf->attr_values);
    free(qf->sender);
    memset(qf, 0, sizeof(*qf));
}

/* qfile_mark_rcpt - write one recipient's status byte in place */
int qfile_mark_rcpt(int fd, off_t status_offset, char status)
{
    if (status != QFILE_RCPT_PENDING && status != QFILE_RCPT_DONE) {
        errno = EINVAL;
        return -1;
    }
    for (;;) {
        ssize_t n = pwrite(fd, &status, 1, status_offset);
        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO;
        return -1;
    }
}

/* qfile_qpath_ok - a queue path from qmgr: "QUEUE/QID", relative, no ".." */
static bool qfile_qpath_ok(const char *p)
{
    const char *slash = strchr(p, '/');

    return slash && p[0] != '/' && strchr(slash + 1, '/') == NULL && qid_valid(slash + 1)
        && strstr(p, "..") == NULL;
}

/* qfile_open_request - open, read and check the file a request names */
int qfile_open_request(const char *qpath, off_t content_offset, uint64_t content_size,
                       int *fd_r, qfile_t *qf, const char **why_r)
{
    if (!qfile_qpath_ok(qpath)) {
        *why_r = "bad queue file path";
        return -1;
    }
    if ((*fd_r = open(qpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        *why_r = strerror(errno);
        return -1;
    }
    if (qfile_read(*fd_r, qf, why_r) < 0)
        return -1;
    /* qmgr read the same file: a mismatch means it is not the file qmgr
     * meant, or it changed; deliver nothing from it. */
    if (qf->content_offset != content_offset || qf->content_size != content_size) {
        *why_r = "queue file content offset or size does not match the request";
        return -1;
    }
    return 0;
}
