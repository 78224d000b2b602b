#ifndef STORK_SMTPD_SMTPD_CIDR_H
#define STORK_SMTPD_SMTPD_CIDR_H
/*
 * NAME
 *	smtpd_cidr - IPv4/IPv6 network lists ($mynetworks)
 * SUMMARY
 *	smtpd_cidr_add(list, "192.0.2.0/24", &why): adds one entry. Accepted
 *	forms: an address ("192.0.2.1", "::1", "[::1]"), or an address and
 *	prefix length ("10.0.0.0/8", "[2001:db8::]/32", "2001:db8::/32").
 *	Bits of the address beyond the prefix must be zero (as Postfix
 *	insists: "10.1.2.3/8" is an error, it is almost always a typo).
 *	smtpd_cidr_match(list, "192.0.2.7"): is the textual address in any
 *	entry? An IPv4-mapped IPv6 address (::ffff:192.0.2.7) matches the
 *	IPv4 entries.
 *	smtpd_cidr_free(list): releases the entries.
 * ERRORS
 *	smtpd_cidr_add returns -1 with a static reason; nothing is added.
 *	smtpd_cidr_match returns false for a string that is not an address.
 * OWNERSHIP
 *	The list owns its entries. Initialize with {0}.
 */
#include <stdbool.h>
#include <stddef.h>

typedef struct smtpd_cidr_ent {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
} smtpd_cidr_ent_t;

typedef struct smtpd_cidr {
    smtpd_cidr_ent_t *v;
    size_t n;
} smtpd_cidr_t;

int smtpd_cidr_add(smtpd_cidr_t *list, const char *spec, const char **why_r);
bool smtpd_cidr_match(const smtpd_cidr_t *list, const char *addr);
void smtpd_cidr_free(smtpd_cidr_t *list);

#endif
