/*
 * sendmail - the Sendmail-compatible submission command (also mailq and
 * newaliases)
 *
 *	sendmail [-c DIR] [-t] [-i|-oi] [-f sender] [-F full_name] [-bm]
 *	         [-bs] [-bv] [-bp] [-bi] [-q] [-v] [-o...] [--] [recipient...]
 *
 *	Reads a message on standard input and queues it through maildrop/
 *	and pickup, as Postfix's sendmail does through postdrop. A line
 *	with a single "." ends the input unless -i/-oi; LF line ends become
 *	CRLF. -t adds the To/Cc/Bcc recipients and removes Bcc. -bs speaks
 *	SMTP on stdin/stdout, -bv only checks the recipient syntax, -bp is
 *	mailq, -bi is newaliases, -q flushes the queue. Invoked as "mailq"
 *	it lists the queue; as "newaliases" it rebuilds the aliases.
 *	Exit status per sysexits.h.
 *
 *	Installed set-gid (the setgid_group) in a root installation so it can
 *	write maildrop/; then -c is refused to non-root users, since it
 *	would let them name any directory as the queue.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli_hdr.h"
#include "cli_showq.h"
#include "cli_submit.h"
#include "mail/addr.h"
#include "cli_util.h"
#include "sendmail_bs.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define SENDMAIL_FULLNAME_MAX 256

typedef enum { MODE_DELIVER, MODE_SMTP, MODE_VERIFY, MODE_MAILQ, MODE_NEWALIASES,
               MODE_FLUSH } sendmail_mode_t;

/* usage - the synopsis, then exit EX_USAGE */
static void usage(void)
{
    fprintf(stderr, "usage: sendmail [-c config_dir] [-t] [-i] [-f sender] [-F full_name] "
                    "[-bs|-bv|-bp|-bi] [--] [recipient ...]\n");
    exit(EX_USAGE);
}

/* sendmail_read - the message from stdin: LF → CRLF, "." ends unless -i */
static int sendmail_read(FILE *in, bool dot_ends, uint64_t limit, buf_t *content, const char **why_r)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool first = true;

    while ((n = getline(&line, &cap, in)) > 0) {
        size_t len = (size_t)n;

        if (line[len - 1] == '\n') {
            len--;
            if (len > 0 && line[len - 1] == '\r')
                len--;
        }
        if (dot_ends && len == 1 && line[0] == '.')
            break;
        /* A Unix "From " envelope line is not part of the message. */
        if (first && len >= 5 && memcmp(line, "From ", 5) == 0) {
            first = false;
            continue;
        }
        first = false;
        if (buf_append(content, line, len) < 0 || buf_puts(content, "\r\n") < 0
            || (limit && content->len > limit)) {
            free(line);
            *why_r = "message file too big";
            return -1;
        }
    }
    free(line);
    if (ferror(in)) {
        *why_r = "error reading standard input";
        return -1;
    }
    return 0;
}

