/* event_test - timers fire in order, fds become readable, signals arrive */
#include "test/test.h"
#include "event/event.h"

#include <signal.h>
#include <unistd.h>

static char order[16];
static int norder;

static void on_timer(event_loop_t *loop, void *ctx)
{
    order[norder++] = *(const char *)ctx;
    if (norder == 3)
        event_loop_stop(loop);
}

static void on_read(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    char c;

    TEST_CHECK(mask & EVENT_READ);
    TEST_INTEQ(read(fd, &c, 1), 1);
    *(char *)ctx = c;
    event_fd_del(loop, fd);
}

static void on_signal(event_loop_t *loop, int signo, void *ctx)
{
    *(int *)ctx = signo;
    event_loop_stop(loop);
}

static void on_count(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    ((int *)ctx)[0]++;
    ((int *)ctx)[1] = (int)mask;
}

static void on_stop(event_loop_t *loop, void *ctx)
{
    event_loop_stop(loop);
}

static void on_tick(event_loop_t *loop, void *ctx)
{
    (*(int *)ctx)++;
}

/* test_paused_fd - mask 0 reports nothing though data waits (epoll is
 * narrowed when the first unwanted event comes, so the loop does not
 * spin), and widening again reports it */
static void test_paused_fd(void)
{
    event_loop_t *loop = event_loop_new();
    int p[2], seen[2] = { 0, 0 }, ticks = 0;

    TEST_CHECK(pipe(p) == 0);
    TEST_INTEQ(event_fd_add(loop, p[0], EVENT_READ, on_count, seen), 0);
    TEST_INTEQ(event_fd_mod(loop, p[0], 0), 0);
    TEST_INTEQ(write(p[1], "z", 1), 1);
    for (int ms = 1; ms <= 50; ms++)
        event_timer_add(loop, ms, on_tick, &ticks);
    event_timer_add(loop, 60, on_stop, NULL);
    event_loop_run(loop);
    TEST_INTEQ(seen[0], 0);
    TEST_INTEQ(ticks, 50);
    TEST_INTEQ(event_fd_mod(loop, p[0], EVENT_WRITE), 0);
    TEST_INTEQ(event_fd_mod(loop, p[0], EVENT_READ), 0);
    event_timer_add(loop, 50, on_stop, NULL);
    event_loop_run(loop);
    TEST_CHECK(seen[0] >= 1);
    TEST_INTEQ(seen[1], EVENT_READ);
    close(p[0]);
    close(p[1]);
    event_loop_free(&loop);
}

int main(void)
{
    event_loop_t *loop = event_loop_new();
    event_timer_t *cancelled;
    int p[2];
    char got = 0;
    int sig = 0;

    event_timer_add(loop, 30, on_timer, "c");
    event_timer_add(loop, 10, on_timer, "a");
    cancelled = event_timer_add(loop, 15, on_timer, "x");
    event_timer_add(loop, 20, on_timer, "b");
    event_timer_cancel(loop, &cancelled);
    TEST_CHECK(cancelled == NULL);
    TEST_CHECK(pipe(p) == 0);
    TEST_INTEQ(write(p[1], "z", 1), 1);
    TEST_INTEQ(event_fd_add(loop, p[0], EVENT_READ, on_read, &got), 0);
    event_loop_run(loop);
    order[norder] = 0;
    TEST_STREQ(order, "abc");
    TEST_INTEQ(got, 'z');

    TEST_INTEQ(event_signal_add(loop, SIGUSR1, on_signal, &sig), 0);
    raise(SIGUSR1);
    event_loop_run(loop);
    TEST_INTEQ(sig, SIGUSR1);
    event_loop_free(&loop);
    TEST_CHECK(loop == NULL);
    test_paused_fd();
    return test_done();
}
