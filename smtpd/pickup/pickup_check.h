#ifndef STORK_PICKUP_CHECK_H
#define STORK_PICKUP_CHECK_H
/*
 * NAME
 *	pickup_check - pickup's pure parts: what a maildrop file may
 *	contain, and the bytes pickup adds
 * SUMMARY
 *	A maildrop file is written by any local user: every field in it is
 *	untrusted. These functions decide, without I/O, whether its
 *	envelope is acceptable and shape what goes into the real queue file.
 * DESCRIPTION
 *	pickup_check(qf, size_limit, &why): 0 if the envelope is acceptable:
 *	the sender is empty or a syntactically valid address, there is at
 *	least one recipient and each is valid, each ORCPT is printable,
 *	and content_size <= size_limit (0 = no limit). -1 with why.
 *	Addresses are checked with addr_internal_ok (lib/mail/addr.h).
 *	pickup_full_name(s): s when it is an acceptable display name
 *	(printable, at most PICKUP_NAME_MAX bytes), else NULL (dropped).
 *	pickup_received(out, host, uid, qid, t): Postfix's pickup
 *	Received: header, CRLF line ends:
 *	  "Received: by HOST (Stork, from userid UID)\r\n\tid QID; DATE\r\n"
 *	pickup_crlf(st, in, n, out): copies content, turning a LF that is
 *	not preceded by CR into CRLF (state carries across chunks, so the
 *	content can be copied in pieces); pickup_crlf_init(st) first.
 * LIMITS
 *	PICKUP_ADDR_MAX, PICKUP_NAME_MAX.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "queue/qfile.h"
#include "util/buf.h"

#define PICKUP_ADDR_MAX 998
#define PICKUP_NAME_MAX 256

typedef struct pickup_crlf {
    bool last_cr;
} pickup_crlf_t;

int pickup_check(const qfile_t *qf, uint64_t size_limit, const char **why_r);
const char *pickup_full_name(const char *s);
void pickup_received(buf_t *out, const char *host, uid_t uid, const char *qid, time_t t);
void pickup_crlf_init(pickup_crlf_t *st);
void pickup_crlf(pickup_crlf_t *st, const char *in, size_t n, buf_t *out);

#endif
