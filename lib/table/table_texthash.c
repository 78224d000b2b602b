/* table_texthash - "texthash:PATH": the text source, parsed into memory */
#include "table/table_impl.h"
#include "util/xmalloc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Keys are folded to lower case, as table_build does for hash tables, so
 * a texthash and the hash made from the same source answer alike. Any
 * problem in the source fails the open: a daemon must not run with half
 * a table.
 */

/* texthash_open - parse the file */
static int texthash_open(table_t *t, const char **why_r)
{
    table_text_t *list = xcalloc(1, sizeof(*list));
    buf_t errors;
    int problems;

    t->file = xstrdup(t->path);
    t->stat_fd = open(t->file, O_RDONLY | O_CLOEXEC);
    buf_init(&errors, 4096);
    problems = table_text_load(t->file, TABLE_SYNTAX_MAP, true, list, &errors);
    if (problems > 0) {
        char *nl = strchr(buf_cstr(&errors), '\n');

        buf_append(&t->why, buf_cstr(&errors), nl ? (size_t)(nl - errors.data) : errors.len);
        if (problems > 1)
            buf_printf(&t->why, " (and %d more)", problems - 1);
        buf_free(&errors);
        table_text_free(list);
        free(list);
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    buf_free(&errors);
    t->priv = list;
    return 0;
}

/* texthash_get - binary search */
static int texthash_get(table_t *t, const char *key, buf_t *val_r, const char **why_r)
{
    const char *v = table_text_find(t->priv, key);

    if (v == NULL)
        return 0;
    buf_reset(val_r);
    if (buf_puts(val_r, v) < 0) {
        buf_reset(&t->why);
        buf_printf(&t->why, "%s: value for \"%s\" too long", t->file, key);
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    return 1;
}

/* texthash_list - every entry, in key order */
static int texthash_list(table_t *t, void (*fn)(const char *, const char *, void *), void *ctx,
                         const char **why_r)
{
    const table_text_t *list = t->priv;

    for (size_t i = 0; i < list->n; i++)
        fn(list->v[i].key, list->v[i].value, ctx);
    return 0;
}

/* texthash_close - free the entries */
static void texthash_close(table_t *t)
{
    if (t->priv) {
        table_text_free(t->priv);
        free(t->priv);
    }
    t->priv = NULL;
}

const table_ops_t table_texthash_ops = {
    "texthash", texthash_open, texthash_get, texthash_list, texthash_close, NULL,
};
