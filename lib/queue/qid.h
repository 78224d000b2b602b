#ifndef STORK_QUEUE_QID_H
#define STORK_QUEUE_QID_H
/*
 * NAME
 *	qid - queue ids: unique, short, sortable by arrival time
 * DESCRIPTION
 *	A queue id is QID_LEN characters from [0-9A-V] (base32, ordered):
 *	11 characters of microseconds since the epoch, then 5 of a
 *	per-process value (pid and a sequence number), so that ids made in
 *	one microsecond by different processes differ, and ids sort by
 *	time. Uniqueness is finally guaranteed by creating the queue file
 *	with O_EXCL and retrying with a new id.
 *	qid_new(buf): writes a new id and NUL into buf[QID_BUFSIZE].
 *	qid_valid(s): true if s is a well-formed id (use before building a
 *	path from a client- or peer-supplied id).
 *	qid_time(s, &sec, &usec): the creation time encoded in an id.
 */
#include <stdbool.h>
#include <stdint.h>

#define QID_LEN 16
#define QID_BUFSIZE (QID_LEN + 1)

void qid_new(char buf[QID_BUFSIZE]);
bool qid_valid(const char *s);
int qid_time(const char *s, int64_t *sec_r, int32_t *usec_r);

#endif
