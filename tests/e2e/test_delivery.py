#!/usr/bin/env python3
"""Delivery end to end: a message sent over SMTP lands in the right Maildir
byte for byte (dot-stuffing undone, 8-bit body intact, CRLF -> LF), with
Return-Path:, Delivered-To: and Received: added, and the log has Postfix's
line shapes. Virtual users always; a system user (useradd) as root."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (StorkInstance, TempUser, Skip, maildir_messages, read_bytes,  # noqa: E402
                            require_root, run_tests, split_added_headers)


def tricky_message(token):
    """A message whose body exercises dot-stuffing and 8-bit bytes. As sent
    (CRLF line ends) and as it must be stored (LF)."""
    lines = [
        b"From: Sender <sender@client.test>",
        b"To: someone",
        b"Subject: delivery test " + token,
        b"Date: Sun, 22 Nov 2026 09:00:00 +0000",
        b"Message-ID: <" + token + b"@client.test>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 8-bit body",
        b".",
        b"..",
        b".leading dot",
        b"...three",
        b" . space dot",
        b"\xff\xfe raw high bytes",
        b"trailing spaces   ",
        b"tab\there",
        b"",
        b"last line",
    ]
    wire = b"\r\n".join(lines) + b"\r\n"
    stored = b"\n".join(lines) + b"\n"
    return wire, stored


def check_stored(path, expect, rcpt, sender):
    data = read_bytes(path)
    assert b"\r" not in data, "CR left in the Maildir file %s" % path
    added, rest = split_added_headers(data)
    names = [h.split(b":", 1)[0].lower() for h in added]
    assert rest == expect, ("stored body differs from what was sent\n--- stored:\n%r\n--- expected:\n%r"
                            % (rest, expect))
    assert b"return-path" in names, "no Return-Path: in %r" % added
    assert b"delivered-to" in names, "no Delivered-To: in %r" % added
    assert b"received" in names, "no Received: in %r" % added
    assert names[0] == b"return-path", "Return-Path: must come first: %r" % added
    rp = [h for h in added if h.lower().startswith(b"return-path:")][0]
    assert rp.strip() == b"Return-Path: <" + sender.encode() + b">", rp
    dt = [h for h in added if h.lower().startswith(b"delivered-to:")][0]
    assert dt.strip().lower() == b"delivered-to: " + rcpt.lower().encode(), dt
    rcv = [h for h in added if h.lower().startswith(b"received:")][0]
    assert b"client.test" in rcv and b"127.0.0.1" in rcv, rcv
    return data


def test_virtual_user_byte_for_byte():
    with StorkInstance() as st:
        st.start()
        wire, stored = tricky_message(b"virt-1")
        rcpt = st.vaddr("alice")
        code, _ = st.send("sender@client.test", rcpt, wire, mail_options=["BODY=8BITMIME"])
        assert code == 250
        msgs = st.wait_for_maildir(st.vmaildir("alice"), 1)
        assert len(msgs) == 1, msgs
        check_stored(msgs[0], stored, rcpt, "sender@client.test")
        name = os.path.basename(msgs[0])
        assert re.match(r"^\d+\.", name), "not a Maildir unique name: %s" % name
        assert maildir_messages(st.vmaildir("bob")) == []
        if st.root_mode:
            import pwd
            vm = pwd.getpwnam("vmail")
            stt = os.stat(msgs[0])
            assert (stt.st_uid, stt.st_gid) == (vm.pw_uid, vm.pw_gid), \
                "virtual mail owned by %d:%d, not vmail" % (stt.st_uid, stt.st_gid)
        st.wait_queue_empty()
        assert st.queue_files()["corrupt"] == []


def test_postfix_log_lines():
    """The log lines pflogsumm-style tools read, for one delivery."""
    with StorkInstance() as st:
        st.start()
        rcpt = st.vaddr("bob")
        st.send("log@client.test", rcpt,
                b"Message-ID: <log-token-1@client.test>\r\nSubject: log\r\n\r\nhi\r\n")
        st.wait_for_maildir(st.vmaildir("bob"), 1)
        st.wait_queue_empty()
        log = st.read_log()
        m = re.search(r"\b([0-9A-V]{16}): client=\S*\[127\.0\.0\.1\]", log)
        assert m, "no 'QID: client=...[127.0.0.1]' line\n" + log
        qid = m.group(1)
        for pat in (r"%s: message-id=<log-token-1@client\.test>" % qid,
                    r"%s: from=<log@client\.test>, size=\d+, nrcpt=1 \(queue active\)" % qid,
                    r"%s: to=<%s>, relay=\S+, delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, "
                    r"dsn=2\.0\.0, status=sent \(" % (qid, re.escape(rcpt)),
                    r"%s: removed" % qid):
            assert re.search(pat, log), "no log line matching %s\n%s" % (pat, log)


def test_system_user_byte_for_byte():
    require_root()
    with StorkInstance() as st, TempUser(st.dir) as user:
        st.start()
        wire, stored = tricky_message(b"sys-1")
        rcpt = "%s@%s" % (user.name, st.local_domain)
        code, _ = st.send("sender@client.test", rcpt, wire, mail_options=["BODY=8BITMIME"])
        assert code == 250
        msgs = st.wait_for_maildir(user.maildir, 1)
        assert len(msgs) == 1, msgs
        check_stored(msgs[0], stored, rcpt, "sender@client.test")
        stt = os.stat(msgs[0])
        assert (stt.st_uid, stt.st_gid) == (user.uid, user.gid), \
            "delivered file owned by %d:%d, not the recipient %d:%d" % (
                stt.st_uid, stt.st_gid, user.uid, user.gid)
        for sub in ("", "new", "cur", "tmp"):
            d = os.path.join(user.maildir, sub)
            assert os.stat(d).st_uid == user.uid, "%s not owned by the recipient" % d
        st.wait_queue_empty()


def test_forward_file():
    """A system user's ~/.forward sends a copy to a virtual user and keeps
    one (backslash user); the user's own copy is written as the user."""
    require_root()
    with StorkInstance() as st, TempUser(st.dir) as user:
        fwd = os.path.join(user.home, ".forward")
        with open(fwd, "w") as f:
            f.write("%s, \\%s\n" % (st.vaddr("alice"), user.name))
        os.chown(fwd, user.uid, user.gid)
        st.start()
        wire, stored = tricky_message(b"fwd-1")
        rcpt = "%s@%s" % (user.name, st.local_domain)
        code, _ = st.send("sender@client.test", rcpt, wire, mail_options=["BODY=8BITMIME"])
        assert code == 250
        own = st.wait_for_maildir(user.maildir, 1)
        copy = st.wait_for_maildir(st.vmaildir("alice"), 1)
        assert len(own) == 1 and len(copy) == 1, (own, copy)
        check_stored(own[0], stored, rcpt, "sender@client.test")
        assert os.stat(own[0]).st_uid == user.uid
        data = read_bytes(copy[0])
        assert data.endswith(stored), "forwarded copy differs from the message"
        assert b"\nDelivered-To: " + st.vaddr("alice").encode() + b"\n" in data, data[:400]
        st.wait_queue_empty()
        assert re.search(r"to=<%s>, orig_to=<%s>, relay=virtual, .*status=sent"
                         % (re.escape(st.vaddr("alice")), re.escape(rcpt)), st.read_log()), \
            "no forwarded delivery line with orig_to in the log"


