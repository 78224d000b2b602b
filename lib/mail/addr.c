/*
 * addr.c - RFC 5321 path and mailbox parsing, quoting (see addr.h)
 *
 * The grammar (RFC 5321 4.1.2, RFC 6531 3.3 for UTF-8):
 *	Path         = "<" [ A-d-l ":" ] Mailbox ">"
 *	A-d-l        = At-domain *( "," At-domain )     ; dropped
 *	Mailbox      = Local-part "@" ( Domain / address-literal )
 *	Local-part   = Dot-string / Quoted-string
 *	Dot-string   = Atom *("." Atom)
 *	Quoted-string = DQUOTE *( qtextSMTP / "\" %d32-126 ) DQUOTE
 *	Domain       = sub-domain *("." sub-domain)
 *	address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]"
 * The parser walks a cursor over the input and never reads past len.
 */
#include <arpa/inet.h>
#include <string.h>
#include "mail/addr.h"

typedef struct addr_cur {
    const char *p;
    const char *end;
    unsigned flags;
} addr_cur_t;

/* addr_utf8_len - length of the UTF-8 sequence at s, 0 if malformed */
static size_t addr_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values above U+10FFFF. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* addr_utf8_valid - well-formed UTF-8? */
bool addr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = addr_utf8_len(u + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* addr_atext - an RFC 5322 atext character (ASCII part) */
static bool addr_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* addr_take_utf8 - consume one non-ASCII UTF-8 character if allowed */
static bool addr_take_utf8(addr_cur_t *c)
{
    size_t n;

    if (!(c->flags & ADDR_FLAG_UTF8))
        return false;
    n = addr_utf8_len((const unsigned char *)c->p, (size_t)(c->end - c->p));
    if (n < 2)
        return false;
    c->p += n;
    return true;
}

/* addr_dot_string - Atom *("." Atom), appended to out as is */
static int addr_dot_string(addr_cur_t *c, buf_t *out, const char **why_r)
{
    for (;;) {
        const char *start = c->p;

        while (c->p < c->end) {
            unsigned char ch = (unsigned char)*c->p;
            if (addr_atext(ch))
                c->p++;
            else if (ch >= 0x80 && addr_take_utf8(c))
                continue;
            else
                break;
        }
        if (c->p == start) {
            *why_r = (c->p < c->end && (unsigned char)*c->p >= 0x80)
                ? "non-ASCII address without SMTPUTF8" : "bad address syntax";
            return -1;
        }
        buf_append(out, start, (size_t)(c->p - start));
        if (c->p < c->end && *c->p == '.') {
            buf_putc(out, '.');
            c->p++;
            continue;
        }
        return 0;
    }
}

/* addr_quoted_string - DQUOTE ... DQUOTE, unquoted into out */
static int addr_quoted_string(addr_cur_t *c, buf_t *out, const char **why_r)
{
    c->p++;                                     /* opening quote */
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;

        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch == '\\') {
            if (c->p + 1 >= c->end || (unsigned char)c->p[1] < 32 || (unsigned char)c->p[1] > 126) {
                *why_r = "bad quoted-pair in local part";
                return -1;
            }
            buf_putc(out, c->p[1]);
            c->p += 2;
        } else if (ch >= 32 && ch <= 126) {
            buf_putc(out, ch);
            c->p++;
        } else if (ch >= 0x80) {
            const char *start = c->p;
            if (!addr_take_utf8(c)) {
                *why_r = (c->flags & ADDR_FLAG_UTF8) ? "malformed UTF-8 in local part"
                    : "non-ASCII address without SMTPUTF8";
                return -1;
            }
            buf_append(out, start, (size_t)(c->p - start));
        } else {
            *why_r = "control character in local part";
            return -1;
        }
    }
    *why_r = "unterminated quoted local part";
    return -1;
}

/* addr_literal - "[" IPv4 / "IPv6:" IPv6 "]", checked with inet_pton */
static int addr_literal(addr_cur_t *c, buf_t *out, const char **why_r)
{
    const char *start = c->p;
    const char *close = memchr(c->p, ']', (size_t)(c->end - c->p));
    char tmp[64];
    size_t n;
    unsigned char bin[16];
    int af = AF_INET;
    const char *body = start + 1;

    if (close == NULL) {
        *why_r = "unterminated address literal";
        return -1;
    }
    n = (size_t)(close - body);
    if (n > 6 && strncasecmp(body, "IPv6:", 5) == 0) {
        af = AF_INET6;
        body += 5;
        n -= 5;
    }
    if (n == 0 || n >= sizeof(tmp)) {
        *why_r = "bad address literal";
        return -1;
    }
    memcpy(tmp, body, n);
    tmp[n] = 0;
    /* inet_pton rejects leading zeros in IPv4 and anything else odd. */
    if (strspn(tmp, af == AF_INET ? "0123456789." : "0123456789abcdefABCDEF:.") != n
        || inet_pton(af, tmp, bin) != 1) {
        *why_r = "bad address literal";
        return -1;
    }
    c->p = close + 1;
    buf_append(out, start, (size_t)(c->p - start));
    return 0;
}

