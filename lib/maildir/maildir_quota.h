#ifndef STORK_MAILDIR_QUOTA_H
#define STORK_MAILDIR_QUOTA_H
/*
 * NAME
 *	maildir_quota - Maildir++ storage quota (the "maildirsize" file)
 * SUMMARY
 *	The usage of a Maildir is cached in MAILDIR/maildirsize, in the
 *	Maildir++ format Courier and Dovecot share: a first line with the
 *	limit ("1000000S"), then lines "BYTES COUNT" (deltas, possibly
 *	negative) whose sums are the usage. Deliveries append one line with
 *	a single O_APPEND write, so concurrent writers do not corrupt it.
 *	The file is recalculated from the file names' S= sizes (stat() for
 *	names without one) in new/ and cur/ of the Maildir and of every
 *	Maildir++ folder (".Name/") when it is missing, malformed, larger
 *	than 5120 bytes, written for another limit, or when it says the
 *	mailbox is over quota and is older than 15 minutes (the Maildir++
 *	rules), and then replaced atomically (write tmp/, rename).
 * DESCRIPTION
 *	maildir_quota_check(dir, limit, add, &usage, &why): 0 when usage + add
 *	fits in limit, 1 when it does not (over quota), -1 on a system
 *	error (why). limit 0 means no quota: always 0, no file is touched.
 *	maildir_quota_add(dir, limit, bytes, count): records a delivery (or,
 *	with negative values, a removal); errors are ignored (the file is a
 *	cache and gets recalculated).
 *	maildir_quota_recalc(dir, limit, &usage, &why): rebuild the file.
 * LIMITS
 *	At most 5120 bytes of maildirsize are read; a scan stops after
 *	MAILDIR_QUOTA_MAX_FOLDERS folders.
 */
#include <stdint.h>

#define MAILDIR_QUOTA_MAX_FOLDERS 10000

typedef struct maildir_usage {
    int64_t bytes;
    int64_t count;
} maildir_usage_t;

int maildir_quota_check(const char *dir, uint64_t limit, uint64_t add, maildir_usage_t *usage_r,
                        const char **why_r);
void maildir_quota_add(const char *dir, uint64_t limit, int64_t bytes, int64_t count);
int maildir_quota_recalc(const char *dir, uint64_t limit, maildir_usage_t *usage_r,
                         const char **why_r);

#endif
