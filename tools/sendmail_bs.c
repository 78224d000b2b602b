/*
 * sendmail_bs - sendmail -bs: one SMTP session on stdin/stdout
 * (see sendmail_bs.h)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "cli_hdr.h"
#include "cli_submit.h"
#include "mail/addr.h"
#include "sendmail_bs.h"
#include "util/buf.h"
#include "util/xmalloc.h"

typedef struct bs_session {
    const cli_submit_t *s;
    FILE *in;
    FILE *out;
    bool have_mail;
    char *sender;
    cli_addr_list_t rcpts;
    int errors;
    bool quit;
} bs_session_t;

typedef void bs_cmd_fn(bs_session_t *bs, const char *args);

typedef struct bs_cmd {
    const char *verb;
    bs_cmd_fn *fn;
} bs_cmd_t;

/* bs_reply - one reply line; flushed before the next read blocks */
static void bs_reply(bs_session_t *bs, const char *text)
{
    fprintf(bs->out, "%s\r\n", text);
}

/* bs_error - an error reply, counted against BS_MAX_ERRORS */
static void bs_error(bs_session_t *bs, const char *text)
{
    bs_reply(bs, text);
    bs->errors++;
}

/* bs_getline - a line without its LF/CRLF, at most max bytes kept (the
 * rest is read and dropped; *too_long says so); -1 at end of input */
