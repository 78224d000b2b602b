/*
 * smtp_parse.c - SMTP command line and ESMTP parameter parsing (see
 * smtp_parse.h). Grammar references: RFC 5321 4.1.1-4.1.2 (commands,
 * Mail-parameters), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 3030
 * (BINARYMIME, BDAT), RFC 6531 (SMTPUTF8), RFC 3461 (RET, ENVID,
 * NOTIFY, ORCPT, xtext), RFC 4954 (AUTH=).
 */
#include <string.h>
#include <strings.h>
#include "mail/addr.h"
#include "smtp/smtp_parse.h"

#define SMTP_TEXT_LIMIT 1024

/* smtp_err_init - an empty error */
void smtp_err_init(smtp_err_t *err)
{
    err->code = 0;
    err->dsn = "";
    buf_init(&err->text, SMTP_TEXT_LIMIT);
}

/* smtp_err_free - release the error text */
void smtp_err_free(smtp_err_t *err)
{
    buf_free(&err->text);
}

/* smtp_fail - set the error; returns -1 for "return smtp_fail(...)" */
static int smtp_fail(smtp_err_t *err, int code, const char *dsn, const char *text)
{
    err->code = code;
    err->dsn = dsn;
    buf_reset(&err->text);
    buf_puts(&err->text, text);
    return -1;
}

/* smtp_fail_kw - the same with a printable copy of a client keyword */
static int smtp_fail_kw(smtp_err_t *err, int code, const char *dsn, const char *text,
                        const char *kw, size_t kwlen)
{
    smtp_fail(err, code, dsn, text);
    if (kwlen > 64)
        kwlen = 64;                             /* keep replies short */
    for (size_t i = 0; i < kwlen; i++) {
        unsigned char c = (unsigned char)kw[i];
        buf_putc(&err->text, (c > 32 && c < 127) ? c : '?');
    }
    return -1;
}

/* smtp_mail_init - an empty MAIL result */
void smtp_mail_init(smtp_mail_t *m)
{
    memset(m, 0, sizeof(*m));
    buf_init(&m->addr, 1024);
    buf_init(&m->envid, 1024);
    buf_init(&m->auth, 1024);
}

/* smtp_mail_free - release a MAIL result */
void smtp_mail_free(smtp_mail_t *m)
{
    buf_free(&m->addr);
    buf_free(&m->envid);
    buf_free(&m->auth);
}

/* smtp_mail_reset - back to "no parameters" */
static void smtp_mail_reset(smtp_mail_t *m)
{
    buf_reset(&m->addr);
    buf_reset(&m->envid);
    buf_reset(&m->auth);
    m->size_set = m->smtputf8 = m->envid_set = m->auth_set = false;
    m->size = 0;
    m->body = SMTP_BODY_NONE;
    m->ret = SMTP_RET_NONE;
}

/* smtp_rcpt_init - an empty RCPT result */
void smtp_rcpt_init(smtp_rcpt_t *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->addr, 1024);
    buf_init(&r->orcpt, 1024);
}

/* smtp_rcpt_free - release an RCPT result */
void smtp_rcpt_free(smtp_rcpt_t *r)
{
    buf_free(&r->addr);
    buf_free(&r->orcpt);
}

/* smtp_parse_line - split a command line into verb and argument */
int smtp_parse_line(const char *line, size_t len, smtp_cmdline_t *cl, smtp_err_t *err)
{
    size_t i = 0, end = len;

    memset(cl, 0, sizeof(*cl));
    for (size_t j = 0; j < len; j++) {
        unsigned char c = (unsigned char)line[j];
        if ((c < 32 && c != '\t') || c == 127)
            return smtp_fail(err, 500, "5.5.2", "Error: bad syntax (control character)");
        if (c >= 0x80)
            cl->has_8bit = true;
    }
    if (cl->has_8bit && !addr_utf8_valid(line, len))
        return smtp_fail(err, 500, "5.5.2", "Error: bad UTF-8 syntax");
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    cl->verb = line + i;
    while (i < end && ((line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= 'a' && line[i] <= 'z')))
        i++;
    cl->verb_len = (size_t)(line + i - cl->verb);
    if (cl->verb_len == 0 || cl->verb_len > SMTP_VERB_MAX
        || (i < end && line[i] != ' ' && line[i] != '\t'))
        return smtp_fail(err, 500, "5.5.2", "Error: bad syntax");
    while (i < end && (line[i] == ' ' || line[i] == '\t'))
        i++;
    cl->arg = line + i;
    cl->arg_len = end - i;
    /* has_8bit describes the argument: the verb is ASCII letters. */
    return 0;
}

