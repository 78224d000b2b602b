#ifndef STORK_UTIL_BUF_H
#define STORK_UTIL_BUF_H
/*
 * NAME
 *	buf - growable, length-counted byte buffer with a hard cap
 * SUMMARY
 *	The one type for variable-length data. data is always NUL-terminated
 *	(the NUL is not counted in len), so text can be used as a C string.
 * DESCRIPTION
 *	buf_init(b, limit): empty buffer; limit is the most bytes it may hold
 *	(BUF_NOLIMIT for internal data that is bounded elsewhere).
 *	buf_append/puts/putc/printf return 0, or -1 when the result would
 *	exceed the limit; then the buffer is unchanged.
 *	buf_consume(b, n) drops n bytes from the front.
 *	buf_free releases the memory; the buffer may be reused after
 *	buf_init.
 * OWNERSHIP
 *	The buffer owns data. buf_steal() hands it to the caller.
 */
#include <stddef.h>
#include <stdarg.h>
#include "util/msg.h"

#define BUF_NOLIMIT ((size_t)-1 / 2)

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
} buf_t;

void buf_init(buf_t *b, size_t limit);
void buf_free(buf_t *b);
void buf_reset(buf_t *b);
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_putc(buf_t *b, int c);
int buf_printf(buf_t *b, const char *fmt, ...) STORK_PRINTF(2, 3);
int buf_vprintf(buf_t *b, const char *fmt, va_list ap) STORK_PRINTF(2, 0);
void buf_consume(buf_t *b, size_t n);
void buf_truncate(buf_t *b, size_t len);
char *buf_steal(buf_t *b);
static inline const char *buf_cstr(const buf_t *b) { return b->data ? b->data : ""; }

#endif
