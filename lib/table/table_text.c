/* table_text - parser for table source files (map and aliases syntax) */
#include "table/table_text.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The state of one parse: where problems go and what was collected. */
typedef struct parse_state {
    const char *name;
    table_syntax_t syntax;
    bool fold;
    table_text_t *out;
    buf_t *errors;
    int problems;
} parse_state_t;

/* problem - append "NAME:LINE: text" to errors and count it */
static void problem(parse_state_t *ps, unsigned line, const char *text, const char *arg)
{
    if (ps->errors)
        buf_printf(ps->errors, "%s:%u: %s%s%s%s\n", ps->name, line, text, arg ? " \"" : "",
                   arg ? arg : "", arg ? "\"" : "");
    ps->problems++;
}

/* warning - the same, uncounted */
static void warning(parse_state_t *ps, unsigned line, const char *text, const char *arg)
{
    if (ps->errors)
        buf_printf(ps->errors, "%s:%u: warning: %s \"%s\"\n", ps->name, line, text, arg);
}

/* add_entry - append one (key, value) to the output list */
static void add_entry(parse_state_t *ps, const char *key, size_t klen, const char *value,
                      unsigned line)
{
    table_text_t *l = ps->out;
    table_entry_t *e;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    e = &l->v[l->n++];
    e->key = xstrndup(key, klen);
    if (ps->fold)
        str_lower(e->key);
    e->value = xstrdup(value);
    e->line = line;
}

/* is_blank - space or tab */
static bool is_blank(int c)
{
    return c == ' ' || c == '\t';
}

/* parse_map - "key<white space>value" */
static void parse_map(parse_state_t *ps, char *s, unsigned line)
{
    size_t klen = strcspn(s, " \t");
    char *value = s + klen;

    str_trim(value);
    if (*value == 0) {
        problem(ps, line, "expected format: key whitespace value", NULL);
        return;
    }
    if (klen > 1 && s[klen - 1] == ':') {
        char *key = xstrndup(s, klen);

        warning(ps, line, "record is in \"key: value\" format; is this an alias file?", key);
        free(key);
    }
    add_entry(ps, s, klen, value, line);
}

/* parse_alias - "name: value, value" with an optionally quoted name */
static void parse_alias(parse_state_t *ps, char *s, unsigned line)
{
    char *key = s, *end, *value;

    if (*s == '"') {
        key = s + 1;
        if ((end = strchr(key, '"')) == NULL) {
            problem(ps, line, "unbalanced '\"' in alias name", NULL);
            return;
        }
        *end++ = 0;
        while (is_blank(*end))
            end++;
        if (*end != ':') {
            problem(ps, line, "expected format: name: value", NULL);
            return;
        }
        value = end + 1;
    } else {
        if ((end = strchr(s, ':')) == NULL) {
            problem(ps, line, "expected format: name: value", NULL);
            return;
        }
        *end = 0;
        value = end + 1;
        str_trim(key);
        if (key[strcspn(key, " \t")] != 0) {
            problem(ps, line, "white space in alias name (quote it):", key);
            return;
        }
    }
    if (*key == 0) {
        problem(ps, line, "empty alias name", NULL);
        return;
    }
    str_trim(value);
    if (*value == 0) {
        problem(ps, line, "no value for alias", key);
        return;
    }
    add_entry(ps, key, strlen(key), value, line);
}

/* flush - one complete logical line */
static void flush(parse_state_t *ps, buf_t *cur, unsigned line, bool bad)
{
    if (cur->len > 0 && !bad) {
        if (ps->syntax == TABLE_SYNTAX_ALIASES)
            parse_alias(ps, cur->data, line);
        else
            parse_map(ps, cur->data, line);
    }
    buf_reset(cur);
}

