#!/usr/bin/env python3
"""SMTP protocol end to end against smtpd: EHLO keywords, unknown
recipients at RCPT, SIZE at MAIL and at DATA, PIPELINING, BDAT, and SMTP
smuggling payloads (bare LF / bare CR end-of-data variants) that must never
create a second message."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (RawSMTP, StorkInstance, maildir_messages, read_bytes,  # noqa: E402
                            run_tests, split_added_headers)

SIZE_LIMIT = 20000
RCPT_LIMIT = 5
LIMIT_USERS = tuple("r%d" % i for i in range(RCPT_LIMIT + 1))

_st = None


def instance():
    """One instance shared by the tests of this file (started once)."""
    global _st
    if _st is None:
        _st = StorkInstance(extra_main_cf={"message_size_limit": SIZE_LIMIT,
                                           "smtpd_recipient_limit": RCPT_LIMIT},
                            virtual_users={u: "x" for u in ("alice", "bob", "victim", "carol")
                                           + LIMIT_USERS})
        _st.start()
    return _st


def session(ehlo=True):
    st = instance()
    c = RawSMTP(st.host, st.port)
    assert c.greeting[0] == 220, c.greeting
    if ehlo:
        code, lines = c.cmd("EHLO client.test")
        assert code == 250, (code, lines)
    return c


def test_ehlo_keywords():
    c = session(ehlo=False)
    code, lines = c.cmd("EHLO client.test")
    assert code == 250
    kw = {l.split()[0].upper() for l in lines[1:] if l}
    for need in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"):
        assert need in kw, "EHLO does not advertise %s: %s" % (need, lines)
    size = [l for l in lines if l.upper().startswith("SIZE")][0]
    assert size.split()[1:] == [str(SIZE_LIMIT)], size
    code, lines = c.cmd("HELO client.test")
    assert code == 250, (code, lines)
    code, lines = c.cmd("NOOP")
    assert code == 250 and lines[0].startswith("2.0.0"), lines
    code, lines = c.cmd("VRFY alice@virt.test")
    assert code in (252, 502), ("VRFY is off by default", code, lines)
    code, lines = c.cmd("HELP")
    assert 200 <= code < 300, (code, lines)
    code, lines = c.cmd("XYZZY")
    assert code == 502 and lines[0].startswith("5.5."), (code, lines)
    code, lines = c.cmd("QUIT")
    assert code == 221, (code, lines)


def test_unknown_recipient_550_at_rcpt():
    c = session()
    assert c.cmd("MAIL FROM:<s@client.test>")[0] == 250
    for rcpt in ("nobody-here@virt.test", "no-such-user-xyz@stork.test",
                 "no-such-user-xyz@localhost", "no-such-user-xyz@mx.stork.test"):
        code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
        assert code == 550 and lines[0].startswith("5.1.1"), (rcpt, code, lines)
    code, lines = c.cmd("RCPT TO:<alice@virt.test>")
    assert code == 250 and lines[0].startswith("2.1.5"), (code, lines)
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()


def test_size_refused_at_mail():
    c = session()
    code, lines = c.cmd("MAIL FROM:<s@client.test> SIZE=%d" % (SIZE_LIMIT + 1))
    assert code == 552 and lines[0].startswith("5.3.4"), (code, lines)
    code, lines = c.cmd("MAIL FROM:<s@client.test> SIZE=%d" % (SIZE_LIMIT // 2))
    assert code == 250, (code, lines)
    c.cmd("QUIT")
    c.close()


def test_size_refused_at_data():
    st = instance()
    before = len(maildir_messages(st.vmaildir("carol")))
    c = session()
    assert c.cmd("MAIL FROM:<s@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<carol@virt.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    line = b"x" * 998 + b"\r\n"
    c.send(b"Subject: too big\r\n\r\n" + line * (SIZE_LIMIT // 1000 + 5) + b".\r\n")
    code, lines = c.reply()
    assert code == 552 and lines[0].startswith("5.3.4"), (code, lines)
    # The session is still usable and the next message goes through.
    assert c.cmd("MAIL FROM:<s@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<carol@virt.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: small\r\n\r\nfits\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    msgs = st.wait_for_maildir(st.vmaildir("carol"), before + 1)
    time.sleep(0.5)
    msgs = maildir_messages(st.vmaildir("carol"))
    assert len(msgs) == before + 1, "the oversized message was delivered"
    assert any(b"Subject: small" in read_bytes(m) for m in msgs)
    assert not any(b"Subject: too big" in read_bytes(m) for m in msgs)


def test_pipelining_one_write():
    """All commands of two transactions in one write; every reply in order."""
    st = instance()
    before = len(maildir_messages(st.vmaildir("bob")))
    c = session()
    c.send(b"MAIL FROM:<p1@client.test>\r\n"
           b"RCPT TO:<bob@virt.test>\r\n"
           b"RCPT TO:<unknown-pipe@virt.test>\r\n"
           b"DATA\r\n"
           b"Subject: pipelined 1\r\n\r\nbody one\r\n.\r\n"
           b"MAIL FROM:<p2@client.test>\r\n"
           b"RCPT TO:<bob@virt.test>\r\n"
           b"DATA\r\n"
           b"Subject: pipelined 2\r\n\r\nbody two\r\n.\r\n"
           b"QUIT\r\n")
    codes = [c.reply()[0] for _ in range(10)]
    assert codes == [250, 250, 550, 354, 250, 250, 250, 354, 250, 221], codes
    c.close()
    msgs = st.wait_for_maildir(st.vmaildir("bob"), before + 2)
    bodies = b"".join(read_bytes(m) for m in msgs)
    assert b"\nbody one\n" in bodies and b"\nbody two\n" in bodies


def test_bdat():
    """CHUNKING (RFC 3030): BDAT chunks are taken verbatim (no dot
    handling); BDAT LAST ends the message."""
    st = instance()
    before = len(maildir_messages(st.vmaildir("alice")))
    c = session()
    assert c.cmd("MAIL FROM:<bdat@client.test> BODY=8BITMIME")[0] == 250
    assert c.cmd("RCPT TO:<alice@virt.test>")[0] == 250
    chunk1 = b"Subject: bdat\r\nMessage-ID: <bdat-1@client.test>\r\n\r\n.not stuffed\r\n"
    chunk2 = b"..two dots stay\r\n\xc3\xa9 8bit\r\nend\r\n"
    c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
    code, lines = c.reply()
    assert code == 250, (code, lines)
    c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
    code, lines = c.reply()
    assert code == 250, (code, lines)
    # Pipelined BDAT with a zero-length LAST chunk
    assert c.cmd("MAIL FROM:<bdat@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@virt.test>")[0] == 250
    chunk = b"Subject: bdat 2\r\n\r\nsecond\r\n"
    c.send(b"BDAT %d\r\n" % len(chunk) + chunk + b"BDAT 0 LAST\r\n")
    assert [c.reply()[0], c.reply()[0]] == [250, 250]
    c.cmd("QUIT")
    c.close()
    msgs = st.wait_for_maildir(st.vmaildir("alice"), before + 2)
    found = [read_bytes(m) for m in msgs if b"<bdat-1@client.test>" in read_bytes(m)]
    assert len(found) == 1, "BDAT message not delivered once"
    _, rest = split_added_headers(found[0])
    assert rest == (chunk1 + chunk2).replace(b"\r\n", b"\n"), rest


SMUGGLING_EODS = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\n..\n.\n"]


def test_smuggling_never_creates_a_second_message():
    """Classic SMTP smuggling: a fake end-of-data followed by a second
    transaction inside the first message's DATA. The server may reject the
    message (bare LF/CR forbidden) or keep it as one message, but the
    smuggled transaction must never happen."""
    st = instance()
    for i, eod in enumerate(SMUGGLING_EODS):
        c = session()
        payload = (b"MAIL FROM:<outer@client.test>\r\n"
                   b"RCPT TO:<alice@virt.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: outer %d\r\n\r\nouter body" % i + eod +
                   b"MAIL FROM:<smuggled@client.test>\r\n"
                   b"RCPT TO:<victim@virt.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: smuggled %d\r\n\r\nsmuggled body\r\n.\r\n"
                   b"QUIT\r\n" % i)
        c.send(payload)
        replies = c.replies_until_close(limit=12)
        c.close()
        codes = [r[0] for r in replies]
        # After MAIL, RCPT, DATA (354): one reply for the whole data, then
        # at most replies to nothing: the server must not say 354 twice.
        assert codes.count(354) <= 1, (eod, codes)
    # Push one ordinary message through and wait for it, so anything the
    # smuggling attempts queued has been delivered too.
    st.send("marker@client.test", st.vaddr("victim"), b"Subject: marker\r\n\r\nm\r\n")
    st.wait_for_maildir(st.vmaildir("victim"), 1)
    st.wait_queue_empty()
    victim = [read_bytes(m) for m in maildir_messages(st.vmaildir("victim"))]
    smuggled = [m for m in victim if b"smuggled" in m]
    assert not smuggled, "a smuggled message was delivered:\n%r" % smuggled
    assert len(victim) == 1, victim
    log = st.read_log()
    assert "from=<smuggled@client.test>" not in log, "smuggled MAIL FROM was executed"
    outer = [read_bytes(m) for m in maildir_messages(st.vmaildir("alice"))
             if re.search(rb"Subject: outer \d", read_bytes(m))]
    for m in outer:
        # if accepted at all, the whole payload is one message's body
        assert b"smuggled body" in m, m


def test_line_length_and_errors():
    """Overlong command lines are refused (500 5.5.2 or similar) and the
    server stays up."""
    c = session()
    c.send(b"NOOP " + b"x" * 5000 + b"\r\n")
    code, lines = c.reply()
    assert 500 <= code < 600, (code, lines)
    c.close()
    c = session()
    assert c.cmd("NOOP")[0] == 250
    c.cmd("QUIT")
    c.close()


def test_recipient_limit():
    """More than smtpd_recipient_limit recipients: 452 4.5.3 (the client
    sends the rest later). (A repeated recipient is stored once and does
    not count.)"""
    c = session()
    assert c.cmd("MAIL FROM:<many@client.test>")[0] == 250
    for u in LIMIT_USERS[:RCPT_LIMIT]:
        assert c.cmd("RCPT TO:<%s@virt.test>" % u)[0] == 250
    code, lines = c.cmd("RCPT TO:<%s@virt.test>" % LIMIT_USERS[RCPT_LIMIT])
    assert code == 452 and lines[0].startswith("4.5.3"), (code, lines)
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()


def test_error_limit_disconnects():
    """A client that keeps sending errors is disconnected with 421 after
    smtpd_hard_error_limit (default 20) errors."""
    c = session()
    c.send(b"XYZZY\r\n" * 40)
    replies = c.replies_until_close(limit=45)
    c.close()
    codes = [r[0] for r in replies]
    assert codes and codes[-1] == 421, codes
    assert len(codes) <= 21, "not disconnected after 20 errors: %d replies" % len(codes)
    assert all(c == 502 for c in codes[:-1]), codes


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
