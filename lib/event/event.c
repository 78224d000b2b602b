/* event - epoll loop with heap timers, signalfd and before-sleep hooks */
#include "event/event.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

typedef struct event_fd {
    event_fd_fn *fn;
    void *ctx;
    unsigned mask;          /* what the owner wants reported */
    unsigned armed;         /* what epoll watches: never less than mask */
    bool used;
} event_fd_t;

struct event_timer {
    int64_t when;
    uint64_t seq;           /* ties run in the order they were added */
    size_t pos;             /* index in the heap */
    event_cb_fn *fn;
    void *ctx;
};

typedef struct event_hook {
    event_cb_fn *fn;
    void *ctx;
} event_hook_t;

typedef struct event_sig {
    int signo;
    event_signal_fn *fn;
    void *ctx;
} event_sig_t;

struct event_loop {
    int epfd;
    event_fd_t *fds;        /* indexed by fd */
    size_t nfds;
    event_timer_t **heap;
    size_t nheap, capheap;
    uint64_t timer_seq;
    event_hook_t *hooks;
    size_t nhooks;
    int sigfd;
    sigset_t sigmask;
    event_sig_t *sigs;
    size_t nsigs;
    int64_t now;
    bool stop;
};

static int64_t event_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

event_loop_t *event_loop_new(void)
{
    event_loop_t *loop = xcalloc(1, sizeof(*loop));

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        msg_fatal("epoll_create1: %m");
    loop->sigfd = -1;
    sigemptyset(&loop->sigmask);
    loop->now = event_clock_ms();
    return loop;
}

void event_loop_free(event_loop_t **lp)
{
    event_loop_t *loop = *lp;

    if (loop == NULL)
        return;
    close(loop->epfd);
    if (loop->sigfd >= 0)
        close(loop->sigfd);
    for (size_t i = 0; i < loop->nheap; i++)
        free(loop->heap[i]);
    free(loop->heap);
    free(loop->fds);
    free(loop->hooks);
    free(loop->sigs);
    xfreep(lp);
}

static uint32_t event_epoll_mask(unsigned mask)
{
    return ((mask & EVENT_READ) ? EPOLLIN : 0) | ((mask & EVENT_WRITE) ? EPOLLOUT : 0);
}

int event_fd_add(event_loop_t *loop, int fd, unsigned mask, event_fd_fn *fn, void *ctx)
{
    struct epoll_event ev = { .events = event_epoll_mask(mask), .data.fd = fd };

    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= loop->nfds) {
        size_t n = loop->nfds ? loop->nfds : 64;

        while (n <= (size_t)fd)
            n *= 2;
        loop->fds = xreallocarray(loop->fds, n, sizeof(*loop->fds));
        memset(loop->fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*loop->fds));
        loop->nfds = n;
    }
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    loop->fds[fd] = (event_fd_t){ .fn = fn, .ctx = ctx, .mask = mask, .armed = mask, .used = true };
    return 0;
}

/* event_fd_arm - make epoll watch exactly the wanted mask */
static int event_fd_arm(event_loop_t *loop, int fd, event_fd_t *ef)
{
    struct epoll_event ev = { .events = event_epoll_mask(ef->mask), .data.fd = fd };

    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -1;
    ef->armed = ef->mask;
    return 0;
}

/* event_fd_mod - a wider mask is armed now; a narrower one only when an
 * event it no longer wants arrives: a session that pauses reading while
 * it waits for a lookup or a disk flush, and resumes before the client
 * says more, costs no system call either way */
int event_fd_mod(event_loop_t *loop, int fd, unsigned mask)
{
    event_fd_t *ef;
    unsigned old;

    if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].used) {
        errno = EBADF;
        return -1;
    }
    ef = &loop->fds[fd];
    old = ef->mask;
    ef->mask = mask;
    if ((mask & ~ef->armed) == 0)
        return 0;
    if (event_fd_arm(loop, fd, ef) < 0) {
        ef->mask = old;
        return -1;
    }
    return 0;
}

void event_fd_del(event_loop_t *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].used)
        return;
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    loop->fds[fd].used = false;
}

/* Binary min-heap on (when, seq). */
static bool event_timer_less(const event_timer_t *a, const event_timer_t *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void event_heap_set(event_loop_t *loop, size_t i, event_timer_t *t)
{
    loop->heap[i] = t;
    t->pos = i;
}

static void event_heap_up(event_loop_t *loop, size_t i)
{
    event_timer_t *t = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!event_timer_less(t, loop->heap[parent]))
            break;
        event_heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    event_heap_set(loop, i, t);
}

static void event_heap_down(event_loop_t *loop, size_t i)
{
    event_timer_t *t = loop->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= loop->nheap)
            break;
        if (c + 1 < loop->nheap && event_timer_less(loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!event_timer_less(loop->heap[c], t))
            break;
        event_heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    event_heap_set(loop, i, t);
}

