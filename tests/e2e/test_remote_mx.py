#!/usr/bin/env python3
"""Remote delivery end to end, next hops and failures: Stork A (mail
submitted to its smtpd from 127.0.0.1) resolves through a real DNS
environment on loopback (nsd + unbound, tests/harness/dns_env.py) and
delivers to a second Stork instance and to scripted receivers on
127.0.0.x, all on one port (A's smtp_service_port).

  MX preference   the first MX refuses connections, the second (Stork B)
                  gets the message, byte for byte
  null MX         RFC 7505: bounced at once, a DSN in the sender's Maildir
  no MX           the A record is used
  4xx, then 250   deferred (storkqueue -p shows the remote reply), retried
                  after the short backoff, delivered
  5xx             a DSN in the sender's Maildir, parsed with python's email
                  package: multipart/report with Reporting-MTA,
                  Final-Recipient, Action, Status, Remote-MTA and a
                  Diagnostic-Code holding the remote reply text
"""

import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import dns_env  # noqa: E402
from remote_env import Receiver, can_bind, common_port, parse_dsn  # noqa: E402
from stork_instance import (Skip, StorkInstance, maildir_messages, read_bytes,  # noqa: E402
                            run_tests, split_added_headers, wait_until)

SENDER = "alice@virt.test"
MX1, MX2, NOMX, TEMP, PERM = "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24", "127.0.0.25"

_env = {}


def setup():
    """DNS, Stork B (the second MX of mxpref.test), the scripted
    receivers and Stork A; made once for the file."""
    if _env.get("skip"):
        raise Skip(_env["skip"])
    if _env:
        return _env
    missing = dns_env.tools_missing()
    if missing:
        _env["skip"] = "missing " + " ".join(missing)
        raise Skip(_env["skip"])
    if not can_bind(MX2):
        _env["skip"] = "cannot bind 127.0.0.x addresses"
        raise Skip(_env["skip"])
    tmp = tempfile.mkdtemp(prefix="stork-e2e-remote-mx-")
    os.chmod(tmp, 0o755)
    _env["tmp"] = tmp
    port = common_port([MX1, MX2, NOMX, TEMP, PERM])
    _env["port"] = port
    dns = dns_env.DnsEnv(tmp)
    dns.add_zone("mxpref.test", ["@ MX 10 mx1", "@ MX 20 mx2", "mx1 A " + MX1,
                                 "mx2 A " + MX2])
    dns.add_zone("nullmx.test", ["@ MX 0 .", "@ A " + NOMX])
    dns.add_zone("nomx.test", ["@ A " + NOMX])
    dns.add_zone("tempfail.test", ["@ MX 10 mx", "mx A " + TEMP])
    dns.add_zone("permfail.test", ["@ MX 10 mx", "mx A " + PERM])
    dns.start()
    _env["dns"] = dns
    _env["temp_ok"] = False

    def temp_rcpt(addr):
        if not _env["temp_ok"]:
            return "451 4.3.0 <%s>: Temporary failure (scripted-tempfail-7)" % addr
        return None

    def perm_rcpt(addr):
        return ("550 5.1.1 <%s>: Recipient address rejected: User unknown in "
                "scripted table (xyzzy-42)" % addr)

    _env["nomx"] = Receiver(NOMX, port, name="nomx.test")
    _env["temp"] = Receiver(TEMP, port, rcpt=temp_rcpt, name="mx.tempfail.test")
    _env["perm"] = Receiver(PERM, port, rcpt=perm_rcpt, name="mx.permfail.test")
    b = StorkInstance(host=MX2, port=port, myhostname="mx2.mxpref.test",
                      local_domain="b.test", virtual_domain="mxpref.test",
                      virtual_users={"bob": "x"})
    _env["b"] = b
    b.start()
    a = StorkInstance(extra_main_cf={
        "dns_servers": dns.servers,
        "dnssec_trust_anchor_file": dns.anchor_file,
        "dns_lookup_timeout": "5s",
        "smtp_service_port": port,
        "smtp_connect_timeout": "5s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s",
    })
    _env["a"] = a
    a.start()
    return _env


