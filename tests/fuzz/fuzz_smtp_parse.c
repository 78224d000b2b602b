/*
 * fuzz_smtp_parse - libFuzzer target for lib/smtp/smtp_parse.c
 *
 * Input: byte 0 selects the parse flags (SMTP_PARSE_UTF8/STRICT), the rest
 * is one command line without CRLF. The line goes through
 * smtp_parse_line; its argument (or the whole text) through
 * smtp_parse_mail, smtp_parse_rcpt, smtp_parse_bdat and
 * smtp_xtext_decode. Properties: the verb and argument lie inside the
 * line, errors carry a code, DSN and text, results respect the limits of
 * smtp_parse.h, and a failed parse leaves the result empty.
 */
#include "fuzz.h"
#include "mail/addr.h"
#include "smtp/smtp_parse.h"

/* check_err - a failure must be ready for smtp_reply() */
static void check_err(const smtp_err_t *err)
{
    fuzz_check(err->code >= 500 && err->code <= 555);
    fuzz_check(err->dsn != NULL && err->dsn[0] == '5' && err->dsn[1] == '.');
    fuzz_check(err->text.len > 0 && strlen(err->text.data) == err->text.len);
    for (size_t i = 0; i < err->text.len; i++)
        fuzz_check((unsigned char)err->text.data[i] >= 32 && err->text.data[i] != 127);
}

/* check_text - decoded text: no NUL or other control characters */
static void check_text(const buf_t *b)
{
    for (size_t i = 0; i < b->len; i++)
        fuzz_check((unsigned char)b->data[i] >= 32 && b->data[i] != 127);
}

/* run_args - MAIL, RCPT, BDAT and xtext on one argument */
static void run_args(const char *arg, size_t len, unsigned flags)
{
    smtp_err_t err;
    smtp_mail_t m;
    smtp_rcpt_t r;
    uint64_t size;
    bool last;
    buf_t x;

    smtp_err_init(&err);
    smtp_mail_init(&m);
    smtp_rcpt_init(&r);
    buf_init(&x, BUF_NOLIMIT);

    if (smtp_parse_mail(arg, len, flags, &m, &err) == 0) {
        fuzz_check(m.addr.len <= ADDR_PATH_MAX);
        fuzz_check(m.envid.len <= SMTP_ENVID_MAX);
        fuzz_check(m.auth.len <= SMTP_AUTH_MAX);
        check_text(&m.addr);
        check_text(&m.envid);
        check_text(&m.auth);
        if (!(flags & SMTP_PARSE_UTF8))
            fuzz_check(!m.smtputf8);
    } else {
        check_err(&err);
        fuzz_check(m.addr.len == 0 && m.envid.len == 0 && m.auth.len == 0);
    }
    if (smtp_parse_rcpt(arg, len, flags, &r, &err) == 0) {
        fuzz_check(r.addr.len > 0 && r.addr.len <= ADDR_PATH_MAX);
        fuzz_check(r.orcpt.len <= SMTP_ORCPT_MAX);
        check_text(&r.addr);
        check_text(&r.orcpt);
        fuzz_check(r.notify == 0 || r.notify == SMTP_NOTIFY_NEVER
                   || (r.notify & ~(unsigned)(SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE
                                              | SMTP_NOTIFY_DELAY)) == 0);
        if (r.orcpt.len)
            fuzz_check(memchr(r.orcpt.data, ';', r.orcpt.len) != NULL);
    } else {
        check_err(&err);
        fuzz_check(r.addr.len == 0 && r.orcpt.len == 0 && r.notify == 0);
    }
    if (smtp_parse_bdat(arg, len, &size, &last, &err) < 0)
        check_err(&err);
    if (smtp_xtext_decode(arg, len, &x) == 0) {
        fuzz_check(x.len <= len);
        check_text(&x);
    }
    buf_free(&x);
    smtp_rcpt_free(&r);
    smtp_mail_free(&m);
    smtp_err_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    smtp_cmdline_t cl;
    smtp_err_t err;
    const char *line;
    size_t len;
    unsigned flags;

    if (size < 1)
        return 0;
    flags = data[0] & (SMTP_PARSE_UTF8 | SMTP_PARSE_STRICT);
    line = (const char *)data + 1;
    len = size - 1;

    smtp_err_init(&err);
    if (smtp_parse_line(line, len, &cl, &err) == 0) {
        fuzz_check(cl.verb >= line && cl.verb + cl.verb_len <= line + len);
        fuzz_check(cl.verb_len > 0 && cl.verb_len <= SMTP_VERB_MAX);
        fuzz_check(cl.arg >= cl.verb + cl.verb_len && cl.arg + cl.arg_len <= line + len);
        fuzz_check(cl.arg_len == 0 || (cl.arg[0] != ' ' && cl.arg[cl.arg_len - 1] != ' '));
        fuzz_check(memchr(line, 0, len) == NULL);
        (void)smtp_verb_is(&cl, "MAIL");
        (void)smtp_verb_is(&cl, "RCPT");
        run_args(cl.arg, cl.arg_len, flags);
    } else {
        check_err(&err);
        /* Arguments arrive already split; fuzz them without the line check too. */
        run_args(line, len, flags);
    }
    smtp_err_free(&err);
    return 0;
}
