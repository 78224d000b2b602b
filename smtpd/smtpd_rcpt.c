/*
 * smtpd_rcpt.c - RCPT TO: syntax, the recipient limit, classification
 * through the verify service (one place decides local/virtual/remote
 * and known/unknown: lib/mail/resolve), then the restriction lists
 * (smtpd_relay_restrictions, then smtpd_recipient_restrictions; by
 * default remote recipients only for clients in $mynetworks and
 * authenticated ones). Unknown local and virtual users are rejected
 * here (550 5.1.1), never bounced later.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mail/addr.h"
#include "smtp/smtp_reply.h"
#include "smtpd.h"
#include "util/xmalloc.h"

/* smtpd_rcpt_reject - reply, log the rejection */
static void smtpd_rcpt_reject(smtpd_session_t *s, int code, const char *dsn, const char *text)
{
    smtpd_reject_log(s, "RCPT", code, dsn, text, buf_cstr(&s->rcpt.addr));
    smtpd_reply(s, code, dsn, "%s", text);
}

/* smtpd_rcpt_accept - the recipient goes into the queue file */
static void smtpd_rcpt_accept(smtpd_session_t *s)
{
    const char *addr = buf_cstr(&s->rcpt.addr);
    const char *why;

    /* A repeated recipient is acknowledged but stored once. */
    for (size_t i = 0; i < s->nrcpts; i++) {
        if (strcasecmp(s->rcpts[i], addr) == 0) {
            smtpd_reply(s, 250, "2.1.5", "Ok");
            s->cmd_ok[SMTPD_C_RCPT]++;
            return;
        }
    }
    if (s->qf == NULL && smtpd_enqueue_open(s, &why) < 0) {
        msg_warn("%s: cannot create a queue file: %s", s->client_desc, why);
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        return;
    }
    if (smtpd_enqueue_rcpt(s, addr, buf_cstr(&s->rcpt.orcpt), s->rcpt.notify) < 0) {
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        return;
    }
    s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
    s->rcpts[s->nrcpts++] = xstrdup(addr);
    smtpd_reply(s, 250, "2.1.5", "Ok");
    s->cmd_ok[SMTPD_C_RCPT]++;
}

/* smtpd_rcpt_text - "<addr>: TEXT" unless verify's text names the address */
static void smtpd_rcpt_text(smtpd_session_t *s, buf_t *text, const char *vtext, const char *dflt)
{
    if (vtext && vtext[0] == '<') {
        smtp_reply_sanitize(text, vtext, strlen(vtext));
        return;
    }
    buf_putc(text, '<');
    addr_quote(buf_cstr(&s->rcpt.addr), text);
    buf_puts(text, ">: ");
    smtp_reply_sanitize(text, vtext ? vtext : dflt, strlen(vtext ? vtext : dflt));
}

/* smtpd_rcpt_policy - the restriction lists; false when rejected */
static bool smtpd_rcpt_policy(smtpd_session_t *s, bool remote)
{
    const smtpd_settings_t *set = &s->srv->set;
    smtpd_restrict_facts_t facts = { s->client_trusted, s->sasl_username != NULL, remote };
    smtpd_verdict_t v = smtpd_restrict_eval(&set->relay_restrictions, &facts);
    buf_t text;

    /* OK ends only its own list, as in Postfix. */
    if (v != SMTPD_VERDICT_RELAY && v != SMTPD_VERDICT_REJECT)
        v = smtpd_restrict_eval(&set->recipient_restrictions, &facts);
    if (v != SMTPD_VERDICT_RELAY && v != SMTPD_VERDICT_REJECT)
        return true;
    buf_init(&text, BUF_NOLIMIT);
    smtpd_rcpt_text(s, &text, NULL, v == SMTPD_VERDICT_RELAY ? "Relay access denied"
                    : "Recipient address rejected: Access denied");
    smtpd_rcpt_reject(s, 554, "5.7.1", buf_cstr(&text));
    buf_free(&text);
    return false;
}

/* smtpd_rcpt_verified - the verify service answered (or failed) */
static void smtpd_rcpt_verified(void *ctx, const smtpd_verify_result_t *res)
{
    smtpd_session_t *s = ctx;
    buf_t text;

    buf_init(&text, BUF_NOLIMIT);
    if (strcmp(res->cls, "local") == 0 || strcmp(res->cls, "virtual") == 0) {
        if (smtpd_rcpt_policy(s, false))
            smtpd_rcpt_accept(s);
    } else if (strcmp(res->cls, "remote") == 0) {
        if (smtpd_rcpt_policy(s, true))
            smtpd_rcpt_accept(s);
    } else if (strcmp(res->cls, "unknown") == 0 && !smtpd_rcpt_policy(s, false)) {
        /* refused by policy before the user table is consulted */
    } else if (strcmp(res->cls, "unknown") == 0) {
        const char *dsn = res->dsn && smtp_dsn_valid(res->dsn) && res->dsn[0] == '5'
            ? res->dsn : "5.1.1";
        smtpd_rcpt_text(s, &text, res->text, "Recipient address rejected: User unknown");
        smtpd_rcpt_reject(s, 550, dsn, buf_cstr(&text));
    } else {
        smtpd_rcpt_text(s, &text, res->text, "Temporary lookup failure");
        smtpd_rcpt_reject(s, 451, "4.3.0", buf_cstr(&text));
    }
    buf_free(&text);
    s->wait_verify = false;
    smtpd_session_wake(s);
}

/* smtpd_cmd_rcpt - RCPT TO:<path> [NOTIFY= ORCPT=] */
int smtpd_cmd_rcpt(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    const smtpd_settings_t *set = &s->srv->set;
    smtp_err_t err;
    unsigned flags = 0;

    if (!s->have_mail) {
        smtpd_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return -1;
    }
    if (s->nrcpts >= (size_t)set->recipient_limit) {
        smtpd_reply(s, 452, "4.5.3", "Error: too many recipients");
        return -1;
    }
    if (s->mail.smtputf8)
        flags |= SMTP_PARSE_UTF8;
    if (set->strict_rfc821)
        flags |= SMTP_PARSE_STRICT;
    smtp_err_init(&err);
    if (smtp_parse_rcpt(cl->arg, cl->arg_len, flags, &s->rcpt, &err) < 0) {
        /* RFC 6531 3.4: a non-ASCII address in a transaction that did
         * not declare SMTPUTF8 is refused as such, not as bad syntax. */
        if (cl->has_8bit && !s->mail.smtputf8 && set->smtputf8 && s->esmtp && err.code == 501)
            smtpd_reply(s, 553, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
        else
            smtpd_reply(s, err.code, err.dsn, "%s", buf_cstr(&err.text));
        smtp_err_free(&err);
        return -1;
    }
    smtp_err_free(&err);
    /* Wait for the answer; the callback may also run right away (the
     * service is down), then wait_verify is already cleared. */
    s->wait_verify = true;
    smtpd_verify_query(s->srv->verify, buf_cstr(&s->rcpt.addr), s->client_addr,
                       smtpd_rcpt_verified, s);
    return 1;
}
