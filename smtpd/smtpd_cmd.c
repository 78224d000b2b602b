/*
 * smtpd_cmd.c - the command table and the small commands (RSET, NOOP,
 * QUIT, HELP, VRFY). The rules are data: each verb has a handler, a
 * counter slot for the "disconnect from" log line, and flags.
 * A handler returns 0 (success), -1 (rejected) or 1 (the outcome comes
 * later: RCPT waiting for verify, DATA/BDAT waiting for the content; the
 * handler's continuation counts the success itself).
 */
#include <string.h>
#include "smtp/smtp_reply.h"
#include "smtpd.h"
#include "util/msg.h"

#define SMTPD_CF_JUNK      1u   /* counts toward smtpd_junk_command_limit */
#define SMTPD_CF_UTF8      2u   /* the argument may hold UTF-8 (RFC 6531) */
#define SMTPD_CF_FORBIDDEN 4u   /* not SMTP at all: hang up */

typedef int smtpd_cmd_fn(smtpd_session_t *s, const smtp_cmdline_t *cl);

typedef struct smtpd_cmd {
    const char *verb;
    smtpd_cmd_fn *fn;
    smtpd_cmd_id_t id;
    unsigned flags;
} smtpd_cmd_t;

/* smtpd_cmd_rset - RSET: forget the transaction */
static int smtpd_cmd_rset(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    if (cl->arg_len) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: RSET");
        return -1;
    }
    smtpd_transaction_reset(s);
    smtpd_reply(s, 250, "2.0.0", "Ok");
    return 0;
}

/* smtpd_cmd_noop - NOOP (an argument is allowed, RFC 5321 4.1.1.9) */
static int smtpd_cmd_noop(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    smtpd_reply(s, 250, "2.0.0", "Ok");
    return 0;
}

/* smtpd_cmd_quit - QUIT */
static int smtpd_cmd_quit(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    smtpd_reply(s, 221, "2.0.0", "Bye");
    s->quit = true;
    return 0;
}

/* smtpd_cmd_help - HELP: the commands usable now (as EHLO lists them) */
static int smtpd_cmd_help(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    smtpd_reply(s, 214, "2.0.0", "Commands: EHLO HELO%s%s MAIL RCPT DATA BDAT RSET NOOP QUIT HELP%s",
                s->srv->set.tls_ctx && !s->tls ? " STARTTLS" : "",
                smtpd_auth_offered(s) ? " AUTH" : "", s->srv->set.vrfy_enabled ? " VRFY" : "");
    return 0;
}

/* smtpd_cmd_vrfy - VRFY: off by default (address harvesting) */
static int smtpd_cmd_vrfy(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    if (!s->srv->set.vrfy_enabled) {
        smtpd_reply(s, 502, "5.5.1", "VRFY command is disabled");
        return -1;
    }
    if (cl->arg_len == 0) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: VRFY address");
        return -1;
    }
    /* RFC 5321 3.5.3: 252 when the server will not say, but accepts. */
    smtpd_reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
    return 0;
}

/* smtpd_cmd_forbidden - an HTTP proxy or similar talking to port 25 */
static int smtpd_cmd_forbidden(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    msg_warn("non-SMTP command from %s: %.*s", s->client_desc, (int)cl->verb_len, cl->verb);
    smtpd_reply(s, 221, "2.7.0", "Error: I can break rules, too. Goodbye.");
    s->quit = true;
    return -1;
}

static const smtpd_cmd_t smtpd_cmds[] = {
    { "EHLO", smtpd_cmd_ehlo, SMTPD_C_EHLO, 0 },
    { "HELO", smtpd_cmd_helo, SMTPD_C_HELO, 0 },
    { "STARTTLS", smtpd_cmd_starttls, SMTPD_C_STARTTLS, 0 },
    { "AUTH", smtpd_cmd_auth, SMTPD_C_AUTH, 0 },
    { "MAIL", smtpd_cmd_mail, SMTPD_C_MAIL, SMTPD_CF_UTF8 },
    { "RCPT", smtpd_cmd_rcpt, SMTPD_C_RCPT, SMTPD_CF_UTF8 },
    { "DATA", smtpd_cmd_data, SMTPD_C_DATA, 0 },
    { "BDAT", smtpd_cmd_bdat, SMTPD_C_BDAT, 0 },
    { "RSET", smtpd_cmd_rset, SMTPD_C_RSET, SMTPD_CF_JUNK },
    { "NOOP", smtpd_cmd_noop, SMTPD_C_NOOP, SMTPD_CF_JUNK | SMTPD_CF_UTF8 },
    { "VRFY", smtpd_cmd_vrfy, SMTPD_C_VRFY, SMTPD_CF_JUNK | SMTPD_CF_UTF8 },
    { "HELP", smtpd_cmd_help, SMTPD_C_HELP, SMTPD_CF_JUNK },
    { "QUIT", smtpd_cmd_quit, SMTPD_C_QUIT, 0 },
    { "CONNECT", smtpd_cmd_forbidden, SMTPD_C_UNKNOWN, SMTPD_CF_FORBIDDEN | SMTPD_CF_UTF8 },
    { "GET", smtpd_cmd_forbidden, SMTPD_C_UNKNOWN, SMTPD_CF_FORBIDDEN | SMTPD_CF_UTF8 },
    { "POST", smtpd_cmd_forbidden, SMTPD_C_UNKNOWN, SMTPD_CF_FORBIDDEN | SMTPD_CF_UTF8 },
};

/* smtpd_cmd_dispatch - one command line (CRLF removed) */
void smtpd_cmd_dispatch(smtpd_session_t *s, const char *line, size_t len)
{
    smtp_cmdline_t cl;
    smtp_err_t err;
    const smtpd_cmd_t *cmd = NULL;
    int ret;

    smtp_err_init(&err);
    if (smtp_parse_line(line, len, &cl, &err) < 0) {
        s->cmd_total[SMTPD_C_UNKNOWN]++;
        s->last_cmd = "UNKNOWN";
        smtpd_reply(s, err.code, err.dsn, "%s", buf_cstr(&err.text));
        smtp_err_free(&err);
        return;
    }
    smtp_err_free(&err);
    for (size_t i = 0; i < sizeof(smtpd_cmds) / sizeof(smtpd_cmds[0]); i++) {
        if (smtp_verb_is(&cl, smtpd_cmds[i].verb)) {
            cmd = &smtpd_cmds[i];
            break;
        }
    }
    if (cmd == NULL) {
        s->cmd_total[SMTPD_C_UNKNOWN]++;
        s->last_cmd = "UNKNOWN";
        smtpd_reply(s, 502, "5.5.2", "Error: command not recognized");
        return;
    }
    s->last_cmd = cmd->verb;
    s->cmd_total[cmd->id]++;
    if (cl.has_8bit && !(cmd->flags & SMTPD_CF_UTF8)) {
        smtpd_reply(s, 500, "5.5.2", "Error: non-ASCII character in command");
        return;
    }
    /* Postfix: past the junk limit every such command is an error, so
     * a NOOP flood runs into the error limits and is disconnected. */
    if ((cmd->flags & SMTPD_CF_JUNK) && ++s->junk_count > s->srv->set.junk_command_limit)
        s->error_count++;
    ret = cmd->fn(s, &cl);
    if (ret == 0)
        s->cmd_ok[cmd->id]++;
}
