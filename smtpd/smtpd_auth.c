/*
 * smtpd_auth.c - AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN.
 *
 * The exchange is a small state machine on the session: AUTH moves the
 * session to SMTPD_ST_AUTH while smtpd waits for a response line after
 * a 334 challenge; each response line is bounded by line_length_limit
 * (the input loop enforces it) and a mechanism has at most two steps.
 * smtpd never sees a password hash: the credentials go to the verify
 * service (AUTH_REQ), which runs outside the chroot, and smtpd waits
 * for AUTH_REPLY without reading further input, so pipelined commands
 * after AUTH run with the outcome known. Passwords are wiped after use
 * and never logged.
 * A failure costs the client SMTPD_AUTH_FAIL_DELAY_MS (before the next
 * command is read), counts as an error (smtpd_hard_error_limit), and
 * after SMTPD_AUTH_MAX_FAILURES the session is closed.
 */
#include <stdlib.h>
#include <string.h>
#include "smtp/smtp_reply.h"
#include "smtpd.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SMTPD_AUTH_FAIL_DELAY_MS 1000
#define SMTPD_AUTH_MAX_FAILURES 5
#define SMTPD_AUTH_BUF_MAX 4096         /* decoded response: larger is malformed */

/* The LOGIN prompts, base64 of "Username:" and "Password:". */
#define SMTPD_LOGIN_USER "VXNlcm5hbWU6"
#define SMTPD_LOGIN_PASS "UGFzc3dvcmQ6"

/* smtpd_auth_offered - may AUTH be used in this session now? */
bool smtpd_auth_offered(const smtpd_session_t *s)
{
    const smtpd_settings_t *set = &s->srv->set;

    return set->sasl_enable && s->sasl_username == NULL
        && (s->tls_active || !set->tls_auth_only);
}

/* smtpd_auth_reset - forget the exchange and the identity (STARTTLS, end) */
void smtpd_auth_reset(smtpd_session_t *s)
{
    if (s->wait_auth)
        smtpd_verify_cancel(s->srv->verify, s);
    s->wait_auth = false;
    if (s->auth_user) {
        explicit_bzero(s->auth_user, strlen(s->auth_user));
        xfreep(&s->auth_user);
    }
    xfreep(&s->sasl_username);
    s->sasl_method = NULL;
    s->auth_mech = SMTPD_SASL_NONE;
    if (s->state == SMTPD_ST_AUTH)
        s->state = SMTPD_ST_CMD;
}

/* smtpd_auth_abort - end an unfinished exchange (line too long) */
void smtpd_auth_abort(smtpd_session_t *s)
{
    if (s->state != SMTPD_ST_AUTH)
        return;
    s->state = SMTPD_ST_CMD;
    s->auth_mech = SMTPD_SASL_NONE;
    xfreep(&s->auth_user);
}

/* smtpd_auth_checked - the verify service's verdict */
static void smtpd_auth_checked(void *ctx, const smtpd_verify_result_t *res)
{
    smtpd_session_t *s = ctx;
    const char *mech = smtpd_sasl_mech_name(s->auth_mech);

    s->wait_auth = false;
    if (strcmp(res->cls, "ok") == 0) {
        s->sasl_username = s->auth_user;
        s->auth_user = NULL;
        s->sasl_method = mech;
        smtpd_reply(s, 235, "2.7.0", "Authentication successful");
        s->cmd_ok[SMTPD_C_AUTH]++;
    } else if (strcmp(res->cls, "fail") == 0) {
        /* Postfix's shape, so fail2ban filters keep working. */
        msg_warn("%s: SASL %s authentication failed: authentication failure, sasl_username=%s",
                 s->client_desc, mech, s->auth_user ? s->auth_user : "");
        smtpd_reply(s, 535, "5.7.8", "Error: authentication failed: "
                    "Authentication credentials invalid");
        if (++s->auth_failures >= SMTPD_AUTH_MAX_FAILURES) {
            msg_info("too many failed authentication attempts from %s", s->client_desc);
            smtpd_reply(s, 421, "4.7.0", "%s Error: too many failed authentication attempts",
                        s->srv->set.myhostname);
            s->quit = true;
        } else {
            smtpd_session_sleep(s, SMTPD_AUTH_FAIL_DELAY_MS);
        }
    } else {
        msg_warn("%s: SASL %s authentication failed: temporary failure%s%s", s->client_desc,
                 mech, res->text ? ": " : "", res->text ? res->text : "");
        smtpd_reply(s, 454, "4.7.0", "Temporary authentication failure");
    }
    xfreep(&s->auth_user);
    if (s->sasl_username == NULL)
        s->auth_mech = SMTPD_SASL_NONE;
    smtpd_session_wake(s);
}

/* smtpd_auth_check - ask the verify service; user is the authcid */
static void smtpd_auth_check(smtpd_session_t *s, const char *user, size_t ulen,
                             const char *pass, size_t plen)
{
    char *pw = xstrndup(pass, plen);

    s->state = SMTPD_ST_CMD;
    free(s->auth_user);
    s->auth_user = xstrndup(user, ulen);
    s->wait_auth = true;
    smtpd_verify_auth(s->srv->verify, s->auth_user, pw, s->client_addr,
                      smtpd_auth_checked, s);
    explicit_bzero(pw, plen);
    free(pw);
}

