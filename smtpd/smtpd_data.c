/*
 * smtpd_data.c - DATA and BDAT (RFC 5321 4.1.1.4, RFC 3030).
 *
 * Content streams into the queue file as it arrives; nothing holds a
 * whole message in memory. For DATA a byte-level state machine finds
 * the end (only <CRLF>.<CRLF>: the DATA command's own CRLF counts as the
 * first), removes the dot-stuffing, and notes every bare LF (an LF not
 * after a CR) and bare CR (a CR not before an LF). With
 * smtpd_forbid_bare_newline (default) a message with either is read to
 * its real end and then rejected, so "\n.\n" tricks (SMTP smuggling)
 * can neither end the message early nor start a second one. BDAT chunks
 * are counted, not scanned for a dot, but get the same CR/LF checks.
 * message_size_limit is enforced on the bytes received: past it the
 * content is read and dropped, then 552 5.3.4.
 * While the header section streams by, the Message-ID header is picked
 * up for the log.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "smtpd.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SMTPD_MSGID_MAX 998

/* smtpd_header_line - one complete header line (CR LF removed) */
static void smtpd_header_line(smtpd_session_t *s, const char *line, size_t len)
{
    if (len == 0) {
        s->in_header = false;
        return;
    }
    if (line[0] == ' ' || line[0] == '\t') {
        /* A folded Message-ID value continues here. */
        if (s->hdr_in_msgid && s->message_id && strlen(s->message_id) + len < SMTPD_MSGID_MAX) {
            char *joined = xasprintf("%s%.*s", s->message_id, (int)len, line);
            free(s->message_id);
            s->message_id = joined;
        }
        return;
    }
    s->hdr_in_msgid = len >= 11 && strncasecmp(line, "Message-ID:", 11) == 0 && !s->message_id;
    if (s->hdr_in_msgid)
        s->message_id = xstrndup(line + 11, len - 11 < SMTPD_MSGID_MAX ? len - 11 : SMTPD_MSGID_MAX);
}

/* smtpd_header_scan - split the header section into lines */
static void smtpd_header_scan(smtpd_session_t *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n && s->in_header; i++) {
        if (p[i] == '\n') {
            size_t len = s->hdr_line.len;
            if (len > 0 && s->hdr_line.data[len - 1] == '\r')
                len--;
            smtpd_header_line(s, buf_cstr(&s->hdr_line), len);
            buf_reset(&s->hdr_line);
        } else {
            /* Over-long header lines are cut here, not in the message. */
            (void)buf_putc(&s->hdr_line, p[i]);
        }
    }
}

/* smtpd_content - client content after unstuffing: count, scan, store */
static void smtpd_content(smtpd_session_t *s, const char *p, size_t n)
{
    uint64_t limit = s->srv->set.message_size_limit;

    if (n == 0)
        return;
    s->content_bytes += n;
    if (limit && s->content_bytes > limit)
        s->too_big = true;
    if (s->in_header)
        smtpd_header_scan(s, p, n);
    /* Content that will be rejected is not written. */
    if (!s->too_big && !s->write_error
        && !((s->bare_lf || s->bare_cr) && s->srv->set.forbid_bare_newline))
        smtpd_enqueue_write(s, p, n);
}

/* smtpd_line_break - the index of the next CR or LF in p[i..n), or n.
 * Inside a line only those two bytes matter; memchr finds them many
 * bytes at a time, where a byte-at-a-time state machine would not. */
static size_t smtpd_line_break(const char *p, size_t i, size_t n)
{
    const char *cr = memchr(p + i, '\r', n - i);
    size_t end = cr ? (size_t)(cr - p) : n;
    const char *lf = memchr(p + i, '\n', end - i);

    return lf ? (size_t)(lf - p) : end;
}

/* smtpd_data_input - DATA bytes; returns how many were used; *done_r
 * when <CRLF>.<CRLF> was seen (the bytes after it are not used) */
