/* smtp_text_test - next hop syntax, replies, EHLO features, xtext, base64 */
#include "smtp_text.h"
#include "test/test.h"

#include <string.h>

static void test_nexthop(void)
{
    smtp_dest_t d;
    const char *why;

    TEST_CHECK(smtp_nexthop_parse("example.com", false, 25, &d, &why) == 0);
    TEST_STREQ(d.host, "example.com");
    TEST_CHECK(d.mx && !d.literal && d.port == 25);
    TEST_CHECK(smtp_nexthop_parse("[mail.example.com]:587", false, 25, &d, &why) == 0);
    TEST_CHECK(!d.mx && d.port == 587);
    TEST_STREQ(d.host, "mail.example.com");
    TEST_CHECK(smtp_nexthop_parse("[192.0.2.1]", false, 25, &d, &why) == 0);
    TEST_CHECK(d.literal && !d.mx && d.port == 25);
    TEST_CHECK(smtp_nexthop_parse("[ipv6:2001:db8::1]:26", false, 25, &d, &why) == 0);
    TEST_CHECK(d.literal && d.port == 26);
    TEST_STREQ(d.host, "2001:db8::1");
    TEST_CHECK(smtp_nexthop_parse("example.com:2525", false, 25, &d, &why) == 0);
    TEST_CHECK(d.mx && d.port == 2525);
    TEST_CHECK(smtp_nexthop_parse("unix:/run/lmtp", true, 24, &d, &why) == 0);
    TEST_CHECK(d.is_unix && !d.mx);
    TEST_STREQ(d.path, "/run/lmtp");
    TEST_CHECK(smtp_nexthop_parse("unix:/run/lmtp", false, 25, &d, &why) < 0);
    TEST_CHECK(smtp_nexthop_parse("inet:lmtp.example:24", true, 24, &d, &why) == 0);
    TEST_CHECK(!d.mx && d.port == 24);
    TEST_CHECK(smtp_nexthop_parse("[host", false, 25, &d, &why) < 0);
    TEST_CHECK(smtp_nexthop_parse("host:99999", false, 25, &d, &why) < 0);
    TEST_CHECK(smtp_nexthop_parse("bad host", false, 25, &d, &why) < 0);
    TEST_CHECK(smtp_nexthop_parse("", false, 25, &d, &why) < 0);
}

static void test_resp(void)
{
    smtp_resp_t r;
    const char *why;
    char dsn[16];

    smtp_resp_init(&r);
    TEST_INTEQ(smtp_resp_line(&r, "250-mx.example", 14, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "250-PIPELINING", 14, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "250-SIZE 1000", 13, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "250-AUTH login plain", 20, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "250-STARTTLS", 12, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "250 8BITMIME", 12, &why), 1);
    TEST_INTEQ(r.code, 250);
    {
        smtp_feat_t f;
        smtp_ehlo_parse(buf_cstr(&r.lines), &f);
        TEST_CHECK(f.bits & SMTP_FEAT_PIPELINING);
        TEST_CHECK(f.bits & SMTP_FEAT_SIZE);
        TEST_CHECK(f.size_limit == 1000);
        TEST_CHECK(f.bits & SMTP_FEAT_STARTTLS);
        TEST_CHECK(f.bits & SMTP_FEAT_8BITMIME);
        TEST_CHECK(!(f.bits & SMTP_FEAT_DSN));
        TEST_STREQ(f.auth, "LOGIN PLAIN");
    }
    /* a new reply starts after a complete one */
    TEST_INTEQ(smtp_resp_line(&r, "550-5.1.1 no such", 17, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "550 5.1.1 user here", 19, &why), 1);
    TEST_STREQ(buf_cstr(&r.text), "550 5.1.1 no such user here");
    smtp_resp_dsn(&r, dsn);
    TEST_STREQ(dsn, "5.1.1");
    TEST_INTEQ(smtp_resp_line(&r, "451 try later", 13, &why), 1);
    smtp_resp_dsn(&r, dsn);
    TEST_STREQ(dsn, "4.0.0");
    TEST_INTEQ(smtp_resp_line(&r, "451 5.1.1 class mismatch", 24, &why), 1);
    smtp_resp_dsn(&r, dsn);
    TEST_STREQ(dsn, "4.0.0");
    TEST_INTEQ(smtp_resp_line(&r, "250", 3, &why), 1);
    TEST_STREQ(buf_cstr(&r.text), "250");
    TEST_INTEQ(smtp_resp_line(&r, "25x ok", 6, &why), -1);
    TEST_INTEQ(smtp_resp_line(&r, "250-a", 5, &why), 0);
    TEST_INTEQ(smtp_resp_line(&r, "251 b", 5, &why), -1);
    TEST_INTEQ(smtp_resp_line(&r, "hello", 5, &why), -1);
    smtp_resp_free(&r);
}

static void test_codecs(void)
{
    buf_t b;

    buf_init(&b, 1000);
    smtp_xtext_encode(&b, "a+b=c d\xc3");
    TEST_STREQ(buf_cstr(&b), "a+2Bb+3Dc+20d+C3");
    buf_reset(&b);
    smtp_base64(&b, "\0user\0pass", 10);
    TEST_STREQ(buf_cstr(&b), "AHVzZXIAcGFzcw==");
    buf_reset(&b);
    smtp_base64(&b, "ab", 2);
    TEST_STREQ(buf_cstr(&b), "YWI=");
    buf_free(&b);
}

int main(void)
{
    test_nexthop();
    test_resp();
    test_codecs();
    return test_done();
}
