#ifndef STORK_TLS_TLS_INT_H
#define STORK_TLS_TLS_INT_H
/*
 * NAME
 *	tls_int - lib/tls internals: the ctx and conn structures
 * DESCRIPTION
 *	tls_ctx.c builds SSL_CTXs; tls_conn.c runs the I/O for both roles;
 *	tls_client.c sets up verification per level; tls_info.c reports.
 *	tls_conn_ex_index() is the SSL ex_data slot that points back to the
 *	tls_conn_t (used by the verify callback).
 */
#include <openssl/ssl.h>
#include "tls/tls.h"

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    bool server;
};

struct tls_conn {
    tls_ctx_t *ctx;
    SSL *ssl;
    int fd;
    bool server;
    bool handshake_done;
    tls_level_t level;              /* client; after a DANE downgrade too */
    bool enforce;                   /* verify errors fail the handshake */
    int dane_usable;                /* usable TLSA records added */
    int verify_err;                 /* first X509_V_ERR_*, 0 if none */
    int verify_depth;
    char *peer_host, *peer_addr;
    unsigned peer_port;
    char why[1024];
};

int tls_conn_ex_index(void);
tls_conn_t *tls_conn_alloc(tls_ctx_t *ctx, int fd, const char *peer_host,
                           const char *peer_addr, unsigned peer_port, const char **why_r);
int tls_client_setup(tls_conn_t *conn, const tls_client_params_t *p, const char **why_r);

#endif
