#ifndef STORK_TOOLS_SENDMAIL_BS_H
#define STORK_TOOLS_SENDMAIL_BS_H
/*
 * NAME
 *	sendmail_bs - sendmail -bs: an SMTP session on stdin/stdout
 * DESCRIPTION
 *	sendmail_bs(s, in, out): RFC 5321 server side of one session
 *	(EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY, HELP) with
 *	PIPELINING, SIZE, 8BITMIME and ENHANCEDSTATUSCODES. Each message
 *	is dot-unstuffed and queued with cli_submit_message using the
 *	MAIL FROM sender (s->sender is the default identity only for the
 *	From: header's full name). Returns 0 at QUIT or end of input.
 * LIMITS
 *	Command lines BS_LINE_MAX bytes, BS_MAX_RCPTS recipients per
 *	message, BS_MAX_ERRORS errors per session, message size
 *	s->size_limit.
 */
#include <stdio.h>
#include "cli_submit.h"

#define BS_LINE_MAX 4096
#define BS_DATA_LINE_MAX (1024 * 1024)
#define BS_MAX_RCPTS 1000
#define BS_MAX_ERRORS 20

int sendmail_bs(const cli_submit_t *s, FILE *in, FILE *out);

#endif
