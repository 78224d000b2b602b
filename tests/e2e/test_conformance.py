#!/usr/bin/env python3
"""SMTP conformance as an outside auditor sees it: reply codes and
enhanced status codes for commands in each state (RFC 5321, 3463, 1870,
3030, 6531, 4954), HELO names that must not reshape the Received: header,
the classic open-relay battery from a client outside mynetworks, the
rarer smuggling end-of-data variants, and the set-gid sendmail dropping
its group before it runs a helper tool."""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (RawSMTP, Skip, StorkInstance, is_root, maildir_messages,  # noqa: E402
                            read_bytes, run_tests)

_st = None


def instance():
    """One instance shared by the tests of this file (started once).
    AUTH is enabled but, without TLS, not offered (smtpd_tls_auth_only)."""
    global _st
    if _st is None:
        _st = StorkInstance(extra_main_cf={"message_size_limit": 50000,
                                           "smtpd_sasl_auth_enable": "yes"},
                            virtual_users={u: "x" for u in ("alice", "bob", "victim")})
        _st.start()
    return _st


def session(ehlo="EHLO client.test", source=None):
    st = instance()
    c = RawSMTP(st.host, st.port, source_address=source)
    assert c.greeting[0] == 220, c.greeting
    if ehlo:
        code, lines = c.cmd(ehlo)
        assert code == 250, (code, lines)
    return c


def expect(c, command, code, dsn=None, text=None):
    got, lines = c.cmd(command)
    assert got == code, (command, got, lines)
    if dsn is not None:
        assert lines[-1].startswith(dsn + " "), (command, "want %s" % dsn, lines)
    if text is not None:
        assert text in lines[-1], (command, "want %r" % text, lines)
    return lines


def test_reply_codes_by_state():
    """Every command before HELO, outside and inside a transaction."""
    c = session(ehlo=None)
    expect(c, "MAIL FROM:<a@client.test>", 503, "5.5.1")
    expect(c, "RCPT TO:<alice@virt.test>", 503, "5.5.1")
    expect(c, "DATA", 503, "5.5.1")
    expect(c, "AUTH PLAIN", 503, "5.5.1")
    expect(c, "HELO", 501, "5.5.4")
    expect(c, "EHLO", 501, "5.5.4")
    expect(c, "EHLO client.test", 250)
    expect(c, "NOOP with an argument", 250, "2.0.0")
    expect(c, "RSET now", 501, "5.5.4")
    expect(c, "VRFY alice", 502, "5.5.1")
    expect(c, "EXPN staff", 502, "5.5.2")
    expect(c, "XYZZY", 502, "5.5.2")
    expect(c, "STARTTLS", 502, "5.5.1")          # no TLS configured
    lines = expect(c, "HELP", 214, "2.0.0")
    # AUTH is enabled but not offered without TLS: HELP agrees with EHLO.
    assert " AUTH" not in lines[-1], lines
    expect(c, "QUIT", 221, "2.0.0")
    c.close()
    c = session()           # a fresh error count (smtpd_hard_error_limit)
    expect(c, "MAIL FROM:<a@client.test> FOO=bar", 555, "5.5.4")
    expect(c, "MAIL FROM:<a@client.test> BODY=BINARYMIME", 555, "5.5.4")
    expect(c, "MAIL FROM:<a@client.test> SIZE=abc", 501, "5.5.4")
    expect(c, "MAIL FROM:<a@client.test> SIZE=50001", 552, "5.3.4")
    expect(c, "MAIL FROM:<a@client.test> SIZE=100", 250, "2.1.0")
    expect(c, "MAIL FROM:<a@client.test>", 503, "5.5.1")
    expect(c, "DATA", 554, "5.5.1")
    expect(c, "RCPT TO:<alice@virt.test> FOO=1", 555, "5.5.4")
    expect(c, "RCPT TO:<alice@virt.test> NOTIFY=NEVER,SUCCESS", 501, "5.5.4")
    expect(c, "RCPT TO:<nobody@virt.test>", 550, "5.1.1")
    expect(c, "RCPT TO:<alice@virt..test>", 501, "5.1.3")
    expect(c, "RCPT TO:<%s@virt.test>" % ("a" * 65), 501, "5.1.3")
    expect(c, "RCPT TO:<postmaster>", 250, "2.1.5")
    expect(c, "DATA now", 501, "5.5.4")
    expect(c, "RSET", 250, "2.0.0")
    expect(c, "QUIT", 221, "2.0.0")
    c.close()


