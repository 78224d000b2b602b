#ifndef STORK_SMTP_SMTP_REPLY_H
#define STORK_SMTP_SMTP_REPLY_H
/*
 * NAME
 *	smtp_reply - building SMTP replies with enhanced status codes
 * SUMMARY
 *	smtp_reply(out, 250, "2.1.0", "Ok") appends "250 2.1.0 Ok\r\n".
 *	Text with '\n' becomes a multi-line reply: every line but the last
 *	is "CODE-DSN text", the last "CODE DSN text" (RFC 5321 4.2.1,
 *	RFC 2034 3). dsn NULL or "" leaves the enhanced code out (the
 *	greeting and EHLO/HELO replies).
 * DESCRIPTION
 *	smtp_reply(out, code, dsn, text): as above.
 *	smtp_reply_printf(out, code, dsn, fmt, ...): the text from a format.
 *	smtp_reply_lines(out, code, dsn, lines, n): one reply from n lines
 *	(the EHLO keyword list).
 *	smtp_reply_sanitize(out, s, len): appends s with CR, LF and other
 *	control characters replaced by '?' (for client data that goes into
 *	a reply, so a client can never inject a reply line).
 *	smtp_dsn_valid(s): true for an RFC 3463 code "C.SSS.DDD" with class
 *	2, 4 or 5.
 * ERRORS
 *	Return 0, or -1 when out's limit was reached (the caller should
 *	treat the session as broken); out is then unchanged.
 * LIMITS
 *	A reply line's text is cut at SMTP_REPLY_TEXT_MAX octets so lines
 *	stay within RFC 5321's 512 octets.
 */
#include <stdbool.h>
#include <stddef.h>
#include "util/buf.h"
#include "util/msg.h"

#define SMTP_REPLY_TEXT_MAX 490

int smtp_reply(buf_t *out, int code, const char *dsn, const char *text);
int smtp_reply_printf(buf_t *out, int code, const char *dsn, const char *fmt, ...) STORK_PRINTF(4, 5);
int smtp_reply_lines(buf_t *out, int code, const char *dsn, const char *const *lines, size_t n);
void smtp_reply_sanitize(buf_t *out, const char *s, size_t len);
bool smtp_dsn_valid(const char *s);

#endif
