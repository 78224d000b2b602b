/* vuser_test - the virtual users table value format */
#include "test/test.h"
#include "mail/vuser.h"
#include "util/xmalloc.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

/* parse_err - the why of a failing parse, or "ok" */
static const char *parse_err(const char *value)
{
    vuser_t vu;
    const char *why;

    if (vuser_parse(value, &vu, &why) == 0) {
        vuser_clear(&vu);
        return "ok";
    }
    return why;
}

/* path_of - the mailbox path for value under base, or the error */
static const char *path_of(const char *base, const char *value)
{
    static buf_t b;
    vuser_t vu;
    const char *why;
    int r;

    if (b.limit == 0)
        buf_init(&b, 8192);
    if (vuser_parse(value, &vu, &why) < 0)
        return why;
    r = vuser_maildir_path(base, &vu, &b, &why);
    vuser_clear(&vu);
    if (r < 0)
        return why;
    return buf_cstr(&b);
}

static void test_parse(void)
{
    vuser_t vu;
    const char *why;

    TEST_INTEQ(vuser_parse("$6$salt$abc:example.com/user/:100M", &vu, &why), 0);
    TEST_STREQ(vu.password_hash, "$6$salt$abc");
    TEST_STREQ(vu.maildir, "example.com/user/");
    TEST_CHECK(vu.is_maildir);
    TEST_INTEQ(vu.quota, 100ULL * 1024 * 1024);
    vuser_clear(&vu);
    TEST_CHECK(vu.maildir == NULL);
    vuser_clear(&vu);

    TEST_INTEQ(vuser_parse(":mbox/user:", &vu, &why), 0);
    TEST_STREQ(vu.password_hash, "");
    TEST_CHECK(!vu.is_maildir);
    TEST_INTEQ(vu.quota, 0);
    TEST_CHECK(!vuser_check_password(&vu, ""));
    vuser_clear(&vu);

    TEST_INTEQ(vuser_parse("x:a:b/c:d/:0", &vu, &why), 0);      /* ':' inside the path */
    TEST_STREQ(vu.maildir, "a:b/c:d/");
    vuser_clear(&vu);
    TEST_INTEQ(vuser_parse("x:dir/:2g", &vu, &why), 0);
    TEST_INTEQ(vu.quota, 2ULL << 30);
    vuser_clear(&vu);

    TEST_CHECK(strstr(parse_err("onlyhash"), "expected") != NULL);
    TEST_CHECK(strstr(parse_err("hash:dir/"), "expected") != NULL);
    TEST_CHECK(strstr(parse_err("hash::10m"), "no mailbox path") != NULL);
    TEST_CHECK(strstr(parse_err("hash:dir/:ten"), "bad quota") != NULL);
    TEST_CHECK(strstr(parse_err("hash:dir/:-1"), "bad quota") != NULL);
    TEST_CHECK(strstr(parse_err("hash:../etc/:0"), "..") != NULL);
    TEST_CHECK(strstr(parse_err("hash:a/../../b/:0"), "..") != NULL);
    TEST_CHECK(strstr(parse_err("hash:a/./b/:0"), "..") != NULL);
    TEST_CHECK(strstr(parse_err("hash:a/b\n/:0"), "control") != NULL);
    TEST_STREQ(parse_err("hash:a..b/..c/:0"), "ok");
}

static void test_path(void)
{
    TEST_STREQ(path_of("/var/vmail", "h:example.com/u/:"), "/var/vmail/example.com/u/");
    TEST_STREQ(path_of("/var/vmail/", "h:example.com/u/:"), "/var/vmail/example.com/u/");
    TEST_STREQ(path_of("/var/vmail", "h:/var/vmail/x/u/:"), "/var/vmail/x/u/");
    TEST_CHECK(strstr(path_of("/var/vmail", "h:/var/vmailx/u/:"), "outside") != NULL);
    TEST_CHECK(strstr(path_of("/var/vmail", "h:/etc/:"), "outside") != NULL);
    TEST_CHECK(strstr(path_of("relative", "h:u/:"), "absolute") != NULL);
    TEST_CHECK(strstr(path_of("/var/../etc", "h:u/:"), "absolute") != NULL);
    TEST_STREQ(path_of("/", "h:u/:"), "/u/");
}

static void test_password(void)
{
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    const char *hashes[2];
    char *value;
    vuser_t vu;
    const char *why;

    hashes[0] = xstrdup(crypt_r("s3cret", "$6$abcdefgh$", cd));
    TEST_CHECK(crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) != NULL);
    hashes[1] = xstrdup(crypt_r("s3cret", salt, cd));
    for (int i = 0; i < 2; i++) {
        value = xasprintf("%s:u/:", hashes[i]);
        TEST_INTEQ(vuser_parse(value, &vu, &why), 0);
        TEST_CHECK(vuser_check_password(&vu, "s3cret"));
        TEST_CHECK(!vuser_check_password(&vu, "s3cret "));
        TEST_CHECK(!vuser_check_password(&vu, ""));
        vuser_clear(&vu);
        free(value);
        value = xasprintf("!%s:u/:", hashes[i]);    /* locked */
        TEST_INTEQ(vuser_parse(value, &vu, &why), 0);
        TEST_CHECK(!vuser_check_password(&vu, "s3cret"));
        vuser_clear(&vu);
        free(value);
        free((char *)hashes[i]);
    }
    TEST_INTEQ(vuser_parse("garbage:u/:", &vu, &why), 0);
    TEST_CHECK(!vuser_check_password(&vu, "garbage"));
    vuser_clear(&vu);
    free(cd);
}

int main(void)
{
    test_parse();
    test_path();
    test_password();
    return test_done();
}
