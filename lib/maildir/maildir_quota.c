/* maildir_quota - Maildir++ storage quota (the "maildirsize" file) */
#include "maildir/maildir_quota.h"
#include "maildir/maildir_name.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAILDIRSIZE "maildirsize"
#define MAILDIRSIZE_MAX 5120            /* Maildir++: recalculate beyond this */
#define MAILDIRSIZE_STALE (15 * 60)     /* Maildir++: over quota and older → recalculate */

typedef enum { QUOTA_FILE_OK, QUOTA_FILE_RECALC, QUOTA_FILE_ERROR } quota_file_t;

/* quota_parse_line - "BYTES COUNT" with optional signs; -1 if malformed */
static int quota_parse_line(const char *s, int64_t *bytes_r, int64_t *count_r)
{
    char *end;
    long long b, c;

    errno = 0;
    b = strtoll(s, &end, 10);
    if (end == s || *end != ' ' || errno)
        return -1;
    s = end + 1;
    c = strtoll(s, &end, 10);
    if (end == s || (*end != 0 && *end != ' ') || errno)
        return -1;
    *bytes_r = b;
    *count_r = c;
    return 0;
}

/* quota_parse_limit - the header line's "NNNS" (and optional ",MMMC") */
static int quota_parse_limit(const char *s, uint64_t *limit_r)
{
    char *end;
    unsigned long long v;

    /* A file without a storage limit ("0C" etc.) counts as no limit. */
    for (const char *f = s; *f; ) {
        errno = 0;
        v = strtoull(f, &end, 10);
        if (end == f || errno)
            return -1;
        if (*end == 'S') {
            *limit_r = v;
            return 0;
        }
        if (*end != 'C')
            return -1;
        f = end + 1;
        if (*f == ',')
            f++;
    }
    *limit_r = 0;
    return 0;
}

/* quota_read - sum maildirsize; says when it must be recalculated */
static quota_file_t quota_read(const char *path, uint64_t limit, maildir_usage_t *u,
                               time_t *mtime_r)
{
    char data[MAILDIRSIZE_MAX + 1];
    struct stat st;
    ssize_t n;
    size_t len = 0;
    int fd;
    uint64_t file_limit;
    char *line, *next;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return errno == ENOENT ? QUOTA_FILE_RECALC : QUOTA_FILE_ERROR;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAILDIRSIZE_MAX) {
        close(fd);
        return QUOTA_FILE_RECALC;
    }
    while (len < MAILDIRSIZE_MAX && (n = read(fd, data + len, MAILDIRSIZE_MAX - len)) > 0)
        len += (size_t)n;
    close(fd);
    data[len] = 0;
    *mtime_r = st.st_mtime;

    /* Only whole lines count: a line being appended right now is skipped. */
    if ((line = strchr(data, '\n')) == NULL)
        return QUOTA_FILE_RECALC;
    *line = 0;
    if (quota_parse_limit(data, &file_limit) < 0 || file_limit != limit)
        return QUOTA_FILE_RECALC;
    u->bytes = u->count = 0;
    for (line++; (next = strchr(line, '\n')) != NULL; line = next + 1) {
        int64_t b, c;

        *next = 0;
        if (quota_parse_line(line, &b, &c) < 0)
            return QUOTA_FILE_RECALC;
        u->bytes += b;
        u->count += c;
    }
    if (u->bytes < 0 || u->count < 0)
        return QUOTA_FILE_RECALC;
    return QUOTA_FILE_OK;
}

/* quota_scan_dir - add the messages of one new/ or cur/ directory */
static int quota_scan_dir(const char *path, maildir_usage_t *u)
{
    DIR *d;
    struct dirent *de;
    buf_t file;

    if ((d = opendir(path)) == NULL)
        return errno == ENOENT ? 0 : -1;
    buf_init(&file, BUF_NOLIMIT);
    while ((de = readdir(d)) != NULL) {
        uint64_t size;
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        if (maildir_name_size(de->d_name, &size) < 0) {
            buf_reset(&file);
            buf_printf(&file, "%s/%s", path, de->d_name);
            if (lstat(file.data, &st) < 0 || !S_ISREG(st.st_mode))
                continue;       /* gone meanwhile (expunged, moved): not counted */
            size = (uint64_t)st.st_size;
        }
        u->bytes += (int64_t)size;
        u->count++;
    }
    buf_free(&file);
    closedir(d);
    return 0;
}

/* quota_scan_folder - new/ and cur/ of one folder */
static int quota_scan_folder(buf_t *path, size_t base_len, maildir_usage_t *u)
{
    static const char *const subs[] = {"/new", "/cur"};

    for (size_t i = 0; i < 2; i++) {
        buf_truncate(path, base_len);
        buf_puts(path, subs[i]);
        if (quota_scan_dir(path->data, u) < 0)
            return -1;
    }
    buf_truncate(path, base_len);
    return 0;
}

