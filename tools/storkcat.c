/*
 * storkcat - show a queue file (Postfix's postcat)
 *
 *	storkcat [-c DIR] [-e] [-h] [-b] QID
 *
 *	-e  the envelope: arrival, sender, named attributes, recipients
 *	    and their status
 *	-h  the message header section
 *	-b  the message body
 *	Without -e/-h/-b everything is shown, with section markers:
 *	"*** ENVELOPE RECORDS queue/QID ***", "*** MESSAGE CONTENTS
 *	queue/QID ***", "*** MESSAGE FILE END queue/QID ***". With -h or
 *	-b alone the content is shown without markers, so it can be piped.
 *	Content lines are shown with LF line ends (the queue holds CRLF).
 *	The file is looked up in every queue directory (and corrupt/).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli_fmt.h"
#include "cli_util.h"
#include "queue/qfile.h"
#include "queue/qid.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define CAT_ENVELOPE 1
#define CAT_HEADER   2
#define CAT_BODY     4
#define CAT_CHUNK    (64 * 1024)

/* usage - the synopsis, then exit EX_USAGE */
static void usage(void)
{
    fprintf(stderr, "usage: storkcat [-c config_dir] [-e] [-h] [-b] queue_id\n");
    exit(EX_USAGE);
}

/* cat_time - an asctime()-style line for an arrival time */
static void cat_time(buf_t *out, const char *label, int64_t sec)
{
    time_t t = (time_t)sec;
    struct tm tm;
    char when[64];

    if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm) == 0)
        safe_cpy(when, sizeof(when), "?");
    buf_printf(out, "%s: %s\n", label, when);
}

/* cat_line - "label: value" with the value made printable */
static void cat_line(buf_t *out, const char *label, const char *value)
{
    buf_printf(out, "%s: ", label);
    cli_fmt_printable(out, value);
    buf_putc(out, '\n');
}

/* cat_envelope - the envelope records, postcat style */
static void cat_envelope(buf_t *out, const qfile_t *qf)
{
    buf_printf(out, "message_size: %llu\n", (unsigned long long)qf->content_size);
    cat_time(out, "message_arrival_time", qf->arrival_sec);
    for (size_t i = 0; i < qf->nattrs; i++) {
        buf_t nv;

        buf_init(&nv, BUF_NOLIMIT);
        buf_printf(&nv, "%s=%s", qf->attr_names[i], qf->attr_values[i]);
        cat_line(out, "named_attribute", buf_cstr(&nv));
        buf_free(&nv);
    }
    cat_line(out, "sender", qf->sender ? qf->sender : "");
    for (size_t i = 0; i < qf->nrcpts; i++) {
        const qfile_rcpt_t *r = &qf->rcpts[i];

        if (r->orcpt && *r->orcpt)
            cat_line(out, "original_recipient", r->orcpt);
        if (r->notify)
            buf_printf(out, "dsn_notify_flags: %u\n", r->notify);
        cat_line(out, r->status == QFILE_RCPT_DONE ? "done_recipient" : "recipient", r->addr);
    }
}

/* cat_line_out - one content line (with its LF), CRLF shown as LF */
static void cat_line_out(buf_t *out, buf_t *line, int what, bool *in_header)
{
    size_t n = line->len;
    bool eol = n > 0 && line->data[n - 1] == '\n';

    if (eol) {
        n--;
        if (n > 0 && line->data[n - 1] == '\r')
            n--;
    }
    if (*in_header && eol && n == 0) {
        /* The empty line between header and body: shown only when both are. */
        *in_header = false;
        if ((what & CAT_HEADER) && (what & CAT_BODY))
            buf_putc(out, '\n');
    } else if (*in_header ? (what & CAT_HEADER) : (what & CAT_BODY)) {
        buf_append(out, line->data, n);
        if (eol)
            buf_putc(out, '\n');
    }
    buf_reset(line);
}

