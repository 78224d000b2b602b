/*
 * smtp_text - pure helpers: next hop syntax, server replies, EHLO
 * features, xtext and base64. No I/O and no globals (unit-tested in
 * smtp_text_test.c).
 */
#include "smtp_text.h"
#include "util/str.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* parse_port - a decimal TCP port */
static int parse_port(const char *s, unsigned *port_r)
{
    char *end;
    unsigned long v;

    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > 65535)
        return -1;
    *port_r = (unsigned)v;
    return 0;
}

/* host_ok - a plausible host or domain name (letters, digits, - . _) */
static bool host_ok(const char *h)
{
    if (*h == 0 || strlen(h) > 253)
        return false;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && *h != '-' && *h != '.' && *h != '_'
            && (unsigned char)*h < 0x80)
            return false;
    return true;
}

/* set_host - host into dest, noting an address literal */
static int set_host(smtp_dest_t *d, const char *h, size_t n, bool bracketed)
{
    unsigned char tmp[16];

    if (n == 0 || n >= sizeof(d->host))
        return -1;
    if (bracketed && n > 5 && strncasecmp(h, "ipv6:", 5) == 0) {
        h += 5;
        n -= 5;
    }
    memcpy(d->host, h, n);
    d->host[n] = 0;
    d->literal = inet_pton(AF_INET, d->host, tmp) == 1 || inet_pton(AF_INET6, d->host, tmp) == 1;
    if (d->literal)
        d->mx = false;
    return d->literal || host_ok(d->host) ? 0 : -1;
}

int smtp_nexthop_parse(const char *nh, bool lmtp, unsigned port, smtp_dest_t *d,
                       const char **why_r)
{
    const char *colon;

    memset(d, 0, sizeof(*d));
    d->port = port;
    d->mx = !lmtp;
    *why_r = "bad next-hop syntax";
    if (nh == NULL || *nh == 0) {
        *why_r = "empty next hop";
        return -1;
    }
    if (strncmp(nh, "unix:", 5) == 0) {
        if (!lmtp || nh[5] != '/' || strlen(nh + 5) >= sizeof(d->path))
            return -1;
        d->is_unix = true;
        d->mx = false;
        safe_cpy(d->path, sizeof(d->path), nh + 5);
        safe_cpy(d->host, sizeof(d->host), "localhost");
        return 0;
    }
    if (strncmp(nh, "inet:", 5) == 0) {
        nh += 5;
        d->mx = false;
    }
    if (*nh == '[') {
        const char *end = strchr(nh, ']');

        if (end == NULL || (end[1] && (end[1] != ':' || parse_port(end + 2, &d->port) < 0)))
            return -1;
        d->mx = false;
        return set_host(d, nh + 1, (size_t)(end - nh - 1), true);
    }
    if ((colon = strrchr(nh, ':')) != NULL) {
        if (parse_port(colon + 1, &d->port) < 0)
            return -1;
        return set_host(d, nh, (size_t)(colon - nh), false);
    }
    return set_host(d, nh, strlen(nh), false);
}

void smtp_resp_init(smtp_resp_t *r)
{
    r->code = 0;
    r->started = false;
    buf_init(&r->text, SMTP_RESP_MAX);
    buf_init(&r->lines, SMTP_RESP_MAX);
}

void smtp_resp_reset(smtp_resp_t *r)
{
    r->code = 0;
    r->started = false;
    buf_reset(&r->text);
    buf_reset(&r->lines);
}

void smtp_resp_free(smtp_resp_t *r)
{
    buf_free(&r->text);
    buf_free(&r->lines);
}

/* enh_len - length of an enhanced status code "c.sss.ddd" at s, or 0 */
static size_t enh_len(const char *s, size_t len)
{
    size_t i = 0, part = 0, digits = 0;

    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    for (i = 0; i < len; i++) {
        if (isdigit((unsigned char)s[i])) {
            if (++digits > 3)
                return 0;
        } else if (s[i] == '.' && digits && part < 2) {
            part++;
            digits = 0;
        } else {
            break;
        }
    }
    if (part != 2 || digits == 0 || (i < len && s[i] != ' '))
        return 0;
    return i;
}

