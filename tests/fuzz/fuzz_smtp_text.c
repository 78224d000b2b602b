/*
 * fuzz_smtp_text - libFuzzer target for deliver/smtp/smtp_text.c
 *
 * Input: byte 0 picks the function, the rest is its text:
 *   0/1  smtp_nexthop_parse (SMTP / LMTP) of the text up to a NUL;
 *   2    server reply lines (split at '\n') through smtp_resp_line, then
 *        smtp_resp_dsn and, for a complete reply, smtp_ehlo_parse;
 *   3    smtp_ehlo_parse on the text as reply lines;
 *   4    smtp_xtext_encode, decoded back by lib/smtp's smtp_xtext_decode.
 * Properties: the destination's strings are terminated inside their
 * arrays and a port is 1..65535, a reply's code is 200..599 and its text
 * starts with it and stays under SMTP_RESP_MAX, a DSN is "C.x.y" of the
 * reply's class, and xtext round-trips for text without controls.
 */
#include "fuzz.h"
#include "smtp_text.h"
#include "smtp/smtp_parse.h"

/* check_dsn - "C.S.D" with C the class of the reply */
static void check_dsn(const char dsn[16], int code)
{
    size_t n = strnlen(dsn, 16);

    fuzz_check(n >= 5 && n < 16);
    fuzz_check(dsn[0] == '0' + code / 100 && dsn[1] == '.');
}

/* run_nexthop - parse and check one next hop */
static void run_nexthop(const char *nh, bool lmtp)
{
    smtp_dest_t d;
    const char *why = NULL;

    if (smtp_nexthop_parse(nh, lmtp, 25, &d, &why) < 0) {
        fuzz_check(why != NULL);
        return;
    }
    fuzz_check(strnlen(d.host, sizeof(d.host)) < sizeof(d.host) && d.host[0] != 0);
    fuzz_check(strnlen(d.path, sizeof(d.path)) < sizeof(d.path));
    fuzz_check(d.port >= 1 && d.port <= 65535);
    fuzz_check(!(d.literal && d.mx));
    fuzz_check(!d.is_unix || (lmtp && d.path[0] == '/'));
}

/* run_reply - feed lines to the reply collector */
static void run_reply(const char *s, size_t len)
{
    smtp_resp_t r;
    const char *p = s, *end = s + len;
    char dsn[16];

    smtp_resp_init(&r);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *why = NULL;
        int rc = smtp_resp_line(&r, p, n, &why);

        fuzz_check(rc >= -1 && rc <= 1);
        if (rc < 0) {
            fuzz_check(why != NULL);
        } else {
            fuzz_check(r.code >= 200 && r.code <= 599);
            fuzz_check(r.text.len >= 3 && r.text.len <= SMTP_RESP_MAX);
            fuzz_check(r.text.data[0] == '0' + r.code / 100);
            smtp_resp_dsn(&r, dsn);
            check_dsn(dsn, r.code);
            if (rc == 1) {
                smtp_feat_t f;
                smtp_ehlo_parse(buf_cstr(&r.lines), &f);
                fuzz_check(f.bits & SMTP_FEAT_ESMTP);
                fuzz_check(strnlen(f.auth, sizeof(f.auth)) < sizeof(f.auth));
            }
        }
        p += n + (nl != NULL);
    }
    smtp_resp_free(&r);
}

/* run_xtext - encode, decode with the server's decoder, compare */
static void run_xtext(const char *s)
{
    buf_t enc, dec;
    bool plain = true;

    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 32 || *c == 127)
            plain = false;
    buf_init(&enc, BUF_NOLIMIT);
    buf_init(&dec, BUF_NOLIMIT);
    smtp_xtext_encode(&enc, s);
    for (size_t i = 0; i < enc.len; i++)
        fuzz_check(enc.data[i] > 32 && enc.data[i] < 127 && enc.data[i] != '=');
    if (plain) {
        fuzz_check(smtp_xtext_decode(buf_cstr(&enc), enc.len, &dec) == 0);
        fuzz_check(strcmp(buf_cstr(&dec), s) == 0);
    } else {
        fuzz_check(smtp_xtext_decode(buf_cstr(&enc), enc.len, &dec) < 0);
    }
    buf_free(&enc);
    buf_free(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1)
        return 0;
    s = fuzz_strdup(data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
    case 1:
        run_nexthop(s, data[0] % 5 == 1);
        break;
    case 2:
        run_reply(s, size - 1);
        break;
    case 3: {
        smtp_feat_t f;
        smtp_ehlo_parse(s, &f);
        fuzz_check(strnlen(f.auth, sizeof(f.auth)) < sizeof(f.auth));
        break;
    }
    default:
        run_xtext(s);
        break;
    }
    free(s);
    return 0;
}
