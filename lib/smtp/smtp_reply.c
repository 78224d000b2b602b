/*
 * smtp_reply.c - SMTP reply formatting (see smtp_reply.h)
 */
#include <stdio.h>
#include <string.h>
#include "smtp/smtp_reply.h"

/* smtp_reply_one - append one line "CODE[-| ]DSN text\r\n" */
static int smtp_reply_one(buf_t *out, int code, const char *dsn, bool more, const char *text,
                          size_t len)
{
    size_t mark = out->len;

    if (len > SMTP_REPLY_TEXT_MAX)
        len = SMTP_REPLY_TEXT_MAX;
    if (buf_printf(out, "%03d%c", code, more ? '-' : ' ') < 0)
        goto fail;
    if (dsn && *dsn && (buf_puts(out, dsn) < 0 || (len > 0 && buf_putc(out, ' ') < 0)))
        goto fail;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (buf_putc(out, (c < 32 || c == 127) ? '?' : c) < 0)
            goto fail;
    }
    if (buf_append(out, "\r\n", 2) < 0)
        goto fail;
    return 0;
fail:
    buf_truncate(out, mark);
    return -1;
}

/* smtp_reply - append a (multi-line when text has '\n') reply */
int smtp_reply(buf_t *out, int code, const char *dsn, const char *text)
{
    size_t mark = out->len;
    const char *p = text;

    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (smtp_reply_one(out, code, dsn, nl != NULL, p, len) < 0) {
            buf_truncate(out, mark);
            return -1;
        }
        if (nl == NULL)
            return 0;
        p = nl + 1;
    }
}

/* smtp_reply_printf - smtp_reply with a formatted text */
int smtp_reply_printf(buf_t *out, int code, const char *dsn, const char *fmt, ...)
{
    buf_t text;
    va_list ap;
    int ret;

    buf_init(&text, 64 * 1024);
    va_start(ap, fmt);
    ret = buf_vprintf(&text, fmt, ap);
    va_end(ap);
    if (ret == 0)
        ret = smtp_reply(out, code, dsn, buf_cstr(&text));
    buf_free(&text);
    return ret;
}

/* smtp_reply_lines - one reply made of n lines */
int smtp_reply_lines(buf_t *out, int code, const char *dsn, const char *const *lines, size_t n)
{
    size_t mark = out->len;

    for (size_t i = 0; i < n; i++) {
        if (smtp_reply_one(out, code, dsn, i + 1 < n, lines[i], strlen(lines[i])) < 0) {
            buf_truncate(out, mark);
            return -1;
        }
    }
    return 0;
}

/* smtp_reply_sanitize - client data made safe for a reply line */
void smtp_reply_sanitize(buf_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_putc(out, (c < 32 || c == 127) ? '?' : c);
    }
}

/* smtp_dsn_valid - "C.SSS.DDD" (RFC 3463 3.1) */
bool smtp_dsn_valid(const char *s)
{
    size_t i = 1, n;

    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    for (int part = 0; part < 2; part++) {
        i++;
        n = 0;
        while (s[i] >= '0' && s[i] <= '9') {
            i++;
            n++;
        }
        if (n < 1 || n > 3 || (part == 0 && s[i] != '.'))
            return false;
    }
    return s[i] == 0;
}
