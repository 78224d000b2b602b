/*
 * bounce_dsn - the text of an RFC 3464 report (see bounce_dsn.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/mail_date.h"
#include "bounce_dsn.h"
#include "util/xmalloc.h"

typedef struct {
    buf_t *b;
    const char *eol;
} out_t;

/* put - one line */
static void put(out_t *o, const char *text)
{
    buf_puts(o->b, text);
    buf_puts(o->b, o->eol);
}

/* putf - one formatted line */
static void putf(out_t *o, const char *fmt, ...) STORK_PRINTF(2, 3);
static void putf(out_t *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(o->b, fmt, ap);
    va_end(ap);
    buf_puts(o->b, o->eol);
}

/* clean - a header-safe copy: controls become spaces, capped */
static void clean(char *out, size_t size, const char *in)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && n + 1 < size
         && n < BOUNCE_FIELD_MAX; p++)
        out[n++] = (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p;
    out[n] = 0;
}

/* rfc822_date - the RFC 5322 date-time of t, into a fixed buffer */
static void rfc822_date(char *out, size_t size, int64_t t)
{
    buf_t b;

    buf_init(&b, BUF_NOLIMIT);
    mail_date(&b, (time_t)t);
    snprintf(out, size, "%s", buf_cstr(&b));
    buf_free(&b);
}

/* bounce_dsn_diag - "smtp; REPLY" for a remote answer, else "X-Stork; TEXT" */
void bounce_dsn_diag(const char *text, const char *relay, char *out, size_t size)
{
    char t[BOUNCE_FIELD_MAX + 1];

    clean(t, sizeof(t), text);
    if (relay == NULL || *relay == 0) {
        snprintf(out, size, "X-Stork; %s", t);
        return;
    }
    char *reply = strstr(t, " said: ");
    reply = reply ? reply + 7 : t;
    char *tail = strstr(reply, " (in reply to ");
    if (tail && tail[strlen(tail) - 1] == ')')
        *tail = 0;
    snprintf(out, size, "smtp; %s", reply);
}

/* header_end - length of the header section of the content (up to and
 * including the empty line), capped */
static size_t header_end(const char *p, size_t len)
{
    if (len > BOUNCE_HEADERS_MAX)
        len = BOUNCE_HEADERS_MAX;
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')
            return i + 3;
    }
    return len;
}

/* human - the text/plain part, in Postfix's words */
static void human(out_t *o, const bounce_info_t *bi)
{
    putf(o, "This is the mail system at host %s.", bi->myhostname);
    put(o, "");
    if (bi->kind == BOUNCE_DELAYED) {
        int64_t d = bi->now - bi->arrival, left = bi->retry_until - bi->arrival;
        put(o, "####################################################################");
        put(o, "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #");
        put(o, "####################################################################");
        put(o, "");
        if (d >= 3600)
            putf(o, "Your message could not be delivered for more than %lld hour(s).",
                 (long long)(d / 3600));
        else
            putf(o, "Your message could not be delivered for more than %lld minute(s).",
                 (long long)(d / 60));
        putf(o, "It will be retried until it is %lld day(s) old.", (long long)(left / 86400));
    } else if (bi->kind == BOUNCE_SUCCESS) {
        put(o, "Your message was successfully delivered to the destination(s)");
        put(o, "listed below. If the message was delivered to mailbox you will");
        put(o, "receive no further notifications. Otherwise you may still receive");
        put(o, "notifications of mail delivery errors from other systems.");
    } else {
        if (bi->kind == BOUNCE_DOUBLE) {
            put(o, "A non-delivery notification from this host could not be returned");
            put(o, "to its sender (the null sender). This is the postmaster copy.");
            put(o, "");
        }
        put(o, "I'm sorry to have to inform you that your message could not");
        put(o, "be delivered to one or more recipients. It's attached below.");
    }
    if (bi->kind != BOUNCE_SUCCESS) {
        put(o, "");
        put(o, "For further assistance, please send mail to postmaster.");
        put(o, "");
        put(o, "If you do so, please include this problem report. You can");
        put(o, "delete your own text from the attached returned message.");
    }
    put(o, "");
    put(o, "                   The mail system");
    put(o, "");
    for (size_t k = 0; k < bi->n; k++) {
        char a[BOUNCE_FIELD_MAX + 1], t[BOUNCE_FIELD_MAX + 1];
        clean(a, sizeof(a), bi->rcpts[k].addr);
        clean(t, sizeof(t), bi->rcpts[k].text);
        putf(o, "<%s>: %s", a, *t ? t : bi->kind == BOUNCE_SUCCESS ? "delivered" : "failed");
        put(o, "");
    }
}

