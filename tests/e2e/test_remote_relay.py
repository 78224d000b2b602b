#!/usr/bin/env python3
"""relayhost with SMTP AUTH to a second Stork instance, transport_maps
and LMTP, end to end.

Stork A: relayhost = [127.0.0.40]:PORTB, smtp_sasl_auth_enable = yes with
a password table (storkmap-built), smtp_tls_security_level = encrypt for
everything, and a transport table (storkmap-built) that sends two domains
to LMTP listeners (lmtp:unix:/path and lmtp:inet:127.0.0.1:port) and one
domain around the relayhost (smtp:, MX lookup) to a server without
STARTTLS.
Stork B: smtpd_tls_security_level = may, smtpd_sasl_auth_enable = yes,
mynetworks = 127.0.0.200/32 (A connects from 127.0.0.1: relaying is only
allowed because A authenticated), a virtual user for A's login and one as
a final recipient; B relays mail for far.test onward through the test DNS
to a scripted receiver.

  - mail for B's virtual domain arrives byte for byte, B's Received: says
    ESMTPSA and B logs sasl_username
  - mail for far.test is relayed by B (refused to an unauthenticated
    client from the same address)
  - the global encrypt level defers mail to a server without STARTTLS
  - LMTP over a UNIX socket and over TCP: the listener got the bytes
"""

import os
import re
import shutil
import smtplib
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import dns_env  # noqa: E402
from remote_env import (Receiver, can_bind, common_port, make_certs)  # noqa: E402
from stork_instance import (Skip, StorkInstance, free_port, read_bytes, run_tests,  # noqa: E402
                            split_added_headers, wait_until)

SENDER = "alice@virt.test"
B_ADDR, FAR, NOTLS = "127.0.0.40", "127.0.0.41", "127.0.0.42"
LOGIN, PASSWORD = "relayuser@final.test", "s3cret-pw"

_env = {}


def setup():
    if _env.get("skip"):
        raise Skip(_env["skip"])
    if _env:
        return _env
    missing = dns_env.tools_missing()
    if missing or not shutil.which("openssl"):
        _env["skip"] = "missing " + " ".join(missing or ["openssl"])
        raise Skip(_env["skip"])
    if not can_bind(B_ADDR):
        _env["skip"] = "cannot bind 127.0.0.x addresses"
        raise Skip(_env["skip"])
    tmp = tempfile.mkdtemp(prefix="stork-e2e-remote-relay-")
    os.chmod(tmp, 0o755)
    _env["tmp"] = tmp
    certs = make_certs(os.path.join(tmp, "certs"), ["smarthost.b.test"])
    mx_port = common_port([FAR, NOTLS])
    dns = dns_env.DnsEnv(tmp)
    dns.add_zone("far.test", ["@ MX 10 mx", "mx A " + FAR])
    dns.add_zone("notls.test", ["@ MX 10 mx", "mx A " + NOTLS])
    dns.start()
    _env["dns"] = dns
    _env["far"] = Receiver(FAR, mx_port, name="mx.far.test")
    _env["notls"] = Receiver(NOTLS, mx_port, name="mx.notls.test")
    sock_dir = os.path.join(tmp, "lmtp")
    os.makedirs(sock_dir)
    os.chmod(sock_dir, 0o755)
    lmtp_path = os.path.join(sock_dir, "lmtp.sock")
    _env["lmtp_unix"] = Receiver(path=lmtp_path, lmtp=True, name="lmtp.unix.test",
                                 lmtp_rcpt=lambda a: "452 4.2.2 <%s> mailbox full" % a
                                 if a.startswith("full") else None)
    lmtp_port = free_port()
    _env["lmtp_inet"] = Receiver("127.0.0.1", lmtp_port, lmtp=True, name="lmtp.inet.test")
    dns_cf = {"dns_servers": dns.servers, "dnssec_trust_anchor_file": dns.anchor_file,
              "dns_lookup_timeout": "5s", "smtp_service_port": mx_port,
              "smtp_connect_timeout": "5s", "minimal_backoff_time": "1s",
              "maximal_backoff_time": "2s", "queue_run_delay": "1s"}
    b = StorkInstance(host=B_ADDR, myhostname="smarthost.b.test", local_domain="b.test",
                      virtual_domain="final.test", mynetworks="127.0.0.200/32",
                      virtual_users={"relayuser": PASSWORD, "frank": "x"},
                      extra_main_cf=dict(dns_cf, **{
                          "smtpd_tls_security_level": "may",
                          "smtpd_tls_cert_file": certs["self"][0],
                          "smtpd_tls_key_file": certs["self"][1],
                          "smtpd_sasl_auth_enable": "yes"}))
    _env["b"] = b
    b.start()
    a = StorkInstance(extra_main_cf=dict(dns_cf, **{
        "relayhost": "[%s]:%d" % (B_ADDR, b.port),
        "smtp_sasl_auth_enable": "yes",
        "smtp_tls_security_level": "encrypt"}),
        extra_master_cf="lmtp unix - - n - - smtp\n")
    sasl = os.path.join(a.config_dir, "sasl_passwd")
    with open(sasl, "w") as f:
        f.write("[%s]:%d %s:%s\n" % (B_ADDR, b.port, LOGIN, PASSWORD))
    a.storkmap("hash:" + sasl)
    transport = os.path.join(a.config_dir, "transport")
    with open(transport, "w") as f:
        f.write("lmtp-unix.test lmtp:unix:%s\n" % lmtp_path)
        f.write("lmtp-inet.test lmtp:inet:127.0.0.1:%d\n" % lmtp_port)
        f.write("notls.test smtp:\n")
    a.storkmap("hash:" + transport)
    a.extra_main_cf["smtp_sasl_password_maps"] = "hash:" + sasl
    a.extra_main_cf["transport_maps"] = "hash:" + transport
    a.write_main_cf()
    _env["a"] = a
    a.start()
    return _env


