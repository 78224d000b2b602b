#!/usr/bin/env python3
"""Remote delivery over TLS end to end: Stork A delivers through a real
DNS environment on loopback (nsd + unbound with a DNSSEC-signed test
tree, tests/harness/dns_env.py) to Stork B instances and scripted TLS
receivers on 127.0.0.x, with certificates made at test time.
A's per-destination levels come from smtp_tls_policy_maps (a hash table
built with storkmap); the default level is Stork's "may".

  may      Stork B with a self-signed certificate: delivered over TLS,
           A logs "Untrusted TLS connection established", B's Received:
           says ESMTPS
  encrypt  a receiver without STARTTLS: deferred, no MAIL sent in clear
  verify   Stork B with a certificate from the test CA for
           mx.verify.test: delivered, "Verified TLS connection"; the same
           server under another MX name: deferred, no MAIL
  dane     signed zone with TLSA 3 1 1 for the server's key (a self-signed
           certificate, so no CA can vouch for it): delivered, "Verified";
           a TLSA record for another key (the server's certificate is
           CA-signed with the right name): deferred (never plaintext, no
           CA fallback), the failure logged
"""

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import dns_env  # noqa: E402
from remote_env import (Receiver, can_bind, common_port, make_certs,  # noqa: E402
                        server_context)
from stork_instance import (Skip, StorkInstance, read_bytes, run_tests,  # noqa: E402
                            split_added_headers, wait_until)

SENDER = "alice@virt.test"
MAY_B, NOTLS, VERIFY_B, DANE, DANEBAD, INSECURE = (
    "127.0.0.26", "127.0.0.27", "127.0.0.28", "127.0.0.29", "127.0.0.30", "127.0.0.31")

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
    if not can_bind(MAY_B):
        _env["skip"] = "cannot bind 127.0.0.x addresses"
        raise Skip(_env["skip"])
    tmp = tempfile.mkdtemp(prefix="stork-e2e-remote-tls-")
    os.chmod(tmp, 0o755)
    _env["tmp"] = tmp
    certs = make_certs(os.path.join(tmp, "certs"), ["mx.verify.test", "mx.dane.test",
                                                    "mx.danebad.test"])
    _env["certs"] = certs
    port = common_port([MAY_B, NOTLS, VERIFY_B, DANE, DANEBAD, INSECURE])
    _env["port"] = port
    # dane.test's server has the self-signed certificate: only its TLSA
    # record can verify it. danebad.test's has the CA-signed one with the
    # right name, but its TLSA record names another key: a client that
    # fell back to CA trust would wrongly accept it.
    good = dns_env.tlsa_3_1_1(certs["self"][0])
    wrong = dns_env.tlsa_3_1_1(certs["other"][0])
    dns = dns_env.DnsEnv(tmp)
    dns.add_zone("may.test", ["@ A " + MAY_B])
    dns.add_zone("notls.test", ["@ MX 10 mx", "mx A " + NOTLS])
    dns.add_zone("verify.test", ["@ MX 10 mx", "mx A " + VERIFY_B])
    dns.add_zone("wrongname.test", ["@ MX 10 mx", "mx A " + VERIFY_B])
    dns.add_zone("dane.test", ["@ MX 10 mx", "mx A " + DANE,
                               "_%d._tcp.mx TLSA 3 1 1 %s" % (port, good)], signed=True)
    dns.add_zone("danebad.test", ["@ MX 10 mx", "mx A " + DANEBAD,
                                  "_%d._tcp.mx TLSA 3 1 1 %s" % (port, wrong)], signed=True)
    # Unsigned: its (mismatching) TLSA record must not count.
    dns.add_zone("insecure.test", ["@ MX 10 mx", "mx A " + INSECURE,
                                   "_%d._tcp.mx TLSA 3 1 1 %s" % (port, wrong)])
    dns.start()
    _env["dns"] = dns
    _env["notls"] = Receiver(NOTLS, port, name="mx.notls.test")
    _env["dane"] = Receiver(DANE, port, tls=server_context(certs["self"]), name="mx.dane.test")
    _env["danebad"] = Receiver(DANEBAD, port, tls=server_context(certs["leaf"]),
                               name="mx.danebad.test")
    _env["insecure"] = Receiver(INSECURE, port, tls=server_context(certs["self"]),
                                name="mx.insecure.test")
    bm = StorkInstance(host=MAY_B, port=port, myhostname="mx.may.test", local_domain="bm.test",
                       virtual_domain="may.test", virtual_users={"bob": "x"},
                       extra_main_cf={"smtpd_tls_security_level": "may",
                                      "smtpd_tls_cert_file": certs["self"][0],
                                      "smtpd_tls_key_file": certs["self"][1],
                                      "smtpd_tls_received_header": "yes",
                                      "smtpd_tls_loglevel": 1})
    _env["bm"] = bm
    bm.start()
    bv = StorkInstance(host=VERIFY_B, port=port, myhostname="mx.verify.test",
                       local_domain="bv.test", virtual_domain="verify.test",
                       virtual_users={"carol": "x"},
                       extra_main_cf={"smtpd_tls_security_level": "may",
                                      "smtpd_tls_cert_file": certs["leaf"][0],
                                      "smtpd_tls_key_file": certs["leaf"][1]})
    _env["bv"] = bv
    bv.start()
    a = StorkInstance(extra_main_cf={
        "dns_servers": dns.servers,
        "dnssec_trust_anchor_file": dns.anchor_file,
        "dns_lookup_timeout": "5s",
        "smtp_service_port": port,
        "smtp_connect_timeout": "5s",
        "smtp_tls_CAfile": certs["ca"],
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s",
    })
    policy = os.path.join(a.config_dir, "tls_policy")
    with open(policy, "w") as f:
        f.write("notls.test encrypt\nverify.test verify\nwrongname.test verify\n"
                "dane.test dane\ndanebad.test dane\ninsecure.test dane\n")
    a.storkmap("hash:" + policy)
    a.extra_main_cf["smtp_tls_policy_maps"] = "hash:" + policy
    a.write_main_cf()
    _env["a"] = a
    a.start()
    return _env


