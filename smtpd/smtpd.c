/*
 * NAME
 *	smtpd - the Stork SMTP server (RFC 5321 receiver)
 * SYNOPSIS
 *	master.cf:  smtp inet n - y - - smtpd
 *	smtpd -c CONFIG_DIR -n SERVICE -t inet [-u] [-C] [-o name=value ...]
 * DESCRIPTION
 *	Receives mail over SMTP/ESMTP (PIPELINING, SIZE, 8BITMIME,
 *	ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, DSN, STARTTLS, AUTH),
 *	checks each recipient with the verify service (private/verify)
 *	and the restriction lists ($mynetworks, SMTP AUTH), writes the queue file into incoming/ and
 *	acknowledges a message only once its file and the directory are
 *	durable (group commit across sessions), then tells qmgr
 *	(public/qmgr) with QMGR_NEW.
 *	One process serves up to smtpd_client_limit (500) sessions on one
 *	event loop; the master runs more processes as needed.
 * PARAMETERS
 *	myhostname, smtpd_banner, message_size_limit, mynetworks,
 *	smtputf8_enable, line_length_limit, smtpd_timeout,
 *	smtpd_session_time_limit, smtpd_recipient_limit,
 *	smtpd_soft_error_limit, smtpd_hard_error_limit,
 *	smtpd_error_sleep_time, smtpd_junk_command_limit,
 *	disable_vrfy_command, smtpd_forbid_bare_newline,
 *	strict_rfc821_envelopes, smtpd_verify_timeout,
 *	smtpd_relay_restrictions, smtpd_recipient_restrictions,
 *	smtpd_tls_security_level, smtpd_tls_cert_file, smtpd_tls_key_file,
 *	smtpd_tls_protocols, smtpd_tls_ciphers, smtpd_tls_loglevel,
 *	smtpd_tls_wrappermode, smtpd_tls_auth_only,
 *	smtpd_tls_received_header, smtpd_starttls_timeout,
 *	smtpd_sasl_auth_enable, broken_sasl_auth_clients
 *	(lib/config/params_smtpd.def, params_global.def).
 *	Submission (587): -o smtpd_tls_security_level=encrypt
 *	-o smtpd_sasl_auth_enable=yes
 *	-o smtpd_recipient_restrictions=permit_sasl_authenticated,reject;
 *	smtps (465): -o smtpd_tls_wrappermode=yes and the same.
 * SECURITY
 *	Parses network input: runs unprivileged and, as root, chrooted to
 *	queue_directory (the skeleton does that). Everything it touches is
 *	relative to queue_directory: incoming/, private/verify,
 *	public/qmgr. The TLS certificate and key are read in pre_init,
 *	before the chroot and the privilege drop. AUTH passwords are
 *	checked by the verify service, outside the chroot; smtpd never
 *	sees a password hash.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include "smtpd.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define SMTPD_CLIENT_LIMIT 500         /* smtpd_client_limit overrides */
#define SMTPD_VERIFY_PATH "private/verify"

static smtpd_server_t smtpd_server;

/* smtpd_restrict_load - one restriction list; an unknown word is fatal */
static void smtpd_restrict_load(conf_t *conf, const char *name, smtpd_restrict_t *list)
{
    char **words = conf_list(conf, name);
    size_t bad;

    if (smtpd_restrict_parse(words, list, &bad) < 0)
        msg_fatal("%s: unknown or unsupported restriction \"%s\" (supported: "
                  "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, "
                  "reject; at most %d)", name, words[bad], SMTPD_RESTRICT_MAX);
}

