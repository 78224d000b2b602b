#ifndef STORK_DNS_DNS_REPLY_H
#define STORK_DNS_DNS_REPLY_H
/*
 * NAME
 *	dns_reply - pure parser for DNS replies in wire format
 * SUMMARY
 *	Bytes in, dns_result_t out. Both resolvers hand lib/dns the wire
 *	reply, so one bounded parser reads every answer.
 * DESCRIPTION
 *	dns_reply_parse(pkt, len, qname, qtype, res, &why) checks the header
 *	and the question (one question, qname and qtype as asked, case-
 *	insensitively), maps the rcode (NOERROR → DNS_OK or DNS_NODATA,
 *	NXDOMAIN → DNS_NXDOMAIN, anything else → DNS_TEMPFAIL), follows
 *	CNAMEs from qname through the answer section, and collects the
 *	records of qtype owned by the end of that chain into res (see dns.h
 *	for the per-type fields). res->secure is left false: deciding it is
 *	the caller's job. res must be zeroed or cleared first.
 *	dns_name_expand(pkt, len, &off, out, size) reads a possibly
 *	compressed name at *off, advances *off past it, and writes its
 *	presentation form (no final dot; "." for the root; '.', '\\' and
 *	bytes outside printable ASCII in a label escaped as \. \\ \DDD).
 * ERRORS
 *	dns_reply_parse returns -1 with why on a malformed reply, res->status
 *	then DNS_TEMPFAIL; otherwise 0. dns_name_expand returns -1 on a
 *	truncated name, a compression loop or a forward pointer, or a name
 *	longer than size allows.
 * OWNERSHIP
 *	res owns what the parser puts in it (dns_result_clear frees it).
 * LIMITS
 *	DNS_MAX_RR records, 8 CNAMEs, 255-byte names, 128 compression jumps.
 */
#include <stddef.h>
#include <stdint.h>
#include "dns/dns.h"

#define DNS_NAME_BUFSIZE 1024   /* presentation form, escapes included */

int dns_reply_parse(const unsigned char *pkt, size_t len, const char *qname,
                    uint16_t qtype, dns_result_t *res, const char **why_r);
int dns_name_expand(const unsigned char *pkt, size_t len, size_t *off,
                    char *out, size_t size);

#endif
