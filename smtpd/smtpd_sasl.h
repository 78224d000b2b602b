#ifndef STORK_SMTPD_SMTPD_SASL_H
#define STORK_SMTPD_SMTPD_SASL_H
/*
 * NAME
 *	smtpd_sasl - pure parsers for SMTP AUTH (RFC 4954) responses
 * SUMMARY
 *	Bytes in, a result or an error out: no I/O, no globals.
 * DESCRIPTION
 *	smtpd_sasl_mech(name, len): SMTPD_SASL_PLAIN, SMTPD_SASL_LOGIN or
 *	SMTPD_SASL_NONE (case-insensitive).
 *	smtpd_sasl_b64decode(in, len, out, &why): strict RFC 4648 base64
 *	(padding required, no white space) appended to out; "=" alone is
 *	the empty response (RFC 4954 4). 0, or -1 with why.
 *	smtpd_sasl_plain(p, n, &res, &why): split a decoded PLAIN message
 *	(RFC 4616: [authzid] NUL authcid NUL passwd) into res, whose
 *	pointers/lengths point into p. The authcid must be non-empty and
 *	printable; the password non-empty; no NUL after the second one.
 *	smtpd_sasl_login_value(p, n, user, &why): a decoded LOGIN user name
 *	(user: printable, no spaces) or password: non-empty, within the
 *	limit, no NUL. 0 or -1.
 * LIMITS
 *	SMTPD_SASL_USER_MAX bytes of user name, SMTPD_SASL_PASS_MAX of
 *	password; smtpd bounds the base64 line by line_length_limit.
 * SECURITY
 *	The caller owns the decoded password and wipes it
 *	(explicit_bzero) when done; why strings never quote input.
 */
#include <stdbool.h>
#include <stddef.h>
#include "util/buf.h"

#define SMTPD_SASL_USER_MAX 320
#define SMTPD_SASL_PASS_MAX 1024

typedef enum { SMTPD_SASL_NONE, SMTPD_SASL_PLAIN, SMTPD_SASL_LOGIN } smtpd_sasl_mech_t;

typedef struct smtpd_sasl_plain {
    const char *authzid, *authcid, *passwd;
    size_t authzid_len, authcid_len, passwd_len;
} smtpd_sasl_plain_t;

smtpd_sasl_mech_t smtpd_sasl_mech(const char *name, size_t len);
const char *smtpd_sasl_mech_name(smtpd_sasl_mech_t mech);
int smtpd_sasl_b64decode(const char *in, size_t len, buf_t *out, const char **why_r);
int smtpd_sasl_plain(const char *p, size_t n, smtpd_sasl_plain_t *res, const char **why_r);
int smtpd_sasl_login_value(const char *p, size_t n, bool user, const char **why_r);

#endif
