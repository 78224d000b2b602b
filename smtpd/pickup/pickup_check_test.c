/*
 * pickup_check_test - envelope checks on untrusted maildrop files, the
 * Received: header, and LF → CRLF across chunk boundaries
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pickup_check.h"
#include "test/test.h"

/* envelope - a qfile_t with one sender and the given recipients */
static void envelope(qfile_t *qf, char *sender, char **rcpts, size_t n, qfile_rcpt_t *store)
{
    memset(qf, 0, sizeof(*qf));
    qf->sender = sender;
    for (size_t i = 0; i < n; i++) {
        memset(&store[i], 0, sizeof(store[i]));
        store[i].addr = rcpts[i];
        store[i].orcpt = (char *)"";
    }
    qf->rcpts = store;
    qf->nrcpts = n;
    qf->content_size = 100;
}

static void test_check(void)
{
    qfile_t qf;
    qfile_rcpt_t store[4];
    const char *why = NULL;
    char *good[] = {"a@example.com", "b@[192.0.2.1]", "local"};
    char *bad_ctl[] = {"a@example.com", "evil\r\nRCPT@x"};
    char *bad_dom[] = {"a@exa mple.com"};
    char *empty[] = {""};

    envelope(&qf, "user@example.com", good, 3, store);
    TEST_INTEQ(pickup_check(&qf, 1000, &why), 0);
    envelope(&qf, "", good, 1, store);
    TEST_INTEQ(pickup_check(&qf, 0, &why), 0);
    envelope(&qf, "user@example.com", good, 3, store);
    TEST_INTEQ(pickup_check(&qf, 99, &why), -1);
    TEST_STREQ(why, "message file too big");
    envelope(&qf, "user@example.com", bad_ctl, 2, store);
    TEST_INTEQ(pickup_check(&qf, 0, &why), -1);
    TEST_STREQ(why, "bad recipient address syntax");
    envelope(&qf, "user@example.com", bad_dom, 1, store);
    TEST_INTEQ(pickup_check(&qf, 0, &why), -1);
    envelope(&qf, "user@example.com", empty, 1, store);
    TEST_INTEQ(pickup_check(&qf, 0, &why), -1);
    envelope(&qf, "user@example.com", good, 0, store);
    TEST_INTEQ(pickup_check(&qf, 0, &why), -1);
    TEST_STREQ(why, "no recipients");
    envelope(&qf, "bad sender@a b", good, 1, store);
    TEST_INTEQ(pickup_check(&qf, 0, &why), -1);
    TEST_STREQ(why, "bad sender address syntax");
    envelope(&qf, "user@example.com", good, 1, store);
    store[0].orcpt = (char *)"rfc822;x\ny";
    TEST_INTEQ(pickup_check(&qf, 0, &why), -1);
    TEST_STREQ(why, "bad original recipient");
}

static void test_names(void)
{
    char longname[400];

    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    TEST_STREQ(pickup_full_name("Jane Doe"), "Jane Doe");
    TEST_CHECK(pickup_full_name("Jane\r\nBcc: x") == NULL);
    TEST_CHECK(pickup_full_name(longname) == NULL);
    TEST_CHECK(pickup_full_name("") == NULL);
    TEST_CHECK(pickup_full_name(NULL) == NULL);
}

static void test_received(void)
{
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    pickup_received(&b, "mail.example.com", 1000, "0123456789ABCDEF", 1700000000);
    TEST_STREQ(buf_cstr(&b), "Received: by mail.example.com (Stork, from userid 1000)\r\n"
                             "\tid 0123456789ABCDEF; Tue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n");
    buf_free(&b);
}

static void test_crlf(void)
{
    pickup_crlf_t st;
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    pickup_crlf_init(&st);
    pickup_crlf(&st, "a\nb\r\nc\rd", 8, &b);
    TEST_STREQ(buf_cstr(&b), "a\r\nb\r\nc\rd");
    /* A CR at the end of one chunk and its LF at the start of the next. */
    buf_reset(&b);
    pickup_crlf_init(&st);
    pickup_crlf(&st, "x\r", 2, &b);
    pickup_crlf(&st, "\ny\n", 3, &b);
    TEST_STREQ(buf_cstr(&b), "x\r\ny\r\n");
    buf_reset(&b);
    pickup_crlf_init(&st);
    pickup_crlf(&st, "\n\n", 2, &b);
    TEST_STREQ(buf_cstr(&b), "\r\n\r\n");
    buf_free(&b);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    test_check();
    test_names();
    test_received();
    test_crlf();
    return test_done();
}
