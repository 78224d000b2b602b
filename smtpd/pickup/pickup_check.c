/*
 * pickup_check - validation of untrusted maildrop files and the bytes
 * pickup adds (see pickup_check.h)
 */
#include <stdlib.h>
#include <string.h>

#include "pickup_check.h"
#include "mail/addr.h"
#include "mail/mail_date.h"

/* pickup_printable - no control characters, at most max bytes */
static bool pickup_printable(const char *s, size_t max)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x20 || *p == 0x7F || n >= max)
            return false;
    return true;
}

/* pickup_check - may this envelope enter the queue? */
int pickup_check(const qfile_t *qf, uint64_t size_limit, const char **why_r)
{
    if (qf->sender == NULL || (*qf->sender && !addr_internal_ok(qf->sender))) {
        *why_r = "bad sender address syntax";
        return -1;
    }
    if (qf->nrcpts == 0) {
        *why_r = "no recipients";
        return -1;
    }
    for (size_t i = 0; i < qf->nrcpts; i++) {
        if (qf->rcpts[i].addr == NULL || !addr_internal_ok(qf->rcpts[i].addr)) {
            *why_r = "bad recipient address syntax";
            return -1;
        }
        if (qf->rcpts[i].orcpt && !pickup_printable(qf->rcpts[i].orcpt, PICKUP_ADDR_MAX)) {
            *why_r = "bad original recipient";
            return -1;
        }
    }
    if (size_limit && qf->content_size > size_limit) {
        *why_r = "message file too big";
        return -1;
    }
    return 0;
}

/* pickup_full_name - the sender's display name, if it is acceptable */
const char *pickup_full_name(const char *s)
{
    return s && *s && pickup_printable(s, PICKUP_NAME_MAX) ? s : NULL;
}

/* pickup_received - the Received: header pickup prepends */
void pickup_received(buf_t *out, const char *host, uid_t uid, const char *qid, time_t t)
{
    buf_printf(out, "Received: by %s (Stork, from userid %lu)\r\n\tid %s; ", host,
               (unsigned long)uid, qid);
    mail_date(out, t);
    buf_puts(out, "\r\n");
}

/* pickup_crlf_init - start of content */
void pickup_crlf_init(pickup_crlf_t *st)
{
    st->last_cr = false;
}

/* pickup_crlf - copy, making every LF a CRLF */
void pickup_crlf(pickup_crlf_t *st, const char *in, size_t n, buf_t *out)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\n' && !st->last_cr) {
            buf_append(out, in + start, i - start);
            buf_puts(out, "\r\n");
            start = i + 1;
        }
        st->last_cr = in[i] == '\r';
    }
    buf_append(out, in + start, n - start);
}
