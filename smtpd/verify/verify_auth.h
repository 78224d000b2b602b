#ifndef STORK_SMTPD_VERIFY_AUTH_H
#define STORK_SMTPD_VERIFY_AUTH_H
/*
 * NAME
 *	verify_auth - SMTP AUTH credential checks for the verify service
 * DESCRIPTION
 *	verify_auth_new(conf): remembers $virtual_mailbox_maps and opens
 *	the tables (one that cannot be opened yet is retried on use).
 *	verify_auth_check(a, user, password, &why): looks the lower-cased
 *	user (the full address) up in the tables, first match wins, and
 *	checks the password against the entry's crypt(3) hash
 *	(lib/mail/vuser.h). Returns VERIFY_AUTH_OK, VERIFY_AUTH_BAD (no such
 *	user, no usable hash, or a wrong password: the client cannot tell
 *	which, and an unknown user costs a hash computation too) or
 *	VERIFY_AUTH_TEMP (a table failed; why says which, without the
 *	password). Tables replaced on disk are re-opened before a lookup.
 *	verify_auth_free(&a).
 * LIMITS
 *	Only virtual users: system users' passwords are in /etc/shadow,
 *	which needs root, and the verify service runs unprivileged.
 * SECURITY
 *	The password is never logged or copied here.
 */
#include "config/conf.h"

typedef enum { VERIFY_AUTH_OK = 0, VERIFY_AUTH_BAD = 1, VERIFY_AUTH_TEMP = 2 } verify_auth_status_t;
typedef struct verify_auth verify_auth_t;

verify_auth_t *verify_auth_new(conf_t *conf);
verify_auth_status_t verify_auth_check(verify_auth_t *a, const char *user, const char *password,
                                       const char **why_r);
void verify_auth_free(verify_auth_t **a);

#endif
