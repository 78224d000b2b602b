#ifndef STORK_MAIL_VUSER_H
#define STORK_MAIL_VUSER_H
/*
 * NAME
 *	vuser - the virtual users table value: password hash, Maildir, quota
 * SUMMARY
 *	The table named by $virtual_mailbox_maps maps a full address
 *	(lower-case, "user@example.com") to
 *	    PASSWORD_HASH:MAILDIR:QUOTA
 *	PASSWORD_HASH  a crypt(3) string ("$y$...", "$6$..."); empty, or
 *	               starting with '!' or '*', means no login (mail is
 *	               still delivered).
 *	MAILDIR        relative to $virtual_mailbox_base, or absolute but
 *	               then inside $virtual_mailbox_base; a trailing '/'
 *	               means Maildir, without it an mbox file. No "." or
 *	               ".." components, no control characters.
 *	QUOTA          bytes with optional k/m/g suffix (1024 units); empty
 *	               or 0 means unlimited.
 *	The hash is split at the first ':' and the quota at the last, so
 *	the MAILDIR may itself contain ':'. Local delivery, imapd and pop3d
 *	all read this one format.
 * DESCRIPTION
 *	vuser_parse(value, &vu, &why): 0, or -1 with why (static text) for
 *	a malformed value. Pure: no I/O.
 *	vuser_maildir_path(base, &vu, &path, &why): the absolute mailbox
 *	path in path (with its trailing '/' for Maildir); -1 with why when
 *	it would escape base or base is not absolute.
 *	vuser_check_password(&vu, plain): true only when the hash is
 *	usable and crypt_r(plain, hash) equals it (compared in constant
 *	time).
 * OWNERSHIP
 *	vuser_parse allocates the strings in vu; vuser_clear frees them
 *	(and may be called on a zeroed or already cleared vuser_t).
 * LIMITS
 *	VUSER_MAX_VALUE bytes per value; VUSER_MAX_PASSWORD bytes of
 *	plain-text password; the path at most PATH_MAX bytes.
 * SECURITY
 *	The path check is textual; the caller opens the mailbox as the
 *	mailbox owner (vmail), never as root, so a symlink planted inside
 *	base cannot reach files vmail may not write.
 */
#include <stdbool.h>
#include <stdint.h>
#include "util/buf.h"

#define VUSER_MAX_VALUE 4096
#define VUSER_MAX_PASSWORD 1024

typedef struct vuser {
    char *password_hash;    /* "" = no login */
    char *maildir;          /* as written in the table */
    bool is_maildir;        /* trailing '/' */
    uint64_t quota;         /* bytes; 0 = unlimited */
} vuser_t;

int vuser_parse(const char *value, vuser_t *vu, const char **why_r);
int vuser_maildir_path(const char *base, const vuser_t *vu, buf_t *path_r, const char **why_r);
bool vuser_check_password(const vuser_t *vu, const char *plain);
void vuser_clear(vuser_t *vu);

#endif
