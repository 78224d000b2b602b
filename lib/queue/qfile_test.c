/* qfile_test - queue-file round trip, torn and garbled files, marks */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/qfile_rec.h"
#include "test/test.h"
#include "util/xmalloc.h"

static char tmpdir[] = "/tmp/qfile_test.XXXXXX";

/* slurp - a whole file into memory */
static unsigned char *slurp(const char *path, size_t *len_r)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return NULL;
    unsigned char *p = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, p + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *len_r = got;
    return p;
}

/* read_bytes - qfile_read on a temp file holding exactly p[0..n) */
static int read_bytes(const unsigned char *p, size_t n, qfile_t *qf, const char **why_r)
{
    char *path = xasprintf("%s/garbled", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n)
        abort();
    int rc = qfile_read(fd, qf, why_r);
    close(fd);
    unlink(path);
    free(path);
    return rc;
}

static bool last_renamed;               /* write_message's file had to be renamed */

/* write_message - a committed message; returns its path (caller frees) */
static char *write_message(const char *sender, int nrcpt, const void *content,
                           size_t clen, char qid_r[QID_BUFSIZE])
{
    qfile_writer_t *w;
    const char *why;

    TEST_INTEQ(qfile_create(tmpdir, &w, &why), 0);
    TEST_INTEQ(qfile_put_arrival(w, 1700000000, 123456), 0);
    TEST_INTEQ(qfile_put_sender(w, sender), 0);
    TEST_INTEQ(qfile_put_attr(w, "client_address", "127.0.0.1"), 0);
    TEST_INTEQ(qfile_put_attr(w, "helo_name", "x=y"), 0);
    for (int i = 0; i < nrcpt; i++) {
        char addr[64], orcpt[64];
        snprintf(addr, sizeof(addr), "user%d@example.org", i);
        snprintf(orcpt, sizeof(orcpt), i % 2 ? "rfc822;User%d@Example.org" : "", i);
        TEST_INTEQ(qfile_put_rcpt(w, addr, orcpt, (unsigned)(i % 16)), 0);
    }
    TEST_INTEQ(qfile_begin_content(w), 0);
    /* in odd-sized pieces, to exercise buffering */
    size_t off = 0, piece = 1;
    while (off < clen) {
        size_t n = clen - off < piece ? clen - off : piece;
        TEST_INTEQ(qfile_write_content(w, (const char *)content + off, n), 0);
        off += n;
        piece = piece * 3 + 7;
    }
    TEST_INTEQ(qfile_content_size(w), clen);
    TEST_INTEQ(qfile_finish(w, &why), 0);
    {
        /* incoming/QID from the start, marked complete only by the sync */
        struct stat st;
        char *p = xasprintf("%s/incoming/%s", tmpdir, qfile_writer_qid(w));
        TEST_INTEQ(stat(p, &st), 0);
        TEST_CHECK(!qfile_mode_complete(st.st_mode));
        TEST_INTEQ(qfile_sync(w, &why), 0);
        TEST_INTEQ(stat(p, &st), 0);
        TEST_CHECK(qfile_mode_complete(st.st_mode));
        TEST_INTEQ(st.st_mode & 07777, QFILE_MODE_COMPLETE);
        free(p);
    }
    TEST_INTEQ(qfile_commit(w, &why), 0);
    last_renamed = qfile_name_needs_dir_sync(w);
    TEST_INTEQ(queue_commit_dir(tmpdir, QUEUE_INCOMING, last_renamed), 0);
    memcpy(qid_r, qfile_writer_qid(w), QID_BUFSIZE);
    TEST_CHECK(qid_valid(qid_r));
    qfile_writer_free(&w);
    TEST_CHECK(w == NULL);
    return xasprintf("%s/incoming/%s", tmpdir, qid_r);
}

