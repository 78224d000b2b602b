/* tls_test.c - lib/tls: handshakes over a socketpair in one event loop, per level
 *
 * Certificates are made at test time with the OpenSSL API in a temporary
 * directory: a test CA, a server certificate it signed for mx.dane.test,
 * and a self-signed one for the same name.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "event/event.h"
#include "test/test.h"
#include "tls/tls.h"
#include "util/xmalloc.h"

static char dir[] = "/tmp/stork-tls-test-XXXXXX";
static char ca_pem[300], srv_cert[300], srv_key[300], self_cert[300], self_key[300];
static unsigned char self_spki_sha256[32];

/* add_ext - one v3 extension in config syntax */
static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext || !X509_add_ext(cert, ext, -1))
        msg_fatal("add_ext %d %s", nid, value);
    X509_EXTENSION_free(ext);
}

/* make_cert - a P-256 key and a certificate (self-signed when ca is NULL) */
static X509 *make_cert(const char *cn, const char *san, bool is_ca, X509 *ca,
                       EVP_PKEY *ca_key, EVP_PKEY **key_r)
{
    static long serial = 1;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();

    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(cert, name);
    X509_set_issuer_name(cert, ca ? X509_get_subject_name(ca) : name);
    X509_NAME_free(name);
    if (is_ca) {
        add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert, ca ? ca : cert, NID_basic_constraints, "CA:FALSE");
        add_ext(cert, ca ? ca : cert, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    add_ext(cert, cert, NID_subject_key_identifier, "hash");
    if (san)
        add_ext(cert, ca ? ca : cert, NID_subject_alt_name, san);
    if (!X509_sign(cert, ca_key ? ca_key : key, EVP_sha256()))
        msg_fatal("X509_sign");
    *key_r = key;
    return cert;
}

/* write_pem - certificate and key files */
static void write_pem(const char *cert_path, X509 *cert, const char *key_path, EVP_PKEY *key)
{
    FILE *f = fopen(cert_path, "w");

    if (!f || !PEM_write_X509(f, cert))
        msg_fatal("write %s", cert_path);
    fclose(f);
    if (key_path) {
        f = fopen(key_path, "w");
        if (!f || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL))
            msg_fatal("write %s", key_path);
        fclose(f);
    }
}

