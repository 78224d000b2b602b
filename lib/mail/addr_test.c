/* addr_test - unit tests for RFC 5321 path parsing and quoting */
#include <string.h>
#include "mail/addr.h"
#include "test/test.h"

/* path_ok - parse s as a path, expect internal form want */
static void path_ok(const char *s, unsigned flags, const char *want, int line)
{
    buf_t out;
    const char *why = "";
    size_t used = 0;
    int ret;

    buf_init(&out, BUF_NOLIMIT);
    ret = addr_parse_path(s, strlen(s), flags, &out, &used, &why);
    if (ret != 0)
        fprintf(stderr, "line %d: %s: %s\n", line, s, why);
    TEST_INTEQ(ret, 0);
    TEST_STREQ(buf_cstr(&out), want);
    buf_free(&out);
}

/* path_bad - parse s as a path, expect an error */
static void path_bad(const char *s, unsigned flags, int line)
{
    buf_t out;
    const char *why = NULL;
    size_t used = 0;
    int ret;

    buf_init(&out, BUF_NOLIMIT);
    ret = addr_parse_path(s, strlen(s), flags, &out, &used, &why);
    if (ret == 0)
        fprintf(stderr, "line %d: %s: unexpectedly accepted as \"%s\"\n", line, s, buf_cstr(&out));
    TEST_INTEQ(ret, -1);
    TEST_CHECK(why != NULL);
    buf_free(&out);
}

#define OK(s, f, w) path_ok(s, f, w, __LINE__)
#define BAD(s, f) path_bad(s, f, __LINE__)

static void test_basic(void)
{
    OK("<user@example.com>", 0, "user@example.com");
    OK("<User.Name+tag@Example.COM>", 0, "User.Name+tag@Example.COM");
    OK("<a!#$%&'*+-/=?^_`{|}~@x.y>", 0, "a!#$%&'*+-/=?^_`{|}~@x.y");
    OK("<>", ADDR_FLAG_NULL_OK, "");
    BAD("<>", 0);
    BAD("", 0);
    BAD("<", 0);
    BAD("<user@example.com", 0);
    BAD("user@example.com>", 0);
    BAD("<user>", 0);
    OK("<Postmaster>", ADDR_FLAG_NO_DOMAIN, "Postmaster");
    /* fuzz_addr: a quoted '@' in a bare local part would read as a domain */
    BAD("<\"u@other.example\">", ADDR_FLAG_NO_DOMAIN);
    BAD("<\"u@\">", ADDR_FLAG_NO_DOMAIN);
    BAD("\",NEV<u@[\\R\"", ADDR_FLAG_NO_DOMAIN | ADDR_FLAG_NO_BRACKETS);
    OK("<\"u@other.example\"@d.example>", ADDR_FLAG_NO_DOMAIN, "u@other.example@d.example");
    BAD("<@>", 0);
    BAD("<user@>", 0);
    BAD("<@example.com>", 0);
    BAD("< user@example.com>", 0);
    BAD("<user@example.com >", 0);
    BAD("<user @example.com>", 0);
    BAD("<.user@example.com>", 0);
    BAD("<user.@example.com>", 0);
    BAD("<us..er@example.com>", 0);
    BAD("<us(er@example.com>", 0);
    BAD("<us,er@example.com>", 0);
    BAD("<user@example.com@x>", 0);
    BAD("<a\tb@example.com>", 0);
}