/* entry_cmp - order by key, then by position in the file */
static int entry_cmp(const void *a, const void *b)
{
    const table_entry_t *x = a, *y = b;
    int r = strcmp(x->key, y->key);

    if (r)
        return r;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* dedup - sort and keep the last of each key, warning about the others */
static void dedup(parse_state_t *ps)
{
    table_text_t *l = ps->out;
    size_t keep = 0;

    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
    for (size_t i = 0; i < l->n; i++) {
        if (i + 1 < l->n && strcmp(l->v[i].key, l->v[i + 1].key) == 0) {
            warning(ps, l->v[i + 1].line, "duplicate entry replaces an earlier one:",
                    l->v[i].key);
            free(l->v[i].key);
            free(l->v[i].value);
            continue;
        }
        l->v[keep++] = l->v[i];
    }
    l->n = keep;
}

/* table_text_parse - parse a whole source held in memory */
int table_text_parse(const char *name, const char *data, size_t len, table_syntax_t syntax,
                     bool fold, table_text_t *out, buf_t *errors)
{
    parse_state_t ps = { name, syntax, fold, out, errors, 0 };
    buf_t cur;
    unsigned lineno = 0, start = 0;
    bool bad = false;
    const char *p = data, *end = data + len;

    buf_init(&cur, TABLE_TEXT_MAX_LINE);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *q = p;
        size_t skip;

        p += n + (nl != NULL);
        lineno++;
        if (n > 0 && q[n - 1] == '\r')
            n--;
        for (skip = 0; skip < n && is_blank(q[skip]); skip++)
            ;
        if (skip == n || q[skip] == '#')
            continue;
        if (memchr(q, 0, n) != NULL) {
            problem(&ps, lineno, "NUL character in line", NULL);
            if (skip == 0) {
                flush(&ps, &cur, start, bad);
                start = lineno;
            }
            bad = true;
            continue;
        }
        if (skip == 0) {
            flush(&ps, &cur, start, bad);
            start = lineno;
            bad = false;
            if (buf_append(&cur, q, n) < 0) {
                problem(&ps, lineno, "line too long", NULL);
                bad = true;
            }
            continue;
        }
        if (start == 0) {
            problem(&ps, lineno, "continuation line without a preceding entry", NULL);
            start = lineno;
            bad = true;
            continue;
        }
        if (!bad && (buf_putc(&cur, ' ') < 0 || buf_append(&cur, q + skip, n - skip) < 0)) {
            problem(&ps, lineno, "logical line too long", NULL);
            bad = true;
        }
    }
    flush(&ps, &cur, start, bad);
    buf_free(&cur);
    dedup(&ps);
    return ps.problems;
}

/* read_all - the whole file into b; -1 with errno on failure */
static int read_all(int fd, buf_t *b)
{
    char chunk[65536];
    ssize_t n;

    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (buf_append(b, chunk, (size_t)n) < 0) {
            errno = EFBIG;
            return -1;
        }
    }
}

/* table_text_load - parse a source file */
int table_text_load(const char *path, table_syntax_t syntax, bool fold, table_text_t *out,
                    buf_t *errors)
{
    buf_t data;
    int fd, problems, saved;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errors)
            buf_printf(errors, "%s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    buf_init(&data, TABLE_TEXT_MAX_FILE);
    if (read_all(fd, &data) < 0) {
        saved = errno;
        close(fd);
        buf_free(&data);
        if (errors)
            buf_printf(errors, "%s: read error: %s\n", path, strerror(saved));
        return 1;
    }
    close(fd);
    problems = table_text_parse(path, buf_cstr(&data), data.len, syntax, fold, out, errors);
    buf_free(&data);
    return problems;
}

/* table_text_find - binary search of a parsed list */
const char *table_text_find(const table_text_t *list, const char *key)
{
    size_t lo = 0, hi = list->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(key, list->v[mid].key);

        if (r == 0)
            return list->v[mid].value;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* table_text_free - release the entries */
void table_text_free(table_text_t *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->v[i].key);
        free(list->v[i].value);
    }
    xfreep(&list->v);
    list->n = list->cap = 0;
}
