/*
 * NAME
 *	verify - the recipient classification service for smtpd's RCPT check
 * SUMMARY
 *	stork_daemon(verify): master.cf "verify unix - n n - - verify"
 *	(private, unprivileged; it needs getpwnam, so no chroot unless the
 *	chroot has the passwd databases). The socket is
 *	$queue_directory/private/verify, protocol "verify".
 * PROTOCOL
 *	The server sends HELLO; then for each VERIFY_REQ {ADDR} (internal
 *	form, see lib/mail/resolve.h) it answers VERIFY_REPLY with the
 *	request's id and
 *	  CLASS       local | virtual | remote (a known address or a
 *	              remote one: smtpd's relay policy decides), unknown (a
 *	              local or virtual address that does not exist), error
 *	              (a table failed: try again later)
 *	  DSN_STATUS  2.1.5 (local, virtual), 2.0.0 (remote), 5.1.1
 *	              (unknown), 4.3.0 (error)
 *	  TEXT        for unknown and error: the text after the SMTP code,
 *	              "<addr>: Recipient address rejected: User unknown in
 *	              local recipient table" (or "virtual mailbox table"),
 *	              "<addr>: Temporary lookup failure"
 *	  TRANSPORT, NEXTHOP  what resolve_addr() said (for local, virtual
 *	              and remote).
 *	AUTH_REQ {USER, PASSWORD, [CLIENT_ADDR]} (smtpd's SMTP AUTH) is
 *	answered with AUTH_REPLY {STATUS 0 ok, 1 bad credentials, 2
 *	temporary failure; TEXT}: the user (the full address, lower-cased)
 *	is looked up in $virtual_mailbox_maps and the password checked
 *	against its crypt(3) hash (verify_auth.c). System users cannot
 *	authenticate: their hashes need root. This service runs outside
 *	smtpd's chroot, so smtpd never holds a password hash.
 *	Any other message type, or a request the schema rejects, closes
 *	that connection (never the daemon).
 * DESCRIPTION
 *	One process serves up to client_limit (100) connections; replies are
 *	computed at once (table lookups are local). Tables are opened in
 *	pre_init and re-opened when a rebuild replaced them
 *	(resolve_refresh, at most once a second). On retirement (SIGUSR1,
 *	max_use, max_idle) idle connections are closed once their replies
 *	are written, so smtpd reconnects to a fresh process.
 */
#include "ipc/ipc.h"
#include "mail/addr.h"
#include "mail/resolve.h"
#include "service/service.h"
#include "util/buf.h"
#include "verify_anvil.h"
#include "verify_auth.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VERIFY_CLIENT_LIMIT 100
#define VERIFY_MAX_ADDR 1024            /* longer than any valid path (RFC 5321: 256) */
#define VERIFY_DRAIN_CHECK_MS 200       /* while retiring, how often to look */
#define VERIFY_DRAIN_MAX_MS 10000       /* then close regardless */
#define VERIFY_ANVIL_MAX_ADDRS 100000   /* client addresses counted at once */

typedef struct verify_client {
    service_t *svc;
    ipc_conn_t *conn;
    verify_anvil_owner_t *anvil;        /* the sessions it counted */
    struct verify_client *prev, *next;
} verify_client_t;

static resolve_t *verify_resolver;
static verify_auth_t *verify_auth;
static verify_anvil_t *verify_anvil;
static verify_client_t *verify_clients;
static int64_t verify_drain_started;

/* client_close - drop one client and tell the skeleton */
static void client_close(verify_client_t *c)
{
    service_t *svc = c->svc;

    if (c->prev)
        c->prev->next = c->next;
    else
        verify_clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    verify_anvil_owner_free(verify_anvil, &c->anvil);
    ipc_conn_free(&c->conn);
    free(c);
    service_client_done(svc);
}

/* verify_addr_text - "<addr>: TEXT" with the address in its external
 * (quoted where needed) form, as the client wrote it */
static void verify_addr_text(buf_t *text, const char *addr, const char *what)
{
    buf_putc(text, '<');
    addr_quote(addr, text);
    buf_puts(text, ">: ");
    buf_puts(text, what);
}

