/* resolve_test - recipient classification with real tables and root */
#include "test/test.h"
#include "config/conf.h"
#include "mail/resolve.h"
#include "table/table.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/resolve_test.XXXXXX";

/* put - write a file in the test dir */
static void put(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *fp = fopen(p, "w");

    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
        msg_fatal("write %s", p);
    free(p);
}

/* build - table_build hash:DIR/name */
static void build(const char *name, table_syntax_t syntax)
{
    char *spec = xasprintf("hash:%s/%s", dir, name);
    buf_t err;

    buf_init(&err, BUF_NOLIMIT);
    if (table_build(spec, NULL, syntax, &err) != 0)
        msg_fatal("build %s: %s", spec, buf_cstr(&err));
    buf_free(&err);
    free(spec);
}

/* open_conf - main.cf with the test tables */
static conf_t *open_conf(const char *alias_maps)
{
    char *text = xasprintf(
        "mydestination = localhost, Example.ORG, hash:%s/mydest\n"
        "myorigin = example.org\n"
        "virtual_mailbox_domains = virt.example, %s/vdomains\n"
        "virtual_mailbox_maps = hash:%s/vmailbox\n"
        "virtual_alias_maps = hash:%s/valias\n"
        "alias_maps = %s\n"
        "recipient_delimiter = +\n"
        "inet_interfaces = all\n",
        dir, dir, dir, dir, alias_maps);
    const char *why;
    conf_t *conf;

    put("main.cf", text);
    free(text);
    if ((conf = conf_open(dir, &why)) == NULL)
        msg_fatal("conf_open: %s", why);
    return conf;
}

/* cls - "class/known" for addr, or "error" */
static const char *cls(resolve_t *r, const char *addr)
{
    static char out[128];
    resolve_result_t res;

    if (resolve_addr(r, addr, &res) < 0)
        return "error";
    snprintf(out, sizeof(out), "%s/%s/%s/%s", resolve_class_name(res.cls),
             res.cls == RESOLVE_REMOTE ? "-" : res.known ? "known" : "unknown", res.transport,
             res.nexthop);
    return out;
}

