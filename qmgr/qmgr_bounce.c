/*
 * qmgr_bounce - a minimal RFC 3464 non-delivery report, written as a new
 * queue file from the null sender to the original sender (so it is
 * queued, retried and never lost like any other mail), made durable
 * before the failed recipients are marked done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "qmgr.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QMGR_BOUNCE_HEADERS_MAX (64 * 1024)

/* qmgr_rfc822_date - "Sun, 22 Nov 2026 09:04:43 +0000" */
static void qmgr_rfc822_date(char *out, size_t size, time_t t)
{
    struct tm tm;

    localtime_r(&t, &tm);
    if (strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* qmgr_orig_headers - the original message's header section (capped),
 * and whether it uses CRLF line ends (the report then does too) */
static void qmgr_orig_headers(const qmgr_msg_t *msg, buf_t *hdrs, bool *crlf_r)
{
    size_t want = msg->qf.content_size < QMGR_BOUNCE_HEADERS_MAX
        ? (size_t)msg->qf.content_size : QMGR_BOUNCE_HEADERS_MAX;
    char *p = xmalloc(want + 1);
    ssize_t n = want ? pread(msg->fd, p, want, msg->qf.content_offset) : 0;

    if (n < 0)
        n = 0;
    p[n] = 0;
    size_t len = (size_t)n;
    char *end = NULL;
    for (size_t i = 0; i + 1 < len && end == NULL; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n')
            end = p + i + 1;
        else if (p[i] == '\n' && p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')
            end = p + i + 1;
    }
    if (end)
        len = (size_t)(end - p);
    *crlf_r = memmem(p, len, "\r\n", 2) != NULL;
    buf_append(hdrs, p, len);
    free(p);
}

/* qmgr_line - append text and a line end */
static void qmgr_line(buf_t *b, bool crlf, const char *text)
{
    buf_puts(b, text);
    buf_puts(b, crlf ? "\r\n" : "\n");
}

/* qmgr_linef - a formatted line */
static void qmgr_linef(buf_t *b, bool crlf, const char *fmt, ...) STORK_PRINTF(3, 4);
static void qmgr_linef(buf_t *b, bool crlf, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
    buf_puts(b, crlf ? "\r\n" : "\n");
}

/* qmgr_bounce_text - the whole report */
static void qmgr_bounce_text(qmgr_msg_t *msg, const size_t *idx, size_t n, const char *bqid,
                             buf_t *b)
{
    buf_t hdrs;
    bool crlf;
    char date[64], arrival[64];
    const char *host = qmgr.myhostname;
    const char *envid = qfile_attr(&msg->qf, "envid");

    buf_init(&hdrs, BUF_NOLIMIT);
    qmgr_orig_headers(msg, &hdrs, &crlf);
    qmgr_rfc822_date(date, sizeof(date), time(NULL));
    qmgr_rfc822_date(arrival, sizeof(arrival), (time_t)msg->qf.arrival_sec);
    qmgr_linef(b, crlf, "Date: %s", date);
    qmgr_linef(b, crlf, "From: MAILER-DAEMON@%s (Mail Delivery System)", host);
    qmgr_linef(b, crlf, "To: %s", msg->qf.sender);
    qmgr_line(b, crlf, "Subject: Undelivered Mail Returned to Sender");
    qmgr_linef(b, crlf, "Message-ID: <%s.bounce@%s>", bqid, host);
    qmgr_line(b, crlf, "Auto-Submitted: auto-replied");
    qmgr_line(b, crlf, "MIME-Version: 1.0");
    qmgr_linef(b, crlf, "Content-Type: multipart/report; report-type=delivery-status;");
    qmgr_linef(b, crlf, "\tboundary=\"%s/%s\"", msg->qid, host);
    qmgr_line(b, crlf, "Content-Transfer-Encoding: 8bit");
    qmgr_line(b, crlf, "");
    qmgr_line(b, crlf, "This is a MIME-encapsulated message.");
    qmgr_line(b, crlf, "");
    /* the human part */
    qmgr_linef(b, crlf, "--%s/%s", msg->qid, host);
    qmgr_line(b, crlf, "Content-Description: Notification");
    qmgr_line(b, crlf, "Content-Type: text/plain; charset=utf-8");
    qmgr_line(b, crlf, "");
    qmgr_linef(b, crlf, "This is the mail system at host %s.", host);
    qmgr_line(b, crlf, "");
    qmgr_line(b, crlf, "I'm sorry to have to inform you that your message could not");
    qmgr_line(b, crlf, "be delivered to one or more recipients. It's attached below.");
    qmgr_line(b, crlf, "");
    qmgr_line(b, crlf, "                   The mail system");
    qmgr_line(b, crlf, "");
    for (size_t k = 0; k < n; k++) {
        const qmgr_rstate_t *rs = &msg->rs[idx[k]];
        qmgr_linef(b, crlf, "<%s>: %s", msg->qf.rcpts[idx[k]].addr, rs->text ? rs->text : "failed");
    }
    qmgr_line(b, crlf, "");
    /* the machine part */
    qmgr_linef(b, crlf, "--%s/%s", msg->qid, host);
    qmgr_line(b, crlf, "Content-Description: Delivery report");
    qmgr_line(b, crlf, "Content-Type: message/delivery-status");
    qmgr_line(b, crlf, "");
    qmgr_linef(b, crlf, "Reporting-MTA: dns; %s", host);
    qmgr_linef(b, crlf, "X-Stork-Queue-ID: %s", msg->qid);
    if (envid && *envid)
        qmgr_linef(b, crlf, "Original-Envelope-Id: %s", envid);
    qmgr_linef(b, crlf, "X-Stork-Sender: rfc822; %s", msg->qf.sender);
    qmgr_linef(b, crlf, "Arrival-Date: %s", arrival);
    for (size_t k = 0; k < n; k++) {
        const qmgr_rstate_t *rs = &msg->rs[idx[k]];
        const qfile_rcpt_t *r = &msg->qf.rcpts[idx[k]];
        const char *dsn = rs->dsn && (rs->dsn[0] == '4' || rs->dsn[0] == '5') ? rs->dsn : "5.0.0";
        qmgr_line(b, crlf, "");
        qmgr_linef(b, crlf, "Final-Recipient: rfc822; %s", r->addr);
        if (r->orcpt[0])
            qmgr_linef(b, crlf, "Original-Recipient: %s", r->orcpt);
        qmgr_line(b, crlf, "Action: failed");
        qmgr_linef(b, crlf, "Status: %s", dsn);
        qmgr_linef(b, crlf, "Diagnostic-Code: X-Stork; %s", rs->text ? rs->text : "failed");
    }
    qmgr_line(b, crlf, "");
    /* the original headers */
    qmgr_linef(b, crlf, "--%s/%s", msg->qid, host);
    qmgr_line(b, crlf, "Content-Description: Undelivered Message Headers");
    qmgr_line(b, crlf, "Content-Type: text/rfc822-headers");
    qmgr_line(b, crlf, "Content-Transfer-Encoding: 8bit");
    qmgr_line(b, crlf, "");
    buf_append(b, hdrs.data, hdrs.len);
    if (hdrs.len && hdrs.data[hdrs.len - 1] != '\n')
        qmgr_line(b, crlf, "");
    qmgr_line(b, crlf, "");
    qmgr_linef(b, crlf, "--%s/%s--", msg->qid, host);
    buf_free(&hdrs);
}

/* qmgr_bounce - queue a report on recipients idx[0..n) to the sender;
 * 0 and the new queue id once it is durable in incoming/ */
int qmgr_bounce(qmgr_msg_t *msg, const size_t *idx, size_t n, char qid_r[QID_BUFSIZE])
{
    qfile_writer_t *w;
    const char *why = NULL;
    struct timeval tv;
    buf_t text;

    if (qfile_create(qmgr.qdir, &w, &why) < 0) {
        msg_warn("%s: cannot create a non-delivery notification: %s", msg->qid, why);
        return -1;
    }
    buf_init(&text, BUF_NOLIMIT);
    qmgr_bounce_text(msg, idx, n, qfile_writer_qid(w), &text);
    gettimeofday(&tv, NULL);
    int rc = -1;
    if (qfile_put_arrival(w, tv.tv_sec, (int32_t)tv.tv_usec) == 0
        && qfile_put_sender(w, "") == 0
        && qfile_put_attr(w, "protocol", "bounce") == 0
        && qfile_put_rcpt(w, msg->qf.sender, "", 0) == 0
        && qfile_begin_content(w) == 0
        && qfile_write_content(w, text.data, text.len) == 0
        && qfile_finish(w, &why) == 0 && qfile_sync(w, &why) == 0
        && qfile_commit(w, &why) == 0) {
        if (queue_sync_dir(qmgr.qdir, QUEUE_INCOMING) < 0)
            msg_warn("%s: cannot sync %s/: %m", msg->qid, QUEUE_INCOMING);
        memcpy(qid_r, qfile_writer_qid(w), QID_BUFSIZE);
        qfile_writer_free(&w);
        rc = 0;
    } else {
        msg_warn("%s: cannot write a non-delivery notification: %s", msg->qid,
                 why ? why : "write error");
        qfile_abort(&w);
    }
    buf_free(&text);
    return rc;
}
