/* maildir_test - unit tests for Maildir names, delivery and quota */
#include "maildir/maildir_deliver.h"
#include "maildir/maildir_name.h"
#include "maildir/maildir_quota.h"
#include "test/test.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_root[256];

/* count_entries - files in a directory (not . and ..) */
static int count_entries(const char *dir, char *first, size_t first_size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n++ == 0 && first)
            snprintf(first, first_size, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

/* read_file - whole file into a buffer */
static int read_file(const char *path, buf_t *out)
{
    char tmp[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        return -1;
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        buf_append(out, tmp, (size_t)n);
    close(fd);
    return 0;
}

/* temp_content - a file holding junk, then the content, then junk */
static int temp_content(const char *content, size_t len, off_t *offset_r)
{
    char path[300];
    int fd;

    snprintf(path, sizeof(path), "%s/content", test_root);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    unlink(path);
    if (write(fd, "JUNKJUNK", 8) != 8 || write(fd, content, len) != (ssize_t)len
        || write(fd, "TRAILER", 7) != 7)
        return -1;
    *offset_r = 8;
    return fd;
}

static void test_names(void)
{
    buf_t a, b, esc;
    uint64_t size;
    char seen[200][128];

    buf_init(&a, BUF_NOLIMIT);
    buf_init(&b, BUF_NOLIMIT);
    buf_init(&esc, BUF_NOLIMIT);
    /* Many names in a row, within the same microsecond: all different. */
    for (int i = 0; i < 200; i++) {
        buf_reset(&a);
        maildir_name_new(&a);
        snprintf(seen[i], sizeof(seen[i]), "%s", a.data);
    }
    int dups = 0;
    for (int i = 0; i < 200; i++)
        for (int j = i + 1; j < 200; j++)
            dups += strcmp(seen[i], seen[j]) == 0;
    TEST_INTEQ(dups, 0);
    TEST_CHECK(strchr(seen[0], '/') == NULL && strchr(seen[0], ':') == NULL);
    TEST_CHECK(strstr(seen[0], ".M") != NULL && strstr(seen[0], "P") != NULL);

    maildir_name_escape_host(&esc, "a/b:c.example");
    TEST_STREQ(esc.data, "a\\057b\\072c.example");

    buf_puts(&b, "123.M4P5Q6.host");
    maildir_name_sizes(&b, 1234, 1300);
    TEST_STREQ(b.data, "123.M4P5Q6.host,S=1234,W=1300");
    TEST_INTEQ(maildir_name_size(b.data, &size), 0);
    TEST_INTEQ(size, 1234);
    TEST_INTEQ(maildir_name_size("1.M2P3.host,S=77:2,S", &size), 0);
    TEST_INTEQ(size, 77);
    TEST_INTEQ(maildir_name_size("1.M2P3.host,W=5,S=9:2,", &size), 0);
    TEST_INTEQ(size, 9);
    TEST_INTEQ(maildir_name_size("1.M2P3.host:2,S", &size), -1);
    TEST_INTEQ(maildir_name_size("1.M2P3.host,S=:2,S", &size), -1);
    TEST_INTEQ(maildir_name_size("1.M2P3.host,S=12x", &size), -1);
    TEST_INTEQ(maildir_name_size("1.M2P3.host,S=99999999999999999999999", &size), -1);
    buf_free(&a);
    buf_free(&b);
    buf_free(&esc);
}

static void test_deliver(const char *base)
{
    /* CRLF content with 8-bit bytes, a bare CR, a bare LF, and a CRLF that
     * straddles nothing in particular; expected: CRLF → LF only. */
    static const char content[] = "Subject: t\r\nX: \xe4\xf6\xfc\r\n\r\nbody\rmore\nend\r\n.\r\n";
    static const char expect[] = "Return-Path: <a@b>\nDelivered-To: c@d\n"
                                 "Subject: t\nX: \xe4\xf6\xfc\n\nbody\rmore\nend\n.\n";
    maildir_input_t in = {0};
    maildir_result_t res;
    char dir[300], sub[320], name[256];
    buf_t got;
    off_t off;
    int fd;
    struct stat st;

    snprintf(dir, sizeof(dir), "%s/%s/user/Maildir", test_root, base);
    fd = temp_content(content, sizeof(content) - 1, &off);
    in.prepend = "Return-Path: <a@b>\nDelivered-To: c@d\n";
    in.prepend_len = strlen(in.prepend);
    in.fd = fd;
    in.offset = off;
    in.length = sizeof(content) - 1;
    in.crlf_to_lf = true;
    maildir_result_init(&res);
    TEST_INTEQ(maildir_deliver(dir, &in, &res), 0);
    TEST_INTEQ(res.size, sizeof(expect) - 1);
    buf_init(&got, BUF_NOLIMIT);
    TEST_INTEQ(read_file(res.path.data, &got), 0);
    TEST_INTEQ(got.len, sizeof(expect) - 1);
    TEST_CHECK(got.len == sizeof(expect) - 1 && memcmp(got.data, expect, got.len) == 0);
    TEST_INTEQ(stat(dir, &st), 0);
    TEST_INTEQ(st.st_mode & 07777, 0700);
    snprintf(sub, sizeof(sub), "%s/tmp", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), 0);
    snprintf(sub, sizeof(sub), "%s/cur", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), 0);
    snprintf(sub, sizeof(sub), "%s/new", dir);
    TEST_INTEQ(count_entries(sub, name, sizeof(name)), 1);
    {
        uint64_t s;
        char want[64];

        /* W= counts every line end as CRLF: 8 lines end in LF. */
        snprintf(want, sizeof(want), ",S=%zu,W=%zu", sizeof(expect) - 1, sizeof(expect) - 1 + 8);
        TEST_CHECK(strstr(name, want) != NULL);
        TEST_INTEQ(maildir_name_size(name, &s), 0);
        TEST_INTEQ(s, sizeof(expect) - 1);
    }

    /* Without conversion the bytes are copied exactly. */
    in.crlf_to_lf = false;
    in.prepend = NULL;
    in.prepend_len = 0;
    TEST_INTEQ(maildir_deliver(dir, &in, &res), 0);
    buf_reset(&got);
    TEST_INTEQ(read_file(res.path.data, &got), 0);
    TEST_CHECK(got.len == sizeof(content) - 1 && memcmp(got.data, content, got.len) == 0);
    snprintf(sub, sizeof(sub), "%s/new", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), 2);

    /* Content shorter than claimed: error, tmp cleaned, nothing in new/. */
    in.length = sizeof(content) - 1 + 7 + 100;
    TEST_INTEQ(maildir_deliver(dir, &in, &res), -1);
    TEST_STREQ(res.dsn, "4.3.0");
    snprintf(sub, sizeof(sub), "%s/tmp", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), 0);
    snprintf(sub, sizeof(sub), "%s/new", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), 2);

    /* An unreadable source (write-only fd): error, tmp cleaned. */
    {
        char p[300];
        int wfd;

        snprintf(p, sizeof(p), "%s/wonly", test_root);
        wfd = open(p, O_WRONLY | O_CREAT, 0600);
        in.fd = wfd;
        in.length = 10;
        TEST_INTEQ(maildir_deliver(dir, &in, &res), -1);
        TEST_STREQ(res.dsn, "4.2.0");
        TEST_CHECK(strstr(res.why.data, "read") != NULL);
        snprintf(sub, sizeof(sub), "%s/tmp", dir);
        TEST_INTEQ(count_entries(sub, NULL, 0), 0);
        close(wfd);
    }
    close(fd);
    buf_free(&got);
    maildir_result_free(&res);
}

