#ifndef STORK_VERIFY_ANVIL_H
#define STORK_VERIFY_ANVIL_H
/*
 * NAME
 *	verify_anvil - per-client connection counts for every smtpd
 * SUMMARY
 *	The verify service is one process per instance, and every smtpd
 *	already talks to it, so it keeps what Postfix's anvil keeps: for
 *	each client address, its open sessions and its connections in the
 *	current time unit (anvil_rate_time_unit).
 * DESCRIPTION
 *	verify_anvil_new(unit_ms, max_addrs): an empty table; at most
 *	max_addrs addresses are tracked (past that, connections are not
 *	counted and the caller gets zeros: smtpd then admits them).
 *	verify_anvil_connect(a, owner, addr, now_ms, &count, &rate): one
 *	more session from addr, held by owner (one per smtpd connection;
 *	*owner is made on first use); count and rate include it.
 *	verify_anvil_disconnect(a, owner, addr): one session of owner's
 *	from addr ends; an address owner never counted is ignored.
 *	verify_anvil_owner_free(a, owner): owner (its smtpd) went away:
 *	all of its sessions end.
 *	verify_anvil_sweep(a, now_ms): forget addresses with no session
 *	whose time unit has passed; returns how many are still tracked.
 */
#include <stddef.h>
#include <stdint.h>

typedef struct verify_anvil verify_anvil_t;
typedef struct verify_anvil_owner verify_anvil_owner_t;

verify_anvil_t *verify_anvil_new(int64_t unit_ms, size_t max_addrs);
void verify_anvil_free(verify_anvil_t **ap);
void verify_anvil_connect(verify_anvil_t *a, verify_anvil_owner_t **owner, const char *addr,
                          int64_t now_ms, uint64_t *count_r, uint64_t *rate_r);
void verify_anvil_disconnect(verify_anvil_t *a, verify_anvil_owner_t *owner, const char *addr);
void verify_anvil_owner_free(verify_anvil_t *a, verify_anvil_owner_t **owner);
size_t verify_anvil_sweep(verify_anvil_t *a, int64_t now_ms);

#endif