def teardown():
    for k in ("a", "bm", "bv"):
        if k in _env:
            _env[k].cleanup()
    for k in ("notls", "dane", "danebad", "insecure"):
        if k in _env:
            _env[k].stop()
    if "dns" in _env:
        _env["dns"].stop()
    if "tmp" in _env and not os.environ.get("STORK_KEEP_TMP"):
        shutil.rmtree(_env["tmp"], ignore_errors=True)


def message(token, to):
    wire = ("From: <%s>\r\nTo: <%s>\r\nSubject: tls %s\r\nMessage-ID: <%s@virt.test>\r\n"
            "\r\nbody of %s\r\n" % (SENDER, to, token, token, token)).encode()
    return wire, wire.replace(b"\r\n", b"\n")


def status_line(a, rcpt, status, timeout=30):
    """A's delivery log line for rcpt with status (waits for it)."""
    rx = r"to=<%s>, .*status=%s " % (re.escape(rcpt), status)
    try:
        return wait_until(lambda: a.log_lines(rx), timeout,
                          what="status=%s for %s" % (status, rcpt))[0]
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, a.diagnostics()))


def b_transactions(b):
    """MAIL FROM transactions B's smtpd logged (each gets 'client=')."""
    return b.log_lines(r"smtpd\[\d+\]: [0-9A-Z]+: client=")


def test_may_self_signed():
    e = setup()
    a, b, port = e["a"], e["bm"], e["port"]
    wire, stored = message("may", "bob@may.test")
    a.send(SENDER, "bob@may.test", wire)
    paths = b.wait_for_maildir(b.vmaildir("bob"), 1, timeout=30)
    added, rest = split_added_headers(read_bytes(paths[0]))
    assert rest == stored, (rest, stored)
    received = [h for h in added if h.lower().startswith(b"received:")][0]
    assert b"with ESMTPS" in received, received
    line = status_line(a, "bob@may.test", "sent")
    assert "relay=may.test[%s]:%d" % (MAY_B, port) in line, line
    assert a.log_lines(r"Untrusted TLS connection established to may.test\[%s\]:%d: TLSv1\.[23] "
                       r"with cipher" % (re.escape(MAY_B), port)), a.diagnostics()
    assert b.log_lines(r"TLS connection established from"), b.diagnostics()


