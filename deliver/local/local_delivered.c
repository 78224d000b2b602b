/* local_delivered - the Delivered-To: headers already in a message (loop detection) */
#include "local.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LOCAL_HDR_SCAN_MAX (1024 * 1024)    /* header bytes examined */
#define LOCAL_DELIVERED_MAX 1000            /* Delivered-To values kept */

/* delivered_add - remember one header value, trimmed and lower-cased */
static void delivered_add(local_msg_t *msg, const char *val, size_t len)
{
    char *v;

    if (msg->n_delivered_to >= LOCAL_DELIVERED_MAX)
        return;
    v = xstrndup(val, len);
    str_lower(str_trim(v));
    /* Tolerate "<addr>" although Delivered-To is written without brackets. */
    if (v[0] == '<' && v[strlen(v) - 1] == '>') {
        memmove(v, v + 1, strlen(v));
        v[strlen(v) - 1] = 0;
    }
    msg->delivered_to = xreallocarray(msg->delivered_to, msg->n_delivered_to + 1,
                                      sizeof(char *));
    msg->delivered_to[msg->n_delivered_to++] = v;
}

/* delivered_parse - walk the header lines of hdr (unfolding continuations) */
static void delivered_parse(local_msg_t *msg, const char *hdr, size_t len)
{
    static const char name[] = "delivered-to:";
    size_t i = 0;

    while (i < len) {
        size_t start = i, end;

        /* A logical line ends at a line end not followed by white space. */
        for (;;) {
            const char *nl = memchr(hdr + i, '\n', len - i);

            end = nl ? (size_t)(nl - hdr) : len;
            i = nl ? end + 1 : len;
            if (i >= len || (hdr[i] != ' ' && hdr[i] != '\t'))
                break;
        }
        if (end == start || (end == start + 1 && hdr[start] == '\r'))
            break;                              /* the blank line: end of header */
        if (end - start > sizeof(name) - 1 && strncasecmp(hdr + start, name, sizeof(name) - 1) == 0)
            delivered_add(msg, hdr + start + sizeof(name) - 1, end - start - (sizeof(name) - 1));
    }
}

/* local_delivered_scan - collect Delivered-To values from the header */
int local_delivered_scan(local_msg_t *msg, const char **why_r)
{
    buf_t hdr;
    char block[8192];
    uint64_t left = msg->content_size;
    off_t off = msg->content_offset;

    buf_init(&hdr, LOCAL_HDR_SCAN_MAX);
    while (left > 0 && hdr.len < LOCAL_HDR_SCAN_MAX) {
        size_t want = left < sizeof(block) ? (size_t)left : sizeof(block);
        ssize_t n = pread(msg->fd, block, want, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *why_r = n < 0 ? strerror(errno) : "queue file is truncated";
            buf_free(&hdr);
            return -1;
        }
        if (buf_append(&hdr, block, (size_t)n) < 0)
            break;                              /* the scan limit: enough */
        off += n;
        left -= (uint64_t)n;
        /* Stop reading once the header has ended. */
        if (strstr(hdr.data, "\r\n\r\n") || strstr(hdr.data, "\n\n") || hdr.data[0] == '\n'
            || strncmp(hdr.data, "\r\n", 2) == 0)
            break;
    }
    delivered_parse(msg, hdr.data ? hdr.data : "", hdr.len);
    buf_free(&hdr);
    return 0;
}

/* local_delivered_has - is addr (lower case) among the Delivered-To values? */
bool local_delivered_has(const local_msg_t *msg, const char *addr)
{
    for (size_t i = 0; i < msg->n_delivered_to; i++)
        if (strcasecmp(msg->delivered_to[i], addr) == 0)
            return true;
    return false;
}

void local_delivered_free(local_msg_t *msg)
{
    for (size_t i = 0; i < msg->n_delivered_to; i++)
        free(msg->delivered_to[i]);
    xfreep(&msg->delivered_to);
    msg->n_delivered_to = 0;
}
