/* master_cf_test - unit tests for the master.cf parser */
#include "test/test.h"
#include "config/master_cf.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char test_path[] = "/tmp/master_cf_test.XXXXXX";

/* load_text - master_cf_load over text; errors in errs (caller frees) */
static int load_text(const char *text, master_cf_entry_t **e, size_t *n, buf_t *errs)
{
    FILE *fp = fopen(test_path, "w");

    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
        msg_fatal("write %s", test_path);
    buf_init(errs, BUF_NOLIMIT);
    return master_cf_load(test_path, e, n, errs);
}

static void test_good(void)
{
    master_cf_entry_t *e;
    size_t n;
    buf_t errs;

    TEST_INTEQ(load_text("# service type private unpriv chroot wakeup maxproc command\n"
                         "smtp      inet  n       -       y       -       -       smtpd\n"
                         "127.0.0.1:2525 inet n   n       n       -       5       smtpd\n"
                         "  -o smtputf8_enable=no\n"
                         "\n"
                         "  # comment between continuation lines\n"
                         "\t-o max_idle=10s extra\r\n"
                         "[::1]:2526 inet n - - - - smtpd\n"
                         "pickup    unix  n       -       n       60      1       pickup\n"
                         "qmgr      unix  n       -       n       300?    1       qmgr\n"
                         "verify    unix  -       -       n       -       1       verify\n"
                         "local     unix  -       n       n       -       -       local\n",
                         &e, &n, &errs), 0);
    TEST_STREQ(buf_cstr(&errs), "");
    TEST_INTEQ(n, 7);
    if (n != 7)
        return;
    TEST_STREQ(e[0].service, "smtp");
    TEST_CHECK(e[0].type == MASTER_CF_INET);
    TEST_CHECK(!e[0].private_ && e[0].unpriv && e[0].chroot);
    TEST_INTEQ(e[0].wakeup, 0);
    TEST_INTEQ(e[0].maxproc, -1);
    TEST_INTEQ(e[0].argc, 1);
    TEST_STREQ(e[0].argv[0], "smtpd");
    TEST_CHECK(e[0].argv[1] == NULL);
    TEST_INTEQ(e[0].line, 2);
    TEST_STREQ(e[1].service, "127.0.0.1:2525");
    TEST_CHECK(!e[1].unpriv && !e[1].chroot);
    TEST_INTEQ(e[1].maxproc, 5);
    TEST_INTEQ(e[1].argc, 6);
    TEST_STREQ(e[1].argv[1], "-o");
    TEST_STREQ(e[1].argv[2], "smtputf8_enable=no");
    TEST_STREQ(e[1].argv[4], "max_idle=10s");
    TEST_STREQ(e[1].argv[5], "extra");
    TEST_STREQ(e[3].service, "pickup");
    TEST_CHECK(e[3].type == MASTER_CF_UNIX && !e[3].private_);
    TEST_INTEQ(e[3].wakeup, 60);
    TEST_INTEQ(e[3].maxproc, 1);
    TEST_INTEQ(e[4].wakeup, 300);
    TEST_CHECK(e[5].private_ && e[5].unpriv && !e[5].chroot);
    TEST_CHECK(e[6].private_ && !e[6].unpriv);
    TEST_INTEQ(e[6].line, 12);
    master_cf_free(&e, n);
    TEST_CHECK(e == NULL);
    buf_free(&errs);
}

static void test_errors(void)
{
    master_cf_entry_t *e;
    size_t n;
    buf_t errs;
    const char *s;

    TEST_INTEQ(load_text("  -o orphan=1\n"
                         "smtp inet n - n - - \n"
                         "a fifo n - n - - x\n"
                         "b unix q - n - - x\n"
                         "c unix - - n soon - x\n"
                         "d unix - - n - many x\n"
                         "e inet - - n - - x\n"
                         "f unix - - n - - x -o bogus_param=1\n"
                         "g unix - - n - - x -o\n"
                         "h unix - - n - - x\n"
                         "h unix - - n - - y\n"
                         "1.2.3.4:99999 inet n - n - - x\n"
                         "i/j unix - - n - - x\n"
                         "k inet y - n - - x\n"
                         "::1:25 inet n - n - - x\n",
                         &e, &n, &errs), 14);
    s = buf_cstr(&errs);
    TEST_CHECK(e == NULL && n == 0);
    TEST_CHECK(strstr(s, ":1: continuation line without a service") != NULL);
    TEST_CHECK(strstr(s, ":2: too few fields") != NULL);
    TEST_CHECK(strstr(s, ":3: a: unsupported service type: fifo") != NULL);
    TEST_CHECK(strstr(s, ":4: b: bad private field: q") != NULL);
    TEST_CHECK(strstr(s, ":5: c: bad wakeup field: soon") != NULL);
    TEST_CHECK(strstr(s, ":6: d: bad maxproc field: many") != NULL);
    TEST_CHECK(strstr(s, ":7: e: unknown or bad port") != NULL);
    TEST_CHECK(strstr(s, ":8: -o bogus_param=1: unknown parameter name: bogus_param") != NULL);
    TEST_CHECK(strstr(s, ":9: -o without name=value") != NULL);
    TEST_CHECK(strstr(s, ":11: duplicate service h/unix (first at line 10)") != NULL);
    TEST_CHECK(strstr(s, ":12: 1.2.3.4:99999: unknown or bad port") != NULL);
    TEST_CHECK(strstr(s, ":13: i/j: bad unix service name") != NULL);
    TEST_CHECK(strstr(s, ":14: k: an inet service cannot be private") != NULL);
    TEST_CHECK(strstr(s, ":15: ::1:25: IPv6 address must be in brackets") != NULL);
    TEST_CHECK(strncmp(s, test_path, strlen(test_path)) == 0);
    buf_free(&errs);

    buf_init(&errs, BUF_NOLIMIT);
    TEST_INTEQ(master_cf_load("/nonexistent/master.cf", &e, &n, &errs), 1);
    TEST_CHECK(strstr(buf_cstr(&errs), "/nonexistent/master.cf: cannot open") != NULL);
    buf_free(&errs);
}

static void test_inet_split(void)
{
    char *host, *port;
    const char *why;

    TEST_INTEQ(master_cf_inet_split("smtp", &host, &port, &why), 0);
    TEST_CHECK(host == NULL);
    TEST_STREQ(port, "25");
    free(port);
    TEST_INTEQ(master_cf_inet_split("127.0.0.1:submission", &host, &port, &why), 0);
    TEST_STREQ(host, "127.0.0.1");
    TEST_STREQ(port, "587");
    free(host);
    free(port);
    TEST_INTEQ(master_cf_inet_split("[::1]:smtps", &host, &port, &why), 0);
    TEST_STREQ(host, "::1");
    TEST_STREQ(port, "465");
    free(host);
    free(port);
    TEST_INTEQ(master_cf_inet_split("*:2525", &host, &port, &why), 0);
    TEST_CHECK(host == NULL);
    TEST_STREQ(port, "2525");
    free(port);
    TEST_INTEQ(master_cf_inet_split("[::1]", &host, &port, &why), -1);
    TEST_INTEQ(master_cf_inet_split("host:0", &host, &port, &why), -1);
    TEST_INTEQ(master_cf_inet_split("nosuchservice", &host, &port, &why), -1);
}

int main(void)
{
    msg_init("master_cf_test", "stork");
    int fd = mkstemp(test_path);
    if (fd < 0)
        msg_fatal("mkstemp");
    close(fd);
    test_good();
    test_errors();
    test_inet_split();
    unlink(test_path);
    return test_done();
}
