#ifndef STORK_DNS_DNS_H
#define STORK_DNS_DNS_H
/*
 * NAME
 *	dns - asynchronous DNS lookups on the event loop, validated or not
 * SUMMARY
 *	One API over two resolvers: c-ares for ordinary lookups (MX, A,
 *	AAAA, PTR, TXT, DNSBL) and libunbound for DNSSEC-validated ones
 *	(TLSA for DANE, MX/A/AAAA when DANE applies). Whether an answer is
 *	authenticated is decided here and only here: result->secure is true
 *	only for an answer libunbound validated, never for c-ares' answers
 *	(an AD bit from the network is not trusted).
 * DESCRIPTION
 *	dns_ctx_new(loop, servers, anchor_file, &why): servers is a
 *	NULL-terminated list of "ip", "ip:port" or "[ipv6]:port" (main.cf
 *	dns_servers), used by both resolvers; NULL or empty means the
 *	system's /etc/resolv.conf for c-ares, and full recursion from the
 *	root for libunbound. anchor_file (dnssec_trust_anchor_file) holds
 *	DS or DNSKEY lines for the root (or any other trust point); it is
 *	read now, so a daemon may chroot afterwards. NULL or "" disables
 *	validated lookups (they then fail with DNS_TEMPFAIL). Returns NULL
 *	with why on a bad server list or an unreadable anchor file.
 *	dns_ctx_set_timeout(ctx, ms): the most any one lookup may take
 *	before its callback gets DNS_TEMPFAIL (default DNS_DEF_TIMEOUT_MS).
 *	dns_ctx_free(&ctx): pending lookups are dropped without callbacks.
 *	Must not be called from inside a dns callback.
 *
 *	dns_lookup(ctx, name, type, flags, cb, arg) starts a lookup and
 *	returns its handle. flags DNS_F_VALIDATE sends it through the
 *	validating resolver. cb(result, arg) runs exactly once, from the
 *	event loop and never from inside dns_lookup, unless the lookup is
 *	cancelled first. The handle is invalid once cb has started.
 *	dns_cancel(ctx, &q) cancels a pending lookup (cb never runs) and
 *	NULLs the handle. A callback may start or cancel other lookups.
 *
 *	The result: status is DNS_OK (at least one record of the type),
 *	DNS_NXDOMAIN, DNS_NODATA (the name exists, no record of the type),
 *	DNS_TEMPFAIL (SERVFAIL, REFUSED, time-out, network or malformed
 *	reply: try later), or DNS_BOGUS (validation failed: an attack or a
 *	broken zone; treat as a temporary failure, and never use the data).
 *	why is a short text for logs when status is not DNS_OK/NXDOMAIN/
 *	NODATA. secure: see SUMMARY; it is also meaningful for NXDOMAIN and
 *	NODATA (authenticated denial). canon is the name the records belong
 *	to after CNAMEs. rr[0..nrr) are the records of the requested type:
 *	  MX    rr.pref, rr.host ("." for the null MX's root)
 *	  A/AAAA rr.addr (sockaddr_in/sockaddr_in6, port 0)
 *	  PTR   rr.host
 *	  TXT   rr.data/rr.data_len: the character-strings joined, NUL-
 *	        terminated (may contain other NULs: use data_len)
 *	  TLSA  rr.usage, rr.selector, rr.mtype, rr.data/rr.data_len
 *	Names are without the final dot, as received (compare them
 *	case-insensitively).
 *
 *	Helpers (pure): dns_mx_sort(res, seed) sorts MX records by preference
 *	and shuffles equal preferences (RFC 5321 5.1); seed 0 takes a random
 *	seed, another seed gives a repeatable order (tests).
 *	dns_mx_is_null(res): the RFC 7505 null MX (exactly one MX, preference
 *	0, host "."). dns_rev_name(sa, suffix, buf): the reverse name of an
 *	address, "4.3.2.1.in-addr.arpa" (suffix NULL) or "4.3.2.1.zen.example"
 *	for DNSBLs. dns_type_name(type)/dns_status_name(status) for logs.
 *	dns_result_dup / dns_result_free copy a result to keep it past the
 *	callback.
 * ERRORS
 *	dns_lookup never fails synchronously: a bad name or type reaches the
 *	callback as DNS_TEMPFAIL with why, like every other error.
 * OWNERSHIP
 *	The result passed to a callback is borrowed: it and everything it
 *	points to are freed when the callback returns. dns_result_dup makes
 *	a copy the caller owns (free with dns_result_free).
 * LIMITS
 *	Names at most 253 characters; at most DNS_MAX_RR records per
 *	result (further ones are ignored); CNAME chains at most 8 long;
 *	replies at most 64 KiB; each lookup bounded by the context timeout.
 * SECURITY
 *	Replies are parsed by our own bounded parser (dns_reply.h) from the
 *	wire bytes of both resolvers. A test or split-horizon site sets
 *	dns_servers so that no query leaves the given servers:
 *	/etc/resolv.conf is then never read.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "event/event.h"

#define DNS_T_A     1
#define DNS_T_NS    2
#define DNS_T_CNAME 5
#define DNS_T_PTR   12
#define DNS_T_MX    15
#define DNS_T_TXT   16
#define DNS_T_AAAA  28
#define DNS_T_TLSA  52

#define DNS_F_VALIDATE 1u

#define DNS_MAX_RR 100
#define DNS_MAX_NAME 253
#define DNS_DEF_TIMEOUT_MS 10000

typedef enum {
    DNS_OK, DNS_NXDOMAIN, DNS_NODATA, DNS_TEMPFAIL, DNS_BOGUS
} dns_status_t;

typedef struct dns_rr {
    uint16_t type;
    uint32_t ttl;
    uint16_t pref;                  /* MX */
    char *host;                     /* MX exchange, PTR target */
    struct sockaddr_storage addr;   /* A, AAAA */
    uint8_t usage, selector, mtype; /* TLSA */
    unsigned char *data;            /* TLSA association data, TXT text */
    size_t data_len;
} dns_rr_t;

typedef struct dns_result {
    dns_status_t status;
    bool secure;
    uint16_t type;
    char *name;                     /* as asked */
    char *canon;                    /* after CNAMEs */
    const char *why;                /* static or owned by the result */
    dns_rr_t *rr;
    size_t nrr;
    char *why_owned;                /* internal: storage behind why */
} dns_result_t;

typedef struct dns_ctx dns_ctx_t;
typedef struct dns_query dns_query_t;
typedef void dns_cb_fn(const dns_result_t *res, void *arg);

dns_ctx_t *dns_ctx_new(event_loop_t *loop, const char *const *servers,
                       const char *anchor_file, const char **why_r);
void dns_ctx_set_timeout(dns_ctx_t *ctx, int ms);
void dns_ctx_free(dns_ctx_t **ctx);
dns_query_t *dns_lookup(dns_ctx_t *ctx, const char *name, uint16_t type,
                        unsigned flags, dns_cb_fn *cb, void *arg);
void dns_cancel(dns_ctx_t *ctx, dns_query_t **q);

void dns_mx_sort(dns_result_t *res, uint64_t seed);
bool dns_mx_is_null(const dns_result_t *res);
int dns_rev_name(const struct sockaddr *sa, const char *suffix, char *buf,
                 size_t size);
const char *dns_type_name(uint16_t type);
const char *dns_status_name(dns_status_t status);
dns_result_t *dns_result_dup(const dns_result_t *res);
void dns_result_free(dns_result_t **res);
/* dns_result_clear - free what a result points to (internal and parser) */
void dns_result_clear(dns_result_t *res);

#endif