/* machine - the message/delivery-status part */
static void machine(out_t *o, const bounce_info_t *bi)
{
    char date[64], f1[BOUNCE_FIELD_MAX + 1], f2[BOUNCE_FIELD_MAX + 16];

    putf(o, "Reporting-MTA: dns; %s", bi->myhostname);
    putf(o, "X-Stork-Queue-ID: %s", bi->qid);
    clean(f1, sizeof(f1), bi->sender);
    putf(o, "X-Stork-Sender: rfc822; %s", f1);
    if (bi->envid && *bi->envid) {
        clean(f1, sizeof(f1), bi->envid);
        putf(o, "Original-Envelope-Id: %s", f1);
    }
    rfc822_date(date, sizeof(date), bi->arrival);
    putf(o, "Arrival-Date: %s", date);
    rfc822_date(date, sizeof(date), bi->now);
    for (size_t k = 0; k < bi->n; k++) {
        const bounce_rcpt_t *r = &bi->rcpts[k];
        put(o, "");
        clean(f1, sizeof(f1), r->addr);
        putf(o, "Final-Recipient: rfc822; %s", f1);
        if (r->orcpt && *r->orcpt) {
            clean(f1, sizeof(f1), r->orcpt);
            putf(o, "Original-Recipient: %s", f1);
        }
        clean(f1, sizeof(f1), r->action);
        putf(o, "Action: %s", f1);
        clean(f1, sizeof(f1), r->dsn);
        putf(o, "Status: %s", f1);
        if (r->relay && *r->relay) {
            clean(f1, sizeof(f1), r->relay);
            char *bracket = strchr(f1, '[');
            if (bracket && bracket > f1)
                *bracket = 0;
            putf(o, "Remote-MTA: dns; %s", f1);
        }
        if (r->text && *r->text) {
            bounce_dsn_diag(r->text, r->relay, f2, sizeof(f2));
            putf(o, "Diagnostic-Code: %s", f2);
        }
        if (bi->kind != BOUNCE_SUCCESS)
            putf(o, "Last-Attempt-Date: %s", date);
        if (bi->kind == BOUNCE_DELAYED) {
            char until[64];
            rfc822_date(until, sizeof(until), bi->retry_until);
            putf(o, "Will-Retry-Until: %s", until);
        }
    }
    put(o, "");
}

/* original - the returned message (full) or its headers */
static void original(out_t *o, const bounce_info_t *bi, const char *boundary)
{
    bool want_full = (bi->kind == BOUNCE_FAILED || bi->kind == BOUNCE_DOUBLE)
        && !(bi->ret && strcmp(bi->ret, "HDRS") == 0);
    bool full = want_full && bi->content_size <= bi->size_limit
        && bi->content_len == bi->content_size;
    size_t len = full ? bi->content_len : header_end(bi->content, bi->content_len);

    putf(o, "--%s", boundary);
    put(o, full ? "Content-Description: Undelivered Message"
        : bi->kind == BOUNCE_FAILED || bi->kind == BOUNCE_DOUBLE
        ? "Content-Description: Undelivered Message Headers"
        : bi->kind == BOUNCE_DELAYED ? "Content-Description: Delayed Message Headers"
        : "Content-Description: Message Headers");
    put(o, full ? "Content-Type: message/rfc822" : "Content-Type: text/rfc822-headers");
    put(o, "Content-Transfer-Encoding: 8bit");
    put(o, "");
    buf_append(o->b, bi->content, len);
    if (len && bi->content[len - 1] != '\n')
        put(o, "");
    put(o, "");
    putf(o, "--%s--", boundary);
}

/* bounce_dsn_text - the whole report */
int bounce_dsn_text(const bounce_info_t *bi, buf_t *out)
{
    static const char *const subjects[] = {
        "Undelivered Mail Returned to Sender", "Delayed Mail (still being retried)",
        "Successful Mail Delivery Report", "Postmaster Copy: Undelivered Mail",
    };
    const char *nl = memchr(bi->content, '\n', bi->content_len);
    out_t o = { out, nl && nl > bi->content && nl[-1] == '\r' ? "\r\n" : "\n" };
    char date[64], to[BOUNCE_FIELD_MAX + 1], boundary[128];

    snprintf(boundary, sizeof(boundary), "%s.%lld/%s", bi->new_qid, (long long)bi->now,
             bi->myhostname);
    rfc822_date(date, sizeof(date), bi->now);
    clean(to, sizeof(to), bi->to);
    putf(&o, "Date: %s", date);
    putf(&o, "From: MAILER-DAEMON@%s (Mail Delivery System)", bi->myhostname);
    putf(&o, "To: %s", to);
    putf(&o, "Subject: %s", subjects[bi->kind]);
    putf(&o, "Message-Id: <%s.%lld@%s>", bi->new_qid, (long long)bi->now, bi->myhostname);
    put(&o, "Auto-Submitted: auto-replied");
    put(&o, "MIME-Version: 1.0");
    put(&o, "Content-Type: multipart/report; report-type=delivery-status;");
    putf(&o, "\tboundary=\"%s\"", boundary);
    put(&o, "Content-Transfer-Encoding: 8bit");
    put(&o, "");
    put(&o, "This is a MIME-encapsulated message.");
    put(&o, "");
    putf(&o, "--%s", boundary);
    put(&o, "Content-Description: Notification");
    put(&o, "Content-Type: text/plain; charset=utf-8");
    put(&o, "Content-Transfer-Encoding: 8bit");
    put(&o, "");
    human(&o, bi);
    putf(&o, "--%s", boundary);
    put(&o, "Content-Description: Delivery report");
    put(&o, "Content-Type: message/delivery-status");
    put(&o, "");
    machine(&o, bi);
    original(&o, bi, boundary);
    return 0;
}
