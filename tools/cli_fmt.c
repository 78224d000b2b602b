/*
 * cli_fmt - mailq and postqueue -j formats (see cli_fmt.h)
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_fmt.h"
#include "util/xmalloc.h"

#define CLI_MAILQ_FORMAT "%-17s %8s %-19s %s\n"
#define CLI_NULL_SENDER "MAILER-DAEMON"
#define CLI_REASON_COLUMN 76

/* cli_qentry_add_rcpt - append a recipient (copies the strings) */
void cli_qentry_add_rcpt(cli_qentry_t *e, const char *addr, const char *reason)
{
    e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1, sizeof(*e->rcpts));
    e->rcpts[e->nrcpts].addr = xstrdup(addr ? addr : "");
    e->rcpts[e->nrcpts].reason = xstrdup(reason ? reason : "");
    e->nrcpts++;
}

/* cli_qentry_free - release everything an entry owns */
void cli_qentry_free(cli_qentry_t *e)
{
    for (size_t i = 0; i < e->nrcpts; i++) {
        free(e->rcpts[i].addr);
        free(e->rcpts[i].reason);
    }
    free(e->rcpts);
    free(e->queue);
    free(e->qid);
    free(e->sender);
    memset(e, 0, sizeof(*e));
}

/* cli_fmt_utf8_len - length of the valid UTF-8 sequence at p, 0 if invalid */
size_t cli_fmt_utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned cp;

    if (n == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Scratch buffers of the formatters, reused from entry to entry so that
 * a listing of a million messages allocates nothing per message (the
 * commands are single-threaded). */
static buf_t cli_fmt_tmp = { NULL, 0, 0, BUF_NOLIMIT };

/* cli_fmt_plain_run - how many bytes at p are printable ASCII that need
 * no treatment (for JSON: neither '"' nor '\\' either) */
static size_t cli_fmt_plain_run(const unsigned char *p, size_t n, bool json)
{
    size_t i = 0;

    while (i < n && p[i] >= 0x20 && p[i] < 0x7F && !(json && (p[i] == '"' || p[i] == '\\')))
        i++;
    return i;
}

/* cli_fmt_printable - append s with controls and invalid UTF-8 as '?' */
void cli_fmt_printable(buf_t *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0) {
        size_t len = cli_fmt_plain_run(p, n, false);

        if (len > 0) {
            buf_append(out, p, len);
            p += len;
            n -= len;
            continue;
        }
        len = cli_fmt_utf8_len(p, n);

        if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7F))) {
            buf_putc(out, '?');
            len = 1;
        } else {
            buf_append(out, p, len);
        }
        p += len;
        n -= len;
    }
}

/* cli_atext - an RFC 5322 atext character (UTF-8 bytes count as atext) */
static int cli_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL || c >= 0x80;
}

/* cli_local_needs_quotes - does this local part need a quoted-string? */
static int cli_local_needs_quotes(const char *lp, size_t n)
{
    if (n == 0 || lp[0] == '.' || lp[n - 1] == '.')
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (lp[i] == '.') {
            if (i + 1 < n && lp[i + 1] == '.')
                return 1;
        } else if (!cli_atext((unsigned char)lp[i])) {
            return 1;
        }
    }
    return 0;
}

/* cli_fmt_quote_local - append addr, quoting the local part if needed */
void cli_fmt_quote_local(buf_t *out, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t n = at ? (size_t)(at - addr) : strlen(addr);

    if (*addr == 0) {
        buf_puts(out, CLI_NULL_SENDER);
        return;
    }
    if (!cli_local_needs_quotes(addr, n)) {
        buf_puts(out, addr);
        return;
    }
    buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (addr[i] == '"' || addr[i] == '\\')
            buf_putc(out, '\\');
        buf_putc(out, addr[i]);
    }
    buf_putc(out, '"');
    if (at)
        buf_puts(out, at);
}