/* verify_answer - fill the reply for one address */
static void verify_answer(const char *addr, ipc_msg_t *reply)
{
    resolve_result_t res;
    buf_t text;

    buf_init(&text, 2 * VERIFY_MAX_ADDR + 256);   /* quoting may double it */
    (void)resolve_refresh(verify_resolver);
    if (strlen(addr) > VERIFY_MAX_ADDR) {
        ipc_put_str(reply, IPC_A_CLASS, "unknown");
        ipc_put_str(reply, IPC_A_DSN_STATUS, "5.1.3");
        ipc_put_str(reply, IPC_A_TEXT, "Recipient address rejected: address too long");
    } else if (resolve_addr(verify_resolver, addr, &res) < 0) {
        msg_warn("<%s>: recipient lookup failed: %s", addr, res.why ? res.why : "unknown error");
        verify_addr_text(&text, addr, "Temporary lookup failure");
        ipc_put_str(reply, IPC_A_CLASS, "error");
        ipc_put_str(reply, IPC_A_DSN_STATUS, "4.3.0");
        ipc_put_str(reply, IPC_A_TEXT, buf_cstr(&text));
    } else if (res.cls != RESOLVE_REMOTE && !res.known) {
        verify_addr_text(&text, addr, res.cls == RESOLVE_LOCAL
                         ? "Recipient address rejected: User unknown in local recipient table"
                         : "Recipient address rejected: User unknown in virtual mailbox table");
        ipc_put_str(reply, IPC_A_CLASS, "unknown");
        ipc_put_str(reply, IPC_A_DSN_STATUS, "5.1.1");
        ipc_put_str(reply, IPC_A_TEXT, buf_cstr(&text));
    } else {
        ipc_put_str(reply, IPC_A_CLASS, resolve_class_name(res.cls));
        ipc_put_str(reply, IPC_A_DSN_STATUS, res.cls == RESOLVE_REMOTE ? "2.0.0" : "2.1.5");
        ipc_put_str(reply, IPC_A_TRANSPORT, res.transport);
        ipc_put_str(reply, IPC_A_NEXTHOP, res.nexthop);
    }
    if (msg_verbose)
        msg_info("verify <%s>: class=%s", addr, ipc_get_str(ipc_msg_view(reply), IPC_A_CLASS));
    buf_free(&text);
}

/* verify_auth_answer - fill the AUTH_REPLY for one AUTH_REQ */
static void verify_auth_answer(ipc_view_t req, ipc_msg_t *reply)
{
    const char *user = ipc_get_str(req, IPC_A_USER);
    const char *password = ipc_get_str(req, IPC_A_PASSWORD);
    const char *client = ipc_get_str(req, IPC_A_CLIENT_ADDR);
    const char *why;
    verify_auth_status_t st = verify_auth_check(verify_auth, user, password, &why);

    if (msg_verbose)
        msg_info("auth %s from %s: %s", user, client ? client : "unknown", why);
    ipc_put_u64(reply, IPC_A_STATUS, (uint64_t)st);
    ipc_put_str(reply, IPC_A_TEXT, why);
}

/* verify_anvil_answer - count a session's start (1: reply made) or end (0) */
static int verify_anvil_answer(verify_client_t *c, ipc_msg_t *m, ipc_msg_t *reply)
{
    const char *addr = ipc_get_str(ipc_msg_view(m), IPC_A_CLIENT_ADDR);
    int64_t now = event_now_ms(service_loop(c->svc));
    uint64_t count, rate;

    if (m->type == IPC_M_CLIENT_DISCONNECT) {
        verify_anvil_disconnect(verify_anvil, c->anvil, addr);
        return 0;
    }
    verify_anvil_connect(verify_anvil, &c->anvil, addr, now, &count, &rate);
    if (msg_verbose)
        msg_info("anvil %s: count=%llu rate=%llu", addr, (unsigned long long)count,
                 (unsigned long long)rate);
    ipc_msg_init(reply, IPC_M_CLIENT_COUNT);
    reply->req_id = m->req_id;
    ipc_put_u64(reply, IPC_A_COUNT, count);
    ipc_put_u64(reply, IPC_A_RATE, rate);
    return 1;
}

/* verify_on_msg - one VERIFY_REQ → one VERIFY_REPLY; AUTH_REQ → AUTH_REPLY;
 * CLIENT_CONNECT → CLIENT_COUNT; CLIENT_DISCONNECT → nothing */