/* smtp_verb_is - case-insensitive verb comparison */
bool smtp_verb_is(const smtp_cmdline_t *cl, const char *verb)
{
    return strlen(verb) == cl->verb_len && strncasecmp(cl->verb, verb, cl->verb_len) == 0;
}

/* smtp_hexval - value of a hex digit, -1 if none */
static int smtp_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    /* RFC 3461 wants upper-case hex; lower case is tolerated. */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* smtp_xtext_decode - RFC 3461 xtext to bytes, appended to out */
int smtp_xtext_decode(const char *s, size_t len, buf_t *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            int h, l;
            if (len - i < 3 || (h = smtp_hexval(s[i + 1])) < 0 || (l = smtp_hexval(s[i + 2])) < 0)
                return -1;
            c = (unsigned char)(h << 4 | l);
            if (c < 32 || c == 127)
                return -1;
            i += 2;
        } else if (c < 33 || c == '=' || c == 127) {
            return -1;
        }
        if (buf_putc(out, c) < 0)
            return -1;
    }
    return 0;
}

/* smtp_param - one "KEYWORD[=value]" token */
typedef struct smtp_param {
    const char *kw;
    size_t kwlen;
    const char *val;        /* NULL: no '=' */
    size_t vlen;
} smtp_param_t;

/* smtp_next_param - the next space-separated parameter; 0 none, 1 got one, -1 bad */
static int smtp_next_param(const char **pp, const char *end, unsigned flags, smtp_param_t *p)
{
    const char *s = *pp, *tok;

    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s == end)
        return 0;
    tok = s;
    while (s < end && *s != ' ' && *s != '\t')
        s++;
    *pp = s;
    p->kw = tok;
    p->val = memchr(tok, '=', (size_t)(s - tok));
    p->kwlen = (size_t)((p->val ? p->val : s) - tok);
    if (p->val) {
        p->val++;
        p->vlen = (size_t)(s - p->val);
    }
    /* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
    if (p->kwlen == 0 || p->kw[0] == '-')
        return -1;
    for (size_t i = 0; i < p->kwlen; i++) {
        char c = p->kw[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return -1;
    }
    if (p->val) {
        if (p->vlen == 0)
            return -1;
        for (size_t i = 0; i < p->vlen; i++)
            if ((unsigned char)p->val[i] >= 0x80 && !(flags & SMTP_PARSE_UTF8))
                return -1;
    }
    return 1;
}

/* smtp_kw_is - case-insensitive keyword match */
static bool smtp_kw_is(const char *s, size_t len, const char *kw)
{
    return strlen(kw) == len && strncasecmp(s, kw, len) == 0;
}

/* smtp_parse_prefix - "FROM:" / "TO:" and optional spaces; the path start */
static int smtp_parse_prefix(const char *arg, size_t len, const char *prefix, size_t *off_r)
{
    size_t plen = strlen(prefix), i;

    if (len < plen || strncasecmp(arg, prefix, plen) != 0)
        return -1;
    i = plen;
    /* Postfix tolerates "MAIL FROM: <addr>" (a space after the colon). */
    while (i < len && arg[i] == ' ')
        i++;
    if (i == len)
        return -1;
    *off_r = i;
    return 0;
}

