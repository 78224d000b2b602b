#ifndef STORK_TABLE_TEXT_H
#define STORK_TABLE_TEXT_H
/*
 * NAME
 *	table_text - the text source parser shared by texthash and
 *	table_build (storkmap, newaliases)
 * SUMMARY
 *	A pure parser: bytes in, a sorted list of unique (key, value)
 *	entries out, problems appended to errors as "NAME:LINE: text".
 * DESCRIPTION
 *	Lines: a logical line starts with a non-blank character; a line
 *	that starts with white space continues the previous logical line
 *	(joined with one space); empty lines, white-space-only lines and
 *	lines whose first non-blank character is '#' are ignored (also in
 *	the middle of a continued entry). CR before LF is ignored.
 *	TABLE_SYNTAX_MAP: "key<white space>value"; the value is the rest of
 *	the logical line with white space trimmed at both ends.
 *	TABLE_SYNTAX_ALIASES (aliases(5)): "name: value, value"; the name
 *	may be double-quoted ("a b": x); the value is stored as written
 *	(trimmed, continuation lines joined with one space) and the reader
 *	(local) splits it at commas.
 *	table_text_parse(name, data, len, syntax, fold, out, errors):
 *	fold lower-cases keys (ASCII), as postmap does by default.
 *	Returns the number of problems (errors lines that count); entries
 *	with problems are left out. A duplicate key replaces the earlier
 *	entry (the last wins) and adds an uncounted "warning:" line.
 *	table_text_load(path, ...): the same for a file (read fully; an
 *	I/O error counts as one problem).
 *	table_text_find(list, key): the value or NULL (binary search).
 * OWNERSHIP
 *	table_text_free(&list) frees the entries and the strings.
 * LIMITS
 *	TABLE_TEXT_MAX_LINE bytes per logical line; TABLE_TEXT_MAX_FILE
 *	bytes per source file; NUL bytes are an error.
 */
#include <stdbool.h>
#include <stddef.h>
#include "table/table.h"
#include "util/buf.h"

#define TABLE_TEXT_MAX_LINE (1024 * 1024)
#define TABLE_TEXT_MAX_FILE ((size_t)1024 * 1024 * 1024)

typedef struct table_entry {
    char *key;
    char *value;
    unsigned line;
} table_entry_t;

typedef struct table_text {
    table_entry_t *v;
    size_t n;
    size_t cap;
} table_text_t;

int table_text_parse(const char *name, const char *data, size_t len, table_syntax_t syntax,
                     bool fold, table_text_t *out, buf_t *errors);
int table_text_load(const char *path, table_syntax_t syntax, bool fold, table_text_t *out,
                    buf_t *errors);
const char *table_text_find(const table_text_t *list, const char *key);
void table_text_free(table_text_t *list);

#endif
