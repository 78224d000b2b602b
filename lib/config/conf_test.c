/* conf_test - unit tests for main.cf parsing, expansion and validation */
#include "test/test.h"
#include "config/conf.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char test_dir[] = "/tmp/conf_test.XXXXXX";

/* write_main_cf - replace the test main.cf */
static void write_main_cf(const char *text)
{
    char *path = xasprintf("%s/main.cf", test_dir);
    FILE *fp = fopen(path, "w");

    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
        msg_fatal("write %s", path);
    free(path);
}

/* open_text - conf_open over the given main.cf text */
static conf_t *open_text(const char *text, const char **why)
{
    write_main_cf(text);
    return conf_open(test_dir, why);
}

/* validate - conf_validate with the error text in errs (caller frees) */
static int validate(conf_t *conf, buf_t *errs)
{
    buf_init(errs, BUF_NOLIMIT);
    return conf_validate(conf, errs);
}

static void test_defaults(void)
{
    const char *why = NULL;
    conf_t *conf;
    buf_t errs;
    char *path = xasprintf("%s/main.cf", test_dir);

    unlink(path);
    free(path);
    conf = conf_open(test_dir, &why);       /* missing main.cf: all defaults */
    TEST_CHECK(conf != NULL);
    TEST_INTEQ(validate(conf, &errs), 0);   /* every compiled-in default is valid */
    if (errs.len)
        fprintf(stderr, "%s", buf_cstr(&errs));
    buf_free(&errs);
    TEST_STREQ(conf_config_dir(conf), test_dir);
    TEST_STREQ(conf_str(conf, "config_directory"), test_dir);
    TEST_INTEQ(conf_int(conf, "default_process_limit"), 100);
    TEST_INTEQ(conf_int(conf, "ipc_timeout"), 3600);
    TEST_CHECK(conf_bool(conf, "smtputf8_enable"));
    TEST_CHECK(strlen(conf_str(conf, "myhostname")) > 0);
    TEST_CHECK(strlen(conf_str(conf, "mydomain")) > 0);
    TEST_STREQ(conf_str(conf, "myorigin"), conf_str(conf, "myhostname"));
    char *alias = xasprintf("hash:%s/aliases", test_dir);
    TEST_STREQ(conf_str(conf, "alias_database"), alias);
    free(alias);
    TEST_CHECK(conf_is_known("queue_directory"));
    TEST_CHECK(!conf_is_known("no_such_parameter"));
    TEST_CHECK(conf_param_lookup("message_size_limit")->type == CONF_SIZE);
    conf_free(&conf);
    TEST_CHECK(conf == NULL);
}

static void test_parse(void)
{
    const char *why = NULL;
    conf_t *conf;
    buf_t errs;
    char **list;

    conf = open_text("# comment\n"
                     "\n"
                     "myhostname = mail.example.com\n"
                     "mydestination = $myhostname,\n"
                     "    localhost.$mydomain\n"
                     "  # a comment inside a continued value is skipped\n"
                     "\tfoo.example\r\n"
                     "message_size_limit=20m\n"
                     "max_idle = 5m   \n"
                     "smtputf8_enable = no\n"
                     "recipient_delimiter =\n", &why);
    TEST_CHECK(conf != NULL);
    if (conf == NULL) {
        fprintf(stderr, "%s\n", why);
        return;
    }
    TEST_INTEQ(validate(conf, &errs), 0);
    buf_free(&errs);
    TEST_STREQ(conf_str(conf, "mydomain"), "example.com");
    TEST_STREQ(conf_str(conf, "mydestination"),
               "mail.example.com, localhost.example.com foo.example");
    list = conf_list(conf, "mydestination");
    TEST_STREQ(list[0], "mail.example.com");
    TEST_STREQ(list[1], "localhost.example.com");
    TEST_STREQ(list[2], "foo.example");
    TEST_CHECK(list[3] == NULL);
    TEST_INTEQ(conf_int(conf, "message_size_limit"), 20 * 1024 * 1024);
    TEST_INTEQ(conf_int(conf, "max_idle"), 300);
    TEST_CHECK(!conf_bool(conf, "smtputf8_enable"));
    TEST_STREQ(conf_str(conf, "recipient_delimiter"), "");
    TEST_CHECK(conf_list(conf, "recipient_delimiter")[0] == NULL);
    conf_free(&conf);

    /* Syntax errors name file:line. */
    conf = open_text("myhostname = a\nthis is wrong\n", &why);
    TEST_CHECK(conf == NULL);
    TEST_CHECK(why && strstr(why, "/main.cf:2: missing '='"));
    conf = open_text("  leading = continuation\n", &why);
    TEST_CHECK(conf == NULL);
    TEST_CHECK(why && strstr(why, "/main.cf:1: continuation line"));
    conf = open_text("a.b = c\n", &why);
    TEST_CHECK(conf == NULL);
    TEST_CHECK(why && strstr(why, "main.cf:1:"));

    /* Last assignment wins. */
    conf = open_text("myhostname = a.example\nmyhostname = b.example\n", &why);
    TEST_STREQ(conf_str(conf, "myhostname"), "b.example");
    conf_free(&conf);
}

