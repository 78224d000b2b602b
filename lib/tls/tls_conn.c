/* tls_conn.c - non-blocking handshake, read, write and shutdown for both roles */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include "tls/tls_int.h"
#include "util/xmalloc.h"

/* tls_conn_ex_index - the SSL ex_data slot that points to our conn */
int tls_conn_ex_index(void)
{
    static int idx = -1;

    /* Daemons are single-threaded: no race on first use. */
    if (idx < 0)
        idx = SSL_get_ex_new_index(0, "stork tls_conn", NULL, NULL, NULL);
    return idx;
}

/* tls_conn_alloc - an SSL on fd, linked to a new conn */
tls_conn_t *tls_conn_alloc(tls_ctx_t *ctx, int fd, const char *peer_host,
                           const char *peer_addr, unsigned peer_port, const char **why_r)
{
    tls_conn_t *conn = xcalloc(1, sizeof(*conn));

    conn->ctx = ctx;
    conn->fd = fd;
    conn->server = ctx->server;
    conn->peer_host = xstrdup(peer_host ? peer_host : "unknown");
    conn->peer_addr = xstrdup(peer_addr ? peer_addr : "unknown");
    conn->peer_port = peer_port;
    if ((conn->ssl = SSL_new(ctx->ssl_ctx)) == NULL
        || !SSL_set_fd(conn->ssl, fd)
        || !SSL_set_ex_data(conn->ssl, tls_conn_ex_index(), conn)) {
        *why_r = "cannot create TLS connection";
        ERR_clear_error();
        tls_conn_free(&conn);
        return NULL;
    }
    if (conn->server)
        SSL_set_accept_state(conn->ssl);
    else
        SSL_set_connect_state(conn->ssl);
    return conn;
}

/* tls_conn_server_new - the server side of a connection */
tls_conn_t *tls_conn_server_new(tls_ctx_t *ctx, int fd, const char *peer_host,
                                const char *peer_addr, const char **why_r)
{
    if (!ctx->server) {
        *why_r = "tls_conn_server_new: not a server context";
        return NULL;
    }
    return tls_conn_alloc(ctx, fd, peer_host, peer_addr, 0, why_r);
}

/* tls_conn_client_new - the client side, with the verification level set up */
tls_conn_t *tls_conn_client_new(tls_ctx_t *ctx, int fd,
                                const tls_client_params_t *p, const char **why_r)
{
    tls_conn_t *conn;

    if (ctx->server) {
        *why_r = "tls_conn_client_new: not a client context";
        return NULL;
    }
    if (p->level == TLS_LEV_NONE) {
        *why_r = "TLS security level none: no TLS connection";
        return NULL;
    }
    conn = tls_conn_alloc(ctx, fd, p->peer_host, p->peer_addr, p->peer_port, why_r);
    if (conn && tls_client_setup(conn, p, why_r) < 0)
        tls_conn_free(&conn);
    return conn;
}

/* tls_conn_free - free the conn (the fd stays open) and NULL the pointer */
void tls_conn_free(tls_conn_t **conn)
{
    if (*conn == NULL)
        return;
    SSL_free((*conn)->ssl);
    free((*conn)->peer_host);
    free((*conn)->peer_addr);
    xfreep(conn);
}

/* peer_label - "host[addr]:port" (client) or "host[addr]" (server) */
static void peer_label(const tls_conn_t *c, char *buf, size_t size)
{
    if (c->peer_port)
        snprintf(buf, size, "%s[%s]:%u", c->peer_host, c->peer_addr, c->peer_port);
    else
        snprintf(buf, size, "%s[%s]", c->peer_host, c->peer_addr);
}

/* map_error - turn SSL_get_error into tls_io_t, with why for errors */
static tls_io_t map_error(tls_conn_t *c, int ret, const char *op, const char **why_r)
{
    int saved = errno;
    int err = SSL_get_error(c->ssl, ret);
    unsigned long e;
    char peer[300], reason[256];

    switch (err) {
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_IO_EOF;
    default:
        break;
    }
    peer_label(c, peer, sizeof(peer));
    if (c->verify_err && c->enforce && !c->handshake_done) {
        snprintf(c->why, sizeof(c->why),
                 "%s certificate verification failed for %s: num=%d:%s",
                 c->server ? "client" : "server", peer, c->verify_err,
                 X509_verify_cert_error_string(c->verify_err));
    } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(c->why, sizeof(c->why), "%s with %s: %s", op, peer,
                 saved ? strerror(saved) : "lost connection");
    } else {
        e = ERR_peek_last_error();
        ERR_error_string_n(e, reason, sizeof(reason));
        snprintf(c->why, sizeof(c->why), "%s with %s: %s", op, peer,
                 e ? reason : "TLS protocol error");
    }
    ERR_clear_error();
    *why_r = c->why;
    return TLS_IO_ERROR;
}

/* tls_handshake - one step of the handshake */
tls_io_t tls_handshake(tls_conn_t *c, const char **why_r)
{
    int ret;

    if (c->handshake_done)
        return TLS_IO_DONE;
    ERR_clear_error();
    ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        c->handshake_done = true;
        return TLS_IO_DONE;
    }
    return map_error(c, ret, "TLS handshake failed", why_r);
}

/* tls_read - read decrypted bytes */
tls_io_t tls_read(tls_conn_t *c, void *buf, size_t size, size_t *n_r, const char **why_r)
{
    *n_r = 0;
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, buf, size, n_r) == 1)
        return TLS_IO_DONE;
    return map_error(c, 0, "TLS read failed", why_r);
}

/* tls_write - write bytes (maybe fewer than len: see *n_r) */
tls_io_t tls_write(tls_conn_t *c, const void *buf, size_t len, size_t *n_r,
                   const char **why_r)
{
    *n_r = 0;
    if (len == 0)
        return TLS_IO_DONE;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, buf, len, n_r) == 1)
        return TLS_IO_DONE;
    return map_error(c, 0, "TLS write failed", why_r);
}

/* tls_shutdown - send close_notify; we do not wait for the peer's */
tls_io_t tls_shutdown(tls_conn_t *c, const char **why_r)
{
    int ret;

    ERR_clear_error();
    ret = SSL_shutdown(c->ssl);
    if (ret >= 0)
        return TLS_IO_DONE;
    return map_error(c, ret, "TLS shutdown failed", why_r);
}

/* tls_pending - decrypted bytes waiting inside OpenSSL */
size_t tls_pending(const tls_conn_t *c)
{
    int n = SSL_pending(c->ssl);

    return n > 0 ? (size_t)n : 0;
}
