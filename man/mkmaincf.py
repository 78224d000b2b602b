#!/usr/bin/env python3
"""mkmaincf.py - write man5/main.cf.5 from lib/config/params_*.def.

Every parameter Stork declares gets an entry with its type, compiled-in
default and range, and the description below. A declared parameter with
no description here is listed as undocumented and reported on stderr,
so a new parameter cannot silently go missing from the page.

    python3 man/mkmaincf.py            # rewrite man/man5/main.cf.5
    python3 man/mkmaincf.py --check    # exit 1 if the page is stale
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "lib", "config"))
OUT = os.path.join(HERE, "man5", "main.cf.5")

DESC = {
    # smtpd: TLS, AUTH, restrictions
    "anvil_rate_time_unit": "The time unit of smtpd_client_connection_rate_limit: a "
                            "client's connections are counted from its first one in a unit.",
    "broken_sasl_auth_clients": "Also announce AUTH in the old AUTH=PLAIN LOGIN form for "
                                "clients that need it.",
    "smtpd_recipient_restrictions": "RCPT rules checked after smtpd_relay_restrictions: "
                                    "permit_mynetworks, permit_sasl_authenticated, "
                                    "reject_unauth_destination, reject. The first rule that "
                                    "decides ends the list.",
    "smtpd_relay_restrictions": "RCPT relay rules, checked first, in order (the same four "
                                "keywords); one of the two lists must be able to reject "
                                "(reject_unauth_destination or reject), or smtpd(8) refuses "
                                "to start.",
    "smtpd_sasl_auth_enable": "Offer SMTP AUTH (PLAIN, LOGIN) checked against "
                              "virtual_mailbox_maps by verify(8).",
    "smtpd_starttls_timeout": "How long smtpd(8) waits for a TLS handshake to finish.",
    "smtpd_tls_auth_only": "Offer and accept AUTH only over TLS (Postfix default: no).",
    "smtpd_tls_cert_file": "PEM certificate (chain) of the SMTP server, read before chroot; "
                           "required when TLS is offered.",
    "smtpd_tls_ciphers": "TLS 1.2 cipher grade or OpenSSL cipher list for smtpd(8): high, "
                         "medium, or a list (TLS 1.3 uses OpenSSL's suites).",
    "smtpd_tls_key_file": "PEM private key of the SMTP server.",
    "smtpd_tls_loglevel": "0: no TLS logging; 1 or more: log one line per TLS session.",
    "smtpd_tls_protocols": "TLS protocols smtpd(8) accepts, Postfix syntax; never below "
                           "TLSv1.2.",
    "smtpd_tls_received_header": "Record the TLS protocol and cipher in Received: "
                                 "(Postfix default: no).",
    "smtpd_tls_security_level": "SMTP server TLS: empty or none, may (offer STARTTLS), "
                                "encrypt (require it: 530 5.7.0 before STARTTLS).",
    "smtpd_tls_wrappermode": "Implicit TLS from the first byte (port 465, RFC 8314); set "
                             "per service with -o.",
    # qmgr: routing, scheduling, notifications
    "2bounce_notice_recipient": "Who gets the failure report for undeliverable mail from the "
                                "null sender (a double bounce); a bare local part gets "
                                "@$myorigin.",
    "bounce_size_limit": "The largest original message a failure report returns in full; "
                         "a bigger one is returned as headers only.",
    "default_destination_concurrency_failed_cohort_limit": "How many site failures in a row "
        "at concurrency 1 mark a destination dead (delivery suspended for "
        "minimal_backoff_time); one value for every transport.",
    "default_destination_concurrency_limit": "The most parallel deliveries to one "
        "destination (transport and next hop) for transports without their own parameter.",
    "default_destination_rate_delay": "The pause between deliveries to one destination; "
                                      "a non-zero delay also means one delivery at a time "
                                      "(0: none).",
    "default_destination_recipient_limit": "The most recipients per delivery request; 1 "
                                           "makes each recipient its own destination.",
    "default_transport": "The transport, or transport:nexthop, for remote recipients "
                         "without a transport_maps entry; a next hop here wins over "
                         "relayhost.",
    "default_transport_limit": "The most parallel deliveries (delivery agent connections) "
                               "per transport.",
    "delay_warning_time": "After how long the sender of a still deferred message gets one "
                          "delay notice (recipients with NOTIFY=DELAY or no NOTIFY; "
                          "0: never).",
    "initial_destination_concurrency": "The concurrency a destination starts with; it grows "
                                       "towards the limit while deliveries succeed and "
                                       "shrinks on site failures.",
    "relayhost": "Send remote mail without a transport_maps next hop through this host: "
                 "[host] or [host]:port (no MX lookup), host or host:port (its MX records "
                 "are used); empty: deliver to each domain's MX.",
    "transport_maps": "Tables (transport(5)) that map a recipient address, domain, "
                      ".parent or * (remote domains only) to transport:nexthop.",
    # smtp/lmtp delivery agent
    "smtp_connect_timeout": "How long the SMTP client waits for a TCP connection.",
    "smtp_connection_cache_on_demand": "Keep a connection open after a delivery, for "
                                       "smtp_connection_cache_time_limit, so the next message "
                                       "to the same transport and next hop reuses it.",
    "smtp_connection_cache_time_limit": "How long an idle cached SMTP connection is kept.",
    "smtp_data_done_timeout": "How long the SMTP client waits for the reply after the end "
                              "of data.",
    "smtp_data_init_timeout": "How long the SMTP client waits for the reply to DATA.",
    "smtp_data_xfer_timeout": "How long the SMTP client may wait while sending content.",
    "smtp_helo_name": "The name the SMTP client sends in EHLO, HELO or LHLO.",
    "smtp_helo_timeout": "How long the SMTP client waits for the greeting, the EHLO reply and "
                         "each AUTH reply.",
    "smtp_mail_timeout": "How long the SMTP client waits for the reply to MAIL.",
    "smtp_mx_address_limit": "The most IP addresses tried per delivery, over all MX hosts "
                             "(0: no limit).",
    "smtp_mx_session_limit": "The most SMTP sessions per delivery that get as far as the "
                             "greeting; failed connections do not count (0: no limit).",
    "smtp_quit_timeout": "How long the SMTP client waits for the reply to QUIT (never more "
                         "than 5 s).",
    "smtp_rcpt_timeout": "How long the SMTP client waits for the reply to RCPT.",
    "smtp_rset_timeout": "How long the SMTP client waits for the reply to RSET (before a "
                         "cached connection is reused).",
    "smtp_sasl_auth_enable": "Authenticate (AUTH PLAIN or LOGIN) to servers that offer AUTH "
                             "and have an entry in smtp_sasl_password_maps.",
    "smtp_sasl_password_maps": "Tables (sasl_passwd(5)) of user:password, looked up by the "
                               "next hop as given, the server's host name, then the "
                               "domain.",
    "smtp_sasl_security_options": "On sessions without TLS: noplaintext forbids PLAIN and "
                                  "LOGIN (Stork's only mechanisms); other words such as "
                                  "noanonymous are accepted.",
    "smtp_sasl_tls_security_options": "As smtp_sasl_security_options, on TLS sessions; the "
                                      "default lets PLAIN and LOGIN run over TLS.",
    "smtp_service_port": "Stork only: the TCP port for MX hosts and next hops without :port, "
                         "also in the DANE TLSA name _PORT._tcp.host; tests use it to reach "
                         "listeners on a free port.",
    "smtp_starttls_timeout": "How long the SMTP client waits for the TLS handshake.",
    "smtp_tls_CAfile": "PEM file of CA certificates the SMTP client trusts (verify level, "
                       "and Trusted in logs); with smtp_tls_CApath empty too, OpenSSL's "
                       "system default.",
    "smtp_tls_CApath": "A directory of trusted CA certificates (c_rehash layout) for the "
                       "SMTP client.",
    "smtp_tls_cert_file": "A PEM client certificate offered to servers that ask; empty: "
                          "none.",
    "smtp_tls_ciphers": "TLS 1.2 cipher grade or OpenSSL cipher list for the SMTP client: "
                        "high, medium, or a list.",
    "smtp_tls_key_file": "The private key of smtp_tls_cert_file.",
    "smtp_tls_loglevel": "0: no TLS logging; 1 or more: one line per TLS connection "
                         "(Untrusted, Trusted or Verified TLS connection established ...).",
    "smtp_tls_policy_maps": "Per-destination TLS policy tables (tls_policy(5)): next hop, "
                            "domain or .parent to a level and optional match= names.",
    "smtp_tls_protocols": "TLS protocols the SMTP client allows, Postfix syntax; never "
                          "below TLSv1.2.",
    "smtp_tls_security_level": "The SMTP client's default TLS level: none, may "
                               "(opportunistic), encrypt, dane (RFC 7672), verify or secure "
                               "(Postfix default: none).",
    "alias_database": "The alias tables that newaliases(1) (storkmap -a) builds.",
    "alias_maps": "Tables of local aliases (aliases(5)) consulted by local(8) and, "
                  "for RCPT checks, by verify(8).",
    "allow_mail_to_commands": "Where |command deliveries are allowed: any of alias, forward. "
                              "Empty (the default) allows none.",
    "allow_mail_to_files": "Where /file deliveries are allowed: any of alias, forward. "
                           "Empty (the default) allows none.",
    "bounce_queue_lifetime": "How long mail from the null sender (notifications) is retried "
                             "before it is given up; at most maximal_queue_lifetime.",
    "command_directory": "Where the administrative commands are installed.",
    "command_time_limit": "The longest a |command delivery may run.",
    "config_directory": "The configuration directory; always the -c directory (or "
                        "/etc/stork), usable in $name expansion.",
    "daemon_directory": "Where stork-master finds the daemons named in master.cf(5).",
    "data_directory": "Where programs keep data that is not part of the queue.",
    "default_privs": "The user that alias |command and /file deliveries run as when the "
                     "alias file is owned by root.",
    "default_process_limit": "The maxproc of master.cf(5) services that say '-'.",
    "disable_vrfy_command": "Refuse VRFY (252), so that addresses cannot be harvested.",
    "dns_lookup_timeout": "The longest one DNS lookup may take.",
    "dns_servers": "Resolvers to ask (ip, ip:port or [ipv6]:port), for both the ordinary "
                   "and the DNSSEC-validating lookups; empty: the system's resolv.conf, "
                   "and libunbound's own recursion from the root for validated lookups. "
                   "Validation is always done by Stork with dnssec_trust_anchor_file, so "
                   "these servers must return DNSSEC records (a validating resolver does).",
    "dnssec_trust_anchor_file": "DS/DNSKEY lines that anchor DNSSEC validation for DANE "
                                "(the default comes with Debian's dns-root-data); empty or "
                                "unreadable: no validated lookups, and the dane level falls "
                                "back to may with a warning.",
    "home_mailbox": "A system user's mailbox, relative to the home directory; a trailing "
                    "'/' means Maildir.",
    "inet_interfaces": "The addresses inet services listen on when master.cf gives no host: "
                       "'all', or a list of addresses.",
    "ipc_timeout": "The longest a daemon waits on another over a UNIX socket.",
    "line_length_limit": "The longest SMTP command line smtpd(8) accepts (longer lines are "
                         "refused), and the length at which long message lines are split "
                         "when queued.",
    "local_destination_recipient_limit": "Recipients per delivery request to local(8).",
    "local_expansion_limit": "The most addresses one alias or .forward expansion may "
                             "produce.",
    "local_recursion_limit": "How deeply aliases may nest.",
    "local_transport_limit": "The most concurrent deliveries qmgr(8) hands to local(8).",
    "local_worker_idle_time": "How long an idle per-recipient worker of local(8) is kept.",
    "local_worker_limit": "The most per-recipient workers local(8) runs at once.",
    "mail_owner": "The unprivileged user the daemons run as (and the owner of the queue).",
    "maillog_file": "Log to this file instead of syslog; \"/dev/stderr\" logs to standard "
                    "error.",
    "max_idle": "How long an idle daemon waits for a client before it exits.",
    "max_use": "How many clients a daemon serves before it exits (0: no limit).",
    "maximal_backoff_time": "The longest time between delivery attempts of a deferred "
                            "message.",
    "maximal_queue_lifetime": "How long a message is retried before it is returned as "
                              "undeliverable.",
    "message_size_limit": "The largest message accepted, in bytes (0: no limit); checked "
                          "at MAIL (SIZE=) and at the end of DATA/BDAT (552 5.3.4).",
    "minimal_backoff_time": "The shortest time between delivery attempts of a deferred "
                            "message (the wait grows with the message's age up to "
                            "maximal_backoff_time); also how long a dead destination stays "
                            "suspended.",
    "maildir_directory_fsync": "Deliver into a Maildir with two flushes: fsync the file in "
                               "tmp/, link it into new/, fsync new/. Off by default: the file "
                               "is linked into new/ first and its one fsync also makes that "
                               "name durable on ext4, XFS and btrfs. Turn it on for mailboxes "
                               "on a file system that does not promise that.",
    "mydestination": "The domains delivered locally (to system users and aliases).",
    "mydomain": "This system's domain; by default myhostname less its first label.",
    "myhostname": "This system's fully qualified name, used in the SMTP greeting and "
                  "Received: headers; by default from gethostname().",
    "mynetworks": "Clients in these networks (CIDR, [IPv6]/len) may relay to any domain.",
    "myorigin": "The domain appended to addresses without one (sendmail, local parts).",
    "qmgr_message_active_limit": "The most messages in the active queue at once.",
    "queue_directory": "The queue: incoming/, active/, deferred/, hold/, corrupt/, "
                       "recycle/ and maildrop/, the private/ and public/ sockets, and the "
                       "index (index/queue.db); also smtpd's chroot.",
    "queue_directory_fsync": "Also fsync incoming/ after each batch of new queue files. "
                             "Off by default: a queue file is written under its final name "
                             "and its fsync makes its directory entry durable too on Linux "
                             "file systems (ext4, XFS, btrfs), so the 250 waits for one "
                             "flush, as in Postfix. Turn it on for a queue on a file system "
                             "that does not promise that. (A batch that reuses a file from "
                             "recycle/ fsyncs incoming/ anyway: see queue_file_recycle_limit.)",
    "queue_file_recycle_limit": "How many spent queue files (of at most 256 KiB) qmgr(8) "
                                "keeps in recycle/ instead of deleting them; smtpd(8) and "
                                "the other writers of incoming/ reuse them under new queue "
                                "ids, which spares the file system an inode and block free "
                                "and allocation (and, with the discard mount option, a "
                                "discard) per message. A batch with a reused file also "
                                "fsyncs incoming/, because a rename is not covered by the "
                                "file's fsync. 0 turns it off (and empties recycle/ when "
                                "qmgr starts).",
    "queue_run_delay": "How often qmgr(8) scans deferred/ for messages that are due.",
    "recipient_delimiter": "The separator of address extensions (ann+list@): the part "
                           "after it is ignored when finding the user.",
    "service_throttle_time": "How long stork-master waits before restarting a service "
                             "whose processes fail at start-up.",
    "setgid_group": "The group that owns maildrop/ and the set-gid sendmail(1).",
    "smtpd_banner": "The text after 220 in the SMTP greeting.",
    "smtpd_client_connection_count_limit": "How many sessions one client address may have "
                                           "open at once, over every smtpd(8) process of "
                                           "the instance (the verify service counts them). "
                                           "One more is answered 421 4.7.0 and "
                                           "disconnected. 0 means no limit.",
    "smtpd_client_connection_rate_limit": "How many connections one client address may make "
                                          "per anvil_rate_time_unit; one more is answered "
                                          "421 4.7.0 and disconnected. 0 (the default) "
                                          "means no limit.",
    "smtpd_client_event_limit_exceptions": "Client addresses and networks (CIDR) that the "
                                           "two connection limits do not apply to; host "
                                           "names are not accepted.",
    "smtpd_client_limit": "Sessions one smtpd(8) process serves on its event loop (the "
                          "master starts another process when all are full, up to the "
                          "service's maxproc). The open file limit is raised to fit, or the "
                          "limit is lowered with a warning.",
    "smtpd_error_sleep_time": "Delay of each reply once a client has made more than "
                              "smtpd_soft_error_limit errors.",
    "smtpd_forbid_bare_newline": "Refuse bare LF and bare CR in DATA and commands: only "
                                 "CRLF ends a line, so SMTP smuggling is impossible.",
    "smtpd_hard_error_limit": "Errors after which smtpd(8) disconnects a client (421).",
    "smtpd_junk_command_limit": "NOOP, RSET, VRFY, HELP and unknown commands a session may "
                                "send before it is disconnected.",
    "smtpd_recipient_limit": "The most recipients per message (452 4.5.3 beyond).",
    "smtpd_session_time_limit": "The longest an SMTP session may last.",
    "smtpd_soft_error_limit": "Errors after which smtpd(8) slows down its replies.",
    "smtpd_timeout": "How long smtpd(8) waits for a command or data from the client.",
    "smtpd_verify_timeout": "How long smtpd(8) waits for verify(8); on timeout RCPT gets "
                            "a temporary 451 4.3.0.",
    "smtputf8_enable": "Announce SMTPUTF8 and accept UTF-8 addresses (RFC 6531).",
    "strict_rfc821_envelopes": "Require <> around MAIL FROM and RCPT TO addresses.",
    "syslog_name": "The program name prefix in syslog lines (stork/smtpd[PID]).",
    "virtual_alias_maps": "Tables that redirect virtual addresses to other addresses.",
    "virtual_mailbox_base": "The directory all virtual mailboxes are below.",
    "virtual_mailbox_domains": "The hosted domains whose users are in "
                               "virtual_mailbox_maps.",
    "virtual_mailbox_maps": "The virtual users table (stork-virtual(5)): address to "
                            "password hash, Maildir and quota.",
    "virtual_mailbox_owner": "The user that owns virtual mailboxes and that local(8) "
                             "switches to when writing them.",
    "virtual_minimum_uid": "The smallest uid local(8) accepts as virtual_mailbox_owner.",
}

# Per-transport variants of default_* parameters: "smtp_transport_limit"
# is default_transport_limit for the smtp transport.
PER_TRANSPORT = re.compile(r"^(smtp|lmtp|local|relay|virtual)_(destination_concurrency_limit|"
                           r"destination_rate_delay|destination_recipient_limit|"
                           r"initial_destination_concurrency|transport_limit|"
                           r"destination_concurrency_failed_cohort_limit)$")
# lmtp_* client settings mirror smtp_* ones.
LMTP_MIRROR = re.compile(r"^lmtp_(.*)$")


def describe(name):
    if name in DESC:
        return DESC[name]
    m = PER_TRANSPORT.match(name)
    if m:
        base = ("default_" + m.group(2)) if m.group(2) != "transport_limit" else \
            "default_transport_limit"
        return "As %s, for the %s transport." % (base, m.group(1))
    m = LMTP_MIRROR.match(name)
    if m and ("smtp_" + m.group(1)) in DESC:
        return "As smtp_%s, for the LMTP client." % m.group(1)
    return None


TYPES = {"CONF_STR": "string", "CONF_INT": "integer", "CONF_BOOL": "boolean",
         "CONF_SIZE": "size (bytes; k, m, g suffixes)",
         "CONF_TIME": "time (s, m, h, d, w suffixes; seconds without)",
         "CONF_LIST": "list (comma or space separated)"}

PARAM_RX = re.compile(r'^\s*PARAM\(\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*"((?:[^"\\]|\\.)*)"\s*,'
                      r'\s*([-\w]+)\s*,\s*([-\w]+)\s*\)', re.M)


def params():
    out = {}
    for fn in sorted(os.listdir(SRC)):
        if fn.startswith("params_") and fn.endswith(".def"):
            with open(os.path.join(SRC, fn)) as f:
                for m in PARAM_RX.finditer(f.read()):
                    name, typ, default, lo, hi = m.groups()
                    out[name] = (typ, default, lo.rstrip("LlUu"), hi.rstrip("LlUu"), fn)
    return out


def esc(s):
    """Escape text for mdoc: backslashes, and a leading dot or quote."""
    s = s.replace("\\", "\\e")
    if s[:1] in (".", "'"):
        s = "\\&" + s
    return s


def render(ps):
    lines = [
        ".\\\" Generated by man/mkmaincf.py from lib/config/params_*.def; edit those.",
        ".Dd November 22, 2025",
        ".Dt MAIN.CF 5",
        ".Os Stork",
        ".Sh NAME",
        ".Nm main.cf",
        ".Nd Stork configuration parameters",
        ".Sh DESCRIPTION",
        "The file",
        ".Pa main.cf",
        "in the configuration directory",
        "(\\fB/etc/stork\\fR, or the \\fB-c\\fR directory) sets Stork's parameters,",
        "one per line, as",
        ".Dl name = value",
        "Lines that start with white space continue the previous line;",
        "blank lines and lines starting with",
        ".Ql #",
        "are ignored.",
        "A value may refer to other parameters as",
        ".Li $name ,",
        ".Li ${name}",
        "or",
        ".Li $(name) ;",
        ".Li $$",
        "is a literal dollar sign.",
        "Parameters not set have the compiled-in defaults below;",
        ".Xr storkconf 1",
        "prints effective values",
        ".Pq Fl n : No only those set here, Fl d : No the defaults .",
        "Names and meanings follow Postfix wherever the meaning is the same.",
        ".Pp",
        "An unknown name or a bad value is reported with the file, line and",
        "name, and no program starts with such a configuration",
        ".Pq Nm stork Cm check .",
        "A",
        ".Xr master.cf 5",
        "entry may override a parameter for one service with",
        ".Fl o Ar name=value .",
        ".Pp",
        "Scheduling parameters exist per transport:",
        ".Cm smtp_destination_concurrency_limit",
        "is",
        ".Cm default_destination_concurrency_limit",
        "for the",
        ".Cm smtp",
        "transport, and likewise for",
        ".Cm local , relay",
        "and",
        ".Cm lmtp ;",
        "other",
        ".Xr master.cf 5",
        "transports use the",
        ".Cm default_*",
        "values.",
        "The delivery agent run as",
        ".Cm lmtp",
        "reads the",
        ".Cm lmtp_*",
        "variant of a client parameter where one is listed below, and the",
        ".Cm smtp_*",
        "one otherwise.",
        ".Sh PARAMETERS",
        ".Bl -tag -width Ds",
    ]
    missing = []
    for name in sorted(ps):
        typ, default, lo, hi, fn = ps[name]
        lines.append(".It Cm %s Pq %s" % (name, TYPES.get(typ, typ).split(" (")[0]))
        d = describe(name)
        if d is None:
            missing.append(name)
            d = "(Not yet documented.)"
        lines.append(esc(d))
        lines.append(".br")
        lines.append("Default:")
        lines.append(".Ql %s ." % esc(default) if default else "empty.")
        if typ in ("CONF_INT", "CONF_SIZE", "CONF_TIME") and not (lo == "0" and hi == "0"):
            lines.append("Range: %s to %s." % (lo, hi))
    lines += [
        ".El",
        ".Sh VALUE TYPES",
        ".Bl -tag -width boolean",
        ".It boolean",
        "yes/no, true/false, on/off, 1/0.",
        ".It size",
        "Bytes, with an optional k, m or g suffix.",
        ".It time",
        "Seconds, or a number with s, m, h, d or w.",
        ".It list",
        "Items separated by commas and/or white space.",
        ".El",
        ".Sh FILES",
        ".Pa /etc/stork/main.cf",
        ".Sh SEE ALSO",
        ".Xr stork 1 ,",
        ".Xr storkconf 1 ,",
        ".Xr aliases 5 ,",
        ".Xr master.cf 5 ,",
        ".Xr sasl_passwd 5 ,",
        ".Xr stork-virtual 5 ,",
        ".Xr tls_policy 5 ,",
        ".Xr transport 5 ,",
        ".Xr bounce 8 ,",
        ".Xr qmgr 8 ,",
        ".Xr smtp 8 ,",
        ".Xr smtpd 8",
    ]
    return "\n".join(lines) + "\n", missing


def main():
    text, missing = render(params())
    for name in missing:
        sys.stderr.write("mkmaincf: %s has no description\n" % name)
    if "--check" in sys.argv[1:]:
        if missing:
            return 1
        try:
            current = open(OUT).read()
        except FileNotFoundError:
            current = ""
        if current != text:
            sys.stderr.write("mkmaincf: %s is stale: run python3 man/mkmaincf.py\n" % OUT)
            return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
