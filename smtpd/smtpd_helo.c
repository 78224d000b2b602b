/*
 * smtpd_helo.c - EHLO and HELO. Both reset the transaction (RFC 5321
 * 4.1.4). The EHLO reply lists the extensions; like every MTA, the
 * greeting and the EHLO/HELO replies carry no enhanced status code
 * (the client has not yet learned that we speak ENHANCEDSTATUSCODES,
 * and EHLO lines are keywords, RFC 2034 3).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "smtp/smtp_reply.h"
#include "smtpd.h"
#include "util/xmalloc.h"

/* Characters that would let a HELO name change the structure of the
 * Received: header or the log line (Postfix's NEUTER_CHARACTERS, applied
 * to HELO/EHLO the same way): "HELO a (b [1.2.3.4])" must not read as
 * a second host and address. */
#define SMTPD_HELO_NEUTER " <>()\\\";@"
#define SMTPD_HELO_MAX 255              /* RFC 1035 name length */

/* smtpd_helo_name - the client's name as stored: neutered, bounded */
static char *smtpd_helo_name(const char *arg, size_t len)
{
    char *name;

    /* Longer names are cut so the Received: line stays within RFC
     * 5322's 998 characters; nothing is lost that a real host name has. */
    if (len > SMTPD_HELO_MAX)
        len = SMTPD_HELO_MAX;
    name = xstrndup(arg, len);
    for (char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 33 || c > 126 || strchr(SMTPD_HELO_NEUTER, c))
            *p = '?';
    }
    return name;
}

/* smtpd_helo_common - remember the name, reset the transaction */
static int smtpd_helo_common(smtpd_session_t *s, const smtp_cmdline_t *cl, const char *verb)
{
    if (cl->arg_len == 0) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
        return -1;
    }
    free(s->helo);
    s->helo = smtpd_helo_name(cl->arg, cl->arg_len);
    smtpd_transaction_reset(s);
    return 0;
}

/* smtpd_cmd_ehlo - EHLO: the extension list */
int smtpd_cmd_ehlo(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    const smtpd_settings_t *set = &s->srv->set;
    const char *lines[16];
    size_t n = 0;
    char size_line[40];

    if (smtpd_helo_common(s, cl, "EHLO") < 0)
        return -1;
    s->esmtp = true;
    lines[n++] = set->myhostname;
    lines[n++] = "PIPELINING";
    if (set->message_size_limit)
        snprintf(size_line, sizeof(size_line), "SIZE %" PRIu64, set->message_size_limit);
    else
        snprintf(size_line, sizeof(size_line), "SIZE");
    lines[n++] = size_line;
    if (set->vrfy_enabled)
        lines[n++] = "VRFY";
    lines[n++] = "ENHANCEDSTATUSCODES";
    lines[n++] = "8BITMIME";
    lines[n++] = "DSN";
    if (set->smtputf8)
        lines[n++] = "SMTPUTF8";
    lines[n++] = "CHUNKING";
    /* STARTTLS only while still in plaintext; AUTH only where it may be
     * used (smtpd_tls_auth_only: after TLS). */
    if (set->tls_ctx && !s->tls)
        lines[n++] = "STARTTLS";
    if (smtpd_auth_offered(s)) {
        lines[n++] = "AUTH PLAIN LOGIN";
        if (set->broken_sasl_clients)
            lines[n++] = "AUTH=PLAIN LOGIN";
    }
    if (smtp_reply_lines(&s->out, 250, NULL, lines, n) < 0)
        s->dead = true;
    return 0;
}

/* smtpd_cmd_helo - HELO: plain SMTP */
int smtpd_cmd_helo(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    if (smtpd_helo_common(s, cl, "HELO") < 0)
        return -1;
    s->esmtp = false;
    smtpd_reply(s, 250, NULL, "%s", s->srv->set.myhostname);
    return 0;
}
