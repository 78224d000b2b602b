#ifndef STORK_UTIL_STR_H
#define STORK_UTIL_STR_H
/*
 * NAME
 *	str - small string helpers
 * DESCRIPTION
 *	str_trim: strip ASCII white space at both ends, in place; returns s.
 *	str_lower: ASCII lower-case in place; returns s.
 *	str_casesuffix: true if s ends with suffix, ASCII case-insensitive.
 *	str_split: split at any of the delimiter characters, skipping empty
 *	fields; returns a NULL-terminated array of new strings in *argv_r
 *	and the count. Free with str_argv_free.
 *	str_to_size: parse a decimal number with optional k/m/g suffix
 *	(1024 units); -1 on junk or overflow.
 *	str_to_seconds: parse "30", "30s", "5m", "2h", "1d", "1w";
 *	-1 on junk or overflow.
 *	safe_cpy: bounded copy that always terminates and reports truncation.
 *	str_hash: FNV-1a of a string, for in-memory hash tables.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

char *str_trim(char *s);
char *str_lower(char *s);
bool str_casesuffix(const char *s, const char *suffix);
size_t str_split(const char *s, const char *delims, char ***argv_r);
void str_argv_free(char ***argv);
int str_to_size(const char *s, uint64_t *out);
int str_to_seconds(const char *s, int64_t *out);
int safe_cpy(char *dst, size_t size, const char *src);
uint64_t str_hash(const char *s);

#endif
