/* tls_info.c - names and Postfix-shaped log lines for TLS sessions */
#include <string.h>
#include <strings.h>
#include "tls/tls_int.h"

static const char *const level_names[] = {
    [TLS_LEV_NONE] = "none", [TLS_LEV_MAY] = "may", [TLS_LEV_ENCRYPT] = "encrypt",
    [TLS_LEV_DANE] = "dane", [TLS_LEV_VERIFY] = "verify",
};

/* tls_level_parse - Postfix's level names ("secure" counts as verify) */
int tls_level_parse(const char *s, tls_level_t *lev_r)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *lev_r = (tls_level_t)i;
            return 0;
        }
    if (strcasecmp(s, "secure") == 0) {
        *lev_r = TLS_LEV_VERIFY;
        return 0;
    }
    return -1;
}

/* tls_level_name - "may" etc. */
const char *tls_level_name(tls_level_t lev)
{
    return (unsigned)lev < sizeof(level_names) / sizeof(level_names[0])
        ? level_names[lev] : "unknown";
}

/* tls_trust_name - the first word of the log line */
const char *tls_trust_name(tls_trust_t trust)
{
    switch (trust) {
    case TLS_TRUST_ANONYMOUS: return "Anonymous";
    case TLS_TRUST_UNTRUSTED: return "Untrusted";
    case TLS_TRUST_TRUSTED: return "Trusted";
    case TLS_TRUST_VERIFIED: return "Verified";
    }
    return "Untrusted";
}

/* tls_conn_protocol - "TLSv1.3" */
const char *tls_conn_protocol(const tls_conn_t *c)
{
    return SSL_get_version(c->ssl);
}

/* tls_conn_cipher - "TLS_AES_256_GCM_SHA384" */
const char *tls_conn_cipher(const tls_conn_t *c)
{
    const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);

    return ci ? SSL_CIPHER_get_name(ci) : "none";
}

/* tls_conn_describe - Postfix's "... TLS connection established ..." line */
int tls_conn_describe(const tls_conn_t *c, buf_t *out)
{
    const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
    int alg_bits = 0, bits = ci ? SSL_CIPHER_get_bits(ci, &alg_bits) : 0;

    if (!c->handshake_done)
        return -1;
    if (c->server)
        return buf_printf(out, "%s TLS connection established from %s[%s]: "
                          "%s with cipher %s (%d/%d bits)",
                          tls_trust_name(tls_conn_trust(c)), c->peer_host, c->peer_addr,
                          tls_conn_protocol(c), tls_conn_cipher(c), bits, alg_bits);
    return buf_printf(out, "%s TLS connection established to %s[%s]:%u: "
                      "%s with cipher %s (%d/%d bits)",
                      tls_trust_name(tls_conn_trust(c)), c->peer_host, c->peer_addr,
                      c->peer_port, tls_conn_protocol(c), tls_conn_cipher(c),
                      bits, alg_bits);
}
