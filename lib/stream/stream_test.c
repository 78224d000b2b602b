/* stream_test - lines, limits, EOF, deadlines and output over a socketpair */
#include "stream/stream.h"
#include "test/test.h"
#include "util/buf.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    event_loop_t *loop;
    buf_t lines;
    int events[8];
    bool failed;
    int max_lines;
} tctx_t;

static void on_event(stream_t *s, int ev, void *ctx)
{
    tctx_t *t = ctx;
    const char *line;
    size_t len;
    int r;

    t->events[ev]++;
    if (ev == STREAM_EV_READ) {
        while ((r = stream_get_line(s, &line, &len)) == 1) {
            buf_append(&t->lines, line, len);
            buf_putc(&t->lines, '|');
            if (t->max_lines && --t->max_lines == 0) {
                stream_want_read(s, false);
                return;
            }
        }
        if (r < 0) {
            buf_printf(&t->lines, "ERR:%s", stream_error(s));
            t->failed = true;
            event_loop_stop(t->loop);
        }
    } else {
        event_loop_stop(t->loop);
    }
}

static void stop_cb(event_loop_t *loop, void *ctx)
{
    (void)ctx;
    event_loop_stop(loop);
}

int main(void)
{
    tctx_t t = { 0 };
    int sv[2];
    stream_t *s;
    char big[300];
    char rbuf[64];

    t.loop = event_loop_new();
    buf_init(&t.lines, BUF_NOLIMIT);
    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    s = stream_new(t.loop, sv[0], 100, on_event, &t);

    /* lines with CRLF and LF, one split across writes */
    TEST_CHECK(write(sv[1], "250-one\r\n250 two\npar", 20) == 20);
    stream_want_read(s, true);
    event_timer_add(t.loop, 200, stop_cb, NULL);
    event_loop_run(t.loop);
    TEST_STREQ(buf_cstr(&t.lines), "250-one|250 two|");
    TEST_CHECK(write(sv[1], "tial\r\n", 6) == 6);
    event_timer_add(t.loop, 200, stop_cb, NULL);
    event_loop_run(t.loop);
    TEST_STREQ(buf_cstr(&t.lines), "250-one|250 two|partial|");

    /* output is buffered and drained */
    TEST_CHECK(stream_puts(s, "EHLO x\r\n") == 0);
    TEST_CHECK(stream_printf(s, "MAIL FROM:<%s>\r\n", "a@b") == 0);
    TEST_INTEQ((int)stream_out_pending(s), 8 + 17);
    event_loop_run(t.loop);
    TEST_INTEQ(t.events[STREAM_EV_DRAINED], 1);
    TEST_INTEQ((int)read(sv[1], rbuf, sizeof(rbuf)), 25);
    TEST_CHECK(memcmp(rbuf, "EHLO x\r\nMAIL FROM:<a@b>\r\n", 25) == 0);

    /* a deadline */
    stream_set_deadline(s, 50);
    event_loop_run(t.loop);
    TEST_INTEQ(t.events[STREAM_EV_TIMEOUT], 1);
    TEST_STREQ(stream_error(s), "timeout");

    /* a line over the limit */
    memset(big, 'x', sizeof(big));
    TEST_CHECK(write(sv[1], big, sizeof(big)) == (ssize_t)sizeof(big));
    buf_reset(&t.lines);
    event_loop_run(t.loop);
    TEST_CHECK(t.failed);
    TEST_STREQ(buf_cstr(&t.lines), "ERR:line too long");
    stream_free(&s);
    TEST_CHECK(s == NULL);

    /* EOF */
    close(sv[1]);
    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    s = stream_new(t.loop, sv[0], 100, on_event, &t);
    TEST_CHECK(write(sv[1], "last\r\n", 6) == 6);
    close(sv[1]);
    buf_reset(&t.lines);
    stream_want_read(s, true);
    event_loop_run(t.loop);
    TEST_STREQ(buf_cstr(&t.lines), "last|ERR:lost connection");

    /* no transport switch with plaintext input waiting */
    {
        const char *why = NULL;
        int sv2[2];
        stream_t *s2;
        TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2) == 0);
        fcntl(sv2[0], F_SETFL, O_NONBLOCK);
        s2 = stream_new(t.loop, sv2[0], 100, on_event, &t);
        TEST_CHECK(write(sv2[1], "220 go\r\ninjected\r\n", 18) == 18);
        buf_reset(&t.lines);
        t.failed = false;
        t.max_lines = 1;
        stream_want_read(s2, true);
        event_timer_add(t.loop, 100, stop_cb, NULL);
        event_loop_run(t.loop);
        TEST_CHECK(stream_start_tls(s2, NULL, &why) < 0);
        TEST_CHECK(why && strstr(why, "plaintext") != NULL);
        stream_free(&s2);
        close(sv2[1]);
    }
    stream_free(&s);
    buf_free(&t.lines);
    event_loop_free(&t.loop);
    return test_done();
}
