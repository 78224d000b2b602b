/*
 * smtpd_mail.c - MAIL FROM: starts a transaction. The sender is not
 * looked up (as Postfix by default); SIZE is checked against
 * message_size_limit before any content arrives (RFC 1870).
 */
#include "smtpd.h"

/* smtpd_cmd_mail - MAIL FROM:<path> [SIZE=n BODY=... SMTPUTF8 RET= ENVID= AUTH=] */
int smtpd_cmd_mail(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    const smtpd_settings_t *set = &s->srv->set;
    smtp_err_t err;
    unsigned flags = 0;

    if (s->helo == NULL) {
        smtpd_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return -1;
    }
    if (s->have_mail) {
        smtpd_reply(s, 503, "5.5.1", "Error: nested MAIL command");
        return -1;
    }
    if (smtpd_tls_required(s))
        return -1;
    if (set->smtputf8 && s->esmtp)
        flags |= SMTP_PARSE_UTF8;
    if (set->strict_rfc821)
        flags |= SMTP_PARSE_STRICT;
    smtp_err_init(&err);
    if (smtp_parse_mail(cl->arg, cl->arg_len, flags, &s->mail, &err) < 0) {
        smtpd_reply(s, err.code, err.dsn, "%s", buf_cstr(&err.text));
        smtp_err_free(&err);
        return -1;
    }
    smtp_err_free(&err);
    if (s->mail.body == SMTP_BODY_BINARYMIME) {
        /* Not offered: BINARYMIME content cannot pass the bare-newline
         * check that keeps SMTP smuggling out. */
        smtpd_reply(s, 555, "5.5.4", "Unsupported option: BODY=BINARYMIME");
        return -1;
    }
    if (set->message_size_limit && s->mail.size_set && s->mail.size > set->message_size_limit) {
        s->have_mail = true;        /* so that the log line names the sender */
        smtpd_reject_log(s, "MAIL", 552, "5.3.4", "Message size exceeds fixed limit", NULL);
        s->have_mail = false;
        smtpd_reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
        return -1;
    }
    s->have_mail = true;
    smtpd_reply(s, 250, "2.1.0", "Ok");
    return 0;
}
