/* verify_anvil_test - session counts per client, per owner, and the sweep */
#include "test/test.h"
#include "verify_anvil.h"

int main(void)
{
    verify_anvil_t *a = verify_anvil_new(1000, 3);
    verify_anvil_owner_t *o1 = NULL, *o2 = NULL;
    uint64_t count, rate;

    verify_anvil_connect(a, &o1, "192.0.2.1", 0, &count, &rate);
    TEST_CHECK(count == 1 && rate == 1);
    verify_anvil_connect(a, &o2, "192.0.2.1", 10, &count, &rate);
    TEST_CHECK(count == 2 && rate == 2);          /* counted across smtpd processes */
    verify_anvil_connect(a, &o1, "192.0.2.1", 20, &count, &rate);
    TEST_CHECK(count == 3 && rate == 3);
    verify_anvil_disconnect(a, o2, "192.0.2.9");  /* never counted: ignored */
    verify_anvil_disconnect(a, o2, "192.0.2.1");
    verify_anvil_disconnect(a, o2, "192.0.2.1");  /* o2 had one only */
    verify_anvil_connect(a, &o2, "192.0.2.1", 30, &count, &rate);
    TEST_CHECK(count == 3 && rate == 4);
    verify_anvil_owner_free(a, &o1);              /* its smtpd went away */
    TEST_CHECK(o1 == NULL);
    verify_anvil_connect(a, &o2, "192.0.2.1", 1500, &count, &rate);
    TEST_CHECK(count == 2 && rate == 1);          /* a new time unit */

    /* Room for 3 addresses: a 4th is not counted until the sweep frees one. */
    verify_anvil_connect(a, &o2, "192.0.2.2", 1500, &count, &rate);
    verify_anvil_connect(a, &o1, "2001:db8::1", 1500, &count, &rate);
    TEST_CHECK(count == 1);
    verify_anvil_connect(a, &o1, "192.0.2.4", 1500, &count, &rate);
    TEST_CHECK(count == 0 && rate == 0);
    verify_anvil_owner_free(a, &o1);
    TEST_INTEQ((long)verify_anvil_sweep(a, 2000), 3);   /* its window runs on */
    TEST_INTEQ((long)verify_anvil_sweep(a, 2600), 2);   /* 2001:db8::1 is gone */
    verify_anvil_connect(a, &o1, "192.0.2.4", 2600, &count, &rate);
    TEST_CHECK(count == 1 && rate == 1);
    verify_anvil_owner_free(a, &o1);
    verify_anvil_owner_free(a, &o2);
    TEST_INTEQ((long)verify_anvil_sweep(a, 10000), 0);
    verify_anvil_free(&a);
    TEST_CHECK(a == NULL);
    return test_done();
}