static void verify_on_msg(ipc_conn_t *conn, ipc_msg_t *m, void *ctx)
{
    verify_client_t *c = ctx;
    ipc_msg_t reply;
    const char *addr = NULL;

    if (m->type == IPC_M_AUTH_REQ) {
        ipc_msg_init(&reply, IPC_M_AUTH_REPLY);
        reply.req_id = m->req_id;
        verify_auth_answer(ipc_msg_view(m), &reply);
        /* The request frame held a password. */
        if (m->payload.data)
            explicit_bzero(m->payload.data, m->payload.len);
    } else if (m->type == IPC_M_CLIENT_CONNECT || m->type == IPC_M_CLIENT_DISCONNECT) {
        if (verify_anvil_answer(c, m, &reply) == 0)
            return;                     /* a disconnect has no reply */
    } else if (m->type != IPC_M_VERIFY_REQ
               || (addr = ipc_get_str(ipc_msg_view(m), IPC_A_ADDR)) == NULL) {
        msg_warn("unexpected %s request from client; closing", ipc_msg_name(m->type));
        client_close(c);
        return;
    } else {
        ipc_msg_init(&reply, IPC_M_VERIFY_REPLY);
        reply.req_id = m->req_id;
        verify_answer(addr, &reply);
    }
    ipc_conn_send(conn, &reply);
    ipc_msg_free(&reply);
    if (service_stop_requested(c->svc) && ipc_conn_pending(conn) == 0)
        client_close(c);
}

/* verify_on_close - the client went away (or broke the protocol) */
static void verify_on_close(ipc_conn_t *conn, const char *why, void *ctx)
{
    verify_client_t *c = ctx;

    if (msg_verbose)
        msg_info("client closed: %s", why);
    client_close(c);
}

/* verify_accept - greet a new client and start reading its requests */
static void verify_accept(service_t *svc, int fd)
{
    verify_client_t *c;

    if (ipc_hello(fd, "verify") < 0) {
        msg_warn("cannot send hello to client: %m");
        close(fd);
        service_client_done(svc);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->svc = svc;
    c->next = verify_clients;
    if (verify_clients)
        verify_clients->prev = c;
    verify_clients = c;
    c->conn = ipc_conn_new(service_loop(svc), fd, verify_on_msg, verify_on_close, c);
}

/* verify_drain - while retiring: close clients whose replies are out */
static void verify_drain(event_loop_t *loop, void *ctx)
{
    service_t *svc = ctx;
    bool late = event_now_ms(loop) - verify_drain_started > VERIFY_DRAIN_MAX_MS;
    verify_client_t *c = verify_clients, *next;

    for (; c; c = next) {
        next = c->next;
        if (late || ipc_conn_pending(c->conn) == 0)
            client_close(c);
    }
    if (verify_clients)
        event_timer_add(loop, VERIFY_DRAIN_CHECK_MS, verify_drain, svc);
}

/* verify_stop - retirement begins: let the clients go */
static void verify_stop(service_t *svc)
{
    verify_drain_started = event_now_ms(service_loop(svc));
    verify_drain(service_loop(svc), svc);
}

/* verify_cleanup - close the tables at exit (whichever way we exit) */
static void verify_cleanup(void)
{
    verify_anvil_free(&verify_anvil);
    resolve_free(&verify_resolver);
    verify_auth_free(&verify_auth);
}

/* verify_anvil_tick - forget idle client addresses, once a time unit */
static void verify_anvil_tick(event_loop_t *loop, void *ctx)
{
    service_t *svc = ctx;
    int64_t unit_ms = conf_int(service_conf(svc), "anvil_rate_time_unit") * 1000;

    (void)verify_anvil_sweep(verify_anvil, event_now_ms(loop));
    (void)event_timer_add(loop, unit_ms, verify_anvil_tick, svc);
}

/* verify_post_init - the connection counts' sweep */
static void verify_post_init(service_t *svc)
{
    (void)event_timer_add(service_loop(svc),
                          conf_int(service_conf(svc), "anvil_rate_time_unit") * 1000,
                          verify_anvil_tick, svc);
}

/* verify_pre_init - open the tables while privileged */
static void verify_pre_init(service_t *svc)
{
    const char *why;

    if ((verify_resolver = resolve_new(service_conf(svc), &why)) == NULL)
        msg_fatal("cannot initialize recipient resolution: %s", why);
    verify_auth = verify_auth_new(service_conf(svc));
    verify_anvil = verify_anvil_new(conf_int(service_conf(svc), "anvil_rate_time_unit") * 1000,
                                    VERIFY_ANVIL_MAX_ADDRS);
    atexit(verify_cleanup);
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "verify",
        .client_limit = VERIFY_CLIENT_LIMIT,
        .pre_init = verify_pre_init,
        .post_init = verify_post_init,
        .accept_fn = verify_accept,
        .stop_fn = verify_stop,
    };

    return service_main(argc, argv, &spec);
}
