#ifndef STORK_IPC_H
#define STORK_IPC_H
/*
 * NAME
 *	ipc - the one typed, versioned record protocol between processes
 * SUMMARY
 *	Frames over UNIX stream sockets. A frame is a 12-byte little-endian
 *	header {u32 length of payload, u16 message type, u16 flags,
 *	u32 request id} and a payload of attributes
 *	{u16 attr id, u8 type, u32 length, bytes}. Strings are sent without
 *	NUL; the decoder checks there is no embedded NUL and hands out
 *	NUL-terminated views. A GROUP's bytes are a nested attribute list
 *	(used for recipient lists). Flag IPC_FLAG_FD: one descriptor rides
 *	with the frame (SCM_RIGHTS, same sendmsg); a descriptor arriving on
 *	a frame without that flag is closed.
 *	The schema (attribute types, required attributes per message) is in
 *	ipc_msgs.def and is checked on send (program bug → msg_panic) and
 *	on receive (peer error → -1 and the connection is closed; never
 *	fatal). Unknown attributes are skipped (forward compatible).
 *	On accept, a server sends HELLO {PROTO, MAJOR, MINOR}; a client
 *	checks PROTO and MAJOR (ipc_connect does this).
 * BUILDING A MESSAGE
 *	ipc_msg_t m; ipc_msg_init(&m, IPC_M_QMGR_NEW);
 *	ipc_put_str(&m, IPC_A_QID, qid);
 *	g = ipc_group_begin(&m, IPC_A_RCPT); ipc_put_str(&m, IPC_A_ADDR, a);
 *	ipc_group_end(&m, g);
 *	ipc_msg_free(&m) releases it (and closes m.fd if still set).
	ipc_msg_reset(&m) empties it for the next message of the same type
	(type and req_id stay; the payload memory is kept).
 * READING A MESSAGE
 *	ipc_view_t v = ipc_msg_view(&m);  (top level attributes)
 *	ipc_get_str(v, IPC_A_QID) → borrowed string or NULL if absent.
 *	ipc_get_u64(v, IPC_A_SIZE, &n) → 0, or -1 if absent.
 *	ipc_get_bool(v, attr, &b) → 0, or -1 if absent.
 *	ipc_get_bytes(v, attr, &p, &n) → 0, or -1 if absent.
 *	for (size_t it = 0; ipc_next_group(v, IPC_A_RCPT, &it, &g) == 0; )
 *	    ... ipc_get_str(g, IPC_A_ADDR) ...
 *	Views and strings borrow from the message: valid until ipc_msg_free.
 *	ipc_msg_move(dst, src): dst (not initialized, or already freed)
 *	takes over src's payload and fd; src is left empty.
 *	A message whose payload grows past the limit while being built is
 *	marked overflow; sending it fails (ipc_send: -1 with EMSGSIZE;
 *	ipc_conn_send: the connection is closed with "message too large").
 *	Building with an undeclared attribute or the wrong type is a program
 *	bug (msg_panic), and so is sending a message that fails ipc_validate.
 * IN MEMORY
 *	A message's payload is the wire format except that every STR
 *	attribute also carries its terminating NUL (counted in its length);
 *	ipc_encode/ipc_decode convert. ipc_validate checks the in-memory
 *	form: known message type, well-formed lengths, declared types (U64
 *	is 8 bytes, BOOL 1 byte of 0 or 1, STR without embedded NUL),
 *	groups nested at most IPC_MAX_DEPTH, no repeated non-GROUP known
 *	attribute in one list, required attributes at top level.
 *	ipc_encode(m, out): append the wire frame (header + payload) to out;
 *	-1 if the message overflowed or the frame would exceed IPC_MAX_FRAME.
 *	ipc_decode(frame, len, m, &why): one whole wire frame (header and
 *	exactly its payload) into a validated message (m->fd = -1); the
 *	flags are kept as sent. For tools (storkipc) and fuzzing.
 * BLOCKING API (CLI, agents)
 *	ipc_connect(path, proto, timeout_ms, &why): connect to a UNIX socket
 *	and check its HELLO; returns fd or -1.
 *	ipc_send(fd, &m, timeout_ms) / ipc_recv(fd, &m, timeout_ms, &why):
 *	-1 on error, timeout, EOF (why = "connection closed") or protocol
 *	error (why says which).
 *	ipc_hello(fd, proto): send HELLO (servers, right after accept).
 *	ipc_hello_check(&m, proto, &why): is m that HELLO (name and major)?
 *	ipc_connect_start(path, &why): a non-blocking connect that does not
 *	wait for the HELLO; pair it with ipc_conn_expect_hello(conn, proto),
 *	which checks and swallows the HELLO when it arrives (a mismatch
 *	closes the conn through on_close). Frames may be sent before.
 * EVENT API (qmgr, smtpd, verify)
 *	ipc_conn_new(loop, fd, on_msg, on_close, ctx): reads frames as they
 *	arrive and calls on_msg(conn, &m, ctx) for each valid one (m is
 *	freed after on_msg returns unless the handler ipc_msg_move()s it);
 *	on EOF, error or a protocol error, calls on_close(conn, why, ctx)
 *	once; the handler must then ipc_conn_free(). ipc_conn_send queues a
 *	frame and writes it as the socket allows (output is unbounded in
 *	count but each frame is at most IPC_MAX_FRAME).
 *	ipc_conn_pending(conn): bytes still queued for output.
	ipc_conn_set_drain(conn, low_water, fn, ctx, free_ctx): a reply
	too long to queue at once (a queue listing) is produced piece by
	piece: the loop calls fn(conn, ctx) once the queued output is down
	to low_water bytes (at once if it already is); fn sends the next
	piece and returns true, or false when it is done, and then the conn
	drops it and calls free_ctx(ctx) (free_ctx may be NULL). Freeing
	the conn, or installing another producer (fn NULL: none), also
	calls free_ctx. ipc_conn_draining(conn): is a producer installed?
 *	The conn may be freed from inside on_msg or on_close (the free is
 *	deferred until the callback returns). Freeing it outside a callback
 *	drops queued output and does not call on_close. A descriptor sent
 *	with ipc_conn_send is duplicated; the caller still owns m->fd.
 *	Input is read frame by frame, at most 64 frames per wake-up.
 * LIMITS
 *	IPC_MAX_FRAME (1 MiB) payload; group nesting depth 4
 *	(IPC_MAX_DEPTH); at most 16 required attributes per message type. Content never
 *	travels in frames: it travels as a queue file path or an fd.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "event/event.h"

#define IPC_PROTO_MAJOR 1
#define IPC_PROTO_MINOR 2
#define IPC_MAX_FRAME (1024 * 1024)
#define IPC_FLAG_FD 1
#define IPC_MAX_DEPTH 4
#define IPC_HDR_LEN 12

typedef enum {
    IPC_T_U64 = 1, IPC_T_STR = 2, IPC_T_BOOL = 3, IPC_T_BYTES = 4, IPC_T_GROUP = 5
} ipc_type_t;

typedef enum {
#define IPC_ATTR(id, num, name, type) IPC_A_##id = num,
#include "ipc/ipc_msgs.def"
#undef IPC_ATTR
    IPC_A__END              /* last listed + 1; not the table size */
} ipc_attr_t;