/* make_certs - the test CA, a CA-signed server cert, a self-signed one */
static void make_certs(void)
{
    EVP_PKEY *ca_key, *srv_k, *self_k;
    X509 *ca, *srv, *self;
    unsigned char *der = NULL;
    int der_len;
    unsigned int md_len;

    if (!mkdtemp(dir))
        msg_fatal("mkdtemp");
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
    snprintf(srv_cert, sizeof(srv_cert), "%s/server.pem", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
    snprintf(self_cert, sizeof(self_cert), "%s/self.pem", dir);
    snprintf(self_key, sizeof(self_key), "%s/self.key", dir);
    ca = make_cert("Stork Test CA", NULL, true, NULL, NULL, &ca_key);
    srv = make_cert("mx.dane.test", "DNS:mx.dane.test,DNS:*.wild.test", false, ca, ca_key, &srv_k);
    self = make_cert("mx.dane.test", "DNS:mx.dane.test", false, NULL, NULL, &self_k);
    write_pem(ca_pem, ca, NULL, NULL);
    write_pem(srv_cert, srv, srv_key, srv_k);
    write_pem(self_cert, self, self_key, self_k);
    /* TLSA 3 1 1: sha256 of the SubjectPublicKeyInfo */
    der_len = i2d_PUBKEY(X509_get0_pubkey(self), &der);
    if (der_len <= 0 || !EVP_Digest(der, (size_t)der_len, self_spki_sha256, &md_len,
                                    EVP_sha256(), NULL))
        msg_fatal("spki digest");
    OPENSSL_free(der);
    X509_free(ca); X509_free(srv); X509_free(self);
    EVP_PKEY_free(ca_key); EVP_PKEY_free(srv_k); EVP_PKEY_free(self_k);
}

/* ------------------------------------------------------------ the pair */

enum { ST_HANDSHAKE, ST_TALK, ST_LISTEN, ST_DONE, ST_FAILED };

typedef struct side {
    tls_conn_t *conn;
    int fd;
    int state;
    bool client;
    char why[600];
    char rbuf[64];
    size_t rlen;
    struct side *other;
} side_t;

static event_loop_t *loop;
static int finished;

/* want - watch the fd for what the last call asked for */
static void want(side_t *s, tls_io_t r)
{
    event_fd_mod(loop, s->fd, r == TLS_IO_WANT_WRITE ? EVENT_WRITE : EVENT_READ);
}

/* end_side - this side is done or failed: stop watching it */
static void end_side(side_t *s, int state, const char *why)
{
    s->state = state;
    if (why)
        snprintf(s->why, sizeof(s->why), "%s", why);
    event_fd_mod(loop, s->fd, 0);
    if (state == ST_FAILED)
        shutdown(s->fd, SHUT_RDWR);     /* the other side sees EOF, not a hang */
    if (++finished == 2)
        event_loop_stop(loop);
}

/* step - advance one side: handshake, then client "ping" / server "pong" */
static void step(event_loop_t *l, int fd, unsigned mask, void *arg)
{
    side_t *s = arg;
    const char *why = NULL;
    size_t n;
    tls_io_t r;

    for (;;) {
        switch (s->state) {
        case ST_HANDSHAKE:
            r = tls_handshake(s->conn, &why);
            if (r == TLS_IO_DONE) {
                s->state = s->client ? ST_TALK : ST_LISTEN;
                continue;
            }
            break;
        case ST_TALK:
            r = tls_write(s->conn, s->client ? "ping" : "pong", 4, &n, &why);
            if (r == TLS_IO_DONE) {
                TEST_INTEQ(n, 4);
                if (!s->client) {
                    end_side(s, ST_DONE, NULL);
                    return;
                }
                s->state = ST_LISTEN;
                continue;
            }
            break;
        case ST_LISTEN:
            r = tls_read(s->conn, s->rbuf + s->rlen, sizeof(s->rbuf) - 1 - s->rlen, &n, &why);
            if (r == TLS_IO_DONE) {
                s->rlen += n;
                s->rbuf[s->rlen] = 0;
                if (s->rlen < 4)
                    continue;
                if (s->client) {
                    end_side(s, ST_DONE, NULL);
                    return;
                }
                s->state = ST_TALK;
                continue;
            }
            if (r == TLS_IO_EOF)
                why = "unexpected EOF";
            break;
        default:
            return;
        }
        if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
            want(s, r);
            return;
        }
        end_side(s, ST_FAILED, why ? why : "error");
        return;
    }
}

static void guard(event_loop_t *l, void *arg)
{
    fprintf(stderr, "tls_test: guard timer fired\n");
    TEST_CHECK(0);
    event_loop_stop(l);
}

typedef struct result {
    int client_state, server_state;
    char client_why[600], server_why[600];
    char client_log[600], server_log[600];
    tls_trust_t trust;
    int dane_usable;
    char reply[64];
} result_t;