int smtp_resp_line(smtp_resp_t *r, const char *line, size_t len, const char **why_r)
{
    int code;
    bool last;
    const char *t;
    size_t tlen;

    if (r->code && !r->started)
        smtp_resp_reset(r);
    if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1])
        || !isdigit((unsigned char)line[2]) || line[0] < '2' || line[0] > '5'
        || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        *why_r = "malformed server reply";
        return -1;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->started && code != r->code) {
        *why_r = "reply code changed within a multi-line reply";
        return -1;
    }
    last = len == 3 || line[3] == ' ';
    t = len > 4 ? line + 4 : "";
    tlen = len > 4 ? len - 4 : 0;
    if (r->started) {
        size_t e = enh_len(t, tlen);

        (void)buf_append(&r->lines, "\n", 1);
        (void)buf_append(&r->lines, t, tlen);
        if (e && e < tlen) {            /* the enhanced code was said once */
            t += e + 1;
            tlen -= e + 1;
        }
        if (tlen)
            (void)buf_putc(&r->text, ' ');
        (void)buf_append(&r->text, t, tlen);
    } else {
        r->started = true;
        r->code = code;
        (void)buf_append(&r->lines, t, tlen);
        (void)buf_printf(&r->text, "%d", code);
        if (tlen) {
            (void)buf_putc(&r->text, ' ');
            (void)buf_append(&r->text, t, tlen);
        }
    }
    if (last) {
        r->started = false;
        return 1;
    }
    return 0;
}

void smtp_resp_dsn(const smtp_resp_t *r, char dsn[16])
{
    const char *t = buf_cstr(&r->text);
    size_t len = r->text.len, e;

    t += len >= 4 ? 4 : len;
    len -= len >= 4 ? 4 : len;
    e = enh_len(t, len);
    if (e && e < 16 && t[0] == '0' + r->code / 100) {
        memcpy(dsn, t, e);
        dsn[e] = 0;
    } else {
        snprintf(dsn, 16, "%d.0.0", r->code / 100);
    }
}

/* word_is - the line starts with keyword kw followed by end, ' ' or '=' */
static bool word_is(const char *line, const char *kw, const char **rest_r)
{
    size_t n = strlen(kw);

    if (strncasecmp(line, kw, n) != 0 || (line[n] && line[n] != ' ' && line[n] != '='))
        return false;
    *rest_r = line[n] ? line + n + 1 : line + n;
    return true;
}

void smtp_ehlo_parse(const char *lines, smtp_feat_t *f)
{
    const char *p = strchr(lines, '\n');

    memset(f, 0, sizeof(*f));
    f->bits = SMTP_FEAT_ESMTP;
    while (p) {
        char line[512];
        const char *next = strchr(p + 1, '\n'), *rest;
        size_t n = next ? (size_t)(next - p - 1) : strlen(p + 1);

        if (n >= sizeof(line))
            n = sizeof(line) - 1;
        memcpy(line, p + 1, n);
        line[n] = 0;
        if (word_is(line, "PIPELINING", &rest))
            f->bits |= SMTP_FEAT_PIPELINING;
        else if (word_is(line, "SIZE", &rest)) {
            f->bits |= SMTP_FEAT_SIZE;
            f->size_limit = strtoull(rest, NULL, 10);
        } else if (word_is(line, "8BITMIME", &rest))
            f->bits |= SMTP_FEAT_8BITMIME;
        else if (word_is(line, "SMTPUTF8", &rest))
            f->bits |= SMTP_FEAT_SMTPUTF8;
        else if (word_is(line, "DSN", &rest))
            f->bits |= SMTP_FEAT_DSN;
        else if (word_is(line, "STARTTLS", &rest))
            f->bits |= SMTP_FEAT_STARTTLS;
        else if (word_is(line, "CHUNKING", &rest))
            f->bits |= SMTP_FEAT_CHUNKING;
        else if (word_is(line, "AUTH", &rest)) {
            f->bits |= SMTP_FEAT_AUTH;
            if (f->auth[0] == 0)
                safe_cpy(f->auth, sizeof(f->auth), rest);
            for (char *c = f->auth; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        }
        p = next;
    }
}

void smtp_xtext_encode(buf_t *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 33 || c > 126 || c == '+' || c == '=')
            (void)buf_printf(out, "+%02X", c);
        else
            (void)buf_putc(out, c);
    }
}

void smtp_base64(buf_t *out, const void *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        char q[4];

        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        (void)buf_append(out, q, 4);
    }
}
