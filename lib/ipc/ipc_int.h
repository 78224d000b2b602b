#ifndef STORK_IPC_INT_H
#define STORK_IPC_INT_H
/*
 * NAME
 *	ipc_int - private helpers shared by ipc.c, ipc_wire.c, ipc_io.c and
 *	ipc_conn.c (not part of the public contract)
 * DESCRIPTION
 *	IPC_MEM_LIMIT: the most payload bytes a message may hold in memory.
 *	Each STR gains one NUL and takes at least 7 wire bytes, so the
 *	in-memory form of a legal frame is below 8/7 of IPC_MAX_FRAME.
 *	ipc_hdr_parse: split a 12-byte wire header.
 *	ipc_payload_decode: wire payload → m->payload (m already
 *	initialized with its type/flags/req_id), then ipc_validate.
 *	ipc_attr_type_of: the declared type of an attribute, 0 if unknown.
 *	ipc_read_fds: one non-blocking recvmsg; the first SCM_RIGHTS
 *	descriptor goes to *fd_r if that is -1, any other is closed.
 *	ipc_write_fd: one non-blocking sendmsg (MSG_NOSIGNAL), passing
 *	pass_fd when >= 0.
 *	ipc_rd16/32/64, ipc_wr16/32/64: little-endian helpers.
 */
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include "ipc/ipc.h"

#define IPC_AHDR_LEN 7              /* u16 id, u8 type, u32 len */
#define IPC_MEM_LIMIT ((size_t)IPC_MAX_FRAME + IPC_MAX_FRAME / 4)

void ipc_hdr_parse(const unsigned char *h, uint32_t *len_r, uint16_t *type_r,
                   uint16_t *flags_r, uint32_t *req_id_r);
int ipc_payload_decode(ipc_msg_t *m, const unsigned char *p, size_t len,
                       const char **why_r);
int ipc_attr_type_of(uint16_t attr);
ssize_t ipc_read_fds(int fd, void *p, size_t n, int *fd_r);
ssize_t ipc_write_fd(int fd, const void *p, size_t n, int pass_fd);
const char *ipc_whyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline uint16_t ipc_rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ipc_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
        | ((uint32_t)p[3] << 24);
}

static inline uint64_t ipc_rd64(const unsigned char *p)
{
    return (uint64_t)ipc_rd32(p) | ((uint64_t)ipc_rd32(p + 4) << 32);
}

static inline void ipc_wr16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void ipc_wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void ipc_wr64(unsigned char *p, uint64_t v)
{
    ipc_wr32(p, (uint32_t)v);
    ipc_wr32(p + 4, (uint32_t)(v >> 32));
}

#endif
