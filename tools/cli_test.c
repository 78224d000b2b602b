/*
 * cli_test - unit tests for the pure parts of the queue commands:
 * JSON quoting, the mailq layout, address lists and header rewriting.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_fmt.h"
#include "cli_hdr.h"
#include "cli_submit.h"
#include "test/test.h"
#include "mail/addr.h"
#include "mail/mail_date.h"
#include "util/buf.h"

/* json - cli_fmt_json_quote of s as a new string */
static char *json(const char *s)
{
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    cli_fmt_json_quote(&b, s);
    buf_putc(&b, 0);
    return buf_steal(&b);
}

static void test_json_quote(void)
{
    char *s;

    TEST_STREQ(s = json("plain@example.com"), "plain@example.com"); free(s);
    TEST_STREQ(s = json("a\"b\\c"), "a\\\"b\\\\c"); free(s);
    TEST_STREQ(s = json("tab\there\r\n"), "tab\\there\\r\\n"); free(s);
    TEST_STREQ(s = json("\x01\x1f\x7f"), "\\u0001\\u001F\\u007F"); free(s);
    TEST_STREQ(s = json("\b\f/"), "\\b\\f/"); free(s);
    /* UTF-8 passes through; broken sequences become '?'. */
    TEST_STREQ(s = json("j\xc3\xbcrgen"), "j\xc3\xbcrgen"); free(s);
    TEST_STREQ(s = json("bad\xc3(\xff"), "bad?(?"); free(s);
    TEST_STREQ(s = json("\xed\xa0\x80"), "???"); free(s);   /* a surrogate */
    TEST_STREQ(s = json("\xc0\xaf"), "??"); free(s);        /* overlong '/' */
}

static void test_quote_local(void)
{
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    cli_fmt_quote_local(&b, "user@example.com");
    TEST_STREQ(buf_cstr(&b), "user@example.com");
    buf_reset(&b);
    cli_fmt_quote_local(&b, "john doe@example.com");
    TEST_STREQ(buf_cstr(&b), "\"john doe\"@example.com");
    buf_reset(&b);
    cli_fmt_quote_local(&b, "a..b@x");
    TEST_STREQ(buf_cstr(&b), "\"a..b\"@x");
    buf_reset(&b);
    cli_fmt_quote_local(&b, "");
    TEST_STREQ(buf_cstr(&b), "MAILER-DAEMON");
    buf_reset(&b);
    cli_fmt_quote_local(&b, "q\"uote@x");
    TEST_STREQ(buf_cstr(&b), "\"q\\\"uote\"@x");
    buf_free(&b);
}

/* entry - a test entry with two recipients */
static void entry(cli_qentry_t *e, const char *queue)
{
    memset(e, 0, sizeof(*e));
    e->queue = strdup(queue);
    e->qid = strdup("0123456789ABCDEF");
    e->arrival = 1700000000;    /* Tue Nov 14 22:13:20 2023 UTC */
    e->size = 2048;
    e->sender = strdup("sender@example.com");
    cli_qentry_add_rcpt(e, "a@example.org", "connect to example.org: timed out");
    cli_qentry_add_rcpt(e, "b@example.org", "connect to example.org: timed out");
    cli_qentry_add_rcpt(e, "c@example.net", "");
}

static void test_mailq(void)
{
    cli_qentry_t e;
    buf_t b;
    const char *want =
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n"
        "0123456789ABCDEF!     2048 Tue Nov 14 22:13:20 sender@example.com\n"
        "                                           (connect to example.org: timed out)\n"
        "                                               a@example.org\n"
        "                                               b@example.org\n"
        "                                                          (reason unavailable)\n"
        "                                               c@example.net\n"
        "\n-- 2 Kbytes in 1 Request.\n";

    buf_init(&b, BUF_NOLIMIT);
    entry(&e, "hold");
    cli_fmt_mailq_header(&b);
    cli_fmt_mailq_entry(&b, &e);
    cli_fmt_mailq_trailer(&b, e.size, 1);
    TEST_STREQ(buf_cstr(&b), want);
    cli_qentry_free(&e);

    buf_reset(&b);
    entry(&e, "active");
    free(e.sender);
    e.sender = strdup("");
    cli_fmt_mailq_entry(&b, &e);
    {
        const char *w = "0123456789ABCDEF*     2048 Tue Nov 14 22:13:20 MAILER-DAEMON\n";

        TEST_CHECK(strncmp(buf_cstr(&b), w, strlen(w)) == 0);
    }
    cli_qentry_free(&e);

    buf_reset(&b);
    cli_fmt_mailq_trailer(&b, 0, 0);
    TEST_STREQ(buf_cstr(&b), "Mail queue is empty\n");
    buf_reset(&b);
    cli_fmt_mailq_trailer(&b, 5000, 3);
    TEST_STREQ(buf_cstr(&b), "\n-- 4 Kbytes in 3 Requests.\n");
    buf_free(&b);
}