def test_smtputf8_needs_declaring():
    """RFC 6531 3.4: a non-ASCII address in a transaction without SMTPUTF8
    is refused with 553 5.6.7, at MAIL and at RCPT alike."""
    c = session()
    c.send("MAIL FROM:<élève@client.test>\r\n".encode())
    code, lines = c.reply()
    assert (code, lines[-1][:5]) == (553, "5.6.7"), (code, lines)
    expect(c, "MAIL FROM:<a@client.test>", 250)
    c.send("RCPT TO:<élève@virt.test>\r\n".encode())
    code, lines = c.reply()
    assert (code, lines[-1][:5]) == (553, "5.6.7"), (code, lines)
    expect(c, "RSET", 250)
    expect(c, "MAIL FROM:<a@client.test> SMTPUTF8", 250)
    c.send("RCPT TO:<élève@virt.test>\r\n".encode())
    code, lines = c.reply()
    assert (code, lines[-1][:5]) == (550, "5.1.1"), (code, lines)
    expect(c, "QUIT", 221)
    c.close()


def test_quoted_local_part_in_reply():
    """A rejected quoted local part is echoed in its quoted form."""
    c = session()
    expect(c, "MAIL FROM:<>", 250)
    expect(c, 'RCPT TO:<"john doe"@virt.test>', 550, "5.1.1", '<"john doe"@virt.test>:')
    expect(c, "QUIT", 221)
    c.close()


def test_bdat_rules():
    """RFC 3030: DATA after BDAT is refused, BDAT 0 LAST ends a message,
    a BDAT without a usable size ends the session."""
    st = instance()
    c = session()
    before = len(maildir_messages(st.vmaildir("bob")))
    c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<bob@virt.test>\r\n"
           b"BDAT 21\r\nSubject: bdat rules\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    expect(c, "DATA", 503, "5.5.1")
    code, lines = c.cmd("BDAT 0 LAST")
    assert code == 250 and lines[-1].startswith("2.0.0"), (code, lines)
    c.send(b"BDAT 5 LAST junk\r\n")
    code, lines = c.reply()
    assert (code, lines[-1][:5]) == (501, "5.5.4"), (code, lines)
    assert c.replies_until_close(limit=2) == []
    c.close()
    st.wait_for_maildir(st.vmaildir("bob"), before + 1)


