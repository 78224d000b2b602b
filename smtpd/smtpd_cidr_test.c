/* smtpd_cidr_test - unit tests for mynetworks matching */
#include "smtpd_cidr.h"
#include "test/test.h"

int main(void)
{
    smtpd_cidr_t l = { 0 };
    const char *why;

    TEST_INTEQ(smtpd_cidr_add(&l, "127.0.0.0/8", &why), 0);
    TEST_INTEQ(smtpd_cidr_add(&l, "[::1]/128", &why), 0);
    TEST_INTEQ(smtpd_cidr_add(&l, "192.0.2.17", &why), 0);
    TEST_INTEQ(smtpd_cidr_add(&l, "2001:db8:a::/48", &why), 0);
    TEST_INTEQ(smtpd_cidr_add(&l, "10.64.0.0/10", &why), 0);
    TEST_CHECK(smtpd_cidr_match(&l, "127.0.0.1"));
    TEST_CHECK(smtpd_cidr_match(&l, "127.255.255.255"));
    TEST_CHECK(!smtpd_cidr_match(&l, "128.0.0.1"));
    TEST_CHECK(smtpd_cidr_match(&l, "::1"));
    TEST_CHECK(!smtpd_cidr_match(&l, "::2"));
    TEST_CHECK(smtpd_cidr_match(&l, "::ffff:127.0.0.2"));
    TEST_CHECK(smtpd_cidr_match(&l, "192.0.2.17"));
    TEST_CHECK(!smtpd_cidr_match(&l, "192.0.2.18"));
    TEST_CHECK(smtpd_cidr_match(&l, "2001:db8:a:ffff::1"));
    TEST_CHECK(!smtpd_cidr_match(&l, "2001:db8:b::1"));
    TEST_CHECK(smtpd_cidr_match(&l, "10.64.0.1"));
    TEST_CHECK(smtpd_cidr_match(&l, "10.127.255.255"));
    TEST_CHECK(!smtpd_cidr_match(&l, "10.128.0.0"));
    TEST_CHECK(!smtpd_cidr_match(&l, "10.63.255.255"));
    TEST_CHECK(!smtpd_cidr_match(&l, "garbage"));
    TEST_CHECK(!smtpd_cidr_match(&l, ""));
    smtpd_cidr_free(&l);

    TEST_INTEQ(smtpd_cidr_add(&l, "0.0.0.0/0", &why), 0);
    TEST_CHECK(smtpd_cidr_match(&l, "203.0.113.9"));
    TEST_CHECK(!smtpd_cidr_match(&l, "::1"));
    smtpd_cidr_free(&l);

    TEST_INTEQ(smtpd_cidr_add(&l, "10.1.2.3/8", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "10.0.0.0/33", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "10.0.0.0/", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "10.0.0.0/-1", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "10.0.0/8", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "hash:/etc/x", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "[::1", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "::/129", &why), -1);
    TEST_INTEQ(smtpd_cidr_add(&l, "2001:db8::1/32", &why), -1);
    TEST_INTEQ(l.n, 0);
    return test_done();
}
