/* smtp_test - unit tests for the SMTP command parser and reply helpers */
#include <string.h>
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"
#include "test/test.h"

static smtp_err_t err;

/* line_ok - parse a command line; verb and argument as expected */
static void line_ok(const char *s, const char *verb, const char *arg)
{
    smtp_cmdline_t cl;

    TEST_INTEQ(smtp_parse_line(s, strlen(s), &cl, &err), 0);
    TEST_CHECK(smtp_verb_is(&cl, verb));
    TEST_INTEQ(cl.arg_len, strlen(arg));
    TEST_CHECK(cl.arg_len == strlen(arg) && memcmp(cl.arg, arg, cl.arg_len) == 0);
}

/* line_bad - a command line rejected with code/dsn */
static void line_bad(const char *s, size_t len, int code)
{
    smtp_cmdline_t cl;

    TEST_INTEQ(smtp_parse_line(s, len, &cl, &err), -1);
    TEST_INTEQ(err.code, code);
    TEST_STREQ(err.dsn, "5.5.2");
}

static void test_line(void)
{
    smtp_cmdline_t cl;

    line_ok("QUIT", "QUIT", "");
    line_ok("quit", "QUIT", "");
    line_ok("QuIt", "quit", "");
    line_ok("EHLO client.example", "EHLO", "client.example");
    line_ok("ehlo   client.example  ", "EHLO", "client.example");
    line_ok("  NOOP", "NOOP", "");
    line_ok("MAIL FROM:<a@b.c> SIZE=10", "MAIL", "FROM:<a@b.c> SIZE=10");
    line_ok("HELO\tx", "HELO", "x");
    line_bad("", 0, 500);
    line_bad("   ", 3, 500);
    line_bad("MA1L FROM:<>", 12, 500);
    line_bad("MAIL:FROM", 9, 500);
    line_bad("NOOP\0x", 6, 500);
    line_bad("NOOP \r", 6, 500);
    line_bad("NOOP \x1b[1m", 9, 500);
    line_bad("\xc3\xa9HLO", 5, 500);
    line_bad("NOOP \xff", 6, 500);
    line_bad("NOOP \xc3", 6, 500);
    line_bad("AVERYLONGVERBTHATISTOOLONG x", 28, 500);
    TEST_INTEQ(smtp_parse_line("RCPT TO:<j\xc3\xb6rg@x.y>", 18, &cl, &err), 0);
    TEST_CHECK(cl.has_8bit);
    TEST_INTEQ(smtp_parse_line("RCPT TO:<a@x.y>", 15, &cl, &err), 0);
    TEST_CHECK(!cl.has_8bit);
    TEST_CHECK(!smtp_verb_is(&cl, "RCP"));
    TEST_CHECK(!smtp_verb_is(&cl, "RCPTX"));
}

/* mail_bad - MAIL argument rejected with code and dsn */
static void mail_bad(const char *s, unsigned flags, int code, const char *dsn)
{
    smtp_mail_t m;

    smtp_mail_init(&m);
    if (smtp_parse_mail(s, strlen(s), flags, &m, &err) == 0) {
        fprintf(stderr, "accepted: %s\n", s);
        TEST_CHECK(0);
    } else {
        TEST_INTEQ(err.code, code);
        TEST_STREQ(err.dsn, dsn);
    }
    smtp_mail_free(&m);
}

