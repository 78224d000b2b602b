#ifndef STORK_TEST_H
#define STORK_TEST_H
/*
 * NAME
 *	test - the unit-test harness (header only)
 * SYNOPSIS
 *	TEST_CHECK(cond) / TEST_STREQ(a, b) / TEST_INTEQ(a, b) record a
 *	failure with file:line and go on; test_done() prints
 *	"N passed, N failed" and returns the exit status for main().
 */
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define TEST_CHECK(cond) do { \
    if (cond) test_passed++; \
    else { test_failed++; fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define TEST_STREQ(a, b) do { \
    const char *ta_ = (a), *tb_ = (b); \
    if (ta_ && tb_ && strcmp(ta_, tb_) == 0) test_passed++; \
    else { test_failed++; fprintf(stderr, "%s:%d: \"%s\" != \"%s\" (%s vs %s)\n", __FILE__, __LINE__, \
        ta_ ? ta_ : "(null)", tb_ ? tb_ : "(null)", #a, #b); } \
} while (0)

#define TEST_INTEQ(a, b) do { \
    long long ta_ = (long long)(a), tb_ = (long long)(b); \
    if (ta_ == tb_) test_passed++; \
    else { test_failed++; fprintf(stderr, "%s:%d: %lld != %lld (%s vs %s)\n", __FILE__, __LINE__, ta_, tb_, #a, #b); } \
} while (0)

static inline int test_done(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