/* addr_label_char - a letter, digit or hyphen (or UTF-8 when allowed) */
static bool addr_label_char(addr_cur_t *c)
{
    unsigned char ch = (unsigned char)*c->p;

    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
        || ch == '-') {
        c->p++;
        return true;
    }
    return ch >= 0x80 && addr_take_utf8(c);
}

/* addr_domain_cur - Domain / address-literal at the cursor, into out */
static int addr_domain_cur(addr_cur_t *c, buf_t *out, const char **why_r)
{
    const char *start = c->p;

    if (c->p < c->end && *c->p == '[')
        return addr_literal(c, out, why_r);
    for (;;) {
        const char *label = c->p;

        while (c->p < c->end && addr_label_char(c))
            ;
        if (c->p == label || label[0] == '-' || c->p[-1] == '-') {
            *why_r = (c->p < c->end && (unsigned char)*c->p >= 0x80)
                ? "non-ASCII domain without SMTPUTF8" : "bad domain syntax";
            return -1;
        }
        if (c->p - label > 63) {
            *why_r = "domain label too long";
            return -1;
        }
        if (c->p < c->end && *c->p == '.' && c->p + 1 < c->end) {
            c->p++;
            continue;
        }
        break;
    }
    if (c->p - start > ADDR_DOMAIN_MAX) {
        *why_r = "domain too long";
        return -1;
    }
    buf_append(out, start, (size_t)(c->p - start));
    return 0;
}

/* addr_mailbox_cur - Local-part ["@" Domain] at the cursor, into out */
static int addr_mailbox_cur(addr_cur_t *c, buf_t *out, const char **why_r)
{
    const char *start = c->p;
    int ret;

    if (c->p >= c->end) {
        *why_r = "empty address";
        return -1;
    }
    ret = (*c->p == '"') ? addr_quoted_string(c, out, why_r) : addr_dot_string(c, out, why_r);
    if (ret < 0)
        return -1;
    if (c->p - start > ADDR_LOCAL_MAX) {
        *why_r = "local part too long";
        return -1;
    }
    if (out->len == 0) {
        *why_r = "empty local part";
        return -1;
    }
    if (c->p < c->end && *c->p == '@') {
        c->p++;
        buf_putc(out, '@');
        return addr_domain_cur(c, out, why_r);
    }
    if (!(c->flags & ADDR_FLAG_NO_DOMAIN)) {
        *why_r = "address has no domain";
        return -1;
    }
    /* A bare local part with a (quoted) '@' would read as local@domain in
     * the internal form: "<\"u@other\">" must not route to "other". */
    if (memchr(out->data, '@', out->len) != NULL) {
        *why_r = "bad address syntax";
        return -1;
    }
    return 0;
}

/* addr_source_route - "@a,@b:" checked and skipped */
static int addr_source_route(addr_cur_t *c, const char **why_r)
{
    buf_t junk;
    int ret = 0;

    buf_init(&junk, BUF_NOLIMIT);
    for (;;) {
        c->p++;                                 /* '@' */
        buf_reset(&junk);
        if (addr_domain_cur(c, &junk, why_r) < 0) {
            ret = -1;
            break;
        }
        if (c->p < c->end && *c->p == ',' && c->p + 1 < c->end && c->p[1] == '@') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ':') {
            c->p++;
            break;
        }
        *why_r = "bad source route syntax";
        ret = -1;
        break;
    }
    buf_free(&junk);
    return ret;
}