def test_helo_cannot_reshape_received():
    """The HELO name goes into Received: with Postfix's neutering: no
    space, parenthesis, angle bracket, quote, backslash, ';' or '@' survives
    (they would let a client forge "from HOST (NAME [ADDR])" hops), and a
    long name is cut so the header line stays under 998 characters."""
    st = instance()
    helos = ["EHLO mail.example.com (mail.example.com [192.0.2.1]) by x;@\"\\",
             "EHLO " + "h" * 1500]
    for i, helo in enumerate(helos):
        before = len(maildir_messages(st.vmaildir("alice")))
        c = session(ehlo=helo)
        c.send(b"MAIL FROM:<h@client.test>\r\nRCPT TO:<nobody@virt.test>\r\n"
               b"RCPT TO:<alice@virt.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(4)] == [250, 550, 250, 354]
        code, lines = c.cmd("Subject: helo %d\r\n\r\nbody\r\n." % i)
        assert code == 250, (code, lines)
        c.cmd("QUIT")
        c.close()
        st.wait_for_maildir(st.vmaildir("alice"), before + 1)
        msg = [read_bytes(m) for m in maildir_messages(st.vmaildir("alice"))
               if b"Subject: helo %d" % i in read_bytes(m)]
        assert len(msg) == 1, msg
        received = [l for l in msg[0].split(b"\n") if l.startswith(b"Received: from ")]
        assert len(received) == 1, msg[0]
        line = received[0].rstrip(b"\r")
        assert len(line) < 998, len(line)
        m = re.match(rb"Received: from (\S+) \(unknown \[127\.0\.0\.1\]\)$", line)
        assert m, line
        assert not re.search(rb"[ ()<>\\\";@]", m.group(1)), line
    # The reject log line shows the neutered name too.
    assert "helo=<mail.example.com??mail.example.com?[192.0.2.1]??by?x????>" in st.read_log()


def test_no_open_relay():
    """The classic relay battery from a client outside mynetworks: every
    remote destination, however spelled, is refused (554 5.7.1) or is an
    unknown local user (550 5.1.1), or a syntax error (501); nothing is
    accepted except the local postmaster."""
    st = instance()
    tricks = ["<user@remote.example>", "<USER@REMOTE.EXAMPLE>", "<user@remote.example.>",
              "<user%remote.example@stork.test>", "<remote.example!user@stork.test>",
              '<"user@remote.example"@stork.test>', "<user@remote.example@stork.test>",
              "<@stork.test:user@remote.example>", "<@[127.0.0.1]:user@remote.example>",
              "<user%remote.example@[127.0.0.1]>", "<remote.example!user@[127.0.0.1]>",
              '<"user@remote.example"@[127.0.0.1]>', "<user@[192.0.2.1]>",
              "<user@[IPv6:2001:db8::1]>", "<user@mx.stork.test.remote.example>",
              '<"user%remote.example"@stork.test>', "<user\\@remote.example@stork.test>"]
    c = session(source="127.0.0.2")
    expect(c, "MAIL FROM:<spam@spammer.example>", 250)
    for n, rcpt in enumerate(tricks):
        if n and n % 8 == 0:        # stay below smtpd_hard_error_limit
            c.cmd("QUIT")
            c.close()
            c = session(source="127.0.0.2")
            expect(c, "MAIL FROM:<spam@spammer.example>", 250)
        code, lines = c.cmd("RCPT TO:" + rcpt)
        assert code in (501, 550, 554), (rcpt, code, lines)
        if code == 554:
            assert lines[-1].startswith("5.7.1"), (rcpt, lines)
    expect(c, "RCPT TO:<postmaster@[127.0.0.1]>", 250)
    expect(c, "QUIT", 221)
    c.close()
    # Nothing from this client reached the queue (qmgr logs "from=<>, size=").
    assert "from=<spam@spammer.example>, size=" not in st.read_log()


RARE_EODS = [b"\r.\r", b"\r\n.\r\r\n", b"\n.\r\r\n", b"\r\n.\x00\r\n"]


def test_rare_smuggling_variants():
    """Variants beyond test_smtp's list (bare CR ends, NUL after the dot):
    the smuggled transaction never runs."""
    st = instance()
    for i, eod in enumerate(RARE_EODS):
        c = session()
        c.send(b"MAIL FROM:<outer@client.test>\r\nRCPT TO:<alice@virt.test>\r\nDATA\r\n"
               b"Subject: rare %d\r\n\r\nbody" % i + eod +
               b"MAIL FROM:<smuggled@client.test>\r\nRCPT TO:<victim@virt.test>\r\n"
               b"DATA\r\nsmuggled\r\n.\r\nQUIT\r\n")
        codes = [r[0] for r in c.replies_until_close(limit=12)]
        c.close()
        assert codes.count(354) <= 1, (eod, codes)
    st.send("marker@client.test", st.vaddr("victim"), b"Subject: marker\r\n\r\nm\r\n")
    st.wait_for_maildir(st.vmaildir("victim"), 1)
    st.wait_queue_empty()
    victim = [read_bytes(m) for m in maildir_messages(st.vmaildir("victim"))]
    assert len(victim) == 1 and b"smuggled" not in victim[0], victim
    assert "from=<smuggled@client.test>" not in st.read_log()


def test_setgid_sendmail_drops_group_for_tools():
    """sendmail -bi (newaliases) runs storkmap: a set-gid sendmail must
    not hand its group to it. Simulated as root: real gid 0, effective and
    saved gid storkdrop, the way a set-gid binary starts; a fake storkmap
    next to the sendmail copy records the ids it got."""
    if not is_root():
        raise Skip("needs root")
    try:
        import grp
        drop_gid = grp.getgrnam("storkdrop").gr_gid
    except KeyError:
        raise Skip("group storkdrop missing (run tools/deps.sh)")
    st = instance()
    d = tempfile.mkdtemp(prefix="stork-sgid-")
    try:
        os.chmod(d, 0o755)
        shutil.copy(st.command("sendmail"), os.path.join(d, "sendmail"))
        out = os.path.join(d, "ids")
        fake = os.path.join(d, "storkmap")
        # Python, not sh: dash and bash reset a differing effective gid
        # themselves and would hide the bug.
        with open(fake, "w") as f:
            f.write("#!%s\nimport os\nopen(%r, 'w').write('%%d %%d' %% (os.getegid(), "
                    "os.getgid()))\n" % (sys.executable, out))
        os.chmod(fake, 0o755)

        def as_setgid():
            os.setresgid(0, drop_gid, drop_gid)

        r = subprocess.run([os.path.join(d, "sendmail"), "-c", st.config_dir, "-bi"],
                           preexec_fn=as_setgid, capture_output=True, text=True,
                           timeout=30, env=st.env())
        assert os.path.exists(out), (r.returncode, r.stdout, r.stderr)
        egid, rgid = open(out).read().split()
        assert egid == rgid == "0", "storkmap ran with egid %s rgid %s" % (egid, rgid)
        assert stat.S_IMODE(os.stat(fake).st_mode) == 0o755
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_zz_stop():
    """(last) stop the shared instance; checks the logs are clean."""
    global _st
    if _st is not None:
        st, _st = _st, None
        try:
            st.stop()
        finally:
            st.cleanup()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        if _st is not None:
            _st.cleanup()
