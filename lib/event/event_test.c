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
    return test_done();
}