static void test_brackets(void)
{
    buf_t out;
    const char *why;
    size_t used = 0;
    const char *s = "<a@b.c> SIZE=10";

    buf_init(&out, BUF_NOLIMIT);
    TEST_INTEQ(addr_parse_path(s, strlen(s), 0, &out, &used, &why), 0);
    TEST_INTEQ(used, 7);
    TEST_STREQ(buf_cstr(&out), "a@b.c");
    s = "a@b.c SIZE=10";
    TEST_INTEQ(addr_parse_path(s, strlen(s), ADDR_FLAG_NO_BRACKETS, &out, &used, &why), 0);
    TEST_INTEQ(used, 5);
    TEST_STREQ(buf_cstr(&out), "a@b.c");
    TEST_INTEQ(addr_parse_path(s, strlen(s), 0, &out, &used, &why), -1);
    s = "<>";
    TEST_INTEQ(addr_parse_path(s, strlen(s), ADDR_FLAG_NULL_OK, &out, &used, &why), 0);
    TEST_INTEQ(used, 2);
    /* The length given is honoured: no reading past it. */
    s = "<a@b.c>";
    TEST_INTEQ(addr_parse_path(s, 6, 0, &out, &used, &why), -1);
    buf_free(&out);
}

static void test_domains(void)
{
    OK("<u@a-b.example>", 0, "u@a-b.example");
    OK("<u@123.example>", 0, "u@123.example");
    OK("<u@x>", 0, "u@x");
    BAD("<u@-a.example>", 0);
    BAD("<u@a-.example>", 0);
    BAD("<u@a..example>", 0);
    BAD("<u@.example>", 0);
    BAD("<u@example.>", 0);
    BAD("<u@exa_mple.com>", 0);
    BAD("<u@exa mple.com>", 0);
    /* 63-character label is fine, 64 is not */
    OK("<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com>", 0,
       "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com");
    BAD("<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com>", 0);
    TEST_CHECK(addr_domain_valid("mail.example.com", 16, 0));
    TEST_CHECK(addr_domain_valid("[192.0.2.1]", 11, 0));
    TEST_CHECK(addr_domain_valid("[IPv6:2001:db8::1]", 18, 0));
    TEST_CHECK(!addr_domain_valid("", 0, 0));
    TEST_CHECK(!addr_domain_valid("bad_host", 8, 0));
    TEST_CHECK(!addr_domain_valid("a b", 3, 0));
    TEST_CHECK(!addr_domain_valid("[1.2.3]", 7, 0));
    TEST_CHECK(!addr_domain_valid("b\xc3\xbc" "cher.de", 9, 0));
    TEST_CHECK(addr_domain_valid("b\xc3\xbc" "cher.de", 9, ADDR_FLAG_UTF8));
}

static void test_literals(void)
{
    OK("<u@[192.0.2.1]>", 0, "u@[192.0.2.1]");
    OK("<u@[IPv6:2001:db8::1]>", 0, "u@[IPv6:2001:db8::1]");
    OK("<u@[ipv6:::1]>", 0, "u@[ipv6:::1]");
    OK("<u@[IPv6:::ffff:192.0.2.1]>", 0, "u@[IPv6:::ffff:192.0.2.1]");
    BAD("<u@[192.0.2.256]>", 0);
    BAD("<u@[192.0.2]>", 0);
    BAD("<u@[192.0.2.1.5]>", 0);
    BAD("<u@[01.2.3.4]>", 0);
    BAD("<u@[2001:db8::1]>", 0);
    BAD("<u@[IPv6:2001:db8::g]>", 0);
    BAD("<u@[IPv6:]>", 0);
    BAD("<u@[]>", 0);
    BAD("<u@[192.0.2.1>", 0);
    BAD("<u@[192.0.2.1]x>", 0);
    BAD("<u@[x:1.2.3.4]>", 0);
    BAD("<u@[ 1.2.3.4]>", 0);
}

static void test_quoted(void)
{
    OK("<\"a b\"@d.example>", 0, "a b@d.example");
    OK("<\"user\"@d.example>", 0, "user@d.example");
    OK("<\"a\\\"b\"@d.example>", 0, "a\"b@d.example");
    OK("<\"a\\\\b\"@d.example>", 0, "a\\b@d.example");
    OK("<\"a\\xb\"@d.example>", 0, "axb@d.example");
    OK("<\"user@remote.example\"@local.example>", 0, "user@remote.example@local.example");
    OK("<\"a>b\"@d.example>", 0, "a>b@d.example");
    OK("<\"a..b\"@d.example>", 0, "a..b@d.example");
    BAD("<\"\"@d.example>", 0);
    BAD("<\"abc@d.example>", 0);
    BAD("<\"a\tb\"@d.example>", 0);
    BAD("<\"a\\\tb\"@d.example>", 0);
    BAD("<\"a\"b@d.example>", 0);
    BAD("<a\"b\"@d.example>", 0);
}