static void test_expand(void)
{
    const char *why = NULL;
    conf_t *conf;
    buf_t errs;

    conf = open_text("myhostname = h.$mydomain\n"
                     "mydomain = example.org\n"
                     "myorigin = ${myhostname}/$(mydomain)/$$literal/$$$mydomain\n"
                     "syslog_name = x${recipient_delimiter?[set]}${default_privs:[empty]}y\n"
                     "home_mailbox = $home/Maildir/$unknown_thing\n"
                     "default_privs =\n", &why);
    TEST_CHECK(conf != NULL);
    TEST_INTEQ(validate(conf, &errs), 0);
    buf_free(&errs);
    TEST_STREQ(conf_str(conf, "myhostname"), "h.example.org");
    TEST_STREQ(conf_str(conf, "myorigin"), "h.example.org/example.org/$literal/$example.org");
    TEST_STREQ(conf_str(conf, "syslog_name"), "x[set][empty]y");
    /* Undeclared names are left as written (local expands $home itself). */
    TEST_STREQ(conf_str(conf, "home_mailbox"), "$home/Maildir/$unknown_thing");
    conf_free(&conf);

    /* A reference loop is capped and reported. */
    conf = open_text("myhostname = $myorigin\nmyorigin = ${myhostname}\n", &why);
    TEST_CHECK(conf != NULL);
    TEST_CHECK(validate(conf, &errs) >= 2);
    TEST_CHECK(strstr(buf_cstr(&errs), "main.cf:1: myhostname: expansion too deep") != NULL);
    TEST_CHECK(strstr(buf_cstr(&errs), "main.cf:2: myorigin: expansion too deep") != NULL);
    buf_free(&errs);
    (void)conf_str(conf, "myhostname");     /* must return, not hang */
    conf_free(&conf);

    /* Exponential blow-up is capped by length. */
    conf = open_text("mydomain = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
                     "myhostname = $mydomain$mydomain$mydomain$mydomain$mydomain$mydomain\n"
                     "myorigin = $myhostname$myhostname$myhostname$myhostname$myhostname\n"
                     "syslog_name = $myorigin$myorigin$myorigin$myorigin$myorigin$myorigin\n"
                     "default_privs = $syslog_name$syslog_name$syslog_name$syslog_name"
                     "$syslog_name$syslog_name$syslog_name$syslog_name\n", &why);
    TEST_CHECK(conf != NULL);
    TEST_CHECK(validate(conf, &errs) >= 1);
    TEST_CHECK(strstr(buf_cstr(&errs), "default_privs: expansion too long") != NULL);
    buf_free(&errs);
    conf_free(&conf);

    /* fuzz_conf: short or empty values defeat the length cap. Nested
     * references are remembered, so this is 10 expansions, not 16^9
     * (which never finished). */
    {
        static const char *const chain[] = {
            "alias_maps", "default_privs", "home_mailbox", "mydestination", "mydomain",
            "myhostname", "myorigin", "recipient_delimiter", "relayhost", "syslog_name",
        };
        size_t n = sizeof(chain) / sizeof(chain[0]);
        buf_t text;

        buf_init(&text, BUF_NOLIMIT);
        for (size_t i = 0; i + 1 < n; i++) {
            buf_printf(&text, "%s =", chain[i]);
            for (int k = 0; k < 16; k++)
                buf_printf(&text, "${%s}", chain[i + 1]);
            buf_putc(&text, '\n');
        }
        buf_printf(&text, "%s =\n", chain[n - 1]);
        conf = open_text(buf_cstr(&text), &why);
        buf_free(&text);
        TEST_CHECK(conf != NULL);
        TEST_INTEQ(validate(conf, &errs), 0);
        buf_free(&errs);
        TEST_STREQ(conf_str(conf, "alias_maps"), "");
        conf_free(&conf);
    }

    /* Bad reference syntax. */
    conf = open_text("myorigin = ${myhostname\n", &why);
    TEST_CHECK(validate(conf, &errs) == 1);
    TEST_CHECK(strstr(buf_cstr(&errs), "main.cf:1: myorigin: missing closing") != NULL);
    buf_free(&errs);
    conf_free(&conf);
}

static void test_validate(void)
{
    const char *why = NULL;
    conf_t *conf;
    buf_t errs;

    conf = open_text("myhostname = ok.example\n"
                     "no_such_param = 1\n"
                     "message_size_limit = abc\n"
                     "max_idle = 10x\n"
                     "smtputf8_enable = maybe\n"
                     "default_process_limit = 0\n"
                     "max_use = 12abc\n", &why);
    TEST_CHECK(conf != NULL);
    TEST_INTEQ(validate(conf, &errs), 6);
    const char *e = buf_cstr(&errs);
    TEST_CHECK(strstr(e, "main.cf:2: unknown parameter name: no_such_param\n") != NULL);
    TEST_CHECK(strstr(e, "main.cf:3: message_size_limit: bad size value \"abc\"\n") != NULL);
    TEST_CHECK(strstr(e, "main.cf:4: max_idle: bad time value \"10x\"\n") != NULL);
    TEST_CHECK(strstr(e, "main.cf:5: smtputf8_enable: bad boolean value \"maybe\"\n") != NULL);
    TEST_CHECK(strstr(e, "main.cf:6: default_process_limit: value out of range 1..100000") != NULL);
    TEST_CHECK(strstr(e, "main.cf:7: max_use: bad integer value") != NULL);
    buf_free(&errs);
    /* Unvalidated bad values fall back to the default. */
    TEST_INTEQ(conf_int(conf, "message_size_limit"), 10240000);
    TEST_INTEQ(conf_int(conf, "default_process_limit"), 100);
    TEST_CHECK(conf_bool(conf, "smtputf8_enable"));
    conf_free(&conf);
}

