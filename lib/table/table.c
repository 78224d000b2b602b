/* table - the "type:name" lookup-table API over a vtable of table types */
#include "table/table_impl.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every table type; a new type (pgsql, ldap) is one more entry. */
static const table_ops_t *const table_types[] = {
    &table_hash_ops,
    &table_texthash_ops,
};

/* Text for failures before a table exists (daemons are single-threaded). */
static buf_t table_open_why;

/* table_spec_parse - split "type:name"; a spec without a type is hash */
static const table_ops_t *table_spec_parse(const char *spec, const char **path_r,
                                           const char **why_r)
{
    size_t tlen = strspn(spec, "abcdefghijklmnopqrstuvwxyz0123456789_");

    if (table_open_why.limit == 0)
        buf_init(&table_open_why, 4096);
    buf_reset(&table_open_why);
    if (spec[tlen] != ':' || tlen == 0) {
        *path_r = spec;
        if (*spec == 0) {
            *why_r = "empty table name";
            return NULL;
        }
        return &table_hash_ops;
    }
    *path_r = spec + tlen + 1;
    if (**path_r == 0) {
        buf_printf(&table_open_why, "%s: missing file name", spec);
        *why_r = buf_cstr(&table_open_why);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(table_types) / sizeof(table_types[0]); i++)
        if (strlen(table_types[i]->type) == tlen && strncmp(spec, table_types[i]->type, tlen) == 0)
            return table_types[i];
    buf_printf(&table_open_why, "%s: unsupported table type \"%.*s\"", spec, (int)tlen, spec);
    *why_r = buf_cstr(&table_open_why);
    return NULL;
}

/* table_new - an empty table of a type */
static table_t *table_new(const table_ops_t *ops, const char *path)
{
    table_t *t = xcalloc(1, sizeof(*t));

    t->ops = ops;
    t->path = xstrdup(path);
    t->stat_fd = -1;
    buf_init(&t->why, 4096);
    return t;
}

/* table_open - open a table by spec */
table_t *table_open(const char *spec, const char **why_r)
{
    const table_ops_t *ops;
    const char *path, *why;
    table_t *t;
    struct stat st;

    if ((ops = table_spec_parse(spec, &path, why_r)) == NULL)
        return NULL;
    t = table_new(ops, path);
    if (ops->open(t, &why) < 0) {
        buf_puts(&table_open_why, why);
        *why_r = buf_cstr(&table_open_why);
        table_close(&t);
        return NULL;
    }
    if (t->stat_fd >= 0 && fstat(t->stat_fd, &st) == 0) {
        t->dev = st.st_dev;
        t->ino = st.st_ino;
    }
    return t;
}

/* table_get - look up one key */
int table_get(table_t *t, const char *key, buf_t *val_r, const char **why_r)
{
    if (*key == 0)
        return 0;
    buf_reset(&t->why);
    return t->ops->get(t, key, val_r, why_r);
}

/*
 * table_changed - was the file replaced or removed since we opened it?
 * A rebuild renames a new file over the old one, which leaves the open
 * file with no links; that test works even inside a chroot where the
 * path no longer resolves. Where the path resolves, a different inode
 * also counts.
 */
bool table_changed(table_t *t)
{
    struct stat st;

    if (t->stat_fd < 0)
        return false;
    if (fstat(t->stat_fd, &st) == 0 && st.st_nlink == 0)
        return true;
    if (stat(t->file, &st) == 0)
        return st.st_dev != t->dev || st.st_ino != t->ino;
    return false;
}

/* table_close - release the table and NULL the pointer */
void table_close(table_t **tp)
{
    table_t *t = *tp;

    if (t == NULL)
        return;
    if (t->priv)
        t->ops->close(t);
    if (t->stat_fd >= 0)
        close(t->stat_fd);
    free(t->path);
    free(t->file);
    buf_free(&t->why);
    free(t);
    *tp = NULL;
}

/* table_build - text source → table file; returns the number of problems */
int table_build(const char *spec, const char *source_path, table_syntax_t syntax, buf_t *errors)
{
    const table_ops_t *ops;
    const char *path, *why;
    table_text_t ents = { NULL, 0, 0 };
    buf_t bwhy;
    int problems;

    if ((ops = table_spec_parse(spec, &path, &why)) == NULL) {
        buf_printf(errors, "%s\n", why);
        return 1;
    }
    if (ops->build == NULL) {
        buf_printf(errors, "%s: table type %s cannot be built; it is read as is\n", spec,
                   ops->type);
        return 1;
    }
    if (source_path == NULL)
        source_path = path;
    problems = table_text_load(source_path, syntax, true, &ents, errors);
    if (problems == 0) {
        buf_init(&bwhy, 4096);
        if (ops->build(path, source_path, &ents, &bwhy) < 0) {
            buf_printf(errors, "%s: %s\n", spec, buf_cstr(&bwhy));
            problems = 1;
        }
        buf_free(&bwhy);
    }
    table_text_free(&ents);
    return problems;
}

/* table_list - call fn for every entry of a table */
int table_list(const char *spec, void (*fn)(const char *key, const char *val, void *ctx),
               void *ctx, const char **why_r)
{
    table_t *t = table_open(spec, why_r);
    const char *why;
    int ret;

    if (t == NULL)
        return -1;
    if ((ret = t->ops->list(t, fn, ctx, &why)) < 0) {
        buf_reset(&table_open_why);
        buf_puts(&table_open_why, why);
        *why_r = buf_cstr(&table_open_why);
    }
    table_close(&t);
    return ret;
}