static void test_source_route(void)
{
    OK("<@a.example:user@d.example>", 0, "user@d.example");
    OK("<@a.example,@b.example:user@d.example>", 0, "user@d.example");
    OK("<@[192.0.2.1]:user@d.example>", 0, "user@d.example");
    BAD("<@a.example user@d.example>", 0);
    BAD("<@a.example,b.example:user@d.example>", 0);
    BAD("<@:user@d.example>", 0);
    BAD("<@a.example:>", 0);
    BAD("<@a.example,:user@d.example>", 0);
    BAD("<@a_b:user@d.example>", 0);
}

static void test_lengths(void)
{
    char local[80], path[400], dom[300], want[400];

    memset(local, 'a', 64);
    local[64] = 0;
    snprintf(path, sizeof(path), "<%s@example.com>", local);
    snprintf(want, sizeof(want), "%s@example.com", local);
    OK(path, 0, want);
    memset(local, 'a', 65);
    local[65] = 0;
    snprintf(path, sizeof(path), "<%s@example.com>", local);
    BAD(path, 0);
    /* Domain of 4 labels of 63 = 255: within the domain limit, but the
     * path "<u@...>" is 260 > 256. */
    memset(dom, 0, sizeof(dom));
    for (int i = 0; i < 4; i++) {
        memset(dom + i * 64, 'b', 63);
        if (i < 3)
            dom[i * 64 + 63] = '.';
    }
    TEST_INTEQ(strlen(dom), 255);
    TEST_CHECK(addr_domain_valid(dom, strlen(dom), 0));
    snprintf(path, sizeof(path), "<u@%s>", dom);
    BAD(path, 0);
    dom[200] = 0;
    dom[199] = 'c';
    snprintf(path, sizeof(path), "<u@%s>", dom);
    snprintf(want, sizeof(want), "u@%s", dom);
    OK(path, 0, want);
    /* A very long input is rejected without scanning all of it */
    {
        static char big[10000];
        memset(big, 'a', sizeof(big) - 1);
        big[0] = '<';
        BAD(big, 0);
    }
}

static void test_utf8(void)
{
    OK("<j\xc3\xb6rg@b\xc3\xbc" "cher.de>", ADDR_FLAG_UTF8, "j\xc3\xb6rg@b\xc3\xbc" "cher.de");
    BAD("<j\xc3\xb6rg@example.com>", 0);
    BAD("<jorg@b\xc3\xbc" "cher.de>", 0);
    OK("<\"\xe7\x94\xa8 \xe6\x88\xb7\"@example.com>", ADDR_FLAG_UTF8,
       "\xe7\x94\xa8 \xe6\x88\xb7@example.com");
    BAD("<\"\xe7\x94\xa8\"@example.com>", 0);
    /* malformed: lone continuation, overlong, surrogate, truncated */
    BAD("<a\x80@example.com>", ADDR_FLAG_UTF8);
    BAD("<a\xc0\xaf@example.com>", ADDR_FLAG_UTF8);
    BAD("<a\xed\xa0\x80@example.com>", ADDR_FLAG_UTF8);
    BAD("<a\xe7\x94@example.com>", ADDR_FLAG_UTF8);
    BAD("<a\xf5\x80\x80\x80@example.com>", ADDR_FLAG_UTF8);
    TEST_CHECK(addr_utf8_valid("abc", 3));
    TEST_CHECK(addr_utf8_valid("\xf0\x9f\x90\xa6", 4));
    TEST_CHECK(!addr_utf8_valid("\xf0\x9f\x90", 3));
    TEST_CHECK(!addr_utf8_valid("\xe0\x80\x80", 3));
}