static void test_override(void)
{
    const char *why = NULL, *held;
    conf_t *conf;
    buf_t errs;

    conf = open_text("myhostname = a.example\nmyorigin = $myhostname\n", &why);
    held = conf_str(conf, "myorigin");
    TEST_STREQ(held, "a.example");
    TEST_INTEQ(conf_override(conf, "myhostname=b.example", &why), 0);
    TEST_STREQ(conf_str(conf, "myorigin"), "b.example");   /* cache invalidated */
    TEST_STREQ(held, "a.example");                         /* old string still valid */
    TEST_INTEQ(conf_override(conf, " max_idle = 7s ", &why), 0);
    TEST_INTEQ(conf_int(conf, "max_idle"), 7);
    TEST_INTEQ(conf_override(conf, "nonsense", &why), -1);
    TEST_CHECK(strstr(why, "missing '='") != NULL);
    TEST_INTEQ(conf_override(conf, "bogus_name=1", &why), -1);
    TEST_CHECK(strstr(why, "unknown parameter name: bogus_name") != NULL);
    TEST_INTEQ(conf_override(conf, "max_use=lots", &why), 0);
    TEST_INTEQ(validate(conf, &errs), 2);
    TEST_CHECK(strstr(buf_cstr(&errs), "override: unknown parameter name: bogus_name\n") != NULL);
    TEST_CHECK(strstr(buf_cstr(&errs), "override: max_use: bad integer value \"lots\"\n") != NULL);
    buf_free(&errs);
    conf_free(&conf);

    /* fuzz_conf: a long list survives an override (its items are buried,
     * which once cost a realloc each: quadratic, seconds under ASan). */
    {
        buf_t text;
        char **held_list;

        buf_init(&text, BUF_NOLIMIT);
        buf_puts(&text, "mydestination =");
        for (int i = 0; i < 20000; i++)
            buf_puts(&text, " d");
        buf_putc(&text, '\n');
        conf = open_text(buf_cstr(&text), &why);
        buf_free(&text);
        held_list = conf_list(conf, "mydestination");
        TEST_CHECK(held_list[19999] != NULL && held_list[20000] == NULL);
        TEST_INTEQ(conf_override(conf, "mydestination=x", &why), 0);
        TEST_STREQ(conf_list(conf, "mydestination")[0], "x");
        TEST_STREQ(held_list[19999], "d");                  /* still valid */
        conf_free(&conf);
    }
}

/* foreach_count - conf_foreach callback: count and check order */
static void foreach_count(const char *name, const char *value, void *ctx)
{
    static char last[128];
    int *n = ctx;

    TEST_CHECK(strcmp(last, name) < 0);
    snprintf(last, sizeof(last), "%s", name);
    if (strcmp(name, "mydomain") == 0 && value[0] == 0)
        TEST_CHECK(0);
    (*n)++;
}

/* foreach_collect - conf_foreach callback: "name=value\n" */
static void foreach_collect(const char *name, const char *value, void *ctx)
{
    buf_printf(ctx, "%s=%s\n", name, value);
}

static void test_foreach(void)
{
    const char *why = NULL;
    conf_t *conf;
    int n = 0;
    buf_t out;

    conf = open_text("myhostname = m.example\nmax_use = 5\n", &why);
    conf_foreach(conf, 0, foreach_count, &n);
    TEST_CHECK(n > 30);
    buf_init(&out, BUF_NOLIMIT);
    conf_foreach(conf, CONF_FOREACH_NONDEFAULT, foreach_collect, &out);
    TEST_STREQ(buf_cstr(&out), "max_use=5\nmyhostname=m.example\n");
    buf_reset(&out);
    conf_foreach(conf, CONF_FOREACH_DEFAULTS, foreach_collect, &out);
    TEST_CHECK(strstr(buf_cstr(&out), "\nmyorigin=$myhostname\n") != NULL);
    TEST_CHECK(strstr(buf_cstr(&out), "\nmax_use=1000\n") != NULL);
    buf_free(&out);
    conf_free(&conf);
}

int main(void)
{
    msg_init("conf_test", "stork");
    if (mkdtemp(test_dir) == NULL)
        msg_fatal("mkdtemp");
    test_defaults();
    test_parse();
    test_expand();
    test_validate();
    test_override();
    test_foreach();
    char *path = xasprintf("%s/main.cf", test_dir);
    unlink(path);
    free(path);
    rmdir(test_dir);
    return test_done();
}