/* test_large - a message larger than the copy block, CRLF split at the
 * block boundary */
static void test_large(void)
{
    size_t n = 200000, i;
    char *content = xmalloc(n);
    buf_t expect, got;
    maildir_input_t in = {0};
    maildir_result_t res;
    char dir[300];
    off_t off;
    int fd;

    buf_init(&expect, BUF_NOLIMIT);
    buf_init(&got, BUF_NOLIMIT);
    for (i = 0; i < n; i++) {
        /* CR LF pairs at many offsets, including 65535/65536 (block edge
         * with the 8-byte junk prefix: 65528 + 8 = 65536). */
        if (i % 61 == 60 || i == 65527)
            content[i] = '\r';
        else if ((i > 0 && content[i - 1] == '\r'))
            content[i] = '\n';
        else
            content[i] = (char)('a' + i % 26);
    }
    for (i = 0; i < n; i++) {
        if (content[i] == '\r' && i + 1 < n && content[i + 1] == '\n')
            continue;
        buf_putc(&expect, content[i]);
    }
    snprintf(dir, sizeof(dir), "%s/large", test_root);
    fd = temp_content(content, n, &off);
    in.fd = fd;
    in.offset = off;
    in.length = n;
    in.crlf_to_lf = true;
    maildir_result_init(&res);
    TEST_INTEQ(maildir_deliver(dir, &in, &res), 0);
    TEST_INTEQ(read_file(res.path.data, &got), 0);
    TEST_INTEQ(got.len, expect.len);
    TEST_CHECK(got.len == expect.len && memcmp(got.data, expect.data, got.len) == 0);
    close(fd);
    free(content);
    buf_free(&expect);
    buf_free(&got);
    maildir_result_free(&res);
}