/* cat_content - copy the content: header section, body, or both */
static int cat_content(int fd, const qfile_t *qf, int what, buf_t *out)
{
    char *chunk = xmalloc(CAT_CHUNK);
    uint64_t left = qf->content_size;
    off_t off = qf->content_offset;
    bool in_header = true;
    buf_t line;
    int ret = 0;

    buf_init(&line, BUF_NOLIMIT);
    while (left > 0) {
        size_t want = left < CAT_CHUNK ? (size_t)left : CAT_CHUNK;
        ssize_t n = pread(fd, chunk, want, off);

        if (n <= 0) {
            msg_error("read queue file: %s", n < 0 ? strerror(errno) : "unexpected end of file");
            ret = -1;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            buf_putc(&line, chunk[i]);
            if (chunk[i] == '\n')
                cat_line_out(out, &line, what, &in_header);
        }
        off += n;
        left -= (uint64_t)n;
        if (out->len >= CAT_CHUNK) {
            fwrite(out->data, 1, out->len, stdout);
            buf_reset(out);
        }
    }
    if (line.len)
        cat_line_out(out, &line, what, &in_header);
    buf_free(&line);
    free(chunk);
    return ret;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL, *queue, *qid, *why;
    static const char *const queues[] = {QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
                                         QUEUE_HOLD, QUEUE_MAILDROP, QUEUE_CORRUPT, NULL};
    int what = 0, c, fd, status = 0;
    bool markers;
    conf_t *conf;
    char *path;
    qfile_t qf;
    buf_t out;

    cli_init(argv[0], "storkcat");
    while ((c = getopt(argc, argv, "bc:ehqv")) != -1) {
        switch (c) {
        case 'b': what |= CAT_BODY; break;
        case 'c': config_dir = optarg; break;
        case 'e': what |= CAT_ENVELOPE; break;
        case 'h': what |= CAT_HEADER; break;
        case 'q': break;        /* postcat -q: the argument is a queue id */
        case 'v': msg_verbose++; break;
        default: usage();
        }
    }
    if (optind + 1 != argc)
        usage();
    qid = argv[optind];
    if (!qid_valid(qid)) {
        msg_error("invalid queue id: %s", qid);
        return EX_USAGE;
    }
    markers = what == 0 || (what & CAT_ENVELOPE);
    if (what == 0)
        what = CAT_ENVELOPE | CAT_HEADER | CAT_BODY;
    conf = cli_conf(config_dir);
    if ((queue = cli_qfind(cli_queue_dir(conf), qid, queues)) == NULL) {
        msg_error("%s: no such message in the queue", qid);
        conf_free(&conf);
        return EX_NOINPUT;
    }
    path = xasprintf("%s/%s/%s", cli_queue_dir(conf), queue, qid);
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        msg_error("open %s: %s", path, strerror(errno));
        free(path);
        conf_free(&conf);
        return errno == ENOENT ? EX_NOINPUT : EX_NOPERM;
    }
    if (qfile_read(fd, &qf, &why) < 0) {
        msg_error("%s: %s", path, why);
        close(fd);
        free(path);
        conf_free(&conf);
        return EX_DATAERR;
    }
    buf_init(&out, BUF_NOLIMIT);
    if (what & CAT_ENVELOPE) {
        buf_printf(&out, "*** ENVELOPE RECORDS %s/%s ***\n", queue, qid);
        cat_envelope(&out, &qf);
    }
    if (what & (CAT_HEADER | CAT_BODY)) {
        if (markers)
            buf_printf(&out, "*** MESSAGE CONTENTS %s/%s ***\n", queue, qid);
        if (cat_content(fd, &qf, what, &out) < 0)
            status = EX_IOERR;
    }
    if (markers)
        buf_printf(&out, "*** MESSAGE FILE END %s/%s ***\n", queue, qid);
    if (out.len)
        fwrite(out.data, 1, out.len, stdout);
    if (fflush(stdout) != 0 && errno != EPIPE)
        status = EX_IOERR;
    buf_free(&out);
    qfile_free(&qf);
    close(fd);
    free(path);
    conf_free(&conf);
    return status;
}