/* test_round_trip - many recipients, an 8-bit body with NULs and CRLFs */
static void test_round_trip(void)
{
    size_t clen = 300000;
    unsigned char *content = xmalloc(clen);
    char qid[QID_BUFSIZE];
    const char *why = NULL;
    qfile_t qf;

    for (size_t i = 0; i < clen; i++)
        content[i] = (unsigned char)(i * 7 + (i >> 9));
    char *path = write_message("sender@example.com", 5000, content, clen, qid);
    int fd = open(path, O_RDONLY);
    TEST_CHECK(fd >= 0);
    int rc = qfile_read(fd, &qf, &why);
    TEST_INTEQ(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "read: %s\n", why);
        return;
    }
    TEST_INTEQ(qf.arrival_sec, 1700000000);
    TEST_INTEQ(qf.arrival_usec, 123456);
    TEST_STREQ(qf.sender, "sender@example.com");
    TEST_STREQ(qfile_attr(&qf, "client_address"), "127.0.0.1");
    TEST_STREQ(qfile_attr(&qf, "helo_name"), "x=y");
    TEST_CHECK(qfile_attr(&qf, "nope") == NULL);
    TEST_INTEQ(qf.nrcpts, 5000);
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        char addr[64], orcpt[64];
        snprintf(addr, sizeof(addr), "user%d@example.org", i);
        snprintf(orcpt, sizeof(orcpt), i % 2 ? "rfc822;User%d@Example.org" : "", i);
        if (strcmp(qf.rcpts[i].addr, addr) || strcmp(qf.rcpts[i].orcpt, orcpt)
            || qf.rcpts[i].notify != (unsigned)(i % 16) || qf.rcpts[i].status != QFILE_RCPT_PENDING)
            bad++;
    }
    TEST_INTEQ(bad, 0);
    TEST_INTEQ(qf.content_size, clen);
    unsigned char *got = xmalloc(clen);
    TEST_INTEQ(pread(fd, got, clen, qf.content_offset), (ssize_t)clen);
    TEST_CHECK(memcmp(got, content, clen) == 0);
    struct stat st;
    fstat(fd, &st);
    TEST_INTEQ(qf.file_size, st.st_size);
    qfile_free(&qf);
    close(fd);
    unlink(path);
    free(path);
    free(got);
    free(content);
}

/* test_null_sender_empty_body - the null sender and an empty body */
static void test_null_sender_empty_body(void)
{
    char qid[QID_BUFSIZE];
    const char *why;
    qfile_t qf;

    char *path = write_message("", 1, "", 0, qid);
    int fd = open(path, O_RDONLY);
    TEST_INTEQ(qfile_read(fd, &qf, &why), 0);
    TEST_STREQ(qf.sender, "");
    TEST_INTEQ(qf.content_size, 0);
    qfile_free(&qf);
    close(fd);
    unlink(path);
    free(path);
}

/* test_torn - every proper prefix of a file is rejected */
static void test_torn(void)
{
    char qid[QID_BUFSIZE];
    const char *why;
    qfile_t qf;
    size_t len;

    char *path = write_message("a@b", 3, "Subject: x\r\n\r\nbody\r\n", 20, qid);
    unsigned char *p = slurp(path, &len);
    TEST_CHECK(p != NULL && len > 20);
    int accepted = 0;
    for (size_t n = 0; n < len; n++)
        if (read_bytes(p, n, &qf, &why) == 0) {
            accepted++;
            qfile_free(&qf);
        }
    TEST_INTEQ(accepted, 0);
    TEST_INTEQ(read_bytes(p, len, &qf, &why), 0);
    qfile_free(&qf);
    /* bytes after 'E' are a recycled file's slack: not the message's */
    unsigned char *q = xmalloc(len + 1);
    memcpy(q, p, len);
    q[len] = 'E';
    TEST_INTEQ(read_bytes(q, len + 1, &qf, &why), 0);
    TEST_INTEQ(qf.file_size, len);
    TEST_INTEQ(qf.content_size, 20);
    qfile_free(&qf);
    /* a file whose content length was never back-patched */
    memcpy(q, p, len);
    for (size_t i = 0; i + 13 <= len; i++)
        if (q[i] == 'M' && qrec_get_u32(q + i + 1) == 8 && qrec_get_u64(q + i + 5) == 20) {
            memset(q + i + 5, 0, 8);
            break;
        }
    TEST_INTEQ(read_bytes(q, len, &qf, &why), -1);
    free(q);
    free(p);
    unlink(path);
    free(path);
}

/* test_garbled - every single-byte change to a length or type is either
 * rejected or still parses to a consistent structure (never a crash) */
