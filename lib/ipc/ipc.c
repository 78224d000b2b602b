/* ipc - schema tables, message building, reading and validation */
#include "ipc/ipc_int.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define IPC_REQ_MAX 16

/*
 * The schema, expanded from ipc_msgs.def. Tables are indexed by the wire
 * number; a NULL name / 0 type marks a number that is not declared. The
 * table sizes are the largest number + 1 (a union of arrays computes the
 * maximum at compile time), so the .def need not be in numeric order;
 * a number used twice fails the build (-Woverride-init).
 */
union ipc_attr_span {
#define IPC_ATTR(id, num, name, type) char id[(num) + 1];
#include "ipc/ipc_msgs.def"
#undef IPC_ATTR
};
union ipc_msg_span {
#define IPC_MSG(id, num, name, req) char id[(num) + 1];
#include "ipc/ipc_msgs.def"
#undef IPC_MSG
};
#define IPC_A_SPAN sizeof(union ipc_attr_span)
#define IPC_M_SPAN sizeof(union ipc_msg_span)
#define IPC_SEEN_LEN ((IPC_A_SPAN + 7) / 8)
static const unsigned char ipc_attr_types[IPC_A_SPAN] = {
#define IPC_ATTR(id, num, name, type) [num] = IPC_T_##type,
#include "ipc/ipc_msgs.def"
#undef IPC_ATTR
};

static const char *const ipc_attr_names[IPC_A_SPAN] = {
#define IPC_ATTR(id, num, name, type) [num] = name,
#include "ipc/ipc_msgs.def"
#undef IPC_ATTR
};

static const char *const ipc_attr_ids[IPC_A_SPAN] = {
#define IPC_ATTR(id, num, name, type) [num] = #id,
#include "ipc/ipc_msgs.def"
#undef IPC_ATTR
};

static const char *const ipc_msg_names[IPC_M_SPAN] = {
#define IPC_MSG(id, num, name, req) [num] = name,
#include "ipc/ipc_msgs.def"
#undef IPC_MSG
};

static const char *const ipc_msg_reqs[IPC_M_SPAN] = {
#define IPC_MSG(id, num, name, req) [num] = req,
#include "ipc/ipc_msgs.def"
#undef IPC_MSG
};

/* Required attributes per message, parsed once from the "A,B" strings. */
static uint16_t ipc_req[IPC_M_SPAN][IPC_REQ_MAX];
static unsigned char ipc_nreq[IPC_M_SPAN];
static bool ipc_schema_ready;

/* ipc_attr_by_id - the number of the attribute spelled "ID" (n bytes) */
static uint16_t ipc_attr_by_id(const char *s, size_t n)
{
    for (uint16_t a = 0; a < IPC_A_SPAN; a++)
        if (ipc_attr_ids[a] && strlen(ipc_attr_ids[a]) == n && memcmp(ipc_attr_ids[a], s, n) == 0)
            return a;
    msg_panic("ipc_msgs.def: unknown required attribute \"%.*s\"", (int)n, s);
}

/* ipc_schema_parse_reqs - one message's required list; bugs in the .def panic */
static void ipc_schema_parse_reqs(uint16_t type, const char *s)
{
    while (*s) {
        size_t n = strcspn(s, ",");

        if (n > 0) {
            if (ipc_nreq[type] >= IPC_REQ_MAX)
                msg_panic("ipc_msgs.def: %s has too many required attributes", ipc_msg_names[type]);
            ipc_req[type][ipc_nreq[type]++] = ipc_attr_by_id(s, n);
        }
        s += n + (s[n] == ',');
    }
}

/* ipc_schema_init - parse the required-attribute strings on first use */
static void ipc_schema_init(void)
{
    if (ipc_schema_ready)
        return;
    for (uint16_t t = 0; t < IPC_M_SPAN; t++)
        if (ipc_msg_reqs[t])
            ipc_schema_parse_reqs(t, ipc_msg_reqs[t]);
    ipc_schema_ready = true;
}

/* ipc_attr_type_of - declared type of an attribute, 0 if not declared */
int ipc_attr_type_of(uint16_t attr)
{
    return attr < IPC_A_SPAN ? ipc_attr_types[attr] : 0;
}

