/*
 * cli_submit - write a locally submitted message into maildrop/
 * (see cli_submit.h)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli_fmt.h"
#include "cli_submit.h"
#include "ipc/ipc.h"
#include "mail/addr.h"
#include "mail/mail_date.h"
#include "queue/qfile.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define CLI_WAKE_TIMEOUT_MS 2000

/* cli_submit_qualify - append @origin to a bare local part */
char *cli_submit_qualify(const char *addr, const char *origin)
{
    if (*addr == 0 || strchr(addr, '@') != NULL)
        return xstrdup(addr);
    return xasprintf("%s@%s", addr, origin);
}

/* cli_phrase - a display name: as is when it is all atoms, else quoted */
void cli_phrase(buf_t *out, const char *name)
{
    bool quote = false;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (strchr("()<>[]:;@\\,.\"", *p) || *p < 0x20)
            quote = true;
    if (!quote) {
        buf_puts(out, name);
        return;
    }
    buf_putc(out, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(out, '\\');
        if ((unsigned char)*p >= 0x20)
            buf_putc(out, *p);
    }
    buf_putc(out, '"');
}

/* cli_submit_headers - the headers cleanup would add for local mail */
static void cli_submit_headers(const cli_submit_t *s, const cli_msg_t *m, const char *qid,
                               buf_t *added)
{
    time_t now = time(NULL);

    if (!m->has_msgid) {
        struct tm tm;
        char stamp[32];

        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
        buf_printf(added, "Message-Id: <%s.%s@%s>\r\n", stamp, qid, s->myhostname);
    }
    if (!m->has_date) {
        buf_puts(added, "Date: ");
        mail_date(added, now);
        buf_puts(added, "\r\n");
    }
    if (!m->has_from) {
        buf_t addr;

        buf_init(&addr, BUF_NOLIMIT);
        /* The address goes out in RFC 5322 form: quote the local part
         * if it needs it (the null sender is MAILER-DAEMON). */
        cli_fmt_quote_local(&addr, s->sender);
        buf_puts(added, "From: ");
        if (s->full_name && *s->full_name) {
            cli_phrase(added, s->full_name);
            buf_printf(added, " <%s>", buf_cstr(&addr));
        } else {
            buf_puts(added, buf_cstr(&addr));
        }
        buf_puts(added, "\r\n");
        buf_free(&addr);
    }
}

/* cli_submit_wake_pickup - tell pickup to look now (best effort) */
void cli_submit_wake_pickup(const char *queue_dir)
{
    char *path = xasprintf("%s/public/pickup", queue_dir);
    const char *why;
    int fd = ipc_connect(path, "pickup", CLI_WAKE_TIMEOUT_MS, &why);

    if (fd >= 0) {
        ipc_msg_t m;

        ipc_msg_init(&m, IPC_M_PICKUP_WAKE);
        (void)ipc_send(fd, &m, CLI_WAKE_TIMEOUT_MS);
        ipc_msg_free(&m);
        close(fd);
    }
    /* Without an answer the mail sits in maildrop/ until pickup's next
     * periodic scan or the next start: nothing is lost. */
    free(path);
}

