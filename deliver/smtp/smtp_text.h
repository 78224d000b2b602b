#ifndef STORK_DELIVER_SMTP_TEXT_H
#define STORK_DELIVER_SMTP_TEXT_H
/*
 * NAME
 *	smtp_text - pure text helpers of the SMTP/LMTP client
 * DESCRIPTION
 *	smtp_nexthop_parse(nexthop, lmtp, port, &dest, &why): NEXTHOP as
 *	qmgr sends it: "domain" (MX lookup), "[host]" or "[host]:port" (no
 *	MX lookup; host may be an IP literal, "[ipv6:...]" too),
 *	"host:port" (MX lookup of host), and for LMTP "unix:/path" and
 *	"inet:host:port" (no MX lookup). port is the default port.
 *	smtp_resp_*: collect one (multi-line) server reply line by line.
 *	smtp_resp_line(r, line, len, &why): 1 when the reply is complete,
 *	0 for a continuation line, -1 for a malformed line. r->code is the
 *	reply code, r->text "CODE text..." with the lines joined by a space
 *	(the enhanced code of continuation lines dropped), r->lines the raw
 *	text of each line after the code, joined by '\n' (EHLO keywords).
 *	smtp_resp_dsn(r, dsn): the enhanced status code of the reply when
 *	it has one of the reply's class, else "C.0.0".
 *	smtp_ehlo_parse(lines, &feat): the extensions of an EHLO reply.
 *	smtp_xtext_encode(out, s): RFC 3461 xtext.
 *	smtp_base64(out, p, n): RFC 4648 base64 (for SASL).
 * LIMITS
 *	A reply is at most SMTP_RESP_MAX bytes of text (more is cut and
 *	the reply still completes); a host name at most 255 bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

#define SMTP_RESP_MAX (16 * 1024)

typedef struct smtp_dest {
    char host[256];         /* domain, host name or address literal */
    unsigned port;
    bool mx;                /* look up MX records for host */
    bool literal;           /* host is an IP address */
    bool is_unix;
    char path[108];         /* unix:/path */
} smtp_dest_t;

typedef struct smtp_resp {
    int code;
    bool started;
    buf_t text;
    buf_t lines;
} smtp_resp_t;

#define SMTP_FEAT_ESMTP       (1u << 0)
#define SMTP_FEAT_PIPELINING  (1u << 1)
#define SMTP_FEAT_SIZE        (1u << 2)
#define SMTP_FEAT_8BITMIME    (1u << 3)
#define SMTP_FEAT_SMTPUTF8    (1u << 4)
#define SMTP_FEAT_DSN         (1u << 5)
#define SMTP_FEAT_STARTTLS    (1u << 6)
#define SMTP_FEAT_AUTH        (1u << 7)
#define SMTP_FEAT_CHUNKING    (1u << 8)

typedef struct smtp_feat {
    unsigned bits;
    uint64_t size_limit;    /* 0: none announced */
    char auth[256];         /* mechanisms, space separated, upper case */
} smtp_feat_t;

int smtp_nexthop_parse(const char *nexthop, bool lmtp, unsigned port, smtp_dest_t *dest,
                       const char **why_r);
void smtp_resp_init(smtp_resp_t *r);
void smtp_resp_reset(smtp_resp_t *r);
void smtp_resp_free(smtp_resp_t *r);
int smtp_resp_line(smtp_resp_t *r, const char *line, size_t len, const char **why_r);
void smtp_resp_dsn(const smtp_resp_t *r, char dsn[16]);
void smtp_ehlo_parse(const char *lines, smtp_feat_t *feat);
void smtp_xtext_encode(buf_t *out, const char *s);
void smtp_base64(buf_t *out, const void *p, size_t n);

#endif