def teardown():
    for k in ("a", "b"):
        if k in _env:
            _env[k].cleanup()
    for k in ("far", "notls", "lmtp_unix", "lmtp_inet"):
        if k in _env:
            _env[k].stop()
    if "dns" in _env:
        _env["dns"].stop()
    if "tmp" in _env and not os.environ.get("STORK_KEEP_TMP"):
        shutil.rmtree(_env["tmp"], ignore_errors=True)


def message(token, to):
    wire = ("From: <%s>\r\nTo: <%s>\r\nSubject: relay %s\r\nMessage-ID: <%s@virt.test>\r\n"
            "\r\nbody of %s\r\n..two dots\r\n" % (SENDER, to, token, token, token)).encode()
    return wire, wire.replace(b"\r\n", b"\n")


def sent_line(inst, rcpt, status="sent", timeout=30):
    rx = r"to=<%s>, .*status=%s " % (re.escape(rcpt), status)
    try:
        return wait_until(lambda: inst.log_lines(rx), timeout,
                          what="status=%s for %s" % (status, rcpt))[0]
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, inst.diagnostics()))


def test_relayhost_auth_to_stork_b():
    e = setup()
    a, b = e["a"], e["b"]
    wire, stored = message("smarthost", "frank@final.test")
    a.send(SENDER, "frank@final.test", wire)
    paths = b.wait_for_maildir(b.vmaildir("frank"), 1, timeout=30)
    added, rest = split_added_headers(read_bytes(paths[0]))
    assert rest == stored, (rest, stored)
    received = [h for h in added if h.lower().startswith(b"received:")]
    assert b"by smarthost.b.test" in received[0] and b"with ESMTPSA" in received[0], received
    line = sent_line(a, "frank@final.test")
    assert "relay=%s[%s]:%d" % (B_ADDR, B_ADDR, b.port) in line, line
    assert a.log_lines(r"TLS connection established to %s\[%s\]:%d"
                       % (re.escape(B_ADDR), re.escape(B_ADDR), b.port)), a.diagnostics()
    assert b.log_lines(r"client=unknown\[127\.0\.0\.1\], sasl_method=(PLAIN|LOGIN), "
                       r"sasl_username=%s" % re.escape(LOGIN)), b.diagnostics()