/* ipc_msg_name - name of a message type for logs */
const char *ipc_msg_name(uint16_t type)
{
    return type < IPC_M_SPAN && ipc_msg_names[type] ? ipc_msg_names[type] : "unknown";
}

/* ipc_attr_name - name of an attribute for logs */
const char *ipc_attr_name(uint16_t attr)
{
    return attr < IPC_A_SPAN && ipc_attr_names[attr] ? ipc_attr_names[attr] : "unknown";
}

/* ipc_whyf - format a diagnostic into static storage (single-threaded) */
const char *ipc_whyf(const char *fmt, ...)
{
    static char why[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return why;
}

/* ipc_msg_init - an empty message of the given type */
void ipc_msg_init(ipc_msg_t *m, uint16_t type)
{
    m->type = type;
    m->flags = 0;
    m->req_id = 0;
    m->fd = -1;
    m->overflow = false;
    buf_init(&m->payload, IPC_MEM_LIMIT);
}

/* ipc_msg_free - release the payload and close a descriptor still held */
void ipc_msg_free(ipc_msg_t *m)
{
    buf_free(&m->payload);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->flags &= (uint16_t)~IPC_FLAG_FD;
}

/* ipc_msg_reset - empty the payload for the next message of the same
 * type (the memory is kept: a stream of frames costs no allocation) */
void ipc_msg_reset(ipc_msg_t *m)
{
    buf_reset(&m->payload);
    m->overflow = false;
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->flags &= (uint16_t)~IPC_FLAG_FD;
}

/* ipc_msg_move - hand src's contents to dst, leaving src empty */
void ipc_msg_move(ipc_msg_t *dst, ipc_msg_t *src)
{
    *dst = *src;
    ipc_msg_init(src, src->type);
}

/* ipc_set_fd - attach a descriptor (m owns it); -1 detaches */
void ipc_set_fd(ipc_msg_t *m, int fd)
{
    if (m->fd >= 0 && m->fd != fd)
        close(m->fd);
    m->fd = fd;
    if (fd >= 0)
        m->flags |= IPC_FLAG_FD;
    else
        m->flags &= (uint16_t)~IPC_FLAG_FD;
}

/* ipc_put_attr - append one attribute; the schema is checked (bugs panic) */
static void ipc_put_attr(ipc_msg_t *m, uint16_t attr, int type, const void *p, size_t n, bool nul)
{
    unsigned char h[IPC_AHDR_LEN];
    size_t total = n + (nul ? 1 : 0);

    if (ipc_attr_type_of(attr) != type)
        msg_panic("ipc: attribute %u (%s) is not declared with type %d", attr, ipc_attr_name(attr), type);
    if (m->overflow || total > UINT32_MAX || buf_reserve(&m->payload, IPC_AHDR_LEN + total) < 0) {
        m->overflow = true;
        return;
    }
    ipc_wr16(h, attr);
    h[2] = (unsigned char)type;
    ipc_wr32(h + 3, (uint32_t)total);
    buf_append(&m->payload, h, sizeof(h));
    buf_append(&m->payload, p, n);
    if (nul)
        buf_putc(&m->payload, 0);
}

/* ipc_put_u64 - append a U64 attribute */
void ipc_put_u64(ipc_msg_t *m, uint16_t attr, uint64_t v)
{
    unsigned char b[8];

    ipc_wr64(b, v);
    ipc_put_attr(m, attr, IPC_T_U64, b, sizeof(b), false);
}

/* ipc_put_str - append a STR attribute (stored with its NUL) */
void ipc_put_str(ipc_msg_t *m, uint16_t attr, const char *s)
{
    ipc_put_attr(m, attr, IPC_T_STR, s, strlen(s), true);
}

/* ipc_put_bool - append a BOOL attribute */
void ipc_put_bool(ipc_msg_t *m, uint16_t attr, bool v)
{
    unsigned char b = v ? 1 : 0;

    ipc_put_attr(m, attr, IPC_T_BOOL, &b, 1, false);
}

/* ipc_put_bytes - append a BYTES attribute */
void ipc_put_bytes(ipc_msg_t *m, uint16_t attr, const void *p, size_t n)
{
    ipc_put_attr(m, attr, IPC_T_BYTES, p, n, false);
}

/* ipc_group_begin - open a GROUP; returns the mark for ipc_group_end */
size_t ipc_group_begin(ipc_msg_t *m, uint16_t attr)
{
    size_t mark = m->payload.len;

    ipc_put_attr(m, attr, IPC_T_GROUP, NULL, 0, false);
    return m->overflow ? SIZE_MAX : mark;
}

/* ipc_group_end - close a GROUP: patch its length to cover what followed */
void ipc_group_end(ipc_msg_t *m, size_t mark)
{
    size_t len;

    if (m->overflow || mark == SIZE_MAX)
        return;
    if (mark > m->payload.len || m->payload.len - mark < IPC_AHDR_LEN
        || (unsigned char)m->payload.data[mark + 2] != IPC_T_GROUP)
        msg_panic("ipc_group_end: bad mark %zu", mark);
    len = m->payload.len - mark - IPC_AHDR_LEN;
    ipc_wr32((unsigned char *)m->payload.data + mark + 3, (uint32_t)len);
}

/* ipc_msg_view - the top-level attribute list of a message */
ipc_view_t ipc_msg_view(const ipc_msg_t *m)
{
    return (ipc_view_t){ (const unsigned char *)m->payload.data, m->payload.len };
}

/*
 * ipc_find - next attribute attr of the given type at or after *off.
 * Bounds are checked even on views that were never validated.
 */
static const unsigned char *ipc_find(ipc_view_t v, uint16_t attr, int type, size_t *off, size_t *len_r)
{
    while (*off <= v.len && v.len - *off >= IPC_AHDR_LEN) {
        const unsigned char *h = v.p + *off;
        size_t len = ipc_rd32(h + 3);

        if (len > v.len - *off - IPC_AHDR_LEN)
            break;
        *off += IPC_AHDR_LEN + len;
        if (ipc_rd16(h) == attr && h[2] == type) {
            *len_r = len;
            return h + IPC_AHDR_LEN;
        }
    }
    *off = v.len;
    return NULL;
}

/* ipc_get_str - a borrowed NUL-terminated string, NULL if absent */
const char *ipc_get_str(ipc_view_t v, uint16_t attr)
{
    size_t off = 0, len;
    const unsigned char *p = ipc_find(v, attr, IPC_T_STR, &off, &len);

    if (p == NULL || len == 0 || p[len - 1] != 0)
        return NULL;
    return (const char *)p;
}

/* ipc_get_u64 - 0 and *out, or -1 if absent */
int ipc_get_u64(ipc_view_t v, uint16_t attr, uint64_t *out)
{
    size_t off = 0, len;
    const unsigned char *p = ipc_find(v, attr, IPC_T_U64, &off, &len);

    if (p == NULL || len != 8)
        return -1;
    *out = ipc_rd64(p);
    return 0;
}

/* ipc_get_bool - 0 and *out, or -1 if absent */
int ipc_get_bool(ipc_view_t v, uint16_t attr, bool *out)
{
    size_t off = 0, len;
    const unsigned char *p = ipc_find(v, attr, IPC_T_BOOL, &off, &len);

    if (p == NULL || len != 1)
        return -1;
    *out = p[0] != 0;
    return 0;
}

/* ipc_get_bytes - 0 and a borrowed pointer/length, or -1 if absent */
int ipc_get_bytes(ipc_view_t v, uint16_t attr, const void **p_r, size_t *len_r)
{
    size_t off = 0, len;
    const unsigned char *p = ipc_find(v, attr, IPC_T_BYTES, &off, &len);

    if (p == NULL)
        return -1;
    *p_r = p;
    *len_r = len;
    return 0;
}

/* ipc_next_group - iterate over the GROUP attributes named attr */
int ipc_next_group(ipc_view_t v, uint16_t attr, size_t *iter, ipc_view_t *group_r)
{
    size_t len;
    const unsigned char *p = ipc_find(v, attr, IPC_T_GROUP, iter, &len);

    if (p == NULL)
        return -1;
    *group_r = (ipc_view_t){ p, len };
    return 0;
}

/* ipc_check_value - one attribute's bytes against its declared type */
static int ipc_check_value(uint16_t id, int type, const unsigned char *p, size_t len, const char **why_r)
{
    switch (type) {
    case IPC_T_U64:
        if (len != 8)
            return *why_r = ipc_whyf("attribute %s: bad u64 length %zu", ipc_attr_name(id), len), -1;
        break;
    case IPC_T_BOOL:
        if (len != 1 || p[0] > 1)
            return *why_r = ipc_whyf("attribute %s: bad bool", ipc_attr_name(id)), -1;
        break;
    case IPC_T_STR:
        if (len == 0 || p[len - 1] != 0 || memchr(p, 0, len - 1) != NULL)
            return *why_r = ipc_whyf("attribute %s: embedded NUL in string", ipc_attr_name(id)), -1;
        break;
    default:
        break;
    }
    return 0;
}

/* ipc_validate_list - one attribute list; seen_r collects top-level ids */
static int ipc_validate_list(const unsigned char *p, size_t n, int depth, unsigned char *seen,
                             const char **why_r)
{
    size_t off = 0;

    memset(seen, 0, IPC_SEEN_LEN);
    while (off < n) {
        const unsigned char *h = p + off;
        size_t len;
        uint16_t id;
        int declared;

        if (n - off < IPC_AHDR_LEN)
            return *why_r = "truncated attribute header", -1;
        id = ipc_rd16(h);
        len = ipc_rd32(h + 3);
        if (len > n - off - IPC_AHDR_LEN)
            return *why_r = ipc_whyf("attribute %u: length %zu exceeds the frame", id, len), -1;
        if (h[2] < IPC_T_U64 || h[2] > IPC_T_GROUP)
            return *why_r = ipc_whyf("attribute %u: bad type %u", id, h[2]), -1;
        off += IPC_AHDR_LEN + len;
        if ((declared = ipc_attr_type_of(id)) == 0)
            continue;                           /* unknown: skipped */
        if (declared != h[2])
            return *why_r = ipc_whyf("attribute %s: wrong type %u", ipc_attr_name(id), h[2]), -1;
        if (declared != IPC_T_GROUP && (seen[id / 8] & (1u << (id % 8))))
            return *why_r = ipc_whyf("attribute %s: repeated", ipc_attr_name(id)), -1;
        seen[id / 8] |= (unsigned char)(1u << (id % 8));
        if (declared == IPC_T_GROUP) {
            unsigned char inner[IPC_SEEN_LEN];

            if (depth >= IPC_MAX_DEPTH)
                return *why_r = "groups nested too deep", -1;
            if (ipc_validate_list(h + IPC_AHDR_LEN, len, depth + 1, inner, why_r) < 0)
                return -1;
        } else if (ipc_check_value(id, declared, h + IPC_AHDR_LEN, len, why_r) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ipc_validate - check a message (in-memory form) against the schema */
int ipc_validate(const ipc_msg_t *m, const char **why_r)
{
    unsigned char seen[IPC_SEEN_LEN];
    const char *why = "";

    ipc_schema_init();
    if (why_r == NULL)
        why_r = &why;
    if (m->type >= IPC_M_SPAN || ipc_msg_names[m->type] == NULL)
        return *why_r = ipc_whyf("unknown message type %u", m->type), -1;
    if (m->overflow || m->payload.len > IPC_MEM_LIMIT)
        return *why_r = "message too large", -1;
    if (ipc_validate_list((const unsigned char *)m->payload.data, m->payload.len, 0, seen, why_r) < 0)
        return -1;
    for (unsigned i = 0; i < ipc_nreq[m->type]; i++) {
        uint16_t a = ipc_req[m->type][i];

        if (!(seen[a / 8] & (1u << (a % 8))))
            return *why_r = ipc_whyf("%s: missing required attribute %s",
                                     ipc_msg_names[m->type], ipc_attr_name(a)), -1;
    }
    return 0;
}