/* smtp_path - parse the path at arg+off; returns the offset after it */
static int smtp_path(const char *arg, size_t len, size_t off, unsigned aflags, buf_t *out,
                     size_t *end_r, bool *utf8_r)
{
    size_t used;
    const char *why;

    if (addr_parse_path(arg + off, len - off, aflags, out, &used, &why) < 0)
        return -1;
    off += used;
    if (off < len && arg[off] != ' ' && arg[off] != '\t')
        return -1;
    *end_r = off;
    *utf8_r = false;
    for (size_t i = 0; i < out->len; i++)
        if ((unsigned char)out->data[i] >= 0x80)
            *utf8_r = true;
    return 0;
}

/* smtp_mail_param - apply one MAIL parameter */
static int smtp_mail_param(const smtp_param_t *p, unsigned flags, smtp_mail_t *m, smtp_err_t *err)
{
    if (smtp_kw_is(p->kw, p->kwlen, "SIZE")) {
        uint64_t v = 0;
        if (m->size_set)
            return smtp_fail(err, 501, "5.5.4", "Duplicate SIZE parameter");
        if (p->val == NULL || p->vlen > 20)
            return smtp_fail(err, 501, "5.5.4", "Bad message size syntax");
        for (size_t i = 0; i < p->vlen; i++) {
            unsigned d = (unsigned)(p->val[i] - '0');
            if (d > 9)
                return smtp_fail(err, 501, "5.5.4", "Bad message size syntax");
            v = (v > (UINT64_MAX - d) / 10) ? UINT64_MAX : v * 10 + d;
        }
        m->size_set = true;
        m->size = v;
    } else if (smtp_kw_is(p->kw, p->kwlen, "BODY")) {
        if (m->body != SMTP_BODY_NONE)
            return smtp_fail(err, 501, "5.5.4", "Duplicate BODY parameter");
        if (p->val && smtp_kw_is(p->val, p->vlen, "7BIT"))
            m->body = SMTP_BODY_7BIT;
        else if (p->val && smtp_kw_is(p->val, p->vlen, "8BITMIME"))
            m->body = SMTP_BODY_8BITMIME;
        else if (p->val && smtp_kw_is(p->val, p->vlen, "BINARYMIME"))
            m->body = SMTP_BODY_BINARYMIME;
        else
            return smtp_fail(err, 501, "5.5.4", "Bad BODY keyword syntax");
    } else if (smtp_kw_is(p->kw, p->kwlen, "SMTPUTF8") && (flags & SMTP_PARSE_UTF8)) {
        if (p->val)
            return smtp_fail(err, 501, "5.5.4", "Bad SMTPUTF8 parameter syntax");
        if (m->smtputf8)
            return smtp_fail(err, 501, "5.5.4", "Duplicate SMTPUTF8 parameter");
        m->smtputf8 = true;
    } else if (smtp_kw_is(p->kw, p->kwlen, "RET")) {
        if (m->ret != SMTP_RET_NONE)
            return smtp_fail(err, 501, "5.5.4", "Duplicate RET parameter");
        if (p->val && smtp_kw_is(p->val, p->vlen, "FULL"))
            m->ret = SMTP_RET_FULL;
        else if (p->val && smtp_kw_is(p->val, p->vlen, "HDRS"))
            m->ret = SMTP_RET_HDRS;
        else
            return smtp_fail(err, 501, "5.5.4", "Bad RET parameter syntax");
    } else if (smtp_kw_is(p->kw, p->kwlen, "ENVID")) {
        if (m->envid_set)
            return smtp_fail(err, 501, "5.5.4", "Duplicate ENVID parameter");
        if (p->val == NULL || p->vlen > SMTP_ENVID_MAX
            || smtp_xtext_decode(p->val, p->vlen, &m->envid) < 0)
            return smtp_fail(err, 501, "5.5.4", "Bad ENVID parameter syntax");
        m->envid_set = true;
    } else if (smtp_kw_is(p->kw, p->kwlen, "AUTH")) {
        if (m->auth_set)
            return smtp_fail(err, 501, "5.5.4", "Duplicate AUTH parameter");
        if (p->val == NULL || p->vlen > SMTP_AUTH_MAX
            || smtp_xtext_decode(p->val, p->vlen, &m->auth) < 0)
            return smtp_fail(err, 501, "5.5.4", "Bad AUTH parameter syntax");
        m->auth_set = true;
    } else {
        return smtp_fail_kw(err, 555, "5.5.4", "Unsupported option: ", p->kw,
                            p->val ? p->kwlen + 1 + p->vlen : p->kwlen);
    }
    return 0;
}

