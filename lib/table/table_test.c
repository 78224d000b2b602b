/* table_test - lookup tables with real Berkeley DB files in a temp dir */
#include "test/test.h"
#include "table/table.h"
#include "table/table_text.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/table_test.XXXXXX";

/* path - a file name in the temp dir (static, one at a time per slot) */
static const char *path(int slot, const char *name)
{
    static char bufs[4][512];

    snprintf(bufs[slot], sizeof(bufs[slot]), "%s/%s", tmpdir, name);
    return bufs[slot];
}

/* write_file - create a file with content */
static void write_file(const char *p, const char *content)
{
    FILE *fp = fopen(p, "w");

    if (fp == NULL)
        abort();
    fputs(content, fp);
    fclose(fp);
}

/* get - look up key, "" when absent, "ERROR" on error */
static const char *get(table_t *t, const char *key)
{
    static buf_t v;
    const char *why;
    int r;

    if (v.limit == 0)
        buf_init(&v, 65536);
    r = table_get(t, key, &v, &why);
    if (r < 0)
        return "ERROR";
    if (r == 0)
        return "";
    return buf_cstr(&v);
}

static void test_parse(void)
{
    table_text_t l = { NULL, 0, 0 };
    buf_t err;
    static const char src0[] = "# comment\n"
                      "Foo   bar baz  \r\n"
                      "\n"
                      "cont first\n"
                      "   # a comment inside\n"
                      "\tsecond  \n"
                      "novalue\n"
                      "foo again\n"
                      "bad\0nul x\n";
    const char *src = src0;

    buf_init(&err, BUF_NOLIMIT);
    TEST_INTEQ(table_text_parse("src", src, sizeof(src0) - 1, TABLE_SYNTAX_MAP, true, &l, &err),
               2);
    TEST_INTEQ(l.n, 2);
    TEST_STREQ(table_text_find(&l, "foo"), "again");
    TEST_STREQ(table_text_find(&l, "cont"), "first second");
    TEST_CHECK(table_text_find(&l, "Foo") == NULL);
    TEST_CHECK(strstr(buf_cstr(&err), "src:7: expected format: key whitespace value") != NULL);
    TEST_CHECK(strstr(buf_cstr(&err), "src:9: NUL character") != NULL);
    TEST_CHECK(strstr(buf_cstr(&err), "src:8: warning: duplicate entry") != NULL);
    table_text_free(&l);

    buf_reset(&err);
    src = " leading continuation\nkey: value\n";
    TEST_INTEQ(table_text_parse("m", src, strlen(src), TABLE_SYNTAX_MAP, false, &l, &err), 1);
    TEST_CHECK(strstr(buf_cstr(&err), "m:1: continuation line without") != NULL);
    TEST_CHECK(strstr(buf_cstr(&err), "m:2: warning: record is in \"key: value\"") != NULL);
    TEST_STREQ(table_text_find(&l, "key:"), "value");
    table_text_free(&l);

    buf_reset(&err);
    src = "Postmaster: root\n"
          "list:  a@example.com,\n"
          "   b@example.com ,\n"
          "\n"
          "\tc\n"
          "\"quoted name\" : \"|/bin/cmd, x\"\n"
          "nocolon value\n"
          "empty:\n"
          "white space: x\n";
    TEST_INTEQ(table_text_parse("al", src, strlen(src), TABLE_SYNTAX_ALIASES, true, &l, &err), 3);
    TEST_STREQ(table_text_find(&l, "postmaster"), "root");
    TEST_STREQ(table_text_find(&l, "list"), "a@example.com, b@example.com , c");
    TEST_STREQ(table_text_find(&l, "quoted name"), "\"|/bin/cmd, x\"");
    TEST_CHECK(strstr(buf_cstr(&err), "al:7: expected format: name: value") != NULL);
    TEST_CHECK(strstr(buf_cstr(&err), "al:8: no value for alias \"empty\"") != NULL);
    TEST_CHECK(strstr(buf_cstr(&err), "al:9: white space in alias name") != NULL);
    table_text_free(&l);
    buf_free(&err);
}