static void test_quota(void)
{
    static const char content[] = "Subject: q\n\n0123456789012345678901234567890123456789\n";
    maildir_input_t in = {0};
    maildir_result_t res;
    maildir_usage_t u;
    const char *why;
    char dir[300], path[400];
    buf_t text;
    off_t off;
    int fd;

    snprintf(dir, sizeof(dir), "%s/quota", test_root);
    fd = temp_content(content, sizeof(content) - 1, &off);
    in.fd = fd;
    in.offset = off;
    in.length = sizeof(content) - 1;
    in.quota = 3 * (sizeof(content) - 1) + 10;      /* three fit, the fourth does not */
    maildir_result_init(&res);
    for (int i = 0; i < 3; i++)
        TEST_INTEQ(maildir_deliver(dir, &in, &res), 0);
    TEST_INTEQ(maildir_deliver(dir, &in, &res), -1);
    TEST_STREQ(res.dsn, "4.2.2");
    TEST_CHECK(strstr(res.why.data, "mailbox full") != NULL);

    /* maildirsize: header, the scan, then one line per delivery. */
    snprintf(path, sizeof(path), "%s/maildirsize", dir);
    buf_init(&text, BUF_NOLIMIT);
    TEST_INTEQ(read_file(path, &text), 0);
    TEST_CHECK(strncmp(text.data, "169S\n0 0\n", 9) == 0);
    TEST_INTEQ(maildir_quota_check(dir, in.quota, 0, &u, &why), 0);
    TEST_INTEQ(u.bytes, 3 * (sizeof(content) - 1));
    TEST_INTEQ(u.count, 3);

    /* A deleted message noted by a negative line frees the space. */
    {
        char newdir[400], name[256], victim[700];

        snprintf(newdir, sizeof(newdir), "%s/new", dir);
        TEST_INTEQ(count_entries(newdir, name, sizeof(name)), 3);
        snprintf(victim, sizeof(victim), "%s/%s", newdir, name);
        TEST_INTEQ(unlink(victim), 0);
    }
    maildir_quota_add(dir, in.quota, -(int64_t)(sizeof(content) - 1), -1);
    TEST_INTEQ(maildir_deliver(dir, &in, &res), 0);

    /* A garbled file is recalculated from the S= sizes. */
    fd = open(path, O_WRONLY | O_TRUNC);
    TEST_CHECK(write(fd, "169S\nnonsense\n", 14) == 14);
    close(fd);
    TEST_INTEQ(maildir_quota_check(dir, in.quota, 0, &u, &why), 0);
    TEST_INTEQ(u.bytes, 3 * (sizeof(content) - 1));
    TEST_INTEQ(u.count, 3);

    /* Folders count too; a different limit forces a recalculation. */
    {
        char fdir[400];

        snprintf(fdir, sizeof(fdir), "%s/.Sent", dir);
        TEST_INTEQ(maildir_make(fdir), 0);
        snprintf(fdir, sizeof(fdir), "%s/.Sent/cur/1.M1P1.h,S=1000:2,S", dir);
        close(open(fdir, O_WRONLY | O_CREAT, 0600));
        TEST_INTEQ(maildir_quota_check(dir, 100000, 0, &u, &why), 0);
        TEST_INTEQ(u.bytes, 3 * (sizeof(content) - 1) + 1000);
        TEST_INTEQ(u.count, 4);
        TEST_INTEQ(maildir_quota_check(dir, 1000, 0, &u, &why), 1);
    }
    /* No quota: nothing checked. */
    TEST_INTEQ(maildir_quota_check(dir, 0, 1 << 30, &u, &why), 0);
    close(fd);
    buf_free(&text);
    maildir_result_free(&res);
}