/* run_pair - one handshake and a ping/pong between client and server */
static void run_pair(tls_ctx_t *sctx, tls_ctx_t *cctx, const tls_client_params_t *p,
                     result_t *res)
{
    int sv[2];
    side_t c = { .client = true }, s = { .client = false };
    const char *why = NULL;
    buf_t b;
    event_timer_t *g;

    memset(res, 0, sizeof(*res));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        msg_fatal("socketpair: %m");
    c.fd = sv[0];
    s.fd = sv[1];
    c.conn = tls_conn_client_new(cctx, c.fd, p, &why);
    TEST_CHECK(c.conn != NULL);
    if (!c.conn) {
        fprintf(stderr, "client conn: %s\n", why);
        close(sv[0]); close(sv[1]);
        res->client_state = ST_FAILED;
        return;
    }
    s.conn = tls_conn_server_new(sctx, s.fd, "client.test", "127.0.0.1", &why);
    TEST_CHECK(s.conn != NULL);
    finished = 0;
    event_fd_add(loop, c.fd, EVENT_WRITE, step, &c);
    event_fd_add(loop, s.fd, EVENT_READ, step, &s);
    g = event_timer_add(loop, 10000, guard, NULL);
    event_loop_run(loop);
    event_timer_cancel(loop, &g);
    event_fd_del(loop, c.fd);
    event_fd_del(loop, s.fd);
    res->client_state = c.state;
    res->server_state = s.state;
    snprintf(res->client_why, sizeof(res->client_why), "%s", c.why);
    snprintf(res->server_why, sizeof(res->server_why), "%s", s.why);
    snprintf(res->reply, sizeof(res->reply), "%s", c.rbuf);
    res->dane_usable = tls_conn_dane_usable(c.conn);
    if (c.state == ST_DONE) {
        res->trust = tls_conn_trust(c.conn);
        buf_init(&b, 4096);
        tls_conn_describe(c.conn, &b);
        snprintf(res->client_log, sizeof(res->client_log), "%s", buf_cstr(&b));
        buf_reset(&b);
        tls_conn_describe(s.conn, &b);
        snprintf(res->server_log, sizeof(res->server_log), "%s", buf_cstr(&b));
        buf_free(&b);
        tls_shutdown(c.conn, &why);
    }
    tls_conn_free(&c.conn);
    tls_conn_free(&s.conn);
    close(sv[0]);
    close(sv[1]);
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void print_if_bad(const char *what, bool ok, const result_t *r)
{
    if (!ok)
        fprintf(stderr, "%s: client %d (%s) server %d (%s)\n  %s\n", what, r->client_state,
                r->client_why, r->server_state, r->server_why, r->client_log);
}

/* ------------------------------------------------------------ tests */

static tls_client_params_t params(tls_level_t lev)
{
    tls_client_params_t p = {
        .level = lev, .peer_host = "mx.dane.test", .peer_addr = "127.0.0.1", .peer_port = 25,
    };
    return p;
}

static void test_levels(void)
{
    const char *why = NULL;
    tls_ctx_opts_t so_ca = { .cert_file = srv_cert, .key_file = srv_key };
    tls_ctx_opts_t so_self = { .cert_file = self_cert, .key_file = self_key };
    tls_ctx_opts_t co = { .ca_file = ca_pem };
    tls_ctx_t *s_ca = tls_ctx_server_new(&so_ca, &why);
    tls_ctx_t *s_self = tls_ctx_server_new(&so_self, &why);
    tls_ctx_t *cl = tls_ctx_client_new(&co, &why);
    tls_client_params_t p;
    result_t r;
    bool ok;

    TEST_CHECK(s_ca && s_self && cl);
    if (!s_ca || !s_self || !cl) {
        fprintf(stderr, "ctx: %s\n", why);
        return;
    }

    /* may + self-signed: encrypted, Untrusted; the server logs Anonymous */
    p = params(TLS_LEV_MAY);
    run_pair(s_self, cl, &p, &r);
    ok = r.client_state == ST_DONE && r.server_state == ST_DONE;
    print_if_bad("may/self", ok, &r);
    TEST_CHECK(ok);
    TEST_STREQ(r.reply, "pong");
    TEST_INTEQ(r.trust, TLS_TRUST_UNTRUSTED);
    TEST_CHECK(starts(r.client_log, "Untrusted TLS connection established to "
                      "mx.dane.test[127.0.0.1]:25: TLSv1.3 with cipher TLS_"));
    TEST_CHECK(strstr(r.client_log, " (256/256 bits)") || strstr(r.client_log, " (128/128 bits)"));
    TEST_CHECK(starts(r.server_log, "Anonymous TLS connection established from "
                      "client.test[127.0.0.1]: TLSv1.3 with cipher "));
    printf("%s\n%s\n", r.client_log, r.server_log);

    /* may + CA-signed: Trusted (chain good, name not checked) */
    p = params(TLS_LEV_MAY);
    p.peer_host = "other.test";
    run_pair(s_ca, cl, &p, &r);
    TEST_INTEQ(r.client_state, ST_DONE);
    TEST_INTEQ(r.trust, TLS_TRUST_TRUSTED);
    TEST_CHECK(starts(r.client_log, "Trusted TLS connection established to other.test"));

    /* encrypt + self-signed: accepted, Untrusted */
    p = params(TLS_LEV_ENCRYPT);
    run_pair(s_self, cl, &p, &r);
    TEST_INTEQ(r.client_state, ST_DONE);
    TEST_INTEQ(r.trust, TLS_TRUST_UNTRUSTED);

    /* verify + CA-signed + right name: Verified */
    p = params(TLS_LEV_VERIFY);
    run_pair(s_ca, cl, &p, &r);
    ok = r.client_state == ST_DONE;
    print_if_bad("verify/ok", ok, &r);
    TEST_CHECK(ok);
    TEST_INTEQ(r.trust, TLS_TRUST_VERIFIED);
    TEST_CHECK(starts(r.client_log, "Verified TLS connection established to mx.dane.test"));
    printf("%s\n", r.client_log);

    /* verify with a wildcard name and with extra match names */
    {
        const char *names[] = { "nomatch.test", "a.wild.test", NULL };
        p = params(TLS_LEV_VERIFY);
        p.peer_host = "mx.example";
        p.match_names = names;
        run_pair(s_ca, cl, &p, &r);
        TEST_INTEQ(r.client_state, ST_DONE);
        TEST_INTEQ(r.trust, TLS_TRUST_VERIFIED);
    }

    /* verify + wrong name: the handshake fails, with Postfix's reason */
    p = params(TLS_LEV_VERIFY);
    p.peer_host = "wrong.test";
    run_pair(s_ca, cl, &p, &r);
    TEST_INTEQ(r.client_state, ST_FAILED);
    TEST_STREQ(r.client_why, "server certificate verification failed for "
               "wrong.test[127.0.0.1]:25: num=62:hostname mismatch");
    TEST_CHECK(r.server_state == ST_FAILED);
    printf("%s\n", r.client_why);

    /* verify + self-signed: untrusted chain fails */
    p = params(TLS_LEV_VERIFY);
    run_pair(s_self, cl, &p, &r);
    TEST_INTEQ(r.client_state, ST_FAILED);
    TEST_CHECK(strstr(r.client_why, "num=18:self-signed certificate") != NULL
               || strstr(r.client_why, "num=18:self signed certificate") != NULL);

    /* dane 3 1 1 matching the self-signed key: Verified, no CA, name free */
    {
        tls_tlsa_t t[2] = {
            { 3, 1, 1, (const unsigned char *)"\x01\x02", 2 },  /* bad length: unusable */
            { 3, 1, 1, self_spki_sha256, 32 },
        };
        p = params(TLS_LEV_DANE);
        p.peer_host = "not-the-cert-name.test";
        p.tlsa = t;
        p.ntlsa = 2;
        run_pair(s_self, cl, &p, &r);
        ok = r.client_state == ST_DONE;
        print_if_bad("dane/match", ok, &r);
        TEST_CHECK(ok);
        TEST_INTEQ(r.dane_usable, 1);
        TEST_INTEQ(r.trust, TLS_TRUST_VERIFIED);
        TEST_CHECK(starts(r.client_log, "Verified TLS connection established to "
                          "not-the-cert-name.test[127.0.0.1]:25: "));
        printf("%s\n", r.client_log);
    }

    /* dane 3 1 1 mismatch: fails closed */
    {
        unsigned char other[32];
        memcpy(other, self_spki_sha256, 32);
        other[0] ^= 0xFF;
        tls_tlsa_t t = { 3, 1, 1, other, 32 };
        p = params(TLS_LEV_DANE);
        p.tlsa = &t;
        p.ntlsa = 1;
        run_pair(s_self, cl, &p, &r);
        TEST_INTEQ(r.client_state, ST_FAILED);
        TEST_STREQ(r.client_why, "server certificate verification failed for "
                   "mx.dane.test[127.0.0.1]:25: num=65:no matching DANE TLSA records");
        printf("%s\n", r.client_why);
    }

    /* dane 2 0 1 (trust anchor = the CA's full certificate digest) is
     * not made here; a DANE-TA record of the CA's key matches with names */
    /* dane with only unusable records: encrypt without authentication */
    {
        tls_tlsa_t t = { 4, 1, 1, self_spki_sha256, 32 };
        p = params(TLS_LEV_DANE);
        p.tlsa = &t;
        p.ntlsa = 1;
        run_pair(s_self, cl, &p, &r);
        TEST_INTEQ(r.client_state, ST_DONE);
        TEST_INTEQ(r.dane_usable, 0);
        TEST_INTEQ(r.trust, TLS_TRUST_UNTRUSTED);
    }

    /* level none never makes a connection */
    p = params(TLS_LEV_NONE);
    TEST_CHECK(tls_conn_client_new(cl, 0, &p, &why) == NULL);

    tls_ctx_free(&s_ca);
    tls_ctx_free(&s_self);
    tls_ctx_free(&cl);
    TEST_CHECK(cl == NULL);
}

static void test_tls12(void)
{
    const char *why = NULL;
    tls_ctx_opts_t so = { .cert_file = self_cert, .key_file = self_key, .protocols = "<=TLSv1.2" };
    tls_ctx_opts_t co = { .ca_file = ca_pem };
    tls_ctx_t *s = tls_ctx_server_new(&so, &why), *c = tls_ctx_client_new(&co, &why);
    tls_client_params_t p = params(TLS_LEV_ENCRYPT);
    result_t r;

    TEST_CHECK(s && c);
    if (!s || !c)
        return;
    run_pair(s, c, &p, &r);
    TEST_INTEQ(r.client_state, ST_DONE);
    TEST_CHECK(starts(r.client_log, "Untrusted TLS connection established to "
                      "mx.dane.test[127.0.0.1]:25: TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)"));
    printf("%s\n", r.client_log);
    tls_ctx_free(&s);
    tls_ctx_free(&c);
}

static void test_config(void)
{
    const char *why = NULL;
    int min, max;
    tls_level_t lev;
    tls_ctx_opts_t bad_key = { .cert_file = self_cert, .key_file = srv_key };
    tls_ctx_opts_t no_file = { .cert_file = "/nonexistent/cert.pem" };
    tls_ctx_opts_t no_cert = { 0 };
    tls_ctx_opts_t bad_ciphers = { .ciphers = "NO-SUCH-CIPHER" };

    TEST_INTEQ(tls_protocols_parse(NULL, &min, &max, &why), 0);
    TEST_CHECK(min == TLS1_2_VERSION && max == 0);
    TEST_INTEQ(tls_protocols_parse(">=TLSv1.3", &min, &max, &why), 0);
    TEST_CHECK(min == TLS1_3_VERSION && max == 0);
    TEST_INTEQ(tls_protocols_parse(">=TLSv1", &min, &max, &why), 0);
    TEST_CHECK(min == TLS1_2_VERSION);
    TEST_INTEQ(tls_protocols_parse("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", &min, &max, &why), 0);
    TEST_CHECK(min == TLS1_2_VERSION && max == 0);
    TEST_INTEQ(tls_protocols_parse("!TLSv1.3", &min, &max, &why), 0);
    TEST_CHECK(min == TLS1_2_VERSION && max == TLS1_2_VERSION);
    TEST_INTEQ(tls_protocols_parse("<=TLSv1.1", &min, &max, &why), -1);
    TEST_INTEQ(tls_protocols_parse(">=TLSv9", &min, &max, &why), -1);
    TEST_STREQ(why, "TLS protocols: unknown protocol \">=TLSv9\"");

    TEST_CHECK(tls_ctx_server_new(&bad_key, &why) == NULL);
    TEST_CHECK(strstr(why, "private key does not match") != NULL || strstr(why, "mismatch") != NULL);
    fprintf(stderr, "bad key: %s\n", why);
    TEST_CHECK(tls_ctx_server_new(&no_file, &why) == NULL);
    TEST_CHECK(strstr(why, "/nonexistent/cert.pem") != NULL);
    TEST_CHECK(tls_ctx_server_new(&no_cert, &why) == NULL);
    TEST_CHECK(tls_ctx_client_new(&bad_ciphers, &why) == NULL);
    TEST_CHECK(strstr(why, "NO-SUCH-CIPHER") != NULL);

    TEST_INTEQ(tls_level_parse("dane", &lev), 0);
    TEST_INTEQ(lev, TLS_LEV_DANE);
    TEST_INTEQ(tls_level_parse("secure", &lev), 0);
    TEST_INTEQ(lev, TLS_LEV_VERIFY);
    TEST_INTEQ(tls_level_parse("bogus", &lev), -1);
    TEST_STREQ(tls_level_name(TLS_LEV_ENCRYPT), "encrypt");
    TEST_STREQ(tls_trust_name(TLS_TRUST_VERIFIED), "Verified");
}

/* rm_certs - clean the temporary directory */
static void rm_certs(void)
{
    const char *files[] = { ca_pem, srv_cert, srv_key, self_cert, self_key };
    for (size_t i = 0; i < 5; i++)
        unlink(files[i]);
    rmdir(dir);
}

int main(void)
{
    msg_init("tls_test", "stork");
    make_certs();
    loop = event_loop_new();
    test_config();
    test_levels();
    test_tls12();
    event_loop_free(&loop);
    rm_certs();
    return test_done();
}