static void test_classes(void)
{
    char *aliases = xasprintf("hash:%s/aliases", dir);
    conf_t *conf = open_conf(aliases);
    const char *why;
    resolve_t *r = resolve_new(conf, &why);

    /* local: system user, aliases, extensions, case, no domain, literals */
    TEST_STREQ(cls(r, "root@example.org"), "local/known/local/example.org");
    TEST_STREQ(cls(r, "ROOT+ext@Example.ORG."), "local/known/local/example.org");
    TEST_STREQ(cls(r, "root"), "local/known/local/example.org");
    TEST_STREQ(cls(r, "root@localhost"), "local/known/local/localhost");
    TEST_STREQ(cls(r, "nosuchuser@example.org"), "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "nosuchuser+root@example.org"), "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "List@localhost"), "local/known/local/localhost");
    TEST_STREQ(cls(r, "list+tag@localhost"), "local/known/local/localhost");
    TEST_STREQ(cls(r, "only+ext@localhost"), "local/known/local/localhost");
    TEST_STREQ(cls(r, "only@localhost"), "local/unknown/local/localhost");
    TEST_STREQ(cls(r, "PostMaster@example.org"), "local/known/local/example.org");
    TEST_STREQ(cls(r, "postmaster+x@example.org"), "local/known/local/example.org");
    TEST_STREQ(cls(r, "root@mytable.example"), "local/known/local/mytable.example");
    TEST_STREQ(cls(r, "root@[127.0.0.1]"), "local/known/local/[127.0.0.1]");
    TEST_STREQ(cls(r, "root@[IPv6:::1]"), "local/known/local/[ipv6:::1]");
    TEST_STREQ(cls(r, "root@[192.0.2.1]"), "remote/-/smtp/[192.0.2.1]");
    TEST_STREQ(cls(r, "root@[999.1.1.1]"), "remote/-/smtp/[999.1.1.1]");

    /* no relay tricks: %-hack, bang paths, quoted '@', '/' */
    TEST_STREQ(cls(r, "root%remote.example@example.org"), "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "remote.example!root@example.org"), "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "root@remote.example@example.org"), "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "../root@example.org"), "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org"),
               "local/unknown/local/example.org");
    TEST_STREQ(cls(r, "remote.example!root"), "local/unknown/local/example.org");

    /* virtual */
    TEST_STREQ(cls(r, "user@virt.example"), "virtual/known/local/virt.example");
    TEST_STREQ(cls(r, "User+Tag@VIRT.example"), "virtual/known/local/virt.example");
    TEST_STREQ(cls(r, "other@virt.example"), "virtual/unknown/local/virt.example");
    TEST_STREQ(cls(r, "root@virt.example"), "virtual/unknown/local/virt.example");
    TEST_STREQ(cls(r, "postmaster@virt.example"), "virtual/known/local/virt.example");
    TEST_STREQ(cls(r, "sales@virt.example"), "virtual/known/local/virt.example");
    TEST_STREQ(cls(r, "anyone@catch.example"), "virtual/known/local/catch.example");
    TEST_STREQ(cls(r, "user%virt.example@catch.example"), "virtual/unknown/local/catch.example");

    /* remote */
    TEST_STREQ(cls(r, "bob@Remote.Example"), "remote/-/smtp/remote.example");
    TEST_STREQ(cls(r, "bob@sub.example.org"), "remote/-/smtp/sub.example.org");

    /* a rebuilt alias table is picked up by resolve_refresh */
    put("aliases", "list: a, b\nnewalias: root\n");
    build("aliases", TABLE_SYNTAX_ALIASES);
    TEST_STREQ(cls(r, "newalias@localhost"), "local/unknown/local/localhost");
    sleep(1);
    TEST_CHECK(resolve_refresh(r) >= 1);
    TEST_STREQ(cls(r, "newalias@localhost"), "local/known/local/localhost");
    TEST_STREQ(cls(r, "only+ext@localhost"), "local/unknown/local/localhost");

    resolve_free(&r);
    TEST_CHECK(r == NULL);
    conf_free(&conf);
    free(aliases);
}

static void test_table_errors(void)
{
    char *missing = xasprintf("hash:%s/missing", dir);
    conf_t *conf = open_conf(missing);
    const char *why;
    resolve_t *r = resolve_new(conf, &why);
    resolve_result_t res;

    TEST_INTEQ(resolve_addr(r, "root@localhost", &res), -1);
    TEST_CHECK(res.why != NULL && strstr(res.why, "missing") != NULL);
    TEST_STREQ(cls(r, "bob@remote.example"), "remote/-/smtp/remote.example");
    TEST_STREQ(cls(r, "user@virt.example"), "virtual/known/local/virt.example");
    /* once the table exists it is opened */
    put("missing", "x: root\n");
    build("missing", TABLE_SYNTAX_ALIASES);
    sleep(1);
    TEST_CHECK(resolve_refresh(r) >= 1);
    TEST_STREQ(cls(r, "x@localhost"), "local/known/local/localhost");
    resolve_free(&r);
    conf_free(&conf);
    free(missing);
}

/* cleanup - remove the test dir */
static void cleanup(void)
{
    DIR *d = opendir(dir);

    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] != '.') {
            char *p = xasprintf("%s/%s", dir, de->d_name);

            unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    put("aliases", "# test aliases\nlist: a,\n  b\nonly+ext: root\n");
    build("aliases", TABLE_SYNTAX_ALIASES);
    put("mydest", "mytable.example ok\n");
    build("mydest", TABLE_SYNTAX_MAP);
    put("vdomains", "# more virtual domains\ncatch.example\n");
    put("vmailbox", "user@virt.example :users/user/:\n");
    build("vmailbox", TABLE_SYNTAX_MAP);
    put("valias", "sales@virt.example user@virt.example\n@catch.example user@virt.example\n");
    build("valias", TABLE_SYNTAX_MAP);
    test_classes();
    test_table_errors();
    cleanup();
    return test_done();
}
