/*
 * fuzz_smtpd_sasl - libFuzzer target for smtpd/smtpd_sasl.c
 *
 * Input: byte 0 picks what the rest is fed to: an AUTH mechanism name,
 * a base64 response (then the decoded bytes go to the PLAIN and both
 * LOGIN checks, as smtpd does), or the decoded form directly. Properties:
 * decoding is exact on what smtp_base64() (the client's encoder) makes,
 * decoded output is 3/4 of the input at most, and PLAIN's pointers lie
 * inside the message with the documented limits.
 */
#include "fuzz.h"
#include "smtpd_sasl.h"
#include "smtp_text.h"

/* check_plain - split a decoded PLAIN message and check the result */
static void check_plain(const char *p, size_t n)
{
    smtpd_sasl_plain_t res;
    const char *why = NULL;

    if (smtpd_sasl_plain(p, n, &res, &why) < 0) {
        fuzz_check(why != NULL);
        return;
    }
    fuzz_check(res.authzid == p);
    fuzz_check(res.authcid > p && res.authcid + res.authcid_len < p + n);
    fuzz_check(res.passwd > res.authcid && res.passwd + res.passwd_len == p + n);
    fuzz_check(res.authcid_len > 0 && res.authcid_len <= SMTPD_SASL_USER_MAX);
    fuzz_check(res.authzid_len <= SMTPD_SASL_USER_MAX);
    fuzz_check(res.passwd_len > 0 && res.passwd_len <= SMTPD_SASL_PASS_MAX);
    fuzz_check(memchr(res.authcid, 0, res.authcid_len) == NULL);
    fuzz_check(memchr(res.passwd, 0, res.passwd_len) == NULL);
}

/* check_login - LOGIN user and password checks */
static void check_login(const char *p, size_t n)
{
    const char *why = NULL;

    if (smtpd_sasl_login_value(p, n, true, &why) == 0)
        fuzz_check(n > 0 && n <= SMTPD_SASL_USER_MAX && memchr(p, ' ', n) == NULL);
    if (smtpd_sasl_login_value(p, n, false, &why) == 0)
        fuzz_check(n > 0 && n <= SMTPD_SASL_PASS_MAX && memchr(p, 0, n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s, *why = NULL;
    size_t len;
    buf_t out, enc, again;

    if (size < 1)
        return 0;
    s = (const char *)data + 1;
    len = size - 1;
    buf_init(&out, 12 * 1024);
    buf_init(&enc, BUF_NOLIMIT);
    buf_init(&again, BUF_NOLIMIT);
    switch (data[0] % 3) {
    case 0: {
        smtpd_sasl_mech_t m = smtpd_sasl_mech(s, len);
        fuzz_check(m == SMTPD_SASL_NONE || len == 5);
        fuzz_check(smtpd_sasl_mech_name(m) != NULL);
        break;
    }
    case 1:
        if (smtpd_sasl_b64decode(s, len, &out, &why) == 0) {
            fuzz_check(out.len <= len / 4 * 3);
            check_plain(buf_cstr(&out), out.len);
            check_login(buf_cstr(&out), out.len);
        } else {
            fuzz_check(why != NULL);
        }
        break;
    default:
        check_plain(s, len);
        check_login(s, len);
        /* The client's encoder and the server's decoder agree. */
        smtp_base64(&enc, s, len);
        fuzz_check(enc.len == (len + 2) / 3 * 4);
        if (len > 0) {
            fuzz_check(smtpd_sasl_b64decode(enc.data, enc.len, &again, &why) == 0);
            fuzz_check(again.len == len && memcmp(again.data, s, len) == 0);
        }
        break;
    }
    buf_free(&again);
    buf_free(&enc);
    buf_free(&out);
    return 0;
}
