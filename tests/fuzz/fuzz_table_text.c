/*
 * fuzz_table_text - libFuzzer target for lib/table/table_text.c
 *
 * Input: byte 0 picks the syntax (bit 0: aliases) and key folding
 * (bit 1); the rest is a table source file. Properties: the list is
 * sorted with unique keys, every key and value is a non-empty C string
 * without NUL, newline or leading/trailing white space in the value,
 * folded keys have no upper-case ASCII, every key can be found with
 * table_text_find, and a problem count matches the "NAME:LINE:" lines
 * that are not warnings.
 */
#include "fuzz.h"
#include "table/table_text.h"

/* count_problems - error lines that are not warnings */
static int count_problems(const buf_t *errors)
{
    const char *p = buf_cstr(errors);
    int n = 0;

    while (*p) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        const char *q = p + 5;              /* after "fuzz:" */

        while (*q >= '0' && *q <= '9')
            q++;
        if (strncmp(q, ": warning: ", 11) != 0)
            n++;
        p = nl + 1;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    table_text_t list = { 0 };
    buf_t errors;
    table_syntax_t syntax;
    bool fold;
    int problems;

    if (size < 1)
        return 0;
    syntax = (data[0] & 1) ? TABLE_SYNTAX_ALIASES : TABLE_SYNTAX_MAP;
    fold = (data[0] & 2) != 0;
    buf_init(&errors, BUF_NOLIMIT);
    problems = table_text_parse("fuzz", (const char *)data + 1, size - 1, syntax, fold,
                                &list, &errors);
    fuzz_check(problems >= 0);
    /* Inputs are far smaller than a line, so every problem has its line. */
    fuzz_check(problems == count_problems(&errors));
    for (size_t i = 0; i < list.n; i++) {
        const table_entry_t *e = &list.v[i];
        size_t vl = strlen(e->value);

        fuzz_check(e->key[0] != 0 && vl > 0);
        fuzz_check(strchr(e->key, '\n') == NULL && strchr(e->value, '\n') == NULL);
        fuzz_check(e->value[0] != ' ' && e->value[0] != '\t');
        fuzz_check(e->value[vl - 1] != ' ' && e->value[vl - 1] != '\t');
        fuzz_check(e->line >= 1);
        if (i > 0)
            fuzz_check(strcmp(list.v[i - 1].key, e->key) < 0);
        if (fold)
            for (const char *k = e->key; *k; k++)
                fuzz_check(!(*k >= 'A' && *k <= 'Z'));
        fuzz_check(table_text_find(&list, e->key) == e->value);
    }
    fuzz_check(table_text_find(&list, "\x01 not a key") == NULL || list.n > 0);
    table_text_free(&list);
    fuzz_check(list.v == NULL && list.n == 0);
    buf_free(&errors);
    return 0;
}
