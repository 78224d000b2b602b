/* dns_reply.c - pure parser for DNS replies in wire format (see dns_reply.h) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "dns/dns_reply.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define HDR_LEN 12
#define MAX_JUMPS 128
#define MAX_CNAME 8
#define RCODE_NOERROR 0
#define RCODE_NXDOMAIN 3
#define CLASS_IN 1

/* get16/get32 - big-endian reads; the caller checked the bounds */
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* put_label_byte - append one label byte in presentation form */
static int put_label_byte(char *out, size_t size, size_t *n, unsigned char c)
{
    char esc[5];
    const char *s = esc;
    size_t k;

    if (c == '.' || c == '\\') {
        esc[0] = '\\'; esc[1] = (char)c; esc[2] = 0;
    } else if (c <= 0x20 || c >= 0x7f) {
        snprintf(esc, sizeof(esc), "\\%03u", c);
    } else {
        esc[0] = (char)c; esc[1] = 0;
    }
    k = strlen(s);
    if (*n + k + 1 > size)
        return -1;
    memcpy(out + *n, s, k);
    *n += k;
    out[*n] = 0;
    return 0;
}

/* dns_name_expand - read a (compressed) name at *off into out */
int dns_name_expand(const unsigned char *pkt, size_t len, size_t *off,
                    char *out, size_t size)
{
    size_t pos = *off, n = 0, wire_len = 1, end = 0;
    int jumps = 0;
    bool jumped = false;

    if (size < 2)
        return -1;
    out[0] = 0;
    for (;;) {
        if (pos >= len)
            return -1;
        unsigned char l = pkt[pos];
        if ((l & 0xC0) == 0xC0) {
            if (pos + 1 >= len || ++jumps > MAX_JUMPS)
                return -1;
            size_t target = (size_t)(l & 0x3F) << 8 | pkt[pos + 1];
            /* Pointers go backwards only: no loops, no forward tricks. */
            if (target >= pos)
                return -1;
            if (!jumped)
                end = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (l & 0xC0)
            return -1;              /* 0x40/0x80: obsolete label types */
        if (l == 0) {
            pos++;
            break;
        }
        if (pos + 1 + l > len)
            return -1;
        wire_len += (size_t)l + 1;
        if (wire_len > 255)
            return -1;
        if (n > 0) {
            if (n + 2 > size)
                return -1;
            out[n++] = '.';
            out[n] = 0;
        }
        for (size_t i = 0; i < l; i++)
            if (put_label_byte(out, size, &n, pkt[pos + 1 + i]) < 0)
                return -1;
        pos += 1 + (size_t)l;
    }
    if (n == 0) {
        out[0] = '.';
        out[1] = 0;
    }
    *off = jumped ? end : pos;
    return 0;
}

/* name_eq - compare two presentation names, ignoring case and a final dot */
static bool name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 1 && a[la - 1] == '.')
        la--;
    if (lb > 1 && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* rr_hdr_t - one record's owner, fixed fields and where its data is */
typedef struct rr_hdr {
    char owner[DNS_NAME_BUFSIZE];
    uint16_t type, class;
    uint32_t ttl;
    size_t rdata, rdlen;
} rr_hdr_t;

/* read_rr - read one record header; rdata is left at hdr->rdata */
static int read_rr(const unsigned char *pkt, size_t len, size_t *off, rr_hdr_t *h)
{
    if (dns_name_expand(pkt, len, off, h->owner, sizeof(h->owner)) < 0)
        return -1;
    if (*off + 10 > len)
        return -1;
    h->type = get16(pkt + *off);
    h->class = get16(pkt + *off + 2);
    h->ttl = get32(pkt + *off + 4);
    h->rdlen = get16(pkt + *off + 8);
    h->rdata = *off + 10;
    if (h->rdata + h->rdlen > len)
        return -1;
    *off = h->rdata + h->rdlen;
    return 0;
}

/* parse_rdata - decode one record of a type we know into rr */
static int parse_rdata(const unsigned char *pkt, size_t len, const rr_hdr_t *h,
                       dns_rr_t *rr)
{
    const unsigned char *p = pkt + h->rdata;
    char name[DNS_NAME_BUFSIZE];
    size_t off;

    memset(rr, 0, sizeof(*rr));
    rr->type = h->type;
    rr->ttl = h->ttl;
    switch (h->type) {
    case DNS_T_A: {
        struct sockaddr_in *sin = (struct sockaddr_in *)&rr->addr;
        if (h->rdlen != 4)
            return -1;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, p, 4);
        return 0;
    }
    case DNS_T_AAAA: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rr->addr;
        if (h->rdlen != 16)
            return -1;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, p, 16);
        return 0;
    }
    case DNS_T_MX:
        if (h->rdlen < 3)
            return -1;
        rr->pref = get16(p);
        off = h->rdata + 2;
        if (dns_name_expand(pkt, len, &off, name, sizeof(name)) < 0
            || off != h->rdata + h->rdlen)
            return -1;
        rr->host = xstrdup(name);
        return 0;
    case DNS_T_PTR:
    case DNS_T_CNAME:
        off = h->rdata;
        if (dns_name_expand(pkt, len, &off, name, sizeof(name)) < 0
            || off != h->rdata + h->rdlen)
            return -1;
        rr->host = xstrdup(name);
        return 0;
    case DNS_T_TXT: {
        /* Join the character-strings; the total is below 64 KiB. */
        size_t i = 0, n = 0;
        rr->data = xmalloc(h->rdlen + 1);
        while (i < h->rdlen) {
            size_t sl = p[i];
            if (i + 1 + sl > h->rdlen) {
                xfreep(&rr->data);
                return -1;
            }
            memcpy(rr->data + n, p + i + 1, sl);
            n += sl;
            i += 1 + sl;
        }
        rr->data[n] = 0;
        rr->data_len = n;
        return 0;
    }
    case DNS_T_TLSA:
        if (h->rdlen < 3)
            return -1;
        rr->usage = p[0];
        rr->selector = p[1];
        rr->mtype = p[2];
        rr->data_len = h->rdlen - 3;
        rr->data = xmalloc(rr->data_len + 1);
        memcpy(rr->data, p + 3, rr->data_len);
        rr->data[rr->data_len] = 0;
        return 0;
    default:
        return -1;
    }
}

