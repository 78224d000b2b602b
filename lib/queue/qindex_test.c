/* qindex_test - the BDB queue index with real files */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/qindex.h"
#include "test/test.h"
#include "util/xmalloc.h"

static char tmpdir[] = "/tmp/qindex_test.XXXXXX";
static char *dbpath;

/* make_entry - an entry with n recipients */
static void make_entry(qindex_entry_t *e, const char *qid, const char *queue, int64_t next, size_t n)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->qid, qid, QID_BUFSIZE);
    snprintf(e->queue, sizeof(e->queue), "%s", queue);
    e->arrival_sec = 1700000000;
    e->arrival_usec = 42;
    e->size = 1234;
    e->sender = xstrdup("sender@example.com");
    e->next_attempt = next;
    e->nrcpts = n;
    e->rcpts = xcalloc(n, sizeof(*e->rcpts));
    for (size_t i = 0; i < n; i++) {
        e->rcpts[i].addr = xasprintf("r%zu@example.org", i);
        e->rcpts[i].status = i % 2 ? QFILE_RCPT_DONE : QFILE_RCPT_PENDING;
        e->rcpts[i].reason = xstrdup(i % 2 ? "" : "4.4.1 connection refused");
    }
}

static int walk_count(const qindex_entry_t *e, void *ctx)
{
    char *last = ctx;
    if (strcmp(last, e->qid) >= 0)
        return 1;
    memcpy(last, e->qid, QID_BUFSIZE);
    return 0;
}

/* walk_check - a walked entry decodes like qindex_get's; stops after 2 */
typedef struct { int n; char first[QID_BUFSIZE]; size_t rcpts; } walk_from_t;

static int walk_check(const qindex_entry_t *e, void *ctx)
{
    walk_from_t *w = ctx;

    if (w->n == 0)
        memcpy(w->first, e->qid, QID_BUFSIZE);
    TEST_STREQ(e->sender, "sender@example.com");
    TEST_INTEQ(e->size, 1234);
    for (size_t i = 0; i < e->nrcpts; i++) {
        char want[48];
        snprintf(want, sizeof(want), "r%zu@example.org", i);
        TEST_STREQ(e->rcpts[i].addr, want);
        TEST_STREQ(e->rcpts[i].reason, i % 2 ? "" : "4.4.1 connection refused");
    }
    w->rcpts += e->nrcpts;
    return ++w->n == 2;
}

typedef struct { int n; int64_t times[16]; char qids[16][QID_BUFSIZE]; } due_t;

static int due_collect(const char *qid, int64_t t, void *ctx)
{
    due_t *d = ctx;
    if (d->n < 16) {
        d->times[d->n] = t;
        memcpy(d->qids[d->n], qid, QID_BUFSIZE);
    }
    d->n++;
    return 0;
}

