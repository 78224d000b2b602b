/*
 * fuzz_dns_reply - libFuzzer target for lib/dns/dns_reply.c
 *
 * Input: byte 0 selects the query type (A, AAAA, MX, PTR, CNAME, TXT,
 * TLSA, NS), the rest is a DNS reply in wire format. The query name is
 * the reply's own question name when it expands (so the fuzzer gets past
 * the question check), else "example.com". dns_name_expand also runs on
 * every offset of the first bytes. Properties: names fit the buffer and
 * carry no raw control bytes, a DNS_OK result has 1..DNS_MAX_RR records
 * of the asked type and a canon name, and dns_result_dup/dns_mx_sort/
 * dns_mx_is_null are safe on whatever came out.
 */
#include "fuzz.h"
#include "dns/dns_reply.h"

/* check_name - presentation form: printable, NUL-terminated in the buffer */
static void check_name(const char *name, size_t size)
{
    size_t n = strnlen(name, size);

    fuzz_check(n < size && n > 0);
    for (size_t i = 0; i < n; i++)
        fuzz_check((unsigned char)name[i] > 0x20 && (unsigned char)name[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t types[] = {
        DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_PTR, DNS_T_CNAME, DNS_T_TXT, DNS_T_TLSA, DNS_T_NS
    };
    char qname[DNS_NAME_BUFSIZE], tiny[8];
    dns_result_t res;
    const unsigned char *pkt;
    size_t len, off;
    uint16_t qtype;
    const char *why = NULL;

    if (size < 1)
        return 0;
    qtype = types[data[0] & 7];
    pkt = data + 1;
    len = size - 1;

    /* Every start offset in the first bytes, into a big and a tiny buffer. */
    for (size_t start = 0; start < len && start < 64; start++) {
        off = start;
        if (dns_name_expand(pkt, len, &off, qname, sizeof(qname)) == 0) {
            check_name(qname, sizeof(qname));
            fuzz_check(off > start && off <= len);
        }
        off = start;
        if (dns_name_expand(pkt, len, &off, tiny, sizeof(tiny)) == 0)
            check_name(tiny, sizeof(tiny));
    }

    off = 12;
    if (len < 12 || dns_name_expand(pkt, len, &off, qname, sizeof(qname)) < 0)
        snprintf(qname, sizeof(qname), "example.com");
    memset(&res, 0, sizeof(res));
    if (dns_reply_parse(pkt, len, qname, qtype, &res, &why) < 0) {
        fuzz_check(why != NULL && res.status == DNS_TEMPFAIL);
        fuzz_check(res.nrr == 0 && res.rr == NULL && res.canon == NULL);
    } else if (res.status == DNS_OK) {
        fuzz_check(res.nrr > 0 && res.nrr <= DNS_MAX_RR && res.canon != NULL);
        check_name(res.canon, DNS_NAME_BUFSIZE);
        for (size_t i = 0; i < res.nrr; i++) {
            const dns_rr_t *rr = &res.rr[i];
            fuzz_check(rr->type == qtype);
            if (qtype == DNS_T_MX || qtype == DNS_T_PTR || qtype == DNS_T_CNAME)
                check_name(rr->host, DNS_NAME_BUFSIZE);
            if (qtype == DNS_T_TXT || qtype == DNS_T_TLSA)
                fuzz_check(rr->data != NULL && rr->data[rr->data_len] == 0);
        }
    } else if (res.status == DNS_NODATA) {
        fuzz_check(res.nrr == 0 && res.canon != NULL);
    } else {
        fuzz_check(res.nrr == 0);
    }
    {
        dns_result_t *copy = dns_result_dup(&res);

        if (qtype == DNS_T_MX) {
            dns_mx_sort(copy, 42);
            (void)dns_mx_is_null(copy);
            for (size_t i = 1; i < copy->nrr; i++)
                fuzz_check(copy->rr[i - 1].pref <= copy->rr[i].pref);
        }
        (void)dns_status_name(copy->status);
        (void)dns_type_name(copy->type);
        dns_result_free(&copy);
        fuzz_check(copy == NULL);
    }
    dns_result_clear(&res);
    return 0;
}
