#ifndef STORK_TESTS_FUZZ_H
#define STORK_TESTS_FUZZ_H
/*
 * NAME
 *	fuzz - shared helpers of the libFuzzer targets in tests/fuzz
 * SUMMARY
 *	Each fuzz_<name>.c defines LLVMFuzzerTestOneInput(). With clang and
 *	-DSTORK_FUZZ=ON it links against libFuzzer; in every build it also
 *	links against fuzz_replay.c, a plain main() that feeds the checked-in
 *	corpus through the same function (a ctest regression test).
 * DESCRIPTION
 *	fuzz_strdup(data, size): a NUL-terminated heap copy of the input
 *	(NULs inside stay: callers that need a C string see a prefix).
 *	fuzz_check(cond): abort() with a message when a property fails, so
 *	libFuzzer and the replay driver both report it as a crash.
 * OWNERSHIP
 *	fuzz_strdup's result is the caller's to free.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_strdup - a NUL-terminated copy of data */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* fuzz_fail - report a broken property and crash */
static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz property failed: %s\n", file, line, what);
    abort();
}

#define fuzz_check(cond) do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond); } while (0)

#endif
