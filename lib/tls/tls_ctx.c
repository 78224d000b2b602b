/* tls_ctx.c - server and client SSL_CTX from the daemon's settings */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/err.h>
#include "tls/tls_int.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define CIPHERS_HIGH   "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!DES:!PSK:!SRP:@STRENGTH"
#define CIPHERS_MEDIUM "HIGH:MEDIUM:!aNULL:!eNULL:!MD5:!RC4:!3DES:!DES:!PSK:!SRP:@STRENGTH"
#define DEF_SESSION_TIMEOUT 3600

static char why_buf[512];

/* ssl_why - "what: OpenSSL's reason" in static storage */
static const char *ssl_why(const char *what, const char *arg)
{
    unsigned long e = ERR_peek_last_error();
    char reason[256];

    ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(why_buf, sizeof(why_buf), "%s%s%s: %s", what, arg ? " " : "",
             arg ? arg : "", e ? reason : "unknown error");
    ERR_clear_error();
    return why_buf;
}

/* version_of - "TLSv1.2" to TLS1_2_VERSION; 0 if unknown */
static int version_of(const char *name)
{
    static const struct { const char *name; int v; } tab[] = {
        { "SSLv2", 0x0002 }, { "SSLv3", SSL3_VERSION }, { "TLSv1", TLS1_VERSION },
        { "TLSv1.1", TLS1_1_VERSION }, { "TLSv1.2", TLS1_2_VERSION },
        { "TLSv1.3", TLS1_3_VERSION },
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcasecmp(name, tab[i].name) == 0)
            return tab[i].v;
    return 0;
}

/* tls_protocols_parse - Postfix protocol syntax to a min/max version */
int tls_protocols_parse(const char *s, int *min_r, int *max_r, const char **why_r)
{
    char **tok = NULL;
    size_t n = str_split(s ? s : "", " \t,:", &tok);
    int min = TLS1_2_VERSION, max = 0;
    bool excl13 = false;
    const char *badtok = "";

    for (size_t i = 0; i < n; i++) {
        const char *t = badtok = tok[i];
        int v;
        if (strncmp(t, ">=", 2) == 0 || strncmp(t, "<=", 2) == 0) {
            if ((v = version_of(t + 2)) == 0)
                goto bad;
            if (t[0] == '>' && v > min)
                min = v;
            else if (t[0] == '<')
                max = v;
        } else if (t[0] == '!') {
            if ((v = version_of(t + 1)) == 0)
                goto bad;
            if (v == TLS1_3_VERSION)
                excl13 = true;
            else if (v == TLS1_2_VERSION)
                min = TLS1_3_VERSION;
        } else if (version_of(t) == 0) {
            goto bad;
        }
    }
    if (excl13 && (max == 0 || max > TLS1_2_VERSION))
        max = TLS1_2_VERSION;
    if (max != 0 && max < min) {
        *why_r = "TLS protocols: nothing at or above TLSv1.2 is left";
        str_argv_free(&tok);
        return -1;
    }
    str_argv_free(&tok);
    *min_r = min;
    *max_r = max;
    return 0;
bad:
    snprintf(why_buf, sizeof(why_buf), "TLS protocols: unknown protocol \"%.64s\"", badtok);
    str_argv_free(&tok);     /* after the message: badtok points into tok */
    *why_r = why_buf;
    return -1;
}

