#ifndef STORK_TOOLS_CLI_FMT_H
#define STORK_TOOLS_CLI_FMT_H
/*
 * NAME
 *	cli_fmt - queue listing formats shared by storkqueue and mailq
 * SUMMARY
 *	Pure formatting: entries in, text out. No I/O.
 * DESCRIPTION
 *	cli_qentry_t is one message as the CLI shows it (from qmgr's
 *	QUEUE_ENTRY frames or from reading a queue file): queue name,
 *	queue id, arrival (unix seconds), content size, sender (internal
 *	form, "" for the null sender) and the recipients still pending,
 *	each with its deferral reason ("" when there is none).
 *
 *	cli_fmt_mailq_header/entry/trailer append Postfix's mailq
 *	(postqueue -p) layout. Stork queue ids are 16 characters, so the
 *	layout is Postfix's long-queue-id one (enable_long_queue_ids =
 *	yes): "%-17s %8s %-19s %s" columns. An active message's id gets
 *	'*', a held one '!'. A "(reason)" line, right-aligned to column
 *	76, goes above a recipient whose reason differs from the previous
 *	recipient's. The trailer is "-- N Kbytes in M Request(s)." or
 *	"Mail queue is empty". Times are asctime(localtime()).
 *	cli_fmt_json_entry appends one postqueue -j object and a newline:
 *	queue_name, queue_id, arrival_time, message_size, forced_expire,
 *	sender, recipients [{address, delay_reason (only when set)}].
 *	cli_fmt_json_quote appends a JSON string body (no quotes).
 *	cli_fmt_printable appends s with control characters and invalid
 *	UTF-8 replaced by '?', so queue data can never forge a line.
 *	cli_fmt_quote_local appends an address with its local part quoted
 *	per RFC 5322 when it needs it (what an admin can paste back).
 *	Addresses are shown as Postfix shows them: the null sender is
 *	"MAILER-DAEMON".
 *	cli_fmt_utf8_len: length of a valid UTF-8 sequence at p (1..4), or
 *	0 if the bytes there are not valid UTF-8.
 * OWNERSHIP
 *	cli_qentry_free releases the strings and the recipient array.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

typedef struct cli_qrcpt {
    char *addr;
    char *reason;
} cli_qrcpt_t;

typedef struct cli_qentry {
    char *queue;
    char *qid;
    int64_t arrival;
    uint64_t size;
    bool forced_expire;
    char *sender;
    cli_qrcpt_t *rcpts;
    size_t nrcpts;
} cli_qentry_t;

void cli_qentry_add_rcpt(cli_qentry_t *e, const char *addr, const char *reason);
void cli_qentry_free(cli_qentry_t *e);

size_t cli_fmt_utf8_len(const unsigned char *p, size_t n);
void cli_fmt_printable(buf_t *out, const char *s);
void cli_fmt_quote_local(buf_t *out, const char *addr);
void cli_fmt_json_quote(buf_t *out, const char *s);

void cli_fmt_mailq_header(buf_t *out);
void cli_fmt_mailq_entry(buf_t *out, const cli_qentry_t *e);
void cli_fmt_mailq_trailer(buf_t *out, uint64_t total_size, size_t count);
void cli_fmt_json_entry(buf_t *out, const cli_qentry_t *e);

#endif
