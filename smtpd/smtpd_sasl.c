/*
 * smtpd_sasl.c - base64 and the PLAIN/LOGIN message formats for AUTH.
 * Pure functions: see smtpd_sasl.h.
 */
#include <string.h>
#include <strings.h>
#include "smtpd_sasl.h"

/* smtpd_sasl_mech - the mechanism named by the AUTH argument */
smtpd_sasl_mech_t smtpd_sasl_mech(const char *name, size_t len)
{
    if (len == 5 && strncasecmp(name, "PLAIN", 5) == 0)
        return SMTPD_SASL_PLAIN;
    if (len == 5 && strncasecmp(name, "LOGIN", 5) == 0)
        return SMTPD_SASL_LOGIN;
    return SMTPD_SASL_NONE;
}

/* smtpd_sasl_mech_name - for the log */
const char *smtpd_sasl_mech_name(smtpd_sasl_mech_t mech)
{
    return mech == SMTPD_SASL_PLAIN ? "PLAIN" : mech == SMTPD_SASL_LOGIN ? "LOGIN" : "none";
}

/* b64val - the value of one base64 digit, -1 if it is not one */
static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* smtpd_sasl_b64decode - strict base64; "=" is the empty response */
int smtpd_sasl_b64decode(const char *in, size_t len, buf_t *out, const char **why_r)
{
    if (len == 1 && in[0] == '=')
        return 0;
    if (len % 4 != 0) {
        *why_r = "bad base64 length";
        return -1;
    }
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        unsigned char b[3];

        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];
            /* '=' only at the very end: "xx==" or "xxx=" */
            if (c == '=' && i + 4 == len && j >= 2 && (j == 3 || in[i + 3] == '=')) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad || (v[j] = b64val(c)) < 0) {
                *why_r = "bad base64 character";
                return -1;
            }
        }
        b[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        b[1] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
        b[2] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
        if (buf_append(out, (const char *)b, (size_t)(3 - pad)) < 0) {
            *why_r = "response too long";
            return -1;
        }
    }
    return 0;
}

/* printable_user - a user name we are willing to look up and log */
static bool printable_user(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

/* smtpd_sasl_plain - [authzid] NUL authcid NUL passwd */
int smtpd_sasl_plain(const char *p, size_t n, smtpd_sasl_plain_t *res, const char **why_r)
{
    const char *nul1 = memchr(p, 0, n), *nul2;

    if (nul1 == NULL || (nul2 = memchr(nul1 + 1, 0, n - (size_t)(nul1 + 1 - p))) == NULL) {
        *why_r = "malformed PLAIN response";
        return -1;
    }
    res->authzid = p;
    res->authzid_len = (size_t)(nul1 - p);
    res->authcid = nul1 + 1;
    res->authcid_len = (size_t)(nul2 - res->authcid);
    res->passwd = nul2 + 1;
    res->passwd_len = n - (size_t)(res->passwd - p);
    if (memchr(res->passwd, 0, res->passwd_len) != NULL) {
        *why_r = "malformed PLAIN response";
        return -1;
    }
    if (res->authcid_len == 0 || res->authcid_len > SMTPD_SASL_USER_MAX
        || !printable_user(res->authcid, res->authcid_len)
        || res->authzid_len > SMTPD_SASL_USER_MAX) {
        *why_r = "bad user name";
        return -1;
    }
    if (res->passwd_len == 0 || res->passwd_len > SMTPD_SASL_PASS_MAX) {
        *why_r = "bad password length";
        return -1;
    }
    return 0;
}

/* smtpd_sasl_login_value - a LOGIN user name or password */
int smtpd_sasl_login_value(const char *p, size_t n, bool user, const char **why_r)
{
    size_t max = user ? SMTPD_SASL_USER_MAX : SMTPD_SASL_PASS_MAX;

    if (n == 0 || n > max || memchr(p, 0, n) != NULL || (user && !printable_user(p, n))) {
        *why_r = "malformed LOGIN response";
        return -1;
    }
    return 0;
}