/* follow_cnames - the owner name of the answer after any CNAME chain */
static int follow_cnames(const unsigned char *pkt, size_t len, size_t ans_off,
                         unsigned ancount, uint16_t qtype, char *canon)
{
    for (int hops = 0; hops < MAX_CNAME; hops++) {
        size_t off = ans_off;
        bool moved = false;
        rr_hdr_t h;
        dns_rr_t rr;

        for (unsigned i = 0; i < ancount; i++) {
            if (read_rr(pkt, len, &off, &h) < 0)
                return -1;
            if (h.type != DNS_T_CNAME || qtype == DNS_T_CNAME
                || h.class != CLASS_IN || !name_eq(h.owner, canon))
                continue;
            if (parse_rdata(pkt, len, &h, &rr) < 0)
                return -1;
            /* Both are at most DNS_NAME_BUFSIZE including the NUL. */
            safe_cpy(canon, DNS_NAME_BUFSIZE, rr.host);
            free(rr.host);
            moved = true;
            break;
        }
        if (!moved)
            return 0;
    }
    return -1;                  /* chain too long */
}

/* fail - mark a result malformed */
static int fail(dns_result_t *res, const char **why_r, const char *why)
{
    dns_result_clear(res);
    res->status = DNS_TEMPFAIL;
    res->why = why;
    if (why_r)
        *why_r = why;
    return -1;
}

/* dns_reply_parse - fill res from a wire-format reply */
int dns_reply_parse(const unsigned char *pkt, size_t len, const char *qname,
                    uint16_t qtype, dns_result_t *res, const char **why_r)
{
    char name[DNS_NAME_BUFSIZE], canon[DNS_NAME_BUFSIZE];
    size_t off = HDR_LEN, ans_off;
    unsigned qdcount, ancount, rcode;
    rr_hdr_t h;

    res->type = qtype;
    if (len < HDR_LEN || len > 65535)
        return fail(res, why_r, "malformed DNS reply: bad length");
    if (!(pkt[2] & 0x80))
        return fail(res, why_r, "malformed DNS reply: not a response");
    rcode = pkt[3] & 0x0F;
    qdcount = get16(pkt + 4);
    ancount = get16(pkt + 6);
    if (qdcount != 1)
        return fail(res, why_r, "malformed DNS reply: question count");
    if (dns_name_expand(pkt, len, &off, name, sizeof(name)) < 0 || off + 4 > len)
        return fail(res, why_r, "malformed DNS reply: question");
    if (!name_eq(name, qname) || get16(pkt + off) != qtype)
        return fail(res, why_r, "DNS reply does not match the question");
    off += 4;
    ans_off = off;

    if (rcode == RCODE_NXDOMAIN) {
        res->status = DNS_NXDOMAIN;
        return 0;
    }
    if (rcode != RCODE_NOERROR) {
        static const char *const names[] = {
            "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"
        };
        res->status = DNS_TEMPFAIL;
        res->why = rcode < 6 ? names[rcode] : "DNS server error";
        return 0;
    }
    if (safe_cpy(canon, sizeof(canon), qname) < 0)
        return fail(res, why_r, "query name too long");
    if (follow_cnames(pkt, len, ans_off, ancount, qtype, canon) < 0)
        return fail(res, why_r, "malformed DNS reply: answer section");

    off = ans_off;
    for (unsigned i = 0; i < ancount; i++) {
        if (read_rr(pkt, len, &off, &h) < 0)
            return fail(res, why_r, "malformed DNS reply: answer record");
        if (h.type != qtype || h.class != CLASS_IN || !name_eq(h.owner, canon))
            continue;
        if (res->nrr >= DNS_MAX_RR)
            break;
        if (res->rr == NULL)
            res->rr = xcalloc(DNS_MAX_RR, sizeof(*res->rr));
        if (parse_rdata(pkt, len, &h, &res->rr[res->nrr]) < 0)
            return fail(res, why_r, "malformed DNS reply: record data");
        res->nrr++;
    }
    {
        size_t cl = strlen(canon);
        if (cl > 1 && canon[cl - 1] == '.')
            canon[cl - 1] = 0;
    }
    res->canon = xstrdup(canon);
    res->status = res->nrr ? DNS_OK : DNS_NODATA;
    return 0;
}
