/*
 * cli_hdr - header parsing for local submission (see cli_hdr.h)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_hdr.h"
#include "util/xmalloc.h"

/* cli_addr_list_add - append a copy of addr */
void cli_addr_list_add(cli_addr_list_t *l, const char *addr)
{
    l->v = xreallocarray(l->v, l->n + 2, sizeof(*l->v));
    l->v[l->n++] = xstrdup(addr);
    l->v[l->n] = NULL;
}

/* cli_addr_list_free - release the strings and the array */
void cli_addr_list_free(cli_addr_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/*
 * The address-list parser keeps two buffers: "plain" collects an
 * addr-spec written without angle brackets, "angle" the one inside <...>.
 * A word that follows a word with only white space between makes the
 * plain text a phrase: valid only if an angle address follows.
 */
typedef struct cli_ap {
    buf_t plain;
    buf_t angle;
    bool in_angle;
    bool have_angle;
    bool phrase;            /* two words in a row outside <> */
    bool last_word;         /* the previous token was a word */
    size_t count;
    cli_addr_list_t *list;
} cli_ap_t;

/* cli_ap_emit - one address is complete: add it (if any) and reset */
static int cli_ap_emit(cli_ap_t *ap, const char **why_r)
{
    const buf_t *b = ap->have_angle ? &ap->angle : &ap->plain;

    if (!ap->have_angle && ap->phrase) {
        *why_r = "words without an address in <>";
        return -1;
    }
    if (b->len > 0) {
        if (++ap->count > CLI_HDR_MAX_ADDRS) {
            *why_r = "too many addresses";
            return -1;
        }
        cli_addr_list_add(ap->list, buf_cstr(b));
    }
    buf_reset(&ap->plain);
    buf_reset(&ap->angle);
    ap->have_angle = ap->phrase = ap->last_word = false;
    return 0;
}

/* cli_ap_word - append an atom, quoted string or literal to the address */
static void cli_ap_word(cli_ap_t *ap, const char *p, size_t n)
{
    if (ap->in_angle) {
        buf_append(&ap->angle, p, n);
    } else {
        if (ap->last_word)
            ap->phrase = true;
        buf_append(&ap->plain, p, n);
    }
    ap->last_word = true;
}

/* cli_ap_quoted - the content of a quoted string starting after the '"' */
static const char *cli_ap_quoted(const char *p, buf_t *out)
{
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        buf_putc(out, *p);
    }
    return *p == '"' ? p + 1 : NULL;
}

/* cli_ap_comment - skip a (possibly nested) comment starting after '(' */
static const char *cli_ap_comment(const char *p)
{
    int depth = 1;

    for (; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p + 1;
    }
    return NULL;
}