static void test_garbled(void)
{
    char qid[QID_BUFSIZE];
    const char *why;
    qfile_t qf;
    size_t len;

    char *path = write_message("a@b", 2, "hello", 5, qid);
    unsigned char *p = slurp(path, &len);
    unsigned char *q = xmalloc(len);
    /* walk the records and corrupt each length field */
    size_t off = QFILE_MAGIC_LEN;
    int records = 0, rejected = 0;
    while (off + QREC_HDR_LEN <= len) {
        uint32_t rl = qrec_get_u32(p + off + 1);
        static const uint32_t deltas[] = { 1, 2, 0xFFFFFFFFu, 0xFFFFu, 0x80000000u };
        for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
            memcpy(q, p, len);
            qrec_put_u32(q + off + 1, rl + deltas[d]);
            if (read_bytes(q, len, &qf, &why) < 0)
                rejected++;
            else
                qfile_free(&qf);
            records++;
        }
        if (p[off] == 'M') {
            /* and the content length itself */
            for (int d = -3; d <= 3; d++) {
                if (d == 0)
                    continue;
                memcpy(q, p, len);
                qrec_put_u64(q + off + 5, (uint64_t)((int64_t)qrec_get_u64(p + off + 5) + d));
                TEST_INTEQ(read_bytes(q, len, &qf, &why), -1);
            }
            qrec_put_u64(q + off + 5, UINT64_MAX);
            TEST_INTEQ(read_bytes(q, len, &qf, &why), -1);
            break;
        }
        off += QREC_HDR_LEN + rl;
    }
    TEST_CHECK(records > 0);
    TEST_INTEQ(rejected, records);
    /* bad magic, unknown record type, bad recipient status */
    memcpy(q, p, len);
    q[0] = 'X';
    TEST_INTEQ(read_bytes(q, len, &qf, &why), -1);
    memcpy(q, p, len);
    q[QFILE_MAGIC_LEN] = 'Z';
    TEST_INTEQ(read_bytes(q, len, &qf, &why), -1);
    free(q);
    free(p);
    unlink(path);
    free(path);
}