static void test_json_entry(void)
{
    cli_qentry_t e;
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    entry(&e, "deferred");
    free(e.rcpts[0].reason);
    e.rcpts[0].reason = strdup("said: \"550 no\"\n");
    cli_fmt_json_entry(&b, &e);
    TEST_STREQ(buf_cstr(&b),
               "{\"queue_name\": \"deferred\", \"queue_id\": \"0123456789ABCDEF\", "
               "\"arrival_time\": 1700000000, \"message_size\": 2048, \"forced_expire\": false, "
               "\"sender\": \"sender@example.com\", \"recipients\": ["
               "{\"address\": \"a@example.org\", \"delay_reason\": \"said: \\\"550 no\\\"\\n\"}, "
               "{\"address\": \"b@example.org\", \"delay_reason\": \"connect to example.org: timed out\"}, "
               "{\"address\": \"c@example.net\"}]}\n");
    cli_qentry_free(&e);
    buf_free(&b);
}

/* addrs - parse and join with '|' ("ERR" on error) */
static char *addrs(const char *v)
{
    cli_addr_list_t l = {0};
    const char *why;
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    if (cli_addrlist_parse(v, &l, &why) < 0) {
        buf_puts(&b, "ERR");
    } else {
        for (size_t i = 0; i < l.n; i++) {
            if (i)
                buf_putc(&b, '|');
            buf_puts(&b, l.v[i]);
        }
    }
    cli_addr_list_free(&l);
    buf_putc(&b, 0);
    return buf_steal(&b);
}