size_t smtpd_data_input(smtpd_session_t *s, const char *p, size_t n, bool *done_r)
{
    size_t i, run = 0;          /* p[run..i) is content not yet passed on */

    *done_r = false;
    for (i = 0; i < n; i++) {
        if (s->dstate == SMTPD_D_MID && (i = smtpd_line_break(p, i, n)) == n)
            break;
        unsigned char c = (unsigned char)p[i];

        switch (s->dstate) {
        case SMTPD_D_BOL:
            if (c == '.') {
                smtpd_content(s, p + run, i - run);
                run = i + 1;            /* the dot is not content */
                s->dstate = SMTPD_D_DOT;
                continue;
            }
            break;
        case SMTPD_D_DOT:
            if (c == '\r') {
                run = i + 1;            /* held back: maybe ".\r\n" */
                s->dstate = SMTPD_D_DOTCR;
                continue;
            }
            run = i;                    /* "..x" → ".x": one dot removed */
            break;
        case SMTPD_D_DOTCR:
            if (c == '\n') {
                *done_r = true;
                return i + 1;
            }
            /* ".\r" then something else: a bare CR after an unstuffed dot */
            s->bare_cr = true;
            smtpd_content(s, "\r", 1);
            run = i;
            break;
        case SMTPD_D_CR:
            if (c == '\n') {
                s->dstate = SMTPD_D_BOL;
                continue;
            }
            s->bare_cr = true;
            break;
        case SMTPD_D_MID:
            break;
        }
        /* the middle of a line */
        if (c == '\r') {
            s->dstate = SMTPD_D_CR;
        } else {
            if (c == '\n')
                s->bare_lf = true;      /* and not a line start: no "\n.\n" */
            s->dstate = SMTPD_D_MID;
        }
    }
    smtpd_content(s, p + run, i - run);
    return n;
}

/* smtpd_bdat_input - BDAT bytes: no dot handling, the same CR/LF checks */
void smtpd_bdat_input(smtpd_session_t *s, const char *p, size_t n)
{
    if (s->bdat_discard)
        return;
    for (size_t i = 0; i < n; i++) {
        if (s->dstate == SMTPD_D_MID && (i = smtpd_line_break(p, i, n)) == n)
            break;
        unsigned char c = (unsigned char)p[i];
        if (s->dstate == SMTPD_D_CR && c != '\n')
            s->bare_cr = true;
        if (c == '\n' && s->dstate != SMTPD_D_CR)
            s->bare_lf = true;
        s->dstate = c == '\r' ? SMTPD_D_CR : SMTPD_D_MID;
    }
    smtpd_content(s, p, n);
}

/* smtpd_content_verdict - after the last byte: reject, or commit */
static void smtpd_content_verdict(smtpd_session_t *s, const char *cmd)
{
    const char *text = NULL, *dsn = NULL;
    int code = 0;

    /* A BDAT message that ends in a CR never saw its LF. */
    if (s->used_bdat && s->dstate == SMTPD_D_CR)
        s->bare_cr = true;
    if ((s->bare_lf || s->bare_cr) && s->srv->set.forbid_bare_newline) {
        code = 550;
        dsn = "5.5.2";
        text = s->bare_lf ? "Error: bare <LF> received" : "Error: bare <CR> received";
    } else if (s->too_big) {
        code = 552;
        dsn = "5.3.4";
        text = "Message size exceeds fixed limit";
    } else if (s->write_error) {
        code = 451;
        dsn = "4.3.0";
        text = "Error: queue file write error";
    }
    if (code) {
        smtpd_reject_log(s, cmd, code, dsn, text, s->nrcpts == 1 ? s->rcpts[0] : NULL);
        smtpd_reply(s, code, dsn, "%s", text);
        smtpd_transaction_reset(s);
        return;
    }
    smtpd_enqueue_finish(s);
}

/* smtpd_content_begin - the queue file's content section and Received:
 * (the caller replies on failure) */
static int smtpd_content_begin(smtpd_session_t *s)
{
    if (s->content_started)
        return 0;
    s->content_started = true;
    s->dstate = SMTPD_D_BOL;
    s->in_header = true;
    return smtpd_enqueue_begin_content(s);
}

