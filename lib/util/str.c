/* str - small string helpers */
#include "util/str.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *str_trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        memmove(s, s + 1, strlen(s));
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        *--end = 0;
    return s;
}

char *str_lower(char *s)
{
    for (char *cp = s; *cp; cp++)
        if (*cp >= 'A' && *cp <= 'Z')
            *cp += 'a' - 'A';
    return s;
}

bool str_casesuffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);

    return ls >= lx && strcasecmp(s + ls - lx, suffix) == 0;
}

size_t str_split(const char *s, const char *delims, char ***argv_r)
{
    size_t n = 0, cap = 8;
    char **argv = xmallocarray(cap, sizeof(*argv));

    while (*s) {
        size_t skip = strspn(s, delims), len;

        s += skip;
        if (*s == 0)
            break;
        len = strcspn(s, delims);
        if (n + 2 > cap) {
            cap *= 2;
            argv = xreallocarray(argv, cap, sizeof(*argv));
        }
        argv[n++] = xstrndup(s, len);
        s += len;
    }
    argv[n] = NULL;
    *argv_r = argv;
    return n;
}

void str_argv_free(char ***argv)
{
    if (*argv == NULL)
        return;
    for (char **p = *argv; *p; p++)
        free(*p);
    xfreep(argv);
}

static int str_mul(uint64_t *v, uint64_t m)
{
    if (*v > UINT64_MAX / m)
        return -1;
    *v *= m;
    return 0;
}

int str_to_size(const char *s, uint64_t *out)
{
    char *end;
    uint64_t v;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    switch (tolower((unsigned char)*end)) {
    case 0: break;
    case 'k': if (str_mul(&v, 1024ULL) < 0) return -1; end++; break;
    case 'm': if (str_mul(&v, 1024ULL * 1024) < 0) return -1; end++; break;
    case 'g': if (str_mul(&v, 1024ULL * 1024 * 1024) < 0) return -1; end++; break;
    default: return -1;
    }
    if (*end != 0)
        return -1;
    *out = v;
    return 0;
}

int str_to_seconds(const char *s, int64_t *out)
{
    char *end;
    uint64_t v;
    uint64_t mul = 1;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    switch (*end) {
    case 0: case 's': break;
    case 'm': mul = 60; break;
    case 'h': mul = 3600; break;
    case 'd': mul = 86400; break;
    case 'w': mul = 7 * 86400; break;
    default: return -1;
    }
    if (*end && end[1] != 0)
        return -1;
    if (str_mul(&v, mul) < 0 || v > INT64_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int safe_cpy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (size == 0)
        return -1;
    if (n >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = 0;
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

uint64_t str_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;   /* the FNV offset basis */

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}
