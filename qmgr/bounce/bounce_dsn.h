#ifndef STORK_BOUNCE_DSN_H
#define STORK_BOUNCE_DSN_H
/*
 * NAME
 *	bounce_dsn - the text of an RFC 3464 delivery status notification
 * SUMMARY
 *	Pure: an envelope description and the original content in, the
 *	whole notification message (headers and body) out. No I/O.
 * DESCRIPTION
 *	bounce_dsn_text(&info, out): appends a multipart/report;
 *	report-type=delivery-status message: a text/plain part in
 *	Postfix's words, a message/delivery-status part (Reporting-MTA,
 *	X-Stork-Queue-ID, X-Stork-Sender, Original-Envelope-Id, Arrival-Date,
 *	then per recipient Final-Recipient, Original-Recipient, Action,
 *	Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date and for
 *	delays Will-Retry-Until), then the original: message/rfc822 when
 *	full return is wanted and the content fits bounce_size_limit,
 *	otherwise text/rfc822-headers.
 *	Kinds: BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_SUCCESS, and
 *	BOUNCE_DOUBLE (a postmaster copy of a failed report from the null
 *	sender). Full return: RET=FULL, or no RET for failures; never for
 *	delay and success notices (RFC 3461 4.3).
 *	Line ends follow the original content (CRLF if its first line ends
 *	in CRLF, else LF), so the report is consistent with the queue.
 *	bounce_dsn_diag(text, relay, out, size): the Diagnostic-Code value:
 *	"smtp; REPLY" when a remote MTA answered (REPLY is the part of TEXT
 *	after "said: " without a trailing "(in reply to ...)"), otherwise
 *	"X-Stork; TEXT".
 * SECURITY
 *	Every envelope string that lands in a header (addresses, ORCPT,
 *	ENVID, diagnostics, relay names) has control characters replaced
 *	by spaces and is cut to BOUNCE_FIELD_MAX bytes, so a remote reply
 *	cannot inject header lines or exceed the line length limit.
 * LIMITS
 *	BOUNCE_FIELD_MAX per field; the returned headers at most
 *	BOUNCE_HEADERS_MAX bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

#define BOUNCE_FIELD_MAX 900
#define BOUNCE_HEADERS_MAX (64 * 1024)

typedef enum { BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_SUCCESS, BOUNCE_DOUBLE } bounce_kind_t;

typedef struct bounce_rcpt {
    const char *addr;
    const char *orcpt;      /* "rfc822;addr" or "" */
    const char *dsn;        /* "5.1.1" */
    const char *action;     /* failed delayed delivered relayed expanded */
    const char *text;       /* diagnostic */
    const char *relay;      /* "host[addr]:port" or NULL */
} bounce_rcpt_t;

typedef struct bounce_info {
    bounce_kind_t kind;
    const char *myhostname;
    const char *qid;        /* the original message */
    const char *new_qid;    /* the report (Message-ID, boundary) */
    const char *sender;     /* the original sender */
    const char *to;         /* who gets the report */
    const char *envid;      /* or NULL */
    const char *ret;        /* "FULL", "HDRS" or NULL */
    int64_t arrival, now;
    int64_t retry_until;    /* delays: arrival + lifetime */
    const char *content;    /* the original content as far as read */
    size_t content_len;
    uint64_t content_size;  /* the whole original content */
    uint64_t size_limit;    /* bounce_size_limit */
    const bounce_rcpt_t *rcpts;
    size_t n;
} bounce_info_t;

int bounce_dsn_text(const bounce_info_t *bi, buf_t *out);
void bounce_dsn_diag(const char *text, const char *relay, char *out, size_t size);

#endif
