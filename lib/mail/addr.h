#ifndef STORK_MAIL_ADDR_H
#define STORK_MAIL_ADDR_H
/*
 * NAME
 *	addr - RFC 5321 paths and mailboxes: parsing to the internal form,
 *	quoting back to the external form
 * SUMMARY
 *	The internal form of an address is "local@domain" with the local
 *	part unquoted ("\"a b\"@d" becomes "a b@d"), the domain as sent
 *	(case preserved, an address literal keeps its brackets), and the
 *	null reverse-path "<>" becomes the empty string. Internal addresses
 *	never contain NUL, CR, LF or other control characters.
 *	The external form is what goes back on the wire or into headers:
 *	addr_quote() quotes the local part when it is not a Dot-string.
 * DESCRIPTION
 *	addr_parse_path(s, len, flags, out, &consumed, &why): parses a
 *	Reverse-path or Forward-path at the start of s[0..len): "<>",
 *	"<local@domain>", "<@a,@b:local@domain>" (the source route is
 *	checked and dropped, RFC 5321 appendix C). The internal form is
 *	written to out (reset first); consumed_r (may be NULL) gets the
 *	number of bytes used, so that a caller can parse what follows
 *	(ESMTP parameters). Flags:
 *	  ADDR_FLAG_NULL_OK    "<>" is accepted (a reverse-path).
 *	  ADDR_FLAG_UTF8       UTF-8 in the local part and domain (the
 *	                       session said SMTPUTF8, RFC 6531); must be
 *	                       well-formed UTF-8. Without it only ASCII.
 *	  ADDR_FLAG_NO_DOMAIN  a bare local part "<user>" is accepted
 *	                       (RCPT TO:<Postmaster>; the resolver adds
 *	                       $myorigin).
 *	  ADDR_FLAG_NO_BRACKETS  tolerate a path without "<>" (as Postfix
 *	                       does by default): it ends at the first
 *	                       space; "" is not accepted.
 *	addr_parse_mailbox(s, len, flags, out, &why): the same for a whole
 *	Mailbox "local@domain" without brackets (used for ORCPT rfc822
 *	values and VRFY arguments). Only ADDR_FLAG_UTF8 and
 *	ADDR_FLAG_NO_DOMAIN matter.
 *	addr_domain_valid(s, len, flags): true for a syntactically valid
 *	Domain or address literal (EHLO arguments).
 *	addr_quote(internal, out): appends the external form of an internal
 *	address to out: the local part as a Dot-string when it is one,
 *	else as a Quoted-string with '"' and '\' escaped.
 *	addr_domain(internal): the domain part (after the last '@'), or
 *	NULL when there is none. Borrowed from the argument.
 *	addr_internal_ok(addr): a plausible internal-form address from a
 *	less trusted local source (maildrop files, sendmail arguments):
 *	non-empty, at most ADDR_INTERNAL_MAX bytes, no control characters,
 *	and a domain part (if any) without white space or specials. A bare
 *	local part is fine (it gets $myorigin later).
 *	addr_utf8_valid(s, len): true if s is well-formed UTF-8 (no
 *	overlongs, no surrogates, at most U+10FFFF).
 * ERRORS
 *	The parsers return 0, or -1 with *why_r set to a static English
 *	phrase ("bad address syntax", "local part too long", ...); callers
 *	turn that into 501 5.1.7 (sender) or 501 5.1.3 (recipient).
 * LIMITS
 *	Local part at most ADDR_LOCAL_MAX octets, domain at most
 *	ADDR_DOMAIN_MAX, a domain label at most 63, the whole path (with
 *	brackets and source route) at most ADDR_PATH_MAX (RFC 5321 4.5.3.1).
 * SECURITY
 *	Pure code: no I/O, no globals. The local part may legally contain
 *	'@', '%' and '!' when quoted; the resolver treats such local parts
 *	as unknown users, never as routing.
 */
#include <stdbool.h>
#include <stddef.h>
#include "util/buf.h"

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256
#define ADDR_INTERNAL_MAX 998

#define ADDR_FLAG_NULL_OK      1u
#define ADDR_FLAG_UTF8         2u
#define ADDR_FLAG_NO_DOMAIN    4u
#define ADDR_FLAG_NO_BRACKETS  8u

int addr_parse_path(const char *s, size_t len, unsigned flags, buf_t *out,
                    size_t *consumed_r, const char **why_r);
int addr_parse_mailbox(const char *s, size_t len, unsigned flags, buf_t *out,
                       const char **why_r);
bool addr_domain_valid(const char *s, size_t len, unsigned flags);
void addr_quote(const char *internal, buf_t *out);
const char *addr_domain(const char *internal);
bool addr_utf8_valid(const char *s, size_t len);
bool addr_internal_ok(const char *addr);

#endif