/* smtp_parse_mail - "FROM:<path> [params]" */
int smtp_parse_mail(const char *arg, size_t len, unsigned flags, smtp_mail_t *m, smtp_err_t *err)
{
    size_t off;
    const char *p, *end = arg + len;
    smtp_param_t prm;
    bool utf8;
    int got;
    unsigned aflags = ADDR_FLAG_NULL_OK;

    smtp_mail_reset(m);
    if (smtp_parse_prefix(arg, len, "FROM:", &off) < 0)
        return smtp_fail(err, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
    if (flags & SMTP_PARSE_UTF8)
        aflags |= ADDR_FLAG_UTF8;
    if (!(flags & SMTP_PARSE_STRICT))
        aflags |= ADDR_FLAG_NO_BRACKETS;
    if (smtp_path(arg, len, off, aflags, &m->addr, &off, &utf8) < 0) {
        buf_reset(&m->addr);
        return smtp_fail(err, 501, "5.1.7", "Bad sender address syntax");
    }
    p = arg + off;
    while ((got = smtp_next_param(&p, end, flags, &prm)) == 1) {
        if (smtp_mail_param(&prm, flags, m, err) < 0) {
            smtp_mail_reset(m);
            return -1;
        }
    }
    if (got < 0) {
        smtp_mail_reset(m);
        return smtp_fail_kw(err, 501, "5.5.4", "Bad parameter syntax: ", prm.kw,
                            prm.val ? prm.kwlen + 1 + prm.vlen : prm.kwlen);
    }
    /* RFC 6531 3.4: a non-ASCII address needs SMTPUTF8 on this MAIL. */
    if (utf8 && !m->smtputf8) {
        smtp_mail_reset(m);
        return smtp_fail(err, 553, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
    }
    return 0;
}

/* smtp_notify - NOTIFY=NEVER / SUCCESS,FAILURE,DELAY */
static int smtp_notify(const char *v, size_t len, unsigned *notify_r)
{
    unsigned n = 0;
    size_t i = 0;

    while (i <= len) {
        const char *comma = memchr(v + i, ',', len - i);
        size_t wlen = (size_t)((comma ? comma : v + len) - (v + i));
        const char *w = v + i;

        if (smtp_kw_is(w, wlen, "NEVER"))
            n |= SMTP_NOTIFY_NEVER;
        else if (smtp_kw_is(w, wlen, "SUCCESS"))
            n |= SMTP_NOTIFY_SUCCESS;
        else if (smtp_kw_is(w, wlen, "FAILURE"))
            n |= SMTP_NOTIFY_FAILURE;
        else if (smtp_kw_is(w, wlen, "DELAY"))
            n |= SMTP_NOTIFY_DELAY;
        else
            return -1;
        if (comma == NULL)
            break;
        i += wlen + 1;
    }
    if ((n & SMTP_NOTIFY_NEVER) && n != SMTP_NOTIFY_NEVER)
        return -1;
    *notify_r = n;
    return 0;
}

/* smtp_orcpt - ORCPT=addr-type;xtext → "addr-type;decoded" */
static int smtp_orcpt(const char *v, size_t len, buf_t *out)
{
    const char *semi = memchr(v, ';', len);
    size_t tlen;

    if (len > SMTP_ORCPT_MAX || semi == NULL || semi == v || semi + 1 == v + len)
        return -1;
    tlen = (size_t)(semi - v);
    /* addr-type is an atom: letters, digits and hyphens in practice */
    for (size_t i = 0; i < tlen; i++) {
        char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return -1;
    }
    buf_append(out, v, tlen + 1);
    return smtp_xtext_decode(semi + 1, len - tlen - 1, out);
}

/* smtp_parse_rcpt - "TO:<path> [params]" */
int smtp_parse_rcpt(const char *arg, size_t len, unsigned flags, smtp_rcpt_t *r, smtp_err_t *err)
{
    size_t off;
    const char *p, *end = arg + len;
    smtp_param_t prm;
    bool utf8;
    int got;
    unsigned aflags = ADDR_FLAG_NO_DOMAIN;
    bool bad_value = false;

    buf_reset(&r->addr);
    buf_reset(&r->orcpt);
    r->notify = 0;
    if (smtp_parse_prefix(arg, len, "TO:", &off) < 0)
        return smtp_fail(err, 501, "5.5.4", "Syntax: RCPT TO:<address>");
    if (flags & SMTP_PARSE_UTF8)
        aflags |= ADDR_FLAG_UTF8;
    if (!(flags & SMTP_PARSE_STRICT))
        aflags |= ADDR_FLAG_NO_BRACKETS;
    if (smtp_path(arg, len, off, aflags, &r->addr, &off, &utf8) < 0) {
        buf_reset(&r->addr);
        return smtp_fail(err, 501, "5.1.3", "Bad recipient address syntax");
    }
    p = arg + off;
    while ((got = smtp_next_param(&p, end, flags, &prm)) == 1) {
        if (smtp_kw_is(prm.kw, prm.kwlen, "NOTIFY")) {
            if (r->notify)
                got = smtp_fail(err, 501, "5.5.4", "Duplicate NOTIFY parameter");
            else if (prm.val == NULL || smtp_notify(prm.val, prm.vlen, &r->notify) < 0)
                got = smtp_fail(err, 501, "5.5.4", "Bad NOTIFY parameter syntax");
        } else if (smtp_kw_is(prm.kw, prm.kwlen, "ORCPT")) {
            if (r->orcpt.len)
                got = smtp_fail(err, 501, "5.5.4", "Duplicate ORCPT parameter");
            else if (prm.val == NULL || smtp_orcpt(prm.val, prm.vlen, &r->orcpt) < 0)
                got = smtp_fail(err, 501, "5.5.4", "Bad ORCPT parameter syntax");
        } else {
            got = smtp_fail_kw(err, 555, "5.5.4", "Unsupported option: ", prm.kw,
                               prm.val ? prm.kwlen + 1 + prm.vlen : prm.kwlen);
        }
        if (got < 0) {
            bad_value = true;
            break;
        }
    }
    if (got < 0 && !bad_value)
        smtp_fail_kw(err, 501, "5.5.4", "Bad parameter syntax: ", prm.kw,
                     prm.val ? prm.kwlen + 1 + prm.vlen : prm.kwlen);
    if (got < 0) {
        buf_reset(&r->addr);
        buf_reset(&r->orcpt);
        r->notify = 0;
        return -1;
    }
    return 0;
}

/* smtp_parse_bdat - "chunk-size [LAST]" */
int smtp_parse_bdat(const char *arg, size_t len, uint64_t *size_r, bool *last_r, smtp_err_t *err)
{
    size_t i = 0;
    uint64_t v = 0;

    while (i < len && arg[i] >= '0' && arg[i] <= '9') {
        unsigned d = (unsigned)(arg[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return smtp_fail(err, 501, "5.5.4", "Syntax: BDAT count [LAST]");
        v = v * 10 + d;
        i++;
    }
    if (i == 0)
        return smtp_fail(err, 501, "5.5.4", "Syntax: BDAT count [LAST]");
    *last_r = false;
    if (i < len) {
        size_t j = i;
        while (j < len && arg[j] == ' ')
            j++;
        if (j == i || !smtp_kw_is(arg + j, len - j, "LAST"))
            return smtp_fail(err, 501, "5.5.4", "Syntax: BDAT count [LAST]");
        *last_r = true;
    }
    *size_r = v;
    return 0;
}
