/* xmalloc - allocation that never fails */
#include "util/xmalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcheck(void *p, size_t size)
{
    if (p == NULL && size != 0)
        msg_panic("out of memory allocating %zu bytes", size);
    return p;
}

size_t size_add(size_t a, size_t b)
{
    if (a > SIZE_MAX - b)
        msg_panic("size overflow: %zu + %zu", a, b);
    return a + b;
}

void *xmalloc(size_t size)
{
    return xcheck(malloc(size ? size : 1), size);
}

void *xcalloc(size_t n, size_t size)
{
    return xcheck(calloc(n ? n : 1, size ? size : 1), n * size);
}

void *xrealloc(void *ptr, size_t size)
{
    return xcheck(realloc(ptr, size ? size : 1), size);
}

void *xmallocarray(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        msg_panic("size overflow: %zu * %zu", n, size);
    return xmalloc(n * size);
}

void *xreallocarray(void *ptr, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        msg_panic("size overflow: %zu * %zu", n, size);
    return xrealloc(ptr, n * size);
}

char *xstrdup(const char *s)
{
    return xmemdup(s, strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(size_add(len, 1));

    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

void *xmemdup(const void *p, size_t n)
{
    void *q = xmalloc(n);

    memcpy(q, p, n);
    return q;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0)
        msg_panic("out of memory in xasprintf");
    va_end(ap);
    return p;
}