/* sendmail_full_name - -F, else $NAME, else the passwd GECOS name */
static char *sendmail_full_name(const char *opt, const struct passwd *pw)
{
    const char *src = opt ? opt : getenv("NAME");
    buf_t b;

    buf_init(&b, SENDMAIL_FULLNAME_MAX);
    if (src == NULL && pw && pw->pw_gecos) {
        /* GECOS: the first comma field; '&' stands for the login name,
         * capitalized. */
        for (const char *p = pw->pw_gecos; *p && *p != ','; p++) {
            if (*p == '&') {
                for (const char *u = pw->pw_name; *u; u++)
                    buf_putc(&b, u == pw->pw_name && *u >= 'a' && *u <= 'z' ? *u - 32 : *u);
            } else {
                buf_putc(&b, *p);
            }
        }
    } else if (src) {
        buf_puts(&b, src);
    }
    if (b.len == 0) {
        buf_free(&b);
        return NULL;
    }
    /* Never let a name carry a line end into a header. */
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7F)
            b.data[i] = ' ';
    str_trim(b.data);
    if (b.data[0] == 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

/* sendmail_exec_tool - run a sibling command (storkmap, storkqueue) */
static int sendmail_exec_tool(const char *tool, char **args)
{
    char self[PATH_MAX];
    ssize_t n;
    char *path;
    gid_t gid = getgid();
    bool setgid_run = getegid() != gid;

    /* The set-gid group is for writing maildrop/, nothing else: the
     * tool runs with the user's own ids (all three, so it cannot get
     * the group back), and a set-gid run never searches the user's
     * PATH for it. */
    if (setgid_run && setresgid(gid, gid, gid) < 0) {
        msg_error("cannot drop the set-gid group: %s", strerror(errno));
        return EX_OSERR;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');

        if (slash)
            *slash = 0;
        path = xasprintf("%s/%s", self, tool);
        execv(path, args);
        free(path);
    }
    if (!setgid_run)
        execvp(tool, args);
    msg_error("cannot run %s: %s", tool, strerror(errno));
    return EX_UNAVAILABLE;
}

/* sendmail_newaliases - newaliases: storkmap rebuilds $alias_database */
static int sendmail_newaliases(const char *config_dir)
{
    char *args[6];
    int i = 0;

    args[i++] = (char *)"newaliases";
    if (config_dir) {
        args[i++] = (char *)"-c";
        args[i++] = (char *)config_dir;
    }
    args[i] = NULL;
    /* storkmap acts as newaliases when invoked by that name. */
    return sendmail_exec_tool("storkmap", args);
}

/* sendmail_sender - -f (qualified; "" or "<>" is the null sender), else
 * the invoking user by real uid (never $USER); NULL if neither works */
static char *sendmail_sender(const char *opt, const struct passwd *pw, const char *origin)
{
    cli_addr_list_t l = {0};
    const char *why;
    char *sender = NULL;

    if (opt == NULL) {
        if (pw)
            return cli_submit_qualify(pw->pw_name, origin);
        msg_error("unknown user id %lu and no -f sender", (unsigned long)getuid());
        return NULL;
    }
    if (strcmp(opt, "<>") == 0 || *opt == 0)
        return xstrdup("");
    if (cli_addrlist_parse(opt, &l, &why) < 0 || l.n != 1)
        msg_error("bad sender address: %s", opt);
    else
        sender = cli_submit_qualify(l.v[0], origin);
    cli_addr_list_free(&l);
    return sender;
}

/* sendmail_verify - -bv: the recipients' syntax only (no delivery test) */
static int sendmail_verify(const cli_addr_list_t *rcpts, const char *origin)
{
    int status = 0;

    if (rcpts->n == 0) {
        msg_error("no recipients specified");
        return EX_USAGE;
    }
    for (size_t i = 0; i < rcpts->n; i++) {
        char *a = cli_submit_qualify(rcpts->v[i], origin);

        if (addr_internal_ok(a)) {
            printf("%s... deliverable: address syntax ok\n", a);
        } else {
            printf("%s... bad address syntax\n", a);
            status = EX_NOUSER;
        }
        free(a);
    }
    return status;
}

/* sendmail_stdin - the classic mode: read stdin, queue it */
static int sendmail_stdin(const cli_submit_t *s, cli_addr_list_t *rcpts, bool extract,
                          bool dot_ends)
{
    char qid[QID_BUFSIZE];
    const char *why;
    buf_t content;
    int status;

    if (rcpts->n == 0 && !extract) {
        msg_error("no recipients specified");
        return EX_USAGE;
    }
    buf_init(&content, BUF_NOLIMIT);
    if (sendmail_read(stdin, dot_ends, s->size_limit, &content, &why) < 0) {
        msg_error("%s", why);
        status = strcmp(why, "message file too big") == 0 ? EX_DATAERR : EX_IOERR;
    } else if ((status = cli_submit_message(s, content.data ? content.data : "", content.len,
                                            rcpts, extract, qid, &why)) != 0) {
        msg_error("%s", why);
    }
    buf_free(&content);
    return status;
}

/* sendmail_submit - the submission modes: deliver, -bs, -bv */
static int sendmail_submit(conf_t *conf, sendmail_mode_t mode, const char *sender_opt,
                           const char *fullname_opt, bool extract, bool dot_ends,
                           char **args)
{
    struct passwd *pw = getpwuid(getuid());
    cli_submit_t s = {
        .queue_dir = cli_queue_dir(conf),
        .myorigin = conf_str(conf, "myorigin"),
        .myhostname = conf_str(conf, "myhostname"),
        .size_limit = (uint64_t)conf_int(conf, "message_size_limit"),
        .uid = getuid(),
    };
    cli_addr_list_t rcpts = {0};
    char *sender, *full_name;
    const char *why;
    int status = 0;

    if ((sender = sendmail_sender(sender_opt, pw, s.myorigin)) == NULL)
        return sender_opt ? EX_USAGE : EX_NOUSER;
    full_name = sendmail_full_name(fullname_opt, pw);
    s.sender = sender;
    s.full_name = full_name;
    for (int i = 0; args[i] && status == 0; i++) {
        if (cli_addrlist_parse(args[i], &rcpts, &why) < 0) {
            msg_error("%s: bad address syntax: %s", args[i], why);
            status = EX_NOUSER;
        }
    }
    if (status == 0) {
        if (mode == MODE_SMTP)
            status = sendmail_bs(&s, stdin, stdout);
        else if (mode == MODE_VERIFY)
            status = sendmail_verify(&rcpts, s.myorigin);
        else
            status = sendmail_stdin(&s, &rcpts, extract, dot_ends);
    }
    cli_addr_list_free(&rcpts);
    free(sender);
    free(full_name);
    return status;
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *config_dir = NULL, *sender_opt = NULL, *fullname_opt = NULL, *why;
    sendmail_mode_t mode = MODE_DELIVER;
    bool extract = false, dot_ends = true;
    conf_t *conf;
    int c, status;

    cli_init(argv[0], strcmp(base, "mailq") == 0 ? "mailq"
                      : strcmp(base, "newaliases") == 0 ? "newaliases" : "sendmail");
    if (strcmp(base, "mailq") == 0)
        mode = MODE_MAILQ;
    else if (strcmp(base, "newaliases") == 0)
        mode = MODE_NEWALIASES;
    opterr = 0;
    while ((c = getopt(argc, argv, "+B:b:C:c:F:f:h:iL:N:no:p:q::R:r:tU:V:vX:")) != -1) {
        switch (c) {
        case 'b':
            switch (optarg[0]) {
            case 'm': mode = MODE_DELIVER; break;
            case 'd': case 's': mode = MODE_SMTP; break;
            case 'v': mode = MODE_VERIFY; break;
            case 'p': mode = MODE_MAILQ; break;
            case 'i': mode = MODE_NEWALIASES; break;
            default:
                msg_error("unsupported: -b%s", optarg);
                return EX_USAGE;
            }
            break;
        case 'c':
            config_dir = optarg;
            break;
        case 'F':
            fullname_opt = optarg;
            break;
        case 'f':
        case 'r':
            sender_opt = optarg;
            break;
        case 'i':
            dot_ends = false;
            break;
        case 'o':
            /* -oi is -i; other -o options are Sendmail settings. */
            if (strcmp(optarg, "i") == 0)
                dot_ends = false;
            break;
        case 'q':
            /* -q alone flushes; -qINTERVAL (a Sendmail daemon) is ignored. */
            if (optarg == NULL)
                mode = MODE_FLUSH;
            break;
        case 't':
            extract = true;
            break;
        case 'B': case 'C': case 'h': case 'L': case 'N': case 'n': case 'p': case 'R':
        case 'U': case 'V': case 'v': case 'X':
            break;          /* accepted for compatibility, ignored */
        default:
            usage();
        }
    }
    if (config_dir && getegid() != getgid() && getuid() != 0) {
        msg_error("-c is not allowed for a set-gid sendmail run by a user");
        return EX_USAGE;
    }
    conf = cli_conf(config_dir);
    switch (mode) {
    case MODE_MAILQ:
        status = cli_showq(cli_queue_dir(conf), false);
        conf_free(&conf);
        return status;
    case MODE_NEWALIASES:
        conf_free(&conf);
        return sendmail_newaliases(config_dir);
    case MODE_FLUSH: {
        int fd = cli_qmgr_connect(cli_queue_dir(conf), &why);
        uint64_t count;

        if (fd < 0 || cli_qmgr_control(fd, "flush", NULL, NULL, NULL, &count, &why) < 0) {
            msg_error("Cannot flush mail queue - mail system is down (%s)", why);
            status = EX_UNAVAILABLE;
        } else {
            status = 0;
        }
        if (fd >= 0)
            close(fd);
        conf_free(&conf);
        return status;
    }
    default:
        break;
    }

    status = sendmail_submit(conf, mode, sender_opt, fullname_opt, extract, dot_ends,
                             argv + optind);
    conf_free(&conf);
    return status;
}
