/*
 * fuzz_ipc - libFuzzer target for the IPC frame decoder and validator
 *
 * Input: one wire frame (12-byte header + payload). Decoding must never
 * crash; an accepted frame must survive encode → decode unchanged, and
 * every getter must be safe on it. The same bytes are also fed to
 * ipc_validate as an in-memory payload. Build: -DSTORK_FUZZ=ON with clang.
 */
#include "ipc/ipc.h"
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

/* walk - every getter on every list, recursing into groups */
static void walk(ipc_view_t v, int depth)
{
    for (uint16_t a = 0; a < 64; a++) {
        uint64_t u;
        bool b;
        const void *p;
        size_t n, it = 0;
        ipc_view_t g;
        const char *s = ipc_get_str(v, a);

        if (s)
            (void)strlen(s);
        (void)ipc_get_u64(v, a, &u);
        (void)ipc_get_bool(v, a, &b);
        (void)ipc_get_bytes(v, a, &p, &n);
        while (depth < 8 && ipc_next_group(v, a, &it, &g) == 0)
            walk(g, depth + 1);
    }
}

/* roundtrip - an accepted message re-encodes to a frame that decodes equal */
static void roundtrip(const ipc_msg_t *m)
{
    buf_t out;
    ipc_msg_t again;
    const char *why;

    buf_init(&out, BUF_NOLIMIT);
    if (ipc_encode(m, &out) < 0)
        abort();
    if (ipc_decode(out.data, out.len, &again, &why) < 0)
        abort();
    if (again.payload.len != m->payload.len || again.type != m->type
        || (m->payload.len && memcmp(again.payload.data, m->payload.data, m->payload.len) != 0))
        abort();
    ipc_msg_free(&again);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ipc_msg_t m;
    const char *why;

    if (ipc_decode(data, size, &m, &why) == 0) {
        walk(ipc_msg_view(&m), 0);
        roundtrip(&m);
    }
    ipc_msg_free(&m);

    ipc_msg_init(&m, size >= 2 ? (uint16_t)(data[0] | data[1] << 8) : 0);
    if (size > 2 && buf_append(&m.payload, data + 2, size - 2) == 0
        && ipc_validate(&m, &why) == 0)
        walk(ipc_msg_view(&m), 0);
    ipc_msg_free(&m);
    return 0;
}
