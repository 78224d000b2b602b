#ifndef STORK_MAILDIR_NAME_H
#define STORK_MAILDIR_NAME_H
/*
 * NAME
 *	maildir_name - unique Maildir file names (the layout Dovecot and
 *	Courier use)
 * SUMMARY
 *	A base name is "SECONDS.M<usec>P<pid>Q<seq>.HOST": the time, the
 *	microseconds, the process id and a per-process delivery counter, so
 *	that two names made by one host never collide even within one
 *	microsecond. HOST is gethostname() with '/' written as \057 and ':'
 *	as \072 (the two characters a Maildir name cannot hold).
 *	A delivered file's name adds ",S=<size>" (bytes on disk) and
 *	",W=<vsize>" (size with CRLF line ends, what IMAP's RFC822.SIZE
 *	reports), as Dovecot does, so that quota and size are known
 *	without stat().
 * DESCRIPTION
 *	maildir_name_new(out): appends a new base name to out.
 *	maildir_name_sizes(out, size, vsize): appends ",S=size,W=vsize".
 *	maildir_name_size(name, &size): the S= value of a file name (also
 *	with a ":2,FLAGS" suffix); -1 if there is none.
 *	maildir_name_escape_host(out, host): the escaping above (exposed for
 *	tests).
 * LIMITS
 *	The host name is cut at 255 bytes.
 */
#include <stdint.h>
#include "util/buf.h"

void maildir_name_new(buf_t *out);
void maildir_name_sizes(buf_t *out, uint64_t size, uint64_t vsize);
int maildir_name_size(const char *name, uint64_t *size_r);
void maildir_name_escape_host(buf_t *out, const char *host);

#endif
