#ifndef STORK_TOOLS_CLI_HDR_H
#define STORK_TOOLS_CLI_HDR_H
/*
 * NAME
 *	cli_hdr - message headers for local submission (sendmail -t,
 *	missing Date/Message-ID/From), pure parsing
 * SUMMARY
 *	Bytes in, addresses or a rewritten message out. No I/O.
 * DESCRIPTION
 *	cli_addrlist_parse(value, list, &why): RFC 5322 address-list (also
 *	a single path like "user@host" or "<user@host>") to addresses in
 *	internal form (quoted local parts unquoted: "a b"@x → a b@x).
 *	Display names, comments, groups ("undisclosed-recipients:;") and
 *	source routes are dropped; "<>" yields nothing. Appends to list;
 *	-1 with why on a syntax error (unbalanced <, ", (, [ or a
 *	bare word list that is not an address).
 *
 *	cli_msg_split(content, len, &m): finds the header section of a
 *	message whose lines end in CRLF: m.hdr_end is the offset just past
 *	the last header line (0 if the message starts with its body).
 *	m.has_date/has_msgid/has_from/has_resent say which headers exist.
 *	cli_msg_rcpts(content, &m, list, &why): with -t, the addresses of
 *	To/Cc/Bcc, or of Resent-To/-Cc/-Bcc when any Resent- recipient
 *	header is present (RFC 5322 3.6.6).
 *	cli_msg_rewrite(content, len, &m, added, out): the message with
 *	Bcc (and Resent-Bcc) removed, the CRLF-terminated header lines in
 *	"added" appended to the header section, and a blank line inserted
 *	before a body that does not begin with one (else its first line
 *	could be taken for a header or a continuation).
 *
 *	cli_addr_list_t is a growable array of strings.
 * LIMITS
 *	Callers cap the content size; cli_addrlist_parse stops with an
 *	error past CLI_HDR_MAX_ADDRS addresses in one call.
 */
#include <stdbool.h>
#include <stddef.h>
#include "util/buf.h"

#define CLI_HDR_MAX_ADDRS 10000

typedef struct cli_addr_list {
    char **v;
    size_t n;
} cli_addr_list_t;

void cli_addr_list_add(cli_addr_list_t *l, const char *addr);
void cli_addr_list_free(cli_addr_list_t *l);

int cli_addrlist_parse(const char *value, cli_addr_list_t *list, const char **why_r);

typedef struct cli_msg {
    size_t hdr_end;
    bool has_date;
    bool has_msgid;
    bool has_from;
    bool has_resent;
} cli_msg_t;

void cli_msg_split(const char *content, size_t len, cli_msg_t *m);
int cli_msg_rcpts(const char *content, const cli_msg_t *m, cli_addr_list_t *list,
                  const char **why_r);
void cli_msg_rewrite(const char *content, size_t len, const cli_msg_t *m,
                     const char *added, buf_t *out);

/* cli_hdr_foreach - call fn for each header field: name (not
 * terminated: name_len), the unfolded value (terminated, CRLF and
 * folding removed), and the field's byte range [start, end) */
void cli_hdr_foreach(const char *content, size_t hdr_end,
                     void (*fn)(const char *name, size_t name_len, const char *value,
                                size_t start, size_t end, void *ctx),
                     void *ctx);

#endif
