/*
 * bounce_dsn_test - the report text: structure, RET handling, the
 * Diagnostic-Code extraction and header injection resistance.
 */
#include <string.h>

#include "bounce_dsn.h"
#include "test/test.h"

static const char orig[] = "Subject: hi\r\nFrom: a@b\r\n\r\nbody line\r\n";

/* make - one report into b */
static void make(buf_t *b, bounce_kind_t kind, const char *ret, uint64_t limit,
                 const bounce_rcpt_t *r, size_t n)
{
    bounce_info_t bi = {
        .kind = kind, .myhostname = "mx.example.test", .qid = "0123456789ABCDEF",
        .new_qid = "0123456789ABCDEG", .sender = "s@example.test", .to = "s@example.test",
        .envid = "ENV1", .ret = ret, .arrival = 1700000000, .now = 1700003600,
        .retry_until = 1700432000, .content = orig, .content_len = sizeof(orig) - 1,
        .content_size = sizeof(orig) - 1, .size_limit = limit, .rcpts = r, .n = n,
    };
    buf_init(b, BUF_NOLIMIT);
    bounce_dsn_text(&bi, b);
}

int main(void)
{
    char d[1024];
    buf_t b;
    bounce_rcpt_t r[2] = {
        { "x@remote.test", "rfc822;X@remote.test", "5.1.1", "failed",
          "host mx.remote.test[127.0.0.1] said: 550 5.1.1 <x@remote.test>: no such user "
          "(in reply to RCPT TO command)", "mx.remote.test[127.0.0.1]:25" },
        { "y@local.test", "", "5.2.2", "failed", "mailbox full\r\nX-Evil: 1", NULL },
    };

    bounce_dsn_diag(r[0].text, r[0].relay, d, sizeof(d));
    TEST_STREQ(d, "smtp; 550 5.1.1 <x@remote.test>: no such user");
    bounce_dsn_diag("mailbox full", NULL, d, sizeof(d));
    TEST_STREQ(d, "X-Stork; mailbox full");

    make(&b, BOUNCE_FAILED, NULL, 50000, r, 2);
    const char *t = buf_cstr(&b);
    TEST_CHECK(strstr(t, "Subject: Undelivered Mail Returned to Sender\r\n") != NULL);
    TEST_CHECK(strstr(t, "report-type=delivery-status") != NULL);
    TEST_CHECK(strstr(t, "Original-Envelope-Id: ENV1\r\n") != NULL);
    TEST_CHECK(strstr(t, "Final-Recipient: rfc822; x@remote.test\r\n") != NULL);
    TEST_CHECK(strstr(t, "Original-Recipient: rfc822;X@remote.test\r\n") != NULL);
    TEST_CHECK(strstr(t, "Remote-MTA: dns; mx.remote.test\r\n") != NULL);
    TEST_CHECK(strstr(t, "Diagnostic-Code: smtp; 550 5.1.1") != NULL);
    TEST_CHECK(strstr(t, "\r\nX-Evil") == NULL);
    TEST_CHECK(strstr(t, "Content-Type: message/rfc822\r\n") != NULL);
    TEST_CHECK(strstr(t, "body line") != NULL);
    TEST_CHECK(strchr(t, '\n') && memmem(t, b.len, "\n\n", 2) == NULL);   /* CRLF only */
    buf_free(&b);

    make(&b, BOUNCE_FAILED, "HDRS", 50000, r, 1);
    t = buf_cstr(&b);
    TEST_CHECK(strstr(t, "Content-Type: text/rfc822-headers") != NULL);
    TEST_CHECK(strstr(t, "body line") == NULL);
    buf_free(&b);

    make(&b, BOUNCE_FAILED, "FULL", 10, r, 1);      /* too large: headers only */
    TEST_CHECK(strstr(buf_cstr(&b), "body line") == NULL);
    buf_free(&b);

    make(&b, BOUNCE_DELAYED, "FULL", 50000, r, 1);
    t = buf_cstr(&b);
    TEST_CHECK(strstr(t, "Subject: Delayed Mail (still being retried)") != NULL);
    TEST_CHECK(strstr(t, "Will-Retry-Until: ") != NULL);
    TEST_CHECK(strstr(t, "more than 1 hour(s)") != NULL);
    TEST_CHECK(strstr(t, "body line") == NULL);
    buf_free(&b);

    bounce_rcpt_t ok = { "z@local.test", "", "2.0.0", "delivered", "delivered to maildir", NULL };
    make(&b, BOUNCE_SUCCESS, NULL, 50000, &ok, 1);
    t = buf_cstr(&b);
    TEST_CHECK(strstr(t, "Subject: Successful Mail Delivery Report") != NULL);
    TEST_CHECK(strstr(t, "Action: delivered\r\n") != NULL);
    buf_free(&b);
    return test_done();
}
