/* tls_client.c - client verification levels: may, encrypt, verify, dane (RFC 7672) */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "tls/tls_int.h"

/* verify_cb - record the first verification error; fail only when enforcing */
static int verify_cb(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    tls_conn_t *c = ssl ? SSL_get_ex_data(ssl, tls_conn_ex_index()) : NULL;

    if (c == NULL)
        return ok;
    if (!ok && c->verify_err == 0) {
        c->verify_err = X509_STORE_CTX_get_error(store);
        c->verify_depth = X509_STORE_CTX_get_error_depth(store);
        if (c->verify_err == 0)
            c->verify_err = X509_V_ERR_UNSPECIFIED;
    }
    /* may/encrypt: any certificate will do; the error is kept for the
     * "Untrusted" log. verify/dane: fail the handshake right here. */
    return c->enforce ? ok : 1;
}

/* is_addr_literal - true for an IPv4/IPv6 address (no SNI for those) */
static bool is_addr_literal(const char *s)
{
    unsigned char tmp[16];

    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* add_names - the reference identifiers a certificate may match */
static int add_names(tls_conn_t *c, const char *first, const tls_client_params_t *p,
                     const char **why_r)
{
    size_t n = 0;

    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (first && !SSL_set1_host(c->ssl, first))
        goto bad;
    for (size_t i = 0; p->match_names && p->match_names[i]; i++) {
        if (++n > TLS_MAX_NAMES) {
            *why_r = "TLS: too many names to match";
            return -1;
        }
        if (!(first ? SSL_add1_host(c->ssl, p->match_names[i])
                    : SSL_set1_host(c->ssl, p->match_names[i])))
            goto bad;
        first = p->match_names[i];
    }
    if (first == NULL) {
        *why_r = "TLS verify: no name to match the certificate against";
        return -1;
    }
    return 0;
bad:
    ERR_clear_error();
    *why_r = "TLS: invalid name to match";
    return -1;
}

/* setup_dane - enable DANE with the given (DNSSEC-validated) TLSA records */
static int setup_dane(tls_conn_t *c, const tls_client_params_t *p, const char **why_r)
{
    const char *base = p->dane_base ? p->dane_base : p->peer_host;

    if (base == NULL || p->ntlsa > TLS_MAX_TLSA) {
        *why_r = base ? "TLS dane: too many TLSA records" : "TLS dane: no TLSA base domain";
        return -1;
    }
    if (SSL_dane_enable(c->ssl, base) <= 0) {
        ERR_clear_error();
        *why_r = "TLS dane: cannot enable DANE";
        return -1;
    }
    /* RFC 7672 3.1.1: DANE-EE(3) authenticates the key; names don't matter. */
    SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    for (size_t i = 0; p->match_names && p->match_names[i] && i < TLS_MAX_NAMES; i++)
        if (!SSL_add1_host(c->ssl, p->match_names[i]))
            ERR_clear_error();
    for (size_t i = 0; i < p->ntlsa; i++) {
        const tls_tlsa_t *t = &p->tlsa[i];
        int r = SSL_dane_tlsa_add(c->ssl, t->usage, t->selector, t->mtype,
                                  t->data, t->len);
        if (r > 0)
            c->dane_usable++;
        else
            ERR_clear_error();      /* unusable (RFC 7671 4.1): skip it */
    }
    if (c->dane_usable == 0) {
        /* RFC 7672 2.2: no usable record means mandatory but
         * unauthenticated TLS. */
        c->level = TLS_LEV_ENCRYPT;
        c->enforce = false;
    }
    return 0;
}

/* tls_client_setup - SNI and verification for the chosen level */
int tls_client_setup(tls_conn_t *c, const tls_client_params_t *p, const char **why_r)
{
    const char *sni = p->sni;

    c->level = p->level;
    if (sni == NULL && p->peer_host && !is_addr_literal(p->peer_host))
        sni = p->peer_host;
    if (p->level == TLS_LEV_DANE && sni == NULL)
        sni = p->dane_base;
    if (sni && !SSL_set_tlsext_host_name(c->ssl, sni)) {
        ERR_clear_error();
        *why_r = "TLS: invalid server name for SNI";
        return -1;
    }
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER, verify_cb);
    switch (p->level) {
    case TLS_LEV_MAY:
    case TLS_LEV_ENCRYPT:
        c->enforce = false;
        return 0;
    case TLS_LEV_VERIFY:
        c->enforce = true;
        return add_names(c, p->match_names ? NULL : p->peer_host, p, why_r);
    case TLS_LEV_DANE:
        c->enforce = true;
        return setup_dane(c, p, why_r);
    case TLS_LEV_NONE:
        break;
    }
    *why_r = "TLS: bad security level";
    return -1;
}

/* tls_conn_dane_usable - how many TLSA records OpenSSL could use */
int tls_conn_dane_usable(const tls_conn_t *c)
{
    return c->dane_usable;
}

/* tls_conn_trust - what the handshake proved about the peer */
tls_trust_t tls_conn_trust(const tls_conn_t *c)
{
    X509 *peer;
    bool chain_ok;

    if (!c->handshake_done)
        return TLS_TRUST_ANONYMOUS;
    peer = SSL_get0_peer_certificate(c->ssl);
    if (peer == NULL)
        return TLS_TRUST_ANONYMOUS;
    chain_ok = c->verify_err == 0 && SSL_get_verify_result(c->ssl) == X509_V_OK;
    if (c->server)
        return chain_ok ? TLS_TRUST_TRUSTED : TLS_TRUST_UNTRUSTED;
    if (chain_ok && c->enforce) {
        if (c->level == TLS_LEV_VERIFY)
            return TLS_TRUST_VERIFIED;
        if (c->level == TLS_LEV_DANE && SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0)
            return TLS_TRUST_VERIFIED;
    }
    return chain_ok ? TLS_TRUST_TRUSTED : TLS_TRUST_UNTRUSTED;
}
