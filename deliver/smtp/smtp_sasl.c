/*
 * smtp_sasl - the SASL client: the password table and the PLAIN and
 * LOGIN mechanisms (both send the password, so they are used over TLS,
 * or in clear only when the security options allow it).
 */
#include "smtp.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MECH_PLAIN = 1, MECH_LOGIN = 2 };

/* smtp_sasl_lookup - "user:password" for this server: keys are the next
 * hop as given ("[host]:port"), the server's name, then the domain;
 * 1 found, 0 none, -1 table error */
int smtp_sasl_lookup(const smtp_job_t *job, const char *host, char **user_r, char **pass_r)
{
    const char *keys[3] = { job->nexthop, host, job->dest.host };
    buf_t val;
    const char *why;
    int r = 0;

    buf_init(&val, 4096);
    for (size_t i = 0; i < 3 && r == 0; i++) {
        char key[300];

        if (keys[i] == NULL || *keys[i] == 0)
            continue;
        safe_cpy(key, sizeof(key), keys[i]);
        str_lower(key);
        if ((r = smtp_tables_get(&smtp.sasl_passwd, key, &val, &why)) < 0)
            msg_warn("smtp_sasl_password_maps lookup of %s: %s", key, why);
    }
    if (r > 0) {
        const char *v = buf_cstr(&val), *colon = strchr(v, ':');

        if (colon == NULL) {
            msg_warn("smtp_sasl_password_maps: value for %s is not user:password", host);
            r = 0;
        } else {
            *user_r = xstrndup(v, (size_t)(colon - v));
            *pass_r = xstrdup(colon + 1);
        }
    }
    buf_free(&val);
    return r;
}

/* mech_offered - is mechanism m in the server's list? */
static bool mech_offered(const char *mechs, const char *m)
{
    size_t n = strlen(m);

    for (const char *p = mechs; (p = strstr(p, m)) != NULL; p += n)
        if ((p == mechs || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
            return true;
    return false;
}

/* smtp_sasl_start - the AUTH command for the best mechanism allowed */
int smtp_sasl_start(const char *mechs, const char *user, const char *pass, bool tls_on,
                    buf_t *cmd, int *mech_r, const char **why_r)
{
    bool noplain = tls_on ? smtp.p.sasl_tls_noplain : smtp.p.sasl_noplain;

    if (noplain) {
        *why_r = tls_on ? "no worthy mechanism found (smtp_sasl_tls_security_options)"
                        : "no worthy mechanism found (plaintext mechanisms need TLS)";
        return -1;
    }
    buf_reset(cmd);
    if (mech_offered(mechs, "PLAIN")) {
        buf_t raw;

        buf_init(&raw, 2048);
        (void)buf_putc(&raw, 0);
        (void)buf_puts(&raw, user);
        (void)buf_putc(&raw, 0);
        (void)buf_puts(&raw, pass);
        (void)buf_puts(cmd, "AUTH PLAIN ");
        smtp_base64(cmd, raw.data, raw.len);
        (void)buf_puts(cmd, "\r\n");
        buf_free(&raw);
        *mech_r = MECH_PLAIN;
        return 0;
    }
    if (mech_offered(mechs, "LOGIN")) {
        (void)buf_puts(cmd, "AUTH LOGIN\r\n");
        *mech_r = MECH_LOGIN;
        return 0;
    }
    *why_r = "no mechanism offered by the server is supported (PLAIN, LOGIN)";
    return -1;
}

/* smtp_sasl_step - the answer to the step-th 334 challenge; -1 none */
int smtp_sasl_step(int mech, int step, const char *user, const char *pass, buf_t *cmd)
{
    buf_reset(cmd);
    if (mech != MECH_LOGIN || step > 1)
        return -1;
    smtp_base64(cmd, step == 0 ? user : pass, strlen(step == 0 ? user : pass));
    (void)buf_puts(cmd, "\r\n");
    return 0;
}