/* cli_addrlist_parse - RFC 5322 address-list to internal-form addresses */
int cli_addrlist_parse(const char *value, cli_addr_list_t *list, const char **why_r)
{
    cli_ap_t ap = {.list = list};
    const char *p = value;
    int ret = -1;

    buf_init(&ap.plain, 64 * 1024);
    buf_init(&ap.angle, 64 * 1024);
    while (*p) {
        unsigned char c = (unsigned char)*p;

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            p++;
            continue;
        }
        if (c == '(') {
            if ((p = cli_ap_comment(p + 1)) == NULL) {
                *why_r = "unbalanced '('";
                goto out;
            }
            continue;
        }
        if (c == '"') {
            buf_t q;

            buf_init(&q, 64 * 1024);
            p = cli_ap_quoted(p + 1, &q);
            if (p == NULL) {
                buf_free(&q);
                *why_r = "unbalanced '\"'";
                goto out;
            }
            cli_ap_word(&ap, buf_cstr(&q), q.len);
            buf_free(&q);
            continue;
        }
        if (c == '[') {
            const char *e = strchr(p, ']');

            if (e == NULL) {
                *why_r = "unbalanced '['";
                goto out;
            }
            cli_ap_word(&ap, p, (size_t)(e - p + 1));
            p = e + 1;
            continue;
        }
        switch (c) {
        case '<':
            if (ap.in_angle || ap.have_angle) {
                *why_r = "unexpected '<'";
                goto out;
            }
            ap.in_angle = ap.have_angle = true;
            break;
        case '>':
            if (!ap.in_angle) {
                *why_r = "unexpected '>'";
                goto out;
            }
            ap.in_angle = false;
            break;
        case ',':
            /* Inside <> a comma separates source-route hops. */
            if (!ap.in_angle && cli_ap_emit(&ap, why_r) < 0)
                goto out;
            break;
        case ':':
            /* Inside <> it ends a source route; outside, it ends a
             * group's display name. Both are dropped. */
            if (ap.in_angle) {
                buf_reset(&ap.angle);
            } else {
                buf_reset(&ap.plain);
                ap.phrase = false;
            }
            break;
        case ';':
            if (ap.in_angle) {
                *why_r = "unexpected ';'";
                goto out;
            }
            if (cli_ap_emit(&ap, why_r) < 0)
                goto out;
            break;
        case '.':
        case '@':
            if (ap.in_angle)
                buf_putc(&ap.angle, c);
            else
                buf_putc(&ap.plain, c);
            ap.last_word = false;
            break;
        default: {
            const char *s = p;

            if (c < 0x21 || c == 0x7F || c == ')' || c == ']' || c == '\\') {
                *why_r = "invalid character in address";
                goto out;
            }
            while (*p && !strchr(" \t\r\n()<>[]:;@\\,.\"", *p) && (unsigned char)*p > 0x20
                   && *p != 0x7F)
                p++;
            cli_ap_word(&ap, s, (size_t)(p - s));
            continue;
        }
        }
        p++;
    }
    if (ap.in_angle) {
        *why_r = "unbalanced '<'";
        goto out;
    }
    ret = cli_ap_emit(&ap, why_r);
out:
    buf_free(&ap.plain);
    buf_free(&ap.angle);
    return ret;
}

/* cli_hdr_name_len - length of "name:" at the start of a line, 0 if none */
static size_t cli_hdr_name_len(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':')
        i++;
    if (i == 0)
        return 0;
    size_t name = i;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i < n && p[i] == ':' ? name : 0;
}

/* cli_line_end - offset just past the line starting at pos */
static size_t cli_line_end(const char *content, size_t len, size_t pos)
{
    const char *nl = memchr(content + pos, '\n', len - pos);

    return nl ? (size_t)(nl - content) + 1 : len;
}

/* cli_hdr_walk - iterate header fields; returns the end of the section */
static size_t cli_hdr_walk(const char *content, size_t len,
                           void (*fn)(const char *, size_t, const char *, size_t, size_t,
                                      void *),
                           void *ctx)
{
    size_t pos = 0;
    buf_t value;

    buf_init(&value, BUF_NOLIMIT);
    while (pos < len) {
        size_t end = cli_line_end(content, len, pos);
        size_t name_len = cli_hdr_name_len(content + pos, end - pos);

        if (name_len == 0)
            break;
        /* Continuation lines begin with white space. */
        while (end < len && (content[end] == ' ' || content[end] == '\t'))
            end = cli_line_end(content, len, end);
        if (fn) {
            const char *v = memchr(content + pos, ':', end - pos) + 1;

            buf_reset(&value);
            for (; v < content + end; v++)
                if (*v != '\r' && *v != '\n')
                    buf_putc(&value, *v);
            fn(content + pos, name_len, buf_cstr(&value), pos, end, ctx);
        }
        pos = end;
    }
    buf_free(&value);
    return pos;
}

/* cli_hdr_foreach - public walk over the header section */
void cli_hdr_foreach(const char *content, size_t hdr_end,
                     void (*fn)(const char *name, size_t name_len, const char *value,
                                size_t start, size_t end, void *ctx),
                     void *ctx)
{
    cli_hdr_walk(content, hdr_end, fn, ctx);
}