static void test_mail(void)
{
    smtp_mail_t m;
    const char *s;

    smtp_mail_init(&m);
    s = "FROM:<user@example.com>";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_STREQ(buf_cstr(&m.addr), "user@example.com");
    TEST_CHECK(!m.size_set);
    TEST_INTEQ(m.body, SMTP_BODY_NONE);
    s = "from:<>";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_STREQ(buf_cstr(&m.addr), "");
    s = "FROM: <a@b.c>";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_STREQ(buf_cstr(&m.addr), "a@b.c");
    s = "FROM:a@b.c SIZE=5";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_STREQ(buf_cstr(&m.addr), "a@b.c");
    TEST_INTEQ(m.size, 5);
    s = "FROM:<a@b.c> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B314 AUTH=<>";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_CHECK(m.size_set);
    TEST_INTEQ(m.size, 1000);
    TEST_INTEQ(m.body, SMTP_BODY_8BITMIME);
    TEST_INTEQ(m.ret, SMTP_RET_HDRS);
    TEST_CHECK(m.envid_set);
    TEST_STREQ(buf_cstr(&m.envid), "QQ+314");
    TEST_CHECK(m.auth_set);
    TEST_STREQ(buf_cstr(&m.auth), "<>");
    s = "FROM:<a@b.c> size=7 body=7bit ret=full";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_INTEQ(m.size, 7);
    TEST_INTEQ(m.body, SMTP_BODY_7BIT);
    TEST_INTEQ(m.ret, SMTP_RET_FULL);
    TEST_CHECK(!m.envid_set);
    s = "FROM:<a@b.c> BODY=BINARYMIME";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_INTEQ(m.body, SMTP_BODY_BINARYMIME);
    s = "FROM:<a@b.c> SIZE=99999999999999999999";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_CHECK(m.size == UINT64_MAX);
    s = "FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.de> SMTPUTF8";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), SMTP_PARSE_UTF8, &m, &err), 0);
    TEST_CHECK(m.smtputf8);
    TEST_STREQ(buf_cstr(&m.addr), "j\xc3\xb6rg@b\xc3\xbc" "cher.de");
    s = "FROM:<a@b.c> SMTPUTF8";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), SMTP_PARSE_UTF8, &m, &err), 0);
    TEST_CHECK(m.smtputf8);
    s = "FROM:<@relay.example:a@b.c>";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_STREQ(buf_cstr(&m.addr), "a@b.c");
    s = "FROM:<\"a b\"@c.d>  SIZE=3";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), 0);
    TEST_STREQ(buf_cstr(&m.addr), "a b@c.d");
    smtp_mail_free(&m);

    mail_bad("", 0, 501, "5.5.4");
    mail_bad("FROM", 0, 501, "5.5.4");
    mail_bad("FROM:", 0, 501, "5.5.4");
    mail_bad("FROM: ", 0, 501, "5.5.4");
    mail_bad("TO:<a@b.c>", 0, 501, "5.5.4");
    mail_bad("FROM <a@b.c>", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c", 0, 501, "5.1.7");
    mail_bad("FROM:<a@b.c>x", 0, 501, "5.1.7");
    mail_bad("FROM:<a b@c.d>", 0, 501, "5.1.7");
    mail_bad("FROM:a@b.c", SMTP_PARSE_STRICT, 501, "5.1.7");
    mail_bad("FROM:<a@b.c> SIZE=", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> SIZE", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> SIZE=12a", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> SIZE=-1", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> SIZE=1 SIZE=2", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> BODY=9BIT", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> BODY", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> RET=ALL", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> RET=FULL RET=HDRS", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> ENVID=a+2", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> ENVID=a+0D", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> ENVID=a+GG", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> ENVID=a=b", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> ENVID=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> XFOO=1", 0, 555, "5.5.4");
    mail_bad("FROM:<a@b.c> SMTPUTF8", 0, 555, "5.5.4");
    mail_bad("FROM:<a@b.c> SMTPUTF8=yes", SMTP_PARSE_UTF8, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> =x", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> B@D", 0, 501, "5.5.4");
    mail_bad("FROM:<a@b.c> BODY=8BIT\xc3\xa9", 0, 501, "5.5.4");
    mail_bad("FROM:<j\xc3\xb6rg@b.c>", 0, 501, "5.1.7");
    mail_bad("FROM:<j\xc3\xb6rg@b.c>", SMTP_PARSE_UTF8, 553, "5.6.7");

    /* The unsupported option is named in the reply, sanitized */
    smtp_mail_init(&m);
    s = "FROM:<a@b.c> XFOO=1";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), -1);
    TEST_STREQ(buf_cstr(&err.text), "Unsupported option: XFOO=1");
    /* a failed parse leaves no half result */
    s = "FROM:<a@b.c> SIZE=10 BOGUS";
    TEST_INTEQ(smtp_parse_mail(s, strlen(s), 0, &m, &err), -1);
    TEST_CHECK(!m.size_set);
    TEST_STREQ(buf_cstr(&m.addr), "");
    smtp_mail_free(&m);
}

