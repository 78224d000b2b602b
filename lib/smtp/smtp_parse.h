#ifndef STORK_SMTP_SMTP_PARSE_H
#define STORK_SMTP_SMTP_PARSE_H
/*
 * NAME
 *	smtp_parse - SMTP command lines and ESMTP parameters (server side)
 * SUMMARY
 *	Pure parsers: bytes in, a struct or an SMTP error out. No I/O, no
 *	globals. The caller has already cut the line at CRLF (the CRLF is
 *	not passed) and enforced the line length limit.
 * DESCRIPTION
 *	smtp_parse_line(line, len, &cl, &err): splits a command line into a
 *	verb (letters only, at most SMTP_VERB_MAX, compared
 *	case-insensitively with smtp_verb_is) and the argument after one or
 *	more spaces (trailing white space removed). Rejects NUL and other
 *	control characters (except TAB), and malformed UTF-8, with
 *	500 5.5.2. cl.has_8bit tells whether the argument holds non-ASCII
 *	(the caller allows that only where SMTPUTF8 applies).
 *	smtp_parse_mail(arg, len, flags, &mail, &err): "FROM:<path> params"
 *	(a space after the colon is tolerated, as Postfix does). ESMTP
 *	parameters: SIZE=n, BODY=7BIT|8BITMIME|BINARYMIME, SMTPUTF8
 *	(only with SMTP_PARSE_UTF8), RET=FULL|HDRS, ENVID=xtext,
 *	AUTH=xtext|<>. Keywords are case-insensitive; a repeated or unknown
 *	parameter is an error. A non-ASCII sender requires SMTPUTF8 in the
 *	same command (553 5.6.7).
 *	smtp_parse_rcpt(arg, len, flags, &rcpt, &err): "TO:<path> params"
 *	with NOTIFY=NEVER|SUCCESS,FAILURE,DELAY and ORCPT=addr-type;xtext.
 *	A bare local part ("<Postmaster>") is accepted. With
 *	SMTP_PARSE_UTF8 (the MAIL command said SMTPUTF8) the address may
 *	be UTF-8.
 *	smtp_parse_bdat(arg, len, &size, &last, &err): "n [LAST]".
 *	smtp_xtext_decode(s, len, out): RFC 3461 xtext ("+XX" escapes)
 *	appended to out; -1 on bad syntax or a decoded control character.
 *	Flags: SMTP_PARSE_UTF8 (SMTPUTF8 is offered / in effect),
 *	SMTP_PARSE_STRICT (require <> around paths; without it a path
 *	without brackets is tolerated like Postfix's
 *	strict_rfc821_envelopes = no).
 * ERRORS
 *	-1 with err->code (500, 501, 553, 555), err->dsn ("5.5.4") and
 *	err->text (the reply text without code, e.g. "Bad sender address
 *	syntax"), ready for smtp_reply().
 * OWNERSHIP
 *	smtp_mail_t, smtp_rcpt_t and smtp_err_t own their buffers: _init
 *	before use, _free after (both may be reused between calls; each
 *	parse resets them). cl.verb and cl.arg point into the caller's line.
 * LIMITS
 *	SIZE values above 2^64-1 saturate; ENVID at most 100 octets encoded,
 *	ORCPT at most 500, AUTH at most 500; path limits are addr.h's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

#define SMTP_VERB_MAX 16
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500
#define SMTP_AUTH_MAX 500

#define SMTP_PARSE_UTF8   1u
#define SMTP_PARSE_STRICT 2u

/* DSN NOTIFY flags; the same values as QFILE_NOTIFY_* (lib/queue). */
#define SMTP_NOTIFY_NEVER   1u
#define SMTP_NOTIFY_SUCCESS 2u
#define SMTP_NOTIFY_FAILURE 4u
#define SMTP_NOTIFY_DELAY   8u

typedef enum { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME } smtp_body_t;
typedef enum { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS } smtp_ret_t;

typedef struct smtp_err {
    int code;
    const char *dsn;
    buf_t text;
} smtp_err_t;

typedef struct smtp_cmdline {
    const char *verb;
    size_t verb_len;
    const char *arg;
    size_t arg_len;
    bool has_8bit;
} smtp_cmdline_t;

typedef struct smtp_mail {
    buf_t addr;             /* internal form; "" = null sender */
    bool size_set;
    uint64_t size;
    smtp_body_t body;
    bool smtputf8;
    smtp_ret_t ret;
    bool envid_set;
    buf_t envid;            /* decoded */
    bool auth_set;
    buf_t auth;             /* decoded; "<>" kept as is */
} smtp_mail_t;

typedef struct smtp_rcpt {
    buf_t addr;             /* internal form */
    unsigned notify;        /* SMTP_NOTIFY_*; 0 = not given */
    buf_t orcpt;            /* "addr-type;decoded", or empty */
} smtp_rcpt_t;

void smtp_err_init(smtp_err_t *err);
void smtp_err_free(smtp_err_t *err);
void smtp_mail_init(smtp_mail_t *m);
void smtp_mail_free(smtp_mail_t *m);
void smtp_rcpt_init(smtp_rcpt_t *r);
void smtp_rcpt_free(smtp_rcpt_t *r);

int smtp_parse_line(const char *line, size_t len, smtp_cmdline_t *cl, smtp_err_t *err);
bool smtp_verb_is(const smtp_cmdline_t *cl, const char *verb);
int smtp_parse_mail(const char *arg, size_t len, unsigned flags, smtp_mail_t *m, smtp_err_t *err);
int smtp_parse_rcpt(const char *arg, size_t len, unsigned flags, smtp_rcpt_t *r, smtp_err_t *err);
int smtp_parse_bdat(const char *arg, size_t len, uint64_t *size_r, bool *last_r, smtp_err_t *err);
int smtp_xtext_decode(const char *s, size_t len, buf_t *out);

#endif