/* cli_hdr_is - is the field name (not terminated) equal to want? */
static bool cli_hdr_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* cli_msg_note - remember which headers are present */
static void cli_msg_note(const char *name, size_t n, const char *value, size_t s, size_t e,
                         void *ctx)
{
    cli_msg_t *m = ctx;

    if (cli_hdr_is(name, n, "date"))
        m->has_date = true;
    else if (cli_hdr_is(name, n, "message-id"))
        m->has_msgid = true;
    else if (cli_hdr_is(name, n, "from"))
        m->has_from = true;
    else if (cli_hdr_is(name, n, "resent-to") || cli_hdr_is(name, n, "resent-cc")
             || cli_hdr_is(name, n, "resent-bcc"))
        m->has_resent = true;
}

/* cli_msg_split - find the header section and note what it has */
void cli_msg_split(const char *content, size_t len, cli_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->hdr_end = cli_hdr_walk(content, len, cli_msg_note, m);
}

typedef struct cli_rcpt_ctx {
    const cli_msg_t *m;
    cli_addr_list_t *list;
    const char *why;
} cli_rcpt_ctx_t;

/* cli_msg_rcpt_field - collect the addresses of one recipient header */
static void cli_msg_rcpt_field(const char *name, size_t n, const char *value, size_t s,
                               size_t e, void *ctx)
{
    cli_rcpt_ctx_t *rc = ctx;
    bool want;

    if (rc->m->has_resent)
        want = cli_hdr_is(name, n, "resent-to") || cli_hdr_is(name, n, "resent-cc")
            || cli_hdr_is(name, n, "resent-bcc");
    else
        want = cli_hdr_is(name, n, "to") || cli_hdr_is(name, n, "cc")
            || cli_hdr_is(name, n, "bcc");
    if (want && rc->why == NULL) {
        const char *why;

        if (cli_addrlist_parse(value, rc->list, &why) < 0)
            rc->why = why;
    }
}

/* cli_msg_rcpts - the recipients named in the headers (sendmail -t) */
int cli_msg_rcpts(const char *content, const cli_msg_t *m, cli_addr_list_t *list,
                  const char **why_r)
{
    cli_rcpt_ctx_t rc = {.m = m, .list = list};

    cli_hdr_walk(content, m->hdr_end, cli_msg_rcpt_field, &rc);
    if (rc.why) {
        *why_r = rc.why;
        return -1;
    }
    return 0;
}

typedef struct cli_rw_ctx {
    const char *content;
    buf_t *out;
} cli_rw_ctx_t;

/* cli_msg_copy_field - copy a header field unless it is a Bcc */
static void cli_msg_copy_field(const char *name, size_t n, const char *value, size_t s,
                               size_t e, void *ctx)
{
    cli_rw_ctx_t *rw = ctx;

    if (cli_hdr_is(name, n, "bcc") || cli_hdr_is(name, n, "resent-bcc"))
        return;
    buf_append(rw->out, rw->content + s, e - s);
}

/* cli_msg_rewrite - drop Bcc, add headers, keep the body */
void cli_msg_rewrite(const char *content, size_t len, const cli_msg_t *m, const char *added,
                     buf_t *out)
{
    cli_rw_ctx_t rw = {.content = content, .out = out};

    cli_hdr_walk(content, m->hdr_end, cli_msg_copy_field, &rw);
    /* A last header line without a line end (a message that is only
     * headers, no final newline) gets one before more lines follow. */
    if (out->len > 0 && out->data[out->len - 1] != '\n')
        buf_puts(out, "\r\n");
    buf_puts(out, added);
    if (m->hdr_end < len) {
        const char *body = content + m->hdr_end;
        size_t blen = len - m->hdr_end;

        if (!(blen >= 2 && body[0] == '\r' && body[1] == '\n') && !(body[0] == '\n'))
            buf_puts(out, "\r\n");
        buf_append(out, body, blen);
    }
}
