#ifndef STORK_MAIL_RESOLVE_H
#define STORK_MAIL_RESOLVE_H
/*
 * NAME
 *	resolve - where does a recipient address go? (one place, used by
 *	the verify service for smtpd's RCPT check and by qmgr to pick the
 *	transport, so the two can never disagree)
 * SUMMARY
 *	Input: an address in internal form (unquoted local part, '@',
 *	domain; "user" alone means user@$myorigin).
 *	Class:
 *	  RESOLVE_LOCAL   domain is empty, in $mydestination, or an address
 *	                  literal of this host ([127.0.0.1]); the local part
 *	                  (lower-cased, with any $recipient_delimiter
 *	                  extension removed) is known if it is in
 *	                  $alias_maps or is a system user (getpwnam).
 *	  RESOLVE_VIRTUAL domain in $virtual_mailbox_domains; known if the
 *	                  address is in $virtual_mailbox_maps or
 *	                  $virtual_alias_maps.
 *	  RESOLVE_REMOTE  anything else (relaying: smtpd's policy decides).
 *	Local parts containing '@', '%' or '!' are never rewritten (no
 *	%-hack, no bang paths, no source routes): they are just unknown
 *	users, so no trick can turn a local address into a relay.
 *	result.transport: "local" for LOCAL and VIRTUAL, "smtp" for REMOTE;
 *	result.nexthop: the domain (lower-cased).
 * DESCRIPTION
 *	resolve_new(conf, &why): opens the tables named by the parameters.
 *	A table that cannot be opened (e.g. aliases.db not built yet) is
 *	logged and makes lookups that need it fail (-1, a temporary error)
 *	until resolve_refresh() opens it; resolve_new itself does not fail.
 *	resolve_addr(r, addr, &res): fills res; returns 0, or -1 when a
 *	table lookup failed (res.why says why: a temporary error, 4.3.0).
 *	res.known is meaningful for LOCAL and VIRTUAL.
 *	resolve_refresh(r): re-opens every table that table_changed() or
 *	that failed to open (checks at most once a second; cheap enough to
 *	call before each request); returns how many were re-opened. Inside
 *	a chroot the paths may not resolve; the old tables then stay.
 * DETAILS
 *	The address is split at its last '@'. Domain lists
 *	(mydestination, virtual_mailbox_domains) take names, "/file" (its
 *	words) and "type:table" entries (the domain is the key). Address
 *	literals are this host when they are loopback, an address in
 *	$inet_interfaces, or (inet_interfaces = all) any interface address
 *	(getifaddrs at resolve_new). Known LOCAL: the lower-cased local part
 *	is looked up in $alias_maps then getpwnam, first as is
 *	("user+ext"), then with the extension removed ("user"), as Postfix
 *	does; only plausible names (1..64 bytes, no '/', '@', '%', '!' or
 *	control characters) are looked up. Known VIRTUAL: "local@domain",
 *	then "user@domain" without extension, then the "@domain" catch-all,
 *	each in $virtual_mailbox_maps then $virtual_alias_maps.
 *	"postmaster" (any case, also with an extension) is always known in
 *	LOCAL and VIRTUAL domains (RFC 5321 4.5.1).
 * OWNERSHIP
 *	res.nexthop and res.why are owned by r and valid until the next call.
 */
#include <stdbool.h>
#include "config/conf.h"

typedef enum { RESOLVE_LOCAL, RESOLVE_VIRTUAL, RESOLVE_REMOTE } resolve_class_t;

typedef struct resolve_result {
    resolve_class_t cls;
    bool known;
    const char *transport;
    const char *nexthop;
    const char *why;
} resolve_result_t;

typedef struct resolve resolve_t;

resolve_t *resolve_new(conf_t *conf, const char **why_r);
int resolve_addr(resolve_t *r, const char *addr, resolve_result_t *res);
int resolve_refresh(resolve_t *r);
const char *resolve_class_name(resolve_class_t cls);
void resolve_free(resolve_t **r);

#endif
