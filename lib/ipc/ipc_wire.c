/* ipc_wire - conversion between the wire frame and the in-memory message */
#include "ipc/ipc_int.h"
#include "util/msg.h"

#include <errno.h>

/*
 * On the wire a STR carries no NUL; in memory it carries one, counted in
 * its length. Everything else is byte-identical, so conversion walks the
 * attribute lists (recursing into groups to fix their lengths) and adds
 * or drops one byte per string.
 */
static int ipc_list_convert(const unsigned char *p, size_t n, buf_t *dst, int depth,
                            bool to_mem, const char **why_r);

/* ipc_convert_value - copy one attribute's bytes, adjusting strings */
static int ipc_convert_value(int type, const unsigned char *p, size_t len, buf_t *dst,
                             int depth, bool to_mem, const char **why_r)
{
    if (type == IPC_T_GROUP) {
        if (depth >= IPC_MAX_DEPTH)
            return *why_r = "groups nested too deep", -1;
        return ipc_list_convert(p, len, dst, depth + 1, to_mem, why_r);
    }
    if (type == IPC_T_STR && to_mem) {
        if (memchr(p, 0, len) != NULL)
            return *why_r = "embedded NUL in string", -1;
        if (buf_append(dst, p, len) < 0 || buf_putc(dst, 0) < 0)
            return *why_r = "message too large", -1;
        return 0;
    }
    if (type == IPC_T_STR) {
        if (len == 0)
            return *why_r = "string without NUL", -1;
        len--;
    }
    if (buf_append(dst, p, len) < 0)
        return *why_r = "message too large", -1;
    return 0;
}

/* ipc_list_convert - one attribute list from p[0..n) appended to dst */
static int ipc_list_convert(const unsigned char *p, size_t n, buf_t *dst, int depth,
                            bool to_mem, const char **why_r)
{
    size_t off = 0;

    while (off < n) {
        const unsigned char *h = p + off;
        size_t len, mark = dst->len;

        if (n - off < IPC_AHDR_LEN)
            return *why_r = "truncated attribute header", -1;
        len = ipc_rd32(h + 3);
        if (len > n - off - IPC_AHDR_LEN)
            return *why_r = "attribute length exceeds the frame", -1;
        if (h[2] < IPC_T_U64 || h[2] > IPC_T_GROUP)
            return *why_r = "bad attribute type", -1;
        if (buf_append(dst, h, IPC_AHDR_LEN) < 0)
            return *why_r = "message too large", -1;
        if (ipc_convert_value(h[2], h + IPC_AHDR_LEN, len, dst, depth, to_mem, why_r) < 0)
            return -1;
        ipc_wr32((unsigned char *)dst->data + mark + 3, (uint32_t)(dst->len - mark - IPC_AHDR_LEN));
        off += IPC_AHDR_LEN + len;
    }
    return 0;
}

/* ipc_hdr_parse - split a 12-byte frame header */
void ipc_hdr_parse(const unsigned char *h, uint32_t *len_r, uint16_t *type_r,
                   uint16_t *flags_r, uint32_t *req_id_r)
{
    *len_r = ipc_rd32(h);
    *type_r = ipc_rd16(h + 4);
    *flags_r = ipc_rd16(h + 6);
    *req_id_r = ipc_rd32(h + 8);
}

/* ipc_encode - append m as a wire frame; -1 (EMSGSIZE) if too large */
int ipc_encode(const ipc_msg_t *m, buf_t *out)
{
    const char *why;
    size_t start = out->len, plen;
    unsigned char *h;
    uint16_t flags;

    if (m->overflow)
        return errno = EMSGSIZE, -1;
    if (ipc_validate(m, &why) < 0)
        msg_panic("ipc: sending invalid %s message: %s", ipc_msg_name(m->type), why);
    if (buf_reserve(out, IPC_HDR_LEN) < 0)
        return errno = EMSGSIZE, -1;
    out->len += IPC_HDR_LEN;
    if (ipc_list_convert((const unsigned char *)m->payload.data, m->payload.len, out, 0, false, &why) < 0
        || (plen = out->len - start - IPC_HDR_LEN) > IPC_MAX_FRAME) {
        buf_truncate(out, start);
        return errno = EMSGSIZE, -1;
    }
    flags = (uint16_t)((m->flags & ~IPC_FLAG_FD) | (m->fd >= 0 ? IPC_FLAG_FD : 0));
    h = (unsigned char *)out->data + start;
    ipc_wr32(h, (uint32_t)plen);
    ipc_wr16(h + 4, m->type);
    ipc_wr16(h + 6, flags);
    ipc_wr32(h + 8, m->req_id);
    return 0;
}

/* ipc_payload_decode - wire payload into m (initialized), then validate */
int ipc_payload_decode(ipc_msg_t *m, const unsigned char *p, size_t len, const char **why_r)
{
    if (len > IPC_MAX_FRAME)
        return *why_r = "frame too large", -1;
    if (ipc_list_convert(p, len, &m->payload, 0, true, why_r) < 0 || ipc_validate(m, why_r) < 0) {
        buf_free(&m->payload);
        return -1;
    }
    return 0;
}

/* ipc_decode - one whole wire frame into a validated message */
int ipc_decode(const void *frame, size_t len, ipc_msg_t *m, const char **why_r)
{
    const unsigned char *f = frame;
    uint32_t plen, req_id;
    uint16_t type, flags;

    ipc_msg_init(m, 0);
    if (len < IPC_HDR_LEN)
        return *why_r = "truncated frame header", -1;
    ipc_hdr_parse(f, &plen, &type, &flags, &req_id);
    if (plen > IPC_MAX_FRAME)
        return *why_r = "frame too large", -1;
    if (plen != len - IPC_HDR_LEN)
        return *why_r = "frame length mismatch", -1;
    m->type = type;
    m->flags = flags;
    m->req_id = req_id;
    return ipc_payload_decode(m, f + IPC_HDR_LEN, plen, why_r);
}
