#ifndef STORK_TABLE_IMPL_H
#define STORK_TABLE_IMPL_H
/*
 * NAME
 *	table_impl - the table type vtable (private to lib/table)
 * DESCRIPTION
 *	Each table type supplies a table_ops_t. table.c parses the spec,
 *	finds the type, allocates the table_t and calls ops->open(t, &why),
 *	which sets t->priv and t->stat_fd (a descriptor of the file it
 *	read, for table_changed) and t->file (the path of that file).
 *	build is NULL for types that cannot be built from a text source.
 *	All why_r strings may point into t->why (owned by the table).
 */
#include <sys/types.h>
#include "table/table.h"
#include "table/table_text.h"

typedef struct table_ops {
    const char *type;
    int (*open)(table_t *t, const char **why_r);
    int (*get)(table_t *t, const char *key, buf_t *val_r, const char **why_r);
    int (*list)(table_t *t, void (*fn)(const char *key, const char *val, void *ctx), void *ctx,
                const char **why_r);
    void (*close)(table_t *t);
    /* build - write the table for path from parsed entries; -1 + why */
    int (*build)(const char *path, const char *source_path, const table_text_t *ents,
                 buf_t *why);
} table_ops_t;

struct table {
    const table_ops_t *ops;
    char *path;        /* the name part of the spec */
    char *file;        /* the file actually opened (path.db for hash) */
    int stat_fd;       /* a descriptor of that file, or -1 */
    dev_t dev;
    ino_t ino;
    buf_t why;
    void *priv;
};

extern const table_ops_t table_hash_ops;
extern const table_ops_t table_texthash_ops;

#endif
