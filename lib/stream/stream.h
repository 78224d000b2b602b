#ifndef STORK_STREAM_STREAM_H
#define STORK_STREAM_STREAM_H
/*
 * NAME
 *	stream - a buffered, non-blocking byte stream on lib/event over a
 *	switchable transport (plain socket or lib/tls)
 * SUMMARY
 *	One object for line protocols (the SMTP/LMTP client, later smtpd):
 *	input is buffered and handed out line by line with a length limit,
 *	output is buffered and written as the socket allows, a deadline
 *	bounds every wait, and STARTTLS is a switch of transport in place.
 * DESCRIPTION
 *	stream_new(loop, fd, line_limit, fn, ctx): wrap a connected
 *	non-blocking socket; the stream owns fd and closes it on free.
 *	fn(s, event, ctx) is called from the loop with one of:
 *	  STREAM_EV_READ       input arrived (or EOF/error is pending):
 *	                       call stream_get_line until it returns 0.
 *	                       Only while reading is wanted.
 *	  STREAM_EV_DRAINED    all buffered output has been written.
 *	  STREAM_EV_HANDSHAKE  the TLS handshake started by
 *	                       stream_start_tls is done.
 *	  STREAM_EV_TIMEOUT    the deadline passed.
 *	  STREAM_EV_ERROR      a write or the handshake failed
 *	                       (stream_error says why); the stream is dead.
 *	stream_want_read(s, on): watch for input; when a whole line is
 *	already buffered, READ is delivered at once (from the loop).
 *	stream_set_deadline(s, ms): TIMEOUT after ms (0 cancels).
 *	stream_write/stream_puts/stream_printf: queue output; -1 when the
 *	output buffer limit (STREAM_OUT_LIMIT) would be exceeded.
 *	stream_out_pending(s): bytes not yet written.
 *	stream_get_line(s, &line, &len): 1 and the next line without its
 *	LF (a CR before it is removed too; line is NUL-terminated and valid
 *	until the next call), 0 when no whole line is buffered, -1 on EOF,
 *	a read error or a line longer than line_limit (stream_error says
 *	which: "lost connection", "line too long", OpenSSL's text).
 *	stream_start_tls(s, tc, &why): switch to TLS over the same socket;
 *	the stream owns tc from now on (tls_conn_free on stream_free).
 *	Refused (-1) while output is pending, and when input is already
 *	buffered: bytes sent in plaintext after the STARTTLS reply are an
 *	injection attempt (CVE-2011-0411), never data. The handshake runs
 *	from the loop and ends with HANDSHAKE or ERROR.
 *	stream_tls(s): the TLS conn once started (NULL before).
 *	stream_set_ops(s, ops, tctx): install another transport (the
 *	general form of stream_start_tls, for tests and future transports).
 *	stream_free(&s): safe inside fn (the free is deferred until fn
 *	returns); no more events are delivered.
 * OWNERSHIP
 *	The stream owns fd, its buffers and the TLS conn. Lines borrow from
 *	the input buffer.
 * LIMITS
 *	line_limit (at least 64): longest line accepted; input is read at
 *	most line_limit + 16 KiB ahead; STREAM_OUT_LIMIT of queued output.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "event/event.h"
#include "util/msg.h"

#define STREAM_OUT_LIMIT (4 * 1024 * 1024)

enum {
    STREAM_EV_READ = 1, STREAM_EV_DRAINED, STREAM_EV_HANDSHAKE, STREAM_EV_TIMEOUT,
    STREAM_EV_ERROR
};

typedef enum {
    STREAM_IO_DONE, STREAM_IO_WANT_READ, STREAM_IO_WANT_WRITE, STREAM_IO_EOF, STREAM_IO_ERROR
} stream_io_t;

/* A transport: read/write with non-blocking semantics; pending = bytes
 * the transport already holds decrypted; handshake NULL when none. */
typedef struct stream_ops {
    const char *name;
    stream_io_t (*read)(void *tctx, int fd, void *buf, size_t size, size_t *n_r,
                        const char **why_r);
    stream_io_t (*write)(void *tctx, int fd, const void *buf, size_t len, size_t *n_r,
                         const char **why_r);
    stream_io_t (*handshake)(void *tctx, const char **why_r);
    size_t (*pending)(void *tctx);
    void (*free)(void *tctx);
} stream_ops_t;

typedef struct stream stream_t;
typedef void stream_fn(stream_t *s, int event, void *ctx);
struct tls_conn;

stream_t *stream_new(event_loop_t *loop, int fd, size_t line_limit, stream_fn *fn, void *ctx);
void stream_free(stream_t **s);
int stream_fd(const stream_t *s);
void stream_want_read(stream_t *s, bool on);
void stream_set_deadline(stream_t *s, int64_t ms);
int stream_write(stream_t *s, const void *p, size_t n);
int stream_puts(stream_t *s, const char *str);
int stream_printf(stream_t *s, const char *fmt, ...) STORK_PRINTF(2, 3);
size_t stream_out_pending(const stream_t *s);
int stream_get_line(stream_t *s, const char **line_r, size_t *len_r);
int stream_set_ops(stream_t *s, const stream_ops_t *ops, void *tctx, const char **why_r);
int stream_start_tls(stream_t *s, struct tls_conn *tc, const char **why_r);
struct tls_conn *stream_tls(const stream_t *s);
const char *stream_error(const stream_t *s);

#endif