/* test_unwritable - a Maildir that cannot be created: 4.2.0 */
static void test_unwritable(void)
{
    maildir_input_t in = {0};
    maildir_result_t res;
    char dir[300];

    if (geteuid() == 0)
        return;                 /* root writes anywhere */
    snprintf(dir, sizeof(dir), "%s/ro", test_root);
    mkdir(dir, 0500);
    snprintf(dir, sizeof(dir), "%s/ro/Maildir", test_root);
    in.fd = -1;
    maildir_result_init(&res);
    TEST_INTEQ(maildir_deliver(dir, &in, &res), -1);
    TEST_STREQ(res.dsn, "4.2.0");
    maildir_result_free(&res);
}

/* test_many - many deliveries into one Maildir: every one in new/ under
 * its own name with its own bytes, nothing left in tmp/; a tmp/ removed
 * meanwhile is made again */
static void test_many(void)
{
    enum { N = 40 };
    char dir[300], sub[320], content[128], expect[160], prepend[64];
    maildir_input_t in = {0};
    maildir_result_t res;
    buf_t got;
    off_t off;

    snprintf(dir, sizeof(dir), "%s/many/Maildir", test_root);
    buf_init(&got, BUF_NOLIMIT);
    maildir_result_init(&res);
    for (int i = 0; i < N; i++) {
        int fd, len;

        if (i == 21) {
            snprintf(sub, sizeof(sub), "%s/tmp", dir);
            TEST_INTEQ(rmdir(sub), 0);
        }
        len = snprintf(content, sizeof(content), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
        snprintf(prepend, sizeof(prepend), "Delivered-To: u%d@x\n", i);
        snprintf(expect, sizeof(expect), "%sSubject: %d\n\nbody %d\n", prepend, i, i);
        fd = temp_content(content, (size_t)len, &off);
        in.prepend = prepend;
        in.prepend_len = strlen(prepend);
        in.fd = fd;
        in.offset = off;
        in.length = (uint64_t)len;
        in.crlf_to_lf = true;
        TEST_INTEQ(maildir_deliver(dir, &in, &res), 0);
        buf_reset(&got);
        TEST_INTEQ(read_file(res.path.data, &got), 0);
        TEST_CHECK(got.len == strlen(expect) && memcmp(got.data, expect, got.len) == 0);
        TEST_INTEQ(res.size, strlen(expect));
        close(fd);
    }
    snprintf(sub, sizeof(sub), "%s/new", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), N);
    snprintf(sub, sizeof(sub), "%s/tmp", dir);
    TEST_INTEQ(count_entries(sub, NULL, 0), 0);
    buf_free(&got);
    maildir_result_free(&res);
}

/* rm_rf - remove the test tree (no symlinks are made in it) */
static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char sub[1024];

    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        rm_rf(sub);
    }
    closedir(d);
    rmdir(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(test_root, sizeof(test_root), "%s/maildir_test.XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(test_root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_names();
    test_deliver("deep");
    test_large();
    test_many();
    test_quota();
    test_unwritable();
    /* the same with maildir_directory_fsync = yes (the two-flush order) */
    maildir_set_dir_sync(true);
    test_deliver("deep-dirsync");
    {
        char many[300];

        snprintf(many, sizeof(many), "%s/many", test_root);
        rm_rf(many);
    }
    test_many();
    test_unwritable();
    maildir_set_dir_sync(false);
    rm_rf(test_root);
    return test_done();
}