static void test_hash(void)
{
    buf_t err;
    table_t *t, *t2;
    const char *why;
    struct stat st;
    char spec[600];
    int n;

    buf_init(&err, BUF_NOLIMIT);
    write_file(path(0, "virtual"), "# users\nUser@Example.COM  pw:dir/:10m\nother@example.com x y\n");
    chmod(path(0, "virtual"), 0640);
    snprintf(spec, sizeof(spec), "hash:%s", path(0, "virtual"));
    TEST_INTEQ(table_build(spec, NULL, TABLE_SYNTAX_MAP, &err), 0);
    TEST_STREQ(buf_cstr(&err), "");
    TEST_INTEQ(stat(path(1, "virtual.db"), &st), 0);
    TEST_INTEQ(st.st_mode & 07777, 0640);
    t = table_open(spec, &why);
    TEST_CHECK(t != NULL);
    if (t == NULL)
        return;
    TEST_STREQ(get(t, "user@example.com"), "pw:dir/:10m");
    TEST_STREQ(get(t, "User@Example.COM"), "");      /* keys are looked up as given */
    TEST_STREQ(get(t, "other@example.com"), "x y");
    TEST_STREQ(get(t, "nobody@example.com"), "");
    TEST_STREQ(get(t, ""), "");
    TEST_CHECK(!table_changed(t));

    /* A source with errors replaces nothing and names PATH:LINE. */
    write_file(path(0, "virtual"), "ok@example.com v\nbroken\n");
    TEST_INTEQ(table_build(spec, NULL, TABLE_SYNTAX_MAP, &err), 1);
    TEST_CHECK(strstr(buf_cstr(&err), "/virtual:2: expected format") != NULL);
    TEST_CHECK(!table_changed(t));
    TEST_STREQ(get(t, "user@example.com"), "pw:dir/:10m");

    /* A rebuild replaces the file atomically: the open table keeps reading
     * the old one and notices the change; a new open sees the new data. */
    buf_reset(&err);
    write_file(path(0, "virtual"), "ok@example.com v2\n");
    TEST_INTEQ(table_build(spec, NULL, TABLE_SYNTAX_MAP, &err), 0);
    TEST_CHECK(table_changed(t));
    TEST_STREQ(get(t, "user@example.com"), "pw:dir/:10m");
    t2 = table_open(spec, &why);
    TEST_CHECK(t2 != NULL);
    if (t2) {
        TEST_STREQ(get(t2, "ok@example.com"), "v2");
        TEST_STREQ(get(t2, "user@example.com"), "");
        TEST_CHECK(!table_changed(t2));
        table_close(&t2);
        TEST_CHECK(t2 == NULL);
    }
    table_close(&t);

    /* No temporary file is left behind. */
    n = 0;
    DIR *d = opendir(tmpdir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        if (strstr(de->d_name, ".tmp."))
            n++;
    if (d)
        closedir(d);
    TEST_INTEQ(n, 0);

    /* Removing the file also counts as changed. */
    t = table_open(spec, &why);
    TEST_CHECK(t != NULL);
    unlink(path(1, "virtual.db"));
    TEST_CHECK(t && table_changed(t));
    table_close(&t);
    t = table_open(spec, &why);
    TEST_CHECK(t == NULL);
    TEST_CHECK(t == NULL && strstr(why, "virtual.db") != NULL);
    buf_free(&err);
}

static int list_count;

static void count_fn(const char *key, const char *val, void *ctx)
{
    list_count++;
    if (strcmp(key, "list") == 0)
        TEST_STREQ(val, "a, b, c");
}

static void test_aliases(void)
{
    buf_t err;
    table_t *t;
    const char *why;
    char spec[600];

    buf_init(&err, BUF_NOLIMIT);
    write_file(path(0, "aliases"), "# aliases(5)\n"
               "MAILER-DAEMON: postmaster\n"
               "postmaster: root\n"
               "list: a,\n"
               "  b,\n"
               "  c\n"
               "list: a, b, c\n");
    snprintf(spec, sizeof(spec), "%s", path(0, "aliases"));   /* no type: hash */
    TEST_INTEQ(table_build(spec, NULL, TABLE_SYNTAX_ALIASES, &err), 0);
    TEST_CHECK(strstr(buf_cstr(&err), "aliases:7: warning: duplicate") != NULL);
    t = table_open(spec, &why);
    TEST_CHECK(t != NULL);
    if (t) {
        TEST_STREQ(get(t, "mailer-daemon"), "postmaster");
        TEST_STREQ(get(t, "list"), "a, b, c");
        table_close(&t);
    }
    list_count = 0;
    TEST_INTEQ(table_list(spec, count_fn, NULL, &why), 0);
    TEST_INTEQ(list_count, 3);

    /* A separate source path (newaliases-style: build hash:X from Y). */
    buf_reset(&err);
    snprintf(spec, sizeof(spec), "hash:%s", path(1, "aliases2"));
    TEST_INTEQ(table_build(spec, path(0, "aliases"), TABLE_SYNTAX_ALIASES, &err), 0);
    t = table_open(spec, &why);
    TEST_CHECK(t != NULL && strcmp(get(t, "postmaster"), "root") == 0);
    table_close(&t);
    buf_free(&err);
}

static void test_texthash_and_specs(void)
{
    table_t *t;
    const char *why;
    char spec[600];
    buf_t err;

    write_file(path(0, "th"), "Key value one\nk2 v2\n");
    snprintf(spec, sizeof(spec), "texthash:%s", path(0, "th"));
    t = table_open(spec, &why);
    TEST_CHECK(t != NULL);
    if (t) {
        TEST_STREQ(get(t, "key"), "value one");
        TEST_STREQ(get(t, "k3"), "");
        TEST_CHECK(!table_changed(t));
        write_file(path(0, "th.new"), "k v\n");
        rename(path(0, "th.new"), path(1, "th"));
        TEST_CHECK(table_changed(t));
        table_close(&t);
    }
    write_file(path(0, "th"), "k v\nbad\n");
    t = table_open(spec, &why);
    TEST_CHECK(t == NULL && strstr(why, "/th:2: expected format") != NULL);

    t = table_open("nosuch:/x", &why);
    TEST_CHECK(t == NULL && strstr(why, "unsupported table type \"nosuch\"") != NULL);
    t = table_open("hash:", &why);
    TEST_CHECK(t == NULL && strstr(why, "missing file name") != NULL);
    buf_init(&err, BUF_NOLIMIT);
    TEST_INTEQ(table_build(spec, NULL, TABLE_SYNTAX_MAP, &err), 1);
    TEST_CHECK(strstr(buf_cstr(&err), "cannot be built") != NULL);
    buf_reset(&err);
    TEST_INTEQ(table_build("hash:/nonexistent/dir/x", NULL, TABLE_SYNTAX_MAP, &err), 1);
    TEST_CHECK(strstr(buf_cstr(&err), "/nonexistent/dir/x: cannot open") != NULL);
    buf_free(&err);
}

/* cleanup - remove the temp dir */
static void cleanup(void)
{
    DIR *d = opendir(tmpdir);

    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.')
            unlink(path(3, de->d_name));
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    test_parse();
    test_hash();
    test_aliases();
    test_texthash_and_specs();
    cleanup();
    return test_done();
}
