#ifndef STORK_MAILDIR_DELIVER_H
#define STORK_MAILDIR_DELIVER_H
/*
 * NAME
 *	maildir_deliver - durable delivery of one message into a Maildir
 * SUMMARY
 *	The Maildir protocol: create MAILDIR/{tmp,new,cur} if new/ is
 *	missing (0700; as Postfix, only then: the common case costs no
 *	mkdir or stat; a missing tmp/ is made when its file cannot be
 *	created), write tmp/NAME (O_EXCL), link() it to new/NAME,S=..,W=..
 *	(link never replaces an existing file; a collision retries with a
 *	new name), unlink the tmp name, then fsync the file: one flush, which
 *	on ext4, XFS and btrfs also makes the new/ name durable (see
 *	link_then_sync). With maildir_set_dir_sync(true)
 *	(maildir_directory_fsync = yes): fsync tmp/NAME, link, unlink, fsync
 *	new/ (through the descriptor opened first). Only after the last
 *	flush is the delivery reported as done. On any error the tmp file is
 *	removed and nothing stays in new/.
 * DESCRIPTION
 *	maildir_deliver(dir, in, res): in->prepend (header lines, already
 *	with LF line ends) is written first (in one writev with the first
 *	block of content), then in->length bytes of in->fd
 *	from in->offset, read with pread() in blocks (never the whole
 *	message in memory, and the fd's offset is not used, so the fd may
 *	be shared). With in->crlf_to_lf, every CR LF pair becomes LF (the
 *	queue keeps SMTP's CRLF; Maildir files use LF as Dovecot and Postfix
 *	write them); every other byte is copied as is (8-bit intact).
 *	With in->quota > 0, the Maildir++ quota is checked first
 *	(maildir_quota.h) against the size the file will have, and updated
 *	after the delivery.
 *	Returns 0 with res->path (new/ path) and res->size, or -1 with
 *	res->dsn (an RFC 3463 code) and res->why:
 *	  over in->quota, EDQUOT, EFBIG  4.2.2 "mailbox full"
 *	  ENOSPC                         4.3.1 "mail system full"
 *	  content shorter than length    4.3.0 (the queue file is damaged)
 *	  anything else                  4.2.0 (with the system error)
 *	All are temporary: qmgr retries and bounces after the queue
 *	lifetime.
 * OWNERSHIP
 *	maildir_result_free releases res->path and res->why.
 * SECURITY
 *	Runs with the privileges of the mailbox owner; it opens files with
 *	O_NOFOLLOW and never follows a symlink for tmp/ or new/ entries.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/buf.h"

typedef struct maildir_input {
    const char *prepend;        /* may be NULL */
    size_t prepend_len;
    int fd;                     /* content source */
    off_t offset;
    uint64_t length;
    bool crlf_to_lf;
    uint64_t quota;             /* bytes, 0 = none */
} maildir_input_t;

typedef struct maildir_result {
    char dsn[8];                /* "4.2.2" on error */
    buf_t why;                  /* text on error */
    buf_t path;                 /* the delivered file */
    uint64_t size;              /* bytes written */
} maildir_result_t;

void maildir_result_init(maildir_result_t *res);
void maildir_result_free(maildir_result_t *res);
int maildir_deliver(const char *dir, const maildir_input_t *in, maildir_result_t *res);
/* maildir_set_dir_sync - maildir_directory_fsync: the two-flush order
 * (fsync the file, link, fsync new/) instead of link, then fsync */
void maildir_set_dir_sync(bool on);
/* maildir_make - create dir and its tmp/new/cur (0700); -1 with errno */
int maildir_make(const char *dir);

#endif