/* smtpd_auth_fail - a malformed exchange: reply and go back to commands */
static void smtpd_auth_fail(smtpd_session_t *s, int code, const char *dsn, const char *text)
{
    smtpd_auth_abort(s);
    smtpd_reply(s, code, dsn, "%s", text);
}

/* smtpd_auth_response - one decoded response of the current step */
static void smtpd_auth_response(smtpd_session_t *s, const char *p, size_t n)
{
    const char *why;

    if (s->auth_mech == SMTPD_SASL_PLAIN) {
        smtpd_sasl_plain_t pl;
        if (smtpd_sasl_plain(p, n, &pl, &why) < 0) {
            smtpd_auth_fail(s, 535, "5.7.8", "Error: authentication failed: "
                            "Authentication credentials invalid");
            return;
        }
        /* Acting as somebody else is not supported. */
        if (pl.authzid_len && (pl.authzid_len != pl.authcid_len
                               || memcmp(pl.authzid, pl.authcid, pl.authcid_len) != 0)) {
            smtpd_auth_fail(s, 535, "5.7.8", "Error: authentication failed: "
                            "Authentication credentials invalid");
            return;
        }
        smtpd_auth_check(s, pl.authcid, pl.authcid_len, pl.passwd, pl.passwd_len);
        return;
    }
    /* LOGIN: the user name, then the password */
    if (s->auth_user == NULL) {
        if (smtpd_sasl_login_value(p, n, true, &why) < 0) {
            smtpd_auth_fail(s, 535, "5.7.8", "Error: authentication failed: "
                            "Authentication credentials invalid");
            return;
        }
        s->auth_user = xstrndup(p, n);
        s->state = SMTPD_ST_AUTH;
        smtpd_reply(s, 334, NULL, SMTPD_LOGIN_PASS);
        return;
    }
    if (smtpd_sasl_login_value(p, n, false, &why) < 0) {
        smtpd_auth_fail(s, 535, "5.7.8", "Error: authentication failed: "
                        "Authentication credentials invalid");
        return;
    }
    {
        char *user = s->auth_user;
        s->auth_user = NULL;
        smtpd_auth_check(s, user, strlen(user), p, n);
        free(user);
    }
}

/* smtpd_auth_decode - base64 line → response (the "*" cancel first) */
static void smtpd_auth_decode(smtpd_session_t *s, const char *line, size_t len)
{
    buf_t dec;
    const char *why;

    if (len == 1 && line[0] == '*') {
        smtpd_auth_fail(s, 501, "5.0.0", "Authentication aborted");
        return;
    }
    buf_init(&dec, SMTPD_AUTH_BUF_MAX);
    if (smtpd_sasl_b64decode(line, len, &dec, &why) < 0)
        smtpd_auth_fail(s, 501, "5.5.2", "Cannot decode response");
    else
        smtpd_auth_response(s, dec.data ? dec.data : "", dec.len);
    if (dec.data)
        explicit_bzero(dec.data, dec.len);
    buf_free(&dec);
}

/* smtpd_auth_input - a response line after a 334 */
void smtpd_auth_input(smtpd_session_t *s, const char *line, size_t len)
{
    smtpd_auth_decode(s, line, len);
}

/* smtpd_cmd_auth - AUTH mechanism [initial-response] */
int smtpd_cmd_auth(smtpd_session_t *s, const smtp_cmdline_t *cl)
{
    const smtpd_settings_t *set = &s->srv->set;
    const char *sp, *arg = cl->arg;
    size_t mlen;

    if (!set->sasl_enable) {
        smtpd_reply(s, 503, "5.5.1", "Error: authentication not enabled");
        return -1;
    }
    if (s->helo == NULL || !s->esmtp) {
        smtpd_reply(s, 503, "5.5.1", "Error: send EHLO first");
        return -1;
    }
    if (s->sasl_username) {
        smtpd_reply(s, 503, "5.5.1", "Error: already authenticated");
        return -1;
    }
    if (s->have_mail) {
        smtpd_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
        return -1;
    }
    if (!s->tls_active && set->tls_auth_only) {
        smtpd_reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
        return -1;
    }
    if (smtpd_tls_required(s))
        return -1;
    if (cl->arg_len == 0) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism");
        return -1;
    }
    sp = memchr(arg, ' ', cl->arg_len);
    mlen = sp ? (size_t)(sp - arg) : cl->arg_len;
    s->auth_mech = smtpd_sasl_mech(arg, mlen);
    if (s->auth_mech == SMTPD_SASL_NONE) {
        smtpd_reply(s, 504, "5.5.4", "Unsupported authentication mechanism");
        return -1;
    }
    xfreep(&s->auth_user);
    if (sp) {
        /* An initial response (RFC 4954 4): the first step's answer. */
        const char *ir = sp + 1;
        size_t irlen = cl->arg_len - mlen - 1;
        smtpd_auth_decode(s, ir, irlen);
        return 1;
    }
    s->state = SMTPD_ST_AUTH;
    smtpd_reply(s, 334, NULL, s->auth_mech == SMTPD_SASL_PLAIN ? "" : SMTPD_LOGIN_USER);
    return 1;
}