def test_relay_onward_only_because_of_auth():
    e = setup()
    a, b, far = e["a"], e["b"], e["far"]
    # Unauthenticated from the same address: B refuses to relay.
    s = smtplib.SMTP(B_ADDR, b.port, timeout=30)
    try:
        s.ehlo("client.test")
        s.mail(SENDER)
        code, text = s.rcpt("gina@far.test")
        assert code == 554 and text.startswith(b"5.7.1"), (code, text)
    finally:
        s.quit()
    wire, _ = message("onward", "gina@far.test")
    a.send(SENDER, "gina@far.test", wire)
    wait_until(lambda: any("gina@far.test" in m["rcpts"] for m in far.messages), 30,
               what="B relaying onward to far.test")
    m = [m for m in far.messages if "gina@far.test" in m["rcpts"]][0]
    assert m["data"].endswith(wire), m["data"]
    assert m["mail"].startswith("MAIL FROM:<%s>" % SENDER), m["mail"]
    # Two Received: lines added on the way: A's smtpd and B's (ESMTPSA).
    assert b"by smarthost.b.test (Stork) with ESMTPSA" in re.sub(rb"\r\n[ \t]+", b" ",
                                                                 m["data"]), m["data"]
    sent_line(b, "gina@far.test")
    sent_line(a, "gina@far.test")


def test_global_encrypt_defers_without_starttls():
    e = setup()
    a, rcv = e["a"], e["notls"]
    wire, _ = message("encrypt", "hal@notls.test")
    a.send(SENDER, "hal@notls.test", wire)
    line = sent_line(a, "hal@notls.test", status="deferred")
    assert "relay=mx.notls.test[%s]" % NOTLS in line and "TLS is required" in line, line
    time.sleep(0.3)
    assert rcv.connections >= 1 and not rcv.mail_commands(), rcv.commands


def test_lmtp_unix_socket():
    e = setup()
    a, rcv = e["a"], e["lmtp_unix"]
    wire, _ = message("lmtp-unix", "ivy@lmtp-unix.test")
    a.send(SENDER, ["ivy@lmtp-unix.test", "full@lmtp-unix.test"], wire)
    line = sent_line(a, "ivy@lmtp-unix.test")
    assert "dsn=2.0.0" in line, line
    m = [m for m in rcv.messages if "ivy@lmtp-unix.test" in m["rcpts"]]
    assert m and m[0]["data"].endswith(wire), rcv.messages
    assert m[0]["mail"].startswith("MAIL FROM:<%s>" % SENDER), m[0]["mail"]
    assert any(c.startswith("LHLO ") for c in rcv.commands), rcv.commands
    # LMTP's per-recipient reply after DATA: the full mailbox is deferred.
    full = sent_line(a, "full@lmtp-unix.test", status="deferred")
    assert "452 4.2.2" in full and "dsn=4.2.2" in full, full


def test_lmtp_inet():
    e = setup()
    a, rcv = e["a"], e["lmtp_inet"]
    wire, _ = message("lmtp-inet", "jo@lmtp-inet.test")
    a.send(SENDER, "jo@lmtp-inet.test", wire)
    line = sent_line(a, "jo@lmtp-inet.test")
    assert "127.0.0.1" in line, line
    m = [m for m in rcv.messages if "jo@lmtp-inet.test" in m["rcpts"]]
    assert m and m[0]["data"].endswith(wire), rcv.messages
    assert any(c.startswith("LHLO ") for c in rcv.commands), rcv.commands


def test_logs_clean():
    e = setup()
    e["a"].stop()
    e["b"].stop()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        teardown()
