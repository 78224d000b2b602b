/* qid_test - queue ids are unique, sorted by time, valid, and decode */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/qid.h"
#include "test/test.h"

#define N_IDS 20000

/* cmp - for qsort of the id array */
static int cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* test_unique_sorted - ids from one process are strictly increasing */
static void test_unique_sorted(void)
{
    static char ids[N_IDS][QID_BUFSIZE];
    int ok_order = 1, ok_valid = 1;

    for (int i = 0; i < N_IDS; i++) {
        qid_new(ids[i]);
        if (!qid_valid(ids[i]))
            ok_valid = 0;
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            ok_order = 0;
    }
    TEST_CHECK(ok_valid);
    TEST_CHECK(ok_order);
    TEST_INTEQ(strlen(ids[0]), QID_LEN);
}

/* test_two_processes - ids made at once in two processes never collide */
static void test_two_processes(void)
{
    static char ids[2 * 1000][QID_BUFSIZE];
    int fds[2];

    TEST_CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char id[QID_BUFSIZE];
        for (int i = 0; i < 1000; i++) {
            qid_new(id);
            if (write(fds[1], id, QID_BUFSIZE) != QID_BUFSIZE)
                _exit(1);
        }
        _exit(0);
    }
    for (int i = 0; i < 1000; i++)
        qid_new(ids[i]);
    close(fds[1]);
    size_t got = 0;
    char *p = (char *)ids[1000];
    ssize_t n;
    while (got < 1000 * QID_BUFSIZE && (n = read(fds[0], p + got, 1000 * QID_BUFSIZE - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    TEST_INTEQ(got, 1000 * QID_BUFSIZE);
    qsort(ids, 2000, QID_BUFSIZE, cmp);
    int dup = 0;
    for (int i = 1; i < 2000; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            dup++;
    TEST_INTEQ(dup, 0);
}

/* test_valid - the validator refuses anything that could escape a path */
static void test_valid(void)
{
    TEST_CHECK(qid_valid("0123456789ABCDEV"));
    TEST_CHECK(!qid_valid("0123456789ABCDEW"));
    TEST_CHECK(!qid_valid("0123456789abcdef"));
    TEST_CHECK(!qid_valid("0123456789ABCDE"));
    TEST_CHECK(!qid_valid("0123456789ABCDEF0"));
    TEST_CHECK(!qid_valid("../../etc/passwd"));
    TEST_CHECK(!qid_valid("t.0123456789ABCD"));
    TEST_CHECK(!qid_valid(""));
    TEST_CHECK(!qid_valid(NULL));
}

/* test_time - the encoded time is the creation time */
static void test_time(void)
{
    char id[QID_BUFSIZE];
    struct timeval before, after;
    int64_t sec;
    int32_t usec;

    gettimeofday(&before, NULL);
    qid_new(id);
    gettimeofday(&after, NULL);
    TEST_INTEQ(qid_time(id, &sec, &usec), 0);
    TEST_CHECK(sec >= before.tv_sec && sec <= after.tv_sec + 1);
    TEST_CHECK(usec >= 0 && usec < 1000000);
    TEST_INTEQ(qid_time("nope", &sec, &usec), -1);
}

int main(void)
{
    test_unique_sorted();
    test_two_processes();
    test_valid();
    test_time();
    return test_done();
}