/* cli_fmt_json_quote - append s as the inside of a JSON string */
void cli_fmt_json_quote(buf_t *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0) {
        size_t len = cli_fmt_plain_run(p, n, true);

        if (len > 0) {
            buf_append(out, p, len);
            p += len;
            n -= len;
            continue;
        }
        len = cli_fmt_utf8_len(p, n);
        if (len == 0) {
            /* Not UTF-8: JSON text must be, so show it as Postfix does. */
            buf_putc(out, '?');
            len = 1;
        } else if (len > 1) {
            buf_append(out, p, len);
        } else if (*p < 0x20 || *p == 0x7F) {
            switch (*p) {
            case '\b': buf_puts(out, "\\b"); break;
            case '\f': buf_puts(out, "\\f"); break;
            case '\n': buf_puts(out, "\\n"); break;
            case '\r': buf_puts(out, "\\r"); break;
            case '\t': buf_puts(out, "\\t"); break;
            default: buf_printf(out, "\\u%04X", *p); break;
            }
        } else {
            if (*p == '"' || *p == '\\')
                buf_putc(out, '\\');
            buf_putc(out, *p);
        }
        p += len;
        n -= len;
    }
}

/* cli_fmt_mailq_header - the column headings */
void cli_fmt_mailq_header(buf_t *out)
{
    buf_printf(out, CLI_MAILQ_FORMAT, "----Queue ID-----", "--Size--",
               "---Arrival Time----", "--Sender/Recipient------");
}

/* cli_fmt_asctime - asctime(localtime(t)) cut to 19 characters; the
 * last answer is kept, since queued messages often share their second */
static const char *cli_fmt_asctime(int64_t when)
{
    static char out[32];
    static int64_t last = INT64_MIN;
    time_t t = (time_t)when;
    struct tm tm;

    if (when == last)
        return out;
    if (localtime_r(&t, &tm) == NULL || strftime(out, sizeof(out), "%a %b %e %H:%M:%S", &tm) == 0)
        memcpy(out, "???", 4);
    last = when;
    return out;
}

/* cli_fmt_spaces - append n spaces */
static void cli_fmt_spaces(buf_t *out, size_t n)
{
    static const char sp[] = "                                                                ";

    while (n > 0) {
        size_t k = n < sizeof(sp) - 1 ? n : sizeof(sp) - 1;
        buf_append(out, sp, k);
        n -= k;
    }
}

/* cli_fmt_pad_from - pad what was appended since mark to width ("%-Ns") */
static void cli_fmt_pad_from(buf_t *out, size_t mark, size_t width)
{
    if (out->len - mark < width)
        cli_fmt_spaces(out, width - (out->len - mark));
}

/* cli_fmt_u64 - append v in decimal, right-aligned to width ("%Nllu") */
static void cli_fmt_u64(buf_t *out, uint64_t v, size_t width)
{
    char d[24];
    size_t i = sizeof(d);

    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    if (sizeof(d) - i < width)
        cli_fmt_spaces(out, width - (sizeof(d) - i));
    buf_append(out, d + i, sizeof(d) - i);
}

/* cli_fmt_i64 - append v in decimal ("%lld") */
static void cli_fmt_i64(buf_t *out, int64_t v)
{
    if (v < 0) {
        buf_putc(out, '-');
        cli_fmt_u64(out, (uint64_t)0 - (uint64_t)v, 0);
    } else {
        cli_fmt_u64(out, (uint64_t)v, 0);
    }
}

/* cli_fmt_show_addr - append an address quoted and made printable */
static void cli_fmt_show_addr(buf_t *out, const char *addr)
{
    buf_reset(&cli_fmt_tmp);
    cli_fmt_quote_local(&cli_fmt_tmp, addr);
    cli_fmt_printable(out, buf_cstr(&cli_fmt_tmp));
}

/* cli_fmt_mailq_entry - one message: id line, reasons, recipients.
 * The columns are CLI_MAILQ_FORMAT's, written out by hand: this runs
 * once per queued message. */
