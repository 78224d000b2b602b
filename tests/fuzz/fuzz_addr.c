/*
 * fuzz_addr - libFuzzer target for lib/mail/addr.c
 *
 * Input: byte 0 selects the flags (low four bits, ADDR_FLAG_*), the rest
 * is the text. Every flag combination of addr_parse_path, then
 * addr_parse_mailbox, addr_domain_valid and addr_utf8_valid run on it.
 * Properties: a parsed address is in the documented internal form (no
 * control characters, UTF-8 only with ADDR_FLAG_UTF8, "" only with
 * ADDR_FLAG_NULL_OK, consumed within len), addr_internal_ok accepts it,
 * and addr_quote round-trips: parse("<" quote(x) ">") == x.
 */
#include "fuzz.h"
#include "mail/addr.h"

/* check_internal - the internal-form promises of addr.h */
static void check_internal(const buf_t *out, unsigned flags)
{
    const char *s = buf_cstr(out);

    fuzz_check(strlen(s) == out->len);
    for (size_t i = 0; i < out->len; i++) {
        unsigned char c = (unsigned char)s[i];
        fuzz_check(c >= 0x20 && c != 0x7f);
        if (!(flags & ADDR_FLAG_UTF8))
            fuzz_check(c < 0x80);
    }
    fuzz_check(addr_utf8_valid(s, out->len));
    if (out->len == 0)
        fuzz_check(flags & ADDR_FLAG_NULL_OK);
    else if (strchr(s, '@'))
        fuzz_check(addr_internal_ok(s));    /* a bare local part may hold spaces */
}

/* roundtrip - quote x and parse it back (as a path and as a mailbox) */
static void roundtrip(const char *x, unsigned flags)
{
    buf_t q, path, back;
    size_t used = 0;
    const char *why;

    buf_init(&q, BUF_NOLIMIT);
    buf_init(&path, BUF_NOLIMIT);
    buf_init(&back, BUF_NOLIMIT);
    addr_quote(x, &q);
    buf_putc(&path, '<');
    buf_append(&path, q.data, q.len);
    buf_putc(&path, '>');
    flags &= ~ADDR_FLAG_NO_BRACKETS;
    if (addr_parse_path(path.data, path.len, flags, &back, &used, &why) != 0) {
        fprintf(stderr, "addr round trip: \"%s\" -> %s: %s\n", x, path.data, why);
        fuzz_check(!"quoted form parses");
    }
    fuzz_check(used == path.len);
    if (strcmp(buf_cstr(&back), x) != 0) {
        fprintf(stderr, "addr round trip: \"%s\" -> %s -> \"%s\"\n", x, path.data, back.data);
        fuzz_check(!"round trip is the identity");
    }
    fuzz_check(addr_parse_mailbox(q.data, q.len, flags, &back, &why) == 0);
    fuzz_check(strcmp(buf_cstr(&back), x) == 0);
    buf_free(&q);
    buf_free(&path);
    buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t out;
    const char *why, *s;
    size_t len, used;
    unsigned sel;

    if (size < 1)
        return 0;
    sel = data[0];
    s = (const char *)data + 1;
    len = size - 1;
    buf_init(&out, BUF_NOLIMIT);

    /* The selected flags first (the fuzzer steers them), then all 16. */
    for (unsigned k = 0; k <= 16; k++) {
        unsigned flags = k == 0 ? (sel & 15u) : k - 1;

        if (k && flags == (sel & 15u))
            continue;
        used = (size_t)-1;
        if (addr_parse_path(s, len, flags, &out, &used, &why) == 0) {
            fuzz_check(used <= len && used > 0);
            fuzz_check(used <= ADDR_PATH_MAX);
            check_internal(&out, flags);
            if (out.len > 0)
                roundtrip(out.data, flags);
        } else {
            fuzz_check(why != NULL && *why);
        }
    }
    for (unsigned flags = 0; flags < 8; flags += 2) {
        if (addr_parse_mailbox(s, len, flags, &out, &why) == 0) {
            check_internal(&out, flags);
            fuzz_check(out.len > 0);
            roundtrip(out.data, flags);
        }
    }
    if (addr_domain_valid(s, len, sel & ADDR_FLAG_UTF8)) {
        fuzz_check(len > 0 && len <= ADDR_DOMAIN_MAX);
        fuzz_check(memchr(s, 0, len) == NULL);
    }
    (void)addr_utf8_valid(s, len);
    {
        char *z = fuzz_strdup(data + 1, len);
        const char *d = addr_domain(z);
        buf_t q;

        (void)addr_internal_ok(z);
        fuzz_check(d == NULL || (d > z && d[-1] == '@'));
        buf_init(&q, BUF_NOLIMIT);
        addr_quote(z, &q);
        buf_free(&q);
        free(z);
    }
    buf_free(&out);
    return 0;
}