/* addr_parse_path - Reverse-path / Forward-path to internal form */
int addr_parse_path(const char *s, size_t len, unsigned flags, buf_t *out,
                    size_t *consumed_r, const char **why_r)
{
    addr_cur_t c = { s, s + len, flags };

    buf_reset(out);
    if (len == 0 || s[0] != '<') {
        const char *sp;

        if (!(flags & ADDR_FLAG_NO_BRACKETS) || len == 0) {
            *why_r = "address not in <>";
            return -1;
        }
        sp = memchr(s, ' ', len);
        c.end = sp ? sp : s + len;
        if (c.end - s > ADDR_PATH_MAX) {
            *why_r = "address too long";
            return -1;
        }
        if (addr_mailbox_cur(&c, out, why_r) < 0)
            return -1;
        if (c.p != c.end) {
            *why_r = "bad address syntax";
            return -1;
        }
        if (consumed_r)
            *consumed_r = (size_t)(c.p - s);
        return 0;
    }
    /* Bound the work and the length check to the first ADDR_PATH_MAX + 1
     * bytes: a longer path is an error anyway. */
    if (len > ADDR_PATH_MAX + 1)
        c.end = s + ADDR_PATH_MAX + 1;
    c.p++;
    if (c.p < c.end && *c.p == '>') {
        if (!(flags & ADDR_FLAG_NULL_OK)) {
            *why_r = "null address not allowed here";
            return -1;
        }
        if (consumed_r)
            *consumed_r = 2;
        return 0;
    }
    if (c.p < c.end && *c.p == '@' && addr_source_route(&c, why_r) < 0)
        return -1;
    if (addr_mailbox_cur(&c, out, why_r) < 0)
        return -1;
    if (c.p >= c.end || *c.p != '>') {
        *why_r = (c.end - s > ADDR_PATH_MAX) ? "address too long" : "bad address syntax";
        buf_reset(out);
        return -1;
    }
    c.p++;
    if (c.p - s > ADDR_PATH_MAX) {
        *why_r = "address too long";
        buf_reset(out);
        return -1;
    }
    if (consumed_r)
        *consumed_r = (size_t)(c.p - s);
    return 0;
}

/* addr_parse_mailbox - "local@domain" (no brackets) to internal form */
int addr_parse_mailbox(const char *s, size_t len, unsigned flags, buf_t *out,
                       const char **why_r)
{
    addr_cur_t c = { s, s + len, flags & (ADDR_FLAG_UTF8 | ADDR_FLAG_NO_DOMAIN) };

    buf_reset(out);
    if (len > ADDR_PATH_MAX) {
        *why_r = "address too long";
        return -1;
    }
    if (addr_mailbox_cur(&c, out, why_r) < 0)
        return -1;
    if (c.p != c.end) {
        *why_r = "bad address syntax";
        buf_reset(out);
        return -1;
    }
    return 0;
}

/* addr_domain_valid - a whole Domain or address literal? */
bool addr_domain_valid(const char *s, size_t len, unsigned flags)
{
    addr_cur_t c = { s, s + len, flags & ADDR_FLAG_UTF8 };
    buf_t tmp;
    const char *why;
    bool ok;

    if (len == 0 || len > ADDR_DOMAIN_MAX)
        return false;
    buf_init(&tmp, BUF_NOLIMIT);
    ok = addr_domain_cur(&c, &tmp, &why) == 0 && c.p == c.end;
    buf_free(&tmp);
    return ok;
}

/* addr_is_dot_string - can this local part go out unquoted? */
static bool addr_is_dot_string(const char *s, size_t len)
{
    bool prev_dot = true;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (prev_dot)
                return false;
            prev_dot = true;
        } else if (addr_atext(ch) || ch >= 0x80) {
            prev_dot = false;
        } else {
            return false;
        }
    }
    return !prev_dot;
}

/* addr_domain - the domain part of an internal address, or NULL */
const char *addr_domain(const char *internal)
{
    const char *at = strrchr(internal, '@');

    return at ? at + 1 : NULL;
}

/* addr_quote - internal form to external form, appended to out */
void addr_quote(const char *internal, buf_t *out)
{
    const char *at = strrchr(internal, '@');
    size_t llen = at ? (size_t)(at - internal) : strlen(internal);

    if (addr_is_dot_string(internal, llen)) {
        buf_append(out, internal, llen);
    } else {
        buf_putc(out, '"');
        for (size_t i = 0; i < llen; i++) {
            if (internal[i] == '"' || internal[i] == '\\')
                buf_putc(out, '\\');
            buf_putc(out, internal[i]);
        }
        buf_putc(out, '"');
    }
    if (at)
        buf_puts(out, at);
}

/* addr_internal_ok - a plausible internal-form address (see addr.h) */
bool addr_internal_ok(const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t n = strlen(addr);

    if (n == 0 || n > ADDR_INTERNAL_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return false;
    if (at == NULL)
        return strpbrk(addr, " \t<>") == NULL;
    if (at == addr || at[1] == 0)
        return false;
    if (at[1] == '[')
        return addr[n - 1] == ']' && strchr(at + 2, '[') == NULL;
    for (const char *d = at + 1; *d; d++)
        if (strchr(" \t<>()[]\\,;:\"", *d))
            return false;
    return true;
}
