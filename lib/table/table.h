#ifndef STORK_TABLE_H
#define STORK_TABLE_H
/*
 * NAME
 *	table - lookup tables behind one API ("type:name", as Postfix's maps)
 * SUMMARY
 *	Types: "hash:/path/file" reads the Berkeley DB hash /path/file.db
 *	made by storkmap (read-only, opened once); "texthash:/path/file"
 *	reads the text source into memory. A spec without "type:" is hash.
 *	Keys are looked up as given (callers lower-case addresses).
 *	Text source format: "key value..." per line ('#' comments, blank
 *	lines, continuation lines start with white space); with
 *	TABLE_ALIASES syntax (aliases(5)): "name: value, value".
 * DESCRIPTION
 *	table_open(spec, &why) → table or NULL.
 *	table_get(t, key, &val, &why) → 1 found (val holds the value,
 *	NUL-terminated), 0 not found, -1 error (why).
 *	table_build(spec, source_path, syntax, errors): storkmap/newaliases:
 *	parse the text file and write the .db atomically (temp file, fsync,
 *	rename); problems appended to errors as "PATH:LINE: ..." and counted
 *	in the return value; nothing is replaced when there are problems.
 *	Duplicate keys: the last one wins with a warning line in errors that
 *	is not counted.
 *	table_list(spec, fn, ctx): every key/value (for storkmap -s).
 *	table_changed(t): the file on disk is not the one opened (daemons
 *	may retire so the new one is used): the open file was unlinked or
 *	renamed over (works inside a chroot too), or the path now names
 *	another inode.
 * DETAILS
 *	table_build folds keys to lower case (as postmap does by default);
 *	texthash folds them too when it reads the source. Keys and values
 *	are stored with their terminating NUL (as Postfix's postmap writes
 *	them); lookups try the key with, then without the NUL. The build
 *	writes PATH.db.tmp.PID in the same directory, DB->sync, gives it
 *	the source file's mode (and owner, when run as root), fsyncs,
 *	renames it to PATH.db and fsyncs the directory.
 *	Aliases values are stored as written: trimmed, continuation lines
 *	joined with one space ("a, b, c"); the reader splits at commas
 *	(respecting double quotes for "|command, args").
 *	A spec "type:name" needs a known lower-case type; a spec whose
 *	prefix is not [a-z0-9_]+ followed by ':' is a hash path.
 *	The source parser is lib/table/table_text.h (internal).
 * OWNERSHIP
 *	table_close(&t) frees and NULLs.
 */
#include <stdbool.h>
#include "util/buf.h"

typedef struct table table_t;
typedef enum { TABLE_SYNTAX_MAP = 0, TABLE_SYNTAX_ALIASES = 1 } table_syntax_t;

table_t *table_open(const char *spec, const char **why_r);
int table_get(table_t *t, const char *key, buf_t *val_r, const char **why_r);
bool table_changed(table_t *t);
void table_close(table_t **t);
int table_build(const char *spec, const char *source_path, table_syntax_t syntax, buf_t *errors);
int table_list(const char *spec, void (*fn)(const char *key, const char *val, void *ctx),
               void *ctx, const char **why_r);

#endif