/* smtpd_cmd_data - DATA */
int smtpd_cmd_data(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    if (!s->have_mail) {
        smtpd_reply(s, 503, "5.5.1", "Error: need RCPT command");
        return -1;
    }
    if (s->nrcpts == 0) {
        smtpd_reply(s, 554, "5.5.1", "Error: no valid recipients");
        return -1;
    }
    if (cl->arg_len) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: DATA");
        return -1;
    }
    if (s->used_bdat) {
        smtpd_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
        return -1;
    }
    if (smtpd_content_begin(s) < 0) {
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        smtpd_transaction_reset(s);
        return -1;
    }
    s->dstate = SMTPD_D_BOL;
    s->state = SMTPD_ST_DATA;
    smtpd_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    return 1;
}

/* smtpd_data_done - <CRLF>.<CRLF> seen */
void smtpd_data_done(smtpd_session_t *s)
{
    s->state = SMTPD_ST_CMD;
    smtpd_content_verdict(s, "DATA");
}

/* smtpd_bdat_fail - this and later chunks of the transaction get code */
static void smtpd_bdat_fail(smtpd_session_t *s, int code, const char *dsn, const char *text)
{
    if (s->bdat_err_code == 0) {
        s->bdat_err_code = code;
        s->bdat_err_dsn = dsn;
        s->bdat_err_text = text;
    }
    s->bdat_discard = true;
}

/* smtpd_cmd_bdat - BDAT size [LAST]: the chunk is read in any case */
int smtpd_cmd_bdat(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    smtp_err_t err;
    uint64_t size;
    bool last;
    uint64_t limit = s->srv->set.message_size_limit;

    smtp_err_init(&err);
    if (smtp_parse_bdat(cl->arg, cl->arg_len, &size, &last, &err) < 0) {
        /* Without a size we cannot find the end of the chunk: whatever
         * follows could be taken for commands. Hang up. */
        smtpd_reply(s, err.code, err.dsn, "%s", buf_cstr(&err.text));
        smtp_err_free(&err);
        s->quit = true;
        return -1;
    }
    smtp_err_free(&err);
    s->bdat_chunk = size;
    s->bdat_remaining = size;
    s->bdat_last = last;
    s->bdat_discard = s->bdat_err_code != 0;
    s->state = SMTPD_ST_BDAT;
    if (!s->have_mail)
        smtpd_bdat_fail(s, 503, "5.5.1", "Error: need RCPT command");
    else if (s->nrcpts == 0)
        smtpd_bdat_fail(s, 554, "5.5.1", "Error: no valid recipients");
    else if (s->content_started && !s->used_bdat)
        smtpd_bdat_fail(s, 503, "5.5.1", "Error: BDAT after DATA");
    if (s->bdat_err_code)
        return 1;
    if (limit && (size > limit || s->content_bytes + size > limit)) {
        smtpd_bdat_fail(s, 552, "5.3.4", "Message size exceeds fixed limit");
        return 1;
    }
    if (!s->content_started) {
        if (smtpd_content_begin(s) < 0) {
            smtpd_bdat_fail(s, 451, "4.3.0", "Error: queue file write error");
            return 1;
        }
        s->used_bdat = true;
        s->dstate = SMTPD_D_MID;
    }
    return 1;
}

/* smtpd_bdat_chunk_done - the whole chunk is in */
void smtpd_bdat_chunk_done(smtpd_session_t *s)
{
    s->state = SMTPD_ST_CMD;
    if (s->bdat_err_code) {
        int code = s->bdat_err_code;
        const char *dsn = s->bdat_err_dsn, *text = s->bdat_err_text;
        if (s->bdat_last) {
            if (s->have_mail)
                smtpd_reject_log(s, "BDAT", code, dsn, text, NULL);
            smtpd_transaction_reset(s);
        }
        smtpd_reply(s, code, dsn, "%s", text);
        return;
    }
    if (!s->bdat_last) {
        smtpd_reply(s, 250, "2.0.0", "Ok: %" PRIu64 " bytes", s->bdat_chunk);
        s->cmd_ok[SMTPD_C_BDAT]++;
        return;
    }
    smtpd_content_verdict(s, "BDAT");
}
