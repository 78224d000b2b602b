#ifndef STORK_TOOLS_CLI_SUBMIT_H
#define STORK_TOOLS_CLI_SUBMIT_H
/*
 * NAME
 *	cli_submit - local submission into maildrop/ (sendmail, sendmail -bs)
 * DESCRIPTION
 *	cli_submit_message(s, content, len, rcpts, extract, qid_r, &why):
 *	content is a whole message with CRLF line ends. With extract
 *	(sendmail -t) the To/Cc/Bcc recipients are added to rcpts. Bcc is
 *	removed; missing Message-Id, Date and From headers are added as
 *	Postfix's cleanup does for local mail ("From: Full Name <sender>").
 *	Unqualified addresses get @$myorigin. The file is written as
 *	maildrop/t.QID, made readable (0444: pickup runs as mail_owner,
 *	not as the submitting user), fsync'd, renamed to maildrop/QID and
 *	the directory fsync'd; then pickup is woken (best effort). Returns
 *	0, or a sysexits code with why: EX_USAGE (no recipients), EX_NOUSER
 *	(bad recipient), EX_DATAERR (bad sender, header syntax, too big),
 *	EX_TEMPFAIL or EX_CANTCREAT (the queue).
 *	cli_submit_qualify(addr, origin): a new string, addr with
 *	"@origin" appended when it has no domain.
 *	Addresses are checked with addr_internal_ok (lib/mail/addr.h) and
 *	dates written with mail_date (lib/mail/mail_date.h).
 *	cli_phrase(out, name): a display name, quoted when it has specials.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "cli_hdr.h"
#include "queue/qid.h"


typedef struct cli_submit {
    const char *queue_dir;
    const char *myorigin;
    const char *myhostname;
    uint64_t size_limit;        /* 0 = none */
    const char *sender;         /* internal form, "" = null sender */
    const char *full_name;      /* NULL or "" = none */
    uid_t uid;
} cli_submit_t;

int cli_submit_message(const cli_submit_t *s, const char *content, size_t len,
                       cli_addr_list_t *rcpts, bool extract, char qid_r[QID_BUFSIZE],
                       const char **why_r);
char *cli_submit_qualify(const char *addr, const char *origin);
void cli_phrase(buf_t *out, const char *name);
void cli_submit_wake_pickup(const char *queue_dir);

#endif