static void test_bare(void)
{
    OK("user@example.com", ADDR_FLAG_NO_BRACKETS, "user@example.com");
    BAD("user@example.com>", ADDR_FLAG_NO_BRACKETS);
    BAD("", ADDR_FLAG_NO_BRACKETS);
    OK("postmaster", ADDR_FLAG_NO_BRACKETS | ADDR_FLAG_NO_DOMAIN, "postmaster");
}

static void test_mailbox(void)
{
    buf_t out;
    const char *why;

    buf_init(&out, BUF_NOLIMIT);
    TEST_INTEQ(addr_parse_mailbox("a@b.c", 5, 0, &out, &why), 0);
    TEST_STREQ(buf_cstr(&out), "a@b.c");
    TEST_INTEQ(addr_parse_mailbox("\"x y\"@b.c", 9, 0, &out, &why), 0);
    TEST_STREQ(buf_cstr(&out), "x y@b.c");
    TEST_INTEQ(addr_parse_mailbox("<a@b.c>", 7, 0, &out, &why), -1);
    TEST_INTEQ(addr_parse_mailbox("a@b.c x", 7, 0, &out, &why), -1);
    TEST_INTEQ(addr_parse_mailbox("a", 1, 0, &out, &why), -1);
    TEST_INTEQ(addr_parse_mailbox("a", 1, ADDR_FLAG_NO_DOMAIN, &out, &why), 0);
    buf_free(&out);
}

/* quote_is - addr_quote(internal) == want */
static void quote_is(const char *internal, const char *want)
{
    buf_t out;

    buf_init(&out, BUF_NOLIMIT);
    addr_quote(internal, &out);
    TEST_STREQ(buf_cstr(&out), want);
    buf_free(&out);
}

static void test_quote(void)
{
    quote_is("user@example.com", "user@example.com");
    quote_is("", "\"\"");
    quote_is("a b@d", "\"a b\"@d");
    quote_is("a\"b@d", "\"a\\\"b\"@d");
    quote_is("a\\b@d", "\"a\\\\b\"@d");
    quote_is("user@remote@local", "\"user@remote\"@local");
    quote_is("a..b@d", "\"a..b\"@d");
    quote_is(".a@d", "\".a\"@d");
    quote_is("postmaster", "postmaster");
    quote_is("j\xc3\xb6rg@d", "j\xc3\xb6rg@d");
    TEST_STREQ(addr_domain("a@b@c"), "c");
    TEST_CHECK(addr_domain("postmaster") == NULL);
}

/* test_roundtrip - parse(quote(x)) == x */
static void test_roundtrip(void)
{
    static const char *cases[] = {
        "a b@d.example", "a\"b@d.example", "x\\y@d.example", "u@remote@d.example",
        "plain@d.example", "a..b@d.example", "(comment)@d.example",
    };
    buf_t ext, back, path;
    const char *why;

    buf_init(&ext, BUF_NOLIMIT);
    buf_init(&back, BUF_NOLIMIT);
    buf_init(&path, BUF_NOLIMIT);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&ext);
        addr_quote(cases[i], &ext);
        buf_reset(&path);
        buf_printf(&path, "<%s>", buf_cstr(&ext));
        TEST_INTEQ(addr_parse_path(path.data, path.len, 0, &back, NULL, &why), 0);
        TEST_STREQ(buf_cstr(&back), cases[i]);
    }
    buf_free(&ext);
    buf_free(&back);
    buf_free(&path);
}

int main(void)
{
    test_basic();
    test_brackets();
    test_domains();
    test_literals();
    test_quoted();
    test_source_route();
    test_lengths();
    test_utf8();
    test_bare();
    test_mailbox();
    test_quote();
    test_roundtrip();
    return test_done();
}
