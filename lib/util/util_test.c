/* util_test - unit tests for buf, str and xmalloc */
#include "test/test.h"
#include "util/buf.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <stdlib.h>

static void test_buf(void)
{
    buf_t b;

    buf_init(&b, 10);
    TEST_INTEQ(buf_puts(&b, "hello"), 0);
    TEST_INTEQ(buf_printf(&b, "%d", 1234), 0);
    TEST_STREQ(buf_cstr(&b), "hello1234");
    TEST_INTEQ(buf_puts(&b, "xy"), -1);     /* over the cap: unchanged */
    TEST_STREQ(buf_cstr(&b), "hello1234");
    TEST_INTEQ(buf_putc(&b, '!'), 0);
    buf_consume(&b, 5);
    TEST_STREQ(buf_cstr(&b), "1234!");
    TEST_INTEQ(b.len, 5);
    buf_free(&b);
    TEST_CHECK(b.data == NULL);
}

static void test_str(void)
{
    char s[] = "  Hello World \t\n";
    char **argv;
    uint64_t size;
    int64_t secs;

    TEST_STREQ(str_trim(s), "Hello World");
    TEST_CHECK(str_hash("") == 14695981039346656037ULL);     /* FNV-1a offset basis */
    TEST_CHECK(str_hash("a") == 0xaf63dc4c8601ec8cULL);      /* FNV-1a 64 of "a" */
    TEST_STREQ(str_lower(s), "hello world");
    TEST_INTEQ(str_split(" a, b,,c ", ", ", &argv), 3);
    TEST_STREQ(argv[0], "a");
    TEST_STREQ(argv[2], "c");
    TEST_CHECK(argv[3] == NULL);
    str_argv_free(&argv);
    TEST_CHECK(str_to_size("10m", &size) == 0 && size == 10485760);
    TEST_CHECK(str_to_size("10x", &size) == -1);
    TEST_CHECK(str_to_size("99999999999999999999", &size) == -1);
    TEST_CHECK(str_to_seconds("5m", &secs) == 0 && secs == 300);
    TEST_CHECK(str_to_seconds("5mm", &secs) == -1);
    TEST_CHECK(str_casesuffix("foo.EXAMPLE.com", ".example.COM"));
}

int main(void)
{
    test_buf();
    test_str();
    return test_done();
}
