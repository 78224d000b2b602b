/*
 * cli_showq - the queue listing shared by storkqueue and mailq
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli_showq.h"
#include "cli_util.h"
#include "util/buf.h"
#include "util/msg.h"

/* Output goes out in pieces this big, not one write per message. */
#define CLI_SHOWQ_FLUSH (64 * 1024)

typedef struct cli_showq_state {
    bool json;
    size_t count;
    uint64_t total;
    bool write_error;
    buf_t out;
} cli_showq_state_t;

/* cli_showq_flush - write the output buffer to stdout */
static void cli_showq_flush(cli_showq_state_t *st)
{
    if (st->out.len && !st->write_error
        && fwrite(st->out.data, 1, st->out.len, stdout) != st->out.len)
        st->write_error = true;
    buf_reset(&st->out);
}

/* cli_showq_entry - format one message as it arrives */
static void cli_showq_entry(const cli_qentry_t *e, void *ctx)
{
    cli_showq_state_t *st = ctx;

    if (st->json) {
        cli_fmt_json_entry(&st->out, e);
    } else {
        if (st->count == 0)
            cli_fmt_mailq_header(&st->out);
        else
            buf_putc(&st->out, '\n');
        cli_fmt_mailq_entry(&st->out, e);
    }
    st->count++;
    st->total += e->size;
    if (st->out.len >= CLI_SHOWQ_FLUSH)
        cli_showq_flush(st);
}

/* cli_showq - list the queue from qmgr, or from the files */
int cli_showq(const char *queue_dir, bool json)
{
    cli_showq_state_t st = {.json = json};
    const char *why;
    int fd;

    buf_init(&st.out, BUF_NOLIMIT);
    if ((fd = cli_qmgr_connect(queue_dir, &why)) >= 0) {
        int ret = cli_qmgr_list(fd, NULL, cli_showq_entry, &st, &why);

        close(fd);
        if (ret < 0) {
            msg_error("queue listing from qmgr: %s", why);
            buf_free(&st.out);
            return EX_UNAVAILABLE;
        }
    } else {
        /* The mail system is stopped: read the files, as showq does in
         * stand-alone mode. */
        if (access(queue_dir, R_OK | X_OK) < 0) {
            msg_error("mail system is down and %s is not readable: %s", queue_dir,
                      strerror(errno));
            buf_free(&st.out);
            return EX_UNAVAILABLE;
        }
        if (cli_qscan(queue_dir, CLI_QUEUES_ALL, NULL, cli_showq_entry, &st) < 0) {
            cli_showq_flush(&st);
            buf_free(&st.out);
            msg_error("mail system is down and the queue cannot be read "
                      "(run as root or the mail_owner)");
            return EX_UNAVAILABLE;
        }
    }
    if (!json)
        cli_fmt_mailq_trailer(&st.out, st.total, st.count);
    cli_showq_flush(&st);
    buf_free(&st.out);
    if (fflush(stdout) != 0 || st.write_error)
        return errno == EPIPE ? 0 : EX_IOERR;
    return 0;
}