/* test_bad_records - hand-made envelopes the reader must refuse */
static void test_bad_records(void)
{
    qfile_t qf;
    const char *why;
    unsigned char f[256];
    size_t n;

#define REC(t, s, l) do { f[n] = (t); qrec_put_u32(f + n + 1, (l)); memcpy(f + n + 5, (s), (l)); n += 5 + (l); } while (0)
#define START() do { n = 0; memcpy(f, QFILE_MAGIC, 8); n = 8; } while (0)
#define TAIL() do { unsigned char z[8] = {0}; REC('M', z, 8); REC('E', "", 0); } while (0)
    unsigned char arr[12] = { 0 };

    START(); REC('A', arr, 12); REC('S', "", 0); REC('R', "-\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), 0);
    qfile_free(&qf);
    /* no recipients */
    START(); REC('A', arr, 12); REC('S', "", 0); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* no sender */
    START(); REC('A', arr, 12); REC('R', "-\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* two senders */
    START(); REC('A', arr, 12); REC('S', "", 0); REC('S', "x", 1); REC('R', "-\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* NUL in sender */
    START(); REC('A', arr, 12); REC('S', "a\0b", 3); REC('R', "-\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* bad status byte, empty address, no NUL separator, extra NUL */
    START(); REC('A', arr, 12); REC('S', "", 0); REC('R', "X\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    START(); REC('A', arr, 12); REC('S', "", 0); REC('R', "-\0\0", 3); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    START(); REC('A', arr, 12); REC('S', "", 0); REC('R', "-\0a@b", 5); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    START(); REC('A', arr, 12); REC('S', "", 0); REC('R', "-\0a@b\0x\0", 8); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* attribute without '=' */
    START(); REC('A', arr, 12); REC('S', "", 0); REC('N', "abc", 3); REC('R', "-\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* arrival usec out of range */
    unsigned char arr2[12] = { 0 };
    qrec_put_u32(arr2 + 8, 1000000);
    START(); REC('A', arr2, 12); REC('S', "", 0); REC('R', "-\0a@b\0", 6); TAIL();
    TEST_INTEQ(read_bytes(f, n, &qf, &why), -1);
    /* a record after END is slack (a recycled file's tail): never read */
    START(); REC('A', arr, 12); REC('S', "", 0); REC('R', "-\0a@b\0", 6); TAIL(); REC('E', "", 0);
    TEST_INTEQ(read_bytes(f, n, &qf, &why), 0);
    TEST_INTEQ(qf.file_size, n - 5);
    qfile_free(&qf);
}

/* test_writer_errors - misuse is reported, never a bad file */
static void test_writer_errors(void)
{
    qfile_writer_t *w;
    const char *why;
    char *big = xmalloc(QFILE_MAX_RECORD + 10);

    memset(big, 'a', QFILE_MAX_RECORD + 9);
    big[QFILE_MAX_RECORD + 9] = 0;
    TEST_INTEQ(qfile_create(tmpdir, &w, &why), 0);
    char *tmp = xasprintf("%s/incoming/%s", tmpdir, qfile_writer_qid(w));
    TEST_CHECK(access(tmp, F_OK) == 0);
    TEST_INTEQ(qfile_put_sender(w, big), -1);
    TEST_INTEQ(qfile_finish(w, &why), -1);
    qfile_abort(&w);
    TEST_CHECK(w == NULL);
    TEST_CHECK(access(tmp, F_OK) != 0);
    free(tmp);
    /* envelope after content */
    TEST_INTEQ(qfile_create(tmpdir, &w, &why), 0);
    TEST_INTEQ(qfile_begin_content(w), 0);
    TEST_INTEQ(qfile_put_rcpt(w, "a@b", "", 0), -1);
    TEST_INTEQ(qfile_commit(w, &why), -1);
    qfile_abort(&w);
    /* no such directory */
    TEST_INTEQ(qfile_create("/nonexistent-dir", &w, &why), -1);
    /* maildrop writer: create_in another subdir */
    TEST_INTEQ(qfile_create_in(tmpdir, QUEUE_MAILDROP, &w, &why), 0);
    qfile_put_arrival(w, 1, 0);
    qfile_put_sender(w, "x");
    qfile_put_rcpt(w, "y", NULL, 0);
    qfile_begin_content(w);
    TEST_INTEQ(qfile_finish(w, &why), 0);
    TEST_INTEQ(qfile_commit(w, &why), 0);
    char *fin = xasprintf("%s/maildrop/%s", tmpdir, qfile_writer_qid(w));
    TEST_CHECK(access(fin, F_OK) == 0);
    unlink(fin);
    free(fin);
    qfile_writer_free(&w);
    free(big);
}

/* test_mark - the status byte is rewritten in place and read back */
static void test_mark(void)
{
    char qid[QID_BUFSIZE];
    const char *why;
    qfile_t qf, qf2;

    char *path = write_message("s@x", 4, "body", 4, qid);
    int fd = open(path, O_RDWR);
    TEST_INTEQ(qfile_read(fd, &qf, &why), 0);
    TEST_INTEQ(qfile_mark_rcpt(fd, qf.rcpts[1].status_offset, QFILE_RCPT_DONE), 0);
    TEST_INTEQ(qfile_mark_rcpt(fd, qf.rcpts[3].status_offset, QFILE_RCPT_DONE), 0);
    TEST_INTEQ(qfile_mark_rcpt(fd, qf.rcpts[3].status_offset, 'Q'), -1);
    TEST_INTEQ(qfile_read(fd, &qf2, &why), 0);
    TEST_INTEQ(qf2.rcpts[0].status, QFILE_RCPT_PENDING);
    TEST_INTEQ(qf2.rcpts[1].status, QFILE_RCPT_DONE);
    TEST_INTEQ(qf2.rcpts[2].status, QFILE_RCPT_PENDING);
    TEST_INTEQ(qf2.rcpts[3].status, QFILE_RCPT_DONE);
    TEST_STREQ(qf2.rcpts[3].addr, "user3@example.org");
    qfile_free(&qf);
    qfile_free(&qf2);
    close(fd);
    unlink(path);
    free(path);
}

/* next_second - the writer reads recycle/ at most once a second when it
 * knows no names: wait for the next one */
static void next_second(void)
{
    time_t t0 = time(NULL);

    for (int i = 0; i < 300 && time(NULL) == t0; i++)
        usleep(10000);
}

/* test_recycle - a spent file is reused under a new id, and the new
 * message reads back exactly, not the old one's longer tail */
static void test_recycle(void)
{
    size_t big = 100000;
    unsigned char *content = xmalloc(big);
    static const char small[] = "Subject: s\r\n\r\nsmall\r\n";
    char qid[QID_BUFSIZE], qid2[QID_BUFSIZE], qid3[QID_BUFSIZE];
    const char *why;
    struct stat st, st2;
    qfile_t qf;

    memset(content, 'x', big);
    char *path = write_message("old@example.com", 1, content, big, qid);
    int fd = open(path, O_RDWR);
    TEST_CHECK(fd >= 0 && fstat(fd, &st) == 0);
    TEST_INTEQ(qfile_recycle(tmpdir, QUEUE_INCOMING, qid, fd), 0);
    close(fd);
    TEST_CHECK(access(path, F_OK) < 0);
    TEST_INTEQ(qfile_recycle_tidy(tmpdir, true), 1);

    next_second();
    char *path2 = write_message("new@example.com", 1, small, sizeof(small) - 1, qid2);
    TEST_CHECK(last_renamed);
    TEST_CHECK(strcmp(qid, qid2) != 0);
    TEST_INTEQ(qfile_recycle_tidy(tmpdir, true), 0);
    fd = open(path2, O_RDWR);
    TEST_CHECK(fd >= 0 && fstat(fd, &st2) == 0);
    TEST_CHECK(st2.st_ino == st.st_ino);
    TEST_INTEQ(st2.st_size, st.st_size);            /* not truncated: no block freed */
    TEST_INTEQ(st2.st_mode & 07777, QFILE_MODE_COMPLETE);
    TEST_INTEQ(qfile_read(fd, &qf, &why), 0);
    TEST_STREQ(qf.sender, "new@example.com");
    TEST_INTEQ(qf.content_size, sizeof(small) - 1);
    TEST_CHECK(qf.file_size < (uint64_t)st2.st_size);
    char got[sizeof(small)] = { 0 };
    TEST_INTEQ(pread(fd, got, sizeof(small) - 1, qf.content_offset), (ssize_t)sizeof(small) - 1);
    TEST_STREQ(got, small);
    qfile_free(&qf);

    /* a spent file whose mode is not 0600 (a crash lost qmgr's fchmod)
     * is never reused, and the tidy removes it */
    TEST_INTEQ(qfile_recycle(tmpdir, QUEUE_INCOMING, qid2, fd), 0);
    close(fd);
    char *spent = xasprintf("%s/%s/%s", tmpdir, QUEUE_RECYCLE, qid2);
    TEST_INTEQ(chmod(spent, QFILE_MODE_COMPLETE), 0);
    next_second();
    char *path3 = write_message("third@example.com", 1, small, sizeof(small) - 1, qid3);
    TEST_CHECK(!last_renamed);
    TEST_INTEQ(access(spent, F_OK), 0);
    TEST_INTEQ(qfile_recycle_tidy(tmpdir, true), 0);
    TEST_CHECK(access(spent, F_OK) < 0);

    /* too large to keep: the caller unlinks it */
    fd = open(path3, O_RDWR);
    TEST_INTEQ(fstat(fd, &st), 0);
    TEST_INTEQ(ftruncate(fd, QFILE_RECYCLE_MAX_SIZE + 1), 0);
    TEST_INTEQ(qfile_recycle(tmpdir, QUEUE_INCOMING, qid3, fd), -1);
    TEST_INTEQ(ftruncate(fd, 100), 0);
    TEST_INTEQ(qfile_recycle(tmpdir, QUEUE_INCOMING, qid3, fd), 0);
    close(fd);
    /* a claimed file looks new to qmgr's stale-file cleanup before its
     * writer has written anything */
    char *spent3 = xasprintf("%s/%s/%s", tmpdir, QUEUE_RECYCLE, qid3);
    struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    TEST_INTEQ(utimensat(AT_FDCWD, spent3, old, 0), 0);
    next_second();
    qfile_writer_t *w;
    TEST_INTEQ(qfile_create(tmpdir, &w, &why), 0);
    TEST_CHECK(qfile_name_needs_dir_sync(w));
    TEST_INTEQ(fstat(qfile_writer_fd(w), &st2), 0);
    TEST_CHECK(st2.st_ino == st.st_ino && st2.st_mtime > time(NULL) - 60);
    qfile_abort(&w);
    TEST_INTEQ(utimensat(AT_FDCWD, spent3, old, 0), -1);
    free(spent3);
    /* without keep, the tidy empties recycle/ */
    char *path4 = write_message("fourth@example.com", 1, small, sizeof(small) - 1, qid3);
    fd = open(path4, O_RDWR);
    free(path4);
    TEST_INTEQ(qfile_recycle(tmpdir, QUEUE_INCOMING, qid3, fd), 0);
    close(fd);
    TEST_INTEQ(qfile_recycle_tidy(tmpdir, true), 1);
    TEST_INTEQ(qfile_recycle_tidy(tmpdir, false), 0);
    TEST_INTEQ(qfile_recycle_tidy(tmpdir, true), 0);
    free(spent);
    free(path);
    free(path2);
    free(path3);
    free(content);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 2;
    char *d1 = xasprintf("%s/incoming", tmpdir), *d2 = xasprintf("%s/maildrop", tmpdir);
    char *d3 = xasprintf("%s/%s", tmpdir, QUEUE_RECYCLE);
    mkdir(d1, 0700);
    mkdir(d2, 0700);
    mkdir(d3, 0700);
    test_round_trip();
    test_null_sender_empty_body();
    test_torn();
    test_garbled();
    test_bad_records();
    test_writer_errors();
    test_mark();
    test_recycle();
    rmdir(d1);
    rmdir(d2);
    rmdir(d3);
    free(d3);
    rmdir(tmpdir);
    free(d1);
    free(d2);
    return test_done();
}