void cli_fmt_mailq_entry(buf_t *out, const cli_qentry_t *e)
{
    const char *last_reason = "";
    const char *when = cli_fmt_asctime(e->arrival);
    size_t mark = out->len, wlen = strlen(when);

    cli_fmt_printable(out, e->qid);                     /* %-17s */
    if (strcmp(e->queue, "active") == 0)
        buf_putc(out, '*');
    else if (strcmp(e->queue, "hold") == 0)
        buf_putc(out, '!');
    if (e->forced_expire)
        buf_putc(out, '#');
    cli_fmt_pad_from(out, mark, 17);
    buf_putc(out, ' ');
    cli_fmt_u64(out, e->size, 8);                       /* %8llu */
    buf_putc(out, ' ');
    if (wlen > 19)                                      /* %19.19s */
        wlen = 19;
    cli_fmt_spaces(out, 19 - wlen);
    buf_append(out, when, wlen);
    buf_putc(out, ' ');
    cli_fmt_show_addr(out, e->sender);
    buf_putc(out, '\n');
    for (size_t i = 0; i < e->nrcpts; i++) {
        const char *reason = e->rcpts[i].reason;

        /* A reason line only when it changes, like showq: consecutive
         * recipients deferred for the same reason share one line. */
        if (strcmp(reason, last_reason) != 0) {
            buf_reset(&cli_fmt_tmp);
            cli_fmt_printable(&cli_fmt_tmp, *reason ? reason : "reason unavailable");
            if (cli_fmt_tmp.len < CLI_REASON_COLUMN)    /* %*s(%s) */
                cli_fmt_spaces(out, CLI_REASON_COLUMN - cli_fmt_tmp.len);
            buf_putc(out, '(');
            buf_append(out, cli_fmt_tmp.data, cli_fmt_tmp.len);
            buf_puts(out, ")\n");
            last_reason = reason;
        }
        cli_fmt_spaces(out, 17 + 1 + 8 + 1 + 19 + 1);   /* CLI_MAILQ_FORMAT "", "", "" */
        cli_fmt_show_addr(out, e->rcpts[i].addr);
        buf_putc(out, '\n');
    }
}

/* cli_fmt_mailq_trailer - the summary line */
void cli_fmt_mailq_trailer(buf_t *out, uint64_t total_size, size_t count)
{
    if (count == 0)
        buf_puts(out, "Mail queue is empty\n");
    else
        buf_printf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
                   (unsigned long long)(total_size / 1024), count, count == 1 ? "" : "s");
}

/* cli_fmt_json_addr - append "quoted-local@domain" JSON-escaped */
static void cli_fmt_json_addr(buf_t *out, const char *a)
{
    buf_reset(&cli_fmt_tmp);
    cli_fmt_quote_local(&cli_fmt_tmp, a);
    cli_fmt_json_quote(out, buf_cstr(&cli_fmt_tmp));
}

/* cli_fmt_json_entry - one postqueue -j object and a newline */
void cli_fmt_json_entry(buf_t *out, const cli_qentry_t *e)
{
    buf_puts(out, "{\"queue_name\": \"");
    cli_fmt_json_quote(out, e->queue);
    buf_puts(out, "\", \"queue_id\": \"");
    cli_fmt_json_quote(out, e->qid);
    buf_puts(out, "\", \"arrival_time\": ");
    cli_fmt_i64(out, e->arrival);
    buf_puts(out, ", \"message_size\": ");
    cli_fmt_u64(out, e->size, 0);
    buf_puts(out, e->forced_expire ? ", \"forced_expire\": true, " : ", \"forced_expire\": false, ");
    buf_puts(out, "\"sender\": \"");
    cli_fmt_json_addr(out, e->sender);
    buf_puts(out, "\", \"recipients\": [");
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (i > 0)
            buf_puts(out, ", ");
        buf_puts(out, "{\"address\": \"");
        cli_fmt_json_addr(out, e->rcpts[i].addr);
        buf_putc(out, '"');
        if (e->rcpts[i].reason[0]) {
            buf_puts(out, ", \"delay_reason\": \"");
            cli_fmt_json_quote(out, e->rcpts[i].reason);
            buf_putc(out, '"');
        }
        buf_putc(out, '}');
    }
    buf_puts(out, "]}\n");
}