def teardown():
    for k in ("a", "b"):
        if k in _env:
            _env[k].cleanup()
    for k in ("nomx", "temp", "perm"):
        if k in _env:
            _env[k].stop()
    if "dns" in _env:
        _env["dns"].stop()
    if "tmp" in _env and not os.environ.get("STORK_KEEP_TMP"):
        import shutil
        shutil.rmtree(_env["tmp"], ignore_errors=True)


def message(token, to):
    wire = ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: remote %s\r\n"
            "Message-ID: <%s@virt.test>\r\n\r\nbody of %s\r\n.dot line\r\n"
            % (SENDER, to, token, token, token)).encode()
    return wire, wire.replace(b"\r\n", b"\n")


def dsns_for(a, rcpt):
    """DSNs in the sender's Maildir whose Final-Recipient is rcpt."""
    out = []
    for path in maildir_messages(a.vmaildir("alice")):
        raw = read_bytes(path)
        if ("rfc822; " + rcpt).encode() in raw:
            out.append((path, raw))
    return out


def wait_dsn(a, rcpt, timeout):
    try:
        return wait_until(lambda: dsns_for(a, rcpt), timeout, what="a DSN for " + rcpt)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, a.diagnostics()))


def test_mx_preference_second_mx_gets_it():
    e = setup()
    a, b, port = e["a"], e["b"], e["port"]
    wire, stored = message("mxpref", "bob@mxpref.test")
    a.send(SENDER, "bob@mxpref.test", wire)
    paths = b.wait_for_maildir(b.vmaildir("bob"), 1, timeout=30)
    data = read_bytes(paths[0])
    added, rest = split_added_headers(data)
    assert rest == stored, "bytes differ at B:\n%r\n%r" % (rest, stored)
    # Two Received: lines: A's smtpd, then B's.
    received = [h for h in added if h.lower().startswith(b"received:")]
    assert len(received) >= 2, added
    assert b"by mx2.mxpref.test" in received[0], received
    log = a.read_log()
    assert "connect to mx1.mxpref.test[%s]:%d: Connection refused" % (MX1, port) in log, \
        a.diagnostics()
    assert re.search(r"to=<bob@mxpref.test>, relay=mx2.mxpref.test\[%s\]:%d, .*"
                     r"dsn=2\.0\.0, status=sent \(250 " % (re.escape(MX2), port), log), \
        a.diagnostics()
    a.wait_queue_empty(20)


def test_null_mx_bounces_at_once():
    e = setup()
    a = e["a"]
    t0 = time.monotonic()
    wire, _ = message("nullmx", "x@nullmx.test")
    a.send(SENDER, "x@nullmx.test", wire)
    path, raw = wait_dsn(a, "x@nullmx.test", 20)[0]
    took = time.monotonic() - t0
    # "At once": no deferral and retry first (a retry is >= 1s away).
    log = a.read_log()
    assert not re.search(r"to=<x@nullmx.test>.*status=deferred", log), log
    assert re.search(r"to=<x@nullmx.test>.*dsn=5\.1\.10, status=bounced", log), \
        a.diagnostics()
    d = parse_dsn(raw)
    r = d["rcpts"][0]
    assert r["action"] == "failed", r
    assert r["status"] == "5.1.10", r
    assert "null MX" in r.get("diagnostic-code", "") + d["human"], d
    assert not e["nomx"].mail_commands() or all(
        "x@nullmx.test" not in c for c in e["nomx"].commands), "null MX domain contacted"
    assert took < 15, took
    a.wait_queue_empty(20)


def test_no_mx_uses_a_record():
    e = setup()
    a, rcv, port = e["a"], e["nomx"], e["port"]
    wire, _ = message("nomx", "carol@nomx.test")
    a.send(SENDER, "carol@nomx.test", wire)
    wait_until(lambda: any("carol@nomx.test" in m["rcpts"] for m in rcv.messages), 30,
               what="the message at nomx.test's A record")
    m = [m for m in rcv.messages if "carol@nomx.test" in m["rcpts"]][0]
    assert m["data"].endswith(wire), (wire, m["data"])
    assert re.search(r"to=<carol@nomx.test>, relay=nomx.test\[%s\]:%d, .*status=sent"
                     % (re.escape(NOMX), port), a.read_log()), a.diagnostics()
    a.wait_queue_empty(20)