/* test_basic - put, get, replace, delete, walk, due */
static void test_basic(void)
{
    bool clean = true;
    const char *why;
    qindex_t *qi = qindex_open(dbpath, &clean, &why);
    char ids[5][QID_BUFSIZE];
    qindex_entry_t e, g;

    TEST_CHECK(qi != NULL);
    TEST_CHECK(!clean);
    for (int i = 0; i < 5; i++)
        qid_new(ids[i]);
    /* next attempts out of id order: 500, 100, 0 (unscheduled), 300, 200 */
    int64_t next[5] = { 500, 100, 0, 300, 200 };
    for (int i = 0; i < 5; i++) {
        make_entry(&e, ids[i], i == 2 ? QUEUE_HOLD : QUEUE_DEFERRED, next[i], (size_t)i + 1);
        TEST_INTEQ(qindex_put(qi, &e, &why), 0);
        qindex_entry_free(&e);
    }
    TEST_INTEQ(qindex_get(qi, ids[3], &g, &why), 1);
    TEST_STREQ(g.qid, ids[3]);
    TEST_STREQ(g.queue, QUEUE_DEFERRED);
    TEST_INTEQ(g.arrival_sec, 1700000000);
    TEST_INTEQ(g.arrival_usec, 42);
    TEST_INTEQ(g.size, 1234);
    TEST_STREQ(g.sender, "sender@example.com");
    TEST_INTEQ(g.next_attempt, 300);
    TEST_INTEQ(g.nrcpts, 4);
    TEST_STREQ(g.rcpts[2].addr, "r2@example.org");
    TEST_STREQ(g.rcpts[2].reason, "4.4.1 connection refused");
    TEST_INTEQ(g.rcpts[1].status, QFILE_RCPT_DONE);
    qindex_entry_free(&g);
    TEST_INTEQ(qindex_get(qi, "0000000000000000", &g, &why), 0);
    TEST_INTEQ(qindex_get(qi, "../x", &g, &why), 0);

    char last[QID_BUFSIZE] = "";
    TEST_INTEQ(qindex_walk(qi, walk_count, last, &why), 0);
    TEST_STREQ(last, ids[4]);

    /* resuming a walk: after a key, after a key that is gone, from "" */
    walk_from_t w = { 0 };
    TEST_INTEQ(qindex_walk_from(qi, ids[1], walk_check, &w, &why), 0);
    TEST_INTEQ(w.n, 2);
    TEST_STREQ(w.first, ids[2]);
    TEST_INTEQ(w.rcpts, 3 + 4);
    memset(&w, 0, sizeof(w));
    char gone[QID_BUFSIZE];
    memcpy(gone, ids[3], QID_BUFSIZE);
    gone[QID_LEN - 1] = gone[QID_LEN - 1] == '0' ? '1' : '0';
    TEST_INTEQ(qindex_walk_from(qi, gone, walk_check, &w, &why), 0);
    TEST_STREQ(w.first, strcmp(gone, ids[3]) < 0 ? ids[3] : ids[4]);
    memset(&w, 0, sizeof(w));
    TEST_INTEQ(qindex_walk_from(qi, "", walk_check, &w, &why), 0);
    TEST_STREQ(w.first, ids[0]);
    memset(&w, 0, sizeof(w));
    TEST_INTEQ(qindex_walk_from(qi, ids[4], walk_check, &w, &why), 0);
    TEST_INTEQ(w.n, 0);

    due_t d = { 0 };
    TEST_INTEQ(qindex_due(qi, 250, due_collect, &d, &why), 0);
    TEST_INTEQ(d.n, 2);
    TEST_INTEQ(d.times[0], 100);
    TEST_STREQ(d.qids[0], ids[1]);
    TEST_INTEQ(d.times[1], 200);

    /* rescheduling moves the due key; the old one is gone */
    make_entry(&e, ids[1], QUEUE_DEFERRED, 1000, 1);
    TEST_INTEQ(qindex_put(qi, &e, &why), 0);
    qindex_entry_free(&e);
    memset(&d, 0, sizeof(d));
    TEST_INTEQ(qindex_due(qi, INT64_MAX, due_collect, &d, &why), 0);
    TEST_INTEQ(d.n, 4);
    TEST_INTEQ(d.times[0], 200);
    TEST_INTEQ(d.times[3], 1000);

    /* deletion removes both */
    TEST_INTEQ(qindex_del(qi, ids[4], &why), 0);
    TEST_INTEQ(qindex_del(qi, ids[4], &why), 0);
    TEST_INTEQ(qindex_get(qi, ids[4], &g, &why), 0);
    memset(&d, 0, sizeof(d));
    TEST_INTEQ(qindex_due(qi, INT64_MAX, due_collect, &d, &why), 0);
    TEST_INTEQ(d.n, 3);
    TEST_INTEQ(d.times[0], 300);
    qindex_close(&qi, true);
    TEST_CHECK(qi == NULL);

    /* a clean close is trusted, and the data is there */
    qi = qindex_open(dbpath, &clean, &why);
    TEST_CHECK(qi != NULL && clean);
    TEST_INTEQ(qindex_get(qi, ids[0], &g, &why), 1);
    qindex_entry_free(&g);
    /* reset empties it */
    TEST_INTEQ(qindex_reset(qi, &why), 0);
    TEST_INTEQ(qindex_get(qi, ids[0], &g, &why), 0);
    memset(&d, 0, sizeof(d));
    TEST_INTEQ(qindex_due(qi, INT64_MAX, due_collect, &d, &why), 0);
    TEST_INTEQ(d.n, 0);
    qindex_close(&qi, true);
}

/* test_crash - a process that dies with the index open leaves it unclean */
static void test_crash(void)
{
    bool clean = false;
    const char *why;
    char id[QID_BUFSIZE];

    qid_new(id);
    pid_t pid = fork();
    if (pid == 0) {
        qindex_t *qi = qindex_open(dbpath, &clean, &why);
        qindex_entry_t e;
        make_entry(&e, id, QUEUE_DEFERRED, 5, 1);
        qindex_put(qi, &e, &why);
        _exit(clean ? 3 : 0);       /* no close: as kill -9 */
    }
    int st;
    waitpid(pid, &st, 0);
    TEST_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    qindex_t *qi = qindex_open(dbpath, &clean, &why);
    TEST_CHECK(qi != NULL);
    TEST_CHECK(!clean);
    qindex_close(&qi, false);
    qi = qindex_open(dbpath, &clean, &why);
    TEST_CHECK(qi != NULL && !clean);
    qindex_close(&qi, true);
}

/* test_garbage - an unreadable file is recreated and not trusted */
static void test_garbage(void)
{
    bool clean = true;
    const char *why;
    int fd = open(dbpath, O_WRONLY | O_TRUNC);
    char junk[8192];

    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 131 + 7);
    TEST_CHECK(fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
    close(fd);
    qindex_t *qi = qindex_open(dbpath, &clean, &why);
    TEST_CHECK(qi != NULL);
    TEST_CHECK(!clean);
    char id[QID_BUFSIZE];
    qindex_entry_t e;
    qid_new(id);
    make_entry(&e, id, QUEUE_ACTIVE, 0, 100);
    TEST_INTEQ(qindex_put(qi, &e, &why), 0);
    qindex_entry_free(&e);
    qindex_close(&qi, true);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 2;
    dbpath = xasprintf("%s/queue.db", tmpdir);
    test_basic();
    test_crash();
    test_garbage();
    unlink(dbpath);
    rmdir(tmpdir);
    free(dbpath);
    return test_done();
}