/* rcpt_bad - RCPT argument rejected with code and dsn */
static void rcpt_bad(const char *s, unsigned flags, int code, const char *dsn)
{
    smtp_rcpt_t r;

    smtp_rcpt_init(&r);
    if (smtp_parse_rcpt(s, strlen(s), flags, &r, &err) == 0) {
        fprintf(stderr, "accepted: %s\n", s);
        TEST_CHECK(0);
    } else {
        TEST_INTEQ(err.code, code);
        TEST_STREQ(err.dsn, dsn);
    }
    smtp_rcpt_free(&r);
}

static void test_rcpt(void)
{
    smtp_rcpt_t r;
    const char *s;

    smtp_rcpt_init(&r);
    s = "TO:<user@example.com>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "user@example.com");
    TEST_INTEQ(r.notify, 0);
    TEST_INTEQ(r.orcpt.len, 0);
    s = "to:<Postmaster>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "Postmaster");
    s = "TO: <a@b.c> NOTIFY=SUCCESS,failure ORCPT=rfc822;a+2Bx@b.c";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_INTEQ(r.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
    TEST_STREQ(buf_cstr(&r.orcpt), "rfc822;a+x@b.c");
    s = "TO:<a@b.c> NOTIFY=NEVER";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_INTEQ(r.notify, SMTP_NOTIFY_NEVER);
    s = "TO:<a@b.c> NOTIFY=DELAY";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_INTEQ(r.notify, SMTP_NOTIFY_DELAY);
    s = "TO:<@hop1,@hop2:u@d.example>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "u@d.example");
    s = "TO:<\"u@remote.example\"@local.example>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "u@remote.example@local.example");
    s = "TO:<u%remote.example@local.example>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "u%remote.example@local.example");
    s = "TO:<remote!u@local.example>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "remote!u@local.example");
    s = "TO:<u@[IPv6:::1]>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), 0, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "u@[IPv6:::1]");
    s = "TO:<j\xc3\xb6rg@x.y>";
    TEST_INTEQ(smtp_parse_rcpt(s, strlen(s), SMTP_PARSE_UTF8, &r, &err), 0);
    TEST_STREQ(buf_cstr(&r.addr), "j\xc3\xb6rg@x.y");
    smtp_rcpt_free(&r);

    rcpt_bad("TO:<>", 0, 501, "5.1.3");
    rcpt_bad("TO:", 0, 501, "5.5.4");
    rcpt_bad("FROM:<a@b.c>", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c", 0, 501, "5.1.3");
    rcpt_bad("TO:<a@b..c>", 0, 501, "5.1.3");
    rcpt_bad("TO:<j\xc3\xb6rg@x.y>", 0, 501, "5.1.3");
    rcpt_bad("TO:<a@b.c> NOTIFY=NEVER,SUCCESS", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> NOTIFY=SOMETIMES", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> NOTIFY=SUCCESS,", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> NOTIFY", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> NOTIFY=DELAY NOTIFY=DELAY", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> ORCPT=rfc822", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> ORCPT=;a@b.c", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> ORCPT=rfc822;", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> ORCPT=rfc822;a+0Ab", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> ORCPT=rf(c;ab", 0, 501, "5.5.4");
    rcpt_bad("TO:<a@b.c> SIZE=10", 0, 555, "5.5.4");
    rcpt_bad("TO:<a@b.c> %%%", 0, 501, "5.5.4");
}

static void test_bdat(void)
{
    uint64_t n;
    bool last;

    TEST_INTEQ(smtp_parse_bdat("100", 3, &n, &last, &err), 0);
    TEST_INTEQ(n, 100);
    TEST_CHECK(!last);
    TEST_INTEQ(smtp_parse_bdat("0 LAST", 6, &n, &last, &err), 0);
    TEST_INTEQ(n, 0);
    TEST_CHECK(last);
    TEST_INTEQ(smtp_parse_bdat("5 last", 6, &n, &last, &err), 0);
    TEST_CHECK(last);
    TEST_INTEQ(smtp_parse_bdat("", 0, &n, &last, &err), -1);
    TEST_INTEQ(err.code, 501);
    TEST_INTEQ(smtp_parse_bdat("x", 1, &n, &last, &err), -1);
    TEST_INTEQ(smtp_parse_bdat("5LAST", 5, &n, &last, &err), -1);
    TEST_INTEQ(smtp_parse_bdat("5 LASTX", 7, &n, &last, &err), -1);
    TEST_INTEQ(smtp_parse_bdat("-5", 2, &n, &last, &err), -1);
    TEST_INTEQ(smtp_parse_bdat("99999999999999999999999", 23, &n, &last, &err), -1);
}

static void test_xtext(void)
{
    buf_t b;

    buf_init(&b, 100);
    TEST_INTEQ(smtp_xtext_decode("abc+2Bd", 7, &b), 0);
    TEST_STREQ(buf_cstr(&b), "abc+d");
    buf_reset(&b);
    TEST_INTEQ(smtp_xtext_decode("+3d", 3, &b), 0);
    TEST_STREQ(buf_cstr(&b), "=");
    buf_reset(&b);
    TEST_INTEQ(smtp_xtext_decode("+2", 2, &b), -1);
    TEST_INTEQ(smtp_xtext_decode("+", 1, &b), -1);
    TEST_INTEQ(smtp_xtext_decode("a b", 3, &b), -1);
    TEST_INTEQ(smtp_xtext_decode("+00", 3, &b), -1);
    buf_free(&b);
}

static void test_reply(void)
{
    buf_t out;
    static const char *const ehlo[] = { "mx.example", "PIPELINING", "SIZE 100" };

    buf_init(&out, 4096);
    TEST_INTEQ(smtp_reply(&out, 250, "2.1.0", "Ok"), 0);
    TEST_STREQ(buf_cstr(&out), "250 2.1.0 Ok\r\n");
    buf_reset(&out);
    TEST_INTEQ(smtp_reply(&out, 214, "2.0.0", "line one\nline two\nend"), 0);
    TEST_STREQ(buf_cstr(&out), "214-2.0.0 line one\r\n214-2.0.0 line two\r\n214 2.0.0 end\r\n");
    buf_reset(&out);
    TEST_INTEQ(smtp_reply(&out, 220, NULL, "mx.example ESMTP Stork"), 0);
    TEST_STREQ(buf_cstr(&out), "220 mx.example ESMTP Stork\r\n");
    buf_reset(&out);
    TEST_INTEQ(smtp_reply_lines(&out, 250, NULL, ehlo, 3), 0);
    TEST_STREQ(buf_cstr(&out), "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
    buf_reset(&out);
    TEST_INTEQ(smtp_reply_printf(&out, 554, "5.7.1", "<%s>: Relay access denied", "x@y"), 0);
    TEST_STREQ(buf_cstr(&out), "554 5.7.1 <x@y>: Relay access denied\r\n");
    buf_reset(&out);
    TEST_INTEQ(smtp_reply(&out, 550, "5.1.1", "bad\rinjected\x01"), 0);
    TEST_STREQ(buf_cstr(&out), "550 5.1.1 bad?injected?\r\n");
    buf_reset(&out);
    smtp_reply_sanitize(&out, "a\r\nb", 4);
    TEST_STREQ(buf_cstr(&out), "a??b");
    buf_free(&out);

    /* a long text is cut so the line stays within 512 octets */
    {
        char big[2000];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        buf_init(&out, 4096);
        TEST_INTEQ(smtp_reply(&out, 250, "2.0.0", big), 0);
        TEST_CHECK(out.len <= 512);
        buf_free(&out);
    }
    /* the limit of out is honoured and out is left unchanged */
    buf_init(&out, 20);
    TEST_INTEQ(smtp_reply(&out, 250, "2.0.0", "Ok"), 0);
    TEST_INTEQ(smtp_reply(&out, 250, "2.0.0", "Ok"), -1);
    TEST_STREQ(buf_cstr(&out), "250 2.0.0 Ok\r\n");
    buf_free(&out);

    TEST_CHECK(smtp_dsn_valid("2.0.0"));
    TEST_CHECK(smtp_dsn_valid("5.1.10"));
    TEST_CHECK(smtp_dsn_valid("4.123.456"));
    TEST_CHECK(!smtp_dsn_valid("3.0.0"));
    TEST_CHECK(!smtp_dsn_valid("5.0"));
    TEST_CHECK(!smtp_dsn_valid("5.1234.0"));
    TEST_CHECK(!smtp_dsn_valid("5.1.1 "));
    TEST_CHECK(!smtp_dsn_valid(""));
    TEST_CHECK(!smtp_dsn_valid(NULL));
}

int main(void)
{
    smtp_err_init(&err);
    test_line();
    test_mail();
    test_rcpt();
    test_bdat();
    test_xtext();
    test_reply();
    smtp_err_free(&err);
    return test_done();
}
