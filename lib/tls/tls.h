#ifndef STORK_TLS_TLS_H
#define STORK_TLS_TLS_H
/*
 * NAME
 *	tls - OpenSSL 3 as a non-blocking stream transport (server and client)
 * SUMMARY
 *	A tls_ctx_t holds what is shared by all connections of one role
 *	(certificate, trust anchors, protocols, ciphers, session cache); a
 *	tls_conn_t runs TLS over a connected non-blocking socket that the
 *	caller watches with lib/event. STARTTLS is a switch of transport:
 *	once the handshake is done, tls_read/tls_write replace read/write.
 * DESCRIPTION
 *	tls_ctx_server_new(opts, &why) / tls_ctx_client_new(opts, &why):
 *	opts->cert_file and key_file (PEM; the chain may follow the leaf in
 *	cert_file) are required for a server and optional for a client.
 *	ca_file/ca_path are the trust anchors used to call a peer
 *	"Trusted" or "Verified" (NULL both: OpenSSL's system default).
 *	protocols uses Postfix's syntax: ">=TLSv1.2", "<=TLSv1.2",
 *	">=TLSv1.2 <=TLSv1.2" or the old "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1";
 *	whatever it says, nothing below TLSv1.2 is ever offered (NULL:
 *	">=TLSv1.2"). ciphers: "high" (default), "medium" or an OpenSSL
 *	cipher list for TLSv1.2 (TLSv1.3 suites are OpenSSL's defaults).
 *	session_timeout: seconds a server session (or ticket) stays
 *	resumable (0: 3600). The server side keeps a session cache; tickets
 *	are per process.
 *
 *	tls_conn_server_new(ctx, fd, peer_host, peer_addr, &why) and
 *	tls_conn_client_new(ctx, fd, params, &why) wrap a connected socket
 *	(it must be O_NONBLOCK; the conn never closes it). Client levels
 *	(Postfix's smtp_tls_security_level):
 *	  TLS_LEV_MAY, TLS_LEV_ENCRYPT  any certificate is accepted; the peer
 *	        is logged "Trusted" if its chain verifies against the trust
 *	        anchors, else "Untrusted" (the caller decides whether a
 *	        failed handshake may fall back to plaintext: only for may).
 *	  TLS_LEV_VERIFY  the chain must verify and one of match_names (NULL:
 *	        peer_host) must match the certificate (SSL_set1_host, no
 *	        partial wildcards), else the handshake fails: "Verified".
 *	  TLS_LEV_DANE  RFC 7672: tlsa[] are the peer's TLSA records, which
 *	        the caller MUST have from a DNSSEC-validated lookup
 *	        (lib/dns, result->secure). DANE-EE(3) records match the
 *	        leaf with no name check; DANE-TA(2) records need a name
 *	        match against dane_base (NULL: peer_host) or match_names.
 *	        A mismatch fails the handshake: "Verified" on success. When
 *	        no record is usable (unknown usage, selector or type, bad
 *	        length), RFC 7672 2.2 says encrypt without authentication:
 *	        the conn then acts as TLS_LEV_ENCRYPT and
 *	        tls_conn_dane_usable() returns 0.
 *	  TLS_LEV_NONE  refused here (the caller does not use TLS).
 *	sni (NULL: peer_host unless it is an address literal) is sent.
 *	peer_host/peer_addr/peer_port are for log lines only.
 *
 *	tls_handshake(conn, &why), tls_read(conn, buf, size, &n, &why),
 *	tls_write(conn, buf, len, &n, &why), tls_shutdown(conn, &why) return
 *	TLS_IO_DONE (done; n set), TLS_IO_WANT_READ / TLS_IO_WANT_WRITE
 *	(wait until the socket is readable / writable, then call the SAME
 *	function again; for tls_write with the same bytes), TLS_IO_EOF
 *	(the peer closed; tls_read only) or TLS_IO_ERROR (why says what; the
 *	connection is unusable). tls_read/tls_write may want the other
 *	direction than their own (renegotiation, key update). tls_write
 *	may write less than len (n says how much). tls_pending(conn): bytes
 *	already decrypted and buffered: read them before waiting for the
 *	socket, which will not become readable for them.
 *
 *	After the handshake: tls_conn_trust(conn) (TLS_TRUST_ANONYMOUS: the
 *	peer sent no certificate; UNTRUSTED; TRUSTED; VERIFIED as above),
 *	tls_conn_describe(conn, out) appends Postfix's log line:
 *	  "Verified TLS connection established to mx.example.com[192.0.2.1]:25:
 *	   TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
 *	  "Anonymous TLS connection established from host[192.0.2.1]: ..."
 *	tls_conn_protocol/tls_conn_cipher name the protocol and cipher.
 *	tls_level_parse("may", &lev) / tls_level_name(lev);
 *	tls_trust_name(trust): "Anonymous", "Untrusted", "Trusted", "Verified".
 * ERRORS
 *	Constructors return NULL with why (file names and OpenSSL's reason
 *	in it). A failed verification reads like Postfix's:
 *	"server certificate verification failed for mx.example.com
 *	[192.0.2.1]:25: num=62:hostname mismatch". Nothing here is fatal.
 * OWNERSHIP
 *	why strings live in the conn (until its next call or its free) or,
 *	for constructors, in static storage. tls_conn_free(&conn) does not
 *	close the fd. A ctx must outlive its conns. TLSA data is copied.
 * LIMITS
 *	TLS_MAX_TLSA records per connection; match_names at most
 *	TLS_MAX_NAMES.
 * SECURITY
 *	No SSLv3/TLSv1.0/TLSv1.1, no compression, no aNULL/eNULL ciphers, no
 *	client-initiated renegotiation. Verification errors of may/encrypt
 *	are only recorded (for the log); verify and dane fail closed in the
 *	handshake itself.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

#define TLS_MAX_TLSA 32
#define TLS_MAX_NAMES 16

typedef enum {
    TLS_LEV_NONE, TLS_LEV_MAY, TLS_LEV_ENCRYPT, TLS_LEV_DANE, TLS_LEV_VERIFY
} tls_level_t;

typedef enum {
    TLS_TRUST_ANONYMOUS, TLS_TRUST_UNTRUSTED, TLS_TRUST_TRUSTED, TLS_TRUST_VERIFIED
} tls_trust_t;

typedef enum {
    TLS_IO_DONE, TLS_IO_WANT_READ, TLS_IO_WANT_WRITE, TLS_IO_EOF, TLS_IO_ERROR
} tls_io_t;

typedef struct tls_ctx_opts {
    const char *cert_file, *key_file;
    const char *ca_file, *ca_path;
    const char *protocols;
    const char *ciphers;
    int session_timeout;
} tls_ctx_opts_t;

typedef struct tls_tlsa {
    uint8_t usage, selector, mtype;
    const unsigned char *data;
    size_t len;
} tls_tlsa_t;

typedef struct tls_client_params {
    tls_level_t level;
    const char *peer_host, *peer_addr;
    unsigned peer_port;
    const char *sni;
    const char *const *match_names;
    const tls_tlsa_t *tlsa;
    size_t ntlsa;
    const char *dane_base;
} tls_client_params_t;

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;

tls_ctx_t *tls_ctx_server_new(const tls_ctx_opts_t *opts, const char **why_r);
tls_ctx_t *tls_ctx_client_new(const tls_ctx_opts_t *opts, const char **why_r);
void tls_ctx_free(tls_ctx_t **ctx);

tls_conn_t *tls_conn_server_new(tls_ctx_t *ctx, int fd, const char *peer_host,
                                const char *peer_addr, const char **why_r);
tls_conn_t *tls_conn_client_new(tls_ctx_t *ctx, int fd,
                                const tls_client_params_t *params, const char **why_r);
void tls_conn_free(tls_conn_t **conn);

tls_io_t tls_handshake(tls_conn_t *conn, const char **why_r);
tls_io_t tls_read(tls_conn_t *conn, void *buf, size_t size, size_t *n_r, const char **why_r);
tls_io_t tls_write(tls_conn_t *conn, const void *buf, size_t len, size_t *n_r,
                   const char **why_r);
tls_io_t tls_shutdown(tls_conn_t *conn, const char **why_r);
size_t tls_pending(const tls_conn_t *conn);

tls_trust_t tls_conn_trust(const tls_conn_t *conn);
int tls_conn_dane_usable(const tls_conn_t *conn);
int tls_conn_describe(const tls_conn_t *conn, buf_t *out);
const char *tls_conn_protocol(const tls_conn_t *conn);
const char *tls_conn_cipher(const tls_conn_t *conn);

int tls_level_parse(const char *s, tls_level_t *lev_r);
const char *tls_level_name(tls_level_t lev);
const char *tls_trust_name(tls_trust_t trust);
/* tls_protocols_parse - Postfix protocol syntax to OpenSSL versions (0: no max) */
int tls_protocols_parse(const char *s, int *min_r, int *max_r, const char **why_r);

#endif
