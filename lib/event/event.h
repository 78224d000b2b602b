#ifndef STORK_EVENT_H
#define STORK_EVENT_H
/*
 * NAME
 *	event - the one event loop (epoll, heap timers, signals, before-sleep)
 * SUMMARY
 *	Every daemon runs one loop. No daemon calls epoll directly.
 * DESCRIPTION
 *	event_loop_new/free: create/destroy a loop.
 *	event_fd_add(loop, fd, mask, fn, ctx): watch fd for EVENT_READ and/or
 *	EVENT_WRITE; fn(loop, fd, ready_mask, ctx) runs when ready.
 *	event_fd_mod changes the mask (0 = keep the fd but watch nothing);
 *	only what the mask holds is reported (hang-up and error always are),
 *	and narrowing reaches epoll lazily, when an unwanted event arrives;
 *	event_fd_del stops watching (call before close()). A handler may
 *	delete any fd, including its own, while running.
 *	event_timer_add(loop, ms, fn, ctx) runs fn once after ms; returns a
 *	handle that event_timer_cancel(loop, &t) cancels and NULLs. The handle
 *	is invalid once the timer has run.
 *	event_signal_add(loop, signo, fn, ctx): handle a signal in the loop
 *	(signalfd); the signal is blocked for the process.
 *	event_before_sleep(loop, fn, ctx): fn runs each time the loop is about
 *	to wait (the hook for group commit and output flushing).
 *	event_now_ms: a cached monotonic clock in ms, updated every wake-up.
 *	event_loop_run runs until event_loop_stop.
 * ERRORS
 *	event_fd_add returns -1 with errno on epoll errors.
 */
#include <stdint.h>

#define EVENT_READ  1u
#define EVENT_WRITE 2u
#define EVENT_ERROR 4u   /* reported only: hang-up or error on the fd */

typedef struct event_loop event_loop_t;
typedef struct event_timer event_timer_t;
typedef void event_fd_fn(event_loop_t *loop, int fd, unsigned mask, void *ctx);
typedef void event_cb_fn(event_loop_t *loop, void *ctx);
typedef void event_signal_fn(event_loop_t *loop, int signo, void *ctx);

event_loop_t *event_loop_new(void);
void event_loop_free(event_loop_t **loop);
int event_fd_add(event_loop_t *loop, int fd, unsigned mask, event_fd_fn *fn, void *ctx);
int event_fd_mod(event_loop_t *loop, int fd, unsigned mask);
void event_fd_del(event_loop_t *loop, int fd);
event_timer_t *event_timer_add(event_loop_t *loop, int64_t ms, event_cb_fn *fn, void *ctx);
void event_timer_cancel(event_loop_t *loop, event_timer_t **timer);
int event_signal_add(event_loop_t *loop, int signo, event_signal_fn *fn, void *ctx);
void event_before_sleep(event_loop_t *loop, event_cb_fn *fn, void *ctx);
int64_t event_now_ms(event_loop_t *loop);
void event_loop_run(event_loop_t *loop);
void event_loop_stop(event_loop_t *loop);

#endif