def test_encrypt_without_starttls_defers():
    e = setup()
    a, rcv = e["a"], e["notls"]
    wire, _ = message("encrypt", "dan@notls.test")
    a.send(SENDER, "dan@notls.test", wire)
    line = status_line(a, "dan@notls.test", "deferred")
    assert "TLS is required, but was not offered by host mx.notls.test[%s]" % NOTLS in line, line
    time.sleep(0.5)
    assert rcv.connections >= 1, "the receiver was never contacted"
    assert not rcv.mail_commands() and not rcv.messages, ("sent in clear", rcv.commands)
    # The listing shows the reason while the message waits in deferred/
    # (with the short backoff it is in active/ part of the time).
    out = wait_until(lambda: (lambda o: o if "TLS is required" in o else None)(
        a.run("storkqueue", "-p", check=True).stdout), 15,
        what="storkqueue -p showing the deferral reason")
    assert "dan@notls.test" in out, out


def test_verify_right_name_delivers():
    e = setup()
    a, b, port = e["a"], e["bv"], e["port"]
    wire, stored = message("verify", "carol@verify.test")
    a.send(SENDER, "carol@verify.test", wire)
    paths = b.wait_for_maildir(b.vmaildir("carol"), 1, timeout=30)
    added, rest = split_added_headers(read_bytes(paths[0]))
    assert rest == stored, (rest, stored)
    status_line(a, "carol@verify.test", "sent")
    assert a.log_lines(r"Verified TLS connection established to mx.verify.test\[%s\]:%d"
                       % (re.escape(VERIFY_B), port)), a.diagnostics()


def test_verify_wrong_name_defers():
    e = setup()
    a, b = e["a"], e["bv"]
    before = len(b_transactions(b))
    wire, _ = message("wrongname", "carol@wrongname.test")
    a.send(SENDER, "carol@wrongname.test", wire)
    line = status_line(a, "carol@wrongname.test", "deferred")
    assert "mx.wrongname.test" in line, line
    assert re.search(r"dsn=4\.7\.\d", line), line
    time.sleep(0.5)
    assert len(b_transactions(b)) == before, ("a MAIL reached B after a failed verify",
                                              b.read_log())
    assert not b.log_lines(r"wrongname\.test"), b.read_log()
    assert not a.log_lines(r"Verified TLS connection established to mx\.wrongname\.test")


def test_dane_match_delivers():
    e = setup()
    a, rcv, port = e["a"], e["dane"], e["port"]
    wire, _ = message("dane", "erin@dane.test")
    a.send(SENDER, "erin@dane.test", wire)
    line = status_line(a, "erin@dane.test", "sent")
    assert "relay=mx.dane.test[%s]:%d" % (DANE, port) in line, line
    m = [m for m in rcv.messages if "erin@dane.test" in m["rcpts"]]
    assert m and m[0]["tls"] and m[0]["data"].endswith(wire), rcv.messages
    assert a.log_lines(r"Verified TLS connection established to mx\.dane\.test\[%s\]:%d"
                       % (re.escape(DANE), port)), a.diagnostics()


def test_dane_mismatch_defers():
    e = setup()
    a, rcv = e["a"], e["danebad"]
    wire, _ = message("danebad", "fay@danebad.test")
    a.send(SENDER, "fay@danebad.test", wire)
    line = status_line(a, "fay@danebad.test", "deferred")
    assert "relay=mx.danebad.test" in line and re.search(r"dsn=4\.7\.\d", line), line
    assert "no matching DANE TLSA records" in line, line
    # Retried (the backoff is short), never sent in the clear.
    wait_until(lambda: rcv.connections >= 2, 20, what="a second attempt")
    assert not rcv.mail_commands() and not rcv.messages, rcv.commands
    assert "STARTTLS" in rcv.commands, rcv.commands
    assert not a.log_lines(r"Verified TLS connection established to mx\.danebad\.test")


def test_dane_unsigned_tlsa_ignored():
    """RFC 7672: only DNSSEC-authenticated TLSA records count. In an
    unsigned zone the dane level is opportunistic TLS: delivered,
    encrypted, not "Verified", although the TLSA record mismatches."""
    e = setup()
    a, rcv, port = e["a"], e["insecure"], e["port"]
    wire, _ = message("insecure", "gus@insecure.test")
    a.send(SENDER, "gus@insecure.test", wire)
    status_line(a, "gus@insecure.test", "sent")
    m = [m for m in rcv.messages if "gus@insecure.test" in m["rcpts"]]
    assert m and m[0]["tls"], rcv.messages
    assert a.log_lines(r"(Untrusted|Anonymous) TLS connection established to "
                       r"mx\.insecure\.test\[%s\]:%d" % (re.escape(INSECURE), port)), \
        a.diagnostics()


def test_logs_clean():
    e = setup()
    for k in ("a", "bm", "bv"):
        e[k].stop()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        teardown()