static void test_addrlist(void)
{
    char *s;

    TEST_STREQ(s = addrs("a@b.example"), "a@b.example"); free(s);
    TEST_STREQ(s = addrs("Joe Q. Public <john.q.public@example.com>"),
               "john.q.public@example.com"); free(s);
    TEST_STREQ(s = addrs("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>"),
               "mary@x.test|jdoe@example.org|one@y.test"); free(s);
    TEST_STREQ(s = addrs("\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>"),
               "sysservices@example.net"); free(s);
    TEST_STREQ(s = addrs("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;"),
               "c@a.test|joe@where.test|jdoe@one.test"); free(s);
    TEST_STREQ(s = addrs("undisclosed-recipients:;"), ""); free(s);
    TEST_STREQ(s = addrs("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
               "pete@silly.test"); free(s);
    TEST_STREQ(s = addrs("\"john doe\"@example.com"), "john doe@example.com"); free(s);
    TEST_STREQ(s = addrs("<@relay.test,@r2.test:user@final.test>"), "user@final.test"); free(s);
    TEST_STREQ(s = addrs("user (Full Name)"), "user"); free(s);
    TEST_STREQ(s = addrs("root, postmaster"), "root|postmaster"); free(s);
    TEST_STREQ(s = addrs("<>"), ""); free(s);
    TEST_STREQ(s = addrs("user@[192.0.2.1]"), "user@[192.0.2.1]"); free(s);
    TEST_STREQ(s = addrs("a@b c@d"), "ERR"); free(s);
    TEST_STREQ(s = addrs("<a@b"), "ERR"); free(s);
    TEST_STREQ(s = addrs("\"open@x"), "ERR"); free(s);
    TEST_STREQ(s = addrs("(unclosed a@b"), "ERR"); free(s);
    TEST_STREQ(s = addrs("a@b>"), "ERR"); free(s);
}

static void test_msg(void)
{
    const char *msg = "From: Me <me@x.test>\r\n"
                      "To: a@x.test,\r\n\tb@x.test\r\n"
                      "Cc: C <c@x.test>\r\n"
                      "Bcc: secret@x.test\r\n"
                      "Subject: hi\r\n"
                      "\r\n"
                      "To: not-a-header@x.test\r\n";
    cli_msg_t m;
    cli_addr_list_t l = {0};
    const char *why;
    buf_t out;

    cli_msg_split(msg, strlen(msg), &m);
    TEST_CHECK(m.has_from && !m.has_date && !m.has_msgid && !m.has_resent);
    TEST_INTEQ(m.hdr_end, strstr(msg, "\r\n\r\n") + 2 - msg);
    TEST_INTEQ(cli_msg_rcpts(msg, &m, &l, &why), 0);
    TEST_INTEQ(l.n, 4);
    if (l.n == 4) {
        TEST_STREQ(l.v[0], "a@x.test");
        TEST_STREQ(l.v[1], "b@x.test");
        TEST_STREQ(l.v[2], "c@x.test");
        TEST_STREQ(l.v[3], "secret@x.test");
    }
    cli_addr_list_free(&l);
    buf_init(&out, BUF_NOLIMIT);
    cli_msg_rewrite(msg, strlen(msg), &m, "Date: now\r\n", &out);
    TEST_STREQ(buf_cstr(&out), "From: Me <me@x.test>\r\n"
                               "To: a@x.test,\r\n\tb@x.test\r\n"
                               "Cc: C <c@x.test>\r\n"
                               "Subject: hi\r\n"
                               "Date: now\r\n"
                               "\r\n"
                               "To: not-a-header@x.test\r\n");

    /* Resent- headers take over with -t. */
    const char *resent = "To: old@x.test\r\nResent-To: new@x.test\r\nResent-Bcc: hid@x.test\r\n\r\nbody\r\n";
    cli_msg_split(resent, strlen(resent), &m);
    TEST_CHECK(m.has_resent);
    TEST_INTEQ(cli_msg_rcpts(resent, &m, &l, &why), 0);
    TEST_INTEQ(l.n, 2);
    if (l.n == 2) {
        TEST_STREQ(l.v[0], "new@x.test");
        TEST_STREQ(l.v[1], "hid@x.test");
    }
    cli_addr_list_free(&l);
    buf_reset(&out);
    cli_msg_rewrite(resent, strlen(resent), &m, "", &out);
    TEST_STREQ(buf_cstr(&out), "To: old@x.test\r\nResent-To: new@x.test\r\n\r\nbody\r\n");

    /* A message without headers gets the added ones and a blank line. */
    const char *bare = "hello\r\n world\r\n";
    cli_msg_split(bare, strlen(bare), &m);
    TEST_INTEQ(m.hdr_end, 0);
    buf_reset(&out);
    cli_msg_rewrite(bare, strlen(bare), &m, "From: x\r\n", &out);
    TEST_STREQ(buf_cstr(&out), "From: x\r\n\r\nhello\r\n world\r\n");

    /* Only headers, no final line end. */
    const char *hdrs = "Subject: s";
    cli_msg_split(hdrs, strlen(hdrs), &m);
    TEST_INTEQ(m.hdr_end, strlen(hdrs));
    buf_reset(&out);
    cli_msg_rewrite(hdrs, strlen(hdrs), &m, "From: x\r\n", &out);
    TEST_STREQ(buf_cstr(&out), "Subject: s\r\nFrom: x\r\n");
    buf_free(&out);
}

static void test_addr_ok(void)
{
    TEST_CHECK(addr_internal_ok("user@example.com"));
    TEST_CHECK(addr_internal_ok("john doe@example.com"));
    TEST_CHECK(addr_internal_ok("user@[192.0.2.1]"));
    TEST_CHECK(addr_internal_ok("root"));
    TEST_CHECK(!addr_internal_ok(""));
    TEST_CHECK(!addr_internal_ok("@example.com"));
    TEST_CHECK(!addr_internal_ok("user@"));
    TEST_CHECK(!addr_internal_ok("user@exa mple.com"));
    TEST_CHECK(!addr_internal_ok("us\ner@example.com"));
    TEST_CHECK(!addr_internal_ok("user@a<b"));
    char *q = cli_submit_qualify("root", "host.test");
    TEST_STREQ(q, "root@host.test");
    free(q);
    q = cli_submit_qualify("a@b", "host.test");
    TEST_STREQ(q, "a@b");
    free(q);
}

static void test_date_phrase(void)
{
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    mail_date(&b, 1700000000);
    TEST_STREQ(buf_cstr(&b), "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)");
    buf_reset(&b);
    cli_phrase(&b, "John Doe");
    TEST_STREQ(buf_cstr(&b), "John Doe");
    buf_reset(&b);
    cli_phrase(&b, "Doe, John \"JD\"");
    TEST_STREQ(buf_cstr(&b), "\"Doe, John \\\"JD\\\"\"");
    buf_free(&b);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    test_json_quote();
    test_quote_local();
    test_mailq();
    test_json_entry();
    test_addrlist();
    test_msg();
    test_addr_ok();
    test_date_phrase();
    return test_done();
}