/* smtpd_settings_load - convert every parameter once */
static void smtpd_settings_load(conf_t *conf, smtpd_settings_t *set)
{
    char **nets;
    const char *why;

    set->myhostname = conf_str(conf, "myhostname");
    set->banner = conf_str(conf, "smtpd_banner");
    set->message_size_limit = (uint64_t)conf_int(conf, "message_size_limit");
    set->timeout_ms = conf_int(conf, "smtpd_timeout") * 1000;
    set->session_limit_ms = conf_int(conf, "smtpd_session_time_limit") * 1000;
    set->verify_timeout_ms = conf_int(conf, "smtpd_verify_timeout") * 1000;
    set->error_sleep_ms = conf_int(conf, "smtpd_error_sleep_time") * 1000;
    set->line_limit = (size_t)conf_int(conf, "line_length_limit");
    set->recipient_limit = (int)conf_int(conf, "smtpd_recipient_limit");
    set->soft_error_limit = (int)conf_int(conf, "smtpd_soft_error_limit");
    set->hard_error_limit = (int)conf_int(conf, "smtpd_hard_error_limit");
    set->junk_command_limit = (int)conf_int(conf, "smtpd_junk_command_limit");
    set->vrfy_enabled = !conf_bool(conf, "disable_vrfy_command");
    set->forbid_bare_newline = conf_bool(conf, "smtpd_forbid_bare_newline");
    set->smtputf8 = conf_bool(conf, "smtputf8_enable");
    set->strict_rfc821 = conf_bool(conf, "strict_rfc821_envelopes");
    nets = conf_list(conf, "mynetworks");
    for (size_t i = 0; nets && nets[i]; i++)
        /* A bad entry is a configuration error: refuse to start rather
         * than run with a relay policy the admin did not write. */
        if (smtpd_cidr_add(&set->mynetworks, nets[i], &why) < 0)
            msg_fatal("mynetworks: %s: %s", nets[i], why);
    set->conn_count_limit = (uint64_t)conf_int(conf, "smtpd_client_connection_count_limit");
    set->conn_rate_limit = (uint64_t)conf_int(conf, "smtpd_client_connection_rate_limit");
    nets = conf_list(conf, "smtpd_client_event_limit_exceptions");
    for (size_t i = 0; nets && nets[i]; i++)
        if (smtpd_cidr_add(&set->limit_exceptions, nets[i], &why) < 0)
            msg_fatal("smtpd_client_event_limit_exceptions: %s: %s", nets[i], why);
    smtpd_restrict_load(conf, "smtpd_relay_restrictions", &set->relay_restrictions);
    smtpd_restrict_load(conf, "smtpd_recipient_restrictions", &set->recipient_restrictions);
    if (!smtpd_restrict_closes(&set->relay_restrictions)
        && !smtpd_restrict_closes(&set->recipient_restrictions))
        msg_fatal("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                  "specify at least one working instance of: reject_unauth_destination, reject");
    set->sasl_enable = conf_bool(conf, "smtpd_sasl_auth_enable");
    set->broken_sasl_clients = conf_bool(conf, "broken_sasl_auth_clients");
    smtpd_tls_init(set, conf);
}

/* smtpd_pre_init - settings and the TLS certificate, while privileged */
static void smtpd_pre_init(service_t *svc)
{
    smtpd_settings_load(service_conf(svc), &smtpd_server.set);
}

/* smtpd_post_init - settings, verify client, group commit hook */
static void smtpd_post_init(service_t *svc)
{
    smtpd_server_t *srv = &smtpd_server;

    srv->svc = svc;
    srv->loop = service_loop(svc);
    srv->verify = smtpd_verify_new(srv->loop, SMTPD_VERIFY_PATH, srv->set.verify_timeout_ms);
    smtpd_enqueue_init(srv);
    service_set_ctx(svc, srv);
}

/* smtpd_accept - a new client connection */
static void smtpd_accept(service_t *svc, int fd)
{
    int on = 1;

    /* Replies are batched into one write per turn (see smtpd_session.c),
     * so Nagle's algorithm can only add a delayed-ACK stall. Fails
     * harmlessly on a UNIX socket. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    smtpd_session_new(&smtpd_server, fd);
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "smtpd",
        .client_limit = SMTPD_CLIENT_LIMIT,
        .pre_init = smtpd_pre_init,
        .post_init = smtpd_post_init,
        .accept_fn = smtpd_accept,
    };

    return service_main(argc, argv, &spec);
}