/* quota_scan - the usage of the Maildir and its Maildir++ folders */
static int quota_scan(const char *dir, maildir_usage_t *u)
{
    DIR *d;
    struct dirent *de;
    buf_t path;
    int folders = 0, ret = 0;

    u->bytes = u->count = 0;
    buf_init(&path, BUF_NOLIMIT);
    buf_puts(&path, dir);
    if (quota_scan_folder(&path, path.len, u) < 0) {
        buf_free(&path);
        return -1;
    }
    if ((d = opendir(dir)) == NULL) {
        buf_free(&path);
        return -1;
    }
    while ((de = readdir(d)) != NULL && folders < MAILDIR_QUOTA_MAX_FOLDERS) {
        /* Maildir++ folders are ".Name"; "." and ".." are not. */
        if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        buf_truncate(&path, strlen(dir));
        buf_printf(&path, "/%s", de->d_name);
        folders++;
        if (quota_scan_folder(&path, path.len, u) < 0) {
            ret = -1;
            break;
        }
    }
    closedir(d);
    buf_free(&path);
    return ret;
}

/* maildir_quota_recalc - rebuild maildirsize from the directory contents */
int maildir_quota_recalc(const char *dir, uint64_t limit, maildir_usage_t *usage_r,
                         const char **why_r)
{
    buf_t tmp, final, text;
    int fd, ret = -1;

    if (quota_scan(dir, usage_r) < 0) {
        *why_r = strerror(errno);
        return -1;
    }
    buf_init(&tmp, BUF_NOLIMIT);
    buf_init(&final, BUF_NOLIMIT);
    buf_init(&text, BUF_NOLIMIT);
    buf_printf(&tmp, "%s/tmp/", dir);
    maildir_name_new(&tmp);
    buf_puts(&tmp, ".maildirsize");
    buf_printf(&final, "%s/%s", dir, MAILDIRSIZE);
    buf_printf(&text, "%lluS\n%lld %lld\n", (unsigned long long)limit,
               (long long)usage_r->bytes, (long long)usage_r->count);
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        *why_r = strerror(errno);
    } else if (write(fd, text.data, text.len) != (ssize_t)text.len) {
        *why_r = errno ? strerror(errno) : "short write";
        close(fd);
        unlink(tmp.data);
    } else if (close(fd) < 0 || rename(tmp.data, final.data) < 0) {
        *why_r = strerror(errno);
        unlink(tmp.data);
    } else {
        ret = 0;
    }
    buf_free(&tmp);
    buf_free(&final);
    buf_free(&text);
    return ret;
}

/* maildir_quota_check - does a message of add bytes fit? */
int maildir_quota_check(const char *dir, uint64_t limit, uint64_t add, maildir_usage_t *usage_r,
                        const char **why_r)
{
    buf_t path;
    quota_file_t st;
    time_t mtime = 0;
    bool recalc;

    usage_r->bytes = usage_r->count = 0;
    if (limit == 0)
        return 0;
    buf_init(&path, BUF_NOLIMIT);
    buf_printf(&path, "%s/%s", dir, MAILDIRSIZE);
    st = quota_read(path.data, limit, usage_r, &mtime);
    buf_free(&path);
    if (st == QUOTA_FILE_ERROR) {
        *why_r = strerror(errno);
        return -1;
    }
    recalc = st == QUOTA_FILE_RECALC
        || ((uint64_t)usage_r->bytes + add > limit && time(NULL) - mtime > MAILDIRSIZE_STALE);
    if (recalc && maildir_quota_recalc(dir, limit, usage_r, why_r) < 0)
        return -1;
    return (uint64_t)usage_r->bytes + add > limit ? 1 : 0;
}

/* maildir_quota_add - append one "BYTES COUNT" line (best effort) */
void maildir_quota_add(const char *dir, uint64_t limit, int64_t bytes, int64_t count)
{
    buf_t path, line;
    int fd;

    if (limit == 0)
        return;
    buf_init(&path, BUF_NOLIMIT);
    buf_init(&line, BUF_NOLIMIT);
    buf_printf(&path, "%s/%s", dir, MAILDIRSIZE);
    buf_printf(&line, "%lld %lld\n", (long long)bytes, (long long)count);
    /* No O_CREAT: a missing file is rebuilt from the directory next time. */
    if ((fd = open(path.data, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
        if (write(fd, line.data, line.len) != (ssize_t)line.len)
            msg_warn("%s: cannot update quota: %m", path.data);
        close(fd);
    }
    buf_free(&path);
    buf_free(&line);
}