/* cli_submit_write - the maildrop file: envelope, content, durable */
static int cli_submit_write(const cli_submit_t *s, qfile_writer_t *w, const cli_addr_list_t *rcpts,
                            const buf_t *content, const char **why_r)
{
    struct timespec now;
    char uid[32];

    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(uid, sizeof(uid), "%lu", (unsigned long)s->uid);
    qfile_put_arrival(w, (int64_t)now.tv_sec, (int32_t)(now.tv_nsec / 1000));
    qfile_put_sender(w, s->sender);
    qfile_put_attr(w, "uid", uid);
    qfile_put_attr(w, "protocol", "local");
    if (s->full_name && *s->full_name)
        qfile_put_attr(w, "full_name", s->full_name);
    for (size_t i = 0; i < rcpts->n; i++)
        qfile_put_rcpt(w, rcpts->v[i], "", 0);
    qfile_begin_content(w);
    qfile_write_content(w, content->data, content->len);
    if (qfile_finish(w, why_r) < 0)
        return -1;
    /* pickup runs as mail_owner, not as this user: the finished file
     * must be readable to it. Nothing secret is in it that the maildrop
     * directory's permissions do not already guard. */
    if (fchmod(qfile_writer_fd(w), 0444) < 0) {
        *why_r = strerror(errno);
        return -1;
    }
    if (qfile_sync(w, why_r) < 0 || qfile_commit(w, why_r) < 0)
        return -1;
    /* maildrop/ is write-only for users (1733 or 1730): a user cannot
     * open it to fsync it. syncfs() on the file makes the rename durable
     * all the same (it flushes the file system's metadata). */
    if (queue_sync_dir(s->queue_dir, QUEUE_MAILDROP) < 0
        && (errno != EACCES || syncfs(qfile_writer_fd(w)) < 0)) {
        *why_r = strerror(errno);
        return -1;
    }
    return 0;
}

/* cli_submit_message - check, rewrite and queue one message */
int cli_submit_message(const cli_submit_t *s, const char *content, size_t len,
                       cli_addr_list_t *rcpts, bool extract, char qid_r[QID_BUFSIZE],
                       const char **why_r)
{
    static char why_buf[1200];
    cli_addr_list_t final = {0};
    qfile_writer_t *w = NULL;
    buf_t added, out;
    cli_msg_t m;
    int ret = 0;

    if (!(*s->sender == 0 || addr_internal_ok(s->sender))) {
        *why_r = "bad sender address syntax";
        return EX_DATAERR;
    }
    cli_msg_split(content, len, &m);
    if (extract && cli_msg_rcpts(content, &m, rcpts, why_r) < 0) {
        snprintf(why_buf, sizeof(why_buf), "bad recipient header: %s", *why_r);
        *why_r = why_buf;
        return EX_DATAERR;
    }
    for (size_t i = 0; i < rcpts->n; i++) {
        char *a = cli_submit_qualify(rcpts->v[i], s->myorigin);

        if (!addr_internal_ok(a)) {
            snprintf(why_buf, sizeof(why_buf), "%.999s: bad address syntax", rcpts->v[i]);
            free(a);
            cli_addr_list_free(&final);
            *why_r = why_buf;
            return EX_NOUSER;
        }
        cli_addr_list_add(&final, a);
        free(a);
    }
    if (final.n == 0) {
        *why_r = extract ? "No recipient addresses found in message header"
                         : "no recipients specified";
        return EX_USAGE;
    }
    if (qfile_create_in(s->queue_dir, QUEUE_MAILDROP, &w, why_r) < 0) {
        snprintf(why_buf, sizeof(why_buf), "cannot create a file in %s/%s: %s", s->queue_dir,
                 QUEUE_MAILDROP, *why_r);
        *why_r = why_buf;
        cli_addr_list_free(&final);
        return errno == EACCES || errno == ENOENT ? EX_CANTCREAT : EX_TEMPFAIL;
    }
    buf_init(&added, BUF_NOLIMIT);
    buf_init(&out, BUF_NOLIMIT);
    cli_submit_headers(s, &m, qfile_writer_qid(w), &added);
    cli_msg_rewrite(content, len, &m, buf_cstr(&added), &out);
    if (s->size_limit && out.len > s->size_limit) {
        *why_r = "message file too big";
        ret = EX_DATAERR;
    } else if (cli_submit_write(s, w, &final, &out, why_r) < 0) {
        snprintf(why_buf, sizeof(why_buf), "queue file write error: %s", *why_r);
        *why_r = why_buf;
        ret = EX_TEMPFAIL;
    }
    if (ret == 0) {
        memcpy(qid_r, qfile_writer_qid(w), QID_BUFSIZE);
        qfile_writer_free(&w);
        cli_submit_wake_pickup(s->queue_dir);
    } else {
        qfile_abort(&w);
    }
    buf_free(&added);
    buf_free(&out);
    cli_addr_list_free(&final);
    return ret;
}
