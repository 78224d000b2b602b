/* smtpd_auth_test - unit tests for the AUTH parsers (smtpd_sasl) and the
 * RCPT restriction lists (smtpd_restrict) */
#include <string.h>
#include "smtpd_restrict.h"
#include "smtpd_sasl.h"
#include "test/test.h"

/* dec - decode or "ERR" */
static const char *dec(const char *in)
{
    static char out[256];
    buf_t b;
    const char *why;

    buf_init(&b, 64);
    if (smtpd_sasl_b64decode(in, strlen(in), &b, &why) < 0) {
        buf_free(&b);
        return "ERR";
    }
    if (b.len)
        memcpy(out, b.data, b.len);
    out[b.len] = 0;
    for (size_t i = 0; i < b.len; i++)
        if (out[i] == 0)
            out[i] = '|';
    buf_free(&b);
    return out;
}

static void test_base64(void)
{
    TEST_STREQ(dec("="), "");
    TEST_STREQ(dec(""), "");
    TEST_STREQ(dec("dXNlcg=="), "user");
    TEST_STREQ(dec("dXNlcjE="), "user1");
    TEST_STREQ(dec("dXNlcjEy"), "user12");
    TEST_STREQ(dec("AHVAZXhhbXBsZS5jb20Ac2VjcmV0"), "|u@example.com|secret");
    TEST_STREQ(dec("dXNlcg"), "ERR");           /* no padding */
    TEST_STREQ(dec("dXN=cg=="), "ERR");         /* '=' inside */
    TEST_STREQ(dec("dXNlcg==dXNl"), "ERR");     /* data after padding */
    TEST_STREQ(dec("dXNl cg="), "ERR");         /* white space */
    TEST_STREQ(dec("d*Nl"), "ERR");
    TEST_STREQ(dec("*"), "ERR");
    TEST_STREQ(dec("===="), "ERR");
    TEST_STREQ(dec(
        "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
        "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"),
        "ERR");                                  /* over the buffer cap (64) */
}

static void test_plain(void)
{
    smtpd_sasl_plain_t r;
    const char *why;

    TEST_INTEQ(smtpd_sasl_plain("\0u@x\0pw", 7, &r, &why), 0);
    TEST_INTEQ((int)r.authzid_len, 0);
    TEST_INTEQ((int)r.authcid_len, 3);
    TEST_CHECK(memcmp(r.authcid, "u@x", 3) == 0);
    TEST_INTEQ((int)r.passwd_len, 2);
    TEST_CHECK(memcmp(r.passwd, "pw", 2) == 0);
    TEST_INTEQ(smtpd_sasl_plain("z\0u@x\0pw", 8, &r, &why), 0);
    TEST_INTEQ((int)r.authzid_len, 1);
    TEST_INTEQ(smtpd_sasl_plain("u@x\0pw", 6, &r, &why), -1);        /* one NUL */
    TEST_INTEQ(smtpd_sasl_plain("\0\0pw", 4, &r, &why), -1);         /* no authcid */
    TEST_INTEQ(smtpd_sasl_plain("\0u@x\0", 5, &r, &why), -1);        /* no password */
    TEST_INTEQ(smtpd_sasl_plain("\0u@x\0p\0w", 8, &r, &why), -1);    /* third NUL */
    TEST_INTEQ(smtpd_sasl_plain("\0u x\0pw", 7, &r, &why), -1);      /* space in user */
    TEST_INTEQ(smtpd_sasl_plain("", 0, &r, &why), -1);
    TEST_INTEQ(smtpd_sasl_login_value("user@x", 6, true, &why), 0);
    TEST_INTEQ(smtpd_sasl_login_value("a b", 3, true, &why), -1);
    TEST_INTEQ(smtpd_sasl_login_value("a b", 3, false, &why), 0);
    TEST_INTEQ(smtpd_sasl_login_value("a\0b", 3, false, &why), -1);
    TEST_INTEQ(smtpd_sasl_login_value("", 0, false, &why), -1);
    TEST_CHECK(smtpd_sasl_mech("plain", 5) == SMTPD_SASL_PLAIN);
    TEST_CHECK(smtpd_sasl_mech("LOGIN", 5) == SMTPD_SASL_LOGIN);
    TEST_CHECK(smtpd_sasl_mech("CRAM-MD5", 8) == SMTPD_SASL_NONE);
    TEST_CHECK(smtpd_sasl_mech("PLAINX", 6) == SMTPD_SASL_NONE);
}

static void test_restrict(void)
{
    char *dflt[] = { "permit_mynetworks", "permit_sasl_authenticated",
                     "reject_unauth_destination", NULL };
    char *sub[] = { "permit_sasl_authenticated", "REJECT", NULL };
    char *bad[] = { "permit_mynetworks", "check_client_access", NULL };
    char *open[] = { "permit_mynetworks", NULL };
    smtpd_restrict_t l;
    smtpd_restrict_facts_t f = { false, false, false };
    size_t badi = 99;

    TEST_INTEQ(smtpd_restrict_parse(dflt, &l, &badi), 0);
    TEST_CHECK(smtpd_restrict_closes(&l));
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_DUNNO);    /* local rcpt */
    f.remote = true;
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_RELAY);
    f.authenticated = true;
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_OK);
    f.authenticated = false;
    f.trusted = true;
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_OK);

    TEST_INTEQ(smtpd_restrict_parse(sub, &l, &badi), 0);
    f = (smtpd_restrict_facts_t){ true, false, false };
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_REJECT);   /* mynetworks too */
    f.authenticated = true;
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_OK);

    TEST_INTEQ(smtpd_restrict_parse(bad, &l, &badi), -1);
    TEST_INTEQ((int)badi, 1);
    TEST_INTEQ(smtpd_restrict_parse(open, &l, &badi), 0);
    TEST_CHECK(!smtpd_restrict_closes(&l));
    TEST_INTEQ(smtpd_restrict_parse(NULL, &l, &badi), 0);
    TEST_INTEQ((int)l.n, 0);
    TEST_INTEQ(smtpd_restrict_eval(&l, &f), SMTPD_VERDICT_DUNNO);
}

int main(void)
{
    test_base64();
    test_plain();
    test_restrict();
    return test_done();
}