static void event_heap_remove(event_loop_t *loop, size_t i)
{
    event_timer_t *last = loop->heap[--loop->nheap];

    if (i == loop->nheap)
        return;
    event_heap_set(loop, i, last);
    event_heap_down(loop, i);
    event_heap_up(loop, last->pos);
}

event_timer_t *event_timer_add(event_loop_t *loop, int64_t ms, event_cb_fn *fn, void *ctx)
{
    event_timer_t *t = xcalloc(1, sizeof(*t));

    t->when = loop->now + (ms > 0 ? ms : 0);
    t->seq = loop->timer_seq++;
    t->fn = fn;
    t->ctx = ctx;
    if (loop->nheap == loop->capheap) {
        loop->capheap = loop->capheap ? 2 * loop->capheap : 64;
        loop->heap = xreallocarray(loop->heap, loop->capheap, sizeof(*loop->heap));
    }
    event_heap_set(loop, loop->nheap++, t);
    event_heap_up(loop, t->pos);
    return t;
}

void event_timer_cancel(event_loop_t *loop, event_timer_t **tp)
{
    event_timer_t *t = *tp;

    if (t == NULL)
        return;
    event_heap_remove(loop, t->pos);
    xfreep(tp);
}

static void event_signal_ready(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        for (size_t i = 0; i < loop->nsigs; i++)
            if (loop->sigs[i].signo == (int)si.ssi_signo)
                loop->sigs[i].fn(loop, (int)si.ssi_signo, loop->sigs[i].ctx);
    }
}

int event_signal_add(event_loop_t *loop, int signo, event_signal_fn *fn, void *ctx)
{
    sigaddset(&loop->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) < 0)
        return -1;
    if (loop->sigfd < 0) {
        loop->sigfd = signalfd(-1, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (loop->sigfd < 0 || event_fd_add(loop, loop->sigfd, EVENT_READ, event_signal_ready, NULL) < 0)
            return -1;
    } else if (signalfd(loop->sigfd, &loop->sigmask, 0) < 0) {
        return -1;
    }
    loop->sigs = xreallocarray(loop->sigs, loop->nsigs + 1, sizeof(*loop->sigs));
    loop->sigs[loop->nsigs++] = (event_sig_t){ signo, fn, ctx };
    return 0;
}

void event_before_sleep(event_loop_t *loop, event_cb_fn *fn, void *ctx)
{
    loop->hooks = xreallocarray(loop->hooks, loop->nhooks + 1, sizeof(*loop->hooks));
    loop->hooks[loop->nhooks++] = (event_hook_t){ fn, ctx };
}

int64_t event_now_ms(event_loop_t *loop)
{
    return loop->now;
}

void event_loop_stop(event_loop_t *loop)
{
    loop->stop = true;
}

static void event_run_timers(event_loop_t *loop)
{
    /* Bounded: timers added while running fire on a later pass. */
    size_t budget = loop->nheap;

    while (budget-- > 0 && loop->nheap > 0 && loop->heap[0]->when <= loop->now) {
        event_timer_t *t = loop->heap[0];
        event_cb_fn *fn = t->fn;
        void *ctx = t->ctx;

        event_heap_remove(loop, 0);
        free(t);
        fn(loop, ctx);
    }
}

void event_loop_run(event_loop_t *loop)
{
    struct epoll_event evs[256];

    loop->stop = false;
    while (!loop->stop) {
        int timeout = -1, n;

        for (size_t i = 0; i < loop->nhooks; i++)
            loop->hooks[i].fn(loop, loop->hooks[i].ctx);
        if (loop->stop)
            break;
        if (loop->nheap > 0) {
            int64_t d = loop->heap[0]->when - event_clock_ms();

            timeout = d < 0 ? 0 : (d > 3600000 ? 3600000 : (int)d);
        }
        n = epoll_wait(loop->epfd, evs, 256, timeout);
        loop->now = event_clock_ms();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg_fatal("epoll_wait: %m");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            unsigned mask = 0;
            event_fd_t *ef;

            if ((size_t)fd >= loop->nfds || !loop->fds[fd].used)
                continue;       /* deleted by an earlier handler */
            ef = &loop->fds[fd];
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                mask |= EVENT_READ;
            if (evs[i].events & EPOLLOUT)
                mask |= EVENT_WRITE;
            if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
                /* reported whatever the mask, as readable (a read says
                 * what happened); writable only if that is wanted */
                mask = (mask & (ef->mask | EVENT_READ)) | EVENT_ERROR;
            } else if (mask & ~ef->mask) {
                if (event_fd_arm(loop, fd, ef) < 0)
                    msg_warn("epoll_ctl fd %d: %m", fd);
                if ((mask &= ef->mask) == 0)
                    continue;
            }
            ef->fn(loop, fd, mask, ef->ctx);
        }
        event_run_timers(loop);
    }
}