typedef enum {
#define IPC_MSG(id, num, name, req) IPC_M_##id = num,
#include "ipc/ipc_msgs.def"
#undef IPC_MSG
    IPC_M__END              /* last listed + 1; not the table size */
} ipc_msg_type_t;

typedef struct ipc_msg {
    uint16_t type;
    uint16_t flags;
    uint32_t req_id;
    int fd;                 /* -1, or a descriptor that rides along */
    bool overflow;          /* payload outgrew its limit while building */
    buf_t payload;
} ipc_msg_t;

typedef struct ipc_view {
    const unsigned char *p;
    size_t len;
} ipc_view_t;

void ipc_msg_init(ipc_msg_t *m, uint16_t type);
void ipc_msg_free(ipc_msg_t *m);
void ipc_msg_reset(ipc_msg_t *m);
void ipc_msg_move(ipc_msg_t *dst, ipc_msg_t *src);
void ipc_put_u64(ipc_msg_t *m, uint16_t attr, uint64_t v);
void ipc_put_str(ipc_msg_t *m, uint16_t attr, const char *s);
void ipc_put_bool(ipc_msg_t *m, uint16_t attr, bool v);
void ipc_put_bytes(ipc_msg_t *m, uint16_t attr, const void *p, size_t n);
size_t ipc_group_begin(ipc_msg_t *m, uint16_t attr);
void ipc_group_end(ipc_msg_t *m, size_t mark);
void ipc_set_fd(ipc_msg_t *m, int fd);      /* m takes ownership */

ipc_view_t ipc_msg_view(const ipc_msg_t *m);
const char *ipc_get_str(ipc_view_t v, uint16_t attr);
int ipc_get_u64(ipc_view_t v, uint16_t attr, uint64_t *out);
int ipc_get_bool(ipc_view_t v, uint16_t attr, bool *out);
int ipc_get_bytes(ipc_view_t v, uint16_t attr, const void **p_r, size_t *len_r);
int ipc_next_group(ipc_view_t v, uint16_t attr, size_t *iter, ipc_view_t *group_r);
const char *ipc_msg_name(uint16_t type);
const char *ipc_attr_name(uint16_t attr);
/* ipc_validate - check a received payload against the schema */
int ipc_validate(const ipc_msg_t *m, const char **why_r);
int ipc_encode(const ipc_msg_t *m, buf_t *out);
int ipc_decode(const void *frame, size_t len, ipc_msg_t *m, const char **why_r);

int ipc_connect(const char *path, const char *proto, int timeout_ms, const char **why_r);
int ipc_connect_start(const char *path, const char **why_r);
int ipc_hello_check(const ipc_msg_t *m, const char *proto, const char **why_r);
int ipc_hello(int fd, const char *proto);
int ipc_send(int fd, const ipc_msg_t *m, int timeout_ms);
int ipc_recv(int fd, ipc_msg_t *m, int timeout_ms, const char **why_r);

typedef struct ipc_conn ipc_conn_t;
typedef void ipc_on_msg_fn(ipc_conn_t *conn, ipc_msg_t *m, void *ctx);
typedef void ipc_on_close_fn(ipc_conn_t *conn, const char *why, void *ctx);

ipc_conn_t *ipc_conn_new(event_loop_t *loop, int fd, ipc_on_msg_fn *on_msg,
                         ipc_on_close_fn *on_close, void *ctx);
void ipc_conn_send(ipc_conn_t *conn, const ipc_msg_t *m);
size_t ipc_conn_pending(const ipc_conn_t *conn);
int ipc_conn_fd(const ipc_conn_t *conn);
void ipc_conn_expect_hello(ipc_conn_t *conn, const char *proto);
typedef bool ipc_on_drain_fn(ipc_conn_t *conn, void *ctx);
typedef void ipc_drain_free_fn(void *ctx);
void ipc_conn_set_drain(ipc_conn_t *conn, size_t low_water, ipc_on_drain_fn *fn, void *ctx,
                        ipc_drain_free_fn *free_ctx);
bool ipc_conn_draining(const ipc_conn_t *conn);
void ipc_conn_free(ipc_conn_t **conn);

#endif
