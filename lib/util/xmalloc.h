#ifndef STORK_UTIL_XMALLOC_H
#define STORK_UTIL_XMALLOC_H
/*
 * NAME
 *	xmalloc - allocation that never fails
 * DESCRIPTION
 *	Every function aborts with msg_panic-style output on exhaustion or on
 *	size overflow, so callers have no out-of-memory paths to get wrong.
 *	xmallocarray/xreallocarray check n * size for overflow.
 *	xfreep(&p) frees and NULLs the pointer.
 */
#include <stddef.h>
#include "util/msg.h"

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xmallocarray(size_t n, size_t size);
void *xreallocarray(void *ptr, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) STORK_PRINTF(1, 2);
/* size_add - a + b, panicking on overflow */
size_t size_add(size_t a, size_t b);
#define xfreep(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

#endif