static int bs_getline(FILE *in, buf_t *line, size_t max, bool *too_long)
{
    int c;
    bool any = false;

    buf_reset(line);
    *too_long = false;
    while ((c = getc(in)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (line->len < max)
            buf_putc(line, c);
        else
            *too_long = true;
    }
    if (!any)
        return -1;
    if (line->len > 0 && line->data[line->len - 1] == '\r')
        buf_truncate(line, line->len - 1);
    return 0;
}

/* bs_reset - forget the current transaction */
static void bs_reset(bs_session_t *bs)
{
    bs->have_mail = false;
    xfreep(&bs->sender);
    cli_addr_list_free(&bs->rcpts);
}

/* bs_path - the address in "<...>" after FROM:/TO:; rest_r → parameters.
 * Returns a new internal-form address ("" for <>), NULL on bad syntax. */
static char *bs_path(const char *args, const char *prefix, const char **rest_r)
{
    size_t plen = strlen(prefix);
    const char *p, *e;
    bool quoted = false;
    cli_addr_list_t l = {0};
    const char *why;
    char *inner, *res = NULL;

    if (strncasecmp(args, prefix, plen) != 0)
        return NULL;
    p = args + plen;
    while (*p == ' ')
        p++;
    if (*p != '<')
        return NULL;
    for (e = p + 1; *e && (quoted || *e != '>'); e++) {
        if (*e == '\\' && e[1])
            e++;
        else if (*e == '"')
            quoted = !quoted;
    }
    if (*e != '>')
        return NULL;
    *rest_r = e + 1;
    inner = xstrndup(p, (size_t)(e - p + 1));
    if (cli_addrlist_parse(inner, &l, &why) == 0 && l.n <= 1)
        res = xstrdup(l.n ? l.v[0] : "");
    cli_addr_list_free(&l);
    free(inner);
    return res;
}

/* bs_helo - HELO/EHLO */
static void bs_helo(bs_session_t *bs, const char *args, bool ehlo)
{
    if (*args == 0) {
        bs_error(bs, ehlo ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
        return;
    }
    bs_reset(bs);
    if (!ehlo) {
        fprintf(bs->out, "250 %s\r\n", bs->s->myhostname);
        return;
    }
    fprintf(bs->out, "250-%s\r\n250-PIPELINING\r\n", bs->s->myhostname);
    if (bs->s->size_limit)
        fprintf(bs->out, "250-SIZE %llu\r\n", (unsigned long long)bs->s->size_limit);
    else
        fprintf(bs->out, "250-SIZE\r\n");
    fprintf(bs->out, "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
}

static void bs_cmd_helo(bs_session_t *bs, const char *args) { bs_helo(bs, args, false); }
static void bs_cmd_ehlo(bs_session_t *bs, const char *args) { bs_helo(bs, args, true); }

/* bs_mail_params - SIZE and BODY; others are not offered */
static int bs_mail_params(bs_session_t *bs, const char *rest)
{
    char *copy = xstrdup(rest), *save = NULL;
    int ret = 0;

    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (strncasecmp(t, "SIZE=", 5) == 0) {
            char *end;
            unsigned long long n = strtoull(t + 5, &end, 10);

            if (*end || end == t + 5) {
                bs_error(bs, "501 5.5.4 Bad SIZE parameter");
                ret = -1;
            } else if (bs->s->size_limit && n > bs->s->size_limit) {
                bs_error(bs, "552 5.3.4 Message size exceeds fixed limit");
                ret = -1;
            }
        } else if (strcasecmp(t, "BODY=7BIT") == 0 || strcasecmp(t, "BODY=8BITMIME") == 0) {
            continue;
        } else {
            bs_error(bs, "555 5.5.4 Unsupported option");
            ret = -1;
        }
        if (ret < 0)
            break;
    }
    free(copy);
    return ret;
}

/* bs_cmd_mail - MAIL FROM:<sender> [params] */
static void bs_cmd_mail(bs_session_t *bs, const char *args)
{
    const char *rest = "";
    char *sender, *q;

    if (bs->have_mail) {
        bs_error(bs, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if ((sender = bs_path(args, "FROM:", &rest)) == NULL) {
        bs_error(bs, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    q = cli_submit_qualify(sender, bs->s->myorigin);
    free(sender);
    if (*q && !addr_internal_ok(q)) {
        free(q);
        bs_error(bs, "501 5.1.7 Bad sender address syntax");
        return;
    }
    if (bs_mail_params(bs, rest) < 0) {
        free(q);
        return;
    }
    bs->sender = q;
    bs->have_mail = true;
    bs_reply(bs, "250 2.1.0 Ok");
}

/* bs_cmd_rcpt - RCPT TO:<recipient> */
static void bs_cmd_rcpt(bs_session_t *bs, const char *args)
{
    const char *rest = "";
    char *rcpt, *q;

    if (!bs->have_mail) {
        bs_error(bs, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if ((rcpt = bs_path(args, "TO:", &rest)) == NULL || *rcpt == 0) {
        free(rcpt);
        bs_error(bs, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    q = cli_submit_qualify(rcpt, bs->s->myorigin);
    free(rcpt);
    if (!addr_internal_ok(q)) {
        bs_error(bs, "501 5.1.3 Bad recipient address syntax");
    } else if (*rest && strspn(rest, " ") != strlen(rest)) {
        bs_error(bs, "555 5.5.4 Unsupported option");
    } else if (bs->rcpts.n >= BS_MAX_RCPTS) {
        bs_reply(bs, "452 4.5.3 Error: too many recipients");
    } else {
        cli_addr_list_add(&bs->rcpts, q);
        bs_reply(bs, "250 2.1.5 Ok");
    }
    free(q);
}

/* bs_read_data - the message up to ".": dot-unstuffed, CRLF line ends;
 * -1 at end of input; *too_big when over the size limit (read on) */
static int bs_read_data(bs_session_t *bs, buf_t *content, bool *too_big)
{
    buf_t line;
    bool too_long;
    int ret = -1;

    buf_init(&line, BUF_NOLIMIT);
    *too_big = false;
    while (bs_getline(bs->in, &line, BS_DATA_LINE_MAX, &too_long) == 0) {
        const char *p = buf_cstr(&line);
        size_t n = line.len;

        if (!too_long && n == 1 && p[0] == '.') {
            ret = 0;
            break;
        }
        if (n > 0 && p[0] == '.') {
            p++;
            n--;
        }
        if (too_long || *too_big
            || (bs->s->size_limit && content->len + n + 2 > bs->s->size_limit)) {
            *too_big = true;
            continue;
        }
        buf_append(content, p, n);
        buf_puts(content, "\r\n");
    }
    buf_free(&line);
    return ret;
}

/* bs_cmd_data - DATA: read, queue, reply with the queue id */
static void bs_cmd_data(bs_session_t *bs, const char *args)
{
    cli_submit_t s = *bs->s;
    char qid[QID_BUFSIZE], reply[1400];
    const char *why;
    bool too_big;
    buf_t content;
    int status;

    if (*args) {
        bs_error(bs, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (!bs->have_mail) {
        bs_error(bs, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (bs->rcpts.n == 0) {
        bs_error(bs, "503 5.5.1 Error: need RCPT command");
        return;
    }
    bs_reply(bs, "354 End data with <CR><LF>.<CR><LF>");
    fflush(bs->out);
    buf_init(&content, BUF_NOLIMIT);
    if (bs_read_data(bs, &content, &too_big) < 0) {
        buf_free(&content);
        bs->quit = true;        /* end of input inside DATA: nothing queued */
        return;
    }
    s.sender = bs->sender;
    if (too_big) {
        bs_reply(bs, "552 5.3.4 Error: message file too big");
    } else if ((status = cli_submit_message(&s, content.data ? content.data : "", content.len,
                                            &bs->rcpts, false, qid, &why)) == 0) {
        snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", qid);
        bs_reply(bs, reply);
    } else {
        snprintf(reply, sizeof(reply), "%s %.1200s",
                 status == EX_TEMPFAIL || status == EX_CANTCREAT ? "451 4.3.0 Error:"
                 : status == EX_DATAERR ? "554 5.6.0 Error:" : "554 5.5.0 Error:", why);
        bs_reply(bs, reply);
    }
    buf_free(&content);
    bs_reset(bs);
}

static void bs_cmd_rset(bs_session_t *bs, const char *args)
{
    bs_reset(bs);
    bs_reply(bs, "250 2.0.0 Ok");
}

static void bs_cmd_noop(bs_session_t *bs, const char *args)
{
    bs_reply(bs, "250 2.0.0 Ok");
}

static void bs_cmd_quit(bs_session_t *bs, const char *args)
{
    bs_reply(bs, "221 2.0.0 Bye");
    bs->quit = true;
}

static void bs_cmd_vrfy(bs_session_t *bs, const char *args)
{
    bs_reply(bs, "502 5.5.1 VRFY command is disabled");
}

static void bs_cmd_help(bs_session_t *bs, const char *args)
{
    bs_reply(bs, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT");
}

static const bs_cmd_t bs_cmds[] = {
    {"EHLO", bs_cmd_ehlo}, {"HELO", bs_cmd_helo}, {"MAIL", bs_cmd_mail},
    {"RCPT", bs_cmd_rcpt}, {"DATA", bs_cmd_data}, {"RSET", bs_cmd_rset},
    {"NOOP", bs_cmd_noop}, {"QUIT", bs_cmd_quit}, {"VRFY", bs_cmd_vrfy},
    {"HELP", bs_cmd_help}, {NULL, NULL},
};

/* sendmail_bs - the session loop */
int sendmail_bs(const cli_submit_t *s, FILE *in, FILE *out)
{
    bs_session_t bs = {.s = s, .in = in, .out = out};
    buf_t line;
    bool too_long;

    buf_init(&line, BUF_NOLIMIT);
    fprintf(out, "220 %s ESMTP Stork\r\n", s->myhostname);
    fflush(out);
    while (!bs.quit && bs_getline(in, &line, BS_LINE_MAX, &too_long) == 0) {
        const char *cmd = buf_cstr(&line), *args;
        const bs_cmd_t *c;
        size_t vlen = strcspn(cmd, " ");

        args = cmd + vlen;
        while (*args == ' ')
            args++;
        if (too_long) {
            bs_error(&bs, "500 5.5.2 Error: line too long");
        } else {
            for (c = bs_cmds; c->verb; c++)
                if (strlen(c->verb) == vlen && strncasecmp(c->verb, cmd, vlen) == 0)
                    break;
            if (c->verb)
                c->fn(&bs, args);
            else
                bs_error(&bs, "502 5.5.2 Error: command not recognized");
        }
        if (bs.errors >= BS_MAX_ERRORS) {
            fprintf(out, "421 4.7.0 %s Error: too many errors\r\n", s->myhostname);
            bs.quit = true;
        }
        fflush(out);
    }
    fflush(out);
    bs_reset(&bs);
    buf_free(&line);
    return 0;
}