def test_swaks_to_virtual_user():
    """A real third-party client: swaks, with a body from the command line."""
    if subprocess.run(["sh", "-c", "command -v swaks"], capture_output=True).returncode:
        raise Skip("swaks not installed")
    with StorkInstance() as st:
        st.start()
        r = subprocess.run(["swaks", "--server", "%s:%d" % (st.host, st.port),
                            "--from", "swaks@client.test", "--to", st.vaddr("bob"),
                            "--helo", "client.test", "--header", "Subject: via swaks",
                            "--body", "hello from swaks\n.dot line"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "swaks failed:\n" + r.stdout + r.stderr
        assert re.search(r"<-  250[ -]", r.stdout), r.stdout
        msgs = st.wait_for_maildir(st.vmaildir("bob"), 1)
        data = read_bytes(msgs[0])
        assert b"Subject: via swaks\n" in data, data
        assert b"\nhello from swaks\n.dot line\n" in data, data
        assert b"\r" not in data


def test_recipient_case_insensitive():
    """Domain and local part of a virtual address match case-insensitively."""
    with StorkInstance() as st:
        st.start()
        st.send("s@client.test", "ALICE@VIRT.TEST", b"Subject: upper\r\n\r\nx\r\n")
        st.wait_for_maildir(st.vmaildir("alice"), 1)


if __name__ == "__main__":
    run_tests(globals())