def test_4xx_defers_then_retry_delivers():
    e = setup()
    a, rcv = e["a"], e["temp"]
    e["temp_ok"] = False
    wire, _ = message("tempfail", "dave@tempfail.test")
    a.send(SENDER, "dave@tempfail.test", wire)
    wait_until(lambda: a.log_lines(r"to=<dave@tempfail.test>.*status=deferred"), 30,
               what="the first attempt deferred")
    line = a.log_lines(r"to=<dave@tempfail.test>.*status=deferred")[0]
    assert "dsn=4.3.0" in line and "scripted-tempfail-7" in line, line
    # The queue listing names the recipient and the remote reply.
    out = wait_until(lambda: (lambda o: o if "scripted-tempfail-7" in o else None)(
        a.run("storkqueue", "-p", check=True).stdout), 15,
        what="storkqueue -p showing the deferral reason")
    assert "dave@tempfail.test" in out, out
    assert "451 4.3.0" in out, out
    # More than one attempt while it is failing: the backoff is short.
    wait_until(lambda: len([c for c in rcv.commands if "dave@tempfail.test" in c]) >= 2, 30,
               what="a retry of the deferred recipient")
    e["temp_ok"] = True
    wait_until(lambda: any("dave@tempfail.test" in m["rcpts"] for m in rcv.messages), 40,
               what="delivery after the remote accepts")
    m = [m for m in rcv.messages if "dave@tempfail.test" in m["rcpts"]][0]
    assert m["data"].endswith(wire), m["data"]
    # The agent logs once it has read the remote 250, just after the
    # receiver has recorded the message: wait for the line.
    wait_until(lambda: a.log_lines(r"to=<dave@tempfail.test>.*status=sent"), 20,
               what="the status=sent log line")
    a.wait_queue_empty(20)
    assert not dsns_for(a, "dave@tempfail.test"), "a deferral must not bounce"


def test_5xx_bounce_dsn_rfc3464():
    e = setup()
    a, rcv = e["a"], e["perm"]
    wire, _ = message("permfail", "nobody@permfail.test")
    a.send(SENDER, "nobody@permfail.test", wire)
    path, raw = wait_dsn(a, "nobody@permfail.test", 30)[0]
    assert not rcv.messages
    d = parse_dsn(raw)
    msg = d["msg"]
    added, _ = split_added_headers(raw.replace(b"\r\n", b"\n"))
    rp = [h for h in added if h.lower().startswith(b"return-path:")]
    assert rp and rp[0].strip() == b"Return-Path: <>", ("DSN not from the null sender", rp)
    assert "MAILER-DAEMON" in str(msg["From"]), msg["From"]
    assert SENDER in str(msg["To"]), msg["To"]
    assert msg["Auto-Submitted"] is None or "auto-replied" in str(msg["Auto-Submitted"]) \
        or "auto-generated" in str(msg["Auto-Submitted"])
    f = d["fields"]
    assert f.get("reporting-mta") == "dns; " + a.myhostname, f
    r = [x for x in d["rcpts"] if x.get("final-recipient") == "rfc822; nobody@permfail.test"]
    assert r, d["rcpts"]
    r = r[0]
    assert r["action"] == "failed", r
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", r["status"]) and r["status"] == "5.1.1", r
    assert r.get("remote-mta") == "dns; mx.permfail.test", r
    diag = re.sub(r"\s+", " ", r.get("diagnostic-code", ""))
    assert diag.startswith("smtp; 550 5.1.1"), diag
    assert "User unknown in scripted table (xyzzy-42)" in diag, diag
    # The human part says what happened; the third part returns the
    # original headers (RET default: full message or headers).
    assert "nobody@permfail.test" in d["human"], d["human"]
    assert len(d["parts"]) == 3 and d["parts"][2] in ("message/rfc822",
                                                       "text/rfc822-headers"), d["parts"]
    assert b"Subject: remote permfail" in raw, raw
    log = a.read_log()
    assert re.search(r"to=<nobody@permfail.test>, relay=mx.permfail.test\[.*dsn=5\.1\.1, "
                     r"status=bounced \(host mx.permfail.test\[.*said: 550 5.1.1", log), \
        a.diagnostics()
    a.wait_queue_empty(20)


def test_logs_clean():
    """Stop both instances: no panic, sanitizer report or crashed daemon."""
    e = setup()
    e["a"].stop()
    e["b"].stop()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        teardown()