/* common_setup - what both roles share: versions, ciphers, options */
static int common_setup(SSL_CTX *c, const tls_ctx_opts_t *o, const char **why_r)
{
    const char *ciphers = o->ciphers ? o->ciphers : "high";
    int min, max;

    if (tls_protocols_parse(o->protocols, &min, &max, why_r) < 0)
        return -1;
    if (!SSL_CTX_set_min_proto_version(c, min) || !SSL_CTX_set_max_proto_version(c, max)) {
        *why_r = ssl_why("cannot set TLS protocol versions", NULL);
        return -1;
    }
    if (strcasecmp(ciphers, "high") == 0)
        ciphers = CIPHERS_HIGH;
    else if (strcasecmp(ciphers, "medium") == 0)
        ciphers = CIPHERS_MEDIUM;
    if (!SSL_CTX_set_cipher_list(c, ciphers)) {
        *why_r = ssl_why("bad TLS cipher list", ciphers);
        return -1;
    }
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                        | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Non-blocking writes from buffers that may move or be written in
     * parts; idle sessions give their buffers back. */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE
                     | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (o->ca_file || o->ca_path) {
        if (!SSL_CTX_load_verify_locations(c, o->ca_file, o->ca_path)) {
            *why_r = ssl_why("cannot load trust anchors", o->ca_file ? o->ca_file : o->ca_path);
            return -1;
        }
    } else if (!SSL_CTX_set_default_verify_paths(c)) {
        ERR_clear_error();          /* no system store: nothing is Trusted */
    }
    return 0;
}

/* load_cert - certificate chain and key, and that they belong together */
static int load_cert(SSL_CTX *c, const tls_ctx_opts_t *o, const char **why_r)
{
    if (!SSL_CTX_use_certificate_chain_file(c, o->cert_file)) {
        *why_r = ssl_why("cannot load certificate", o->cert_file);
        return -1;
    }
    if (!SSL_CTX_use_PrivateKey_file(c, o->key_file ? o->key_file : o->cert_file,
                                     SSL_FILETYPE_PEM)) {
        *why_r = ssl_why("cannot load private key", o->key_file ? o->key_file : o->cert_file);
        return -1;
    }
    if (!SSL_CTX_check_private_key(c)) {
        *why_r = ssl_why("private key does not match certificate", o->cert_file);
        return -1;
    }
    return 0;
}

/* ctx_new - the shared part of both constructors */
static tls_ctx_t *ctx_new(bool server, const tls_ctx_opts_t *o, const char **why_r)
{
    static const unsigned char sid_ctx[] = "stork";
    tls_ctx_t *ctx = xcalloc(1, sizeof(*ctx));

    ctx->server = server;
    ctx->ssl_ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx->ssl_ctx == NULL) {
        *why_r = ssl_why("cannot create TLS context", NULL);
        goto fail;
    }
    if (common_setup(ctx->ssl_ctx, o, why_r) < 0)
        goto fail;
    if (server) {
        if (!o->cert_file) {
            *why_r = "TLS server: no certificate file configured";
            goto fail;
        }
        if (load_cert(ctx->ssl_ctx, o, why_r) < 0)
            goto fail;
        SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_dh_auto(ctx->ssl_ctx, 1);
        SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_session_id_context(ctx->ssl_ctx, sid_ctx, sizeof(sid_ctx) - 1);
        SSL_CTX_set_timeout(ctx->ssl_ctx, o->session_timeout > 0
                            ? o->session_timeout : DEF_SESSION_TIMEOUT);
        SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (o->cert_file && load_cert(ctx->ssl_ctx, o, why_r) < 0)
            goto fail;
        /* Sessions are not reused across connections yet. */
        SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_OFF);
        if (SSL_CTX_dane_enable(ctx->ssl_ctx) <= 0) {
            *why_r = ssl_why("cannot enable DANE", NULL);
            goto fail;
        }
    }
    return ctx;
fail:
    tls_ctx_free(&ctx);
    return NULL;
}

/* tls_ctx_server_new - a server context */
tls_ctx_t *tls_ctx_server_new(const tls_ctx_opts_t *opts, const char **why_r)
{
    return ctx_new(true, opts, why_r);
}

/* tls_ctx_client_new - a client context */
tls_ctx_t *tls_ctx_client_new(const tls_ctx_opts_t *opts, const char **why_r)
{
    return ctx_new(false, opts, why_r);
}

/* tls_ctx_free - free a context and NULL the pointer */
void tls_ctx_free(tls_ctx_t **ctx)
{
    if (*ctx == NULL)
        return;
    SSL_CTX_free((*ctx)->ssl_ctx);
    xfreep(ctx);
}
