/*
 * smtpd_cidr.c - IPv4/IPv6 CIDR lists (see smtpd_cidr.h)
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include "smtpd_cidr.h"
#include "util/xmalloc.h"

/* cidr_parse_addr - text (optionally in []) to family and bytes */
static int cidr_parse_addr(const char *s, size_t len, int *family_r, unsigned char *addr)
{
    char tmp[64];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    if (inet_pton(AF_INET, tmp, addr) == 1) {
        *family_r = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, addr) == 1) {
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        /* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket. */
        if (memcmp(addr, mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            *family_r = AF_INET;
            return 0;
        }
        *family_r = AF_INET6;
        return 0;
    }
    return -1;
}

/* cidr_bits_match - do the first prefix bits of a and b agree? */
static bool cidr_bits_match(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[full] ^ b[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

/* smtpd_cidr_add - parse one entry and append it */
int smtpd_cidr_add(smtpd_cidr_t *list, const char *spec, const char **why_r)
{
    const char *slash = strrchr(spec, '/');
    size_t alen = slash ? (size_t)(slash - spec) : strlen(spec);
    smtpd_cidr_ent_t e = { 0 };
    unsigned maxbits;

    if (cidr_parse_addr(spec, alen, &e.family, e.addr) < 0) {
        *why_r = "bad network address";
        return -1;
    }
    maxbits = e.family == AF_INET ? 32 : 128;
    e.prefix = maxbits;
    if (slash) {
        char *end;
        long p;
        if (slash[1] < '0' || slash[1] > '9') {
            *why_r = "bad prefix length";
            return -1;
        }
        p = strtol(slash + 1, &end, 10);
        if (*end != 0 || p < 0 || p > (long)maxbits) {
            *why_r = "bad prefix length";
            return -1;
        }
        e.prefix = (unsigned)p;
        /* Host bits set beyond the prefix: refuse, as Postfix does. */
        {
            unsigned char masked[16];
            memcpy(masked, e.addr, sizeof(masked));
            for (unsigned bit = e.prefix; bit < maxbits; bit++)
                masked[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
            if (memcmp(masked, e.addr, maxbits / 8) != 0) {
                *why_r = "non-zero host bits after the prefix length";
                return -1;
            }
        }
    }
    list->v = xreallocarray(list->v, list->n + 1, sizeof(*list->v));
    list->v[list->n++] = e;
    return 0;
}

/* smtpd_cidr_match - is addr in the list? */
bool smtpd_cidr_match(const smtpd_cidr_t *list, const char *addr)
{
    unsigned char bytes[16];
    int family;

    if (cidr_parse_addr(addr, strlen(addr), &family, bytes) < 0)
        return false;
    for (size_t i = 0; i < list->n; i++)
        if (list->v[i].family == family && cidr_bits_match(list->v[i].addr, bytes, list->v[i].prefix))
            return true;
    return false;
}

/* smtpd_cidr_free - release the list */
void smtpd_cidr_free(smtpd_cidr_t *list)
{
    xfreep(&list->v);
    list->n = 0;
}
